package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// End-to-end tests of the shared cache (RFC 9111) through a running edge:
// a scripted origin behind one cached route.

// originAnswer is one scripted origin response.
type originAnswer struct {
	Status int               // default 200
	Header map[string]string // set as given; Content-Length is added unless Chunked
	Body   string
	Delay  time.Duration // before the answer is written
	// Conditional answers 304 (Header without body) to a request whose
	// If-None-Match lists Header's ETag, or whose If-Modified-Since is not
	// before its Last-Modified.
	Conditional bool
	// Ranged answers a Range request with 206, as net/http's ServeContent.
	Ranged bool
	// Chunked sends the body in pieces, chunked, without Content-Length.
	Chunked bool
	// Truncate, when > 0, declares the whole body's length but sends only
	// this many bytes of it before closing the connection.
	Truncate int
}

// originRequest is what the origin received.
type originRequest struct {
	Method, URI string
	Header      http.Header
}

// scriptOrigin is a loopback net/http origin whose answers the test
// scripts; it records every request.
type scriptOrigin struct {
	addr string
	srv  *http.Server

	mu     sync.Mutex
	answer func(r *http.Request, n int) originAnswer
	reqs   []originRequest

	inflight, maxIn atomic.Int64
}

// startOrigin starts an origin; answer gets each request with its number
// (1 for the first request the origin receives).
func startOrigin(t *testing.T, answer func(r *http.Request, n int) originAnswer) *scriptOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &scriptOrigin{addr: ln.Addr().String(), answer: answer}
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = o.srv.Serve(ln) }()
	t.Cleanup(func() { _ = o.srv.Close() })
	return o
}

// always answers every request alike.
func always(a originAnswer) func(*http.Request, int) originAnswer {
	return func(*http.Request, int) originAnswer { return a }
}

func (o *scriptOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in := o.inflight.Add(1)
	defer o.inflight.Add(-1)
	for {
		m := o.maxIn.Load()
		if in <= m || o.maxIn.CompareAndSwap(m, in) {
			break
		}
	}
	o.mu.Lock()
	o.reqs = append(o.reqs, originRequest{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone()})
	n := len(o.reqs)
	answer := o.answer
	o.mu.Unlock()
	_, _ = io.Copy(io.Discard, r.Body)

	a := answer(r, n)
	if a.Delay > 0 {
		time.Sleep(a.Delay)
	}
	h := w.Header()
	for k, v := range a.Header {
		h[http.CanonicalHeaderKey(k)] = []string{v}
	}
	status := a.Status
	if status == 0 {
		status = http.StatusOK
	}
	if a.Truncate > 0 {
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
		for k, v := range a.Header {
			fmt.Fprintf(bw, "%s: %s\r\n", k, v)
		}
		fmt.Fprintf(bw, "Content-Length: %d\r\n\r\n%s", len(a.Body), a.Body[:a.Truncate])
		_ = bw.Flush()
		_ = conn.Close()
		return
	}
	if a.Conditional && originNotModified(r, a.Header) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if a.Ranged && status == http.StatusOK && r.Header.Get("Range") != "" {
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(a.Body))
		return
	}
	if a.Chunked {
		w.WriteHeader(status)
		f, _ := w.(http.Flusher)
		for b := a.Body; len(b) > 0; {
			piece := min(len(b), 8<<10)
			_, _ = io.WriteString(w, b[:piece])
			b = b[piece:]
			if f != nil {
				f.Flush()
			}
		}
		return
	}
	if status != http.StatusNoContent && status != http.StatusNotModified && h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.Itoa(len(a.Body)))
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, a.Body)
}

func headerOf(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func originNotModified(r *http.Request, h map[string]string) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		etag := headerOf(h, "ETag")
		for tag := range strings.SplitSeq(inm, ",") {
			if tag = strings.TrimSpace(tag); tag == "*" || (etag != "" && strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(etag, "W/")) {
				return true
			}
		}
		return false
	}
	ims, lm := r.Header.Get("If-Modified-Since"), headerOf(h, "Last-Modified")
	if ims == "" || lm == "" {
		return false
	}
	it, err1 := http.ParseTime(ims)
	lt, err2 := http.ParseTime(lm)
	return err1 == nil && err2 == nil && !lt.After(it)
}

// count is the number of requests the origin received.
func (o *scriptOrigin) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.reqs)
}

// request returns the origin's n-th request (1-based).
func (o *scriptOrigin) request(t *testing.T, n int) originRequest {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if n < 1 || n > len(o.reqs) {
		t.Fatalf("the origin got %d requests, no request %d", len(o.reqs), n)
	}
	return o.reqs[n-1]
}

// stop closes the origin's listener and connections: a dead origin.
func (o *scriptOrigin) stop() { _ = o.srv.Close() }

// cacheTestConfig is one pool with the scripted origin behind one cached
// route named "cached". Global and Route are YAML flow mappings (the
// global and the route's cache sections), Upstream more upstream lines.
const cacheTestConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
cache: {{or .Global "{}"}}
upstreams:
  app:
    nodes: [{address: "{{.Origin}}", name: origin}]
{{- if .Upstream}}
{{.Upstream}}
{{- end}}
routes:
  - name: cached
    proxy: app
    cache: {{or .Route "{}"}}
`

type cacheSetup struct {
	Global   string // the global cache section, as a flow mapping
	Route    string // the route's cache section, as a flow mapping
	Upstream string // more lines of the upstream, indented by 4
}

type cacheEnv struct {
	o *scriptOrigin
	e *edgeUnderTest
	c *http.Client
}

func startCacheEnv(t *testing.T, s cacheSetup, answer func(*http.Request, int) originAnswer) *cacheEnv {
	t.Helper()
	o := startOrigin(t, answer)
	e := startEdge(t, cacheTestConfig, map[string]any{
		"Global": s.Global, "Route": s.Route, "Upstream": s.Upstream, "Origin": o.addr,
	})
	return &cacheEnv{o: o, e: e, c: testClient()}
}

// get sends a request through edge ({edge} in path and header values
// stands for edge's address).
func (env *cacheEnv) send(t *testing.T, method, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	h := make(map[string]string, len(hdr))
	for k, v := range hdr {
		h[k] = strings.ReplaceAll(v, "{edge}", env.e.addr)
	}
	return do(t, env.c, method, env.e.url+strings.ReplaceAll(path, "{edge}", env.e.addr), h, nil)
}

// Cache-Status values (RFC 9211) edge sends.
const (
	csHit    = "edge; hit"
	csMiss   = "edge; fwd=uri-miss"
	csStored = "; stored"
)

// cacheStatusTTL returns the ttl parameter of a Cache-Status value.
func cacheStatusTTL(v string) (int, bool) {
	for p := range strings.SplitSeq(v, ";") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(p), "ttl="); ok {
			n, err := strconv.Atoi(s)
			return n, err == nil
		}
	}
	return 0, false
}

// step is one request of a scenario and what must come of it.
type step struct {
	sleep  time.Duration // before the request
	do     func(t *testing.T, env *cacheEnv)
	method string // default GET
	path   string // default "/"
	admin  bool   // to the admin API instead of the listener
	hdr    map[string]string

	status     int    // 0: not checked
	body       string // checked when set
	noBody     bool   // the body must be empty
	origin     int    // the origin's request count after the step
	anyOrigin  bool   // origin is not checked
	cs         string // must occur in Cache-Status
	notCS      string // must not occur in Cache-Status
	headers    map[string]string
	check      func(t *testing.T, env *cacheEnv, resp *http.Response, body string)
	bodyPrefix string
}

// absent is a headers value: the field must not be there.
const absent = "\x00absent"

func runSteps(t *testing.T, env *cacheEnv, steps []step) {
	t.Helper()
	for i, s := range steps {
		if s.sleep > 0 {
			time.Sleep(s.sleep)
		}
		if s.do != nil {
			s.do(t, env)
			continue
		}
		method, path := s.method, s.path
		if method == "" {
			method = "GET"
		}
		if path == "" {
			path = "/"
		}
		where := fmt.Sprintf("step %d (%s %s %v)", i+1, method, path, s.hdr)
		var resp *http.Response
		var body string
		if s.admin {
			resp, body = do(t, env.c, method, env.e.admin+strings.ReplaceAll(path, "{edge}", url.QueryEscape("http://"+env.e.addr)), nil, nil)
		} else {
			resp, body = env.send(t, method, path, s.hdr)
		}
		cs := resp.Header.Get("Cache-Status")
		detail := fmt.Sprintf("status %d, Cache-Status %q, Age %q, body %.80q", resp.StatusCode, cs, resp.Header.Get("Age"), body)
		if s.status != 0 && resp.StatusCode != s.status {
			t.Errorf("%s: status %d, want %d (%s)", where, resp.StatusCode, s.status, detail)
		}
		if s.body != "" && body != s.body {
			t.Errorf("%s: body %.80q, want %q (%s)", where, body, s.body, detail)
		}
		if s.bodyPrefix != "" && !strings.HasPrefix(body, s.bodyPrefix) {
			t.Errorf("%s: body %.80q, want it to start with %q (%s)", where, body, s.bodyPrefix, detail)
		}
		if s.noBody && body != "" {
			t.Errorf("%s: body %.80q, want none (%s)", where, body, detail)
		}
		if !s.anyOrigin {
			if got := env.o.count(); got != s.origin {
				t.Errorf("%s: the origin got %d requests so far, want %d (%s)", where, got, s.origin, detail)
			}
		}
		if s.cs != "" && !strings.Contains(cs, s.cs) {
			t.Errorf("%s: Cache-Status %q, want it to contain %q (%s)", where, cs, s.cs, detail)
		}
		if s.notCS != "" && strings.Contains(cs, s.notCS) {
			t.Errorf("%s: Cache-Status %q, must not contain %q (%s)", where, cs, s.notCS, detail)
		}
		if strings.HasPrefix(s.cs, csHit) {
			// RFC 9111 §5.1: a cache generates Age on what it serves.
			if age, err := strconv.Atoi(resp.Header.Get("Age")); err != nil || age < 0 {
				t.Errorf("%s: a hit with Age %q, want a number of seconds (%s)", where, resp.Header.Get("Age"), detail)
			}
		}
		for name, want := range s.headers {
			got, ok := resp.Header[http.CanonicalHeaderKey(name)]
			switch {
			case want == absent && ok:
				t.Errorf("%s: %s: %q, want none (%s)", where, name, got, detail)
			case want != absent && (!ok || strings.Join(got, ", ") != want):
				t.Errorf("%s: %s: %q, want %q (%s)", where, name, got, want, detail)
			}
		}
		if s.check != nil {
			s.check(t, env, resp, body)
		}
	}
}

func httpDate(d time.Duration) string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }

func TestCacheStorable(t *testing.T) {
	type tc struct {
		name       string
		global     string
		route      string
		answer     originAnswer
		req1, req2 map[string]string
		origin     int    // origin requests after the two requests
		stored     string // "yes" / "no": whether the first answer says "stored"; "" either
		check      func(t *testing.T, env *cacheEnv, r1, r2 *http.Response)
	}
	cc := func(v string) map[string]string { return map[string]string{"Cache-Control": v} }
	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	auth := map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}
	noField := func(names ...string) func(t *testing.T, env *cacheEnv, r1, r2 *http.Response) {
		return func(t *testing.T, _ *cacheEnv, r1, r2 *http.Response) {
			for _, n := range names {
				for i, r := range []*http.Response{r1, r2} {
					if v, ok := r.Header[http.CanonicalHeaderKey(n)]; ok {
						t.Errorf("response %d carries %s: %q; it must be removed before the client", i+1, n, v)
					}
				}
			}
		}
	}
	cases := []tc{
		{name: "max-age", answer: originAnswer{Header: cc("max-age=60"), Body: "a"}, origin: 1, stored: "yes"},
		{name: "s-maxage over max-age", answer: originAnswer{Header: cc("max-age=0, s-maxage=60"), Body: "a"}, origin: 1, stored: "yes"},
		{name: "s-maxage=0 over max-age", answer: originAnswer{Header: cc("s-maxage=0, max-age=60"), Body: "a"}, origin: 2},
		{name: "no-store", answer: originAnswer{Header: cc("no-store"), Body: "a"}, origin: 2, stored: "no"},
		{name: "no-store with max-age", answer: originAnswer{Header: cc("max-age=60, no-store"), Body: "a"}, origin: 2, stored: "no"},
		{name: "private", answer: originAnswer{Header: cc("private, max-age=60"), Body: "a"}, origin: 2, stored: "no"},
		{name: "no lifetime and no validator", answer: originAnswer{Body: "a"}, origin: 2},
		{name: "route default_ttl", route: "{default_ttl: 1m}", answer: originAnswer{Body: "a"}, origin: 1, stored: "yes"},
		{name: "request no-store", answer: originAnswer{Header: cc("max-age=60"), Body: "a"}, req1: cc("no-store"), req2: map[string]string{}, origin: 2, stored: "no"},

		// RFC 9111 §3.5: a response to a request with Authorization is
		// stored only with public, s-maxage or must-revalidate.
		{name: "Authorization with max-age", answer: originAnswer{Header: cc("max-age=60"), Body: "a"}, req1: auth, origin: 2, stored: "no"},
		{name: "Authorization with public", answer: originAnswer{Header: cc("public, max-age=60"), Body: "a"}, req1: auth, origin: 1, stored: "yes"},
		{name: "Authorization with s-maxage", answer: originAnswer{Header: cc("s-maxage=60"), Body: "a"}, req1: auth, origin: 1, stored: "yes"},
		{name: "Authorization with must-revalidate", answer: originAnswer{Header: cc("must-revalidate, max-age=60"), Body: "a"}, req1: auth, origin: 1, stored: "yes"},

		{name: "Set-Cookie is not stored", answer: originAnswer{Header: with(cc("max-age=60"), "Set-Cookie", "session=s1; Path=/"), Body: "a"}, origin: 2, stored: "no",
			check: func(t *testing.T, _ *cacheEnv, r1, r2 *http.Response) {
				if r1.Header.Get("Set-Cookie") == "" || r2.Header.Get("Set-Cookie") == "" {
					t.Errorf("Set-Cookie %q, %q: both clients must get the origin's cookie", r1.Header.Get("Set-Cookie"), r2.Header.Get("Set-Cookie"))
				}
			}},
		{name: "Set-Cookie stripped with strip_set_cookie", route: "{strip_set_cookie: true}",
			answer: originAnswer{Header: with(cc("max-age=60"), "Set-Cookie", "session=s1; Path=/"), Body: "a"}, origin: 1, stored: "yes",
			check: func(t *testing.T, _ *cacheEnv, r1, r2 *http.Response) {
				if got := r1.Header.Get("Set-Cookie"); got != "session=s1; Path=/" {
					t.Errorf("first answer: Set-Cookie %q, want the origin's (the client that caused the store gets it)", got)
				}
				if got := r2.Header.Values("Set-Cookie"); len(got) != 0 {
					t.Errorf("hit: Set-Cookie %q, want none (the stored copy has no cookie)", got)
				}
			}},

		{name: "Vary star is never served from the cache", answer: originAnswer{Header: with(cc("max-age=60"), "Vary", "*"), Body: "a"}, origin: 2},
		{name: "no-cache is revalidated each time", answer: originAnswer{Header: with(cc("no-cache, max-age=60"), "ETag", `"v1"`), Body: "a", Conditional: true}, origin: 2, stored: "yes",
			check: func(t *testing.T, env *cacheEnv, _, r2 *http.Response) {
				if got := env.o.request(t, 2).Header.Get("If-None-Match"); got != `"v1"` {
					t.Errorf("the revalidation carried If-None-Match %q, want the stored ETag \"v1\"", got)
				}
				if r2.StatusCode != 200 {
					t.Errorf("after the origin's 304 the client got %d, want 200 with the stored body", r2.StatusCode)
				}
			}},

		// RFC 9111 §4.2.2: heuristic freshness for responses cacheable by
		// default (RFC 9110 §15.1), never for a 302.
		{name: "heuristic: 200 with Last-Modified", answer: originAnswer{Header: map[string]string{"Last-Modified": httpDate(-240 * time.Hour)}, Body: "a"}, origin: 1, stored: "yes",
			check: func(t *testing.T, _ *cacheEnv, _, r2 *http.Response) {
				if ttl, ok := cacheStatusTTL(r2.Header.Get("Cache-Status")); !ok || ttl < 3600 {
					t.Errorf("heuristic ttl %d (%v), want about 10%% of 10 days, capped at 24h", ttl, ok)
				}
			}},
		{name: "heuristic: 404 with Last-Modified", answer: originAnswer{Status: 404, Header: map[string]string{"Last-Modified": httpDate(-240 * time.Hour)}, Body: "gone"}, origin: 1, stored: "yes"},
		{name: "heuristic: not for 302", answer: originAnswer{Status: 302, Header: map[string]string{"Last-Modified": httpDate(-240 * time.Hour), "Location": "/elsewhere"}, Body: "moved"}, origin: 2, stored: "no"},

		{name: "Expires in the past", answer: originAnswer{Header: map[string]string{"Expires": httpDate(-time.Hour)}, Body: "a"}, origin: 2},
		{name: "invalid Expires 0", answer: originAnswer{Header: map[string]string{"Expires": "0"}, Body: "a"}, origin: 2},
		{name: "Expires in the future", answer: originAnswer{Header: map[string]string{"Expires": httpDate(time.Hour)}, Body: "a"}, origin: 1, stored: "yes"},
		{name: "max-age over a past Expires", answer: originAnswer{Header: with(cc("max-age=60"), "Expires", httpDate(-time.Hour)), Body: "a"}, origin: 1, stored: "yes"},

		{name: "Age above max-age: stale on arrival", answer: originAnswer{Header: with(cc("max-age=60"), "Age", "100"), Body: "a"}, origin: 2},
		{name: "Age from the origin counts", answer: originAnswer{Header: with(cc("max-age=600"), "Age", "30"), Body: "a"}, origin: 1, stored: "yes",
			check: func(t *testing.T, _ *cacheEnv, _, r2 *http.Response) {
				if age, _ := strconv.Atoi(r2.Header.Get("Age")); age < 30 {
					t.Errorf("hit: Age %q, want at least the origin's 30", r2.Header.Get("Age"))
				}
				if ttl, ok := cacheStatusTTL(r2.Header.Get("Cache-Status")); !ok || ttl > 570 {
					t.Errorf("hit: ttl %d, want at most 600-30", ttl)
				}
			}},

		// RFC 9213: the targeted field, when present, replaces
		// Cache-Control for this cache, and is not passed on.
		{name: "CDN-Cache-Control over Cache-Control", answer: originAnswer{Header: with(cc("no-store"), "CDN-Cache-Control", "max-age=60"), Body: "a"}, origin: 1, stored: "yes",
			check: func(t *testing.T, env *cacheEnv, r1, r2 *http.Response) {
				noField("CDN-Cache-Control")(t, env, r1, r2)
				if r1.Header.Get("Cache-Control") != "no-store" || r2.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("Cache-Control %q, %q: the client must get the origin's Cache-Control", r1.Header.Get("Cache-Control"), r2.Header.Get("Cache-Control"))
				}
			}},
		{name: "CDN-Cache-Control no-store", answer: originAnswer{Header: with(cc("max-age=60"), "CDN-Cache-Control", "no-store"), Body: "a"}, origin: 2, stored: "no", check: noField("CDN-Cache-Control")},
		{name: "Surrogate-Control over Cache-Control", answer: originAnswer{Header: with(cc("private"), "Surrogate-Control", "max-age=60"), Body: "a"}, origin: 1, stored: "yes", check: noField("Surrogate-Control")},
		{name: "CDN-Cache-Control before Surrogate-Control", answer: originAnswer{Header: with(cc("max-age=60"), "CDN-Cache-Control", "no-store", "Surrogate-Control", "max-age=60"), Body: "a"},
			origin: 2, stored: "no", check: noField("CDN-Cache-Control", "Surrogate-Control")},

		{name: "500 with max-age is stored", answer: originAnswer{Status: 500, Header: cc("max-age=60"), Body: "error"}, origin: 1, stored: "yes"},
		{name: "500 without a lifetime is not", answer: originAnswer{Status: 500, Body: "error"}, origin: 2, stored: "no"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := startCacheEnv(t, cacheSetup{Global: c.global, Route: c.route}, always(c.answer))
			req2 := c.req2
			if req2 == nil {
				req2 = c.req1
			}
			status := c.answer.Status
			if status == 0 {
				status = 200
			}
			r1, b1 := env.send(t, "GET", "/page", c.req1)
			r2, b2 := env.send(t, "GET", "/page", req2)
			cs1, cs2 := r1.Header.Get("Cache-Status"), r2.Header.Get("Cache-Status")
			detail := fmt.Sprintf("Cache-Status %q then %q", cs1, cs2)
			if r1.StatusCode != status || r2.StatusCode != status {
				t.Errorf("statuses %d, %d, want %d (%s)", r1.StatusCode, r2.StatusCode, status, detail)
			}
			if b1 != c.answer.Body || b2 != c.answer.Body {
				t.Errorf("bodies %q, %q, want %q", b1, b2, c.answer.Body)
			}
			if got := env.o.count(); got != c.origin {
				t.Errorf("the origin got %d requests for two, want %d (%s)", got, c.origin, detail)
			}
			if want := fmt.Sprintf("fwd-status=%d", status); !strings.HasPrefix(cs1, csMiss) || !strings.Contains(cs1, want) {
				t.Errorf("first answer: Cache-Status %q, want %q …%s", cs1, csMiss, want)
			}
			switch c.stored {
			case "yes":
				if !strings.HasSuffix(cs1, csStored) {
					t.Errorf("first answer: Cache-Status %q, want it to say stored", cs1)
				}
			case "no":
				if strings.Contains(cs1, csStored) {
					t.Errorf("first answer: Cache-Status %q, must not say stored", cs1)
				}
			}
			if c.origin == 1 {
				if !strings.HasPrefix(cs2, csHit) {
					t.Errorf("second answer: Cache-Status %q, want a hit", cs2)
				}
				if age, err := strconv.Atoi(r2.Header.Get("Age")); err != nil || age < 0 {
					t.Errorf("second answer (a hit): Age %q, want a number", r2.Header.Get("Age"))
				}
			} else if strings.HasPrefix(cs2, csHit) {
				t.Errorf("second answer: Cache-Status %q, want it forwarded", cs2)
			}
			if c.check != nil {
				c.check(t, env, r1, r2)
			}
		})
	}
}

func TestCacheAgeGrowsOnHits(t *testing.T) {
	env := startCacheEnv(t, cacheSetup{}, always(originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: "aged"}))
	runSteps(t, env, []step{
		{status: 200, body: "aged", origin: 1, cs: csMiss},
		{status: 200, body: "aged", origin: 1, cs: csHit},
		{sleep: 2100 * time.Millisecond, status: 200, body: "aged", origin: 1, cs: csHit, check: func(t *testing.T, _ *cacheEnv, resp *http.Response, _ string) {
			if age, err := strconv.Atoi(resp.Header.Get("Age")); err != nil || age < 2 || age > 10 {
				t.Errorf("Age %q two seconds after the store, want about 2", resp.Header.Get("Age"))
			}
			if ttl, ok := cacheStatusTTL(resp.Header.Get("Cache-Status")); !ok || ttl > 58 || ttl < 50 {
				t.Errorf("Cache-Status %q: ttl %d, want about 58", resp.Header.Get("Cache-Status"), ttl)
			}
		}},
	})
}

func TestCacheRequestDirectives(t *testing.T) {
	fresh := originAnswer{Header: map[string]string{"Cache-Control": "max-age=60", "ETag": `"v1"`}, Body: "body", Conditional: true}
	cases := []struct {
		name   string
		answer originAnswer
		steps  []step
	}{
		{"max-age=0 forces a fetch", originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: "body"}, []step{
			{status: 200, body: "body", origin: 1, cs: csMiss},
			{hdr: map[string]string{"Cache-Control": "max-age=0"}, status: 200, body: "body", origin: 2, notCS: csHit},
			{status: 200, body: "body", origin: 2, cs: csHit},
		}},
		{"no-cache forwards with revalidation", fresh, []step{
			{status: 200, body: "body", origin: 1, cs: csMiss},
			{hdr: map[string]string{"Cache-Control": "no-cache"}, status: 200, body: "body", origin: 2, notCS: csHit,
				check: func(t *testing.T, env *cacheEnv, _ *http.Response, _ string) {
					if got := env.o.request(t, 2).Header.Get("If-None-Match"); got != `"v1"` {
						t.Errorf("no-cache: the origin got If-None-Match %q, want the stored \"v1\"", got)
					}
				}},
			{status: 200, body: "body", origin: 2, cs: csHit},
		}},
		{"only-if-cached on a miss is 504", fresh, []step{
			{hdr: map[string]string{"Cache-Control": "only-if-cached"}, status: 504, origin: 0},
			{status: 200, body: "body", origin: 1, cs: csMiss},
			{hdr: map[string]string{"Cache-Control": "only-if-cached"}, status: 200, body: "body", origin: 1, cs: csHit},
		}},
		// The ETag makes edge keep the entry past its lifetime (route
		// keep); without a validator or a stale window it is dropped.
		{"max-stale serves a stale response", originAnswer{Header: map[string]string{"Cache-Control": "max-age=1", "ETag": `"m1"`}, Body: "body"}, []step{
			{status: 200, body: "body", origin: 1, cs: csMiss},
			{sleep: 2200 * time.Millisecond, hdr: map[string]string{"Cache-Control": "max-stale=60"}, status: 200, body: "body", origin: 1,
				check: func(t *testing.T, _ *cacheEnv, resp *http.Response, _ string) {
					if ttl, ok := cacheStatusTTL(resp.Header.Get("Cache-Status")); !ok || ttl > 0 {
						t.Errorf("max-stale: Cache-Status %q, want a stale (ttl <= 0) stored answer", resp.Header.Get("Cache-Status"))
					}
					if age, _ := strconv.Atoi(resp.Header.Get("Age")); age < 2 {
						t.Errorf("max-stale: Age %q, want >= 2", resp.Header.Get("Age"))
					}
				}},
			{hdr: map[string]string{"Cache-Control": "max-stale=1"}, status: 200, body: "body", origin: 2},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runSteps(t, startCacheEnv(t, cacheSetup{}, always(c.answer)), c.steps)
		})
	}
}

func TestCacheRevalidation(t *testing.T) {
	lastMod := httpDate(-time.Hour)
	cases := []struct {
		name   string
		answer func(r *http.Request, n int) originAnswer
		steps  []step
	}{
		{"ETag: 304 refreshes the stored response", func(_ *http.Request, n int) originAnswer {
			if n == 1 {
				return originAnswer{Header: map[string]string{"Cache-Control": "max-age=1", "ETag": `"v1"`, "X-Version": "1"}, Body: "stored body", Conditional: true}
			}
			return originAnswer{Header: map[string]string{"Cache-Control": "max-age=60", "ETag": `"v1"`, "X-Version": "2"}, Body: "WRONG: full body sent", Conditional: true}
		}, []step{
			{status: 200, body: "stored body", origin: 1, cs: csMiss},
			{sleep: 2200 * time.Millisecond, status: 200, body: "stored body", origin: 2, notCS: csHit, headers: map[string]string{"X-Version": "2", "ETag": `"v1"`},
				check: func(t *testing.T, env *cacheEnv, _ *http.Response, _ string) {
					if got := env.o.request(t, 2).Header.Get("If-None-Match"); got != `"v1"` {
						t.Errorf("revalidation: If-None-Match %q, want \"v1\"", got)
					}
				}},
			{status: 200, body: "stored body", origin: 2, cs: csHit, headers: map[string]string{"X-Version": "2"},
				check: func(t *testing.T, _ *cacheEnv, resp *http.Response, _ string) {
					if ttl, _ := cacheStatusTTL(resp.Header.Get("Cache-Status")); ttl < 50 {
						t.Errorf("after the 304 the entry has ttl %d, want the 304's max-age=60", ttl)
					}
				}},
		}},
		{"Last-Modified: If-Modified-Since", func(_ *http.Request, n int) originAnswer {
			return originAnswer{Header: map[string]string{"Cache-Control": "max-age=1", "Last-Modified": lastMod}, Body: "stored body", Conditional: true}
		}, []step{
			{status: 200, body: "stored body", origin: 1, cs: csMiss},
			{sleep: 2200 * time.Millisecond, status: 200, body: "stored body", origin: 2,
				check: func(t *testing.T, env *cacheEnv, _ *http.Response, _ string) {
					if got := env.o.request(t, 2).Header.Get("If-Modified-Since"); got != lastMod {
						t.Errorf("revalidation: If-Modified-Since %q, want the stored Last-Modified %q", got, lastMod)
					}
				}},
		}},
		{"origin answers 200 to a revalidation", func(_ *http.Request, n int) originAnswer {
			if n == 1 {
				return originAnswer{Header: map[string]string{"Cache-Control": "max-age=1", "ETag": `"v1"`}, Body: "v1", Conditional: true}
			}
			return originAnswer{Header: map[string]string{"Cache-Control": "max-age=60", "ETag": `"v2"`}, Body: "v2", Conditional: true}
		}, []step{
			{status: 200, body: "v1", origin: 1},
			{sleep: 2200 * time.Millisecond, status: 200, body: "v2", origin: 2, cs: csStored},
			{status: 200, body: "v2", origin: 2, cs: csHit, headers: map[string]string{"ETag": `"v2"`}},
		}},
		{"stale without validator is fetched again", func(_ *http.Request, n int) originAnswer {
			return originAnswer{Header: map[string]string{"Cache-Control": "max-age=1"}, Body: "v" + strconv.Itoa(n)}
		}, []step{
			{status: 200, body: "v1", origin: 1},
			{sleep: 2200 * time.Millisecond, status: 200, body: "v2", origin: 2, check: func(t *testing.T, env *cacheEnv, _ *http.Response, _ string) {
				h := env.o.request(t, 2).Header
				if h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
					t.Errorf("a refetch without stored validators carried conditionals: %v", h)
				}
			}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runSteps(t, startCacheEnv(t, cacheSetup{}, c.answer), c.steps)
		})
	}
}

func TestCacheClientConditionals(t *testing.T) {
	lastMod := httpDate(-time.Hour)
	answer := originAnswer{Header: map[string]string{"Cache-Control": "max-age=60", "ETag": `"v1"`, "Last-Modified": lastMod}, Body: "body", Conditional: true}
	cases := []struct {
		name  string
		steps []step
	}{
		{"If-None-Match answered 304 from the cache", []step{
			{status: 200, body: "body", origin: 1},
			{hdr: map[string]string{"If-None-Match": `"v1"`}, status: 304, noBody: true, origin: 1, cs: csHit, headers: map[string]string{"ETag": `"v1"`}},
			{hdr: map[string]string{"If-None-Match": `"other", "v1"`}, status: 304, noBody: true, origin: 1, cs: csHit},
			{hdr: map[string]string{"If-None-Match": `"other"`}, status: 200, body: "body", origin: 1, cs: csHit},
		}},
		{"If-Modified-Since answered 304 from the cache", []step{
			{status: 200, body: "body", origin: 1},
			{hdr: map[string]string{"If-Modified-Since": httpDate(0)}, status: 304, noBody: true, origin: 1, cs: csHit},
			{hdr: map[string]string{"If-Modified-Since": httpDate(-48 * time.Hour)}, status: 200, body: "body", origin: 1, cs: csHit},
		}},
		{"a client's 304 on a miss is not stored as the response", []step{
			{hdr: map[string]string{"If-None-Match": `"v1"`}, status: 304, noBody: true, origin: 1},
			{status: 200, body: "body", anyOrigin: true},
			{status: 200, body: "body", cs: csHit, anyOrigin: true},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runSteps(t, startCacheEnv(t, cacheSetup{}, always(answer)), c.steps)
		})
	}
}

func TestCacheHEADAndRange(t *testing.T) {
	const body = "0123456789abcdefghij"
	answer := originAnswer{Header: map[string]string{"Cache-Control": "max-age=60", "ETag": `"r1"`}, Body: body, Ranged: true}
	lengthIs := func(n int64) func(t *testing.T, _ *cacheEnv, resp *http.Response, _ string) {
		return func(t *testing.T, _ *cacheEnv, resp *http.Response, _ string) {
			if resp.ContentLength != n {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, n)
			}
		}
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"HEAD from a stored GET", []step{
			{status: 200, body: body, origin: 1, cs: csMiss},
			{method: "HEAD", status: 200, noBody: true, origin: 1, cs: csHit, headers: map[string]string{"ETag": `"r1"`}, check: lengthIs(20)},
		}},
		{"HEAD first does not store an empty GET", []step{
			{method: "HEAD", status: 200, noBody: true, origin: 1},
			{status: 200, body: body, anyOrigin: true},
			{status: 200, body: body, anyOrigin: true, cs: csHit},
		}},
		{"Range from a stored full response", []step{
			{status: 200, body: body, origin: 1},
			{hdr: map[string]string{"Range": "bytes=0-9"}, status: 206, body: "0123456789", origin: 1, cs: csHit, headers: map[string]string{"Content-Range": "bytes 0-9/20"}},
			{hdr: map[string]string{"Range": "bytes=15-"}, status: 206, body: "fghij", origin: 1, cs: csHit, headers: map[string]string{"Content-Range": "bytes 15-19/20"}},
			{hdr: map[string]string{"Range": "bytes=-3"}, status: 206, body: "hij", origin: 1, cs: csHit},
			{hdr: map[string]string{"Range": "bytes=100-200"}, status: 416, origin: 1, headers: map[string]string{"Content-Range": "bytes */20"}},
			{status: 200, body: body, origin: 1, cs: csHit},
		}},
		{"a 206 on a miss is not stored as the response", []step{
			{hdr: map[string]string{"Range": "bytes=0-4"}, status: 206, body: "01234", origin: 1},
			{status: 200, body: body, anyOrigin: true},
			{status: 200, body: body, anyOrigin: true, cs: csHit},
			{hdr: map[string]string{"Range": "bytes=0-4"}, status: 206, body: "01234", anyOrigin: true, cs: csHit},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runSteps(t, startCacheEnv(t, cacheSetup{}, always(answer)), c.steps)
		})
	}
}

func TestCacheLargeBodies(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 200<<10/16) // 200 KiB: streamed from the node
	cases := []struct {
		name   string
		global string
		answer originAnswer
		origin int
	}{
		{"with Content-Length", "", originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: big}, 1},
		{"chunked", "", originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: big, Chunked: true}, 1},
		{"over max_object_size", "{max_object_size: 100KiB}", originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: big}, 2},
		{"chunked over max_object_size", "{max_object_size: 100KiB}", originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: big, Chunked: true}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := startCacheEnv(t, cacheSetup{Global: c.global}, always(c.answer))
			for i := range 2 {
				resp, body := env.send(t, "GET", "/big", nil)
				if resp.StatusCode != 200 || body != big {
					t.Fatalf("request %d: status %d, %d bytes, want 200 and %d bytes", i+1, resp.StatusCode, len(body), len(big))
				}
				if i == 1 {
					if hit := strings.HasPrefix(resp.Header.Get("Cache-Status"), csHit); hit != (c.origin == 1) {
						t.Errorf("second request: Cache-Status %q", resp.Header.Get("Cache-Status"))
					}
				}
			}
			if got := env.o.count(); got != c.origin {
				t.Errorf("the origin got %d requests, want %d", got, c.origin)
			}
		})
	}
}

func TestCacheVary(t *testing.T) {
	echo := func(names ...string) func(r *http.Request, n int) originAnswer {
		return func(r *http.Request, n int) originAnswer {
			var b strings.Builder
			for _, name := range names {
				fmt.Fprintf(&b, "%s=%s;", name, r.Header.Get(name))
			}
			return originAnswer{Header: map[string]string{"Cache-Control": "max-age=60", "Vary": strings.Join(names, ", ")}, Body: b.String()}
		}
	}
	lang := func(v string) map[string]string { return map[string]string{"Accept-Language": v} }
	two := func(l, d string) map[string]string { return map[string]string{"Accept-Language": l, "X-Device": d} }
	cases := []struct {
		name   string
		answer func(r *http.Request, n int) originAnswer
		steps  []step
	}{
		{"one field, two variants", echo("Accept-Language"), []step{
			{hdr: lang("en"), body: "Accept-Language=en;", origin: 1, cs: csMiss},
			{hdr: lang("fr"), body: "Accept-Language=fr;", origin: 2, notCS: csHit},
			{hdr: lang("en"), body: "Accept-Language=en;", origin: 2, cs: csHit},
			{hdr: lang("fr"), body: "Accept-Language=fr;", origin: 2, cs: csHit},
			{body: "Accept-Language=;", origin: 3, notCS: csHit},
			{body: "Accept-Language=;", origin: 3, cs: csHit},
			{hdr: lang("en"), body: "Accept-Language=en;", origin: 3, cs: csHit},
		}},
		{"two fields", echo("Accept-Language", "X-Device"), []step{
			{hdr: two("en", "m"), body: "Accept-Language=en;X-Device=m;", origin: 1},
			{hdr: two("en", "d"), body: "Accept-Language=en;X-Device=d;", origin: 2},
			{hdr: two("en", "m"), body: "Accept-Language=en;X-Device=m;", origin: 2, cs: csHit},
			{hdr: two("fr", "m"), body: "Accept-Language=fr;X-Device=m;", origin: 3},
			{hdr: two("en", "d"), body: "Accept-Language=en;X-Device=d;", origin: 3, cs: csHit},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runSteps(t, startCacheEnv(t, cacheSetup{}, c.answer), c.steps)
		})
	}
}

func TestCacheInvalidation(t *testing.T) {
	// GETs are cacheable and numbered; unsafe methods answer as scripted
	// by the X-Answer-* request fields echoed into the response.
	answer := func(r *http.Request, n int) originAnswer {
		if r.Method == "GET" {
			return originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: r.URL.Path + " v" + strconv.Itoa(n)}
		}
		h := map[string]string{}
		for _, f := range []string{"Location", "Content-Location"} {
			if v := r.Header.Get("X-Answer-" + f); v != "" {
				h[f] = v
			}
		}
		return originAnswer{Status: 201, Header: h, Body: "done"}
	}
	cases := []struct {
		name  string
		steps []step
	}{}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		cases = append(cases, struct {
			name  string
			steps []step
		}{m + " removes the target's stored response", []step{
			{path: "/x", body: "/x v1", origin: 1},
			{path: "/x", body: "/x v1", origin: 1, cs: csHit},
			{path: "/y", body: "/y v2", origin: 2},
			{method: m, path: "/x", status: 201, origin: 3},
			{path: "/x", body: "/x v4", origin: 4, cs: csMiss},
			{path: "/y", body: "/y v2", origin: 4, cs: csHit},
		}})
	}
	cases = append(cases, []struct {
		name  string
		steps []step
	}{
		{"Location and Content-Location of the same origin", []step{
			{path: "/target", body: "/target v1", origin: 1},
			{path: "/content", body: "/content v2", origin: 2},
			{path: "/abs", body: "/abs v3", origin: 3},
			{method: "POST", path: "/form", hdr: map[string]string{"X-Answer-Location": "/target", "X-Answer-Content-Location": "/content"}, status: 201, origin: 4},
			{path: "/target", body: "/target v5", origin: 5, cs: csMiss},
			{path: "/content", body: "/content v6", origin: 6, cs: csMiss},
			{path: "/abs", body: "/abs v3", origin: 6, cs: csHit},
			{method: "POST", path: "/form", hdr: map[string]string{"X-Answer-Location": "http://{edge}/abs"}, status: 201, origin: 7},
			{path: "/abs", body: "/abs v8", origin: 8, cs: csMiss},
		}},
		{"not a Location of another host", []step{
			{path: "/shared", hdr: map[string]string{"Host": "other.example"}, body: "/shared v1", origin: 1},
			{path: "/shared", body: "/shared v2", origin: 2},
			{method: "POST", path: "/form", hdr: map[string]string{"X-Answer-Location": "http://other.example/shared", "X-Answer-Content-Location": "//other.example/shared"}, status: 201, origin: 3},
			{path: "/shared", hdr: map[string]string{"Host": "other.example"}, body: "/shared v1", origin: 3, cs: csHit},
			{path: "/shared", body: "/shared v2", origin: 3, cs: csHit},
		}},
	}...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runSteps(t, startCacheEnv(t, cacheSetup{}, answer), c.steps)
		})
	}
}

func TestCacheStaleWhileRevalidate(t *testing.T) {
	cases := []struct{ name, route, first, then string }{
		{"directive", "", "max-age=1, stale-while-revalidate=60", "max-age=60, stale-while-revalidate=60"},
		{"route default", "{stale_while_revalidate: 1m}", "max-age=1", "max-age=60"},
	}
	const refreshDelay = 1500 * time.Millisecond
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := startCacheEnv(t, cacheSetup{Route: c.route}, func(_ *http.Request, n int) originAnswer {
				if n == 1 {
					return originAnswer{Header: map[string]string{"Cache-Control": c.first}, Body: "v1"}
				}
				return originAnswer{Header: map[string]string{"Cache-Control": c.then}, Body: "v" + strconv.Itoa(n), Delay: refreshDelay}
			})
			runSteps(t, env, []step{{body: "v1", origin: 1, cs: csMiss}})
			time.Sleep(2200 * time.Millisecond)
			// While the one background refresh is under way, every
			// request is answered stale at once.
			for i := range 5 {
				start := time.Now()
				resp, body := env.send(t, "GET", "/", nil)
				took := time.Since(start)
				cs := resp.Header.Get("Cache-Status")
				if resp.StatusCode != 200 || body != "v1" {
					t.Errorf("stale request %d: status %d, body %q, want the stale v1 (Cache-Status %q)", i+1, resp.StatusCode, body, cs)
				}
				if took > refreshDelay*2/3 {
					t.Errorf("stale request %d took %v: it waited for the refresh", i+1, took)
				}
				if ttl, ok := cacheStatusTTL(cs); !strings.HasPrefix(cs, "edge; hit") || !ok || ttl > 0 {
					t.Errorf("stale request %d: Cache-Status %q, want a stale (ttl <= 0) stored answer", i+1, cs)
				}
			}
			waitFor(t, 5*time.Second, "the background refresh", func() bool { return env.o.count() >= 2 })
			var body string
			waitFor(t, 10*time.Second, "the refreshed body", func() bool {
				_, body = env.send(t, "GET", "/", nil)
				return body != "v1"
			})
			if body != "v2" {
				t.Errorf("after the refresh: body %q, want v2", body)
			}
			resp, body := env.send(t, "GET", "/", nil)
			if body != "v2" || !strings.HasPrefix(resp.Header.Get("Cache-Status"), csHit) {
				t.Errorf("after the refresh: body %q, Cache-Status %q, want a v2 hit", body, resp.Header.Get("Cache-Status"))
			}
			if got := env.o.count(); got != 2 {
				t.Errorf("the origin got %d requests, want 2: exactly one background refresh", got)
			}
		})
	}
}

// A client that bounds the age it accepts (max-age, min-fresh) or asks
// for validation (no-cache) is not answered stale by
// stale-while-revalidate (RFC 9111 §5.2.1; cache.StaleAllowed).
func TestCacheStaleWhileRevalidateRespectsRequestDirectives(t *testing.T) {
	for _, reqCC := range []string{"max-age=0", "max-age=1", "min-fresh=10", "no-cache"} {
		t.Run(reqCC, func(t *testing.T) {
			env := startCacheEnv(t, cacheSetup{}, func(_ *http.Request, n int) originAnswer {
				if n == 1 {
					return originAnswer{Header: map[string]string{"Cache-Control": "max-age=1, stale-while-revalidate=60"}, Body: "v1"}
				}
				return originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: "v" + strconv.Itoa(n)}
			})
			runSteps(t, env, []step{
				{body: "v1", origin: 1, cs: csMiss},
				{sleep: 2200 * time.Millisecond, hdr: map[string]string{"Cache-Control": reqCC}, status: 200, body: "v2", origin: 2, notCS: csHit},
			})
		})
	}
}

func TestCacheStaleOnError(t *testing.T) {
	up := func(cc string) func(r *http.Request, n int) originAnswer {
		return func(_ *http.Request, n int) originAnswer {
			if n == 1 {
				return originAnswer{Header: map[string]string{"Cache-Control": cc}, Body: "v1"}
			}
			return originAnswer{Status: 503, Body: "down"}
		}
	}
	upETag := func(cc string) func(r *http.Request, n int) originAnswer {
		return func(_ *http.Request, n int) originAnswer {
			if n == 1 {
				return originAnswer{Header: map[string]string{"Cache-Control": cc, "ETag": `"e1"`}, Body: "v1"}
			}
			return originAnswer{Status: 503, Body: "down"}
		}
	}
	stopOrigin := step{do: func(_ *testing.T, env *cacheEnv) { env.o.stop() }}
	staleOK := func(t *testing.T, _ *cacheEnv, resp *http.Response, _ string) {
		if ttl, ok := cacheStatusTTL(resp.Header.Get("Cache-Status")); !ok || ttl > 0 {
			t.Errorf("Cache-Status %q: want it to show a stale answer (ttl <= 0)", resp.Header.Get("Cache-Status"))
		}
	}
	cases := []struct {
		name   string
		route  string
		answer func(r *http.Request, n int) originAnswer
		steps  []step
	}{
		{"stale-if-error directive, origin 503", "", up("max-age=1, stale-if-error=60"), []step{
			{body: "v1", origin: 1},
			{sleep: 2200 * time.Millisecond, status: 200, body: "v1", origin: 2, cs: "fwd=stale", check: staleOK},
			{status: 200, body: "v1", anyOrigin: true, cs: "fwd=stale", check: staleOK},
		}},
		{"route stale_if_error, origin 503", "{stale_if_error: 1m}", up("max-age=1"), []step{
			{body: "v1", origin: 1},
			{sleep: 2200 * time.Millisecond, status: 200, body: "v1", origin: 2, cs: "fwd=stale", check: staleOK},
		}},
		{"stale-if-error with a validator", "", upETag("max-age=1, stale-if-error=60"), []step{
			{body: "v1", origin: 1},
			{sleep: 2200 * time.Millisecond, status: 200, body: "v1", origin: 2, cs: "fwd=stale", check: staleOK},
		}},
		{"without stale-if-error the origin's 503 passes", "", up("max-age=1"), []step{
			{body: "v1", origin: 1},
			{sleep: 2200 * time.Millisecond, status: 503, body: "down", origin: 2},
		}},
		{"stale-if-error window over", "", up("max-age=1, stale-if-error=1"), []step{
			{body: "v1", origin: 1},
			{sleep: 3200 * time.Millisecond, status: 503, origin: 2, check: func(t *testing.T, _ *cacheEnv, _ *http.Response, body string) {
				if body == "v1" {
					t.Errorf("served the stale v1 after its stale-if-error window")
				}
			}},
		}},
		{"grace, origin down", "{grace: 1h}", up("max-age=1"), []step{
			{body: "v1", origin: 1},
			stopOrigin,
			{sleep: 2200 * time.Millisecond, status: 200, body: "v1", origin: 1, cs: "fwd=stale", check: staleOK},
			{status: 200, body: "v1", origin: 1, cs: "fwd=stale", check: staleOK},
		}},
		{"grace, origin down, with a validator", "{grace: 1h}", upETag("max-age=1"), []step{
			{body: "v1", origin: 1},
			stopOrigin,
			{sleep: 2200 * time.Millisecond, status: 200, body: "v1", origin: 1, cs: "fwd=stale", check: staleOK},
		}},
		{"grace, origin 503", "{grace: 1h}", up("max-age=1"), []step{
			{body: "v1", origin: 1},
			{sleep: 2200 * time.Millisecond, status: 200, body: "v1", origin: 2, cs: "fwd=stale", check: staleOK},
		}},
		{"grace, but must-revalidate", "{grace: 1h}", up("max-age=1, must-revalidate"), []step{
			{body: "v1", origin: 1},
			stopOrigin,
			{sleep: 2200 * time.Millisecond, anyOrigin: true, notCS: "hit", check: func(t *testing.T, _ *cacheEnv, resp *http.Response, body string) {
				if resp.StatusCode < 500 || body == "v1" {
					t.Errorf("must-revalidate response served stale with the origin down: %d %q", resp.StatusCode, body)
				}
			}},
		}},
		{"no grace, origin down", "", up("max-age=1"), []step{
			{body: "v1", origin: 1},
			stopOrigin,
			{sleep: 2200 * time.Millisecond, anyOrigin: true, check: func(t *testing.T, _ *cacheEnv, resp *http.Response, body string) {
				if resp.StatusCode < 500 || body == "v1" {
					t.Errorf("served %d %q with the origin down and no grace, want a 5xx", resp.StatusCode, body)
				}
			}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runSteps(t, startCacheEnv(t, cacheSetup{Route: c.route}, c.answer), c.steps)
		})
	}
}

// concurrentGETs sends n GETs at once (released together) and returns
// their statuses and bodies, and how long the whole batch took.
func concurrentGETs(t *testing.T, url string, n int, hdr func(i int) map[string]string) ([]int, []string, time.Duration) {
	t.Helper()
	c := testClient()
	statuses, bodies := make([]int, n), make([]string, n)
	var ready, wg sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", url, nil)
			if hdr != nil {
				for k, v := range hdr(i) {
					req.Header.Set(k, v)
				}
			}
			ready.Done()
			<-start
			resp, err := c.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Errorf("request %d: reading the body: %v", i, err)
			}
			statuses[i], bodies[i] = resp.StatusCode, string(b)
		})
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	wg.Wait()
	return statuses, bodies, time.Since(t0)
}

func TestCacheCoalescing(t *testing.T) {
	const n = 20
	const delay = 500 * time.Millisecond
	// Bounds with room for a loaded machine: serialised, a batch takes
	// n × delay (10s); held until coalesce_timeout, 5s.
	const slack = 2 * time.Second
	big := strings.Repeat("coalesced-body-", 100<<10/15)
	for _, c := range []struct {
		name string
		body string
	}{{"small body", "the one body"}, {"streamed body", big}} {
		t.Run("cacheable, "+c.name, func(t *testing.T) {
			env := startCacheEnv(t, cacheSetup{}, func(_ *http.Request, k int) originAnswer {
				return originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: c.body, Delay: delay}
			})
			statuses, bodies, took := concurrentGETs(t, env.e.url+"/slow", n, nil)
			for i := range n {
				if statuses[i] != 200 || bodies[i] != c.body {
					t.Errorf("request %d: status %d, %d bytes, want 200 and the body", i, statuses[i], len(bodies[i]))
				}
			}
			if got := env.o.count(); got != 1 {
				t.Errorf("%d concurrent misses of one key: the origin got %d requests, want 1", n, got)
			}
			t.Logf("%d coalesced requests took %v", n, took)
		})
	}

	t.Run("uncacheable: hit-for-pass", func(t *testing.T) {
		env := startCacheEnv(t, cacheSetup{}, always(originAnswer{Header: map[string]string{"Cache-Control": "no-store"}, Body: "private", Delay: delay}))
		// The first batch may wait for one fetch to learn the answer is
		// not storable, but must then be released at once, not one by
		// one and not after the coalescing timeout.
		statuses, bodies, took := concurrentGETs(t, env.e.url+"/nostore", n, nil)
		for i := range n {
			if statuses[i] != 200 || bodies[i] != "private" {
				t.Errorf("request %d: status %d, body %q", i, statuses[i], bodies[i])
			}
		}
		if got := env.o.count(); got != n {
			t.Errorf("the origin got %d requests for %d uncacheable ones, want each forwarded", got, n)
		}
		if took > 2*delay+slack {
			t.Errorf("first batch of %d uncacheable requests took %v, want about 2 × %v: waiters not released at once", n, took, delay)
		}
		// Now the key is known to pass: nothing waits for anything.
		env.o.maxIn.Store(0)
		statuses, _, took = concurrentGETs(t, env.e.url+"/nostore", n, nil)
		for i := range n {
			if statuses[i] != 200 {
				t.Errorf("second batch, request %d: status %d", i, statuses[i])
			}
		}
		if got := env.o.count(); got != 2*n {
			t.Errorf("the origin got %d requests, want %d", got, 2*n)
		}
		if took > delay+slack {
			t.Errorf("second batch of %d requests to a hit-for-pass key took %v, want about one origin delay (%v): serialised", n, took, delay)
		}
		if m := env.o.maxIn.Load(); m < n/2 {
			t.Errorf("second batch: at most %d requests at the origin at once, want them in parallel", m)
		}
		t.Logf("hit-for-pass batch took %v, %d at once at the origin", took, env.o.maxIn.Load())
	})

	t.Run("variants are not handed to each other", func(t *testing.T) {
		env := startCacheEnv(t, cacheSetup{Route: "{key: {cookies: [X-Magento-Vary]}}"}, func(r *http.Request, _ int) originAnswer {
			v := "none"
			if c, err := r.Cookie("X-Magento-Vary"); err == nil {
				v = c.Value
			}
			return originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: "variant=" + v, Delay: delay}
		})
		variant := func(i int) string { return []string{"a", "b"}[i%2] }
		statuses, bodies, _ := concurrentGETs(t, env.e.url+"/v", n, func(i int) map[string]string {
			return map[string]string{"Cookie": "X-Magento-Vary=" + variant(i)}
		})
		for i := range n {
			if statuses[i] != 200 || bodies[i] != "variant="+variant(i) {
				t.Errorf("request %d (variant %s): status %d, body %q", i, variant(i), statuses[i], bodies[i])
			}
		}
		if got := env.o.count(); got < 2 || got > n/2+1 {
			t.Errorf("the origin got %d requests for 2 variants, want 2 to %d", got, n/2+1)
		}
	})

	// A miss that is conditional or a range gets an answer (304, 206)
	// that says nothing about whether the resource can be stored: it must
	// not make the key hit-for-pass and so stop coalescing for
	// hit_for_pass (2m), as after a Magento purge a revalidating browser
	// is typically the first to ask.
	for _, first := range []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"conditional", map[string]string{"If-None-Match": `"c1"`}, 304},
		{"range", map[string]string{"Range": "bytes=0-3"}, 206},
	} {
		t.Run("a "+first.name+" miss leaves coalescing on", func(t *testing.T) {
			env := startCacheEnv(t, cacheSetup{}, always(originAnswer{Header: map[string]string{"Cache-Control": "max-age=60", "ETag": `"c1"`},
				Body: "coalesce me", Conditional: true, Ranged: true, Delay: delay}))
			resp, _ := env.send(t, "GET", "/c", first.hdr)
			if resp.StatusCode != first.status {
				t.Fatalf("first request: status %d, want %d", resp.StatusCode, first.status)
			}
			statuses, bodies, _ := concurrentGETs(t, env.e.url+"/c", n, nil)
			for i := range n {
				if statuses[i] != 200 || bodies[i] != "coalesce me" {
					t.Errorf("request %d: status %d, body %q", i, statuses[i], bodies[i])
				}
			}
			if got := env.o.count(); got > 2 {
				t.Errorf("after a %s miss, %d concurrent misses reached the origin %d times, want once (coalesced)", first.name, n, got-1)
			}
		})
	}
}

// getTolerant sends a GET and returns the status (0 when no answer
// came), the body bytes read, and the error that cut the body short.
func getTolerant(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestCacheIncompleteBodiesAreNotStored(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		truncate int
	}{
		{"read whole, cut short", strings.Repeat("y", 10<<10), 5 << 10},
		{"streamed, cut short", strings.Repeat("x", 300<<10), 100 << 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := startCacheEnv(t, cacheSetup{}, func(_ *http.Request, n int) originAnswer {
				a := originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: c.body}
				if n == 1 {
					a.Truncate = c.truncate
				}
				return a
			})
			status, body, err := getTolerant(env.c, env.e.url+"/cut")
			if err == nil && status == 200 && body == c.body {
				t.Errorf("the origin cut the body short, yet the client got all of it")
			}
			runSteps(t, env, []step{
				{path: "/cut", status: 200, body: c.body, origin: 2, notCS: csHit},
				{path: "/cut", status: 200, body: c.body, origin: 2, cs: csHit},
			})
		})
	}
}

// A client that leaves in the middle of a streamed body must not leave a
// truncated entry behind, nor strand the requests coalesced behind it.
func TestCacheClientGoneMidBody(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 12<<20/16)
	env := startCacheEnv(t, cacheSetup{Global: "{max_object_size: 32MiB}"},
		always(originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: big, Delay: 500 * time.Millisecond}))
	conn, err := net.DialTimeout("tcp", env.e.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: "+env.e.addr+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the leader's fetch", func() bool { return env.o.count() == 1 })
	const waiters = 3
	done := make(chan struct{})
	var statuses []int
	var bodies []string
	go func() {
		defer close(done)
		statuses, bodies, _ = concurrentGETs(t, env.e.url+"/big", waiters, nil)
	}()
	if _, err := io.ReadFull(conn, make([]byte, 64<<10)); err != nil {
		t.Fatalf("the leaving client read nothing: %v", err)
	}
	_ = conn.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the requests coalesced behind a client that left never finished")
	}
	for i := range waiters {
		if statuses[i] != 200 || bodies[i] != big {
			t.Errorf("waiter %d: status %d, %d bytes, want 200 and %d bytes", i, statuses[i], len(bodies[i]), len(big))
		}
	}
	for i := range 2 {
		status, body, err := getTolerant(env.c, env.e.url+"/big")
		if status != 200 || body != big || err != nil {
			t.Errorf("request %d after the client left: status %d, %d bytes (%v), want 200 and %d bytes", i, status, len(body), err, len(big))
		}
	}
}

func TestCacheKeys(t *testing.T) {
	echo := func(r *http.Request, n int) originAnswer {
		body := fmt.Sprintf("%s v%d", r.URL.RequestURI(), n)
		if c, err := r.Cookie("X-Magento-Vary"); err == nil {
			body += " vary=" + c.Value
		}
		return originAnswer{Header: map[string]string{"Cache-Control": "max-age=60"}, Body: body}
	}
	vary := func(v string) map[string]string { return map[string]string{"Cookie": "X-Magento-Vary=" + v} }
	cases := []struct {
		name, route string
		steps       []step
	}{
		{"query kept as sent", "", []step{
			{path: "/p?b=2&a=1", origin: 1},
			{path: "/p?b=2&a=1", origin: 1, cs: csHit},
			{path: "/p?a=1&b=2", origin: 2, cs: csMiss},
		}},
		{"query sorted", "{key: {query: sort}}", []step{
			{path: "/p?b=2&a=1", origin: 1},
			{path: "/p?a=1&b=2", origin: 1, cs: csHit},
			{path: "/p?a=1&b=3", origin: 2, cs: csMiss},
			{path: "/p", origin: 3, cs: csMiss},
		}},
		{"query ignored", "{key: {query: ignore}}", []step{
			{path: "/p?x=1", origin: 1},
			{path: "/p?x=2", origin: 1, cs: csHit},
			{path: "/p", origin: 1, cs: csHit},
			{path: "/q", origin: 2, cs: csMiss},
		}},
		{"ignore_params utm_*", `{key: {ignore_params: ["utm_*"]}}`, []step{
			{path: "/p?a=1&utm_source=news&utm_medium=mail", origin: 1},
			{path: "/p?a=1", origin: 1, cs: csHit},
			{path: "/p?a=1&utm_campaign=x", origin: 1, cs: csHit},
			{path: "/p?a=2&utm_campaign=x", origin: 2, cs: csMiss},
			{path: "/p?a=1&utmost=1", origin: 3, cs: csMiss},
		}},
		{"ignore_params @marketing", `{key: {query: sort, ignore_params: ["@marketing"]}}`, []step{
			{path: "/p?gclid=abc", origin: 1},
			{path: "/p", origin: 1, cs: csHit},
			{path: "/p?fbclid=1&utm_medium=x&gad_source=2", origin: 1, cs: csHit},
			{path: "/p?page=2&gclid=z", origin: 2, cs: csMiss},
			{path: "/p?msclkid=1&page=2", origin: 2, cs: csHit},
		}},
		{"cookie X-Magento-Vary", "{key: {cookies: [X-Magento-Vary]}}", []step{
			{hdr: vary("aaa"), body: "/ v1 vary=aaa", origin: 1, cs: csMiss},
			{hdr: vary("bbb"), body: "/ v2 vary=bbb", origin: 2, notCS: csHit},
			{hdr: map[string]string{"Cookie": "other=1; X-Magento-Vary=aaa"}, body: "/ v1 vary=aaa", origin: 2, cs: csHit},
			{hdr: vary("bbb"), body: "/ v2 vary=bbb", origin: 2, cs: csHit},
			{body: "/ v3", origin: 3, notCS: csHit},
			{hdr: map[string]string{"Cookie": "session=xyz"}, body: "/ v3", origin: 3, cs: csHit},
		}},
		{"key header", "{key: {headers: [X-Device]}}", []step{
			{hdr: map[string]string{"X-Device": "mobile"}, origin: 1},
			{hdr: map[string]string{"X-Device": "desktop"}, origin: 2},
			{hdr: map[string]string{"X-Device": "mobile"}, origin: 2, cs: csHit},
		}},
		{"host is in the key", "", []step{
			{hdr: map[string]string{"Host": "a.example"}, origin: 1},
			{hdr: map[string]string{"Host": "b.example"}, origin: 2, cs: csMiss},
			{hdr: map[string]string{"Host": "a.example"}, origin: 2, cs: csHit},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runSteps(t, startCacheEnv(t, cacheSetup{Route: c.route}, echo), c.steps)
		})
	}
}

// numbered answers every GET with its path, its request number and the
// tags given in the request's X-Answer-Tags field (as Surrogate-Key) or
// X-Answer-Cache-Tag (as Cache-Tag).
func numbered(cc string) func(r *http.Request, n int) originAnswer {
	return func(r *http.Request, n int) originAnswer {
		h := map[string]string{"Cache-Control": cc}
		if v := r.Header.Get("X-Answer-Tags"); v != "" {
			h["Surrogate-Key"] = v
		}
		if v := r.Header.Get("X-Answer-Cache-Tag"); v != "" {
			h["Cache-Tag"] = v
		}
		return originAnswer{Header: h, Body: r.URL.Path + " v" + strconv.Itoa(n)}
	}
}

func TestCachePurgeMethod(t *testing.T) {
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	cases := []struct {
		name, global string
		steps        []step
	}{
		{"token", `{purge: {allow: ["10.9.9.0/24"], token: s3cret}}`, []step{
			{path: "/a", body: "/a v1", origin: 1},
			{path: "/b", body: "/b v2", origin: 2},
			{method: "PURGE", path: "/a", status: 403, origin: 2},
			{path: "/a", body: "/a v1", origin: 2, cs: csHit},
			{method: "PURGE", path: "/a", hdr: bearer("wrong"), status: 403, origin: 2},
			{method: "PURGE", path: "/a", hdr: map[string]string{"X-Purge-Token": "s3cre"}, status: 403, origin: 2},
			{path: "/a", body: "/a v1", origin: 2, cs: csHit},
			{method: "PURGE", path: "/a", hdr: bearer("s3cret"), status: 200, origin: 2},
			{path: "/a", body: "/a v3", origin: 3, cs: csMiss},
			{path: "/b", body: "/b v2", origin: 3, cs: csHit},
			{method: "PURGE", path: "/a", hdr: map[string]string{"X-Purge-Token": "s3cret"}, status: 200, origin: 3},
			{path: "/a", body: "/a v4", origin: 4, cs: csMiss},
		}},
		{"allowed address", `{purge: {allow: ["127.0.0.0/8", "::1"]}}`, []step{
			{path: "/a?x=1", body: "/a v1", origin: 1},
			{path: "/a", body: "/a v2", origin: 2},
			{method: "PURGE", path: "/a?x=1", status: 200, origin: 2},
			{path: "/a?x=1", body: "/a v3", origin: 3, cs: csMiss},
			{path: "/a", body: "/a v2", origin: 3, cs: csHit},
		}},
		{"by Surrogate-Key and Cache-Tag", `{purge: {allow: ["127.0.0.1"]}}`, []step{
			{path: "/a", hdr: map[string]string{"X-Answer-Tags": "one common"}, origin: 1},
			{path: "/b", hdr: map[string]string{"X-Answer-Cache-Tag": "two,common"}, origin: 2},
			{path: "/c", hdr: map[string]string{"X-Answer-Tags": "three"}, origin: 3},
			{method: "PURGE", path: "/", hdr: map[string]string{"Surrogate-Key": "one two"}, status: 200, origin: 3},
			{path: "/a", origin: 4, cs: csMiss},
			{path: "/b", origin: 5, cs: csMiss},
			{path: "/c", origin: 5, cs: csHit},
			{method: "PURGE", path: "/", hdr: map[string]string{"Cache-Tag": "three"}, status: 200, origin: 5},
			{path: "/c", origin: 6, cs: csMiss},
		}},
		// config.CachePurge: "With neither set, PURGE is refused (405)".
		{"no purge configured: refused", "", []step{
			{path: "/a", body: "/a v1", origin: 1},
			{method: "PURGE", path: "/a", status: 405, origin: 1},
			{path: "/a", body: "/a v1", origin: 1, cs: csHit},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runSteps(t, startCacheEnv(t, cacheSetup{Global: c.global}, numbered("max-age=60")), c.steps)
		})
	}
}

func purgedCount(t *testing.T, body string) int {
	t.Helper()
	var v struct {
		Purged int `json:"purged"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Errorf("purge answer %q: %v", body, err)
	}
	return v.Purged
}

func TestCacheAdminPurge(t *testing.T) {
	purged := func(atLeast int) func(t *testing.T, _ *cacheEnv, _ *http.Response, body string) {
		return func(t *testing.T, _ *cacheEnv, _ *http.Response, body string) {
			if n := purgedCount(t, body); n < atLeast {
				t.Errorf("purged %d, want at least %d (%s)", n, atLeast, body)
			}
		}
	}
	// The origin tags /b and /c as these request fields ask, every time.
	tb := map[string]string{"X-Answer-Tags": "tb common"}
	tc := map[string]string{"X-Answer-Cache-Tag": "tc,common"}
	steps := []step{
		{path: "/a", origin: 1},
		{path: "/b", hdr: tb, origin: 2},
		{path: "/c", hdr: tc, origin: 3},
		{path: "/d", origin: 4},
		{admin: true, method: "POST", path: "/cache/purge?url={edge}%2Fa", status: 200, anyOrigin: true, check: purged(1)},
		{path: "/a", origin: 5, cs: csMiss},
		{path: "/b", hdr: tb, origin: 5, cs: csHit},
		{admin: true, method: "POST", path: "/cache/purge?tag=tc", status: 200, anyOrigin: true, check: purged(1)},
		{path: "/c", hdr: tc, origin: 6, cs: csMiss},
		{path: "/b", hdr: tb, origin: 6, cs: csHit},
		{admin: true, method: "POST", path: "/cache/purge?tag=common", status: 200, anyOrigin: true, check: purged(2)},
		{path: "/b", hdr: tb, origin: 7, cs: csMiss},
		{path: "/c", hdr: tc, origin: 8, cs: csMiss},
		{path: "/d", origin: 8, cs: csHit},
		{admin: true, method: "POST", path: "/cache/purge?pattern=" + url.QueryEscape("^tb"), status: 200, anyOrigin: true, check: purged(1)},
		{path: "/b", hdr: tb, origin: 9, cs: csMiss},
		{path: "/c", hdr: tc, origin: 9, cs: csHit},
		{admin: true, method: "POST", path: "/cache/purge?all=1", status: 200, anyOrigin: true, check: purged(4)},
		{path: "/a", origin: 10, cs: csMiss},
		{path: "/d", origin: 11, cs: csMiss},
		{admin: true, method: "GET", path: "/cache/purge?all=1", status: 405, anyOrigin: true},
		{admin: true, method: "POST", path: "/cache/purge", status: 400, anyOrigin: true},
		{admin: true, method: "POST", path: "/cache/purge?url=/relative", status: 400, anyOrigin: true},
		{path: "/d", origin: 11, cs: csHit},
	}
	runSteps(t, startCacheEnv(t, cacheSetup{}, numbered("max-age=60")), steps)
}

func TestCacheSoftPurge(t *testing.T) {
	cases := []struct {
		name, global, cc string
		purge            step
		steps            []step
	}{
		{"admin soft=1 with stale-while-revalidate", "", "max-age=60, stale-while-revalidate=60",
			step{admin: true, method: "POST", path: "/cache/purge?soft=1&url={edge}%2Fa", status: 200, anyOrigin: true},
			[]step{
				{path: "/a", body: "/a v1", anyOrigin: true, cs: csHit,
					check: func(t *testing.T, _ *cacheEnv, resp *http.Response, _ string) {
						if ttl, ok := cacheStatusTTL(resp.Header.Get("Cache-Status")); !ok || ttl > 0 {
							t.Errorf("soft-purged entry served with Cache-Status %q, want it stale", resp.Header.Get("Cache-Status"))
						}
					}},
			}},
		{"PURGE with X-Purge-Soft", `{purge: {allow: ["127.0.0.0/8", "::1"]}}`, "max-age=60, stale-while-revalidate=60",
			step{method: "PURGE", path: "/a", hdr: map[string]string{"X-Purge-Soft": "1"}, status: 200, origin: 1},
			[]step{{path: "/a", body: "/a v1", anyOrigin: true, cs: csHit}}},
		{"admin soft=1 without a stale window", "", "max-age=60",
			step{admin: true, method: "POST", path: "/cache/purge?soft=1&url={edge}%2Fa", status: 200, anyOrigin: true},
			[]step{{path: "/a", body: "/a v2", origin: 2, notCS: csHit}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := startCacheEnv(t, cacheSetup{Global: c.global}, numbered(c.cc))
			steps := []step{
				{path: "/a", body: "/a v1", origin: 1},
				{path: "/a", body: "/a v1", origin: 1, cs: csHit},
				c.purge,
			}
			steps = append(steps, c.steps...)
			runSteps(t, env, steps)
			waitFor(t, 5*time.Second, "the refreshed body after the soft purge", func() bool {
				_, body := env.send(t, "GET", "/a", nil)
				return body == "/a v2"
			})
			runSteps(t, env, []step{{path: "/a", body: "/a v2", origin: 2, cs: csHit}})
		})
	}
}

func TestCacheTagHeaders(t *testing.T) {
	tags := map[string]string{"X-Magento-Tags": "cat_p_1,cat_c_2", "Surrogate-Key": "k1 k2", "Cache-Tag": "t1,t2", "Cache-Control": "max-age=60"}
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep_tag_headers=%v", keep), func(t *testing.T) {
			want := map[string]string{"X-Magento-Tags": absent, "Surrogate-Key": absent, "Cache-Tag": absent}
			if keep {
				want = map[string]string{"X-Magento-Tags": "cat_p_1,cat_c_2", "Surrogate-Key": "k1 k2", "Cache-Tag": "t1,t2"}
			}
			env := startCacheEnv(t, cacheSetup{Global: fmt.Sprintf("{keep_tag_headers: %v}", keep)}, always(originAnswer{Header: tags, Body: "tagged"}))
			runSteps(t, env, []step{
				{body: "tagged", origin: 1, cs: csMiss, headers: want},
				{body: "tagged", origin: 1, cs: csHit, headers: want},
				{method: "POST", status: 200, origin: 2, headers: want},
			})
		})
	}
}

func TestCacheMetrics(t *testing.T) {
	env := startCacheEnv(t, cacheSetup{}, numbered("max-age=60"))
	runSteps(t, env, []step{
		{path: "/m", origin: 1, cs: csMiss},
		{path: "/m", origin: 1, cs: csHit},
		{path: "/m", origin: 1, cs: csHit},
		{path: "/m", origin: 1, cs: csHit},
		{method: "POST", path: "/m", origin: 2},
		{path: "/n", origin: 3, cs: csMiss},
	})
	body := scrape(t, env.e)
	value := func(name string, labels map[string]string) (float64, bool) {
	samples:
		for _, s := range metricSamples(body, name) {
			for k, v := range labels {
				if s.labels[k] != v {
					continue samples
				}
			}
			return s.value, true
		}
		return 0, false
	}
	for _, c := range []struct {
		result string
		want   float64
	}{{"hit", 3}, {"miss", 2}, {"bypass", 1}} {
		if got, ok := value("edge_cache_requests_total", map[string]string{"route": "cached", "result": c.result}); !ok || got != c.want {
			t.Errorf("edge_cache_requests_total{route=cached,result=%s} = %v (found %v), want %v\n%s", c.result, got, ok, c.want, grepLines(body, "edge_cache_requests_total"))
		}
	}
	if got, ok := value("edge_cache_objects", nil); !ok || got < 1 {
		t.Errorf("edge_cache_objects = %v (found %v), want >= 1\n%s", got, ok, grepLines(body, "edge_cache_"))
	}
	if got, ok := value("edge_cache_bytes", nil); !ok || got <= 0 {
		t.Errorf("edge_cache_bytes = %v (found %v), want > 0", got, ok)
	}
	status, stats := adminDo(t, env.e, "GET", "/cache")
	var st struct {
		Objects int64 `json:"objects"`
		Bytes   int64 `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(stats), &st); status != 200 || err != nil || st.Objects < 1 || st.Bytes <= 0 {
		t.Errorf("admin /cache: %d %s (%v)", status, stats, err)
	}
}

// rawExchange sends raw bytes to addr and reads one response.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", raw, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.String()
}

// Every answer carries its own request's X-Request-Id, never the one of
// the request that filled the cache; a client's valid ID is echoed.
func TestCacheHitsCarryTheirOwnRequestID(t *testing.T) {
	env := startCacheEnv(t, cacheSetup{}, numbered("max-age=60"))
	seen := map[string]bool{}
	for i := range 3 {
		resp, _ := env.send(t, "GET", "/id", nil)
		id := resp.Header.Get("X-Request-Id")
		if !validRequestID([]byte(id)) || seen[id] {
			t.Errorf("request %d: X-Request-Id %q is invalid or repeats an earlier one (Cache-Status %q)", i, id, resp.Header.Get("Cache-Status"))
		}
		seen[id] = true
	}
	resp, _ := env.send(t, "GET", "/id", map[string]string{"X-Request-Id": "client-chosen-id-1"})
	if got := resp.Header.Get("X-Request-Id"); got != "client-chosen-id-1" || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("hit with the client's ID: X-Request-Id %q, Cache-Status %q; want the client's ID on a hit", got, resp.Header.Get("Cache-Status"))
	}
}
