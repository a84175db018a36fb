package router

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// explainLoad writes cfgYAML (a template over data) to a file and loads it.
func explainLoad(t *testing.T, cfgYAML string, data any) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.yaml")
	writeConfig(t, path, cfgYAML, data)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("loading test config: %v", err)
	}
	return cfg
}

// explainRoutes exercises every kind of condition and action. Its nodes
// are addresses only: offline explanations never contact them.
const explainRoutes = `listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
upstreams:
  app:
    policy: round_robin
    nodes: [{name: a1, address: "127.0.0.1:9001"}, {name: a2, address: "127.0.0.1:9002"}]
  api:
    nodes: [{name: p1, address: "127.0.0.1:9003"}]
  sticky:
    policy: consistent_hash
    hash: {source: header, name: X-User}
    nodes:
      - {name: s1, address: "127.0.0.1:9011"}
      - {name: s2, address: "127.0.0.1:9012"}
      - {name: s3, address: "127.0.0.1:9013"}
      - {name: s4, address: "127.0.0.1:9014"}
routes:
  - name: old-blog
    match: {hosts: [www.example.com], path_prefix: /blog/}
    redirect: {prefix: /news/}
  - name: health
    match: {path: /healthz}
    respond: {status: 200, body: "ok\n"}
  - name: api-write
    match: {hosts: [api.example.com], path_prefix: /v1/, methods: [POST, PUT]}
    proxy: api
    request_headers: {set: {X-Api: "1"}, remove: [Cookie]}
  - name: beta
    match: {hosts: [api.example.com], headers: [{name: X-Beta, value: "1"}]}
    proxy: api
  - name: sticky
    match: {hosts: [sticky.example.com]}
    proxy: sticky
  - name: admin-only
    match: {hosts: [www.example.com], path_prefix: /admin}
    access: {allow: [10.0.0.0/8]}
    proxy: app
  - name: secure
    match: {hosts: [secure.example.com]}
    redirect: {https: true}
  - name: item
    match: {hosts: [www.example.com], path_regex: "^/item/[0-9]+$"}
    proxy: app
  - name: www
    match: {hosts: [www.example.com, secure.example.com]}
    proxy: app
`

// miss returns the reason given for route name in e, or "".
func miss(e Explanation, name string) string {
	for _, m := range e.NotMatched {
		if m.Name == name {
			return m.Reason
		}
	}
	return ""
}

func TestExplainOfflineRoutes(t *testing.T) {
	cfg := explainLoad(t, explainRoutes, nil)
	cases := []struct {
		name    string
		method  string
		url     string
		headers []string
		client  string

		route    string // "" when no route takes it
		status   int
		errCode  string
		location string
		pool     string
		misses   map[string]string // route → substring of its reason
		path     string
	}{
		{name: "prefix redirect", url: "http://www.example.com/blog/post?x=1", route: "old-blog", status: 301,
			location: "/news/post?x=1", path: "/blog/post"},
		{name: "redirect keeps the method", method: "POST", url: "http://www.example.com/blog/post", route: "old-blog", status: 308},
		{name: "exact path respond", url: "http://www.example.com/healthz", route: "health", status: 200,
			misses: map[string]string{"old-blog": `path "/healthz" does not start with "/blog/"`,
				"item": "not tried: route health (#1) matched first", "www": "this route would match too"}},
		{name: "exact path is exact", url: "http://www.example.com/healthz/x", route: "www",
			misses: map[string]string{"health": `path "/healthz/x" is not "/healthz"`}, pool: "app"},
		{name: "method condition", method: "POST", url: "http://api.example.com/v1/users", route: "api-write", pool: "api"},
		{name: "method refused", url: "http://api.example.com/v1/users", status: 404, errCode: "no_route",
			misses: map[string]string{"api-write": "method GET is not one of POST, PUT", "beta": "header X-Beta is missing",
				"www":    `not considered: other host ("api.example.com" is not one of www.example.com, secure.example.com)`,
				"health": `path "/v1/users" is not "/healthz"`}},
		{name: "header value", url: "http://api.example.com/x", headers: []string{"X-Beta: 2"}, status: 404, errCode: "no_route",
			misses: map[string]string{"beta": `header X-Beta is "2", not "1"`}},
		{name: "header match", url: "http://API.Example.com:8080/x", headers: []string{"X-Beta: 1"}, route: "beta", pool: "api"},
		{name: "regex", url: "http://www.example.com/item/42", route: "item", pool: "app"},
		{name: "regex refused", url: "http://www.example.com/item/x", route: "www",
			misses: map[string]string{"item": `path "/item/x" does not match regex "^/item/[0-9]+$"`}},
		{name: "dot segments then access denied", url: "http://www.example.com/blog/../admin/x", route: "admin-only",
			status: 403, errCode: "access_denied", path: "/admin/x"},
		{name: "access allowed", url: "http://www.example.com/admin", client: "10.1.2.3", route: "admin-only", pool: "app"},
		{name: "https redirect", url: "http://secure.example.com/a?b=1", route: "secure", status: 301,
			location: "https://secure.example.com/a?b=1"},
		{name: "https redirect does not loop", url: "https://secure.example.com/a", route: "www", pool: "app",
			misses: map[string]string{"secure": "redirect would not change the URL: the request is already HTTPS"}},
		{name: "bad path", url: "http://www.example.com/a%2Fb", status: 400, errCode: "bad_path"},
		{name: "bad percent", url: "http://www.example.com/a%zz", status: 400, errCode: "bad_path"},
		{name: "smuggling framing", method: "POST", url: "http://www.example.com/", headers: []string{"Content-Length: 5", "Transfer-Encoding: chunked"},
			status: 400, errCode: "bad_request"},
		{name: "uri too long", url: "http://www.example.com/" + strings.Repeat("a", 9000), status: 414, errCode: "uri_too_long"},
		{name: "unknown host", url: "http://nope.example.com/", status: 404, errCode: "no_route",
			misses: map[string]string{"old-blog": "not considered: other host", "health": `path "/" is not "/healthz"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := ExplainInput{Method: tc.method, URL: tc.url, Headers: tc.headers}
			if tc.client != "" {
				in.Client = netip.MustParseAddr(tc.client)
			}
			e, err := ExplainOffline(cfg, in)
			if err != nil {
				t.Fatal(err)
			}
			js, _ := json.MarshalIndent(e, "", "  ")
			if e.Mode != "offline" {
				t.Errorf("mode %q, want offline", e.Mode)
			}
			switch {
			case tc.route == "" && e.Route != nil:
				t.Fatalf("route %q matched, want none\n%s", e.Route.Name, js)
			case tc.route != "" && (e.Route == nil || e.Route.Name != tc.route):
				t.Fatalf("want route %q\n%s", tc.route, js)
			}
			if e.Status != tc.status || e.Error != tc.errCode {
				t.Errorf("status %d error %q, want %d %q\n%s", e.Status, e.Error, tc.status, tc.errCode, js)
			}
			if e.Error != "" && e.Detail == "" {
				t.Errorf("error %q without a detail", e.Error)
			}
			if tc.location != "" && e.Route.Location != tc.location {
				t.Errorf("location %q, want %q", e.Route.Location, tc.location)
			}
			if tc.path != "" && e.Request.Path != tc.path {
				t.Errorf("path %q, want %q", e.Request.Path, tc.path)
			}
			if tc.pool != "" && (e.Pool == nil || e.Pool.Name != tc.pool || e.Pool.Chosen == "") {
				t.Errorf("want pool %q with a chosen node\n%s", tc.pool, js)
			}
			for name, want := range tc.misses {
				if got := miss(e, name); !strings.Contains(got, want) {
					t.Errorf("route %s: reason %q, want it to contain %q", name, got, want)
				}
			}
			// Every route is accounted for: matched, or listed with a reason.
			n := len(e.NotMatched)
			if e.Route != nil {
				n++
			}
			if n != len(cfg.Routes) {
				t.Errorf("%d routes explained, want %d\n%s", n, len(cfg.Routes), js)
			}
			for _, m := range e.NotMatched {
				if m.Reason == "" {
					t.Errorf("route %s: no reason", m.Name)
				}
			}
		})
	}
}

func TestExplainOfflineDetails(t *testing.T) {
	cfg := explainLoad(t, explainRoutes, nil)
	e, err := ExplainOffline(cfg, ExplainInput{Method: "POST", URL: "http://api.example.com/v1/x"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Route.Action != "proxy" || e.Route.Pool != "api" || e.Route.Match != "hosts=api.example.com path_prefix=/v1/ methods=POST,PUT" {
		t.Errorf("route %+v", e.Route)
	}
	if got := strings.Join(e.Route.RequestHeaders, ","); got != "remove Cookie,set X-Api" {
		t.Errorf("request header rules %q", got)
	}
	if len(e.Notes) == 0 || !strings.Contains(strings.Join(e.Notes, " "), "health is not known") {
		t.Errorf("notes %q do not say health is unknown offline", e.Notes)
	}
	if e.Request.Client != DefaultExplainClient.String() {
		t.Errorf("client %q, want the default %s", e.Request.Client, DefaultExplainClient)
	}
	if len(e.Pool.Nodes) != 1 || e.Pool.Nodes[0].State != "up" || !e.Pool.Nodes[0].Available {
		t.Errorf("nodes %+v, want p1 up", e.Pool.Nodes)
	}

	// A URL that is not absolute is the caller's mistake, not a request.
	if _, err := ExplainOffline(cfg, ExplainInput{URL: "/relative"}); err == nil {
		t.Error("a relative URL was accepted")
	}
	if _, err := ExplainOffline(cfg, ExplainInput{URL: "http://x/", Headers: []string{"no colon"}}); err == nil {
		t.Error("a header line without a colon was accepted")
	}
}

// PURGE is taken before routing when cache.purge allows someone, and a
// cached route answers it 405 otherwise.
func TestExplainPurge(t *testing.T) {
	const cfgYAML = `listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
{{.Purge}}
upstreams:
  app: {nodes: [{address: "127.0.0.1:9001"}]}
routes:
  - name: pages
    proxy: app
    cache: {}
`
	on := explainLoad(t, cfgYAML, map[string]string{"Purge": "cache: {purge: {allow: [10.0.0.0/8]}}"})
	e, err := ExplainOffline(on, ExplainInput{Method: "PURGE", URL: "http://www.example.com/x"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Outcome != OutcomePurge || e.Route != nil || e.Error != "" {
		t.Errorf("purge on: outcome %q route %+v error %q", e.Outcome, e.Route, e.Error)
	}
	off := explainLoad(t, cfgYAML, map[string]string{"Purge": ""})
	e, err = ExplainOffline(off, ExplainInput{Method: "PURGE", URL: "http://www.example.com/x"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Route == nil || e.Status != 405 || e.Error != "purge_not_configured" || e.Cache.Answer != "bypass" {
		t.Errorf("purge off: status %d error %q cache %+v", e.Status, e.Error, e.Cache)
	}
	e, err = ExplainOffline(off, ExplainInput{Method: "POST", URL: "http://www.example.com/x"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Error != "" || e.Cache.Answer != "bypass" || !strings.Contains(e.Cache.Detail, "removes what is stored") || e.Pool == nil {
		t.Errorf("POST on a cached route: error %q cache %+v", e.Error, e.Cache)
	}
}

// A consistent_hash pool sends one key to one node, every time, and the
// explanation names the key.
func TestExplainHashingPoolIsStable(t *testing.T) {
	cfg := explainLoad(t, explainRoutes, nil)
	chosen := map[string]map[string]bool{}
	for _, user := range []string{"alice", "bob", "carol", "dave", "erin", "frank"} {
		chosen[user] = map[string]bool{}
		for range 5 {
			e, err := ExplainOffline(cfg, ExplainInput{URL: "http://sticky.example.com/", Headers: []string{"X-User: " + user}})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(e.Pool.Hash, `"`+user+`"`) {
				t.Fatalf("hash %q does not name the key %q", e.Pool.Hash, user)
			}
			chosen[user][e.Pool.Chosen] = true
		}
	}
	all := map[string]bool{}
	for user, nodes := range chosen {
		if len(nodes) != 1 {
			t.Errorf("user %s went to %d nodes, want 1: %v", user, len(nodes), nodes)
		}
		for n := range nodes {
			all[n] = true
		}
	}
	if len(all) < 2 {
		t.Errorf("six keys all went to %v: the key is not hashed", all)
	}
	e, err := ExplainOffline(cfg, ExplainInput{URL: "http://sticky.example.com/"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.Pool.Hash, "X-User is absent: client address 192.0.2.1") {
		t.Errorf("hash without the header: %q", e.Pool.Hash)
	}
}

// whyNot gives no reason exactly when matches holds.
func TestExplainWhyNotAgreesWithMatches(t *testing.T) {
	cfg := explainLoad(t, explainRoutes, nil)
	srv, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	snap := srv.snap.Load()
	for _, target := range []string{"/", "/healthz", "/healthz/", "/blog/a", "/v1/x", "/item/7", "/item/x", "/admin"} {
		for _, method := range []string{"GET", "POST"} {
			for _, host := range []string{"www.example.com", "www2.example.com"} {
				for _, hdr := range []string{"", "X-Beta: 1", "X-Beta: 0"} {
					raw := method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n"
					if hdr != "" {
						raw += hdr + "\r\n"
					}
					var ctx fasthttp.RequestCtx
					if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(raw + "\r\n"))); err != nil {
						t.Fatal(err)
					}
					for _, r := range snap.routes {
						match := r.matches(&ctx, []byte(target))
						why := r.whyNot(nil, &ctx, []byte(target))
						if match != (len(why) == 0) {
							t.Errorf("%s %s %q: route %s matches=%v, whyNot=%q", method, target, hdr, r.name, match, why)
						}
					}
				}
			}
		}
	}
}

func TestExplainRedirectHTTPFirst(t *testing.T) {
	ca := newTestCA(t, "explain-ca")
	kp := ca.issue(t, "www", false, "www.example.com")
	cfg := explainLoad(t, `listeners: [{address: "127.0.0.1:0"}, {address: "127.0.0.1:0", tls: true}]
admin: {address: "off"}
tls:
  redirect_http: true
  certificates: [{cert: {{.Cert}}, key: {{.Key}}}]
upstreams:
  app: {nodes: [{address: "127.0.0.1:9001"}]}
routes:
  - name: app
    proxy: app
`, kp)
	e, err := ExplainOffline(cfg, ExplainInput{URL: "http://www.example.com/x?y=1"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Route == nil || e.Route.Index != -1 || e.Status != 301 || e.Route.Location != "https://www.example.com/x?y=1" {
		t.Fatalf("explanation %+v, route %+v: want the tls.redirect_http redirect", e, e.Route)
	}
	if r := miss(e, "app"); !strings.Contains(r, "tls.redirect_http") {
		t.Errorf("app route's reason %q does not name tls.redirect_http", r)
	}
	e, err = ExplainOffline(cfg, ExplainInput{URL: "https://www.example.com/x"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Route == nil || e.Route.Name != "app" || e.Request.Scheme != "https" {
		t.Fatalf("HTTPS request: route %+v scheme %q, want app over https", e.Route, e.Request.Scheme)
	}
}

// With a live edge, health is real: a down node is never chosen, and a
// pool without an available node is explained as a 503.
func TestExplainLiveSkipsDownNodes(t *testing.T) {
	up, down, gone := startNode(t, "up"), startNode(t, "down"), startNode(t, "gone")
	down.stop()
	gone.stop()
	e := startEdge(t, `listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app:
    policy: round_robin
    health_check: {path: /health, interval: 100ms, timeout: 50ms, fall: 1, rise: 1}
    nodes: [{name: up, address: "{{index .Nodes 0}}"}, {name: down, address: "{{index .Nodes 1}}"}]
  dead:
    health_check: {path: /health, interval: 100ms, timeout: 50ms, fall: 1, rise: 1}
    nodes: [{name: gone, address: "{{index .Nodes 2}}"}]
routes:
  - name: dead
    match: {path_prefix: /dead}
    proxy: dead
  - name: app
    proxy: app
`, nodesData(up, down, gone))

	deadline := time.Now().Add(5 * time.Second)
	var ex Explanation
	for {
		var err error
		if ex, err = e.srv.ExplainRequest(ExplainInput{URL: "http://example.com/"}); err != nil {
			t.Fatal(err)
		}
		if len(ex.Pool.Nodes) == 2 && ex.Pool.Nodes[1].State == "down" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node down not seen down within 5s: %+v", ex.Pool.Nodes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ex.Mode != "live" || ex.Pool.Nodes[1].Available || !ex.Pool.Nodes[0].Available {
		t.Fatalf("mode %q nodes %+v", ex.Mode, ex.Pool.Nodes)
	}
	for range 10 {
		ex, err := e.srv.ExplainRequest(ExplainInput{URL: "http://example.com/"})
		if err != nil {
			t.Fatal(err)
		}
		if ex.Pool.Chosen != "up" {
			t.Fatalf("chosen %q, want up (the other node is down)", ex.Pool.Chosen)
		}
	}
	for {
		ex, err := e.srv.ExplainRequest(ExplainInput{URL: "http://example.com/dead"})
		if err != nil {
			t.Fatal(err)
		}
		if ex.Pool.Chosen == "" {
			if ex.Status != 503 || !strings.Contains(ex.Pool.Choice, "no node available") || ex.Pool.Nodes[0].State != "down" {
				t.Fatalf("status %d choice %q nodes %+v", ex.Status, ex.Pool.Choice, ex.Pool.Nodes)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool dead still picks %q after 5s", ex.Pool.Chosen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// explainCached is a route whose answers are stored, keyed also by
// Accept-Language.
const explainCached = `listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0", token: s3cret-admin}
cache:
  purge: {token: s3cret-purge}
upstreams:
  app: {nodes: [{name: n0, address: "{{index .Nodes 0}}"}]}
routes:
  - name: pages
    match: {hosts: [www.example.com]}
    proxy: app
    response_headers: {set: {X-Api-Token: "s3cret-header"}}
    cache: {default_ttl: 60s, key: {headers: [Accept-Language]}}
`

// Before a request the explanation says "not cached"; after a real
// request through the edge it names the same key and says cached, and
// another Accept-Language is another variant.
func TestExplainCacheBeforeAndAfter(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, explainCached, nodesData(node))
	in := ExplainInput{URL: "http://www.example.com/page?a=1", Headers: []string{"Accept-Language: en"}}
	before, err := e.srv.ExplainRequest(in)
	if err != nil {
		t.Fatal(err)
	}
	const key = "GET http://www.example.com/page?a=1"
	if before.Cache == nil || before.Cache.Key != key || before.Cache.Cached || before.Cache.Answer != "miss" {
		t.Fatalf("before: cache %+v, want key %q not cached", before.Cache, key)
	}
	if strings.Join(before.Cache.VaryOn, ",") != "accept-language" {
		t.Errorf("vary on %q, want accept-language", before.Cache.VaryOn)
	}
	if got := node.requests.Load(); got != 0 {
		t.Fatalf("explaining sent %d requests to the node", got)
	}

	c := testClient()
	resp, _ := do(t, c, "GET", e.url+"/page?a=1", map[string]string{"Host": "www.example.com", "Accept-Language": "en"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	after, err := e.srv.ExplainRequest(in)
	if err != nil {
		t.Fatal(err)
	}
	if after.Cache.Key != key || !after.Cache.Cached || after.Cache.Answer != "hit" || after.Cache.Entry == nil {
		t.Fatalf("after: cache %+v, want a hit on %q", after.Cache, key)
	}
	if en := after.Cache.Entry; en.Status != 200 || en.Stale || en.TTLSeconds <= 0 || en.TTLSeconds > 60 {
		t.Errorf("entry %+v, want fresh 200 with ttl ≤ 60s", en)
	}
	if !strings.Contains(after.Detail, "from the cache") {
		t.Errorf("detail %q", after.Detail)
	}

	other, err := e.srv.ExplainRequest(ExplainInput{URL: in.URL, Headers: []string{"Accept-Language: fr"}})
	if err != nil {
		t.Fatal(err)
	}
	if other.Cache.Cached || other.Cache.Answer != "vary-miss" || other.Cache.Variants != 1 {
		t.Errorf("other language: cache %+v, want a vary-miss beside 1 variant", other.Cache)
	}

	// The same through the admin API.
	q := url.Values{"url": {in.URL}, "header": in.Headers, "client": {"203.0.113.9"}}
	var viaAdmin Explanation
	adminGetJSON(t, e.admin+"/explain?"+q.Encode(), "s3cret-admin", http.StatusOK, &viaAdmin)
	if viaAdmin.Cache == nil || !viaAdmin.Cache.Cached || viaAdmin.Cache.Key != key || viaAdmin.Request.Client != "203.0.113.9" {
		t.Errorf("admin explanation: cache %+v client %q", viaAdmin.Cache, viaAdmin.Request.Client)
	}
	if hits := node.requests.Load(); hits != 1 {
		t.Errorf("the node got %d requests, want 1 (explaining sends none)", hits)
	}
}

// adminGetJSON GETs an admin URL with a token, checks the status and
// decodes the JSON answer into v.
func adminGetJSON(t *testing.T, u, token string, status int, v any) string {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := testClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: status %d, want %d: %s", u, resp.StatusCode, status, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v\n%s", u, err, b)
		}
	}
	return string(b)
}

func TestExplainAdminErrors(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, explainCached, nodesData(node))
	adminGetJSON(t, e.admin+"/explain?url=http://www.example.com/", "", http.StatusUnauthorized, nil)
	adminGetJSON(t, e.admin+"/explain", "s3cret-admin", http.StatusBadRequest, nil)
	adminGetJSON(t, e.admin+"/explain?url=/relative", "s3cret-admin", http.StatusBadRequest, nil)
	adminGetJSON(t, e.admin+"/explain?url=http://x/&client=nope", "s3cret-admin", http.StatusBadRequest, nil)
	var ex Explanation
	adminGetJSON(t, e.admin+"/explain?url="+url.QueryEscape("http://other.example.com/"), "s3cret-admin", http.StatusOK, &ex)
	if ex.Error != "no_route" || ex.Status != 404 || miss(ex, "pages") == "" {
		t.Errorf("unknown host: %+v", ex)
	}
}

// GET /config is the running configuration without its secrets.
func TestConfigEndpointRedactsSecrets(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, explainCached, nodesData(node))
	adminGetJSON(t, e.admin+"/config", "", http.StatusUnauthorized, nil)
	var m map[string]any
	body := adminGetJSON(t, e.admin+"/config", "s3cret-admin", http.StatusOK, &m)
	if strings.Contains(body, "s3cret") {
		t.Fatalf("/config leaks a secret:\n%s", body)
	}
	admin := m["admin"].(map[string]any)
	if admin["token"] != Redacted {
		t.Errorf("admin.token %v, want %q", admin["token"], Redacted)
	}
	rule := m["routes"].([]any)[0].(map[string]any)["response_headers"].(map[string]any)["set"].(map[string]any)
	if rule["X-Api-Token"] != Redacted {
		t.Errorf("response_headers.set.X-Api-Token %v, want %q", rule["X-Api-Token"], Redacted)
	}
	// Defaults are applied, with the file's field names.
	if got := m["upstreams"].(map[string]any)["app"].(map[string]any)["policy"]; got != config.PolicyRandomTwo {
		t.Errorf("upstreams.app.policy %v, want the default %q", got, config.PolicyRandomTwo)
	}
	if got := fmt.Sprint(m["cache"].(map[string]any)["size"]); got != "256MiB" {
		t.Errorf("cache.size %v, want 256MiB", got)
	}
}
