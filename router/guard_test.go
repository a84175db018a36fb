package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const guardConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
server:
  trusted_proxies: [{{.Trusted}}]
{{.Server}}
upstreams:
  app:
    nodes: [{address: "{{index .Nodes 0}}"}]
routes:
  - name: admin
    match: {path_prefix: /admin}
    access: {allow: [10.0.0.0/8], deny: [10.9.0.0/16]}
    proxy: app
  - name: office
    match: {path_prefix: /office}
    access: {allow: [127.0.0.1]}
    proxy: app
  - name: blocked
    match: {path_prefix: /blocked}
    access: {deny: [127.0.0.0/8]}
    proxy: app
  - name: search
    match: {path_prefix: /search}
    rate_limit: {requests_per_second: 0.01, burst: 2, key: route}
    proxy: app
  - name: login
    match: {path_prefix: /login}
    rate_limit: {requests_per_second: 0.01, burst: 1}
    proxy: app
  - name: all
    proxy: app
`

// startGuarded starts one node and edge with guardConfig; trusted lists
// the trusted proxies (the test client is 127.0.0.1) and server is extra
// YAML under server:.
func startGuarded(t *testing.T, trusted, server string) (*edgeUnderTest, *testNode) {
	t.Helper()
	n := startNode(t, "a")
	data := nodesData(n)
	data["Trusted"] = trusted
	data["Server"] = server
	return startEdge(t, guardConfig, data), n
}

func TestAccessListsAnswer403AndNeverReachTheNode(t *testing.T) {
	e, n := startGuarded(t, "", "")
	c := testClient()
	tests := []struct {
		name   string
		path   string
		xff    string
		status int
	}{
		{"outside the allow list", "/admin/orders", "", 403},
		{"allow list of the client", "/office/x", "", 200},
		{"deny list of the client", "/blocked/x", "", 403},
		{"no list", "/public", "", 200},
		// An untrusted peer cannot claim an allowed address.
		{"spoofed X-Forwarded-For", "/admin/orders", "10.1.2.3", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := n.requests.Load()
			hdr := map[string]string{}
			if tt.xff != "" {
				hdr["X-Forwarded-For"] = tt.xff
			}
			resp, body := do(t, c, "GET", e.url+tt.path, hdr, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			reached := n.requests.Load() - before
			if want := int64(map[bool]int{true: 1}[tt.status == 200]); reached != want {
				t.Fatalf("node received %d requests, want %d", reached, want)
			}
		})
	}
	m := scrape(t, e)
	for _, want := range []string{
		`edge_limit_triggered_total{limit="access",route="admin"} 2`,
		`edge_limit_triggered_total{limit="access",route="blocked"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "edge_limit_triggered_total"))
		}
	}
}

func TestAccessListsUseTheClientBehindATrustedProxy(t *testing.T) {
	e, _ := startGuarded(t, "127.0.0.1", "")
	c := testClient()
	for _, tt := range []struct {
		xff    string
		status int
	}{
		{"10.1.2.3", 200},            // in allow
		{"10.9.0.1", 403},            // in allow, but denied
		{"192.0.2.7", 403},           // outside allow
		{"10.1.2.3, 192.0.2.7", 403}, // the right-most untrusted address counts
	} {
		resp, body := do(t, c, "GET", e.url+"/admin/x", map[string]string{"X-Forwarded-For": tt.xff}, nil)
		if resp.StatusCode != tt.status {
			t.Errorf("X-Forwarded-For %q: status = %d (%s), want %d", tt.xff, resp.StatusCode, body, tt.status)
		}
	}
}

func TestRateLimitPerClientAnswers429WithRetryAfter(t *testing.T) {
	e, n := startGuarded(t, "127.0.0.1", "  rate_limit: {requests_per_second: 0.2, burst: 3}")
	c := testClient()
	get := func(client string) *http.Response {
		resp, _ := do(t, c, "GET", e.url+"/public", map[string]string{"X-Forwarded-For": client}, nil)
		return resp
	}
	for i := range 3 {
		if resp := get("192.0.2.1"); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: status %d", i+1, resp.StatusCode)
		}
	}
	before := n.requests.Load()
	resp := get("192.0.2.1")
	if resp.StatusCode != 429 {
		t.Fatalf("request over the burst: status %d, want 429", resp.StatusCode)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 5 {
		t.Fatalf("Retry-After = %q, want whole seconds in 1..5 (one token every 5 s)", resp.Header.Get("Retry-After"))
	}
	if n.requests.Load() != before {
		t.Fatal("a rate-limited request reached the node")
	}
	// A well-behaved client next to it is unaffected.
	if resp := get("192.0.2.2"); resp.StatusCode != 200 {
		t.Fatalf("another client: status %d, want 200", resp.StatusCode)
	}
	if m := scrape(t, e); !strings.Contains(m, `edge_limit_triggered_total{limit="rate",route=""} 1`) {
		t.Errorf("rate metric missing:\n%s", grepLines(m, "edge_limit_triggered_total"))
	}
}

func TestRouteRateLimits(t *testing.T) {
	e, _ := startGuarded(t, "127.0.0.1", "")
	c := testClient()
	status := func(path, client string) int {
		resp, _ := do(t, c, "GET", e.url+path, map[string]string{"X-Forwarded-For": client}, nil)
		return resp.StatusCode
	}
	// key: route — one bucket of 2 shared by every client.
	got := []int{status("/search", "192.0.2.1"), status("/search", "192.0.2.2"), status("/search", "192.0.2.3")}
	if got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Fatalf("route bucket: statuses %v, want [200 200 429]", got)
	}
	// key: client_ip — a bucket of 1 per client.
	got = []int{status("/login", "192.0.2.1"), status("/login", "192.0.2.1"), status("/login", "192.0.2.2")}
	if got[0] != 200 || got[1] != 429 || got[2] != 200 {
		t.Fatalf("client buckets: statuses %v, want [200 429 200]", got)
	}
	// Other routes are not limited.
	for i := range 5 {
		if s := status("/public", "192.0.2.1"); s != 200 {
			t.Fatalf("unlimited route, request %d: status %d", i, s)
		}
	}
	m := scrape(t, e)
	for _, want := range []string{
		`edge_limit_triggered_total{limit="rate",route="search"} 1`,
		`edge_limit_triggered_total{limit="rate",route="login"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "edge_limit_triggered_total"))
		}
	}
}

func TestRateLimitBucketsSurviveAReload(t *testing.T) {
	e, _ := startGuarded(t, "", "")
	c := testClient()
	if resp, _ := do(t, c, "GET", e.url+"/login", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, c, "GET", e.url+"/login", nil, nil); resp.StatusCode != 429 {
		t.Fatalf("after a reload with the same limit: status %d, want 429 (bucket kept)", resp.StatusCode)
	}
}

func TestConnectionsPerIPLimit(t *testing.T) {
	e, _ := startGuarded(t, "", "  max_connections_per_ip: 2")
	open := func() (net.Conn, *bufio.Reader) {
		conn, err := net.DialTimeout("tcp", e.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn, bufio.NewReader(conn)
	}
	roundTrip := func(conn net.Conn, br *bufio.Reader) error {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "GET /public HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return nil
	}
	c1, r1 := open()
	c2, r2 := open()
	if err := roundTrip(c1, r1); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(c2, r2); err != nil {
		t.Fatal(err)
	}
	c3, r3 := open()
	if err := roundTrip(c3, r3); err == nil {
		t.Fatal("a third connection from the same address was served")
	}
	// The two admitted connections still work, and a slot frees on close.
	if err := roundTrip(c1, r1); err != nil {
		t.Fatalf("first connection after the refusal: %v", err)
	}
	c2.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c4, r4 := open()
		if err := roundTrip(c4, r4); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection admitted after one was closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m := scrape(t, e); strings.Contains(m, `edge_limit_triggered_total{limit="connections_per_ip",route=""} 0`) {
		t.Errorf("refusal not counted:\n%s", grepLines(m, "edge_limit_triggered_total"))
	}
}

func TestMaxRequestsPerConnection(t *testing.T) {
	e, _ := startGuarded(t, "", "  max_requests_per_connection: 3")
	conn, err := net.DialTimeout("tcp", e.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for i := 1; i <= 3; i++ {
		if _, err := io.WriteString(conn, "GET /public HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close != (i == 3) {
			t.Fatalf("request %d: status %d, Connection: close = %v", i, resp.StatusCode, resp.Close)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the last allowed request: read %v, want EOF", err)
	}
	if m := scrape(t, e); !strings.Contains(m, `edge_limit_triggered_total{limit="requests_per_connection",route=""} 1`) {
		t.Errorf("metric missing:\n%s", grepLines(m, "edge_limit_triggered_total"))
	}
}

func TestPathSpellingsCannotBypassARoute(t *testing.T) {
	e, n := startGuarded(t, "", "")
	attempts := []struct {
		target string
		status int
	}{
		{"/admin/orders", 403},
		{"/%61dmin/orders", 403},
		{"/%41dmin/orders", 200}, // "/Admin" is another path: routed to all
		{"/x/../admin/orders", 403},
		{"/x/%2e%2e/admin/orders", 403},
		{"/x/%2E%2e/admin/orders", 403},
		{"/./admin/orders", 403},
		{"//admin/orders", 403},
		{"/public/..//admin", 403},
		{"/../../admin", 403},
		{"/admin%2Forders", 400}, // encoded slash: refused by default
		{"/public%2F..%2Fadmin", 400},
		{"/admin%zz", 400},
		{"http://a/x/../admin", 403}, // absolute form, same host as Host
	}
	for _, a := range attempts {
		t.Run(a.target, func(t *testing.T) {
			n.mu.Lock()
			n.lastURI = ""
			n.mu.Unlock()
			before := n.requests.Load()
			status := rawRequest(t, e.addr, "GET "+a.target+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(status, "HTTP/1.1 "+strconv.Itoa(a.status)+" ") {
				t.Fatalf("status line %q, want %d", status, a.status)
			}
			reached := n.requests.Load() - before
			if (a.status == 200) != (reached == 1) {
				t.Fatalf("node received %d requests", reached)
			}
		})
	}
}

func TestNodeReceivesThePathThatWasRouted(t *testing.T) {
	for _, tt := range []struct {
		server, target, want string
	}{
		{"", "/public/../x/./y//z?q=%2e", "/x/y/z?q=%2e"},
		{"", "/%7Euser/%c3%a9", "/~user/%C3%A9"},
		{"", "http://a/abs/../p?x=1", "/p?x=1"},
		{"  encoded_slashes: keep", "/a%2fb/c", "/a%2Fb/c"},
		{"  encoded_slashes: keep", "/a%2fb/../c", "/c"}, // "a%2Fb" is one segment
		{"  encoded_slashes: decode", "/a%2fb/../c", "/a/c"},
		{"  merge_slashes: false", "//a//b", "//a//b"},
	} {
		t.Run(tt.server+" "+tt.target, func(t *testing.T) {
			e, n := startGuarded(t, "", tt.server)
			status := rawRequest(t, e.addr, "GET "+tt.target+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
				t.Fatalf("status line %q", status)
			}
			n.mu.Lock()
			got := n.lastURI
			n.mu.Unlock()
			if got != tt.want {
				t.Fatalf("node received %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOverrideHeadersFromUntrustedClientsAreRemoved(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		t.Run("trusted="+strconv.FormatBool(trusted), func(t *testing.T) {
			list := ""
			if trusted {
				list = "127.0.0.1"
			}
			e, n := startGuarded(t, list, "")
			hdr := map[string]string{}
			for _, name := range overrideHeaders {
				hdr[string(name)] = "/admin"
			}
			hdr["X-Forwarded-Host"] = "evil.example"
			resp, _ := do(t, testClient(), "GET", e.url+"/public", hdr, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := n.header()
			for _, name := range overrideHeaders {
				if v := got.Get(string(name)); (v != "") != trusted {
					t.Errorf("%s = %q reached the node (trusted peer: %v)", name, v, trusted)
				}
			}
			if xfh := got.Get("X-Forwarded-Host"); (xfh == "evil.example") != trusted {
				t.Errorf("X-Forwarded-Host = %q (trusted peer: %v)", xfh, trusted)
			}
		})
	}
}

func TestAdminRefusesCrossSiteRequests(t *testing.T) {
	e, _ := startGuarded(t, "", "")
	port := e.admin[strings.LastIndexByte(e.admin, ':')+1:]
	tests := []struct {
		name   string
		host   string
		hdr    map[string]string
		status int
	}{
		{"curl", "127.0.0.1:" + port, nil, 200},
		{"localhost", "localhost:" + port, nil, 200},
		{"same origin", "127.0.0.1:" + port, map[string]string{"Origin": "http://127.0.0.1:" + port, "Sec-Fetch-Site": "same-origin"}, 200},
		{"address bar", "127.0.0.1:" + port, map[string]string{"Sec-Fetch-Site": "none"}, 200},
		{"cross-site form", "127.0.0.1:" + port, map[string]string{"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, 403},
		{"other port on the same host", "127.0.0.1:" + port, map[string]string{"Origin": "http://127.0.0.1:3000"}, 403},
		{"cross-site fetch metadata", "127.0.0.1:" + port, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site fetch metadata", "127.0.0.1:" + port, map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"DNS rebinding", "evil.example:" + port, map[string]string{"Origin": "http://evil.example:" + port}, 403},
		{"rebinding without Origin", "evil.example:" + port, nil, 403},
	}
	c := testClient()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Host": tt.host}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			resp, body := do(t, c, "POST", e.admin+"/reload", hdr, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			for k := range resp.Header {
				if strings.HasPrefix(strings.ToLower(k), "access-control-") {
					t.Fatalf("admin answered with CORS header %s", k)
				}
			}
		})
	}
	if m := scrape(t, e); !strings.Contains(m, `edge_config_reloads_total{result="success"} 4`) {
		t.Errorf("want exactly the 4 allowed reloads:\n%s", grepLines(m, "edge_config_reloads_total"))
	}
}

func TestAdminIsNotReachableFromPublicListeners(t *testing.T) {
	const cfg = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0", token: "s3cret"}
routes:
  - match: {path_prefix: /app}
    respond: {body: app}
`
	e := startEdge(t, cfg, nil)
	c := testClient()
	for _, path := range []string{"/metrics", "/reload", "/cache/purge", "/pools", "/debug/pprof/", "/version", "/healthz"} {
		for _, method := range []string{"GET", "POST"} {
			resp, body := do(t, c, method, e.url+path, map[string]string{"Authorization": "Bearer s3cret"}, nil)
			if resp.StatusCode != 404 {
				t.Errorf("%s %s on the public listener: status %d (%q), want 404", method, path, resp.StatusCode, body)
			}
		}
	}
	// The admin listener itself still requires the token.
	if resp, _ := do(t, c, "GET", e.admin+"/metrics", nil, nil); resp.StatusCode != 401 {
		t.Fatalf("admin without token: status %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(t, c, "GET", e.admin+"/metrics", map[string]string{"Authorization": "Bearer wrong"}, nil); resp.StatusCode != 401 {
		t.Fatalf("admin with a wrong token: status %d, want 401", resp.StatusCode)
	}
	resp, body := do(t, c, "GET", e.admin+"/metrics", map[string]string{"Authorization": "Bearer s3cret"}, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `edge_config_reloads_total{result="success"} 0`) {
		t.Fatalf("admin with the token: status %d; reloads from the public listener must be 0:\n%s", resp.StatusCode, grepLines(body, "edge_config_reloads_total"))
	}
	// With a token, a host name is allowed (the browser cannot send it).
	resp, _ = do(t, c, "GET", e.admin+"/version", map[string]string{"Authorization": "Bearer s3cret", "Host": "edge.internal"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("admin by name with the token: status %d, want 200", resp.StatusCode)
	}
}
