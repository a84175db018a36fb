package router

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Integration tests of the routing rules (README "How a request is handled",
// "routes[]", "redirect"), header rules, forwarding headers, hop-by-hop
// headers and request IDs, against a real edge and real nodes.

// redirectConfig has one route per redirect flavour, each selected by host
// (and path prefix), and routes after the shorthands that a request falls
// through to when the shorthand would not change its URL.
const redirectConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
upstreams:
  app:
    nodes: [{address: "{{index .Nodes 0}}", name: n0}]
routes:
  - name: to-https
    match: {hosts: [secure.example]}
    redirect: {https: true}
  - name: add-www
    match: {hosts: [example.com, www.example.com]}
    redirect: {www: add}
  - name: after-add-www
    match: {hosts: [www.example.com]}
    respond: {body: "after add-www"}
  - name: remove-www
    match: {hosts: [www.example.org, example.org]}
    redirect: {www: remove}
  - name: after-remove-www
    match: {hosts: [example.org]}
    respond: {body: "after remove-www"}
  - name: add-slash
    match: {hosts: [slash.example], path_prefix: /docs}
    redirect: {trailing_slash: add}
  - name: after-add-slash
    match: {hosts: [slash.example]}
    respond: {body: "after add-slash"}
  - name: remove-slash
    match: {hosts: [noslash.example]}
    redirect: {trailing_slash: remove}
  - name: after-remove-slash
    match: {hosts: [noslash.example]}
    respond: {body: "after remove-slash"}
  - name: blog-moved
    match: {hosts: [blog.example], path_prefix: /blog/}
    redirect: {prefix: /news/}
  - name: old-moved-drop-query
    match: {hosts: [blog.example], path_prefix: /old/}
    redirect: {prefix: /new/, drop_query: true}
  - name: tpl-all
    match: {hosts: [tpl.example], path_prefix: /all/}
    redirect: {to: "{scheme}://{hostname}/h/{host}{path}/rest/{rest}"}
  - name: tpl-has-query
    match: {hosts: [tpl.example], path_prefix: /qmark/}
    redirect: {to: "https://other.example/landing?from=tpl"}
  - name: tpl-query
    match: {hosts: [tpl.example], path_prefix: /query/}
    redirect: {to: "https://other.example/search?{query}&via=edge"}
  - name: tpl-uri
    match: {hosts: [tpl.example], path_prefix: /uri/}
    redirect: {to: "https://other.example{uri}"}
  - name: tpl-drop-query
    match: {hosts: [tpl.example], path_prefix: /drop/}
    redirect: {to: "https://other.example/dropped/{rest}", drop_query: true}
  - name: tpl-braces
    match: {hosts: [tpl.example], path: /braces}
    redirect: {to: "https://other.example/{{"{{"}}literal{{"}}"}}{path}"}
  - name: status-302
    match: {hosts: [status.example], path_prefix: /302/}
    redirect: {to: "/found/{rest}", status: 302}
  - name: status-303
    match: {hosts: [status.example], path_prefix: /303/}
    redirect: {to: "/see/{rest}", status: 303}
  - name: status-307
    match: {hosts: [status.example], path_prefix: /307/}
    redirect: {to: "/temp/{rest}", status: 307}
  - name: status-308
    match: {hosts: [status.example], path_prefix: /308/}
    redirect: {to: "/perm/{rest}", status: 308}
  - name: https-302
    match: {hosts: [secure302.example]}
    redirect: {https: true, status: 302}
`

func TestRedirects(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, redirectConfig, nodesData(node))
	c := testClient()
	cases := []struct {
		name         string
		method, host string
		target       string // path and query
		wantStatus   int
		wantLocation string // "" for a fall-through (no Location expected)
		wantBody     string // checked only for fall-throughs
	}{
		// https: true
		{"https GET keeps path and query, drops port", "GET", "secure.example:8080", "/a/b?x=1&y=2", 301, "https://secure.example/a/b?x=1&y=2", ""},
		{"https without port", "GET", "secure.example", "/a", 301, "https://secure.example/a", ""},
		{"https HEAD is 301", "HEAD", "secure.example", "/a?x=1", 301, "https://secure.example/a?x=1", ""},
		{"https POST is 308", "POST", "secure.example:8080", "/form?x=1", 308, "https://secure.example/form?x=1", ""},
		{"https PUT is 308", "PUT", "secure.example", "/put", 308, "https://secure.example/put", ""},
		{"https explicit status 302 for POST", "POST", "secure302.example", "/p?q=1", 302, "https://secure302.example/p?q=1", ""},

		// www
		{"www add", "GET", "example.com", "/a?x=1", 301, "http://www.example.com/a?x=1", ""},
		{"www add POST is 308", "POST", "example.com", "/a", 308, "http://www.example.com/a", ""},
		{"www add on a www host falls through", "GET", "www.example.com", "/a?x=1", 200, "", "after add-www"},
		{"www remove", "GET", "www.example.org", "/a?x=1", 301, "http://example.org/a?x=1", ""},
		{"www remove on a bare host falls through", "GET", "example.org", "/a", 200, "", "after remove-www"},
		// Host names are case-insensitive: WWW.example.com already has www.
		{"www add on an upper-case WWW host falls through", "GET", "WWW.example.com", "/a", 200, "", "after add-www"},
		{"www remove on an upper-case WWW host", "GET", "WWW.example.org", "/a", 301, "http://example.org/a", ""},

		// trailing_slash
		{"trailing slash add keeps query", "GET", "slash.example", "/docs?a=1", 301, "/docs/?a=1", ""},
		{"trailing slash add nested", "GET", "slash.example", "/docs/api", 301, "/docs/api/", ""},
		{"trailing slash add on /docs/ falls through", "GET", "slash.example", "/docs/", 200, "", "after add-slash"},
		{"trailing slash remove keeps query", "GET", "noslash.example", "/docs/?a=1", 301, "/docs?a=1", ""},
		{"trailing slash remove on /docs falls through", "GET", "noslash.example", "/docs", 200, "", "after remove-slash"},
		{"trailing slash remove on / falls through", "GET", "noslash.example", "/", 200, "", "after remove-slash"},
		// The route matched the normalised path; a Location built from the
		// raw one would be protocol-relative ("//host/…"): an open redirect.
		{"trailing slash remove uses the normalised path", "GET", "noslash.example", "//evil.example/", 301, "/evil.example", ""},
		{"trailing slash add uses the normalised path", "GET", "slash.example", "//docs", 301, "/docs/", ""},
		{"prefix move uses the normalised path", "GET", "blog.example", "/blog//x", 301, "/news/x", ""},

		// prefix
		{"prefix move keeps rest and query", "GET", "blog.example", "/blog/2024/x?a=1", 301, "/news/2024/x?a=1", ""},
		{"prefix move POST is 308", "POST", "blog.example", "/blog/post", 308, "/news/post", ""},
		{"prefix move with drop_query", "GET", "blog.example", "/old/a/b?a=1&b=2", 301, "/new/a/b", ""},

		// to templates
		{"template placeholders, query appended with ?", "GET", "tpl.example:8080", "/all/x/y?q=1",
			301, "http://tpl.example/h/tpl.example:8080/all/x/y/rest/x/y?q=1", ""},
		{"template without query in request", "GET", "tpl.example", "/all/z",
			301, "http://tpl.example/h/tpl.example/all/z/rest/z", ""},
		{"template POST is 308", "POST", "tpl.example", "/all/z", 308, "http://tpl.example/h/tpl.example/all/z/rest/z", ""},
		{"template with ? appends query with &", "GET", "tpl.example", "/qmark/a?b=2", 301, "https://other.example/landing?from=tpl&b=2", ""},
		{"template with ? and no query", "GET", "tpl.example", "/qmark/a", 301, "https://other.example/landing?from=tpl", ""},
		{"template placing {query} is not appended to", "GET", "tpl.example", "/query/a?b=2&c=3", 301, "https://other.example/search?b=2&c=3&via=edge", ""},
		{"template placing {uri} is not appended to", "GET", "tpl.example", "/uri/a?b=2", 301, "https://other.example/uri/a?b=2", ""},
		{"template with drop_query", "GET", "tpl.example", "/drop/a?b=2", 301, "https://other.example/dropped/a", ""},
		{"template literal braces", "GET", "tpl.example", "/braces", 301, "https://other.example/{literal}/braces", ""},

		// explicit status
		{"status 302", "GET", "status.example", "/302/a?k=v", 302, "/found/a?k=v", ""},
		{"status 302 for POST", "POST", "status.example", "/302/a", 302, "/found/a", ""},
		{"status 303 for POST", "POST", "status.example", "/303/a", 303, "/see/a", ""},
		{"status 307 for GET", "GET", "status.example", "/307/a", 307, "/temp/a", ""},
		{"status 307 for POST", "POST", "status.example", "/307/a", 307, "/temp/a", ""},
		{"status 308 for GET", "GET", "status.example", "/308/a?k=v", 308, "/perm/a?k=v", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.method == "POST" || tc.method == "PUT" {
				body = strings.NewReader("payload")
			}
			resp, got := do(t, c, tc.method, e.url+tc.target, map[string]string{"Host": tc.host}, body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("%s http://%s%s: status %d (Location %q, body %q), want %d",
					tc.method, tc.host, tc.target, resp.StatusCode, resp.Header.Get("Location"), got, tc.wantStatus)
			}
			if loc := resp.Header.Values("Location"); tc.wantLocation == "" && len(loc) != 0 {
				t.Fatalf("%s http://%s%s: unexpected Location %q", tc.method, tc.host, tc.target, loc)
			} else if tc.wantLocation != "" && (len(loc) != 1 || loc[0] != tc.wantLocation) {
				t.Fatalf("%s http://%s%s: Location %q, want %q", tc.method, tc.host, tc.target, loc, tc.wantLocation)
			}
			if tc.wantBody != "" && got != tc.wantBody {
				t.Fatalf("%s http://%s%s: body %q, want %q", tc.method, tc.host, tc.target, got, tc.wantBody)
			}
		})
	}
	if n := node.requests.Load(); n != 0 {
		t.Fatalf("redirects and fixed responses reached the node %d times", n)
	}
}

const respondConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
upstreams:
  app:
    nodes: [{address: "{{index .Nodes 0}}", name: n0}]
routes:
  - name: maintenance
    match: {path: /maintenance}
    respond:
      status: 503
      headers: {Retry-After: "120", Content-Type: "text/plain", X-Internal: "secret"}
      body: "down for maintenance\n"
    response_headers:
      set: {X-Served-By: edge}
      add: {X-Extra: one}
      remove: [X-Internal]
  - name: default-status
    match: {path: /hello}
    respond: {body: "hello, world"}
  - name: teapot
    match: {path: /teapot}
    respond: {status: 418, headers: {X-Pot: tea}, body: "short and stout"}
  - name: no-content
    match: {path: /empty}
    respond: {status: 204}
  - name: moved
    match: {path: /moved}
    redirect: {to: "/new", status: 302}
    response_headers:
      set: {Cache-Control: no-store}
      add: {X-Redirected-By: edge}
`

func TestFixedResponses(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, respondConfig, nodesData(node))
	c := testClient()
	cases := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantHeader map[string][]string // nil slice: must be absent
		wantBody   string
	}{
		{"status headers body, plus response_headers", "GET", "/maintenance", 503, map[string][]string{
			"Retry-After":  {"120"},
			"Content-Type": {"text/plain"},
			"X-Served-By":  {"edge"},
			"X-Extra":      {"one"},
			"X-Internal":   nil, // set by respond, removed by response_headers
			"X-Node":       nil,
		}, "down for maintenance\n"},
		{"fixed response to POST", "POST", "/maintenance", 503, map[string][]string{"Retry-After": {"120"}}, "down for maintenance\n"},
		{"default status 200", "GET", "/hello", 200, map[string][]string{"Content-Length": {"12"}}, "hello, world"},
		{"custom status and header", "GET", "/teapot", 418, map[string][]string{"X-Pot": {"tea"}}, "short and stout"},
		{"no content", "GET", "/empty", 204, nil, ""},
		{"response_headers apply to redirects", "GET", "/moved", 302, map[string][]string{
			"Location":        {"/new"},
			"Cache-Control":   {"no-store"},
			"X-Redirected-By": {"edge"},
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, c, tc.method, e.url+tc.path, nil, nil)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.wantStatus, body)
			}
			for name, want := range tc.wantHeader {
				if got := resp.Header.Values(name); !slices.Equal(got, want) {
					t.Errorf("header %s = %q, want %q", name, got, want)
				}
			}
			if tc.path != "/moved" && body != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
		})
	}
	if n := node.requests.Load(); n != 0 {
		t.Fatalf("fixed responses reached the node %d times", n)
	}
}

const headerRulesConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
upstreams:
  app:
    nodes: [{address: "{{index .Nodes 0}}", name: n0}]
routes:
  - name: req-rules
    match: {path_prefix: /req}
    proxy: app
    request_headers:
      set: {X-Set: set-value, X-Replace: new}
      add: {X-Add: added, X-Multi: two, X-Both: added}
      remove: [X-Remove, X-Both]
  - name: resp-remove
    match: {path_prefix: /resp-remove}
    proxy: app
    response_headers: {remove: [X-Node], set: {X-Resp-Set: s}, add: {X-Resp-Add: a}}
  - name: resp-set
    match: {path_prefix: /resp-set}
    proxy: app
    response_headers: {set: {X-Node: edge-set}}
  - name: resp-add
    match: {path_prefix: /resp-add}
    proxy: app
    response_headers: {add: {X-Node: edge-added}}
  - name: resp-remove-then-add
    match: {path_prefix: /resp-both}
    proxy: app
    response_headers: {remove: [X-Node], add: {X-Node: only-this}}
`

func TestRequestHeaderRules(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, headerRulesConfig, nodesData(node))
	c := testClient()
	resp, body := do(t, c, "GET", e.url+"/req", map[string]string{
		"X-Replace": "old",
		"X-Multi":   "one",
		"X-Remove":  "gone",
		"X-Both":    "from-client",
		"X-Keep":    "kept",
	}, nil)
	if resp.StatusCode != 200 || body != "node=n0 path=/req" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	h := node.header()
	want := map[string][]string{
		"X-Set":     {"set-value"},
		"X-Replace": {"new"},
		"X-Add":     {"added"},
		"X-Multi":   {"one", "two"},
		"X-Remove":  nil,
		"X-Both":    {"added"}, // remove runs before add
		"X-Keep":    {"kept"},
	}
	for name, w := range want {
		if got := h.Values(name); !slices.Equal(got, w) {
			t.Errorf("node saw %s = %q, want %q", name, got, w)
		}
	}
}

func TestResponseHeaderRules(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, headerRulesConfig, nodesData(node))
	c := testClient()
	cases := []struct {
		path string
		want map[string][]string
	}{
		{"/resp-remove", map[string][]string{"X-Node": nil, "X-Resp-Set": {"s"}, "X-Resp-Add": {"a"}}},
		{"/resp-set", map[string][]string{"X-Node": {"edge-set"}}},
		{"/resp-add", map[string][]string{"X-Node": {"n0", "edge-added"}}},
		{"/resp-both", map[string][]string{"X-Node": {"only-this"}}},
	}
	for _, tc := range cases {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			resp, body := do(t, c, "GET", e.url+tc.path, nil, nil)
			if resp.StatusCode != 200 || body != "node=n0 path="+tc.path {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			for name, w := range tc.want {
				if got := resp.Header.Values(name); !slices.Equal(got, w) {
					t.Errorf("client saw %s = %q, want %q", name, got, w)
				}
			}
		})
	}
}

const matchConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
upstreams:
  app:
    nodes: [{address: "{{index .Nodes 0}}", name: n0}]
routes:
  - name: broad-first
    match: {path_prefix: /order/}
    respond: {body: broad-first}
  - name: specific-later
    match: {path: /order/specific}
    respond: {body: specific-later}
  - name: hostless-first
    match: {path: /hostorder}
    respond: {body: hostless-first}
  - name: exact-host-later
    match: {hosts: [exact.example], path: /hostorder}
    respond: {body: exact-host-later}
  - name: exact-host-first
    match: {hosts: [exact.example], path: /hostfirst}
    respond: {body: exact-host-first}
  - name: hostless-later
    match: {path: /hostfirst}
    respond: {body: hostless-later}
  - name: wildcard-first
    match: {hosts: ["*.order.example"], path: /w}
    respond: {body: wildcard-first}
  - name: exact-after-wildcard
    match: {hosts: [a.order.example], path: /w}
    respond: {body: exact-after-wildcard}
  - name: wildcard
    match: {hosts: ["*.example.com"], path: /wild}
    respond: {body: wildcard}
  - name: outer-wildcard
    match: {hosts: ["*.nest.example"], path: /n}
    respond: {body: outer-wildcard}
  - name: inner-wildcard
    match: {hosts: ["*.b.nest.example"], path: /n}
    respond: {body: inner-wildcard}
  - name: inner-wildcard-only
    match: {hosts: ["*.b.nest.example"], path: /m}
    respond: {body: inner-wildcard-only}
  - name: case
    match: {hosts: [Mixed.Example], path: /case}
    respond: {body: case}
  - name: methods
    match: {path: /method, methods: [POST, put]}
    respond: {body: post-or-put}
  - name: header-present
    match: {path: /hdr, headers: [{name: X-Beta}]}
    respond: {body: beta}
  - name: header-value
    match: {path: /hdrval, headers: [{name: x-env, value: staging}]}
    respond: {body: staging}
  - name: exact-path
    match: {path: /p/exact}
    respond: {body: exact}
  - name: prefix-path
    match: {path_prefix: /p/pre}
    respond: {body: prefix}
  - name: regex-path
    match: {path_regex: "^/r/[0-9]+$"}
    respond: {body: regex}
  - name: regex-unanchored
    match: {path_regex: "secret"}
    respond: {body: regex-unanchored}
`

func TestRouteMatching(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, matchConfig, nodesData(node))
	c := testClient()
	const noRoute = "" // want 404 "no route\n"
	cases := []struct {
		name           string
		method, host   string
		path           string
		hdr            map[string]string
		want           string // body of the route that must answer
		wantStatusCode int    // 0: 200 (or 404 when want is noRoute)
	}{
		{"first match wins over a later more specific route", "GET", "", "/order/specific", nil, "broad-first", 0},
		{"hostless route before an exact host route wins", "GET", "exact.example", "/hostorder", nil, "hostless-first", 0},
		{"exact host route before a hostless route wins", "GET", "exact.example", "/hostfirst", nil, "exact-host-first", 0},
		{"other host skips the exact host route", "GET", "other.example", "/hostfirst", nil, "hostless-later", 0},
		{"wildcard before exact wins", "GET", "a.order.example", "/w", nil, "wildcard-first", 0},
		{"wildcard one label", "GET", "a.example.com", "/wild", nil, "wildcard", 0},
		{"wildcard two labels", "GET", "a.b.example.com", "/wild", nil, "wildcard", 0},
		{"wildcard is case-insensitive and ignores the port", "GET", "A.B.Example.COM:8080", "/wild", nil, "wildcard", 0},
		{"wildcard does not match the bare domain", "GET", "example.com", "/wild", nil, noRoute, 0},
		{"wildcard does not match a longer label", "GET", "notexample.com", "/wild", nil, noRoute, 0},
		{"outer wildcard first wins for a deeper host", "GET", "x.b.nest.example", "/n", nil, "outer-wildcard", 0},
		{"inner wildcard matches a deeper host", "GET", "x.b.nest.example", "/m", nil, "inner-wildcard-only", 0},
		{"inner wildcard does not match an outer host", "GET", "x.nest.example", "/m", nil, noRoute, 0},
		{"host is case-insensitive", "GET", "MIXED.example", "/case", nil, "case", 0},
		{"host ignores the port", "GET", "mixed.example:1234", "/case", nil, "case", 0},
		{"other host does not match", "GET", "mixed.example.net", "/case", nil, noRoute, 0},
		{"method POST", "POST", "", "/method", nil, "post-or-put", 0},
		{"method PUT (configured lower case)", "PUT", "", "/method", nil, "post-or-put", 0},
		{"method GET not listed", "GET", "", "/method", nil, noRoute, 0},
		{"header present", "GET", "", "/hdr", map[string]string{"X-Beta": "1"}, "beta", 0},
		{"header absent", "GET", "", "/hdr", nil, noRoute, 0},
		{"header value equal", "GET", "", "/hdrval", map[string]string{"X-Env": "staging"}, "staging", 0},
		{"header value different", "GET", "", "/hdrval", map[string]string{"X-Env": "production"}, noRoute, 0},
		{"header value absent", "GET", "", "/hdrval", nil, noRoute, 0},
		{"exact path", "GET", "", "/p/exact", nil, "exact", 0},
		{"exact path with query", "GET", "", "/p/exact?x=1", nil, "exact", 0},
		{"exact path does not match a longer path", "GET", "", "/p/exact/more", nil, noRoute, 0},
		{"exact path after duplicate slashes are removed", "GET", "", "/p//exact", nil, "exact", 0},
		{"exact path after dot segments are removed", "GET", "", "/p/x/../exact", nil, "exact", 0},
		{"exact path after percent-decoding", "GET", "", "/p/%65xact", nil, "exact", 0},
		{"prefix path itself", "GET", "", "/p/pre", nil, "prefix", 0},
		{"prefix path longer", "GET", "", "/p/prefix/x", nil, "prefix", 0},
		{"prefix does not match a shorter path", "GET", "", "/p/pr", nil, noRoute, 0},
		{"regex path", "GET", "", "/r/123", nil, "regex", 0},
		{"regex anchored at the end", "GET", "", "/r/123x", nil, noRoute, 0},
		{"regex anchored at the start", "GET", "", "/x/r/123", nil, noRoute, 0},
		{"unanchored regex is searched", "GET", "", "/a/top-secret/b", nil, "regex-unanchored", 0},
		{"no route", "GET", "", "/nothing/here", nil, noRoute, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			if tc.host != "" {
				hdr["Host"] = tc.host
			}
			resp, body := do(t, c, tc.method, e.url+tc.path, hdr, nil)
			if tc.want == noRoute {
				if resp.StatusCode != 404 || body != "no route\n" {
					t.Fatalf("%s %s (host %q): got %d %q, want 404 %q", tc.method, tc.path, tc.host, resp.StatusCode, body, "no route\n")
				}
				return
			}
			if resp.StatusCode != 200 || body != tc.want {
				t.Fatalf("%s %s (host %q): got %d %q, want 200 %q", tc.method, tc.path, tc.host, resp.StatusCode, body, tc.want)
			}
		})
	}
}

// TestProxiedPathIsNormalised checks that the node receives the normalised
// path that the routes matched.
func TestProxiedPathIsNormalised(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, poolConfig, poolData("round_robin", node))
	c := testClient()
	resp, body := do(t, c, "GET", e.url+"/a//b/./c/../d?x=1", nil, nil)
	if resp.StatusCode != 200 || body != "node=n0 path=/a/b/d" {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, "node=n0 path=/a/b/d")
	}
}

// forwardedHeaders returns the forwarding headers the node saw.
func forwardedHeaders(n *testNode) map[string][]string {
	h := n.header()
	return map[string][]string{
		"X-Forwarded-For":   h.Values("X-Forwarded-For"),
		"X-Forwarded-Proto": h.Values("X-Forwarded-Proto"),
		"X-Forwarded-Host":  h.Values("X-Forwarded-Host"),
		"Forwarded":         h.Values("Forwarded"),
	}
}

func checkForwarded(t *testing.T, n *testNode, want map[string][]string) {
	t.Helper()
	got := forwardedHeaders(n)
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("node saw %s = %q, want %q", name, got[name], w)
		}
	}
}

var spoofedForwarding = map[string]string{
	"Host":              "fwd.example",
	"X-Forwarded-For":   "6.6.6.6",
	"X-Forwarded-Proto": "https",
	"X-Forwarded-Host":  "evil",
	"Forwarded":         "for=6.6.6.6",
}

func TestForwardingHeadersFromUntrustedClientAreReplaced(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, poolConfig, poolData("round_robin", node))
	c := testClient()

	t.Run("spoofed headers are replaced", func(t *testing.T) {
		if resp, body := do(t, c, "GET", e.url+"/", spoofedForwarding, nil); resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		checkForwarded(t, node, map[string][]string{
			"X-Forwarded-For":   {"127.0.0.1"},
			"X-Forwarded-Proto": {"http"},
			"X-Forwarded-Host":  {"fwd.example"},
			"Forwarded":         {"for=127.0.0.1;host=fwd.example;proto=http"},
		})
	})
	t.Run("absent headers are set", func(t *testing.T) {
		if resp, body := do(t, c, "GET", e.url+"/", map[string]string{"Host": "plain.example"}, nil); resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		checkForwarded(t, node, map[string][]string{
			"X-Forwarded-For":   {"127.0.0.1"},
			"X-Forwarded-Proto": {"http"},
			"X-Forwarded-Host":  {"plain.example"},
			"Forwarded":         {"for=127.0.0.1;host=plain.example;proto=http"},
		})
	})
	// RFC 7239 §4: a parameter value is a token or a quoted-string, and ":"
	// is not a token character, so a host with a port must be quoted (or
	// left out); unquoted, a strict parser rejects the whole header.
	t.Run("Forwarded host with a port is quoted or omitted", func(t *testing.T) {
		if resp, body := do(t, c, "GET", e.url+"/", map[string]string{"Host": "fwd.example:8080"}, nil); resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if got := node.header().Get("X-Forwarded-Host"); got != "fwd.example:8080" {
			t.Errorf("X-Forwarded-Host %q, want %q", got, "fwd.example:8080")
		}
		got := node.header().Values("Forwarded")
		ok := slices.Equal(got, []string{`for=127.0.0.1;host="fwd.example:8080";proto=http`}) ||
			slices.Equal(got, []string{`for=127.0.0.1;proto=http`})
		if !ok {
			t.Errorf("Forwarded %q, want %q (or the host left out)", got, `for=127.0.0.1;host="fwd.example:8080";proto=http`)
		}
	})
}

func TestForwardingHeadersFromTrustedProxyAreExtended(t *testing.T) {
	node := startNode(t, "n0")
	d := poolData("round_robin", node)
	d["Server"] = "  trusted_proxies: [127.0.0.1/32]"
	e := startEdge(t, poolConfig, d)
	c := testClient()

	t.Run("existing headers are extended or kept", func(t *testing.T) {
		hdr := map[string]string{
			"Host":              "fwd.example",
			"X-Forwarded-For":   "203.0.113.7",
			"X-Forwarded-Proto": "https",
			"X-Forwarded-Host":  "public.example",
			"Forwarded":         "for=203.0.113.7;proto=https",
		}
		if resp, body := do(t, c, "GET", e.url+"/", hdr, nil); resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		checkForwarded(t, node, map[string][]string{
			"X-Forwarded-For":   {"203.0.113.7, 127.0.0.1"},
			"X-Forwarded-Proto": {"https"},
			"X-Forwarded-Host":  {"public.example"},
			"Forwarded":         {"for=203.0.113.7;proto=https, for=127.0.0.1;host=fwd.example;proto=http"},
		})
	})
	t.Run("absent headers are set", func(t *testing.T) {
		if resp, body := do(t, c, "GET", e.url+"/", map[string]string{"Host": "fwd.example"}, nil); resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		checkForwarded(t, node, map[string][]string{
			"X-Forwarded-For":   {"127.0.0.1"},
			"X-Forwarded-Proto": {"http"},
			"X-Forwarded-Host":  {"fwd.example"},
			"Forwarded":         {"for=127.0.0.1;host=fwd.example;proto=http"},
		})
	})
	// A list header may come in several lines (RFC 9110 §5.3), e.g. when a
	// proxy adds its own line after a client's spoofed one: the whole list
	// is extended, into one line, and its right-most address stays last.
	t.Run("X-Forwarded-For in two lines is extended as one list", func(t *testing.T) {
		rc := dialRaw(t, e.addr)
		resp, body := rc.roundTrip(t, "GET / HTTP/1.1\r\n"+
			"Host: fwd.example\r\n"+
			"X-Forwarded-For: 6.6.6.6\r\n"+
			"X-Forwarded-For: 203.0.113.7\r\n"+
			"\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		checkForwarded(t, node, map[string][]string{
			"X-Forwarded-For": {"6.6.6.6, 203.0.113.7, 127.0.0.1"},
		})
	})
}

// hashedNodes sends each client address (as X-Forwarded-For) rounds times,
// interleaved, and returns the node that answered each address; it fails
// if one address reaches two nodes.
func hashedNodes(t *testing.T, e *edgeUnderTest, addrs []string, rounds int) map[string]string {
	t.Helper()
	c := testClient()
	got := map[string]string{}
	for range rounds {
		for _, a := range addrs {
			resp, body := do(t, c, "GET", e.url+"/", map[string]string{"X-Forwarded-For": a}, nil)
			n := resp.Header.Get("X-Node")
			if resp.StatusCode != 200 || n == "" {
				t.Fatalf("XFF %s: got %d %q from %q", a, resp.StatusCode, body, n)
			}
			if prev, ok := got[a]; ok && prev != n {
				t.Fatalf("XFF %s went to %s, then to %s", a, prev, n)
			}
			got[a] = n
		}
	}
	return got
}

func TestConsistentHashOnClientIPUsesTrustedForwardedFor(t *testing.T) {
	nodes := startNodes(t, 3)
	addrs := make([]string, 20)
	for i := range addrs {
		addrs[i] = "198.51.100." + strconv.Itoa(i+1)
	}

	t.Run("trusted proxy: the forwarded client address is hashed", func(t *testing.T) {
		d := poolData("consistent_hash", nodes...)
		d["Extra"] = "    hash: {source: client_ip}"
		d["Server"] = "  trusted_proxies: [127.0.0.1/32]"
		e := startEdge(t, poolConfig, d)
		got := hashedNodes(t, e, addrs, 3)
		used := map[string]bool{}
		for _, n := range got {
			used[n] = true
		}
		// 20 addresses on one node of three would happen with probability 3^-19.
		if len(used) < 2 {
			t.Fatalf("20 client addresses all went to %v: X-Forwarded-For from a trusted proxy is not hashed", got)
		}
	})
	// The right-most untrusted address is the client, even when a client's
	// spoofed line comes before the one its proxy added.
	t.Run("trusted proxy: the right-most address of a two-line list is hashed", func(t *testing.T) {
		d := poolData("consistent_hash", nodes...)
		d["Extra"] = "    hash: {source: client_ip}"
		d["Server"] = "  trusted_proxies: [127.0.0.1/32]"
		e := startEdge(t, poolConfig, d)
		rc := dialRaw(t, e.addr)
		used := map[string][]string{}
		for _, spoofed := range addrs {
			resp, body := rc.roundTrip(t, "GET / HTTP/1.1\r\nHost: hash.example\r\n"+
				"X-Forwarded-For: "+spoofed+"\r\n"+
				"X-Forwarded-For: 203.0.113.7\r\n\r\n")
			n := resp.Header.Get("X-Node")
			if resp.StatusCode != 200 || n == "" {
				t.Fatalf("got %d %q from %q", resp.StatusCode, body, n)
			}
			used[n] = append(used[n], spoofed)
		}
		if len(used) != 1 {
			t.Fatalf("one client (203.0.113.7) behind the proxy went to several nodes, by the spoofed first line: %v", used)
		}
	})
	t.Run("untrusted client: X-Forwarded-For is ignored", func(t *testing.T) {
		d := poolData("consistent_hash", nodes...)
		d["Extra"] = "    hash: {source: client_ip}"
		e := startEdge(t, poolConfig, d)
		got := hashedNodes(t, e, addrs, 2)
		used := map[string]bool{}
		for _, n := range got {
			used[n] = true
		}
		if len(used) != 1 {
			t.Fatalf("spoofed X-Forwarded-For changed the node of one client: %v", got)
		}
	})
}

// rawClient is one client connection written to by hand, for requests that
// net/http will not send and for checking connection reuse.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{conn: conn, br: bufio.NewReader(conn)}
}

// roundTrip writes raw and reads one response with its body.
func (rc *rawClient) roundTrip(t *testing.T, raw string) (*http.Response, string) {
	t.Helper()
	_ = rc.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(rc.conn, raw); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), token) {
				return true
			}
		}
	}
	return false
}

func TestHopByHopHeadersAreRemoved(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, poolConfig, poolData("round_robin", node))

	t.Run("request", func(t *testing.T) {
		rc := dialRaw(t, e.addr)
		resp, body := rc.roundTrip(t, "GET /echo HTTP/1.1\r\n"+
			"Host: hop.example\r\n"+
			"Connection: keep-alive, X-Hop\r\n"+
			"X-Hop: 1\r\n"+
			"Keep-Alive: 300\r\n"+
			"Proxy-Authorization: Basic eDp5\r\n"+
			"Proxy-Connection: keep-alive\r\n"+
			"Te: trailers\r\n"+
			"Upgrade: foo\r\n"+
			"X-Ordinary: yes\r\n"+
			"\r\n")
		if resp.StatusCode != 200 || body != "node=n0 path=/echo" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		h := node.header()
		for _, name := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te", "Upgrade"} {
			if v := h.Values(name); len(v) > 0 {
				t.Errorf("hop-by-hop %s reached the node: %q", name, v)
			}
		}
		if hasToken(h.Values("Connection"), "X-Hop") {
			t.Errorf("the client's Connection header reached the node: %q", h.Values("Connection"))
		}
		if got := h.Get("X-Ordinary"); got != "yes" {
			t.Errorf("X-Ordinary = %q at the node, want %q", got, "yes")
		}
	})

	// Connection is a list that may be split over several field lines
	// (RFC 9110 §5.3); every name in every line is hop-by-hop.
	t.Run("request with two Connection lines", func(t *testing.T) {
		rc := dialRaw(t, e.addr)
		resp, body := rc.roundTrip(t, "GET /echo2 HTTP/1.1\r\n"+
			"Host: hop.example\r\n"+
			"Connection: X-Hop-A\r\n"+
			"Connection: X-Hop-B\r\n"+
			"X-Hop-A: 1\r\n"+
			"X-Hop-B: 2\r\n"+
			"X-Ordinary: yes\r\n"+
			"\r\n")
		if resp.StatusCode != 200 || body != "node=n0 path=/echo2" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		h := node.header()
		for _, name := range []string{"X-Hop-A", "X-Hop-B"} {
			if v := h.Values(name); len(v) > 0 {
				t.Errorf("%s, named in a Connection line, reached the node: %q", name, v)
			}
		}
		if got := h.Get("X-Ordinary"); got != "yes" {
			t.Errorf("X-Ordinary = %q at the node, want %q", got, "yes")
		}
	})

	t.Run("response", func(t *testing.T) {
		resp, body := do(t, testClient(), "GET", e.url+"/hop", nil, nil)
		if resp.StatusCode != 200 || body != "node=n0 path=/hop" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		for _, name := range []string{"X-Secret", "Keep-Alive", "Proxy-Authenticate"} {
			if v := resp.Header.Values(name); len(v) > 0 {
				t.Errorf("hop-by-hop %s reached the client: %q", name, v)
			}
		}
		if hasToken(resp.Header.Values("Connection"), "X-Secret") {
			t.Errorf("the node's Connection header reached the client: %q", resp.Header.Values("Connection"))
		}
		if got := resp.Header.Get("X-Node"); got != "n0" {
			t.Errorf("X-Node = %q, want n0 (an ordinary header must pass)", got)
		}
	})
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestID(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, poolConfig, poolData("round_robin", node))
	c := testClient()
	cases := []struct {
		name string
		sent string // "" sends none
		kept bool   // the sent ID must be passed unchanged
	}{
		{"absent is generated", "", false},
		{"valid is passed unchanged", "req-ABC_123.xyz:42", true},
		{"valid uuid is passed unchanged", "6f1c0a8e-2b7d-4c3e-9a51-0d2e8f7b6c4a", true},
		{"too long is replaced", strings.Repeat("a", 200), false},
		{"with a space is replaced", "has space", false},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.sent != "" {
				hdr["X-Request-Id"] = tc.sent
			}
			resp, body := do(t, c, "GET", e.url+"/", hdr, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			atNode := node.header().Values("X-Request-Id")
			toClient := resp.Header.Values("X-Request-Id")
			if len(atNode) != 1 {
				t.Fatalf("node saw X-Request-Id %q, want exactly one", atNode)
			}
			if !slices.Equal(toClient, atNode) {
				t.Fatalf("client got X-Request-Id %q, node saw %q: want the same", toClient, atNode)
			}
			id := atNode[0]
			if tc.kept {
				if id != tc.sent {
					t.Fatalf("X-Request-Id %q was changed to %q", tc.sent, id)
				}
				return
			}
			if !generatedID.MatchString(id) {
				t.Fatalf("X-Request-Id %q (sent %q): want a generated 32-hex-character ID", id, tc.sent)
			}
			if seen[id] {
				t.Fatalf("generated X-Request-Id %q twice", id)
			}
			seen[id] = true
		})
	}
}

// TestNodeConnectionCloseKeepsClientConnection checks that a node closing
// its connection after each answer does not make edge close the client's.
func TestNodeConnectionCloseKeepsClientConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var reqs, conns atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reqs.Add(1)
			w.Header().Set("Connection", "close")
			fmt.Fprintf(w, "closing after %s", r.URL.Path)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	e := startEdge(t, poolConfig, poolData("round_robin", &testNode{addr: ln.Addr().String()}))
	rc := dialRaw(t, e.addr)
	for i := range 3 {
		path := "/r" + strconv.Itoa(i)
		resp, body := rc.roundTrip(t, "GET "+path+" HTTP/1.1\r\nHost: close.example\r\n\r\n")
		if resp.StatusCode != 200 || body != "closing after "+path {
			t.Fatalf("request %d on one client connection: got %d %q", i, resp.StatusCode, body)
		}
		if resp.Close {
			t.Fatalf("request %d: edge answered with Connection: close (%q) because the node did", i, resp.Header.Values("Connection"))
		}
	}
	if got := reqs.Load(); got != 3 {
		t.Fatalf("node got %d requests, want 3", got)
	}
	if got := conns.Load(); got != 3 {
		t.Logf("node saw %d connections for 3 requests (it closes each)", got)
	}
}
