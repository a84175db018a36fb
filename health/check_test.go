package health

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-router/edge/config"
)

// testCheck returns a HealthCheck with every field set.
func testCheck(path string, interval, timeout time.Duration, rise, fall int) *config.HealthCheck {
	return &config.HealthCheck{
		Path:         path,
		Method:       "GET",
		Host:         "",
		Port:         0,
		Interval:     config.Duration(interval),
		Timeout:      config.Duration(timeout),
		ExpectStatus: []string{"2xx", "3xx"},
		ExpectBody:   "",
		Rise:         rise,
		Fall:         fall,
	}
}

// flipServer answers checks with a status chosen per Host header (default
// 200) and counts requests per Host and per path.
type flipServer struct {
	addr string
	port int

	mu     sync.Mutex
	status map[string]int
	hits   map[string]int
}

func newFlipServer(t *testing.T) *flipServer {
	t.Helper()
	s := &flipServer{status: map[string]int{}, hits: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.Host]++
		s.hits[r.URL.Path]++
		code := s.status[r.Host]
		s.mu.Unlock()
		if code == 0 {
			code = http.StatusOK
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	s.addr = srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(s.addr)
	s.port, _ = strconv.Atoi(port)
	return s
}

func (s *flipServer) set(host string, code int) {
	s.mu.Lock()
	s.status[host] = code
	s.mu.Unlock()
}

func (s *flipServer) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[key]
}

// gatedServer answers each check with the next status sent on codes, so a
// test decides exactly what every check sees.
type gatedServer struct {
	addr  string
	codes chan int
}

func newGatedServer(t *testing.T) *gatedServer {
	t.Helper()
	g := &gatedServer{codes: make(chan int)}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case code := <-g.codes:
			w.WriteHeader(code)
		case <-done:
			w.WriteHeader(http.StatusServiceUnavailable)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	g.addr = srv.Listener.Addr().String()
	return g
}

// answer lets one check through with the given status.
func (g *gatedServer) answer(t *testing.T, code int) {
	t.Helper()
	select {
	case g.codes <- code:
	case <-time.After(5 * time.Second):
		t.Fatal("no check arrived")
	}
}

func TestParseExpectStatus(t *testing.T) {
	cases := []struct {
		list       []string
		pass, fail []int
		bad        bool
	}{
		{nil, []int{200, 204, 301, 399}, []int{199, 400, 503}, false},
		{[]string{"200"}, []int{200}, []int{201, 204, 302}, false},
		{[]string{"2xx"}, []int{200, 299}, []int{300, 199}, false},
		{[]string{"2XX", "404"}, []int{250, 404}, []int{403, 500}, false},
		{[]string{"200-399"}, []int{200, 302, 399}, []int{400, 199}, false},
		{[]string{"200", "abc", "6xx", "400-300", "99"}, []int{200}, []int{201, 400, 600, 99}, true},
	}
	for _, c := range cases {
		ranges, err := parseExpectStatus(c.list)
		if (err != nil) != c.bad {
			t.Errorf("parseExpectStatus(%q) error = %v; want error %v", c.list, err, c.bad)
		}
		d := &probeDef{statuses: ranges}
		for _, s := range c.pass {
			if !d.passes(s) {
				t.Errorf("%q: status %d fails; want pass", c.list, s)
			}
		}
		for _, s := range c.fail {
			if d.passes(s) {
				t.Errorf("%q: status %d passes; want fail", c.list, s)
			}
		}
	}
}

func TestCheckRiseFall(t *testing.T) {
	const rise, fall = 2, 3
	g := newGatedServer(t)
	r, _ := newTestRegistry(t)
	n := r.Sync("web", PoolSpec{Check: testCheck("/health", 10*time.Millisecond, 5*time.Second, rise, fall), Passive: noPassive},
		[]NodeSpec{{Name: "a", Address: g.addr}})[0]
	if !n.Available() {
		t.Fatal("a new node with checks is not available before its first check")
	}
	if st := n.Status(); st.Health != "up" || st.Reason != "not checked yet" || st.LastCheck != nil {
		t.Errorf("status before the first check = %+v", st)
	}
	g.answer(t, 200)
	waitFor(t, 2*time.Second, "the first check", func() bool { return n.Status().LastCheck != nil })

	for range fall - 1 {
		g.answer(t, 503)
	}
	waitFor(t, 2*time.Second, "fall-1 failed checks", func() bool { return n.Status().ConsecutiveFail == fall-1 })
	if st := n.Status(); !n.Available() || st.Health != "up" {
		t.Fatalf("down after %d failed checks; want fall=%d: %+v", fall-1, fall, st)
	}
	g.answer(t, 503)
	waitFor(t, 2*time.Second, "fall failed checks", func() bool { return n.Status().ConsecutiveFail == fall })
	st := n.Status()
	if n.Available() || st.Health != "down" || st.State != "down" || st.Reason != "3 failed checks: status 503" {
		t.Fatalf("after %d failed checks: %+v", fall, st)
	}
	if st.LastCheck == nil || st.LastCheck.Passed || st.LastCheck.Status != 503 || st.LastCheck.Latency <= 0 {
		t.Errorf("LastCheck = %+v", st.LastCheck)
	}

	for range rise - 1 {
		g.answer(t, 200)
	}
	waitFor(t, 2*time.Second, "rise-1 passed checks", func() bool { return n.Status().ConsecutiveOK == rise-1 })
	if st := n.Status(); n.Available() || !strings.Contains(st.Reason, "(1 of 2 checks to rise passed)") {
		t.Fatalf("up after %d passed checks; want rise=%d: %+v", rise-1, rise, st)
	}
	g.answer(t, 200)
	waitFor(t, 2*time.Second, "rise passed checks", func() bool { return n.Status().ConsecutiveOK == rise })
	if st := n.Status(); !n.Available() || st.Health != "up" || st.Reason != "" {
		t.Fatalf("after %d passed checks: %+v", rise, st)
	}
}

func TestCheckFirstProbeDecides(t *testing.T) {
	srv := newFlipServer(t)
	srv.set(srv.addr, 503)
	r, _ := newTestRegistry(t)
	start := time.Now()
	n := r.Sync("web", PoolSpec{Check: testCheck("/health", 10*time.Second, time.Second, 2, 3), Passive: noPassive},
		[]NodeSpec{{Name: "a", Address: srv.addr}})[0]
	waitFor(t, 2*time.Second, "the node to go down", func() bool { return !n.Available() })
	if el := time.Since(start); el > time.Second {
		t.Errorf("down after %v; want at once", el)
	}
	if st := n.Status(); st.Reason != "first check failed: status 503" || st.ConsecutiveFail != 1 {
		t.Errorf("status = %+v", st)
	}
}

func TestCheckExpectations(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	cases := []struct {
		name   string
		status int
		body   string
		chunk  bool
		expect []string
		want   string
		pass   bool
		errSub string
	}{
		{name: "default 2xx", status: 204, pass: true},
		{name: "default 3xx", status: 302, pass: true},
		{name: "default 404", status: 404, errSub: "status 404"},
		{name: "code miss", status: 204, expect: []string{"200"}, errSub: "status 204"},
		{name: "code hit", status: 404, expect: []string{"404"}, pass: true},
		{name: "class", status: 201, expect: []string{"2xx"}, pass: true},
		{name: "range", status: 399, expect: []string{"200-399"}, pass: true},
		{name: "range miss", status: 400, expect: []string{"200-399"}, errSub: "status 400"},
		{name: "body hit", status: 200, body: "status: OK\n", want: "OK", pass: true},
		{name: "body miss", status: 200, body: "status: starting\n", want: "OK", errSub: `body does not contain "OK"`},
		{name: "body chunked", status: 200, body: "status: OK\n", chunk: true, want: "OK", pass: true},
		{name: "big body, match early", status: 200, body: "OK" + big, want: "OK", pass: true},
		{name: "big body, match late", status: 200, body: big + "OK", want: "OK", errSub: "body does not contain"},
		{name: "status before body", status: 500, body: "OK", want: "OK", errSub: "status 500"},
	}
	r, _ := newTestRegistry(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if !c.chunk {
					w.Header().Set("Content-Length", strconv.Itoa(len(c.body)))
				}
				w.WriteHeader(c.status)
				if !c.chunk {
					w.Write([]byte(c.body))
					return
				}
				for b := c.body; b != ""; {
					k := min(len(b), 4)
					w.Write([]byte(b[:k]))
					w.(http.Flusher).Flush()
					b = b[k:]
				}
			}))
			t.Cleanup(srv.Close)
			hc := testCheck("/health", time.Hour, 2*time.Second, 1, 1)
			hc.ExpectStatus = c.expect
			hc.ExpectBody = c.want
			n := r.Sync("pool"+strconv.Itoa(i), PoolSpec{Check: hc, Passive: noPassive},
				[]NodeSpec{{Name: "a", Address: srv.Listener.Addr().String()}})[0]
			waitFor(t, 3*time.Second, "the first check", func() bool { return n.Status().LastCheck != nil })
			lc := n.Status().LastCheck
			if lc.Passed != c.pass || n.Available() != c.pass || lc.Status != c.status {
				t.Errorf("check = %+v, available %v; want passed %v, status %d", lc, n.Available(), c.pass, c.status)
			}
			if !strings.Contains(lc.Error, c.errSub) || (c.errSub == "") != (lc.Error == "") {
				t.Errorf("check error = %q; want one containing %q", lc.Error, c.errSub)
			}
		})
	}
}

func TestCheckTimeoutAndRefused(t *testing.T) {
	done := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); slow.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	r, _ := newTestRegistry(t)
	nodes := r.Sync("web", PoolSpec{Check: testCheck("/health", time.Hour, 50*time.Millisecond, 2, 3), Passive: noPassive},
		[]NodeSpec{{Name: "slow", Address: slow.Listener.Addr().String()}, {Name: "refused", Address: refused}})
	for _, n := range nodes {
		waitFor(t, 2*time.Second, n.Name()+" to go down", func() bool { return !n.Available() })
	}
	if st := nodes[0].Status(); !strings.Contains(st.LastCheck.Error, "timeout after 50ms") || st.LastCheck.Latency > time.Second {
		t.Errorf("slow node: %+v", st.LastCheck)
	}
	if st := nodes[1].Status(); !strings.Contains(st.LastCheck.Error, "refused") || st.LastCheck.Status != 0 {
		t.Errorf("refused node: %+v", st.LastCheck)
	}
}

func TestCheckRequest(t *testing.T) {
	type seen struct {
		method, host, uri, agent string
		close                    bool
	}
	got := make(chan seen, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.Host, r.RequestURI, r.UserAgent(), r.Close}
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	hc := testCheck("/hc?deep=1", time.Hour, time.Second, 1, 1)
	hc.Method = "head"
	hc.Host = "shop.example"
	hc.Port, _ = strconv.Atoi(port)

	r, _ := newTestRegistry(t)
	n := r.Sync("web", PoolSpec{Check: hc, Passive: noPassive}, []NodeSpec{{Name: "a", Address: "127.0.0.1:1"}})[0]
	select {
	case s := <-got:
		want := seen{"HEAD", "shop.example", "/hc?deep=1", checkUserAgent, true}
		if s != want {
			t.Errorf("check request = %+v; want %+v", s, want)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no check arrived on the check port")
	}
	waitFor(t, 2*time.Second, "the check result", func() bool { return n.Status().LastCheck != nil })
	if !n.Status().LastCheck.Passed {
		t.Errorf("HEAD check failed: %+v", n.Status().LastCheck)
	}

	// Without Host, the Host header is the node's address.
	hc2 := *hc
	hc2.Host, hc2.Method = "", "GET"
	r.Sync("web", PoolSpec{Check: &hc2, Passive: noPassive}, []NodeSpec{{Name: "a", Address: "127.0.0.1:1"}})
	select {
	case s := <-got:
		if s.host != "127.0.0.1:1" || s.method != "GET" {
			t.Errorf("check request = %+v; want GET with Host 127.0.0.1:1", s)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a changed check definition did not trigger a check")
	}
}

func TestSyncKeepsStateAndProbesChangedChecks(t *testing.T) {
	srv := newFlipServer(t)
	r, _ := newTestRegistry(t)
	up := NodeSpec{Name: "up", Address: "127.0.0.1:1"}
	down := NodeSpec{Name: "down", Address: "127.0.0.1:2"}
	srv.set(down.Address, 503)
	spec := func(path string) PoolSpec {
		hc := testCheck(path, time.Hour, time.Second, 2, 3)
		hc.Port = srv.port
		return PoolSpec{Check: hc, Passive: testPassive(5, time.Minute, time.Hour), SlowStart: time.Minute}
	}
	nodes := r.Sync("web", spec("/a"), []NodeSpec{up, down})
	a, d := nodes[0], nodes[1]
	waitFor(t, 2*time.Second, "the first checks", func() bool { return a.Status().LastCheck != nil && d.Status().LastCheck != nil })
	if d.Available() || !a.Available() {
		t.Fatal("first checks did not decide")
	}
	if err := a.SetAdminState(Drain, time.Hour, true); err != nil {
		t.Fatal(err)
	}
	if err := a.SetWeight(7); err != nil {
		t.Fatal(err)
	}
	reportFailures(a, 2)
	before := a.Status()
	slow := a.SlowStartFactor()

	// Same definition in new objects: same nodes, same state, no check.
	again := r.Sync("web", spec("/a"), []NodeSpec{up, down})
	if again[0] != a || again[1] != d {
		t.Fatal("Sync with equal settings returned new nodes")
	}
	time.Sleep(100 * time.Millisecond)
	if c := srv.count("/a"); c != 2 {
		t.Errorf("%d checks after a Sync with equal settings; want none", c-2)
	}
	after := a.Status()
	if after.AdminState != "drain" || !after.LeaseExpires.Equal(*before.LeaseExpires) || after.WeightOverride != 7 ||
		after.PassiveFailures != 2 || !after.LastCheck.Time.Equal(before.LastCheck.Time) || a.SlowStartFactor() < slow {
		t.Errorf("state not kept over Sync:\nbefore %+v\nafter  %+v", before, after)
	}
	if d.Available() || d.Status().Health != "down" {
		t.Error("a down node came back up on Sync (state lost on reload)")
	}

	// A changed definition checks every node at once; the first result
	// decides.
	srv.set(down.Address, 200)
	r.Sync("web", spec("/b"), []NodeSpec{up, down})
	waitFor(t, 2*time.Second, "checks of the new definition", func() bool { return srv.count("/b") == 2 })
	waitFor(t, 2*time.Second, "the down node to come up", d.Available)
	if st := a.Status(); st.AdminState != "drain" || st.WeightOverride != 7 {
		t.Errorf("operator state lost on a check change: %+v", st)
	}

	// Removing the checks makes every node health-up ("unchecked").
	srv.set(down.Address, 503)
	r.Sync("web", spec("/c"), []NodeSpec{up, down})
	waitFor(t, 2*time.Second, "d to go down", func() bool { return !d.Available() })
	r.Sync("web", PoolSpec{Passive: noPassive}, []NodeSpec{up, down})
	if st := d.Status(); !d.Available() || st.Health != "unchecked" || st.LastCheck != nil {
		t.Errorf("after removing checks: %+v", st)
	}
}

func TestCheckMaintPausesDrainKeeps(t *testing.T) {
	srv := newFlipServer(t)
	r, _ := newTestRegistry(t)
	hc := testCheck("/health", 10*time.Millisecond, time.Second, 2, 3)
	hc.Port = srv.port
	nodes := r.Sync("web", PoolSpec{Check: hc, Passive: noPassive}, nodeSpecs(2))
	a := nodes[0]
	host := a.Key().Address

	if err := a.SetAdminState(Drain, 0, false); err != nil {
		t.Fatal(err)
	}
	c0 := srv.count(host)
	waitFor(t, 2*time.Second, "checks while draining", func() bool { return srv.count(host) >= c0+3 })

	if err := a.SetAdminState(Maint, 0, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let a check in flight finish
	c1 := srv.count(host)
	time.Sleep(150 * time.Millisecond)
	if c := srv.count(host); c != c1 {
		t.Errorf("%d checks during maintenance; want none", c-c1)
	}

	// Leaving maintenance checks at once, and that check decides. (A long
	// interval from now on, so that exactly one check runs.)
	slow := *hc
	slow.Interval = config.Duration(time.Hour)
	r.Sync("web", PoolSpec{Check: &slow, Passive: noPassive}, nodeSpecs(2))
	time.Sleep(20 * time.Millisecond)
	if c := srv.count(host); c != c1 {
		t.Errorf("%d checks during maintenance after an interval change; want none", c-c1)
	}
	srv.set(host, 503)
	if err := a.SetAdminState(Ready, 0, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "a to go down after maintenance", func() bool { return !a.Available() })
	if st := a.Status(); st.ConsecutiveFail != 1 || !strings.HasPrefix(st.Reason, "first check failed") {
		t.Errorf("after maintenance: %+v", st)
	}
}

func TestPassiveEjectionWithActiveChecks(t *testing.T) {
	// A long ejection: with active checks, rise passing checks end it.
	const ejection = 10 * time.Second
	srv := newFlipServer(t)
	r, _ := newTestRegistry(t)
	hc := testCheck("/health", 10*time.Millisecond, time.Second, 3, 3)
	hc.Port = srv.port
	nodes := r.Sync("web", PoolSpec{Check: hc, Passive: testPassive(3, ejection, time.Minute)}, nodeSpecs(2))
	a := nodes[0]
	waitFor(t, 2*time.Second, "the first check", func() bool { return a.Status().LastCheck != nil })

	// Checks pass: the node returns after rise passes, not after 10s.
	start := time.Now()
	reportFailures(a, 3)
	if st := a.Status(); a.Available() || st.Health != "down" || st.ConsecutiveOK != 0 {
		t.Fatalf("after ejection: %+v", st)
	}
	waitFor(t, 2*time.Second, "a to come back through passing checks", a.Available)
	if el := time.Since(start); el >= ejection {
		t.Errorf("back after %v: the ejection time, not the checks, decided", el)
	}
	if st := a.Status(); st.ConsecutiveOK < 3 || st.EjectedUntil != nil {
		t.Errorf("back after %d passed checks (want rise=3), ejected until %v (want none)", st.ConsecutiveOK, st.EjectedUntil)
	}

	// Checks fail: the node stays down, ejected or not, until rise checks pass.
	srv.set(a.Key().Address, 503)
	reportFailures(a, 3)
	time.Sleep(100 * time.Millisecond)
	if st := a.Status(); a.Available() || st.Health != "down" {
		t.Fatalf("ejected node with failing checks: %+v", st)
	}
	srv.set(a.Key().Address, 200)
	waitFor(t, 2*time.Second, "a to come back", a.Available)
	if st := a.Status(); st.ConsecutiveOK < 3 {
		t.Errorf("back after %d passed checks; want rise=3", st.ConsecutiveOK)
	}
}

func TestCheckersStop(t *testing.T) {
	srv := newFlipServer(t)
	base := runtime.NumGoroutine()
	r, _ := newTestRegistry(t)
	hc := testCheck("/health", 5*time.Millisecond, time.Second, 1, 1)
	hc.Port = srv.port
	spec := PoolSpec{Check: hc, Passive: noPassive}
	r.Sync("web", spec, nodeSpecs(3))
	r.Sync("api", spec, nodeSpecs(2))
	if n := checkersRunning.Load(); n != 5 {
		t.Fatalf("%d checkers running; want 5", n)
	}
	waitFor(t, 2*time.Second, "checks", func() bool { return srv.count("/health") >= 10 })

	r.Sync("web", spec, nodeSpecs(1))
	waitFor(t, 2*time.Second, "removed nodes' checkers to stop", func() bool { return checkersRunning.Load() == 3 })
	r.Retain([]string{"web"})
	waitFor(t, 2*time.Second, "a removed pool's checkers to stop", func() bool { return checkersRunning.Load() == 1 })
	r.Sync("web", PoolSpec{Passive: noPassive}, nodeSpecs(1))
	waitFor(t, 2*time.Second, "checkers of a pool without checks to stop", func() bool { return checkersRunning.Load() == 0 })
	waitFor(t, 2*time.Second, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= base })

	// Close waits for every checker, even one in a slow check.
	r.Sync("web", spec, nodeSpecs(3))
	r.Close()
	if n := checkersRunning.Load(); n != 0 {
		t.Errorf("%d checkers running after Close", n)
	}
	r.Sync("web", spec, nodeSpecs(4))
	if n := checkersRunning.Load(); n != 0 {
		t.Errorf("Sync after Close started %d checkers", n)
	}
	waitFor(t, 2*time.Second, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= base })
}

func TestCloseInterruptsSlowCheck(t *testing.T) {
	done := make(chan struct{})
	var inCheck atomic.Bool
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inCheck.Store(true)
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); slow.Close() })
	r, _ := newTestRegistry(t)
	r.Sync("web", PoolSpec{Check: testCheck("/health", time.Hour, time.Hour, 1, 1), Passive: noPassive},
		[]NodeSpec{{Name: "a", Address: slow.Listener.Addr().String()}})
	waitFor(t, 2*time.Second, "the check to start", inCheck.Load)
	start := time.Now()
	r.Close()
	if el := time.Since(start); el > time.Second {
		t.Errorf("Close took %v with a check in flight", el)
	}
}

func TestCheckResultJSON(t *testing.T) {
	b, err := json.Marshal(CheckResult{Status: 200, Latency: 2500 * time.Microsecond, Passed: true})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, `"latency_ms":2.5`) || !strings.Contains(s, `"passed":true`) || strings.Contains(s, "Latency") || strings.Contains(s, `"error"`) {
		t.Errorf("CheckResult JSON = %s", s)
	}
}

// logBuffer collects log output safely from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestTransitionLogs(t *testing.T) {
	srv := newFlipServer(t)
	var logs logBuffer
	r, err := NewRegistry(nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	hc := testCheck("/health", 10*time.Millisecond, time.Second, 1, 1)
	hc.Port = srv.port
	srv.set(nodeSpecs(1)[0].Address, 503)
	nodes := r.Sync("web", PoolSpec{Check: hc, Passive: testPassive(2, time.Minute, time.Hour)}, nodeSpecs(2))
	a, b := nodes[0], nodes[1]
	waitFor(t, 2*time.Second, "a to go down", func() bool { return !a.Available() })
	srv.set(a.Key().Address, 200)
	waitFor(t, 2*time.Second, "a to come up", a.Available)
	reportFailures(b, 2)
	for _, want := range []string{
		`level=INFO msg="node down" pool=web node=a reason="first check failed: status 503"`,
		`level=INFO msg="node up" pool=web node=a reason="1 passed check"`,
		`level=INFO msg="node ejected" pool=web node=b reason="2 consecutive failures" duration=1m0s ejections=1`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}
