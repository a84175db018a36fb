package router

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testPolicies lists every balancing policy.
var testPolicies = []string{"random_two", "round_robin", "least_conn", "consistent_hash"}

// testNodes returns one node per weight, named "a", "b", … (then "n26", …)
// and indexed from first on.
func testNodes(first int, weights ...int) []*Node {
	nodes := make([]*Node, len(weights))
	for i, w := range weights {
		name := "n" + strconv.Itoa(i)
		if i < 26 {
			name = string(rune('a' + i))
		}
		nodes[i] = &Node{Name: name, Address: name + ":80", index: first + i, weight: w, link: &nodeLink{}}
	}
	return nodes
}

// equalWeights returns n weights of 1.
func equalWeights(n int) []int {
	w := make([]int, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// markUnusable makes n refuse requests for the next hour.
func markUnusable(n *Node) { n.link.refusedUntil.Store(time.Now().Add(time.Hour).UnixNano()) }

// mustSelector builds a selector or fails the test.
func mustSelector(t testing.TB, policy string, loadFactor float64, nodes []*Node) Selector {
	t.Helper()
	s, err := newSelector(policy, loadFactor, nodes)
	if err != nil {
		t.Fatalf("newSelector(%q): %v", policy, err)
	}
	return s
}

// testKey returns the hash key of the i-th test request.
func testKey(i int) uint64 { return hashKey([]byte("client-" + strconv.Itoa(i))) }

func TestNewSelectorErrors(t *testing.T) {
	tooMany := testNodes(0, equalWeights(maxPoolNodes+1)...)
	for i, n := range tooMany {
		n.index = i % maxPoolNodes
	}
	tests := []struct {
		name   string
		policy string
		nodes  func() []*Node
		want   string
	}{
		{"unknown policy", "fastest", func() []*Node { return testNodes(0, 1) }, `balancer: unknown policy "fastest"`},
		{"nil node", "round_robin", func() []*Node { return []*Node{testNodes(0, 1)[0], nil} }, "round_robin: node 1 is nil"},
		{"zero weight", "least_conn", func() []*Node { return testNodes(0, 1, 0) }, `least_conn: node "b": weight 0 out of range`},
		{"huge weight", "random_two", func() []*Node { return testNodes(0, selectorMaxWeight+1) }, `random_two: node "a": weight`},
		{"negative index", "round_robin", func() []*Node { return testNodes(-1, 1) }, `round_robin: node "a": index -1 out of range`},
		{"index too large", "round_robin", func() []*Node { return testNodes(maxPoolNodes, 1) }, `round_robin: node "a": index 256 out of range`},
		{"duplicate index", "least_conn", func() []*Node {
			ns := testNodes(0, 1, 1)
			ns[1].index = 0
			return ns
		}, `least_conn: node "b": duplicate index 0`},
		{"too many nodes", "random_two", func() []*Node { return tooMany }, "random_two: 257 nodes, at most 256 allowed"},
		{"duplicate name", "consistent_hash", func() []*Node {
			ns := testNodes(0, 1, 1)
			ns[1].Name = "a"
			return ns
		}, `consistent_hash: duplicate node name "a"`},
		{"duplicate address without names", "consistent_hash", func() []*Node {
			ns := testNodes(0, 1, 1)
			ns[0].Name, ns[1].Name, ns[1].Address = "", "", ns[0].Address
			return ns
		}, `consistent_hash: duplicate node name "a:80"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := newSelector(tt.policy, 0, tt.nodes())
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("newSelector() = %v, %v; want error starting with %q", s, err, tt.want)
			}
		})
	}
}

func TestNewSelectorDefaults(t *testing.T) {
	if s := mustSelector(t, "", 0, testNodes(0, 1)); fmt.Sprintf("%T", s) != "*router.p2cSelector" {
		t.Errorf("empty policy gives %T, want random_two's *router.p2cSelector", s)
	}
	for _, tt := range []struct {
		in, want float64
	}{{0, 1.25}, {0.5, 1.25}, {1, 1}, {2, 2}} {
		s := mustSelector(t, "consistent_hash", tt.in, testNodes(0, 1)).(*chSelector)
		if s.loadFactor != tt.want {
			t.Errorf("load factor %v gives %v, want %v", tt.in, s.loadFactor, tt.want)
		}
	}
	nodes := testNodes(0, 1, 1)
	s := mustSelector(t, "round_robin", 0, nodes)
	nodes[0], nodes[1] = nil, nil // the selector keeps its own copy
	if s.Select(0, nil) == nil {
		t.Error("selector shares the caller's slice")
	}
}

func TestRoundRobinEqualWeightsExact(t *testing.T) {
	nodes := testNodes(0, 1, 1, 1)
	s := mustSelector(t, "round_robin", 0, nodes)
	counts := map[string]int{}
	for range 300 {
		counts[s.Select(0, nil).Name]++
	}
	for _, n := range nodes {
		if counts[n.Name] != 100 {
			t.Errorf("counts = %v, want 100 each", counts)
			break
		}
	}
}

func TestRoundRobinExactUnderConcurrency(t *testing.T) {
	nodes := testNodes(0, 1, 1, 1, 1)
	s := mustSelector(t, "round_robin", 0, nodes)
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			local := map[string]int{}
			for range 1000 {
				local[s.Select(0, nil).Name]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, n := range nodes {
		if counts[n.Name] != 2000 {
			t.Fatalf("counts = %v, want 2000 each", counts)
		}
	}
}

func TestRoundRobinSmoothWeighted(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    string // one cycle
	}{
		{"nginx example 5 1 1", []int{5, 1, 1}, "aabacaa"},
		{"equal", []int{1, 1, 1}, "abc"},
		{"two to one", []int{2, 1}, "aba"},
		{"reduced by gcd", []int{40, 20}, "aba"},
		{"heavy last", []int{1, 1, 4}, "cacbcc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSelector(t, "round_robin", 0, testNodes(0, tt.weights...))
			var got strings.Builder
			for range 3 * len(tt.want) {
				got.WriteString(s.Select(0, nil).Name)
			}
			if want := strings.Repeat(tt.want, 3); got.String() != want {
				t.Errorf("picks = %s, want %s", got.String(), want)
			}
		})
	}
}

func TestRoundRobinWeightedProportionalAndSpread(t *testing.T) {
	weights := []int{7, 3, 1, 1}
	s := mustSelector(t, "round_robin", 0, testNodes(0, weights...))
	counts := map[string]int{}
	prev, run := "", 0
	for i := range 1200 {
		name := s.Select(0, nil).Name
		counts[name]++
		if name == prev {
			run++
		} else {
			prev, run = name, 1
		}
		if name != "a" && run > 1 {
			t.Fatalf("pick %d: %s picked %d times in a row", i, name, run)
		}
	}
	for i, w := range weights {
		if name := string(rune('a' + i)); counts[name] != 100*w {
			t.Errorf("counts = %v, want 100 × weight", counts)
			break
		}
	}
}

func TestRoundRobinLargeWeightsScaled(t *testing.T) {
	weights := make([]int, 101)
	for i := range 100 {
		weights[i] = 1000
	}
	weights[100] = 1
	s := mustSelector(t, "round_robin", 0, testNodes(0, weights...)).(*rrSelector)
	if len(s.seq) > rrMaxSequence+len(weights) {
		t.Fatalf("sequence length %d, want ≤ %d", len(s.seq), rrMaxSequence+len(weights))
	}
	counts := make([]int, len(weights))
	for _, p := range s.seq {
		counts[p]++
	}
	if counts[100] < 1 || counts[0] != counts[99] || counts[0] < 600*counts[100] {
		t.Errorf("cycle counts: heavy %d, %d, light %d", counts[0], counts[99], counts[100])
	}
}

func TestRoundRobinUnusableShareSpreadEvenly(t *testing.T) {
	nodes := testNodes(0, 1, 1, 1)
	markUnusable(nodes[0])
	s := mustSelector(t, "round_robin", 0, nodes)
	counts := map[string]int{}
	for range 3000 {
		counts[s.Select(0, nil).Name]++
	}
	// b and c get 1000 each plus a's 1000 split at random: ±150 is > 9σ.
	if counts["a"] != 0 || counts["b"] < 1350 || counts["c"] < 1350 {
		t.Errorf("counts = %v, want a 0 and b, c about 1500", counts)
	}
}

func TestRandomTwoWeightsProportional(t *testing.T) {
	s := mustSelector(t, "random_two", 0, testNodes(0, 3, 1))
	const picks = 30000
	a := 0
	for range picks {
		if s.Select(0, nil).Name == "a" {
			a++
		}
	}
	// Expected 75%; σ is 0.25 percentage points, so ±5 cannot flake.
	if share := 100 * float64(a) / picks; share < 70 || share > 80 {
		t.Errorf("weight 3 of 4 got %.1f%% of picks, want 75±5%%", share)
	}
}

func TestBalancerWeightedUnderSimulatedLoad(t *testing.T) {
	for _, policy := range []string{"least_conn", "random_two"} {
		t.Run(policy, func(t *testing.T) {
			nodes := testNodes(0, 3, 1)
			s := mustSelector(t, policy, 0, nodes)
			const picks, concurrency = 30000, 100
			var inflight []*Node
			counts := map[string]int{}
			for range picks {
				n := s.Select(0, nil)
				counts[n.Name]++
				n.link.inflight.Add(1)
				inflight = append(inflight, n)
				if len(inflight) > concurrency {
					i := rand.IntN(len(inflight))
					inflight[i].link.inflight.Add(-1)
					inflight[i] = inflight[len(inflight)-1]
					inflight = inflight[:len(inflight)-1]
				}
			}
			if share := 100 * float64(counts["a"]) / picks; share < 70 || share > 80 {
				t.Errorf("weight 3 of 4 got %.1f%% of picks (%v), want 75±5%%", share, counts)
			}
		})
	}
}

func TestLeastConnPicksLeastWeightedLoad(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		inflight []int64
		want     string
	}{
		{"fewest in flight", []int{1, 1, 1}, []int64{5, 0, 3}, "b"},
		{"weight scales load", []int{4, 1}, []int64{3, 1}, "a"},
		{"idle heavy beats idle light", []int{1, 2}, []int64{0, 0}, "b"},
		{"heavy but busy loses", []int{2, 1}, []int64{4, 1}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := testNodes(0, tt.weights...)
			for i, k := range tt.inflight {
				nodes[i].link.inflight.Store(k)
			}
			s := mustSelector(t, "least_conn", 0, nodes)
			for range 10 {
				if got := s.Select(0, nil).Name; got != tt.want {
					t.Fatalf("Select() = %s, want %s", got, tt.want)
				}
			}
		})
	}
}

func TestLeastConnTiesRotate(t *testing.T) {
	s := mustSelector(t, "least_conn", 0, testNodes(0, 1, 1, 1))
	counts := map[string]int{}
	for range 300 {
		counts[s.Select(0, nil).Name]++
	}
	if counts["a"] != 100 || counts["b"] != 100 || counts["c"] != 100 {
		t.Errorf("counts = %v, want 100 each", counts)
	}
}

func TestRandomTwoPrefersLessLoaded(t *testing.T) {
	nodes := testNodes(0, 1, 1)
	nodes[0].link.inflight.Store(10)
	s := mustSelector(t, "random_two", 0, nodes)
	for range 1000 {
		if got := s.Select(0, nil).Name; got != "b" {
			t.Fatalf("Select() = %s, want the idle b", got)
		}
	}
}

func TestSelectSkipsIneligibleNodes(t *testing.T) {
	// Indexes start at 10, as backups' do, to check tried uses Index().
	tests := []struct {
		name      string
		nodes     int
		unusable  []int // positions
		tried     []int // positions
		wantOneOf string
	}{
		{"unusable never picked", 4, []int{0, 2}, nil, "bd"},
		{"tried never picked", 4, nil, []int{1, 2}, "ad"},
		{"unusable and tried", 4, []int{0}, []int{3}, "bc"},
		{"only one eligible", 5, []int{0, 1}, []int{2, 3}, "e"},
		{"all tried", 3, nil, []int{0, 1, 2}, ""},
		{"all unusable", 3, []int{0, 1, 2}, nil, ""},
		{"all tried or unusable", 3, []int{0, 1}, []int{2}, ""},
		{"empty", 0, nil, nil, ""},
	}
	for _, policy := range testPolicies {
		for _, tt := range tests {
			t.Run(policy+"/"+tt.name, func(t *testing.T) {
				nodes := testNodes(10, equalWeights(tt.nodes)...)
				for _, p := range tt.unusable {
					markUnusable(nodes[p])
				}
				var tried nodeSet
				for _, p := range tt.tried {
					tried.add(nodes[p].Index())
				}
				s := mustSelector(t, policy, 0, nodes)
				seen := map[string]bool{}
				for i := range 2000 {
					n := s.Select(testKey(i), &tried)
					if tt.wantOneOf == "" {
						if n != nil {
							t.Fatalf("Select() = %s, want nil", n.Name)
						}
						continue
					}
					if n == nil || !strings.Contains(tt.wantOneOf, n.Name) {
						t.Fatalf("Select() = %v, want one of %q", n, tt.wantOneOf)
					}
					seen[n.Name] = true
				}
				if policy != "consistent_hash" || len(tt.wantOneOf) == 1 {
					// Every eligible node gets some of 2000 requests.
					for _, name := range tt.wantOneOf {
						if !seen[string(name)] {
							t.Errorf("eligible node %c never picked", name)
						}
					}
				}
			})
		}
	}
}

func TestSelectNilTried(t *testing.T) {
	for _, policy := range testPolicies {
		t.Run(policy, func(t *testing.T) {
			s := mustSelector(t, policy, 0, testNodes(0, 1, 2, 3))
			if s.Select(testKey(1), nil) == nil {
				t.Error("Select(nil tried) = nil")
			}
		})
	}
}

// chAssign maps keys 0..n-1 to node names with s.
func chAssign(s Selector, n int) []string {
	got := make([]string, n)
	for i := range got {
		got[i] = s.Select(testKey(i), nil).Name
	}
	return got
}

func TestConsistentHashSameKeySameNode(t *testing.T) {
	nodes := testNodes(0, 1, 1, 1, 1)
	s := mustSelector(t, "consistent_hash", 0, nodes)
	// Another instance, given the nodes in another order, must agree.
	reversed := testNodes(0, 1, 1, 1, 1)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	other := mustSelector(t, "consistent_hash", 0, reversed)
	first := chAssign(s, 1000)
	for round := range 3 {
		for i, want := range chAssign(s, 1000) {
			if want != first[i] {
				t.Fatalf("round %d: key %d went to %s, then %s", round, i, first[i], want)
			}
		}
	}
	for i, got := range chAssign(other, 1000) {
		if got != first[i] {
			t.Fatalf("key %d: %s on one instance, %s on another", i, first[i], got)
		}
	}
}

func TestConsistentHashAddNodeMovesOnlyItsKeys(t *testing.T) {
	const keys = 10000
	before := chAssign(mustSelector(t, "consistent_hash", 0, testNodes(0, 1, 1, 1)), keys)
	after := chAssign(mustSelector(t, "consistent_hash", 0, testNodes(0, 1, 1, 1, 1)), keys)
	moved := 0
	for i := range keys {
		if before[i] == after[i] {
			continue
		}
		if after[i] != "d" {
			t.Fatalf("key %d moved between old nodes: %s → %s", i, before[i], after[i])
		}
		moved++
	}
	if share := 100 * float64(moved) / keys; share < 15 || share > 35 {
		t.Errorf("%.1f%% of keys moved to the new node, want about 25%%", share)
	}
}

func TestConsistentHashRemoveNodeRemapsOnlyItsKeys(t *testing.T) {
	const keys = 10000
	all := testNodes(0, 1, 1, 1, 1)
	before := chAssign(mustSelector(t, "consistent_hash", 0, all), keys)
	without := []*Node{all[0], all[1], all[3]} // "c" removed
	after := chAssign(mustSelector(t, "consistent_hash", 0, without), keys)
	moved := 0
	for i := range keys {
		if before[i] == "c" {
			moved++
			continue
		}
		if after[i] != before[i] {
			t.Fatalf("key %d of %s moved to %s", i, before[i], after[i])
		}
	}
	if moved == 0 {
		t.Error("removed node had no keys")
	}
}

func TestConsistentHashUnusableNodeRemapsOnlyItsKeys(t *testing.T) {
	const keys = 5000
	nodes := testNodes(0, 1, 1, 1, 1)
	s := mustSelector(t, "consistent_hash", 0, nodes)
	before := chAssign(s, keys)
	markUnusable(nodes[1])
	after := chAssign(s, keys)
	for i := range keys {
		if after[i] == "b" || (before[i] != "b" && after[i] != before[i]) {
			t.Fatalf("key %d: %s → %s with b unusable", i, before[i], after[i])
		}
	}
}

func TestConsistentHashWeighted(t *testing.T) {
	const keys = 10000
	counts := map[string]int{}
	for _, name := range chAssign(mustSelector(t, "consistent_hash", 0, testNodes(0, 3, 1)), keys) {
		counts[name]++
	}
	if share := 100 * float64(counts["a"]) / keys; share < 65 || share > 85 {
		t.Errorf("weight 3 of 4 owns %.1f%% of keys, want about 75%%", share)
	}
}

func TestConsistentHashBoundedLoad(t *testing.T) {
	key := hashKey([]byte("hot"))
	tests := []struct {
		name       string
		loadFactor float64
		hot        int64 // in flight on the key's own node
		others     int64 // in flight on every other node
		wantMoved  bool
	}{
		// bound = ceil(1.25 × 11 / 3) = 5 < 10+1
		{"hot node over bound goes elsewhere", 0, 10, 0, true},
		// bound = ceil(1.25 × 16 / 3) = 7 ≥ 5+1
		{"equal loads stay", 0, 5, 5, false},
		// bound = ceil(1.25 × 8 / 3) = 4 ≥ 3+1
		{"slightly above average stays", 0, 3, 2, false},
		// bound = ceil(3 × 11 / 3) = 11 ≥ 10+1
		{"large load factor tolerates", 3, 10, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := testNodes(0, 1, 1, 1)
			s := mustSelector(t, "consistent_hash", tt.loadFactor, nodes)
			home := s.Select(key, nil)
			for _, n := range nodes {
				if n == home {
					n.link.inflight.Store(tt.hot)
				} else {
					n.link.inflight.Store(tt.others)
				}
			}
			got := s.Select(key, nil)
			if moved := got != home; moved != tt.wantMoved {
				t.Errorf("key's node %s, Select() = %s; moved %v, want %v", home.Name, got.Name, moved, tt.wantMoved)
			}
		})
	}
}

func TestConsistentHashAllOverBoundFallsBackToFirst(t *testing.T) {
	nodes := testNodes(0, 1, 1, 1)
	s := mustSelector(t, "consistent_hash", 0, nodes)
	key := hashKey([]byte("hot"))
	home := s.Select(key, nil)
	var tried nodeSet
	tried.add(home.Index())
	next := s.Select(key, &tried) // first eligible node clockwise
	// The tried node idle, the others at 10: bound = ceil(1.25 × 21 / 3)
	// = 9 < 11, so no eligible node passes and the first one met wins.
	for _, n := range nodes {
		if n != home {
			n.link.inflight.Store(10)
		}
	}
	if got := s.Select(key, &tried); got != next {
		t.Fatalf("Select() = %v, want the first eligible node %s", got, next.Name)
	}
}

func TestHashKeyStable(t *testing.T) {
	// xxHash64 with seed 0; every edge instance must agree on this value.
	tests := []struct {
		in   string
		want uint64
	}{
		{"", 0xef46db3751d8e999},
		{"192.0.2.1", 0xb745e3600a221c61},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			if got := hashKey([]byte(tt.in)); got != tt.want {
				t.Errorf("hashKey(%q) = %#x, want %#x", tt.in, got, tt.want)
			}
		})
	}
}

func TestSelectAllocationFree(t *testing.T) {
	for _, policy := range testPolicies {
		t.Run(policy, func(t *testing.T) {
			nodes := testNodes(0, 3, 1, 2, 1, 1)
			nodes[1].link.inflight.Store(4)
			markUnusable(nodes[2]) // exercises the slow paths too
			s := mustSelector(t, policy, 0, nodes)
			i := uint64(0)
			var tried nodeSet
			tried.add(nodes[3].Index())
			if allocs := testing.AllocsPerRun(1000, func() {
				i += 0x9e3779b97f4a7c15
				if s.Select(i, &tried) == nil {
					panic("no node")
				}
			}); allocs != 0 {
				t.Errorf("Select allocates %v times per call", allocs)
			}
			// Through selectNode, a nodeSet declared per request stays on
			// the stack, as it does in the proxy.
			if allocs := testing.AllocsPerRun(1000, func() {
				i += 0x9e3779b97f4a7c15
				var tried nodeSet
				tried.add(nodes[3].Index())
				if selectNode(s, i, &tried) == nil {
					panic("no node")
				}
			}); allocs != 0 {
				t.Errorf("selectNode allocates %v times per call", allocs)
			}
		})
	}
}

// fakeSelector records the tried set it is given.
type fakeSelector struct {
	node  *Node
	tried *nodeSet
}

// Select returns f.node.
func (f *fakeSelector) Select(_ uint64, tried *nodeSet) *Node {
	f.tried = tried
	return f.node
}

func TestSelectNodeOtherSelectors(t *testing.T) {
	nodes := testNodes(0, 1, 1)
	f := &fakeSelector{node: nodes[1]}
	var tried nodeSet
	tried.add(0)
	if got := selectNode(f, 0, &tried); got != nodes[1] {
		t.Errorf("selectNode() = %v, want the fake's node", got)
	}
	if f.tried == nil || !f.tried.has(0) || f.tried.has(1) {
		t.Errorf("fake got tried %v, want a copy of {0}", f.tried)
	}
	if selectNode(f, 0, nil); f.tried != nil {
		t.Errorf("fake got tried %v, want nil", f.tried)
	}
	if got := selectNode(nil, 0, &tried); got != nil {
		t.Errorf("selectNode(nil) = %v, want nil", got)
	}
}

func TestSelectConcurrent(t *testing.T) {
	for _, policy := range testPolicies {
		t.Run(policy, func(t *testing.T) {
			nodes := testNodes(0, 1, 2, 3, 1, 5)
			s := mustSelector(t, policy, 0, nodes)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 1000 {
						var tried nodeSet
						if i%10 == 0 {
							tried.add(nodes[i%len(nodes)].Index())
						}
						n := s.Select(testKey(g*1000+i), &tried)
						if n == nil || tried.has(n.Index()) {
							t.Errorf("Select() = %v", n)
							return
						}
						n.link.inflight.Add(1)
						if i%7 == 0 {
							time.Sleep(time.Microsecond)
						}
						n.link.inflight.Add(-1)
					}
				})
			}
			wg.Wait()
			for _, n := range nodes {
				if k := n.Inflight(); k != 0 {
					t.Errorf("node %s has %d in flight after the test", n.Name, k)
				}
			}
		})
	}
}

func BenchmarkSelect(b *testing.B) {
	for _, policy := range testPolicies {
		b.Run(policy, func(b *testing.B) {
			for _, size := range []int{3, 100} {
				b.Run("nodes="+strconv.Itoa(size), func(b *testing.B) {
					weights := make([]int, size)
					for i := range weights {
						weights[i] = 1 + i%3
					}
					nodes := testNodes(0, weights...)
					for i, n := range nodes {
						n.link.inflight.Store(int64(i % 5))
					}
					s := mustSelector(b, policy, 0, nodes)
					var tried nodeSet
					b.ReportAllocs()
					i := uint64(0)
					for b.Loop() {
						i += 0x9e3779b97f4a7c15
						if s.Select(i, &tried) == nil {
							b.Fatal("no node")
						}
					}
				})
			}
		})
	}
}
