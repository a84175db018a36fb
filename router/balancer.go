package router

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/edge-router/edge/config"
)

// Selector picks the node for one request among a fixed list of nodes.
// Implementations are safe for concurrent use and take no lock held across I/O.
type Selector interface {
	// Select returns a usable node that is not in tried, or nil if there is none.
	// key is the request's hash key (only consistent_hash uses it).
	Select(key uint64, tried *nodeSet) *Node
}

// Tuning of the selectors. The names carry a selector prefix so they cannot
// clash with the rest of package router.
const (
	// selectorMaxWeight bounds a node weight so that weight sums and
	// cross-multiplied loads cannot overflow (config allows 1–1000).
	selectorMaxWeight = 1 << 20
	// rrMaxSequence caps the smooth weighted round-robin sequence length;
	// larger weight sums are scaled down proportionally.
	rrMaxSequence = 1 << 16
	// p2cDraws bounds the weighted random draws random_two makes for each
	// of its two candidates before it falls back to a scan of the nodes.
	p2cDraws = 4
	// chPointsPerWeight is the number of ring points of a node of the
	// smallest weight; heavier nodes get proportionally more.
	chPointsPerWeight = 100
	// chMaxPoints caps the ring size; larger rings are scaled down
	// proportionally, keeping at least one point per node.
	chMaxPoints = 100_000
	// chDefaultLoadFactor replaces a consistent_hash load factor below 1.
	chDefaultLoadFactor = 1.25
)

// newSelector builds the selector for policy over nodes. The policy names
// are those of config.Upstream.Policy; the empty policy means the default,
// "random_two". loadFactor only matters to "consistent_hash", where a value
// below 1 (or NaN) means 1.25. The selector keeps its own copy of nodes.
//
// An empty nodes slice is not an error: the pool builds one selector for
// its primaries and one for its backups, and the backups are often none.
// Such a selector always returns nil.
func newSelector(policy string, loadFactor float64, nodes []*Node) (Selector, error) {
	switch policy {
	case "":
		policy = config.PolicyRandomTwo
	case config.PolicyRandomTwo, config.PolicyRoundRobin, config.PolicyLeastConn, config.PolicyConsistentHash:
	default:
		return nil, fmt.Errorf("balancer: unknown policy %q", policy)
	}
	if err := checkSelectorNodes(policy, nodes); err != nil {
		return nil, err
	}
	nodes = slices.Clone(nodes)
	switch policy {
	case config.PolicyRoundRobin:
		return newRRSelector(nodes), nil
	case config.PolicyLeastConn:
		return &lcSelector{nodes: nodes}, nil
	case config.PolicyConsistentHash:
		return newCHSelector(nodes, loadFactor)
	default:
		return newP2CSelector(nodes), nil
	}
}

// selectNode returns s.Select(key, tried). Go's escape analysis assumes the
// arguments of an interface method call escape, so calling s.Select
// directly moves the caller's stack nodeSet to the heap: one allocation
// per request. selectNode calls the selectors of this file through their
// concrete types, so tried stays on the caller's stack; other Selector
// implementations (test doubles) get a copy of tried.
func selectNode(s Selector, key uint64, tried *nodeSet) *Node {
	switch s := s.(type) {
	case *p2cSelector:
		return s.Select(key, tried)
	case *rrSelector:
		return s.Select(key, tried)
	case *lcSelector:
		return s.Select(key, tried)
	case *chSelector:
		return s.Select(key, tried)
	case nil:
		return nil
	}
	if tried == nil {
		return s.Select(key, nil)
	}
	t := *tried
	return s.Select(key, &t)
}

// checkSelectorNodes validates the nodes given to a selector of policy:
// at most maxPoolNodes, none nil, weights in [1, selectorMaxWeight] and
// distinct indexes that fit a nodeSet.
func checkSelectorNodes(policy string, nodes []*Node) error {
	if len(nodes) > maxPoolNodes {
		return fmt.Errorf("%s: %d nodes, at most %d allowed", policy, len(nodes), maxPoolNodes)
	}
	var seen nodeSet
	for i, n := range nodes {
		if n == nil {
			return fmt.Errorf("%s: node %d is nil", policy, i)
		}
		if n.weight < 1 || n.weight > selectorMaxWeight {
			return fmt.Errorf("%s: node %q: weight %d out of range [1, %d]", policy, n.Name, n.weight, selectorMaxWeight)
		}
		if n.index < 0 || n.index >= maxPoolNodes {
			return fmt.Errorf("%s: node %q: index %d out of range [0, %d)", policy, n.Name, n.index, maxPoolNodes)
		}
		if seen.has(n.index) {
			return fmt.Errorf("%s: node %q: duplicate index %d", policy, n.Name, n.index)
		}
		seen.add(n.index)
	}
	return nil
}

// hashKey hashes a request's key bytes (client IP, header or cookie value)
// with xxHash64, a stable hash, so all edge instances map a key to the same
// node.
func hashKey(b []byte) uint64 { return xxhash.Sum64(b) }

// eligibleNode reports whether n may take this request: usable and not tried.
func eligibleNode(n *Node, tried *nodeSet) bool {
	return !tried.has(n.index) && n.Usable()
}

// pickWeightedNode returns the position in nodes of an eligible node other than
// the one at position exclude (-1 for none), drawn at random with
// probability proportional to weight, or -1 if there is none. It costs two
// passes over nodes, so selectors use it only off their fast path.
func pickWeightedNode(nodes []*Node, tried *nodeSet, exclude int) int {
	var sum uint64
	for i, n := range nodes {
		if i != exclude && eligibleNode(n, tried) {
			sum += uint64(n.weight)
		}
	}
	if sum == 0 {
		return -1
	}
	r := rand.Uint64N(sum)
	last := -1
	for i, n := range nodes {
		if i == exclude || !eligibleNode(n, tried) {
			continue
		}
		w := uint64(n.weight)
		if r < w {
			return i
		}
		r -= w
		last = i
	}
	// A node turned unusable between the passes; take the last eligible.
	return last
}

// rrSelector is smooth weighted round robin, as nginx does it
// (ngx_http_upstream_get_peer, 2012): each step every node's current weight
// grows by its weight, the largest wins and loses the sum of all weights,
// so weights 5,1,1 give a a b a c a a rather than a a a a a b c.
//
// The sequence of one full cycle is precomputed at construction, so Select
// is one atomic add and an array read: lock-free, and exact under
// concurrency (every counter value maps to one slot). When the slot's node
// is unusable or tried, the request goes to a weighted random pick among
// the other eligible nodes, which spreads the missing node's share evenly
// instead of piling it onto its successor in the sequence.
type rrSelector struct {
	nodes []*Node
	seq   []uint8 // positions in nodes, one cycle of smooth WRR
	next  atomic.Uint64
}

// newRRSelector precomputes the smooth weighted round-robin cycle over
// nodes, whose weights are first scaled down if they sum above
// rrMaxSequence and then divided by their greatest common divisor.
func newRRSelector(nodes []*Node) *rrSelector {
	s := &rrSelector{nodes: nodes}
	if len(nodes) == 0 {
		return s
	}
	w := make([]int64, len(nodes))
	var sum int64
	for i, n := range nodes {
		w[i] = int64(n.weight)
		sum += w[i]
	}
	if sum > rrMaxSequence {
		for i := range w {
			w[i] = max(1, w[i]*rrMaxSequence/sum)
		}
	}
	g := w[0]
	for _, x := range w[1:] {
		g = gcdInt64(g, x)
	}
	sum = 0
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	s.seq = make([]uint8, sum)
	cur := make([]int64, len(w))
	for k := range s.seq {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		s.seq[k] = uint8(best)
	}
	return s
}

// gcdInt64 returns the greatest common divisor of positive a and b (Euclid).
func gcdInt64(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Select returns the node of the next slot of the cycle, or a weighted
// random eligible node if that one is not eligible.
func (s *rrSelector) Select(_ uint64, tried *nodeSet) *Node {
	if len(s.seq) == 0 {
		return nil
	}
	pos := int(s.seq[(s.next.Add(1)-1)%uint64(len(s.seq))])
	if n := s.nodes[pos]; eligibleNode(n, tried) {
		return n
	}
	if i := pickWeightedNode(s.nodes, tried, pos); i >= 0 {
		return s.nodes[i]
	}
	return nil
}

// lcSelector is weighted least connections: the eligible node with the
// smallest (inflight+1)/weight wins, compared by cross-multiplication. The
// "+1" counts the request being placed, so an idle heavy node beats an idle
// light one. The scan starts at a position that rotates with every call, so
// ties go to each node in turn and equal nodes share load evenly.
type lcSelector struct {
	nodes []*Node
	next  atomic.Uint64
}

// Select returns the eligible node with the least weighted load.
func (s *lcSelector) Select(_ uint64, tried *nodeSet) *Node {
	n := len(s.nodes)
	if n == 0 {
		return nil
	}
	p := int((s.next.Add(1) - 1) % uint64(n))
	var best *Node
	var bestLoad, bestWeight int64
	for range n {
		nd := s.nodes[p]
		if p++; p == n {
			p = 0
		}
		if !eligibleNode(nd, tried) {
			continue
		}
		load, w := nd.Inflight()+1, int64(nd.weight)
		if best == nil || load*bestWeight < bestLoad*w {
			best, bestLoad, bestWeight = nd, load, w
		}
	}
	return best
}

// p2cSelector is the power of two random choices (Mitzenmacher, "The Power
// of Two Choices in Randomized Load Balancing", 2001): draw two distinct
// eligible nodes at random, weighted by weight, and take the one with the
// lower inflight/weight. It needs no shared mutable state at all: the
// draws use math/rand/v2's per-thread generator.
type p2cSelector struct {
	nodes []*Node
	cum   []uint64 // cum[i] is the sum of the weights of nodes[0..i]
	total uint64   // sum of all weights, < 2^28 (checkSelectorNodes)
}

// newP2CSelector builds the cumulative weights of nodes.
func newP2CSelector(nodes []*Node) *p2cSelector {
	s := &p2cSelector{nodes: nodes, cum: make([]uint64, len(nodes))}
	for i, n := range nodes {
		s.total += uint64(n.weight)
		s.cum[i] = s.total
	}
	return s
}

// p2cLinearMax is the node count up to which draw scans the cumulative
// weights linearly, which beats a binary search on small pools.
const p2cLinearMax = 8

// draw maps 32 random bits to the position of a node, drawn by weight.
// The multiply-shift (Lemire, "Fast Random Integer Generation in an
// Interval", 2019) has a bias below total/2^32: under 10^-4 for config
// weights (≤ 1000 × 256 nodes).
func (s *p2cSelector) draw(r uint32) int {
	x := uint64(r) * s.total >> 32 // uniform in [0, total)
	if len(s.cum) <= p2cLinearMax {
		// Count the bounds at or below x; branch-free, as the outcome is
		// random and would defeat the branch predictor.
		i := 0
		for _, c := range s.cum[:len(s.cum)-1] {
			if x >= c {
				i++
			}
		}
		return i
	}
	i, _ := slices.BinarySearch(s.cum, x+1) // first i with cum[i] > x
	return i
}

// randBits hands out 32-bit random numbers, two per rand.Uint64 call.
type randBits struct {
	bits uint64
	have bool
}

// next returns 32 random bits.
func (r *randBits) next() uint32 {
	if r.have {
		r.have = false
		return uint32(r.bits >> 32)
	}
	r.bits, r.have = rand.Uint64(), true
	return uint32(r.bits)
}

// Select returns the less loaded of two weighted random eligible nodes, or
// the only eligible node.
func (s *p2cSelector) Select(_ uint64, tried *nodeSet) *Node {
	switch len(s.nodes) {
	case 0:
		return nil
	case 1:
		if n := s.nodes[0]; eligibleNode(n, tried) {
			return n
		}
		return nil
	}
	var rb randBits
	a := -1
	for range p2cDraws {
		if i := s.draw(rb.next()); eligibleNode(s.nodes[i], tried) {
			a = i
			break
		}
	}
	if a < 0 {
		if a = pickWeightedNode(s.nodes, tried, -1); a < 0 {
			return nil
		}
	}
	b := -1
	for range p2cDraws {
		if i := s.draw(rb.next()); i != a && eligibleNode(s.nodes[i], tried) {
			b = i
			break
		}
	}
	if b < 0 {
		if b = pickWeightedNode(s.nodes, tried, a); b < 0 {
			return s.nodes[a]
		}
	}
	na, nb := s.nodes[a], s.nodes[b]
	if nb.Inflight()*int64(na.weight) < na.Inflight()*int64(nb.weight) {
		return nb
	}
	return na
}

// chSelector is consistent hashing with bounded loads (Mirrokni, Thorup,
// Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018; HAProxy's
// hash-balance-factor, Vimeo's use of it). Nodes own points on a ring of
// 64-bit hashes (Karger et al., 1997); a key goes to the owner of the first
// point at or after it, walking clockwise past nodes that are unusable,
// tried or loaded above loadFactor times their weighted share of the
// pool's in-flight requests.
//
// Points are hashes of the node's name, not its position, so adding a node
// only moves the keys that now land on its points.
type chSelector struct {
	nodes      []*Node
	hashes     []uint64 // ring points, ascending
	owners     []uint8  // owners[i] is the position in nodes of hashes[i]
	loadFactor float64
}

// chRingName returns the name a node's ring points derive from: its Name,
// or its Address if it has none (config defaults the name to the address).
func chRingName(n *Node) string {
	if n.Name != "" {
		return n.Name
	}
	return n.Address
}

// newCHSelector builds the ring: chPointsPerWeight*weight/minWeight points
// per node, scaled down to chMaxPoints in all, point i of a node being
// xxhash(name + "#" + i).
func newCHSelector(nodes []*Node, loadFactor float64) (*chSelector, error) {
	if !(loadFactor >= 1) { // also catches NaN
		loadFactor = chDefaultLoadFactor
	}
	s := &chSelector{nodes: nodes, loadFactor: loadFactor}
	if len(nodes) == 0 {
		return s, nil
	}
	names := make(map[string]bool, len(nodes))
	minW := nodes[0].weight
	for _, n := range nodes {
		name := chRingName(n)
		if names[name] {
			return nil, fmt.Errorf("consistent_hash: duplicate node name %q", name)
		}
		names[name] = true
		minW = min(minW, n.weight)
	}
	points := make([]int, len(nodes))
	total := 0
	for i, n := range nodes {
		points[i] = chPointsPerWeight * n.weight / minW
		total += points[i]
	}
	if total > chMaxPoints {
		scaled := 0
		for i := range points {
			points[i] = max(1, points[i]*chMaxPoints/total)
			scaled += points[i]
		}
		total = scaled
	}
	type point struct {
		hash uint64
		pos  int
	}
	ring := make([]point, 0, total)
	var buf []byte
	for pos, n := range nodes {
		name := chRingName(n)
		for i := range points[pos] {
			buf = append(append(append(buf[:0], name...), '#'), strconv.Itoa(i)...)
			ring = append(ring, point{xxhash.Sum64(buf), pos})
		}
	}
	// Ties between points (vanishingly rare) are broken by name, so every
	// instance builds the same ring whatever the order of nodes.
	slices.SortFunc(ring, func(a, b point) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(chRingName(nodes[a.pos]), chRingName(nodes[b.pos]))
	})
	s.hashes = make([]uint64, len(ring))
	s.owners = make([]uint8, len(ring))
	for i, p := range ring {
		s.hashes[i], s.owners[i] = p.hash, uint8(p.pos)
	}
	return s, nil
}

// Select walks the ring clockwise from key and returns the first eligible
// node whose in-flight count, this request included, is within its bound
// ceil(loadFactor * (totalInflight+1) * weight / totalWeight) over the
// usable nodes; if none is, the first eligible node met.
func (s *chSelector) Select(key uint64, tried *nodeSet) *Node {
	n := len(s.nodes)
	if n == 0 {
		return nil
	}
	var totalInflight, totalWeight int64
	for _, nd := range s.nodes {
		if nd.Usable() {
			totalInflight += nd.Inflight()
			totalWeight += int64(nd.weight)
		}
	}
	if totalWeight == 0 {
		return nil
	}
	share := s.loadFactor * float64(totalInflight+1) / float64(totalWeight)
	p, _ := slices.BinarySearch(s.hashes, key) // first point ≥ key
	var seen nodeSet
	var first *Node
	for distinct, steps := 0, 0; distinct < n && steps < len(s.hashes); steps++ {
		if p == len(s.hashes) {
			p = 0
		}
		pos := int(s.owners[p])
		p++
		if seen.has(pos) {
			continue
		}
		seen.add(pos)
		distinct++
		nd := s.nodes[pos]
		if !eligibleNode(nd, tried) {
			continue
		}
		if first == nil {
			first = nd
		}
		if float64(nd.Inflight()+1) <= math.Ceil(share*float64(nd.weight)) {
			return nd
		}
	}
	return first
}
