package router

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// poolConfig is one pool "app" of the template's nodes behind a catch-all
// route. Data: Nodes (addresses), Policy, optional Weights, Extra (more
// upstream settings, indented for the upstream), Server (server settings).
const poolConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
{{- if .Server}}
server:
{{.Server}}
{{- end}}
upstreams:
  app:
    policy: {{.Policy}}
{{- if .Extra}}
{{.Extra}}
{{- end}}
    nodes:
{{- range $i, $a := .Nodes}}
      - {address: "{{$a}}", name: "n{{$i}}"{{if $.Weights}}, weight: {{index $.Weights $i}}{{end}}}
{{- end}}
routes:
  - name: app
    proxy: app
`

func poolData(policy string, nodes ...*testNode) map[string]any {
	d := nodesData(nodes...)
	d["Policy"] = policy
	return d
}

func startNodes(t *testing.T, count int) []*testNode {
	nodes := make([]*testNode, count)
	for i := range nodes {
		nodes[i] = startNode(t, "n"+strconv.Itoa(i))
	}
	return nodes
}

func requestCounts(nodes []*testNode) []int64 {
	out := make([]int64, len(nodes))
	for i, n := range nodes {
		out[i] = n.requests.Load()
	}
	return out
}

func TestRoundRobinIsExact(t *testing.T) {
	nodes := startNodes(t, 3)
	e := startEdge(t, poolConfig, poolData("round_robin", nodes...))
	c := testClient()
	for range 300 {
		if resp, _ := do(t, c, "GET", e.url+"/", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if got := requestCounts(nodes); got[0] != 100 || got[1] != 100 || got[2] != 100 {
		t.Fatalf("round robin over 300 requests: got %v, want [100 100 100]", got)
	}
}

func TestWeightedRoundRobinIsProportional(t *testing.T) {
	nodes := startNodes(t, 3)
	d := poolData("round_robin", nodes...)
	d["Weights"] = []int{3, 1, 1}
	e := startEdge(t, poolConfig, d)
	c := testClient()
	for range 500 {
		do(t, c, "GET", e.url+"/", nil, nil)
	}
	if got := requestCounts(nodes); got[0] != 300 || got[1] != 100 || got[2] != 100 {
		t.Fatalf("weights 3:1:1 over 500 requests: got %v, want [300 100 100]", got)
	}
}

func TestRandomTwoIsTheDefaultAndUsesEveryNode(t *testing.T) {
	nodes := startNodes(t, 3)
	cfg := strings.Replace(poolConfig, "    policy: {{.Policy}}\n", "", 1)
	e := startEdge(t, cfg, nodesData(nodes...))
	if got := e.srv.snap.Load().cfg.Upstreams["app"].Policy; got != "random_two" {
		t.Fatalf("default policy %q, want random_two", got)
	}
	c := testClient()
	for range 600 {
		do(t, c, "GET", e.url+"/", nil, nil)
	}
	// Sequential requests leave every node idle, so the choice is random:
	// each node's share of 600 is 200 ± a margin that cannot flake (> 7σ).
	for i, got := range requestCounts(nodes) {
		if got < 120 || got > 280 {
			t.Fatalf("node %d got %d of 600 requests, want about 200", i, got)
		}
	}
}

// holdSlowRequests starts count requests to /slow one after another, each
// only once the previous one is in flight at a node, so a load-aware policy
// sees the load the earlier ones put on the nodes. It returns a function
// that waits for all of them to finish.
func holdSlowRequests(t *testing.T, e *edgeUnderTest, nodes []*testNode, count int, hdr map[string]string) func() {
	t.Helper()
	c := testClient()
	var wg sync.WaitGroup
	for i := range count {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", e.url+"/slow?ms=1500", nil)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Errorf("slow request: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
		deadline := time.Now().Add(5 * time.Second)
		for {
			var in int64
			for _, n := range nodes {
				in += n.inflight.Load()
			}
			if in == int64(i+1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %d never reached a node", i+1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return wg.Wait
}

func TestLeastConnSpreadsConcurrentRequests(t *testing.T) {
	nodes := startNodes(t, 3)
	e := startEdge(t, poolConfig, poolData("least_conn", nodes...))
	wait := holdSlowRequests(t, e, nodes, 9, nil)
	for i, n := range nodes {
		if got := n.inflight.Load(); got != 3 {
			t.Errorf("node %d has %d requests in flight, want 3 (9 spread over 3 nodes)", i, got)
		}
	}
	wait()
}

const hashExtra = `    hash: {source: header, name: X-User, load_factor: 1.25}`

func TestConsistentHashIsStableWhenANodeIsAdded(t *testing.T) {
	nodes := startNodes(t, 4)
	d := poolData("consistent_hash", nodes[:3]...)
	d["Extra"] = hashExtra
	e := startEdge(t, poolConfig, d)
	c := testClient()
	route := func(key string) string {
		resp, _ := do(t, c, "GET", e.url+"/", map[string]string{"X-User": key}, nil)
		return resp.Header.Get("X-Node")
	}
	const keys = 300
	before := make([]string, keys)
	for k := range keys {
		before[k] = route("user-" + strconv.Itoa(k))
		if again := route("user-" + strconv.Itoa(k)); again != before[k] {
			t.Fatalf("key %d went to %s, then to %s", k, before[k], again)
		}
	}
	d = poolData("consistent_hash", nodes...)
	d["Extra"] = hashExtra
	writeConfig(t, e.path, poolConfig, d)
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for k := range keys {
		after := route("user-" + strconv.Itoa(k))
		if after == before[k] {
			continue
		}
		if after != "n3" {
			t.Fatalf("key %d moved from %s to %s; keys may only move to the new node n3", k, before[k], after)
		}
		moved++
	}
	// About a quarter of the keys belong to the fourth node.
	if moved < keys/10 || moved > keys*2/5 {
		t.Fatalf("%d of %d keys moved to the new node, want about %d", moved, keys, keys/4)
	}
}

func TestConsistentHashBoundsTheLoadOfAHotKey(t *testing.T) {
	nodes := startNodes(t, 3)
	d := poolData("consistent_hash", nodes...)
	d["Extra"] = hashExtra
	e := startEdge(t, poolConfig, d)
	wait := holdSlowRequests(t, e, nodes, 9, map[string]string{"X-User": "hot"})
	// With load factor 1.25, no node may hold more than ceil(1.25 × 9 / 3) = 4
	// of the 9 requests in flight, however hot the key.
	busy := 0
	for i, n := range nodes {
		got := n.inflight.Load()
		if got > 4 {
			t.Errorf("node %d holds %d of 9 requests for one key, bound is 4", i, got)
		}
		if got > 0 {
			busy++
		}
	}
	if busy < 3 {
		t.Errorf("the hot key's load went to %d nodes, want all 3", busy)
	}
	wait()
}

func TestRefusedConnectionGoesToAnotherNode(t *testing.T) {
	nodes := startNodes(t, 3)
	e := startEdge(t, poolConfig, poolData("round_robin", nodes...))
	nodes[1].stop()
	nodes[2].stop()
	c := testClient()
	for i := range 30 {
		resp, body := do(t, c, "GET", e.url+"/", nil, nil)
		if resp.StatusCode != 200 || resp.Header.Get("X-Node") != "n0" {
			t.Fatalf("request %d with two of three nodes down: %d %q from %q", i, resp.StatusCode, body, resp.Header.Get("X-Node"))
		}
	}
	if got := nodes[0].requests.Load(); got != 30 {
		t.Fatalf("the one live node got %d requests, want 30", got)
	}
	metrics := scrape(t, e)
	if !strings.Contains(metrics, `edge_upstream_errors_total{kind="dial",node="n1",pool="app"}`) {
		t.Fatalf("refused connections not counted:\n%s", grepLines(metrics, "edge_upstream_errors_total"))
	}
}

func TestErrorStatuses(t *testing.T) {
	live := startNode(t, "live")
	dead := startNode(t, "dead")
	dead.stop()
	cfg := `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
server:
  max_uri_bytes: 1KiB
  max_header_bytes: 4KiB
  max_body_bytes: 1MiB
upstreams:
  live:
    response_header_timeout: 300ms
    max_conns_per_node: 1
    conn_wait_timeout: 100ms
    nodes: [{address: "{{index .Nodes 0}}"}]
  dead:
    nodes: [{address: "{{index .Nodes 1}}"}]
routes:
  - name: only-example
    match: {hosts: [example.com]}
    proxy: live
  - name: dead
    match: {hosts: [dead.example]}
    proxy: dead
`
	e := startEdge(t, cfg, nodesData(live, dead))
	c := testClient()
	host := map[string]string{"Host": "example.com"}

	t.Run("404 no route", func(t *testing.T) {
		resp, body := do(t, c, "GET", e.url+"/", map[string]string{"Host": "other.example"}, nil)
		if resp.StatusCode != 404 || body != "no route\n" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
	t.Run("414 long URI", func(t *testing.T) {
		resp, _ := do(t, c, "GET", e.url+"/"+strings.Repeat("a", 2000), host, nil)
		if resp.StatusCode != 414 {
			t.Fatalf("got %d", resp.StatusCode)
		}
	})
	t.Run("431 large header", func(t *testing.T) {
		got := rawRequest(t, e.addr, "GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: "+strings.Repeat("b", 8000)+"\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 431") {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("413 declared body too large", func(t *testing.T) {
		before := live.requests.Load()
		// A client streams its body after the header; edge answers 413
		// once it has seen the header (and read at most 8 KiB of body).
		got := rawRequest(t, e.addr, "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2000000\r\n\r\n"+strings.Repeat("x", 10000))
		if !strings.HasPrefix(got, "HTTP/1.1 413") {
			t.Fatalf("got %q", got)
		}
		// A client that asks first gets 413 instead of 100 Continue, and
		// need not send anything.
		got = rawRequest(t, e.addr, "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 413") {
			t.Fatalf("with Expect: 100-continue: got %q", got)
		}
		if live.requests.Load() != before {
			t.Fatal("a request refused with 413 reached the node")
		}
	})
	t.Run("413 chunked body too large", func(t *testing.T) {
		req, _ := http.NewRequest("POST", e.url+"/upload", io.NopCloser(&patternReader{left: 3 << 20}))
		req.Host = "example.com"
		req.ContentLength = -1
		resp, err := c.Do(req)
		if err != nil {
			// The proxy may close the connection while the client is
			// still sending: that is a refusal too, but we want the status.
			t.Fatalf("chunked upload: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("got %d", resp.StatusCode)
		}
	})
	t.Run("502 no node reachable", func(t *testing.T) {
		resp, body := do(t, c, "GET", e.url+"/", map[string]string{"Host": "dead.example"}, nil)
		if resp.StatusCode != 502 || body != "bad gateway\n" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
	t.Run("504 node too slow", func(t *testing.T) {
		start := time.Now()
		resp, body := do(t, c, "GET", e.url+"/slow?ms=3000", host, nil)
		if resp.StatusCode != 504 || body != "gateway timeout\n" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Fatalf("504 took %v; the timeout is 300ms", d)
		}
	})
	t.Run("503 node at its connection limit", func(t *testing.T) {
		time.Sleep(3 * time.Second) // let the slow request of the 504 case finish on the node
		var wg sync.WaitGroup
		wg.Go(func() { do(t, testClient(), "GET", e.url+"/slow?ms=250", host, nil) })
		for live.inflight.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		resp, body := do(t, testClient(), "GET", e.url+"/", host, nil)
		wg.Wait()
		if resp.StatusCode != 503 || body != "service unavailable\n" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
}

func TestClientTimeouts(t *testing.T) {
	node := startNode(t, "n0")
	d := poolData("round_robin", node)
	d["Server"] = "  read_header_timeout: 300ms\n  body_timeout: 300ms"
	e := startEdge(t, poolConfig, d)
	cases := []struct {
		name string
		raw  string
	}{
		{"header never finishes", "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "},
		{"small body never arrives", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"},
		{"large body stalls", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + strings.Repeat("x", 200000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got := rawRequest(t, e.addr, tc.raw)
			if !strings.HasPrefix(got, "HTTP/1.1 408") {
				t.Fatalf("got %q, want 408", got)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("408 took %v", d)
			}
		})
	}
}

// TestLargeBodiesAreStreamed sends a large upload and a large download
// through edge and checks that the whole process (client, edge and node
// together) allocated far less than the body size: nothing buffered it.
func TestLargeBodiesAreStreamed(t *testing.T) {
	size := int64(256 << 20)
	if s := testingBodySize(); s > 0 {
		size = s
	}
	node := startNode(t, "n0")
	d := poolData("round_robin", node)
	d["Server"] = "  max_body_bytes: 0"
	e := startEdge(t, poolConfig, d)
	c := testClient()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	req, _ := http.NewRequest("POST", e.url+"/upload", io.NopCloser(&patternReader{left: size}))
	req.ContentLength = -1 // chunked: edge cannot know the size in advance
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != strconv.FormatInt(size, 10) {
		t.Fatalf("node received %s bytes, want %d", got, size)
	}

	resp, err = c.Get(e.url + "/download?n=" + strconv.FormatInt(size, 10))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("downloaded %d bytes (%v), want %d", n, err, size)
	}

	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	if limit := uint64(size / 8); allocated > limit {
		t.Fatalf("moving 2 × %d MiB allocated %d MiB; a buffered body would show here (limit %d MiB)",
			size>>20, allocated>>20, limit>>20)
	}
	t.Logf("2 × %d MiB through edge allocated %.1f MiB in the whole process", size>>20, float64(allocated)/(1<<20))
}

func testingBodySize() int64 {
	n, _ := strconv.ParseInt(os.Getenv("EDGE_TEST_BODY_BYTES"), 10, 64)
	return n
}

func scrape(t *testing.T, e *edgeUnderTest) string {
	t.Helper()
	resp, body := do(t, testClient(), "GET", e.admin+"/metrics", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}
	return body
}

func grepLines(s, substr string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// A node's 5xx that the retry policy would retry is passed on as it is
// when no other node can take the request: the client sees the node's
// body and Retry-After, not a 503 made up by edge.
func TestRetryableAnswerPassedOnWhenNoOtherNode(t *testing.T) {
	var hits atomic.Int64
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "node says wait")
	}))
	t.Cleanup(node.Close)
	e := startEdge(t, `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
upstreams:
  app:
    nodes: [{address: "{{.}}"}]
    retries: {attempts: 2, on: ["503"]}
routes: [{proxy: app}]
`, strings.TrimPrefix(node.URL, "http://"))
	resp, body := do(t, testClient(), "GET", e.url+"/", nil, nil)
	if resp.StatusCode != 503 || body != "node says wait" || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("got %d %q Retry-After %q; want the node's 503 \"node says wait\", Retry-After 7",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the node got %d requests, want 1", n)
	}
}
