package router

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// statusConfig is three nodes behind one route, checked every 200 ms.
const statusConfig = `
listeners: [{address: "127.0.0.1:0", name: public}]
admin: {address: "127.0.0.1:0"{{if .Token}}, token: "{{.Token}}"{{end}}}
upstreams:
  app:
    policy: round_robin
    health_check: {path: /, interval: 200ms, timeout: 200ms, fall: 2, rise: 1}
    nodes:
{{- range $i, $a := .Nodes}}
      - {address: "{{$a}}", name: "n{{$i}}"}
{{- end}}
routes:
  - name: {{.Route}}
    match: {path_prefix: /}
    proxy: {{.Pool}}
`

func statusData(token string, nodes ...*testNode) map[string]any {
	d := nodesData(nodes...)
	d["Token"], d["Route"], d["Pool"] = token, "app", "app"
	return d
}

// statusJSON is the part of GET /status that the tests read.
type statusJSON struct {
	Version      string `json:"version"`
	ConfigPath   string `json:"config_path"`
	AuthRequired bool   `json:"auth_required"`
	Reload       struct {
		OK       bool   `json:"ok"`
		Error    string `json:"error"`
		Failures uint64 `json:"failures"`
	} `json:"reload"`
	Listeners []struct {
		Name, Address string
		TLS           bool `json:"tls"`
	} `json:"listeners"`
	Routes []struct {
		Name, Match, Action, Pool string
		Cached                    bool
	} `json:"routes"`
	Pools []struct {
		Name  string `json:"name"`
		Nodes []struct {
			Name      string `json:"name"`
			State     string `json:"state"`
			Reason    string `json:"reason"`
			LastCheck *struct {
				Passed    bool    `json:"passed"`
				LatencyMS float64 `json:"latency_ms"`
				Error     string  `json:"error"`
			} `json:"last_check"`
			Weight           int `json:"weight"`
			ConfiguredWeight int `json:"configured_weight"`
			Traffic          struct {
				RPS       float64  `json:"requests_per_second"`
				ErrorRate float64  `json:"error_rate"`
				P50       *float64 `json:"p50_ms"`
				P99       *float64 `json:"p99_ms"`
				Requests  uint64   `json:"requests"`
				History   []struct {
					RPS float64  `json:"rps"`
					P50 *float64 `json:"p50_ms"`
				} `json:"history"`
			} `json:"traffic"`
		} `json:"nodes"`
	} `json:"pools"`
	Cache struct {
		MaxBytes int64 `json:"max_bytes"`
	} `json:"cache"`
	Certificates []any `json:"certificates"`
}

func getStatus(t *testing.T, e *edgeUnderTest, hdr map[string]string) statusJSON {
	t.Helper()
	resp, body := do(t, testClient(), "GET", e.admin+"/status", hdr, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /status: %d %s", resp.StatusCode, body)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("GET /status: %v\n%s", err, body)
	}
	return st
}

// waitStatus polls GET /status until ok accepts it, for at most d.
func waitStatus(t *testing.T, e *edgeUnderTest, d time.Duration, what string, ok func(statusJSON) bool) statusJSON {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := getStatus(t, e, nil)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("after %s: %s\n%s", d, what, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nodeStates(st statusJSON) map[string]string {
	out := map[string]string{}
	for _, p := range st.Pools {
		for _, n := range p.Nodes {
			out[n.Name] = n.State
		}
	}
	return out
}

func TestStatusReportsNodesTrafficAndFailures(t *testing.T) {
	nodes := startNodes(t, 3)
	e := startEdge(t, statusConfig, statusData("", nodes...))

	// Nodes start up before their first check: wait for a check of each.
	st := waitStatus(t, e, 5*time.Second, "three nodes up and checked", func(st statusJSON) bool {
		s := nodeStates(st)
		if len(s) != 3 || s["n0"] != "up" || s["n1"] != "up" || s["n2"] != "up" {
			return false
		}
		for _, n := range st.Pools[0].Nodes {
			if n.LastCheck == nil {
				return false
			}
		}
		return true
	})
	if len(st.Listeners) != 1 || st.Listeners[0].Name != "public" || st.Listeners[0].Address != e.addr || st.Listeners[0].TLS {
		t.Errorf("listeners = %+v, want public on %s", st.Listeners, e.addr)
	}
	if len(st.Routes) != 1 || st.Routes[0].Name != "app" || st.Routes[0].Action != "proxy" || st.Routes[0].Pool != "app" ||
		st.Routes[0].Match != "path_prefix=/" || st.Routes[0].Cached {
		t.Errorf("routes = %+v", st.Routes)
	}
	if st.ConfigPath != e.path || !st.Reload.OK || st.AuthRequired || st.Cache.MaxBytes <= 0 {
		t.Errorf("config_path %q (want %q), reload ok %v, auth %v, cache max %d", st.ConfigPath, e.path, st.Reload.OK, st.AuthRequired, st.Cache.MaxBytes)
	}
	for _, n := range st.Pools[0].Nodes {
		// (A check may fail now and then on a loaded machine without
		// taking the node down: fall is 2.)
		if n.LastCheck == nil || n.LastCheck.LatencyMS <= 0 || n.Reason != "" || n.Weight != 1 || n.ConfiguredWeight != 1 {
			t.Errorf("node %s: last check %+v, reason %q, weights %d/%d", n.Name, n.LastCheck, n.Reason, n.Weight, n.ConfiguredWeight)
		}
	}

	// Traffic: 20 requests per node (round robin), some of them slow.
	c := testClient()
	for i := range 60 {
		path := "/"
		if i%5 == 0 { // 4 of every node's 20
			path = "/slow?ms=" + strconv.Itoa(30+rand.IntN(41))
		}
		if resp, _ := do(t, c, "GET", e.url+path, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	st = waitStatus(t, e, 4*time.Second, "traffic figures for every node", func(st statusJSON) bool {
		for _, n := range st.Pools[0].Nodes {
			if n.Traffic.Requests != 20 || n.Traffic.RPS <= 0 || n.Traffic.P50 == nil || len(n.Traffic.History) == 0 {
				return false
			}
		}
		return true
	})
	for _, n := range st.Pools[0].Nodes {
		tr := n.Traffic
		if *tr.P50 <= 0 || tr.P99 == nil || *tr.P99 < *tr.P50 {
			t.Errorf("node %s: p50 %v, p99 %v: want 0 < p50 <= p99", n.Name, *tr.P50, tr.P99)
		}
		if *tr.P99 < 20 {
			t.Errorf("node %s: p99 %.2f ms, but some of its requests took at least 30 ms", n.Name, *tr.P99)
		}
		if tr.ErrorRate != 0 {
			t.Errorf("node %s: error rate %v, want 0", n.Name, tr.ErrorRate)
		}
		var sum float64
		for _, p := range tr.History {
			sum += p.RPS
		}
		if sum <= 0 {
			t.Errorf("node %s: history without requests: %+v", n.Name, tr.History)
		}
	}

	// A node that stops answering goes down with a reason within a few
	// check intervals (fall: 2 at 200 ms).
	nodes[2].stop()
	st = waitStatus(t, e, 3*time.Second, "n2 down", func(st statusJSON) bool { return nodeStates(st)["n2"] == "down" })
	for _, n := range st.Pools[0].Nodes {
		if n.Name != "n2" {
			continue
		}
		if n.Reason == "" || n.LastCheck == nil || n.LastCheck.Passed || n.LastCheck.Error == "" {
			t.Errorf("n2 down without a reason or failed check: reason %q, last check %+v", n.Reason, n.LastCheck)
		}
	}
	if s := nodeStates(st); s["n0"] != "up" || s["n1"] != "up" {
		t.Errorf("the others must stay up: %v", s)
	}
}

func TestStatusShowsTheLastReloadError(t *testing.T) {
	nodes := startNodes(t, 1)
	d := statusData("", nodes...)
	e := startEdge(t, statusConfig, d)
	c := testClient()

	d["Pool"] = "missing" // unknown upstream: refused by validation
	writeConfig(t, e.path, statusConfig, d)
	if resp, body := do(t, c, "POST", e.admin+"/reload", nil, nil); resp.StatusCode != 422 {
		t.Fatalf("invalid reload: %d %s", resp.StatusCode, body)
	}
	st := getStatus(t, e, nil)
	if st.Reload.OK || st.Reload.Failures != 1 || !strings.Contains(st.Reload.Error, "missing") {
		t.Fatalf("after a refused reload: ok %v, failures %d, error %q; want the validation error", st.Reload.OK, st.Reload.Failures, st.Reload.Error)
	}
	_, page := do(t, c, "GET", e.admin+"/", nil, nil)
	if !strings.Contains(page, `data-ok="false"`) || !strings.Contains(page, "missing") {
		t.Errorf("the page does not show the refused reload:\n%s", page)
	}

	// A reload refused elsewhere (SIGHUP calls Reload) does not leave the
	// previous, stale reason on the page.
	d["Pool"] = "other"
	writeConfig(t, e.path, statusConfig, d)
	if err := e.srv.Reload(); err == nil {
		t.Fatal("an invalid file was applied")
	}
	st = getStatus(t, e, nil)
	if st.Reload.OK || st.Reload.Failures != 2 || strings.Contains(st.Reload.Error, "missing") || st.Reload.Error == "" {
		t.Fatalf("after a second refused reload: ok %v, failures %d, error %q", st.Reload.OK, st.Reload.Failures, st.Reload.Error)
	}

	d["Pool"] = "app"
	writeConfig(t, e.path, statusConfig, d)
	if resp, body := do(t, c, "POST", e.admin+"/reload", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("valid reload: %d %s", resp.StatusCode, body)
	}
	if st := getStatus(t, e, nil); !st.Reload.OK || st.Reload.Error != "" {
		t.Fatalf("after a good reload: ok %v, error %q", st.Reload.OK, st.Reload.Error)
	}
}

// externalRef finds a reference the browser would fetch from elsewhere:
// an absolute or scheme-relative URL in src, href, action or CSS url().
var externalRef = regexp.MustCompile(`(?i)((src|href|action)\s*=\s*["']?\s*|url\(\s*["']?\s*)(https?:)?//`)

func TestStatusPageIsServerRenderedAndSelfContained(t *testing.T) {
	nodes := startNodes(t, 3)
	e := startEdge(t, statusConfig, statusData("", nodes...))
	waitStatus(t, e, 3*time.Second, "three nodes up", func(st statusJSON) bool { return len(nodeStates(st)) == 3 && nodeStates(st)["n2"] == "up" })

	resp, page := do(t, testClient(), "GET", e.admin+"/", nil, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Without JavaScript the tables are there: rows rendered by the server.
	for _, name := range []string{"n0", "n1", "n2"} {
		if !strings.Contains(page, `data-node="`+name+`" data-pool="app" data-state="up"`) {
			t.Errorf("node %s is not rendered in the page", name)
		}
	}
	for _, want := range []string{`data-route="app"`, `data-listener="public"`, e.addr, `data-act="purge"`, `data-target="drain"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Self-contained: nothing fetched from elsewhere, in the template or
	// the page, and a policy that allows nothing else.
	for name, text := range map[string]string{"status.html": statusHTML, "page": page} {
		if m := externalRef.FindString(text); m != "" {
			t.Errorf("%s refers to another host: %q", name, m)
		}
		if strings.Contains(text, "http://") || strings.Contains(text, "https://") {
			t.Errorf("%s holds an absolute URL", name)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe-inline") ||
		!strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options = %q", resp.Header.Get("X-Frame-Options"))
	}
}

func TestAdminLoginAndSessionCookie(t *testing.T) {
	const token = "s3cret-token"
	nodes := startNodes(t, 1)
	e := startEdge(t, statusConfig, statusData(token, nodes...))
	open := startEdge(t, statusConfig, statusData("", nodes...))
	rebound := "evil.example:" + e.admin[strings.LastIndexByte(e.admin, ':')+1:]
	c := testClient()

	// A real login gives the cookie.
	form := url.Values{"token": {token}}.Encode()
	formHdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": e.admin, "Sec-Fetch-Site": "same-origin"}
	resp, body := do(t, c, "POST", e.admin+"/login", formHdr, strings.NewReader(form))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("POST /login: %d (Location %q) %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == adminCookie {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.MaxAge <= 0 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, Max-Age", session)
	}
	if strings.Contains(session.Value, token) {
		t.Fatalf("the cookie holds the token itself: %q", session.Value)
	}
	cookie := adminCookie + "=" + session.Value
	expired := adminCookie + "=" + sessionCookieValue(token, time.Now().Add(-time.Minute))
	otherToken := adminCookie + "=" + sessionCookieValue("another-token", time.Now().Add(time.Hour))
	tooLong := adminCookie + "=" + sessionCookieValue(token, time.Now().Add(30*24*time.Hour))

	tests := []struct {
		name     string
		edge     *edgeUnderTest
		method   string
		path     string
		hdr      map[string]string
		body     string
		status   int
		location string
		contains string
	}{
		{name: "bearer ok", method: "GET", path: "/status", hdr: map[string]string{"Authorization": "Bearer " + token}, status: 200},
		{name: "bearer wrong", method: "GET", path: "/status", hdr: map[string]string{"Authorization": "Bearer nope"}, status: 401},
		{name: "cookie ok", method: "GET", path: "/status", hdr: map[string]string{"Cookie": cookie}, status: 200},
		{name: "cookie ok for the page", method: "GET", path: "/", hdr: map[string]string{"Cookie": cookie}, status: 200, contains: `data-node="n0"`},
		{name: "cookie ok for metrics", method: "GET", path: "/metrics", hdr: map[string]string{"Cookie": cookie}, status: 200},
		{name: "wrong cookie", method: "GET", path: "/status", hdr: map[string]string{"Cookie": adminCookie + "=" + token}, status: 401},
		{name: "garbage cookie", method: "GET", path: "/status", hdr: map[string]string{"Cookie": adminCookie + "=1.2.3"}, status: 401},
		{name: "expired cookie", method: "GET", path: "/status", hdr: map[string]string{"Cookie": expired}, status: 401},
		{name: "cookie of another token", method: "GET", path: "/status", hdr: map[string]string{"Cookie": otherToken}, status: 401},
		{name: "cookie beyond the session lifetime", method: "GET", path: "/status", hdr: map[string]string{"Cookie": tooLong}, status: 401},
		{name: "no credentials, API", method: "GET", path: "/status", status: 401},
		{name: "no credentials, page", method: "GET", path: "/", status: 303, location: "/login"},
		{name: "healthz open", method: "GET", path: "/healthz", status: 200},
		{name: "login form", method: "GET", path: "/login", status: 200, contains: `name="token"`},
		{name: "login wrong token", method: "POST", path: "/login", hdr: formHdr, body: url.Values{"token": {"nope"}}.Encode(), status: 401, contains: `name="token"`},
		{name: "login empty token", method: "POST", path: "/login", hdr: formHdr, body: "", status: 401},
		{name: "login from another site", method: "POST", path: "/login",
			hdr:  map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"},
			body: form, status: 403},
		{name: "action with cookie, same origin", method: "POST", path: "/pools/app/nodes/n0/state?state=ready",
			hdr: map[string]string{"Cookie": cookie, "Origin": e.admin, "Sec-Fetch-Site": "same-origin"}, status: 200},
		{name: "action with cookie, cross-site", method: "POST", path: "/pools/app/nodes/n0/state?state=drain",
			hdr: map[string]string{"Cookie": cookie, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, status: 403},
		{name: "purge with cookie, other origin", method: "POST", path: "/cache/purge?all=1",
			hdr: map[string]string{"Cookie": cookie, "Origin": "http://127.0.0.1:1"}, status: 403},
		// DNS rebinding: the page of evil.example is same-origin with
		// itself, but the browser keeps the cookie for the admin's host.
		{name: "rebound host name, no cookie", method: "GET", path: "/status",
			hdr: map[string]string{"Host": rebound, "Origin": "http://" + rebound, "Sec-Fetch-Site": "same-origin"}, status: 401},
		{name: "logout", method: "POST", path: "/logout", hdr: map[string]string{"Cookie": cookie, "Origin": e.admin}, status: 303, location: "/login"},
		{name: "no token: page open", edge: open, method: "GET", path: "/", status: 200, contains: `data-node="n0"`},
		{name: "no token: status open", edge: open, method: "GET", path: "/status", status: 200},
		{name: "no token: login goes home", edge: open, method: "GET", path: "/login", status: 303, location: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := e
			if tt.edge != nil {
				target = tt.edge
			}
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(tt.body)
			}
			resp, got := do(t, c, tt.method, target.admin+tt.path, tt.hdr, body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, got)
			}
			if tt.location != "" && resp.Header.Get("Location") != tt.location {
				t.Errorf("Location %q, want %q", resp.Header.Get("Location"), tt.location)
			}
			if tt.contains != "" && !strings.Contains(got, tt.contains) {
				t.Errorf("answer lacks %q:\n%s", tt.contains, got)
			}
			if tt.status == 401 && strings.Contains(got, token) {
				t.Errorf("a refusal echoes the token")
			}
		})
	}

	// Logging out clears the cookie.
	resp, _ = do(t, c, "POST", e.admin+"/logout", map[string]string{"Cookie": cookie}, strings.NewReader(""))
	cleared := false
	for _, ck := range resp.Cookies() {
		cleared = cleared || (ck.Name == adminCookie && ck.Value == "" && ck.MaxAge < 0)
	}
	if !cleared {
		t.Errorf("POST /logout did not clear the cookie: %v", resp.Header.Values("Set-Cookie"))
	}
}

func TestLatencyHistogram(t *testing.T) {
	// Every duration falls in a bucket whose bounds hold it; buckets are
	// contiguous and increasing.
	for i := 0; i < latencyBuckets-1; i++ {
		_, hi := latencyBounds(i)
		lo, _ := latencyBounds(i + 1)
		if hi != lo {
			t.Fatalf("bucket %d ends at %v, bucket %d starts at %v", i, hi, i+1, lo)
		}
	}
	for range 10000 {
		secs := rand.ExpFloat64() * 0.05
		i := latencyBucket(secs)
		lo, hi := latencyBounds(i)
		if secs < lo || (secs >= hi && i != latencyBuckets-1) {
			t.Fatalf("%v s in bucket %d [%v, %v)", secs, i, lo, hi)
		}
	}
	if latencyBucket(0) != 0 || latencyBucket(-1) != 0 || latencyBucket(1e9) != latencyBuckets-1 {
		t.Fatal("out-of-range durations must land in the end buckets")
	}
	// Quantiles of 90 answers at ~1 ms and 10 at ~100 ms.
	var st nodeStats
	for range 90 {
		st.record(200, 0.001)
	}
	for range 10 {
		st.record(503, 0.1)
	}
	var b [latencyBuckets]uint64
	for i := range b {
		b[i] = st.latency[i].Load()
	}
	p50, p99 := quantile(&b, 0.5), quantile(&b, 0.99)
	if *p50 < 0.8 || *p50 > 1.25 || *p99 < 80 || *p99 > 125 {
		t.Fatalf("p50 %.3f ms (want ~1), p99 %.3f ms (want ~100)", *p50, *p99)
	}
	if st.requests.Load() != 100 || st.errors.Load() != 10 {
		t.Fatalf("requests %d errors %d", st.requests.Load(), st.errors.Load())
	}
	var empty [latencyBuckets]uint32
	if quantile(&empty, 0.5) != nil {
		t.Fatal("an empty histogram has no quantile")
	}
	if n := testing.AllocsPerRun(100, func() { st.record(200, 0.002) }); n != 0 {
		t.Fatalf("record allocates %.1f times", n)
	}
}

func TestRouteCountRecordsNodeStatsWithoutAllocating(t *testing.T) {
	m := newMetrics(nil)
	nodes := []*Node{{Name: "a", index: 0}, {Name: "b", index: 1}}
	rm := m.forRoute("r", "p", nodes)
	rm.count(nodes[1], 200, 0.001) // the first answer creates its counter
	if n := testing.AllocsPerRun(200, func() {
		rm.count(nodes[1], 200, 0.001)
		rm.count(nil, 404, 0.001)
	}); n != 0 {
		t.Fatalf("count allocates %.1f times per call", n)
	}
	rm.count(nodes[1], 502, 0.2)
	// The same counters whatever the route or snapshot: by pool and node.
	b := m.forNode("p", "b").stats
	if b != m.status.statsFor("p", "b") || b.requests.Load() != 203 || b.errors.Load() != 1 { // AllocsPerRun runs once more to warm up
		t.Fatalf("node b: %d requests, %d errors; want 203 and 1", b.requests.Load(), b.errors.Load())
	}
	if a := m.status.statsFor("p", "a"); a.requests.Load() != 0 {
		t.Fatalf("node a counted %d requests it never answered", a.requests.Load())
	}
}
