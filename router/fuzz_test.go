package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// Fuzz targets over the request path's pure parts. Their seed corpora
// (f.Add and testdata/fuzz/<Name>/) run as ordinary tests.

// fuzzRoutes covers every kind of condition: exact and wildcard hosts
// (nested wildcards too), path, path_prefix (nested, of many lengths),
// path_regex, methods, header presence and value, and a catch-all last.
// Every host has at least pathIndexMin candidate routes, so the path
// index is in play, not only the scan.
const fuzzRoutes = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
routes:
  - {name: api-v1, match: {hosts: [api.example.com], path_prefix: /v1/}, respond: {body: api-v1}}
  - {name: api-v1-users, match: {hosts: [api.example.com], path: /v1/users}, respond: {body: api-v1-users}}
  - {name: shop-cart, match: {hosts: ["*.shop.example"], path: /cart}, respond: {body: shop-cart}}
  - {name: shop-eu, match: {hosts: ["*.eu.shop.example"]}, respond: {body: shop-eu}}
  - {name: static-app, match: {path: /static/app.js}, respond: {body: static-app}}
  - {name: static, match: {path_prefix: /static/}, respond: {body: static}}
  - {name: static-img, match: {path_prefix: /static/img/}, respond: {body: static-img}}
  - {name: admin-write, match: {path_prefix: /admin/, methods: [POST, DELETE]}, respond: {body: admin-write}}
  - {name: admin, match: {path_prefix: /admin/}, respond: {body: admin}}
  - {name: admin-login, match: {path: /admin/login}, respond: {body: admin-login}}
  - {name: images, match: {path_regex: '^/img/[0-9]+\.(png|jpe?g)$'}, respond: {body: images}}
  - {name: beta, match: {path_prefix: /beta, headers: [{name: X-Beta}]}, respond: {body: beta}}
  - {name: beta-exact, match: {path: /beta}, respond: {body: beta-exact}}
  - {name: staging, match: {headers: [{name: X-Env, value: staging}]}, respond: {body: staging}}
  - {name: a, match: {path_prefix: /a}, respond: {body: a}}
  - {name: ab, match: {path_prefix: /ab}, respond: {body: ab}}
  - {name: abc, match: {path: /abc}, respond: {body: abc}}
  - {name: root, match: {path: /, methods: [GET]}, respond: {body: root}}
  - {name: deep, match: {path_prefix: /x/b/c/d/e/f/}, respond: {body: deep}}
  - {name: home, match: {hosts: [example.com, www.example.com, "*.example.com"], path: /}, respond: {body: home}}
  - {name: put-only, match: {methods: [PUT]}, respond: {body: put-only}}
  - {name: catch-all, respond: {body: catch-all}}
`

// startFuzzServer builds a Server (not listening) for cfgYAML and returns
// it with its snapshot.
func startFuzzServer(f *testing.F, cfgYAML string) (*Server, *snapshot) {
	f.Helper()
	cfg, err := config.Parse([]byte(cfgYAML), "fuzz.yaml", nil)
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, srv.snap.Load()
}

// routeRequest does what the handler does before an action runs: parse,
// framing checks, path normalisation, the host index and the routes'
// conditions. ok is false when edge refuses the request (4xx) before
// routing; r is nil when no route matches (404).
func routeRequest(s *Server, snap *snapshot, raw string) (ctx *fasthttp.RequestCtx, path []byte, r *route, ok bool) {
	ctx = new(fasthttp.RequestCtx)
	if err := ctx.Request.Header.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		return nil, nil, nil, false
	}
	if len(ctx.Request.Header.RequestURI()) > snap.maxURI {
		return nil, nil, nil, false
	}
	if fe, _ := checkFraming(&ctx.Request.Header, snap.maxFields); fe != framingOK {
		return nil, nil, nil, false
	}
	sc := &scratch{}
	if !s.normalizeTarget(ctx, snap, sc) {
		return nil, nil, nil, false
	}
	host := normalizeHost(nil, ctx.Request.Header.Host())
	r, _ = snap.hosts.candidates(host).match(ctx, sc.path, nil)
	return ctx, sc.path, r, true
}

// refRoute is the specification of routing, written from the
// configuration alone: the first route, in file order, whose every
// condition holds.
func refRoute(cfg *config.Config, ctx *fasthttp.RequestCtx, path []byte) string {
	h := string(ctx.Request.Header.Host())
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[:i+1]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	host := strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, h)
	p := string(path)
	for _, cr := range cfg.Routes {
		m := cr.Match
		if len(m.Hosts) > 0 {
			hit := false
			for _, want := range m.Hosts {
				if suffix, ok := strings.CutPrefix(want, "*"); ok {
					hit = hit || (strings.HasSuffix(host, suffix) && len(host) > len(suffix))
				} else {
					hit = hit || want == host
				}
			}
			if !hit {
				continue
			}
		}
		if m.Path != "" && p != m.Path ||
			m.PathPrefix != "" && !strings.HasPrefix(p, m.PathPrefix) ||
			m.PathRegexp != nil && !m.PathRegexp.MatchString(p) {
			continue
		}
		if len(m.Methods) > 0 {
			hit := false
			for _, want := range m.Methods {
				hit = hit || want == string(ctx.Method())
			}
			if !hit {
				continue
			}
		}
		hit := true
		for _, hm := range m.Headers {
			v := ctx.Request.Header.Peek(hm.Name)
			hit = hit && v != nil && (hm.Value == "" || string(v) == hm.Value)
		}
		if hit {
			return cr.Name
		}
	}
	return ""
}

func nameOf(r *route) string {
	if r == nil {
		return ""
	}
	return r.name
}

// FuzzRouteMatch routes fuzzed requests through the host index and the
// compiled conditions, and checks the result against refRoute: the index
// may only skip routes that cannot match. A request whose normalised path
// is under /admin/ never falls through to the catch-all, and the request
// as forwarded (its target rewritten to the normalised path) routes the
// same way again.
func FuzzRouteMatch(f *testing.F) {
	for _, s := range [][5]string{
		// method, host, target, X-Env value, X-Beta ("" for none)
		{"GET", "api.example.com", "/v1/users", "", ""},
		{"GET", "API.Example.COM.:8443", "/v1/../v1/x", "", ""},
		{"GET", "x.shop.example", "/cart", "", ""},
		{"GET", "a.eu.shop.example", "/cart", "", ""},
		{"GET", ".shop.example", "/cart", "", ""},
		{"GET", "shop.example", "/cart", "", ""},
		{"POST", "example.org", "/admin/users", "", ""},
		{"GET", "example.org", "/%61dmin/login", "", ""},
		{"GET", "example.org", "/x/..//admin/", "", ""},
		{"GET", "example.org", "http://example.org/x/%2e%2e/admin/a?b", "", ""},
		{"get", "example.org", "/admin/", "", ""},
		{"GET", "example.org", "/static/img/a.png", "", ""},
		{"GET", "example.org", "/static/app.js", "", ""},
		{"GET", "example.org", "/img/12.jpeg", "", ""},
		{"GET", "example.org", "/img/12.jpeg/x", "", ""},
		{"GET", "example.org", "/beta/x", "", "1"},
		{"GET", "example.org", "/beta", "", ""},
		{"GET", "example.org", "/other", "staging", ""},
		{"GET", "example.org", "/other", " staging ", ""},
		{"GET", "example.org", "/abc", "", ""},
		{"GET", "example.org", "/abcd", "", ""},
		{"GET", "example.org", "/x/b/c/d/e/f/g", "", ""},
		{"PUT", "example.org", "/x/b/c/d/e/f", "", ""},
		{"GET", "www.example.com", "/", "", ""},
		{"HEAD", "a.b.example.com", "/./", "", ""},
		{"GET", "[::1]:80", "/", "", ""},
		{"OPTIONS", "example.com", "*", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	srv, snap := startFuzzServer(f, fuzzRoutes)
	cfg := snap.cfg
	adminIndex := -1
	for i, r := range snap.routes {
		if r.name == "admin" {
			adminIndex = i
		}
	}
	f.Fuzz(func(t *testing.T, method, host, target, env, beta string) {
		var b strings.Builder
		b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n")
		if env != "" {
			b.WriteString("X-Env: " + env + "\r\n")
		}
		if beta != "" {
			b.WriteString("X-Beta: " + beta + "\r\n")
		}
		b.WriteString("\r\n")
		raw := b.String()

		ctx, path, got, ok := routeRequest(srv, snap, raw)
		if !ok {
			return // refused before routing: 400, 414 or 431
		}
		want := refRoute(cfg, ctx, path)
		if nameOf(got) != want {
			t.Fatalf("request %q (path %q, host %q) routed to %q, the first matching route is %q",
				raw, path, normalizeHost(nil, ctx.Request.Header.Host()), nameOf(got), want)
		}
		if bytes.HasPrefix(path, []byte("/admin/")) && (got == nil || got.index > adminIndex) {
			t.Fatalf("request %q with path %q fell through the /admin/ prefix route to %q", raw, path, nameOf(got))
		}

		// The request as it is sent on: same route.
		forwarded := ctx.Request.Header.RequestURI()
		again := strings.Replace(raw, " "+target+" ", " "+string(forwarded)+" ", 1)
		if strings.Contains(target, " ") || strings.Contains(target, "\r") || strings.Contains(target, "\n") {
			return // the target was not one field: nothing to substitute
		}
		_, path2, got2, ok2 := routeRequest(srv, snap, again)
		if !ok2 || !bytes.Equal(path2, path) || got2 != got {
			t.Fatalf("request %q routed to %q with path %q; forwarded as %q it is refused (%v) or routed to %q with path %q",
				raw, nameOf(got), path, forwarded, !ok2, nameOf(got2), path2)
		}
	})
}

// headerLine is one field of a serialised header.
type headerLine struct{ name, value string }

// wireFields serialises h as it goes on the wire and splits it into fields
// (the first line, request or status, is skipped).
func wireFields(h interface{ Header() []byte }) []headerLine {
	var out []headerLine
	lines := strings.Split(string(h.Header()), "\r\n")
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		name, value, _ := strings.Cut(l, ": ")
		out = append(out, headerLine{name, value})
	}
	return out
}

func fieldValues(fs []headerLine, name string) []string {
	var out []string
	for _, f := range fs {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// yamlString quotes s for YAML (a JSON string is a YAML double-quoted
// scalar).
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// FuzzHeaderRules compiles request or response header rules through the
// configuration (so that only rules edge accepts are tried) and applies
// them to a header that already has fuzzed fields. Whatever the input:
// no panic; a removed field is gone; a set field goes on the wire exactly
// once, with exactly the configured value (followed by the added value
// when add names it too); an added field is appended; every other field
// is left as it was.
func FuzzHeaderRules(f *testing.F) {
	for _, s := range []struct {
		response                   bool
		existing                   string
		setN, setV, addN, addV, rm string
	}{
		{false, "X-User: alice\r\n", "X-User", "nobody", "", "", ""},
		{false, "X-User: alice\r\nX-User: admin\r\n", "x-user", "nobody", "", "", ""},
		{false, "X-Debug: 1\r\nX-Trace: a\r\n", "", "", "X-Trace", "edge", "X-Debug"},
		{false, "X-A: 1\r\n", "X-A", "set", "X-A", "added", "X-A"},
		{false, "Cookie: a=b\r\n", "Cookie", "c=d; e=f", "", "", ""},
		{false, "User-Agent: ua\r\n", "User-Agent", "edge", "", "", "Cookie"},
		{false, "Content-Type: text/plain\r\n", "content-type", "application/json", "", "", ""},
		{false, "", "Host", "internal.example", "", "", "Authorization"},
		{true, "Server: node\r\nX-Powered-By: php\r\n", "Server", "edge", "", "", "X-Powered-By"},
		{true, "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n", "", "", "Set-Cookie", "c=3", ""},
		{true, "Content-Type: text/html\r\n", "Content-Type", "", "", "", ""},
		{true, "Cache-Control: no-store\r\nCache-Control: private\r\n", "Cache-Control", "public, max-age=60", "", "", ""},
	} {
		f.Add(s.response, s.existing, s.setN, s.setV, s.addN, s.addV, s.rm)
	}
	f.Fuzz(func(t *testing.T, response bool, existing, setN, setV, addN, addV, rm string) {
		var rules strings.Builder
		if setN != "" {
			rules.WriteString("set: {" + yamlString(setN) + ": " + yamlString(setV) + "}, ")
		}
		if addN != "" {
			rules.WriteString("add: {" + yamlString(addN) + ": " + yamlString(addV) + "}, ")
		}
		if rm != "" {
			rules.WriteString("remove: [" + yamlString(rm) + "], ")
		}
		section := "request_headers"
		if response {
			section = "response_headers"
		}
		doc := "listeners: [{address: \"127.0.0.1:0\"}]\nroutes:\n  - respond: {body: x}\n    " +
			section + ": {" + strings.TrimSuffix(rules.String(), ", ") + "}\n"
		cfg, err := config.Parse([]byte(doc), "fuzz.yaml", nil)
		if err != nil {
			return // a rule edge refuses to load
		}
		hr := cfg.Routes[0].RequestHeaders
		if response {
			hr = cfg.Routes[0].ResponseHeaders
		}
		compiled := compileHeaderRules(hr)

		// The header before the rules, as received and parsed.
		var h interface {
			headerEditor
			Header() []byte
		}
		if response {
			rh := new(fasthttp.ResponseHeader)
			if rh.Read(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\n"+existing+"\r\n"))) != nil {
				return
			}
			rh.SetNoDefaultContentType(true) // as edge's server does
			h = rh
		} else {
			rq := new(fasthttp.RequestHeader)
			if rq.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n"+existing+"\r\n"))) != nil {
				return
			}
			h = rq
		}
		before := wireFields(h)
		compiled.apply(h)
		after := wireFields(h)

		touched := func(name string) bool {
			for n := range hr.Set {
				if strings.EqualFold(n, name) {
					return true
				}
			}
			for n := range hr.Add {
				if strings.EqualFold(n, name) {
					return true
				}
			}
			for _, n := range hr.Remove {
				if strings.EqualFold(n, name) {
					return true
				}
			}
			return false
		}
		show := func() string {
			return "rules " + strings.TrimSpace(doc[strings.Index(doc, section):]) +
				"\nbefore:\n" + string(bytes.TrimSpace([]byte(formatFields(before)))) +
				"\nafter:\n" + string(bytes.TrimSpace([]byte(formatFields(after))))
		}
		for _, name := range hr.Remove {
			_, set := lookupFold(hr.Set, name)
			_, add := lookupFold(hr.Add, name)
			if !set && !add {
				if vs := fieldValues(after, name); len(vs) > 0 {
					t.Fatalf("removed field %s still present: %q\n%s", name, vs, show())
				}
			}
		}
		for name, v := range hr.Set {
			want := []string{v}
			if av, ok := lookupFold(hr.Add, name); ok {
				want = append(want, av)
			}
			if got := fieldValues(after, name); !equalStrings(got, want) {
				t.Fatalf("set field %s: on the wire %q, want %q\n%s", name, got, want, show())
			}
		}
		for name, v := range hr.Add {
			if _, set := lookupFold(hr.Set, name); set {
				continue
			}
			prev := fieldValues(before, name)
			if _, removed := lookupFoldList(hr.Remove, name); removed {
				prev = nil
			}
			if got := fieldValues(after, name); !equalStrings(got, append(prev, v)) {
				t.Fatalf("added field %s: on the wire %q, want %q\n%s", name, got, append(prev, v), show())
			}
		}
		var keptBefore, keptAfter []headerLine
		for _, fl := range before {
			if !touched(fl.name) {
				keptBefore = append(keptBefore, fl)
			}
		}
		for _, fl := range after {
			if !touched(fl.name) {
				keptAfter = append(keptAfter, fl)
			}
		}
		if formatFields(keptBefore) != formatFields(keptAfter) {
			t.Fatalf("fields the rules do not name changed:\n%s", show())
		}
	})
}

func lookupFold(m map[string]string, name string) (string, bool) {
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

func lookupFoldList(l []string, name string) (string, bool) {
	for _, k := range l {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func formatFields(fs []headerLine) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.name + ": " + f.value + "\n")
	}
	return b.String()
}
