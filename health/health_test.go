package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/edge-router/edge/config"
)

// newTestRegistry returns a registry on a fresh Prometheus registry, closed
// when the test ends.
func newTestRegistry(t *testing.T) (*Registry, *prometheus.Registry) {
	t.Helper()
	preg := prometheus.NewRegistry()
	r, err := NewRegistry(preg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	t.Cleanup(r.Close)
	return r, preg
}

// testPassive returns a Passive with every field set.
func testPassive(failures int, ejection, maxEjection time.Duration) config.Passive {
	return config.Passive{
		ConsecutiveFailures: failures,
		EjectionTime:        config.Duration(ejection),
		MaxEjectionTime:     config.Duration(maxEjection),
	}
}

// noPassive is passive detection turned off.
var noPassive = testPassive(0, 10*time.Second, 5*time.Minute)

// nodeSpecs returns nodes named a, b, c… at fake addresses 127.0.0.1:1…
// (active checks reach them through HealthCheck.Port).
func nodeSpecs(n int) []NodeSpec {
	specs := make([]NodeSpec, n)
	for i := range specs {
		specs[i] = NodeSpec{Name: string(rune('a' + i)), Address: fmt.Sprintf("127.0.0.1:%d", i+1)}
	}
	return specs
}

// waitFor polls cond every millisecond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// reportFailures reports k failed requests.
func reportFailures(n *Node, k int) {
	for range k {
		n.ReportFailure()
	}
}

func TestAdminStateStringAndParse(t *testing.T) {
	for _, s := range []AdminState{Ready, Drain, Maint} {
		got, err := ParseAdminState(strings.ToUpper(s.String()))
		if err != nil || got != s {
			t.Errorf("ParseAdminState(%q) = %v, %v; want %v", s.String(), got, err, s)
		}
	}
	if _, err := ParseAdminState("draining"); err == nil {
		t.Error(`ParseAdminState("draining") succeeded; want an error`)
	}
	if got := AdminState(9).String(); got != "AdminState(9)" {
		t.Errorf("AdminState(9).String() = %q", got)
	}
}

func TestSyncNodesLookupRetain(t *testing.T) {
	r, _ := newTestRegistry(t)
	spec := PoolSpec{Passive: noPassive}
	nodes := r.Sync("web", spec, []NodeSpec{
		{Name: "a", Address: "10.0.0.1:80"},
		{Name: "", Address: "10.0.0.2:80"},
		{Name: "a-again", Address: "10.0.0.1:80"}, // same address: same node
	})
	if len(nodes) != 3 || nodes[0] != nodes[2] || nodes[0] == nodes[1] {
		t.Fatalf("Sync returned %v; want 3 entries, the 1st and 3rd the same node", nodes)
	}
	if got := nodes[1].Name(); got != "10.0.0.2:80" {
		t.Errorf("default name = %q; want the address", got)
	}
	if got := nodes[0].Key(); got != (Key{Pool: "web", Address: "10.0.0.1:80"}) {
		t.Errorf("Key() = %+v", got)
	}
	if got := r.Node("web", "a"); got != nodes[0] {
		t.Errorf("Node(web, a) = %v; want %v", got, nodes[0])
	}
	if r.Node("web", "zz") != nil || r.Node("nope", "a") != nil {
		t.Error("Node of an unknown node or pool is not nil")
	}
	if got := r.Nodes("web"); !slices.Equal(got, nodes[:2]) {
		t.Errorf("Nodes(web) = %v; want %v", got, nodes[:2])
	}
	r.Sync("api", spec, nodeSpecs(1))
	if got := r.Pools(); !slices.Equal(got, []string{"api", "web"}) {
		t.Errorf("Pools() = %v", got)
	}

	// A rename keeps the node and its state.
	if err := nodes[1].SetWeight(9); err != nil {
		t.Fatal(err)
	}
	again := r.Sync("web", spec, []NodeSpec{{Name: "b", Address: "10.0.0.2:80"}})
	if again[0] != nodes[1] || again[0].Name() != "b" || again[0].Weight(1) != 9 {
		t.Errorf("renamed node: %v name %q weight %d; want the same node, b, 9", again[0], again[0].Name(), again[0].Weight(1))
	}
	if r.Node("web", "a") != nil || r.Node("web", "b") != nodes[1] {
		t.Error("lookup by name not updated after Sync")
	}
	// A forgotten and re-added address is a new node.
	back := r.Sync("web", spec, []NodeSpec{{Name: "a", Address: "10.0.0.1:80"}})
	if back[0] == nodes[0] {
		t.Error("a node removed and added again kept its old state")
	}

	r.Retain([]string{"api"})
	if got := r.Pools(); !slices.Equal(got, []string{"api"}) {
		t.Errorf("Pools() after Retain = %v", got)
	}
	if r.Nodes("web") != nil {
		t.Error("Nodes of a removed pool is not nil")
	}
}

func TestPassiveEjectionAndExpiry(t *testing.T) {
	r, _ := newTestRegistry(t)
	nodes := r.Sync("web", PoolSpec{Passive: testPassive(3, 50*time.Millisecond, time.Second)}, nodeSpecs(3))
	a := nodes[0]

	reportFailures(a, 2)
	if !a.Available() {
		t.Fatal("ejected before the threshold")
	}
	a.ReportSuccess() // resets the count
	reportFailures(a, 2)
	if !a.Available() {
		t.Fatal("a success did not reset the consecutive failure count")
	}
	if st := a.Status(); st.PassiveFailures != 2 {
		t.Errorf("PassiveFailures = %d; want 2", st.PassiveFailures)
	}

	start := time.Now()
	a.ReportFailure()
	if a.Available() {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	st := a.Status()
	if st.State != "down" || st.Health != "unchecked" || st.EjectedUntil == nil || st.Ejections != 1 ||
		!strings.HasPrefix(st.Reason, "ejected: 3 consecutive failures") || st.PassiveFailures != 0 {
		t.Errorf("status after ejection = %+v", st)
	}
	waitFor(t, time.Second, "the ejection to expire", a.Available)
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Errorf("back after %v; want at least the 50ms ejection time", el)
	}
	if st := a.Status(); st.State != "up" || st.EjectedUntil != nil || st.Reason != "" {
		t.Errorf("status after the ejection = %+v", st)
	}

	// Passive detection off: nothing counts.
	r.Sync("web", PoolSpec{Passive: noPassive}, nodeSpecs(3))
	reportFailures(a, 50)
	if !a.Available() || a.Status().PassiveFailures != 0 {
		t.Errorf("failures counted with passive detection off: %+v", a.Status())
	}
}

// expireEjection ends a node's ejection as if it had ended ago.
func expireEjection(n *Node, ago time.Duration) {
	n.p.mu.Lock()
	n.mu.Lock()
	end := monoNow() - int64(ago)
	n.ejectedUntil.Store(end)
	n.lastEjEnd = end
	n.mu.Unlock()
	n.p.mu.Unlock()
}

func TestPassiveEjectionBackoff(t *testing.T) {
	const base, maxEj = 10 * time.Second, 35 * time.Second
	r, _ := newTestRegistry(t)
	nodes := r.Sync("web", PoolSpec{Passive: testPassive(3, base, maxEj)}, nodeSpecs(3))
	a := nodes[0]
	eject := func() time.Duration {
		t.Helper()
		before := monoNow()
		reportFailures(a, 3)
		if a.Available() {
			t.Fatal("not ejected")
		}
		return time.Duration(a.ejectedUntil.Load() - before)
	}
	for i, want := range []time.Duration{base, 2 * base, maxEj, maxEj} {
		got := eject()
		if got < want || got > want+time.Second {
			t.Errorf("ejection %d lasts %v; want %v", i+1, got, want)
		}
		if n := a.Status().Ejections; n != i+1 {
			t.Errorf("Ejections = %d; want %d", n, i+1)
		}
		expireEjection(a, maxEj-time.Second) // just within MaxEjectionTime
		if !a.Available() {
			t.Fatal("not available after the ejection ended")
		}
	}
	// More than MaxEjectionTime after the last ejection ended: back to base.
	expireEjection(a, maxEj+time.Second)
	if got := eject(); got < base || got > base+time.Second {
		t.Errorf("ejection after a quiet period lasts %v; want %v", got, base)
	}
	if n := a.Status().Ejections; n != 1 {
		t.Errorf("Ejections after a quiet period = %d; want 1", n)
	}
}

func TestPassiveNeverEjectsLastAvailableNode(t *testing.T) {
	r, _ := newTestRegistry(t)
	nodes := r.Sync("web", PoolSpec{Passive: testPassive(3, time.Minute, time.Hour)}, nodeSpecs(3))
	a, b, c := nodes[0], nodes[1], nodes[2]
	reportFailures(a, 3)
	reportFailures(b, 3)
	if a.Available() || b.Available() {
		t.Fatal("two of three nodes were not ejected")
	}
	reportFailures(c, 30)
	if !c.Available() {
		t.Fatal("the last available node was ejected")
	}
	if st := c.Status(); st.Ejections != 0 || st.PassiveFailures != 30 {
		t.Errorf("last node status = %+v", st)
	}
	// A node that is not available itself may be ejected even when no
	// other node is available.
	if err := c.SetAdminState(Drain, 0, true); err != nil {
		t.Fatal(err)
	}
	reportFailures(c, 3)
	if c.Status().EjectedUntil == nil {
		t.Error("a drained node was not ejected")
	}
}

func TestAdminDrainMaintLease(t *testing.T) {
	r, _ := newTestRegistry(t)
	nodes := r.Sync("web", PoolSpec{Passive: noPassive}, nodeSpecs(2))
	a, b := nodes[0], nodes[1]

	if err := a.SetAdminState(Drain, 0, false); err != nil {
		t.Fatalf("drain a: %v", err)
	}
	if a.Available() || a.AdminState() != Drain {
		t.Error("drained node is available")
	}
	if st := a.Status(); st.State != "draining" || st.AdminState != "drain" || st.Reason != "drained by operator" || st.LeaseExpires != nil {
		t.Errorf("drained status = %+v", st)
	}

	// b is now the last available node.
	for _, s := range []AdminState{Drain, Maint} {
		err := b.SetAdminState(s, 0, false)
		if !errors.Is(err, ErrLastReadyNode) {
			t.Errorf("%v of the last available node: err = %v; want ErrLastReadyNode", s, err)
		}
		if err != nil && !strings.Contains(err.Error(), "node b of pool web") {
			t.Errorf("error lacks context: %v", err)
		}
	}
	if !b.Available() {
		t.Fatal("refused drain changed the node")
	}
	if err := b.SetAdminState(Maint, 0, true); err != nil {
		t.Fatalf("forced maint: %v", err)
	}
	if b.Available() || b.Status().State != "maint" {
		t.Errorf("forced maint: %+v", b.Status())
	}
	if err := b.SetAdminState(Ready, 0, false); err != nil || !b.Available() {
		t.Fatalf("ready: %v, available %v", err, b.Available())
	}

	// A lease returns the node to ready by itself.
	if err := a.SetAdminState(Drain, 60*time.Millisecond, false); err != nil {
		t.Fatal(err)
	}
	st := a.Status()
	if st.LeaseExpires == nil || !strings.HasPrefix(st.Reason, "drained by operator (lease ") {
		t.Errorf("status with lease = %+v", st)
	}
	waitFor(t, time.Second, "the lease to expire", a.Available)
	if st := a.Status(); st.AdminState != "ready" || st.State != "up" || st.LeaseExpires != nil || a.AdminState() != Ready {
		t.Errorf("status after the lease = %+v", st)
	}

	if err := a.SetAdminState(AdminState(7), 0, false); err == nil {
		t.Error("unknown state accepted")
	}
	if err := a.SetAdminState(Drain, -time.Second, false); err == nil {
		t.Error("negative ttl accepted")
	}
}

func TestSetWeight(t *testing.T) {
	r, _ := newTestRegistry(t)
	n := r.Sync("web", PoolSpec{Passive: noPassive}, nodeSpecs(1))[0]
	if got := n.Weight(5); got != 5 {
		t.Errorf("Weight(5) without override = %d", got)
	}
	for _, w := range []int{-1, 1001} {
		if err := n.SetWeight(w); err == nil {
			t.Errorf("SetWeight(%d) accepted", w)
		}
	}
	if err := n.SetWeight(1000); err != nil {
		t.Fatal(err)
	}
	if got := n.Weight(5); got != 1000 || n.Status().WeightOverride != 1000 {
		t.Errorf("Weight(5) with override 1000 = %d", got)
	}
	if err := n.SetWeight(0); err != nil || n.Weight(5) != 5 {
		t.Errorf("clearing the override: err %v, weight %d", err, n.Weight(5))
	}
}

func TestSlowStartFactor(t *testing.T) {
	const ss = 300 * time.Millisecond
	r, _ := newTestRegistry(t)
	spec := PoolSpec{Passive: testPassive(1, 30*time.Millisecond, time.Second), SlowStart: ss}
	// The nodes a pool starts with take their full share at once.
	first := r.Sync("web", spec, nodeSpecs(1))[0]
	if f := first.SlowStartFactor(); f != 1 {
		t.Errorf("factor of a node of a new pool = %v; want 1", f)
	}
	// A node added to a running pool ramps up.
	a := r.Sync("web", spec, nodeSpecs(2))[1]
	if f := a.SlowStartFactor(); f < 0.1 || f > 0.5 {
		t.Errorf("factor of a new node = %v; want about 0.1", f)
	}
	if f := first.SlowStartFactor(); f != 1 {
		t.Errorf("factor of an old node = %v; want 1", f)
	}
	prev := a.SlowStartFactor()
	time.Sleep(ss / 6)
	if f := a.SlowStartFactor(); f <= prev || f >= 1 {
		t.Errorf("factor half-way = %v; want between %v and 1", f, prev)
	}
	waitFor(t, time.Second, "the factor to reach 1", func() bool { return a.SlowStartFactor() == 1 })
	if f := a.Status().SlowStartFactor; f != 1 {
		t.Errorf("Status().SlowStartFactor = %v", f)
	}

	// Drained, then ready again: the ramp restarts.
	if err := a.SetAdminState(Drain, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := a.SetAdminState(Ready, 0, false); err != nil {
		t.Fatal(err)
	}
	if f := a.SlowStartFactor(); f > 0.5 {
		t.Errorf("factor after drain and ready = %v; want about 0.1", f)
	}
	waitFor(t, time.Second, "the factor to reach 1", func() bool { return a.SlowStartFactor() == 1 })

	// An ejection's end restarts it too.
	a.ReportFailure()
	waitFor(t, time.Second, "the ejection to expire", a.Available)
	if f := a.SlowStartFactor(); f > 0.5 {
		t.Errorf("factor after an ejection = %v; want about 0.1", f)
	}

	// No slow start: always 1.
	r.Sync("web", PoolSpec{Passive: noPassive}, nodeSpecs(2))
	if f := a.SlowStartFactor(); f != 1 {
		t.Errorf("factor without slow start = %v", f)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	r, _ := newTestRegistry(t)
	nodes := r.Sync("web", PoolSpec{Passive: testPassive(1000000, time.Minute, time.Hour), SlowStart: time.Minute}, nodeSpecs(3))
	a, b := nodes[0], nodes[1]
	if err := b.SetAdminState(Drain, time.Hour, false); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b} {
		for name, f := range map[string]func(){
			"Available":       func() { n.Available() },
			"SlowStartFactor": func() { n.SlowStartFactor() },
			"AdminState":      func() { n.AdminState() },
			"ReportSuccess":   func() { n.ReportSuccess() },
			"ReportFailure":   func() { n.ReportFailure() },
			"Weight":          func() { n.Weight(3) },
		} {
			if allocs := testing.AllocsPerRun(1000, f); allocs != 0 {
				t.Errorf("%s of node %s allocates %v times", name, n.Name(), allocs)
			}
		}
	}
}

func TestStatusJSON(t *testing.T) {
	r, _ := newTestRegistry(t)
	n := r.Sync("web", PoolSpec{Passive: noPassive}, nodeSpecs(2))[0]
	if err := n.SetAdminState(Drain, time.Minute, false); err != nil {
		t.Fatal(err)
	}
	st := n.Status()
	st.LastCheck = &CheckResult{Time: time.Now(), Status: 503, Latency: 1500 * time.Microsecond, Error: "status 503"}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "address", "state", "health", "reason", "last_check", "consecutive_ok",
		"consecutive_fail", "passive_failures", "ejections", "admin_state", "lease_expires", "weight_override", "slow_start_factor"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	lc := m["last_check"].(map[string]any)
	if lc["latency_ms"] != 1.5 || lc["status"] != 503.0 || lc["passed"] != false || lc["error"] != "status 503" {
		t.Errorf("last_check JSON = %v", lc)
	}
}

// gather returns the value of the series of name with exactly the given
// labels (counters: value; gauges: value; histograms: sample count).
func gather(t *testing.T, preg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := preg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return metricValue(m), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// seriesOfNode counts the series of every edge_health metric for a node.
func seriesOfNode(t *testing.T, preg *prometheus.Registry, pool, node string) int {
	t.Helper()
	mfs, err := preg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var p, nd string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "pool":
					p = lp.GetValue()
				case "node":
					nd = lp.GetValue()
				}
			}
			if p == pool && nd == node {
				n++
			}
		}
	}
	return n
}

func TestMetrics(t *testing.T) {
	srv := newFlipServer(t)
	r, preg := newTestRegistry(t)
	// The first check decides a node's state; a high Rise keeps the passing
	// checks of b from ending its ejection before the state is read.
	spec := PoolSpec{Check: testCheck("/health", 20*time.Millisecond, time.Second, 1000, 1), Passive: testPassive(2, time.Minute, time.Hour)}
	spec.Check.Port = srv.port
	b := r.Sync("web", spec, nodeSpecs(2))[1]
	waitFor(t, 2*time.Second, "two checks of a", func() bool {
		v, _ := gather(t, preg, "edge_health_checks_total", map[string]string{"pool": "web", "node": "a", "result": "pass"})
		return v >= 2
	})
	for state, want := range map[string]float64{"up": 1, "down": 0, "draining": 0, "maint": 0} {
		if v, ok := gather(t, preg, "edge_health_node_state", map[string]string{"pool": "web", "node": "a", "state": state}); !ok || v != want {
			t.Errorf("edge_health_node_state{node=a,state=%s} = %v, %v; want %v", state, v, ok, want)
		}
	}
	if v, ok := gather(t, preg, "edge_health_check_duration_seconds", map[string]string{"pool": "web", "node": "a"}); !ok || v < 2 {
		t.Errorf("check duration samples = %v, %v", v, ok)
	}
	for _, series := range []map[string]string{
		{"pool": "web", "node": "a", "result": "fail"},
		{"pool": "web", "node": "a", "to": "up"},
		{"pool": "web", "node": "a", "to": "down"},
		{"pool": "web", "node": "b"},
	} {
		name := "edge_health_checks_total"
		switch {
		case series["to"] != "":
			name = "edge_health_transitions_total"
		case series["result"] == "":
			name = "edge_health_ejections_total"
		}
		if v, ok := gather(t, preg, name, series); !ok || v != 0 {
			t.Errorf("%s%v = %v, %v; want a zero series", name, series, v, ok)
		}
	}

	reportFailures(b, 2)
	if v, _ := gather(t, preg, "edge_health_ejections_total", map[string]string{"pool": "web", "node": "b"}); v != 1 {
		t.Errorf("ejections of b = %v; want 1", v)
	}
	if v, _ := gather(t, preg, "edge_health_transitions_total", map[string]string{"pool": "web", "node": "b", "to": "down"}); v != 1 {
		t.Errorf("transitions of b to down = %v; want 1", v)
	}
	if v, _ := gather(t, preg, "edge_health_node_state", map[string]string{"pool": "web", "node": "b", "state": "down"}); v != 1 {
		t.Errorf("state of ejected b: down = %v; want 1", v)
	}

	// Forgotten nodes lose every series.
	if seriesOfNode(t, preg, "web", "b") == 0 {
		t.Fatal("no series of b")
	}
	r.Sync("web", spec, nodeSpecs(1))
	if n := seriesOfNode(t, preg, "web", "b"); n != 0 {
		t.Errorf("%d series of forgotten node b remain", n)
	}
	if seriesOfNode(t, preg, "web", "a") == 0 {
		t.Error("series of a vanished")
	}
	r.Retain(nil)
	if n := seriesOfNode(t, preg, "web", "a"); n != 0 {
		t.Errorf("%d series of a removed pool remain", n)
	}

	if _, err := NewRegistry(preg, nil); err == nil {
		t.Error("a second Registry on the same Registerer was accepted")
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := newFlipServer(t)
	r, preg := newTestRegistry(t)
	spec := PoolSpec{Check: testCheck("/health", 5*time.Millisecond, time.Second, 1, 1), Passive: testPassive(2, 5*time.Millisecond, 20*time.Millisecond), SlowStart: 10 * time.Millisecond}
	spec.Check.Port = srv.port
	r.Sync("web", spec, nodeSpecs(4))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				for _, n := range r.Nodes("web") {
					n.Available()
					n.SlowStartFactor()
					if k%3 == i%3 {
						n.ReportFailure()
					} else {
						n.ReportSuccess()
					}
					if k%50 == 0 {
						_ = n.SetAdminState(AdminState(k%3), time.Millisecond, k%2 == 0)
						_ = n.SetWeight(k % 10)
						_ = n.Status()
					}
				}
			}
		})
	}
	wg.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			r.Sync("web", spec, nodeSpecs(2+k%3))
			if _, err := preg.Gather(); err != nil {
				t.Errorf("Gather: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
	})
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
}
