package router

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// flipNode is a node whose health answer can be flipped at run time, that
// can hang its health check, answer every other request with a chosen
// status, and be killed (listener and connections closed at once, with a
// reset, as a crashed process) and restarted on the same address.
//
// Paths: /health answers healthStatus (after healthDelay, or hangs while
// hang is set); /slow?ms=N sleeps N ms; anything else answers status (200
// when 0) with "node=<name>". Every answer carries X-Node: <name>.
type flipNode struct {
	name string
	addr string
	done chan struct{} // closed when the test ends: hanging handlers return

	healthStatus atomic.Int32 // status of /health; 0 means 200
	healthDelay  atomic.Int64 // nanoseconds /health waits before answering
	hang         atomic.Bool  // /health hangs (up to 5s) instead of answering
	status       atomic.Int32 // status of every other path; 0 means 200

	requests atomic.Int64 // requests other than /health
	posts    atomic.Int64
	checks   atomic.Int64 // /health requests
	slowIn   atomic.Int64 // /slow requests in flight

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	lastBody string
}

func startFlipNode(t *testing.T, name string) *flipNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &flipNode{name: name, addr: ln.Addr().String(), done: make(chan struct{})}
	n.serve(ln)
	t.Cleanup(func() {
		close(n.done)
		n.stop()
	})
	return n
}

func startFlipNodes(t *testing.T, count int) []*flipNode {
	nodes := make([]*flipNode, count)
	for i := range nodes {
		nodes[i] = startFlipNode(t, "n"+strconv.Itoa(i))
	}
	return nodes
}

func (n *flipNode) serve(ln net.Listener) {
	conns := map[net.Conn]struct{}{}
	srv := &fasthttp.Server{
		Handler: n.handle,
		Logger:  quietLogger{},
		ConnState: func(c net.Conn, st fasthttp.ConnState) {
			n.mu.Lock()
			defer n.mu.Unlock()
			switch st {
			case fasthttp.StateNew:
				conns[c] = struct{}{}
			case fasthttp.StateClosed, fasthttp.StateHijacked:
				delete(conns, c)
			}
		},
	}
	n.mu.Lock()
	n.ln, n.conns = ln, conns
	n.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// stop kills the node: its listener and every connection are closed at
// once, with a reset, as when the process crashes.
func (n *flipNode) stop() {
	n.mu.Lock()
	ln, conns := n.ln, n.conns
	n.ln, n.conns = nil, nil
	n.mu.Unlock()
	if ln == nil {
		return
	}
	_ = ln.Close()
	n.mu.Lock()
	all := make([]net.Conn, 0, len(conns))
	for c := range conns {
		all = append(all, c)
	}
	n.mu.Unlock()
	for _, c := range all {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// restart listens on the node's address again, as a restarted process.
func (n *flipNode) restart(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		ln, err := net.Listen("tcp", n.addr)
		if err == nil {
			n.serve(ln)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarting node %s on %s: %v", n.name, n.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (n *flipNode) handle(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("X-Node", n.name)
	path := string(ctx.Path())
	if path == "/health" {
		n.checks.Add(1)
		if d := n.healthDelay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if n.hang.Load() {
			select {
			case <-n.done:
			case <-time.After(5 * time.Second):
			}
		}
		if code := n.healthStatus.Load(); code != 0 {
			ctx.SetStatusCode(int(code))
		}
		ctx.SetBodyString("health of " + n.name)
		return
	}
	n.requests.Add(1)
	if ctx.IsPost() {
		n.posts.Add(1)
		n.mu.Lock()
		n.lastBody = string(ctx.PostBody())
		n.mu.Unlock()
	}
	if path == "/slow" {
		n.slowIn.Add(1)
		ms, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("ms")))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		n.slowIn.Add(-1)
	}
	if code := n.status.Load(); code != 0 {
		ctx.SetStatusCode(int(code))
	}
	fmt.Fprintf(ctx, "node=%s", n.name)
}

func (n *flipNode) body() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastBody
}

func flipCounts(nodes []*flipNode) []int64 {
	out := make([]int64, len(nodes))
	for i, n := range nodes {
		out[i] = n.requests.Load()
	}
	return out
}

func sumCounts(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}

// failoverConfig is one pool "app" behind a catch-all route. Data: Nodes
// (addresses, named n0, n1, …), Backups (addresses of backup nodes, named
// b0, …), Policy (default round_robin), Upstream (more upstream settings,
// indented by four spaces), Route (more route settings, indented by four
// spaces).
const failoverConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app:
    policy: {{or .Policy "round_robin"}}
{{- if .Upstream}}
{{.Upstream}}
{{- end}}
    nodes:
{{- range $i, $a := .Nodes}}
      - {address: "{{$a}}", name: "n{{$i}}"}
{{- end}}
{{- range $i, $a := .Backups}}
      - {address: "{{$a}}", name: "b{{$i}}", backup: true}
{{- end}}
routes:
  - name: app
    proxy: app
{{- if .Route}}
{{.Route}}
{{- end}}
`

func flipData(upstream string, nodes ...*flipNode) map[string]any {
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	return map[string]any{"Nodes": addrs, "Upstream": upstream}
}

// Health check settings short enough to keep the tests fast.
const (
	testCheckInterval = 100 * time.Millisecond
	testActiveChecks  = `    health_check: {path: /health, interval: 100ms, timeout: 100ms, fall: 3, rise: 2}`
)

// nodeStatus is a node as GET /pools shows it.
type nodeStatus struct {
	Name             string `json:"name"`
	Address          string `json:"address"`
	State            string `json:"state"`
	Health           string `json:"health"`
	Reason           string `json:"reason"`
	AdminState       string `json:"admin_state"`
	WeightOverride   int    `json:"weight_override"`
	Weight           int    `json:"weight"`
	ConfiguredWeight int    `json:"configured_weight"`
	Backup           bool   `json:"backup"`
	InFlight         int64  `json:"in_flight"`
}

type poolStatus struct {
	Name    string       `json:"name"`
	Policy  string       `json:"policy"`
	AllDown string       `json:"all_down"`
	Nodes   []nodeStatus `json:"nodes"`
}

// adminClient is shared by the admin helpers: keep-alive, short timeout.
var adminClient = &http.Client{Timeout: 10 * time.Second}

// poolNow returns GET /pools/app, failing the test on any error.
func poolNow(t *testing.T, e *edgeUnderTest) poolStatus {
	t.Helper()
	resp, err := adminClient.Get(e.admin + "/pools/app")
	if err != nil {
		t.Fatalf("GET /pools/app: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /pools/app: %d %s", resp.StatusCode, body)
	}
	var p poolStatus
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("GET /pools/app: %v\n%s", err, body)
	}
	return p
}

// nodeNow returns one node of GET /pools/app by name; ok is false when the
// pool has no such node.
func nodeNow(t *testing.T, e *edgeUnderTest, name string) (nodeStatus, bool) {
	t.Helper()
	for _, n := range poolNow(t, e).Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return nodeStatus{}, false
}

func stateOf(t *testing.T, e *edgeUnderTest, name string) string {
	t.Helper()
	n, ok := nodeNow(t, e, name)
	if !ok {
		t.Fatalf("node %s is not in GET /pools/app: %+v", name, poolNow(t, e).Nodes)
	}
	return n.State
}

// waitState waits until the named nodes all show state in GET /pools and
// returns how long that took.
func waitState(t *testing.T, e *edgeUnderTest, within time.Duration, state string, names ...string) time.Duration {
	t.Helper()
	return waitFor(t, within, fmt.Sprintf("nodes %v in state %q", names, state), func() bool {
		for _, name := range names {
			if stateOf(t, e, name) != state {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("%+v", poolNow(t, e).Nodes) })
}

// waitFor polls cond until it holds and returns how long that took; after
// within it fails the test, with detail() when given.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool, detail ...func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			msg := ""
			for _, d := range detail {
				msg += "\n" + d()
			}
			t.Fatalf("%s: not within %v%s", what, within, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// adminDo sends a request to the admin API and returns its status and body.
func adminDo(t *testing.T, e *edgeUnderTest, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// clientLoad is a set of client goroutines sending GETs until stopped, counting
// every failure (a transport error or a status other than 200).
type clientLoad struct {
	stop   atomic.Bool
	ok     atomic.Int64
	failed atomic.Int64
	wg     sync.WaitGroup

	mu   sync.Mutex
	errs []string
}

func startLoad(t *testing.T, url string, workers int) *clientLoad {
	l := &clientLoad{}
	for range workers {
		l.wg.Go(func() {
			c := testClient()
			for !l.stop.Load() {
				resp, err := c.Get(url)
				if err != nil {
					l.fail(time.Now().Format("15:04:05.000") + " " + err.Error())
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					l.fail(time.Now().Format("15:04:05.000") + " reading body: " + err.Error())
				case resp.StatusCode != 200:
					l.fail(time.Now().Format("15:04:05.000") + " " + resp.Status + " from " + resp.Header.Get("X-Node"))
				default:
					l.ok.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	t.Cleanup(l.finish)
	return l
}

func (l *clientLoad) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
	l.mu.Unlock()
}

func (l *clientLoad) finish() {
	l.stop.Store(true)
	l.wg.Wait()
}

// check stops the load and fails the test if any request failed.
func (l *clientLoad) check(t *testing.T) {
	t.Helper()
	l.finish()
	if f := l.failed.Load(); f > 0 {
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Errorf("%d of %d requests failed under load; first ones:\n%s", f, f+l.ok.Load(), strings.Join(l.errs, "\n"))
	}
	if l.ok.Load() == 0 {
		t.Errorf("the load sent no successful request")
	}
	t.Logf("load: %d requests, %d failed", l.ok.Load()+l.failed.Load(), l.failed.Load())
}

// waitRequests waits until node n served at least more requests than now.
func waitRequests(t *testing.T, n *flipNode, more int64, within time.Duration) {
	t.Helper()
	base := n.requests.Load()
	waitFor(t, within, fmt.Sprintf("node %s to get %d more requests", n.name, more), func() bool {
		return n.requests.Load() >= base+more
	})
}

func TestKilledNodeUnderLoadLosesNoRequest(t *testing.T) {
	nodes := startFlipNodes(t, 3)
	// Passive detection keeps its defaults: the crash's connection failures
	// may also eject the node; the active checks still bring it back.
	e := startEdge(t, failoverConfig, flipData(testActiveChecks+"\n    slow_start: 1s", nodes...))
	l := startLoad(t, e.url+"/", 4)
	// Slower requests too, so that some are in flight on the node when it
	// dies: they must be retried on another node.
	slow := startLoad(t, e.url+"/slow?ms=20", 2)
	for _, n := range nodes {
		waitRequests(t, n, 20, 5*time.Second)
	}

	victim := nodes[1]
	stopped := time.Now()
	victim.stop()
	// fall (3) × interval, the checks' jitter and the first check's wait:
	// well inside 3 × interval + 500ms.
	took := waitState(t, e, 3*testCheckInterval+500*time.Millisecond, "down", "n1")
	t.Logf("killed node down after %v", took.Round(time.Millisecond))
	survivors := []*flipNode{nodes[0], nodes[2]}
	for _, n := range survivors {
		waitRequests(t, n, 20, 2*time.Second)
	}

	// Restart after the 1s a refused connection keeps a node skipped, so
	// only the health checks decide when it is back.
	time.Sleep(time.Until(stopped.Add(1100 * time.Millisecond)))
	victim.restart(t)
	restarted := time.Now()
	// rise (2) × interval plus the wait for the next check: well inside 1s.
	upAfter := waitState(t, e, 2*testCheckInterval+800*time.Millisecond, "up", "n1")
	up := time.Now()
	t.Logf("restarted node up after %v", upAfter.Round(time.Millisecond))
	c0 := flipCounts(nodes)
	waitFor(t, time.Second, "the restarted node to get requests again", func() bool {
		return victim.requests.Load() > c0[1]
	})
	t.Logf("restarted node got its first request %v after the restart", time.Since(restarted).Round(time.Millisecond))

	// Slow start (1s): its share in the first 200ms up is well below its
	// share once the ramp is over.
	time.Sleep(time.Until(up.Add(200 * time.Millisecond)))
	c1 := flipCounts(nodes)
	time.Sleep(time.Until(up.Add(1200 * time.Millisecond)))
	c2 := flipCounts(nodes)
	time.Sleep(500 * time.Millisecond)
	c3 := flipCounts(nodes)
	share := func(a, b []int64) (float64, int64) {
		total := sumCounts(b) - sumCounts(a)
		if total == 0 {
			return 0, 0
		}
		return float64(b[1]-a[1]) / float64(total), total
	}
	early, earlyN := share(c0, c1)
	late, lateN := share(c2, c3)
	t.Logf("restarted node's share: %.1f%% of %d requests in its first 200ms, %.1f%% of %d after the ramp",
		100*early, earlyN, 100*late, lateN)
	if earlyN < 20 || lateN < 20 {
		t.Fatalf("too few requests to compare shares (%d, %d)", earlyN, lateN)
	}
	if late < 0.2 {
		t.Errorf("after slow start the node has %.1f%% of the requests, want about a third", 100*late)
	}
	if early >= 0.6*late {
		t.Errorf("slow start: share in the first 200ms %.1f%%, not clearly below the later %.1f%%", 100*early, 100*late)
	}
	l.check(t)
	slow.check(t)
}

// TestEjectedNodeReturnsThroughActiveChecks: with active checks, a node
// ejected by passive detection returns through rise passing checks, long
// before its ejection time (README: "With active checks the node returns
// only through rise passing checks; without, when the time is up"), as a
// crashed and restarted node must.
func TestEjectedNodeReturnsThroughActiveChecks(t *testing.T) {
	nodes := startFlipNodes(t, 3)
	e := startEdge(t, failoverConfig, flipData(testActiveChecks+`
    passive: {consecutive_failures: 3, ejection_time: 10s}`, nodes...))
	waitFor(t, 2*time.Second, "first checks", func() bool { return nodes[1].checks.Load() >= 1 })
	nodes[1].status.Store(500) // live requests fail, its health check passes
	sendGETs(t, e, 9)          // round robin: 3 failures on n1
	ejected := time.Now()
	n1, _ := nodeNow(t, e, "n1")
	if n1.State != "down" || n1.Health != "down" || !strings.Contains(n1.Reason, "eject") {
		t.Fatalf("n1 after 3 failures: state %q, health %q (%q); want down, down, ejected", n1.State, n1.Health, n1.Reason)
	}
	nodes[1].status.Store(0) // fixed
	before := nodes[1].requests.Load()
	sendGETs(t, e, 6)
	if got := nodes[1].requests.Load(); got != before {
		t.Errorf("ejected node got %d of 6 requests", got-before)
	}
	waitState(t, e, 2*testCheckInterval+800*time.Millisecond, "up", "n1")
	t.Logf("ejected node back after %v (ejection time 10s)", time.Since(ejected).Round(time.Millisecond))
	if n1, _ := nodeNow(t, e, "n1"); n1.Reason != "" {
		t.Errorf("n1 up with reason %q", n1.Reason)
	}
	before = nodes[1].requests.Load()
	sendGETs(t, e, 9)
	if nodes[1].requests.Load() == before {
		t.Errorf("n1 is up but got none of 9 requests")
	}
}

func TestTwoOfThreeNodesDownLosesNoRequest(t *testing.T) {
	nodes := startFlipNodes(t, 3)
	e := startEdge(t, failoverConfig, flipData(testActiveChecks, nodes...))
	l := startLoad(t, e.url+"/", 4)
	// Slower requests too, so that some are in flight on the nodes when
	// they die: they must be retried on another node.
	slow := startLoad(t, e.url+"/slow?ms=20", 4)
	for _, n := range nodes {
		waitRequests(t, n, 20, 5*time.Second)
	}
	nodes[0].stop()
	nodes[2].stop()
	waitState(t, e, 3*testCheckInterval+500*time.Millisecond, "down", "n0", "n2")
	waitRequests(t, nodes[1], 100, 5*time.Second)
	l.check(t)
	slow.check(t)
}

// dyingNode reads one request, with its body, from each connection and
// closes the connection without answering.
type dyingNode struct {
	addr     string
	requests atomic.Int64
	posts    atomic.Int64
}

func startDyingNode(t *testing.T) *dyingNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := &dyingNode{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				if _, err := io.Copy(io.Discard, req.Body); err != nil {
					return
				}
				n.requests.Add(1)
				if req.Method == "POST" {
					n.posts.Add(1)
				}
			}()
		}
	}()
	return n
}

func TestSentPOSTIsNotReplayed(t *testing.T) {
	const body = "order=42&qty=1"
	setup := func(t *testing.T, route string) (*edgeUnderTest, *dyingNode, []*flipNode) {
		dying := startDyingNode(t)
		good := startFlipNodes(t, 2)
		d := map[string]any{"Nodes": []string{dying.addr, good[0].addr, good[1].addr}, "Route": route}
		return startEdge(t, failoverConfig, d), dying, good
	}
	post := func(t *testing.T, e *edgeUnderTest) (*http.Response, string) {
		return do(t, testClient(), "POST", e.url+"/orders", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader(body))
	}

	t.Run("POST gets 502 and reaches no other node", func(t *testing.T) {
		e, dying, good := setup(t, "")
		resp, _ := post(t, e)
		if dying.posts.Load() != 1 {
			t.Fatalf("the dying node (first in round robin) got %d POSTs, want 1", dying.posts.Load())
		}
		if resp.StatusCode != 502 {
			t.Errorf("POST whose connection broke after it was sent: status %d, want 502", resp.StatusCode)
		}
		if got := sumCounts(flipCounts(good)); got != 0 {
			t.Errorf("the POST was replayed: the other nodes got %d requests, want 0", got)
		}
	})

	t.Run("GET is retried on another node", func(t *testing.T) {
		e, dying, good := setup(t, "")
		resp, got := do(t, testClient(), "GET", e.url+"/items", nil, nil)
		if dying.requests.Load() != 1 {
			t.Fatalf("the dying node (first in round robin) got %d requests, want 1", dying.requests.Load())
		}
		if resp.StatusCode != 200 || !strings.HasPrefix(got, "node=n") {
			t.Errorf("GET: %d %q, want 200 from another node", resp.StatusCode, got)
		}
		if n := sumCounts(flipCounts(good)); n != 1 {
			t.Errorf("the other nodes got %d requests, want 1 (the retry)", n)
		}
		if m := grepLines(scrape(t, e), `edge_upstream_retries_total{pool="app",reason="reset"}`); !strings.HasSuffix(m, " 1") {
			t.Errorf("retry not counted as reset: %q", m)
		}
	})

	t.Run("POST is retried with retry_non_idempotent", func(t *testing.T) {
		e, dying, good := setup(t, "    retry_non_idempotent: true")
		resp, _ := post(t, e)
		if dying.posts.Load() != 1 {
			t.Fatalf("the dying node (first in round robin) got %d POSTs, want 1", dying.posts.Load())
		}
		if resp.StatusCode != 200 {
			t.Errorf("POST on a route with retry_non_idempotent: status %d, want 200", resp.StatusCode)
		}
		var posts int64
		for _, n := range good {
			posts += n.posts.Load()
			if n.posts.Load() == 1 && n.body() != body {
				t.Errorf("retried POST reached %s with body %q, want %q", n.name, n.body(), body)
			}
		}
		if posts != 1 {
			t.Errorf("the other nodes got %d POSTs, want 1 (the retry)", posts)
		}
	})
}

// sendGETs sends count sequential GETs and returns how many answered each
// status.
func sendGETs(t *testing.T, e *edgeUnderTest, count int) map[int]int {
	t.Helper()
	c := testClient()
	out := map[int]int{}
	for range count {
		resp, _ := do(t, c, "GET", e.url+"/", nil, nil)
		out[resp.StatusCode]++
	}
	return out
}

func TestUnhealthyNodeIsTakenOut(t *testing.T) {
	nodes := startFlipNodes(t, 3)
	nodes[1].healthStatus.Store(503)
	e := startEdge(t, failoverConfig, flipData(testActiveChecks, nodes...))
	// A node starts up and its first check decides at once.
	waitState(t, e, time.Second, "down", "n1")
	n1, _ := nodeNow(t, e, "n1")
	if n1.Health != "down" || !strings.Contains(n1.Reason, "503") {
		t.Errorf("n1: health %q, reason %q; want down, with the status 503 in the reason", n1.Health, n1.Reason)
	}
	before := flipCounts(nodes)
	if got := sendGETs(t, e, 60); got[200] != 60 {
		t.Fatalf("statuses %v, want 60 × 200", got)
	}
	after := flipCounts(nodes)
	if d := after[1] - before[1]; d != 0 {
		t.Errorf("the node failing its health check got %d of 60 requests, want 0", d)
	}

	// Healthy again: back after rise (2) passing checks.
	nodes[1].healthStatus.Store(200)
	waitState(t, e, 2*testCheckInterval+800*time.Millisecond, "up", "n1")
	before = flipCounts(nodes)
	sendGETs(t, e, 30)
	if d := flipCounts(nodes)[1] - before[1]; d == 0 {
		t.Errorf("the node healthy again got none of 30 requests")
	}
}

func TestHangingNodeIsTakenOutByTimeout(t *testing.T) {
	nodes := startFlipNodes(t, 3)
	e := startEdge(t, failoverConfig, flipData(testActiveChecks, nodes...))
	waitFor(t, 2*time.Second, "first checks", func() bool { return nodes[2].checks.Load() >= 2 })
	if s := stateOf(t, e, "n2"); s != "up" {
		t.Fatalf("n2 is %q before it hangs, want up", s)
	}
	nodes[2].hang.Store(true)
	took := waitState(t, e, 3*testCheckInterval+500*time.Millisecond, "down", "n2")
	n2, _ := nodeNow(t, e, "n2")
	t.Logf("hanging node down after %v: %q", took.Round(time.Millisecond), n2.Reason)
	if !strings.Contains(strings.ToLower(n2.Reason), "timeout") {
		t.Errorf("reason %q does not say the check timed out", n2.Reason)
	}
	before := flipCounts(nodes)
	if got := sendGETs(t, e, 30); got[200] != 30 {
		t.Fatalf("statuses %v, want 30 × 200", got)
	}
	if d := flipCounts(nodes)[2] - before[2]; d != 0 {
		t.Errorf("the hanging node got %d of 30 requests, want 0", d)
	}
}

func TestDrainUnderLoad(t *testing.T) {
	t.Run("in-flight request finishes, no new ones, wait, ready", func(t *testing.T) {
		nodes := startFlipNodes(t, 3)
		e := startEdge(t, failoverConfig, flipData("", nodes...))
		x := nodes[0]

		// The first request of a fresh round robin goes to n0.
		const slowMS = 800
		slowDone := make(chan int, 1)
		var slowEnd time.Time
		go func() {
			resp, err := testClient().Get(e.url + "/slow?ms=" + strconv.Itoa(slowMS))
			slowEnd = time.Now()
			if err != nil {
				slowDone <- -1
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			slowDone <- resp.StatusCode
		}()
		waitFor(t, 2*time.Second, "the slow request to reach n0", func() bool { return x.slowIn.Load() == 1 })
		slowStart := time.Now()

		l := startLoad(t, e.url+"/", 4)
		for _, n := range nodes {
			waitRequests(t, n, 20, 5*time.Second)
		}

		status, body := adminDo(t, e, "POST", "/pools/app/nodes/n0/state?state=drain")
		if status != 200 {
			t.Fatalf("drain: %d %s", status, body)
		}
		if !strings.Contains(body, `"state": "draining"`) {
			t.Errorf("drain answer does not show the node draining:\n%s", body)
		}
		// A wait shorter than the request in flight times out.
		status, body = adminDo(t, e, "GET", "/pools/app/nodes/n0/wait?timeout=50ms")
		if status != 504 || !strings.Contains(body, `"idle": false`) {
			t.Errorf("short wait with a request in flight: %d %s, want 504 with idle false", status, body)
		}
		waitStart := time.Now()
		status, body = adminDo(t, e, "GET", "/pools/app/nodes/n0/wait?timeout=5s")
		waitEnd := time.Now()
		waited := waitEnd.Sub(waitStart)
		if status != 200 || !strings.Contains(body, `"idle": true`) {
			t.Errorf("wait: %d %s, want 200 with idle true", status, body)
		}
		remaining := slowStart.Add(slowMS * time.Millisecond).Sub(waitStart)
		t.Logf("wait took %v; the slow request had %v left", waited.Round(time.Millisecond), remaining.Round(time.Millisecond))
		if waited < remaining-100*time.Millisecond {
			t.Errorf("wait returned after %v, before the slow request (%v left) finished", waited, remaining)
		}
		select {
		case code := <-slowDone:
			if code != 200 {
				t.Errorf("the request in flight on the drained node got %d, want 200", code)
			}
			// It is answered a moment after the node's in-flight count
			// drops, never long after wait said idle.
			if d := slowEnd.Sub(waitEnd); d > 100*time.Millisecond {
				t.Errorf("wait said idle %v before the slow request was answered", d)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("the slow request did not finish")
		}
		// The drain took effect at once: take the count once requests that
		// were picked before it have arrived, then watch the load.
		time.Sleep(50 * time.Millisecond)
		drained := x.requests.Load()
		waitRequests(t, nodes[1], 50, 5*time.Second)
		if got := x.requests.Load(); got != drained {
			t.Errorf("drained node got %d new requests", got-drained)
		}
		if s := stateOf(t, e, "n0"); s != "draining" {
			t.Errorf("n0 is %q, want draining", s)
		}

		status, body = adminDo(t, e, "POST", "/pools/app/nodes/n0/state?state=ready")
		if status != 200 {
			t.Fatalf("ready: %d %s", status, body)
		}
		waitRequests(t, x, 20, 2*time.Second)
		l.check(t)
	})

	t.Run("last ready node needs force", func(t *testing.T) {
		nodes := startFlipNodes(t, 2)
		e := startEdge(t, failoverConfig, flipData("", nodes...))
		if status, body := adminDo(t, e, "POST", "/pools/app/nodes/n0/state?state=drain"); status != 200 {
			t.Fatalf("drain n0: %d %s", status, body)
		}
		status, body := adminDo(t, e, "POST", "/pools/app/nodes/n1/state?state=drain")
		if status != 409 {
			t.Errorf("draining the last ready node: %d %s, want 409", status, body)
		}
		if s := stateOf(t, e, "n1"); s != "up" {
			t.Errorf("refused drain left n1 %q, want up", s)
		}
		if got := sendGETs(t, e, 5); got[200] != 5 {
			t.Errorf("with n1 still ready: statuses %v, want 5 × 200", got)
		}
		status, body = adminDo(t, e, "POST", "/pools/app/nodes/n1/state?state=drain&force=true")
		if status != 200 {
			t.Errorf("draining the last ready node with force: %d %s, want 200", status, body)
		}
		before := sumCounts(flipCounts(nodes))
		if got := sendGETs(t, e, 3); got[503] != 3 {
			t.Errorf("every node drained: statuses %v, want 3 × 503", got)
		}
		if d := sumCounts(flipCounts(nodes)) - before; d != 0 {
			t.Errorf("drained nodes got %d requests", d)
		}
	})

	t.Run("lease expires back to ready", func(t *testing.T) {
		nodes := startFlipNodes(t, 3)
		e := startEdge(t, failoverConfig, flipData("", nodes...))
		set := time.Now()
		status, body := adminDo(t, e, "POST", "/pools/app/nodes/n2/state?state=drain&ttl=300ms")
		if status != 200 {
			t.Fatalf("drain with ttl: %d %s", status, body)
		}
		n2, _ := nodeNow(t, e, "n2")
		if n2.State != "draining" {
			t.Fatalf("n2 is %q right after a drain with a lease, want draining", n2.State)
		}
		waitState(t, e, 2*time.Second, "up", "n2")
		back := time.Since(set)
		t.Logf("lease of 300ms: back to up after %v", back.Round(time.Millisecond))
		if back < 280*time.Millisecond {
			t.Errorf("lease of 300ms ended after %v", back)
		}
		if n2, _ := nodeNow(t, e, "n2"); n2.AdminState != "ready" {
			t.Errorf("n2 admin state %q after the lease, want ready", n2.AdminState)
		}
		before := flipCounts(nodes)
		sendGETs(t, e, 30)
		if d := flipCounts(nodes)[2] - before[2]; d == 0 {
			t.Errorf("n2 got none of 30 requests after its lease ended")
		}
	})
}

func TestReloadKeepsHealthState(t *testing.T) {
	nodes := startFlipNodes(t, 3)
	// A check takes 250ms to fail: a node whose state a reload reset would
	// be up, and take requests, for that long.
	nodes[1].healthStatus.Store(503)
	nodes[1].healthDelay.Store(int64(250 * time.Millisecond))
	data := func(gen int) map[string]any {
		d := flipData(`    health_check: {path: /health, interval: 500ms, timeout: 400ms, fall: 3, rise: 2}`, nodes...)
		d["Route"] = fmt.Sprintf("    response_headers: {set: {X-Generation: \"%d\"}}", gen)
		return d
	}
	e := startEdge(t, failoverConfig, data(1))
	waitState(t, e, 2*time.Second, "down", "n1")

	writeConfig(t, e.path, failoverConfig, data(2))
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	n1, _ := nodeNow(t, e, "n1")
	if n1.State != "down" {
		t.Errorf("right after a reload the unhealthy node is %q (%s), want down", n1.State, n1.Reason)
	}
	before := flipCounts(nodes)
	c := testClient()
	for i := range 30 {
		resp, _ := do(t, c, "GET", e.url+"/", nil, nil)
		if resp.StatusCode != 200 || resp.Header.Get("X-Generation") != "2" {
			t.Fatalf("request %d after the reload: %d, generation %q", i, resp.StatusCode, resp.Header.Get("X-Generation"))
		}
	}
	if d := flipCounts(nodes)[1] - before[1]; d != 0 {
		t.Errorf("right after a reload the unhealthy node got %d of 30 requests, want 0", d)
	}
}

func TestPassiveEjection(t *testing.T) {
	const passive = `    passive: {consecutive_failures: 3, ejection_time: 300ms}`

	t.Run("failing node is ejected and comes back", func(t *testing.T) {
		nodes := startFlipNodes(t, 3)
		nodes[1].status.Store(500)
		e := startEdge(t, failoverConfig, flipData(passive, nodes...))
		c := testClient()
		// Round robin: every third request goes to n1, which answers 500
		// (not retried by default); the third such failure ejects it.
		for i := range 9 {
			resp, _ := do(t, c, "GET", e.url+"/", nil, nil)
			if want := map[bool]int{true: 500, false: 200}[i%3 == 1]; resp.StatusCode != want {
				t.Fatalf("request %d: %d, want %d", i, resp.StatusCode, want)
			}
		}
		ejected := time.Now()
		n1, _ := nodeNow(t, e, "n1")
		if n1.State != "down" || !strings.Contains(strings.ToLower(n1.Reason), "eject") {
			t.Fatalf("after 3 failures n1 is %q (%q), want down, ejected", n1.State, n1.Reason)
		}
		if nodes[1].requests.Load() != 3 {
			t.Fatalf("n1 got %d requests, want 3", nodes[1].requests.Load())
		}
		// During the ejection (300ms) it gets nothing.
		sent := 0
		for time.Since(ejected) < 200*time.Millisecond {
			resp, _ := do(t, c, "GET", e.url+"/", nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("during the ejection: %d", resp.StatusCode)
			}
			sent++
		}
		if got := nodes[1].requests.Load(); got != 3 {
			t.Errorf("ejected node got %d of %d requests during its ejection", got-3, sent)
		}
		waitState(t, e, 2*time.Second, "up", "n1")
		t.Logf("ejected node back after %v", time.Since(ejected).Round(time.Millisecond))
		if got := sendGETs(t, e, 9); got[500] == 0 {
			t.Errorf("after the ejection the node got no request back: %v", got)
		}
	})

	t.Run("the last node is never ejected", func(t *testing.T) {
		nodes := startFlipNodes(t, 3)
		for _, n := range nodes {
			n.status.Store(500)
		}
		e := startEdge(t, failoverConfig, flipData(passive, nodes...))
		c := testClient()
		for i := range 60 {
			resp, _ := do(t, c, "GET", e.url+"/", nil, nil)
			if resp.StatusCode != 500 || resp.Header.Get("X-Node") == "" {
				t.Fatalf("request %d: %d from node %q; want the node's 500 (a node must always be left)",
					i, resp.StatusCode, resp.Header.Get("X-Node"))
			}
		}
		up := 0
		for _, n := range poolNow(t, e).Nodes {
			if n.State == "up" {
				up++
			}
		}
		if up == 0 {
			t.Errorf("every node is ejected: %+v", poolNow(t, e).Nodes)
		}
		if got := sumCounts(flipCounts(nodes)); got != 60 {
			t.Errorf("nodes got %d requests, want 60", got)
		}
	})
}

func TestRetryBudget(t *testing.T) {
	nodes := startFlipNodes(t, 3)
	for _, n := range nodes {
		n.status.Store(503)
	}
	e := startEdge(t, failoverConfig, flipData(`    passive: {consecutive_failures: 0}
    retries: {attempts: 2, on: ["503"], budget_percent: 20, budget_min_per_second: 3}`, nodes...))
	start := time.Now()
	got := sendGETs(t, e, 100)
	took := time.Since(start)
	if got[503] != 100 {
		t.Errorf("statuses %v, want 100 × 503 (the last answer)", got)
	}
	retries := sumCounts(flipCounts(nodes)) - 100
	t.Logf("100 GETs in %v: %d retries", took.Round(time.Millisecond), retries)
	if took > 2*time.Second {
		t.Logf("the GETs took %v; the budget spans more seconds than intended", took)
	}
	// 20% of the requests of this and the previous second, plus at most the
	// floor of 3: about 23; 40 allows for the previous second's window.
	if retries <= 0 || retries > 40 {
		t.Errorf("%d retries for 100 requests with a 20%% budget, want 1..40 (without a budget: 200)", retries)
	}
	m := scrape(t, e)
	line := grepLines(m, `edge_upstream_retry_budget_exhausted_total{pool="app"}`)
	v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, `edge_upstream_retry_budget_exhausted_total{pool="app"}`)), 64)
	if v <= 0 {
		t.Errorf("edge_upstream_retry_budget_exhausted_total: %q, want > 0", line)
	}
	counted := grepLines(m, `edge_upstream_retries_total{pool="app",reason="503"}`)
	if !strings.HasSuffix(counted, " "+strconv.FormatInt(retries, 10)) {
		t.Errorf("edge_upstream_retries_total for 503: %q, want %d", counted, retries)
	}
}

func TestAllDownPolicy(t *testing.T) {
	setup := func(t *testing.T, policy string) (*edgeUnderTest, []*flipNode) {
		nodes := startFlipNodes(t, 3)
		for _, n := range nodes {
			n.healthStatus.Store(503)
		}
		e := startEdge(t, failoverConfig, flipData(testActiveChecks+"\n    all_down: "+policy, nodes...))
		waitState(t, e, time.Second, "down", "n0", "n1", "n2")
		return e, nodes
	}

	t.Run("fail", func(t *testing.T) {
		e, nodes := setup(t, "fail")
		c := testClient()
		for range 5 {
			start := time.Now()
			resp, _ := do(t, c, "GET", e.url+"/", nil, nil)
			if took := time.Since(start); resp.StatusCode != 503 || took > 500*time.Millisecond {
				t.Errorf("all nodes down with all_down fail: %d after %v, want 503 at once", resp.StatusCode, took)
			}
		}
		if got := sumCounts(flipCounts(nodes)); got != 0 {
			t.Errorf("nodes got %d proxied requests, want 0", got)
		}
	})

	t.Run("try_all", func(t *testing.T) {
		e, nodes := setup(t, "try_all")
		if got := sendGETs(t, e, 6); got[200] != 6 {
			t.Errorf("all nodes down with all_down try_all: statuses %v, want 6 × 200 (they answer)", got)
		}
		if got := sumCounts(flipCounts(nodes)); got != 6 {
			t.Errorf("nodes got %d requests, want 6", got)
		}
	})
}

func TestBackupOnlyWhenPrimariesDown(t *testing.T) {
	nodes := startFlipNodes(t, 2)
	backup := startFlipNode(t, "b0")
	d := flipData(testActiveChecks, nodes...)
	d["Backups"] = []string{backup.addr}
	e := startEdge(t, failoverConfig, d)
	waitFor(t, 2*time.Second, "first checks", func() bool { return backup.checks.Load() >= 1 && nodes[1].checks.Load() >= 1 })
	if got := sendGETs(t, e, 30); got[200] != 30 {
		t.Fatalf("statuses %v", got)
	}
	if got := backup.requests.Load(); got != 0 {
		t.Errorf("backup got %d of 30 requests while the primaries are up", got)
	}

	nodes[0].healthStatus.Store(503)
	if got := sendGETs(t, e, 10); got[200] != 10 {
		t.Fatalf("statuses %v", got)
	}
	waitState(t, e, time.Second, "down", "n0")
	before := backup.requests.Load()
	sendGETs(t, e, 20)
	if got := backup.requests.Load() - before; got != 0 {
		t.Errorf("backup got %d of 20 requests while one primary is up", got)
	}

	nodes[1].healthStatus.Store(503)
	waitState(t, e, time.Second, "down", "n1")
	before = backup.requests.Load()
	if got := sendGETs(t, e, 20); got[200] != 20 {
		t.Errorf("primaries down: statuses %v, want 20 × 200 from the backup", got)
	}
	if got := backup.requests.Load() - before; got != 20 {
		t.Errorf("primaries down: backup got %d of 20 requests", got)
	}

	for _, n := range nodes {
		n.healthStatus.Store(200)
	}
	waitState(t, e, 2*time.Second, "up", "n0", "n1")
	before = backup.requests.Load()
	sendGETs(t, e, 20)
	if got := backup.requests.Load() - before; got != 0 {
		t.Errorf("primaries back: backup still got %d of 20 requests", got)
	}
}

func TestRetryMetricsAndAccessLog(t *testing.T) {
	nodes := startFlipNodes(t, 3)
	nodes[0].status.Store(503)
	logPath := t.TempDir() + "/access.log"
	cfg := strings.Replace(failoverConfig, "upstreams:", "access_log: {format: json, path: \""+logPath+"\"}\nupstreams:", 1)
	e := startEdge(t, cfg, flipData(`    passive: {consecutive_failures: 0}`, nodes...))
	resp, body := do(t, testClient(), "GET", e.url+"/", nil, nil)
	if resp.StatusCode != 200 || body != "node=n1" {
		t.Fatalf("GET: %d %q, want 200 from n1 after n0's 503", resp.StatusCode, body)
	}
	m := scrape(t, e)
	if line := grepLines(m, `edge_upstream_retries_total{pool="app",reason="503"}`); !strings.HasSuffix(line, " 1") {
		t.Errorf("retry after a 503 not counted: %q", line)
	}
	for _, reason := range []string{"reset", "timeout", "connect"} {
		if line := grepLines(m, `edge_upstream_retries_total{pool="app",reason="`+reason+`"}`); !strings.HasSuffix(line, " 0") {
			t.Errorf("reason %s: %q, want 0", reason, line)
		}
	}
	lines := readLogLines(t, logPath, 1)
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatalf("access log line %q: %v", lines[0], err)
	}
	if entry["retries"] != float64(1) || entry["retry_reason"] != "503" {
		t.Errorf("access log: retries %v, retry_reason %v; want 1, 503\n%s", entry["retries"], entry["retry_reason"], lines[0])
	}
}
