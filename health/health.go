// Package health owns the runtime state of every upstream node: active
// health checks with rise/fall thresholds, passive outlier detection
// (ejection) from live traffic, the operator's drain and maintenance states
// with optional leases, runtime weight overrides and the slow-start clock.
//
// The state lives in a Registry keyed by pool and node address, not in the
// router's snapshot, so it survives configuration reloads and DNS changes:
// the router calls Sync with a pool's complete node list whenever that list
// may have changed, and gets back the same *Node for every address the pool
// already had. New nodes, and nodes whose check definition changed, are
// probed at once instead of after an interval.
//
// Decisions that concern the whole pool follow one policy, stated once: the
// last available node of a pool is never ejected by passive detection, and
// an operator can drain it or put it in maintenance only with force. Active
// checks are the exception: a node that fails them is down even if it is the
// last one, and the router's all_down policy decides what happens then.
//
// Node.Available, Node.SlowStartFactor, Node.AdminState and
// Node.ReportSuccess are read on every request: they use atomics only and
// never allocate. Checks run on their own goroutines, one per checked node,
// never on the request path.
package health

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edge-router/edge/config"
)

// Key identifies a node across reloads and DNS changes.
type Key struct{ Pool, Address string }

// AdminState is the operator's state of a node.
type AdminState uint8

// Operator states of a node.
const (
	// Ready lets the node take traffic when it is healthy.
	Ready AdminState = iota
	// Drain stops new requests to the node; in-flight requests finish and
	// active checks go on.
	Drain
	// Maint stops new requests and pauses the node's active checks; when it
	// ends, the first check decides the node's health at once.
	Maint
)

// String returns "ready", "drain" or "maint".
func (s AdminState) String() string {
	switch s {
	case Ready:
		return "ready"
	case Drain:
		return "drain"
	case Maint:
		return "maint"
	}
	return fmt.Sprintf("AdminState(%d)", uint8(s))
}

// ParseAdminState parses "ready", "drain" or "maint" (in any case).
func ParseAdminState(s string) (AdminState, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "ready":
		return Ready, nil
	case "drain":
		return Drain, nil
	case "maint":
		return Maint, nil
	}
	return Ready, fmt.Errorf("unknown admin state %q (want ready, drain or maint)", s)
}

// ErrLastReadyNode is returned (wrapped) by Node.SetAdminState when draining
// the node or putting it in maintenance would leave its pool without an
// available node.
var ErrLastReadyNode = errors.New("it is the last available node of its pool (use force to override)")

// PoolSpec is the health configuration of one pool.
type PoolSpec struct {
	// Check configures active checks; nil (or an empty Path) means none.
	// Zero fields get the defaults documented in config.HealthCheck.
	Check *config.HealthCheck
	// Passive configures outlier detection; ConsecutiveFailures 0 is off.
	// A zero EjectionTime means 10s and a zero MaxEjectionTime 5m.
	Passive config.Passive
	// SlowStart ramps a node that becomes available from 10% to full
	// share over this period; 0 is off.
	SlowStart time.Duration
	// TLS, when set, makes checks speak HTTPS with this configuration
	// (ServerName defaults to the node's host).
	TLS *tls.Config
	// TLSID identifies TLS for change detection: checks are redone at once
	// when it changes, not when only the pointer does.
	TLSID string
}

// NodeSpec names one node of a pool. An empty Name means the address.
type NodeSpec struct{ Name, Address string }

// Status is a JSON-ready snapshot of a node's state, for the admin API.
// Times are absolute; durations in CheckResult are in milliseconds.
type Status struct {
	// Name and Address identify the node.
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is "up", "down", "draining" or "maint"; the operator's states
	// win over up and down.
	State string `json:"state"`
	// Health is the active-check state: "up", "down", or "unchecked" when
	// the pool has no active checks. An ejection with active checks also
	// marks health down.
	Health string `json:"health"`
	// Reason says why the node is in its state, e.g. "3 failed checks:
	// status 503" or "drained by operator (lease 42s left)"; empty when up.
	Reason string `json:"reason,omitempty"`
	// LastCheck is the last active check's result; nil when never checked.
	LastCheck *CheckResult `json:"last_check,omitempty"`
	// ConsecutiveOK and ConsecutiveFail count the active checks passed and
	// failed in a row.
	ConsecutiveOK   int `json:"consecutive_ok"`
	ConsecutiveFail int `json:"consecutive_fail"`
	// PassiveFailures counts live requests failed in a row (reset by a
	// success and by an ejection).
	PassiveFailures int `json:"passive_failures"`
	// EjectedUntil is set while the node is ejected.
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	// Ejections is the ejection count that doubles the ejection time; it
	// goes back to 0 after a quiet MaxEjectionTime.
	Ejections int `json:"ejections"`
	// AdminState is "ready", "drain" or "maint" (an expired lease reads
	// as "ready").
	AdminState string `json:"admin_state"`
	// LeaseExpires is when a drain or maintenance with a TTL ends.
	LeaseExpires *time.Time `json:"lease_expires,omitempty"`
	// WeightOverride is the operator's weight, 0 when none.
	WeightOverride int `json:"weight_override"`
	// SlowStartFactor is the node's current traffic share factor, (0,1].
	SlowStartFactor float64 `json:"slow_start_factor"`
}

// Node states as reported by Status.State and the edge_health_node_state
// metric.
const (
	stateUp       = "up"
	stateDown     = "down"
	stateDraining = "draining"
	stateMaint    = "maint"
)

// nodeStates lists every Status.State value, in metric order.
var nodeStates = [...]string{stateUp, stateDown, stateDraining, stateMaint}

// monoEpoch anchors the monotonic clock of the package: every deadline is
// stored as nanoseconds since monoEpoch, read with time.Since (monotonic,
// immune to wall-clock steps, and allocation-free).
var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }

// monoTime converts a monotonic nanosecond stamp back to a wall time.
func monoTime(ns int64) time.Time { return monoEpoch.Add(time.Duration(ns)).Round(0) }

// The admin word packs an AdminState (low 2 bits) with a signed monotonic
// time (the rest): for Ready, the time the node became ready (the
// slow-start clock); for Drain and Maint, the lease deadline, or 0 for no
// lease. One atomic word keeps state and lease consistent for lock-free
// readers.
const adminMask = 3

func packAdmin(s AdminState, ts int64) uint64 { return uint64(ts<<2) | uint64(s) }

// adminTime returns the time of an admin word.
func adminTime(a uint64) int64 { return int64(a) >> 2 }

// longAgo is a monotonic time far in the past: the slow-start clock of
// nodes that need no ramp.
const longAgo = -(1 << 60)

// effectiveAdmin decodes an admin word at time now: an expired lease reads
// as Ready since the lease deadline. ts is the ready-since time for Ready,
// and the lease deadline (0: none) otherwise.
func effectiveAdmin(a uint64, now int64) (s AdminState, ts int64) {
	s, ts = AdminState(a&adminMask), adminTime(a)
	if s != Ready && ts != 0 && now >= ts {
		s = Ready
	}
	return s, ts
}

// Registry holds the state of every node of every pool. All methods are
// safe for concurrent use.
type Registry struct {
	log *slog.Logger
	m   *healthMetrics

	mu     sync.Mutex // guards pools and closed; taken before any pool's mu
	pools  map[string]*poolState
	closed bool

	wg sync.WaitGroup // running checkers
}

// poolState is one pool's nodes and configuration.
type poolState struct {
	name string
	r    *Registry
	cfg  atomic.Pointer[poolConfig]

	// mu guards the fields below and serialises decisions about the whole
	// pool (ejection, drain of the last node). Taken before a node's mu.
	mu     sync.Mutex
	nodes  []*Node          // distinct nodes, in Sync order
	byAddr map[string]*Node // by address
	byName map[string]*Node // by name (first node wins on duplicates)
}

// poolConfig is a pool's PoolSpec with defaults applied; immutable.
type poolConfig struct {
	check       *checkSpec // nil: no active checks
	failures    int32      // passive threshold; 0 off
	ejection    time.Duration
	maxEjection time.Duration
	slowStart   int64 // nanoseconds; 0 off
}

// Default passive ejection times, used for zero values.
const (
	defaultEjectionTime    = 10 * time.Second
	defaultMaxEjectionTime = 5 * time.Minute
)

// Node is one node's health and runtime state. A *Node stays valid after it
// is forgotten (its checker stops and its state freezes), so a snapshot that
// still holds it keeps working. All methods are safe for concurrent use.
type Node struct {
	key  Key
	p    *poolState
	name atomic.Pointer[string]

	// Read on the hot path: atomics only.
	healthDown   atomic.Bool
	ejectedUntil atomic.Int64  // monotonic ns; in the past (or 0) when not ejected
	admin        atomic.Uint64 // see packAdmin
	upSince      atomic.Int64  // monotonic ns when health last went up
	weight       atomic.Int32  // operator override; 0 none
	passiveFails atomic.Int32  // consecutive failed live requests

	mu          sync.Mutex // guards the fields below
	gone        bool       // forgotten: record no more metrics
	fresh       bool       // the next check result decides health at once
	checkOK     int
	checkFail   int
	last        *CheckResult
	downReason  string
	ejections   int
	ejectReason string
	lastEjEnd   int64 // monotonic ns when the last ejection ended (or ends)
	refusedLog  int64 // monotonic ns of the last "not ejected" warning
	checker     *nodeChecker
}

// NewRegistry returns an empty registry. Its metrics are registered on reg
// (nil: not registered); log receives state transitions (nil: discarded).
func NewRegistry(reg prometheus.Registerer, log *slog.Logger) (*Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{log: log, pools: make(map[string]*poolState)}
	m, err := newHealthMetrics(r, reg)
	if err != nil {
		return nil, err
	}
	r.m = m
	return r, nil
}

// Sync declares the complete node list of a pool. It is called at start, on
// every reload, and when DNS discovery changes the list, and returns one
// *Node per spec, in order (a repeated address gets the same *Node).
//
// A node whose address the pool already has keeps its whole state (health,
// counters, ejection, admin state, lease, weight override, slow-start
// clock), and takes the new name if it was renamed. New nodes are created
// "unchecked-up": available at once, with their first check run
// immediately, whose result decides their health; nodes added to a pool
// that already existed start their slow-start ramp, while the nodes of a
// pool's first Sync start at full share. Nodes of the pool not in the list
// are forgotten and their checkers stop.
//
// When the pool's check definition (method, path, host, port, timeout,
// expected status and body) changed, every node is probed at once and that
// probe decides its health, as for a new node; a change of interval, rise
// or fall alone is applied without resetting anything (a changed interval
// triggers one immediate check). Invalid expect_status entries are logged
// and never match.
//
// Sync never blocks on I/O.
func (r *Registry) Sync(pool string, spec PoolSpec, nodes []NodeSpec) []*Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pools[pool]
	newPool := p == nil
	if newPool {
		p = &poolState{name: pool, r: r, byAddr: map[string]*Node{}, byName: map[string]*Node{}}
		r.pools[pool] = p
	}
	p.mu.Lock()
	defer p.mu.Unlock()

	old := p.cfg.Load()
	cfg := &poolConfig{
		failures:    int32(max(spec.Passive.ConsecutiveFailures, 0)),
		ejection:    spec.Passive.EjectionTime.D(),
		maxEjection: spec.Passive.MaxEjectionTime.D(),
		slowStart:   int64(max(spec.SlowStart, 0)),
	}
	if cfg.ejection <= 0 {
		cfg.ejection = defaultEjectionTime
	}
	if cfg.maxEjection <= 0 {
		cfg.maxEjection = defaultMaxEjectionTime
	}
	var probeChanged, timingChanged bool
	if spec.Check != nil && spec.Check.Path != "" {
		cs, err := newCheckSpec(spec.Check, spec.TLS, spec.TLSID)
		if old != nil && old.check != nil && old.check.probe.equal(cs.probe) {
			cs.probe = old.check.probe // keep in-flight probes valid
			timingChanged = old.check.interval != cs.interval
		} else {
			probeChanged = true
			if err != nil {
				r.log.Warn("health check: ignoring invalid settings", "pool", pool, "error", err)
			}
		}
		cfg.check = cs
	}
	p.cfg.Store(cfg)

	now := monoNow()
	out := make([]*Node, len(nodes))
	byAddr := make(map[string]*Node, len(nodes))
	list := make([]*Node, 0, len(nodes))
	created := make(map[*Node]bool)
	type rename struct {
		n   *Node
		old string
	}
	var renamed []rename
	for i, ns := range nodes {
		if n := byAddr[ns.Address]; n != nil {
			out[i] = n
			continue
		}
		name := ns.Name
		if name == "" {
			name = ns.Address
		}
		n := p.byAddr[ns.Address]
		switch {
		case n == nil:
			n = newNode(p, ns.Address, name, now, newPool)
			created[n] = true
		case n.Name() != name:
			renamed = append(renamed, rename{n, n.Name()})
			n.mu.Lock()
			n.name.Store(&name)
			n.mu.Unlock()
		}
		byAddr[ns.Address] = n
		list = append(list, n)
		out[i] = n
	}
	var forgotten []*Node
	for addr, n := range p.byAddr {
		if byAddr[addr] == nil {
			forgotten = append(forgotten, n)
		}
	}
	byName := make(map[string]*Node, len(list))
	for _, n := range list {
		if _, dup := byName[n.Name()]; !dup {
			byName[n.Name()] = n
		}
	}
	p.nodes, p.byAddr, p.byName = list, byAddr, byName

	for _, n := range forgotten {
		name := n.forget()
		if byName[name] == nil {
			r.m.forget(pool, name)
		}
	}
	for _, rn := range renamed {
		if byName[rn.old] == nil {
			r.m.forget(pool, rn.old)
		}
	}
	for _, n := range list {
		n.syncChecks(cfg, created[n], probeChanged, timingChanged, r.closed)
	}
	return out
}

// newNode returns a ready, health-up node. Its slow-start clock starts now,
// unless it is a member of a new pool: like HAProxy, slow start never
// applies when a pool starts (at process start, or when a reload adds the
// pool), where it would only hold back every node at once.
func newNode(p *poolState, addr, name string, now int64, newPool bool) *Node {
	n := &Node{key: Key{Pool: p.name, Address: addr}, p: p}
	n.name.Store(&name)
	since := now
	if newPool {
		since = longAgo
	}
	n.upSince.Store(since)
	n.admin.Store(packAdmin(Ready, since))
	return n
}

// forget stops the node's checker and its metrics; it returns its name.
// Called with p.mu held.
func (n *Node) forget() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gone = true
	if n.checker != nil {
		n.checker.cancel()
		n.checker = nil
	}
	return n.Name()
}

// syncChecks applies a pool's (new) configuration to the node's checker.
// Called with r.mu and p.mu held.
func (n *Node) syncChecks(cfg *poolConfig, created, probeChanged, timingChanged, closed bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.p.r.m
	if cfg.failures > 0 {
		m.initEjections(n.key.Pool, n.Name())
	}
	if cfg.check == nil {
		if n.checker != nil {
			n.checker.cancel()
			n.checker = nil
		}
		n.fresh, n.checkOK, n.checkFail, n.last = false, 0, 0, nil
		if n.healthDown.Load() {
			n.markUp(monoNow(), "active checks removed")
		}
		return
	}
	m.initChecks(n.key.Pool, n.Name())
	if created || probeChanged || n.checker == nil {
		n.fresh, n.checkOK, n.checkFail = true, 0, 0
	}
	switch {
	case n.checker == nil && !closed:
		n.startChecker()
	case n.checker != nil && (probeChanged || timingChanged):
		n.checker.poke()
	}
}

// Retain forgets every pool not named (after a reload removed pools).
func (r *Registry) Retain(pools []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, p := range r.pools {
		if slices.Contains(pools, name) {
			continue
		}
		p.mu.Lock()
		for _, n := range p.nodes {
			n.forget()
		}
		p.nodes, p.byAddr, p.byName = nil, map[string]*Node{}, map[string]*Node{}
		p.mu.Unlock()
		delete(r.pools, name)
		r.m.forgetPool(name)
	}
}

// Node returns the node of a pool by node name, or nil.
func (r *Registry) Node(pool, name string) *Node {
	r.mu.Lock()
	p := r.pools[pool]
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byName[name]
}

// Pools returns the names of the known pools, sorted.
func (r *Registry) Pools() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.pools))
	for name := range r.pools {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Nodes returns a pool's distinct nodes in Sync order (nil for an unknown
// pool).
func (r *Registry) Nodes(pool string) []*Node {
	r.mu.Lock()
	p := r.pools[pool]
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.nodes)
}

// Close stops every checker and waits for them to return. Nodes keep
// working (frozen health); later Syncs start no checkers.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	for _, p := range r.pools {
		p.mu.Lock()
		for _, n := range p.nodes {
			n.mu.Lock()
			if n.checker != nil {
				n.checker.cancel()
				n.checker = nil
			}
			n.mu.Unlock()
		}
		p.mu.Unlock()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Key returns the node's pool and address.
func (n *Node) Key() Key { return n.key }

// Name returns the node's name (it may change when Sync renames it).
func (n *Node) Name() string { return *n.name.Load() }

// Available reports whether the node may get new requests now: health up,
// not ejected, and admin state Ready (an expired lease counts as Ready).
// Atomics only, no locks, no allocation.
func (n *Node) Available() bool {
	if n.healthDown.Load() {
		return false
	}
	a := n.admin.Load()
	eu := n.ejectedUntil.Load()
	if a&adminMask == 0 && eu == 0 {
		return true
	}
	return n.availableAt(a, eu, monoNow())
}

func (n *Node) availableAt(a uint64, eu, now int64) bool {
	if now < eu {
		return false
	}
	s, _ := effectiveAdmin(a, now)
	return s == Ready
}

// availableNow is Available with a given clock, for pool decisions.
func (n *Node) availableNow(now int64) bool {
	return !n.healthDown.Load() && n.availableAt(n.admin.Load(), n.ejectedUntil.Load(), now)
}

// AdminState returns the operator's state of the node; an expired lease
// reads as Ready. Atomics only.
func (n *Node) AdminState() AdminState {
	a := n.admin.Load()
	if a&adminMask == 0 {
		return Ready
	}
	s, _ := effectiveAdmin(a, monoNow())
	return s
}

// SlowStartFactor returns the node's share factor in (0,1]: 0.1 +
// 0.9·elapsed/slowStart while the node is within the pool's slow-start
// period of becoming available (being added to an existing pool, health
// going up, an ejection ending, an operator or lease making it ready), else
// 1. It is 1 when the pool has no slow start, and for the nodes a pool
// starts with (see Sync). Atomics only.
func (n *Node) SlowStartFactor() float64 {
	ss := n.p.cfg.Load().slowStart
	if ss <= 0 {
		return 1
	}
	return slowStartFactor(n.availableSince(), monoNow(), ss)
}

// availableSince is the last time the node became available (when it is):
// the latest of health up, ejection end and becoming ready.
func (n *Node) availableSince() int64 {
	since := n.upSince.Load()
	if eu := n.ejectedUntil.Load(); eu > since {
		since = eu
	}
	if ts := adminTime(n.admin.Load()); ts > since {
		since = ts // ready since, or the lease deadline (the time it ends)
	}
	return since
}

func slowStartFactor(since, now, ss int64) float64 {
	el := now - since
	if el >= ss {
		return 1
	}
	if el < 0 {
		el = 0
	}
	return 0.1 + 0.9*float64(el)/float64(ss)
}

// ReportSuccess records a successful live request: it resets the
// consecutive failure count. Atomics only.
func (n *Node) ReportSuccess() {
	if n.passiveFails.Load() != 0 {
		n.passiveFails.Store(0)
	}
}

// ReportFailure records a failed live request (connect failure, timeout or
// 5xx). When the pool's consecutive failure threshold is reached the node is
// ejected, unless no other node of the pool is available. Atomics only,
// except for a short pool lock each time the count reaches a multiple of
// the threshold.
func (n *Node) ReportFailure() {
	thr := n.p.cfg.Load().failures
	if thr <= 0 {
		return
	}
	if c := n.passiveFails.Add(1); c%thr == 0 {
		n.p.eject(n)
	}
}

// eject decides and applies an ejection of n.
func (p *poolState) eject(n *Node) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg := p.cfg.Load()
	fails := n.passiveFails.Load()
	if cfg.failures <= 0 || fails < cfg.failures {
		return // a success came in between
	}
	now := monoNow()
	if now < n.ejectedUntil.Load() {
		n.passiveFails.Store(0) // failures of requests sent before the ejection
		return
	}
	if n.availableNow(now) && !p.othersAvailable(n, now) {
		n.mu.Lock()
		warn := n.refusedLog == 0 || now-n.refusedLog >= int64(cfg.ejection)
		if warn {
			n.refusedLog = now
		}
		n.mu.Unlock()
		if warn {
			p.r.log.Warn("node not ejected: it is the last available node of its pool",
				"pool", p.name, "node", n.Name(), "consecutive_failures", fails)
		}
		return
	}

	n.mu.Lock()
	if n.ejections > 0 && now-n.lastEjEnd > int64(cfg.maxEjection) {
		n.ejections = 0
	}
	n.ejections++
	d := ejectionTime(cfg.ejection, cfg.maxEjection, n.ejections)
	until := now + int64(d)
	n.ejectedUntil.Store(until)
	n.lastEjEnd = until
	n.ejectReason = countNoun(int(fails), "consecutive failure")
	n.passiveFails.Store(0)
	if cfg.check != nil {
		// Come back only through Rise passing checks (which end the
		// ejection early; see endEjection).
		n.fresh, n.checkOK = false, 0
		n.markDown("ejected: " + n.ejectReason)
	}
	if !n.gone {
		p.r.m.ejected(p.name, n.Name())
	}
	count := n.ejections
	n.mu.Unlock()
	p.r.log.Info("node ejected", "pool", p.name, "node", n.Name(),
		"reason", countNoun(int(fails), "consecutive failure"), "duration", d, "ejections", count)
}

// othersAvailable reports whether a node of the pool other than n is
// available. Called with p.mu held.
func (p *poolState) othersAvailable(n *Node, now int64) bool {
	for _, o := range p.nodes {
		if o != n && o.availableNow(now) {
			return true
		}
	}
	return false
}

// ejectionTime is base·2^(k-1), capped at maxTime.
func ejectionTime(base, maxTime time.Duration, k int) time.Duration {
	d := base
	for i := 1; i < k && d < maxTime; i++ {
		d *= 2
	}
	return min(d, maxTime)
}

// endEjection ends a passive ejection early. Called with n.mu held.
func (n *Node) endEjection(now int64) {
	if eu := n.ejectedUntil.Load(); eu > now {
		n.ejectedUntil.Store(0)
		n.lastEjEnd = now
	}
}

// markUp sets health up. Called with n.mu held.
func (n *Node) markUp(now int64, reason string) {
	if !n.healthDown.Load() {
		return
	}
	n.upSince.Store(now) // before healthDown, for SlowStartFactor readers
	n.healthDown.Store(false)
	n.downReason = ""
	r := n.p.r
	if !n.gone {
		r.m.transition(n.key.Pool, n.Name(), stateUp)
	}
	args := []any{"pool", n.key.Pool, "node", n.Name(), "reason", reason}
	if eu := n.ejectedUntil.Load(); now < eu {
		args = append(args, "ejected_for", time.Duration(eu-now).Round(time.Millisecond))
	}
	r.log.Info("node up", args...)
}

// markDown sets health down with a reason. Called with n.mu held.
func (n *Node) markDown(reason string) {
	n.downReason = reason
	if n.healthDown.Swap(true) {
		return
	}
	r := n.p.r
	if !n.gone {
		r.m.transition(n.key.Pool, n.Name(), stateDown)
	}
	r.log.Info("node down", "pool", n.key.Pool, "node", n.Name(), "reason", reason)
}

// SetAdminState sets the operator's state. With ttl > 0 a drain or
// maintenance is a lease: when it expires the node returns to Ready by
// itself, so a crashed deploy cannot leave a node out forever (ttl is
// ignored for Ready). Drain or Maint on the last available node of the pool
// returns an error wrapping ErrLastReadyNode unless force is set. Setting
// Ready on a ready node changes nothing (its slow-start clock keeps
// running); leaving Maint runs a check at once, which decides health.
func (n *Node) SetAdminState(s AdminState, ttl time.Duration, force bool) error {
	if s > Maint {
		return fmt.Errorf("set admin state of node %s of pool %s: unknown state %d", n.Name(), n.key.Pool, s)
	}
	if ttl < 0 {
		return fmt.Errorf("set admin state of node %s of pool %s: negative ttl %v", n.Name(), n.key.Pool, ttl)
	}
	p := n.p
	p.mu.Lock()
	defer p.mu.Unlock()
	now := monoNow()
	if s != Ready && !force && n.availableNow(now) && !p.othersAvailable(n, now) {
		return fmt.Errorf("set node %s of pool %s to %s: %w", n.Name(), p.name, s, ErrLastReadyNode)
	}
	n.mu.Lock()
	prev, _ := effectiveAdmin(n.admin.Load(), now)
	switch {
	case s == Ready && prev == Ready:
		n.mu.Unlock()
		return nil
	case s == Ready:
		n.admin.Store(packAdmin(Ready, now))
	default:
		var lease int64
		if ttl > 0 {
			lease = now + int64(ttl)
		}
		n.admin.Store(packAdmin(s, lease))
	}
	if prev == Maint && s != Maint && n.checker != nil {
		n.checker.poke()
	}
	n.mu.Unlock()
	args := []any{"pool", p.name, "node", n.Name(), "state", s.String(), "previous", prev.String()}
	if ttl > 0 && s != Ready {
		args = append(args, "lease", ttl)
	}
	p.r.log.Info("node admin state set", args...)
	return nil
}

// Weight limits of SetWeight.
const (
	minWeightOverride = 1
	maxWeightOverride = 1000
)

// SetWeight sets a runtime weight override, 1 to 1000; 0 clears it.
func (n *Node) SetWeight(w int) error {
	if w != 0 && (w < minWeightOverride || w > maxWeightOverride) {
		return fmt.Errorf("set weight of node %s of pool %s: %d is out of range %d..%d (0 clears the override)",
			n.Name(), n.key.Pool, w, minWeightOverride, maxWeightOverride)
	}
	if old := n.weight.Swap(int32(w)); int(old) != w {
		n.p.r.log.Info("node weight override set", "pool", n.key.Pool, "node", n.Name(), "weight", w, "previous", old)
	}
	return nil
}

// Weight returns the operator's weight override, or configured when there
// is none.
func (n *Node) Weight(configured int) int {
	if w := n.weight.Load(); w > 0 {
		return int(w)
	}
	return configured
}

// state returns the node's Status.State at time now.
func (n *Node) state(now int64) string {
	switch s, _ := effectiveAdmin(n.admin.Load(), now); s {
	case Maint:
		return stateMaint
	case Drain:
		return stateDraining
	}
	if n.healthDown.Load() || now < n.ejectedUntil.Load() {
		return stateDown
	}
	return stateUp
}

// Status returns a JSON-ready snapshot of the node's state.
func (n *Node) Status() Status {
	now := monoNow()
	cfg := n.p.cfg.Load()
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{
		Name:            n.Name(),
		Address:         n.key.Address,
		State:           n.state(now),
		ConsecutiveOK:   n.checkOK,
		ConsecutiveFail: n.checkFail,
		PassiveFailures: int(n.passiveFails.Load()),
		Ejections:       n.ejections,
		WeightOverride:  int(n.weight.Load()),
		SlowStartFactor: 1,
	}
	if cfg.slowStart > 0 {
		st.SlowStartFactor = slowStartFactor(n.availableSince(), now, cfg.slowStart)
	}
	switch {
	case cfg.check == nil:
		st.Health = "unchecked"
	case n.healthDown.Load():
		st.Health = stateDown
	default:
		st.Health = stateUp
	}
	if n.last != nil {
		lc := *n.last
		st.LastCheck = &lc
	}
	admin, ts := effectiveAdmin(n.admin.Load(), now)
	st.AdminState = admin.String()
	lease := ""
	if admin != Ready && ts != 0 {
		t := monoTime(ts)
		st.LeaseExpires = &t
		lease = fmt.Sprintf(" (lease %s left)", roundLeft(time.Duration(ts-now)))
	}
	eu := n.ejectedUntil.Load()
	if now < eu {
		t := monoTime(eu)
		st.EjectedUntil = &t
	}
	if st.Ejections > 0 && now-n.lastEjEnd > int64(cfg.maxEjection) {
		st.Ejections = 0 // the next ejection starts over
	}
	switch {
	case admin == Maint:
		st.Reason = "in maintenance by operator" + lease
	case admin == Drain:
		st.Reason = "drained by operator" + lease
	case now < eu:
		st.Reason = fmt.Sprintf("ejected: %s (%s left)", n.ejectReason, roundLeft(time.Duration(eu-now)))
	case cfg.check != nil && n.healthDown.Load():
		st.Reason = n.downReason
		if n.checkOK > 0 {
			st.Reason += fmt.Sprintf(" (%d of %d checks to rise passed)", n.checkOK, cfg.check.rise)
		}
	case cfg.check != nil && n.fresh && n.last == nil:
		st.Reason = "not checked yet"
	}
	return st
}

// roundLeft rounds a remaining time for display.
func roundLeft(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
