package router

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// tailConfig has a cached route, a route to a second node and a fixed
// 503 answer, besides the default route.
const tailConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"{{if .Token}}, token: "{{.Token}}"{{end}}}
access_log: {format: "off"}
upstreams:
  app:
    nodes: [{address: "{{index .Nodes 0}}", name: web1}]
  other:
    nodes: [{address: "{{index .Nodes 1}}", name: web2}]
routes:
  - name: cached
    match: {path_prefix: /cached/}
    proxy: app
    cache: {default_ttl: 60s}
  - name: other
    match: {path_prefix: /other/}
    proxy: other
  - name: boom
    match: {path: /boom}
    respond: {status: 503, body: down}
  - name: app
    proxy: app
`

func startTailEdge(t *testing.T, token string) *edgeUnderTest {
	t.Helper()
	d := nodesData(startNode(t, "web1"), startNode(t, "web2"))
	d["Token"] = token
	return startEdge(t, tailConfig, d)
}

// tailStream is a follower attached through the admin API: its lines
// (heartbeats left out) arrive on lines, which closes when the stream
// ends.
type tailStream struct {
	resp   *http.Response
	lines  chan string
	cancel context.CancelFunc
}

// followLogs attaches a follower with the given query and fails the test
// unless the admin API answers 200. It returns once the follower is
// attached (the answer's header comes after that).
func followLogs(t *testing.T, e *edgeUnderTest, query string) *tailStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.admin+"/logs?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /logs?%s: %v", query, err)
	}
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /logs?%s: %d %s", query, resp.StatusCode, body)
	}
	s := &tailStream{resp: resp, lines: make(chan string, 4096), cancel: cancel}
	go func() {
		defer close(s.lines)
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if line = strings.TrimSuffix(line, "\n"); line != "" {
				s.lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *tailStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// next returns the next line, failing the test when none comes.
func (s *tailStream) next(t *testing.T, what string) string {
	t.Helper()
	select {
	case line, ok := <-s.lines:
		if !ok {
			t.Fatalf("%s: the stream ended", what)
		}
		return line
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no line", what)
	}
	return ""
}

// nextJSON returns the next line as a JSON object.
func (s *tailStream) nextJSON(t *testing.T, what string) map[string]any {
	t.Helper()
	line := s.next(t, what)
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("%s: not JSON (%v): %s", what, err, line)
	}
	return m
}

// tailMetric is the value of a metric without labels, or -1.
func tailMetric(t *testing.T, e *edgeUnderTest, name string) float64 {
	t.Helper()
	if s := metricSamples(scrape(t, e), name); len(s) > 0 {
		return s[0].value
	}
	return -1
}

func TestTailFollowersGetTheirOwnLines(t *testing.T) {
	e := startTailEdge(t, "")
	byRoute := followLogs(t, e, "route=other,boom")
	errors5xx := followLogs(t, e, "status=5xx&format=json")
	if ct := byRoute.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("combined stream: Content-Type %q, want text/plain", ct)
	}
	if ct := errors5xx.resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("JSON stream: Content-Type %q, want application/x-ndjson", ct)
	}
	if got := tailMetric(t, e, "edge_tail_followers"); got != 2 {
		t.Errorf("edge_tail_followers = %v, want 2", got)
	}

	c := testClient()
	for i, req := range []struct {
		path   string
		status int
	}{{"/status?code=500", 500}, {"/other/x", 200}, {"/hello", 200}, {"/boom", 503}} {
		resp, _ := do(t, c, "GET", e.url+req.path, map[string]string{"X-Request-Id": "rid-" + strconv.Itoa(i)}, nil)
		if resp.StatusCode != req.status {
			t.Fatalf("GET %s: %d, want %d", req.path, resp.StatusCode, req.status)
		}
	}

	// Lines reach a follower in the order the requests finished: the
	// last request (/boom) matches both filters, so what comes before it
	// is everything each follower got.
	first := byRoute.next(t, "route follower, line 1")
	for _, want := range []string{`"GET /other/x HTTP/1.1" 200 `, " rid=rid-1 ", " route=other node=web2 "} {
		if !strings.Contains(first, want) {
			t.Errorf("route follower, line 1 lacks %q: %s", want, first)
		}
	}
	if second := byRoute.next(t, "route follower, line 2"); !strings.Contains(second, `"GET /boom HTTP/1.1" 503 `) || !strings.Contains(second, " route=boom node=- ") {
		t.Errorf("route follower, line 2: %s, want the /boom request", second)
	}

	got := errors5xx.nextJSON(t, "5xx follower, line 1")
	want := map[string]any{"method": "GET", "uri": "/status?code=500", "status": float64(500), "route": "app", "node": "web1", "request_id": "rid-0"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("5xx follower, line 1: %s = %#v, want %#v (%v)", k, got[k], v, got)
		}
	}
	if got := errors5xx.nextJSON(t, "5xx follower, line 2"); got["uri"] != "/boom" || got["status"] != float64(503) {
		t.Errorf("5xx follower, line 2: %v, want the /boom request", got)
	}
}

func TestTailSlowCacheAndMethodFilters(t *testing.T) {
	e := startTailEdge(t, "")
	slow := followLogs(t, e, "slow=300ms")
	hits := followLogs(t, e, "cache=hit&format=json")
	misses := followLogs(t, e, "cache=miss&path_prefix=/cached/&format=json")
	posts := followLogs(t, e, "cache=bypass,none&method=post&format=json")

	c := testClient()
	steps := []struct {
		method, path string
		cacheStatus  string // prefix of the Cache-Status answered, if any
	}{
		{"GET", "/hello", ""},
		{"GET", "/cached/a", csMiss},
		{"GET", "/cached/a", csHit},
		{"POST", "/cached/p", "edge; fwd=method"},
		{"GET", "/slow?ms=400", ""},
		{"GET", "/cached/a", csHit},
		{"GET", "/cached/b", csMiss},
		{"POST", "/hello", ""},
	}
	for _, s := range steps {
		resp, _ := do(t, c, s.method, e.url+s.path, nil, nil)
		if cs := resp.Header.Get("Cache-Status"); resp.StatusCode != 200 || !strings.HasPrefix(cs, s.cacheStatus) {
			t.Fatalf("%s %s: %d, Cache-Status %q, want 200 and %q", s.method, s.path, resp.StatusCode, cs, s.cacheStatus)
		}
	}

	line := slow.next(t, "slow follower")
	if !strings.Contains(line, `"GET /slow?ms=400 HTTP/1.1" 200 `) {
		t.Errorf("slow follower: first line %s, want the slow request (and no fast one before it)", line)
	}
	check := func(name string, s *tailStream, want ...string) {
		t.Helper()
		for i, w := range want {
			got := s.nextJSON(t, name)
			if have := got["method"].(string) + " " + got["uri"].(string); have != w {
				t.Errorf("%s follower, line %d: %s, want %s", name, i+1, have, w)
			}
		}
	}
	check("hit", hits, "GET /cached/a", "GET /cached/a")
	check("miss", misses, "GET /cached/a", "GET /cached/b")
	check("bypass/none POST", posts, "POST /cached/p", "POST /hello")
}

func TestTailRefusesBadFilters(t *testing.T) {
	e := startTailEdge(t, "")
	status, body := adminDo(t, e, "GET", "/logs?status=6xx,404&cache=warm&slow=-1s&route=app,nope&format=xml&colour=red")
	if status != 400 {
		t.Fatalf("bad filter: %d %s, want 400", status, body)
	}
	for _, want := range []string{`status: "6xx"`, `cache: "warm"`, `slow: "-1s"`, `route: "nope" is not a route`, `format: "xml"`, `unknown parameter "colour"`} {
		if !strings.Contains(body, want) {
			t.Errorf("bad filter answer lacks %q:\n%s", want, body)
		}
	}
	for _, ok := range []string{`"404"`, `"app"`} {
		if strings.Contains(body, ok) {
			t.Errorf("bad filter answer blames the good value %s:\n%s", ok, body)
		}
	}
	if status, body := adminDo(t, e, "POST", "/logs"); status != 405 {
		t.Errorf("POST /logs: %d %s, want 405", status, body)
	}
	if e.srv.tail.active() {
		t.Error("a refused follower is attached")
	}
}

func TestTailNeedsTheAdminToken(t *testing.T) {
	e := startTailEdge(t, "s3cret")
	if status, _ := adminDo(t, e, "GET", "/logs"); status != 401 {
		t.Errorf("GET /logs without the token: %d, want 401", status)
	}
}

func TestTailBoundsFollowers(t *testing.T) {
	e := startTailEdge(t, "")
	for range maxTailFollowers {
		followLogs(t, e, "")
	}
	status, body := adminDo(t, e, "GET", "/logs")
	if status != 503 || !strings.Contains(body, "too many log followers") {
		t.Errorf("follower %d: %d %q, want 503", maxTailFollowers+1, status, body)
	}
	if got := tailMetric(t, e, "edge_tail_followers"); got != maxTailFollowers {
		t.Errorf("edge_tail_followers = %v, want %d", got, maxTailFollowers)
	}
}

// waitFollowers waits until the followers gauge shows n, sending a request
// to the public listener each round (a follower that went away is
// noticed when a line is written to it).
func waitFollowers(t *testing.T, e *edgeUnderTest, n float64) {
	t.Helper()
	c := testClient()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := tailMetric(t, e, "edge_tail_followers")
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge_tail_followers = %v, want %v", got, n)
		}
		do(t, c, "GET", e.url+"/hello", nil, nil)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTailDisconnectDetaches(t *testing.T) {
	e := startTailEdge(t, "")
	s := followLogs(t, e, "")
	do(t, testClient(), "GET", e.url+"/first", nil, nil)
	if line := s.next(t, "before disconnecting"); !strings.Contains(line, "GET /first ") {
		t.Errorf("line %s, want GET /first", line)
	}
	s.close()
	waitFollowers(t, e, 0)
	if e.srv.tail.active() {
		t.Error("the hub is still active with no follower")
	}
}

func TestTailShutdownEndsStream(t *testing.T) {
	e := startTailEdge(t, "")
	s := followLogs(t, e, "")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	select {
	case _, ok := <-s.lines:
		for ok {
			_, ok = <-s.lines
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end on Shutdown")
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if e.srv.tail.active() {
		t.Error("a follower is still attached after Shutdown")
	}
}

// A follower that reads nothing loses lines, which are counted and
// announced to it later; requests are not held up by it.
func TestTailStalledFollowerDropsLines(t *testing.T) {
	// A short queue, so that it fills after a few requests: the lines
	// waiting for the socket are the same whatever its length.
	prev := tailQueue
	t.Cleanup(func() { tailQueue = prev }) // after the edge's shutdown
	tailQueue = 16
	e := startTailEdge(t, "")
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.admin, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := io.WriteString(conn, "GET /logs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFollowers(t, e, 1) // and nothing read
	if !e.srv.tail.active() {
		t.Fatal("the follower is not attached")
	}

	// Long targets make long lines, so the connection's buffers fill
	// early; then the follower's queue does.
	pad := strings.Repeat("p", 2000)
	c := testClient()
	sent := 0
	for tailMetric(t, e, "edge_tail_dropped_lines_total") <= 0 {
		if sent >= 8000 {
			t.Fatalf("edge_tail_dropped_lines_total is 0 after %d requests to a follower that reads nothing, want > 0", sent)
		}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 25 {
					resp, err := c.Get(e.url + "/x?pad=" + pad + "&i=" + strconv.Itoa(w*25+i))
					if err != nil {
						t.Errorf("request %d: %v", sent+w*25+i, err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("request %d: %d", sent+w*25+i, resp.StatusCode)
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		sent += 100
	}

	// Reading again, the follower is told how many lines it lost.
	_ = conn.(*net.TCPConn).SetReadBuffer(1 << 20)
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return
		}
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if strings.HasPrefix(line, "# dropped") {
				lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	deadline := time.After(10 * time.Second)
	for {
		do(t, c, "GET", e.url+"/after", nil, nil)
		select {
		case line := <-lines:
			n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(line, "# dropped "), " lines\n"), 64)
			if err != nil || n <= 0 || n > tailMetric(t, e, "edge_tail_dropped_lines_total") {
				t.Errorf("notice %q: want a count within the metric's", line)
			}
			return
		case <-deadline:
			t.Fatal("no '# dropped N lines' notice")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// With nobody following, finish does not reach publish and allocates
// nothing; with a follower it hands the line over.
func TestTailInactiveCostsNothing(t *testing.T) {
	e := startTailEdge(t, "")
	s := e.srv
	snap := s.snap.Load()
	var out outcome
	for _, r := range snap.routes {
		if r.name == "app" {
			out.route, out.node = r, r.pool.nodes[0]
		}
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/hello")
	ctx.Response.SetStatusCode(200)
	start := time.Now()
	s.finish(&ctx, &out, start) // resolves the metric series once

	if s.tail.active() {
		t.Fatal("active with no follower")
	}
	if n := testing.AllocsPerRun(100, func() { s.finish(&ctx, &out, start) }); n != 0 {
		t.Errorf("finish with no follower: %v allocations, want 0", n)
	}

	s.tail.setup(s.metrics.reg)
	f := &follower{lines: make(chan *[]byte, 4)}
	if !s.tail.attach(f) {
		t.Fatal("attach refused")
	}
	s.finish(&ctx, &out, start)
	select {
	case bp := <-f.lines:
		if line := string(*bp); !strings.Contains(line, "GET /hello ") || !strings.Contains(line, " route=app node=web1 ") {
			t.Errorf("line %q", line)
		}
	default:
		t.Fatal("finish with a follower queued no line")
	}
	s.tail.detach(f)
	s.finish(&ctx, &out, start)
	if len(f.lines) != 0 || s.tail.active() {
		t.Error("a detached follower still gets lines")
	}
}

func BenchmarkFinishNoFollowers(b *testing.B) {
	var s Server
	var ctx fasthttp.RequestCtx
	var out outcome
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		s.finish(&ctx, &out, start)
	}
}

func TestCacheClassOf(t *testing.T) {
	for _, tt := range []struct {
		cs   string
		want uint8
	}{
		{"edge; hit; ttl=59", tailCacheHit},
		{"edge; hit; ttl=-3", tailCacheStale},
		{"edge; fwd=stale; ttl=10", tailCacheRevalidated},
		{"edge; fwd=stale; ttl=-1", tailCacheStale},
		{"edge; fwd=uri-miss; fwd-status=200; stored", tailCacheMiss},
		{"edge; fwd=stale; fwd-status=200; stored", tailCacheMiss},
		{"edge; fwd=vary-miss", tailCacheMiss},
		{"edge; fwd=method", tailCacheBypass},
		{"upstream; hit; ttl=5, edge; fwd=uri-miss", tailCacheMiss},
		{"upstream; hit", tailCacheNone},
		{"", tailCacheNone},
	} {
		if got := cacheClassOf([]byte(tt.cs)); got != tt.want {
			t.Errorf("cacheClassOf(%q) = %b, want %b", tt.cs, got, tt.want)
		}
	}
}
