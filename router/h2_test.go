package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Config is edge with one TLS listener (HTTP/2 on unless .Server says
// otherwise), a plain node and a cacheable origin. Data: Cert, Key,
// Node, Origin, Dead, Server.
const h2Config = `
listeners:
  - {address: "127.0.0.1:0", tls: true}
admin: {address: "127.0.0.1:0"}
server:
  max_body_bytes: 2MiB
  max_header_count: 50
{{- if .Server}}
{{.Server}}
{{- end}}
tls:
  certificates:
    - {cert: "{{.Cert}}", key: "{{.Key}}"}
cache: {size: 64MiB}
upstreams:
  app:
    nodes: [{address: "{{.Node}}", name: n0}]
  origin:
    nodes: [{address: "{{.Origin}}", name: origin}]
  dead:
    nodes: [{address: "{{.Dead}}", name: gone}]
routes:
  - name: other-host
    match: {hosts: [other.test]}
    respond: {status: 418, body: "teapot"}
  - name: moved
    match: {path_prefix: /old/}
    redirect: {prefix: /new/}
  - name: fixed
    match: {path: /fixed}
    respond: {status: 202, body: "fixed body", headers: {X-Fixed: "yes"}}
  - name: cached
    match: {path_prefix: /cached/}
    proxy: origin
    cache: {}
  - name: dead
    match: {path_prefix: /dead}
    proxy: dead
  - name: private
    match: {path_prefix: /private}
    proxy: app
    access: {deny: [127.0.0.1]}
  - name: app
    proxy: app
    request_headers: {set: {X-Added: by-edge}, remove: [X-Remove-Me]}
    response_headers: {set: {X-Served-By: edge}, remove: [X-Node]}
`

// startCacheOrigin is an origin whose answers may be cached for a minute.
func startCacheOrigin(t *testing.T) (addr string, hits *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hits = new(atomic.Int64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "origin %s", r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), hits
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

type h2Setup struct {
	edge   *tlsEdge
	addr   string
	node   *testNode
	origin *atomic.Int64
	ca     *testCA
}

func startH2Edge(t *testing.T, server string) *h2Setup {
	t.Helper()
	node := startNode(t, "n0")
	s := startH2EdgeFor(t, node.addr, server)
	s.node = node
	return s
}

// startH2EdgeFor is edge on h2Config with the app pool's one node at
// nodeAddr.
func startH2EdgeFor(t *testing.T, nodeAddr, server string) *h2Setup {
	t.Helper()
	originAddr, originHits := startCacheOrigin(t)
	ca := newTestCA(t, "h2-ca")
	kp := ca.issue(t, "site", false, "site.test", "other.test")
	e := startTLSEdge(t, h2Config, map[string]any{
		"Cert": kp.Cert, "Key": kp.Key, "Node": nodeAddr, "Origin": originAddr,
		"Dead": deadAddr(t), "Server": server,
	})
	return &h2Setup{edge: e, addr: e.listenerAddr(0), origin: originHits, ca: ca}
}

// client speaks HTTP/1.1 (h1) or HTTP/2 (h2) to edge over TLS.
func (s *h2Setup) client(proto string) *http.Client {
	d := &net.Dialer{Timeout: 2 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", s.addr)
		},
		TLSClientConfig:       &tls.Config{ServerName: "site.test", RootCAs: s.ca.pool},
		DisableCompression:    true,
		ExpectContinueTimeout: 5 * time.Second,
	}
	if proto == "h2" {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
	}
	return &http.Client{
		Timeout:   20 * time.Second,
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// TestHTTP2BehavesAsHTTP1 runs one table of requests over HTTP/1.1 and
// over HTTP/2: routing, redirects, fixed answers, header rules, access
// lists, errors, limits, bodies both ways and the cache must give the
// same answers.
func TestHTTP2BehavesAsHTTP1(t *testing.T) {
	s := startH2Edge(t, "")
	many := map[string]string{}
	for i := range 60 {
		many[fmt.Sprintf("X-Many-%d", i)] = "v"
	}
	type check struct {
		status     int
		body       string            // substring of the body
		bodyLen    int               // exact body length, when > 0
		header     map[string]string // response fields (value "" = must be absent)
		nodeHeader map[string]string // fields the node saw ("" = must be absent)
	}
	cases := []struct {
		name   string
		method string
		path   string // {proto} is replaced by h1 or h2
		host   string
		header map[string]string
		body   func() io.Reader
		want   check
	}{
		{name: "proxied", method: "GET", path: "/hello",
			want: check{status: 200, body: "node=n0 path=/hello",
				header:     map[string]string{"X-Served-By": "edge", "X-Node": ""},
				nodeHeader: map[string]string{"X-Added": "by-edge", "X-Forwarded-Proto": "https", "X-Forwarded-For": "127.0.0.1", "X-Remove-Me": ""}}},
		{name: "header rules remove", method: "GET", path: "/hello", header: map[string]string{"X-Remove-Me": "x", "X-Keep": "k"},
			want: check{status: 200, nodeHeader: map[string]string{"X-Remove-Me": "", "X-Keep": "k"}}},
		{name: "override header from untrusted peer stripped", method: "GET", path: "/hello", header: map[string]string{"X-Original-URL": "/admin"},
			want: check{status: 200, nodeHeader: map[string]string{"X-Original-Url": ""}}},
		{name: "dot segments removed", method: "GET", path: "/a/../b/./c",
			want: check{status: 200, body: "path=/b/c"}},
		{name: "encoded slash refused", method: "GET", path: "/a%2Fb",
			want: check{status: 400}},
		{name: "host route", method: "GET", path: "/", host: "other.test",
			want: check{status: 418, body: "teapot"}},
		{name: "redirect", method: "GET", path: "/old/page?q=1",
			want: check{status: 301, header: map[string]string{"Location": "/new/page?q=1"}}},
		{name: "fixed answer", method: "GET", path: "/fixed",
			want: check{status: 202, body: "fixed body", bodyLen: len("fixed body"), header: map[string]string{"X-Fixed": "yes"}}},
		{name: "head", method: "HEAD", path: "/fixed",
			want: check{status: 202, bodyLen: -1, header: map[string]string{"X-Fixed": "yes"}}},
		{name: "access denied", method: "GET", path: "/private",
			want: check{status: 403}},
		{name: "node down", method: "GET", path: "/dead",
			want: check{status: 502}},
		{name: "node status passes", method: "GET", path: "/status?code=503",
			want: check{status: 503}},
		{name: "upload", method: "POST", path: "/upload", body: func() io.Reader { return bytes.NewReader(make([]byte, 100000)) },
			want: check{status: 200, body: "100000"}},
		{name: "upload of unknown length", method: "POST", path: "/upload",
			body: func() io.Reader { return io.MultiReader(strings.NewReader("abc"), strings.NewReader("defg")) },
			want: check{status: 200, body: "7"}},
		{name: "body too large", method: "POST", path: "/upload", body: func() io.Reader { return bytes.NewReader(make([]byte, 3<<20)) },
			header: map[string]string{"Expect": "100-continue"}, // refused before it is sent
			want:   check{status: 413}},
		{name: "too many fields", method: "GET", path: "/hello", header: many,
			want: check{status: 431}},
		{name: "streamed download", method: "GET", path: "/download?n=1000000",
			want: check{status: 200, bodyLen: 1000000}},
		{name: "cache miss then hit", method: "GET", path: "/cached/{proto}",
			want: check{status: 200, body: "origin /cached/", header: map[string]string{"Cache-Control": "max-age=60"}}},
	}
	results := map[string][]string{}
	for _, proto := range []string{"h1", "h2"} {
		c := s.client(proto)
		for _, tc := range cases {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				path := strings.ReplaceAll(tc.path, "{proto}", proto)
				var body io.Reader
				if tc.body != nil {
					body = tc.body()
					if _, ok := body.(*bytes.Reader); !ok {
						body = io.NopCloser(body) // unknown length: chunked, or HTTP/2 without content-length
					}
				}
				req, err := http.NewRequest(tc.method, "https://site.test"+path, body)
				if err != nil {
					t.Fatal(err)
				}
				if tc.host != "" {
					req.Host = tc.host
				}
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("reading body: %v", err)
				}
				wantProto := map[string]string{"h1": "HTTP/1.1", "h2": "HTTP/2.0"}[proto]
				if resp.Proto != wantProto {
					t.Fatalf("protocol %s, want %s", resp.Proto, wantProto)
				}
				w := tc.want
				if resp.StatusCode != w.status {
					t.Errorf("status %d, want %d (body %q)", resp.StatusCode, w.status, got)
				}
				if w.body != "" && !strings.Contains(string(got), w.body) {
					t.Errorf("body %q, want it to contain %q", got, w.body)
				}
				switch {
				case w.bodyLen > 0 && len(got) != w.bodyLen:
					t.Errorf("body of %d bytes, want %d", len(got), w.bodyLen)
				case w.bodyLen < 0 && len(got) != 0:
					t.Errorf("body of %d bytes, want none", len(got))
				}
				for k, v := range w.header {
					if g := resp.Header.Get(k); g != v {
						t.Errorf("response %s = %q, want %q", k, g, v)
					}
				}
				if w.nodeHeader != nil {
					nh := s.node.header()
					for k, v := range w.nodeHeader {
						if g := nh.Get(k); g != v {
							t.Errorf("node saw %s = %q, want %q", k, g, v)
						}
					}
				}
				// What both protocols must agree on, compared below.
				results[tc.name] = append(results[tc.name], fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type")))
			})
		}
		// A second request for the cached page is a hit, over either protocol.
		resp, _ := doH2(t, c, "/cached/"+proto)
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
			t.Errorf("%s: second request for a cached page: Cache-Status %q, want a hit", proto, cs)
		}
	}
	if n := s.origin.Load(); n != 2 {
		t.Errorf("origin answered %d requests, want 2 (one miss per protocol)", n)
	}
	for name, r := range results {
		if len(r) == 2 && r[0] != r[1] {
			t.Errorf("%s: HTTP/1.1 gave %q, HTTP/2 gave %q", name, r[0], r[1])
		}
	}
}

func doH2(t *testing.T, c *http.Client, path string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get("https://site.test" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestHTTP2ManyStreamsOnOneConnection sends many concurrent requests over
// one connection; they run side by side on the nodes. (The limit is above
// the number of requests: Go's client, told to wait for a free stream,
// stalls; told not to, it opens more connections.)
func TestHTTP2ManyStreamsOnOneConnection(t *testing.T) {
	s := startH2Edge(t, "  http2: {max_concurrent_streams: 250}")
	c := s.client("h2")
	doH2(t, c, "/hello") // the connection every request then shares
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 200 {
		wg.Go(func() {
			resp, err := c.Get(fmt.Sprintf("https://site.test/slow?ms=30&i=%d", i))
			if err != nil {
				failed.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), "node=n0") || resp.ProtoMajor != 2 {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of 200 requests failed", n)
	}
	if n := s.node.requests.Load(); n != 201 {
		t.Errorf("node got %d requests, want 201", n)
	}
	if m := s.node.maxIn.Load(); m < 2 {
		t.Errorf("at most %d requests ran at once on the node, want them side by side", m)
	}
	m := metricsText(t, s.edge.admin)
	if v := metricValue(m, "edge_tls_handshakes_total"); v != 1 {
		t.Errorf("%v TLS handshakes, want 1 (one connection carries every stream)", v)
	}
	if v := metricValue(m, "edge_http2_streams_total"); v != 201 {
		t.Errorf("edge_http2_streams_total = %v, want 201", v)
	}
}

// h2Raw is a raw HTTP/2 client connection, for what a well-behaved
// client never sends.
type h2Raw struct {
	conn *tls.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	dec  *hpack.Decoder
	buf  bytes.Buffer
}

func dialH2Raw(t *testing.T, s *h2Setup) *h2Raw {
	t.Helper()
	c, err := tls.Dial("tcp", s.addr, &tls.Config{ServerName: "site.test", RootCAs: s.ca.pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	r := &h2Raw{conn: c, fr: http2.NewFramer(c, c)}
	r.enc = hpack.NewEncoder(&r.buf)
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestHTTP2Settings: the limits edge announces are the configured ones.
func TestHTTP2Settings(t *testing.T) {
	s := startH2Edge(t, "  http2: {max_concurrent_streams: 37}\n  max_header_bytes: 8KiB")
	r := dialH2Raw(t, s)
	_ = r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := r.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame %v, want the server's SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != 37 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want 37", v, ok)
	}
	if v, ok := sf.Value(http2.SettingMaxHeaderListSize); !ok || v < 8<<10 || v > 16<<10 {
		t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE = %d (sent: %v), want about max_header_bytes (8KiB)", v, ok)
	}
}

// headers encodes a GET for path.
func (r *h2Raw) headers(path string) []byte {
	r.buf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "site.test"}, {":path", path}} {
		_ = r.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return r.buf.Bytes()
}

// TestHTTP2RapidResetIsContained opens and cancels streams as fast as it
// can (CVE-2023-44487): the connection is closed, little of the work
// reaches a node, and other clients are served all along.
func TestHTTP2RapidResetIsContained(t *testing.T) {
	s := startH2Edge(t, "  http2: {max_reset_streams: 100}")
	r := dialH2Raw(t, s)
	// Read until the server closes the connection.
	closed := make(chan error, 1)
	go func() {
		for {
			f, err := r.fr.ReadFrame()
			if err != nil {
				closed <- err
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				t.Logf("GOAWAY %v", g.ErrCode)
			}
		}
	}()
	sent := 0
	var writeErr error
	for id := uint32(1); id < 2*5000; id += 2 {
		block := r.headers("/slow?ms=100")
		if writeErr = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); writeErr != nil {
			break
		}
		if writeErr = r.fr.WriteRSTStream(id, http2.ErrCodeCancel); writeErr != nil {
			break
		}
		sent++
	}
	select {
	case err := <-closed:
		t.Logf("connection ended after %d streams sent (%v); write error: %v", sent, err, writeErr)
	case <-time.After(10 * time.Second):
		t.Fatalf("the connection is still open after %d rapid resets", sent)
	}
	// Meanwhile, and afterwards, a normal client is served.
	resp, body := doH2(t, s.client("h2"), "/hello")
	if resp.StatusCode != 200 || !strings.Contains(body, "node=n0") {
		t.Errorf("a normal client got %d %q during the attack", resp.StatusCode, body)
	}
	if n := s.node.requests.Load(); n > 300 {
		t.Errorf("%d requests reached the node; the attack was not contained", n)
	}
	m := metricsText(t, s.edge.admin)
	if v := metricValue(m, "edge_http2_streams_reset_total"); v < 50 {
		t.Errorf("edge_http2_streams_reset_total = %v, want the resets counted", v)
	}
	rapid := max(0, metricValue(m, `edge_http2_errors_total{type="rapid_reset"}`)) + max(0, metricValue(m, `edge_http2_errors_total{type="too_many_early_resets"}`))
	if rapid < 1 {
		t.Errorf("no rapid-reset defence counted in edge_http2_errors_total:\n%s", grepLines(m, "edge_http2"))
	}
}

// TestHTTP2Off: with server.http2.enabled false, a client offering h2
// and http/1.1 gets HTTP/1.1.
func TestHTTP2Off(t *testing.T) {
	s := startH2Edge(t, "  http2: {enabled: false}")
	resp, body := doH2(t, s.client("h2"), "/hello")
	if resp.Proto != "HTTP/1.1" || resp.StatusCode != 200 || !strings.Contains(body, "node=n0") {
		t.Errorf("got %s %d %q, want HTTP/1.1 200 from the node", resp.Proto, resp.StatusCode, body)
	}
}

// TestHTTP2GracefulStop: a stream in flight when edge stops finishes; the
// connection is then closed.
func TestHTTP2GracefulStop(t *testing.T) {
	s := startH2Edge(t, "")
	c := s.client("h2")
	doH2(t, c, "/hello") // the connection is open
	done := make(chan string, 1)
	go func() {
		resp, err := c.Get("https://site.test/slow?ms=500")
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.node.inflight.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.edge.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if got := <-done; !strings.HasPrefix(got, "200 node=n0") {
		t.Errorf("the stream in flight got %q, want 200 from the node", got)
	}
}

// metricsText is the admin API's /metrics page.
func metricsText(t *testing.T, admin string) string {
	t.Helper()
	_, body := do(t, testClient(), "GET", admin+"/metrics", nil, nil)
	return body
}

// recNode records the raw bytes of every request it gets.
type recNode struct {
	addr string
	mu   sync.Mutex
	reqs []string
}

func startRecNode(t *testing.T) *recNode {
	t.Helper()
	n := &recNode{}
	n.addr = serveRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			var head bytes.Buffer
			cl := 0
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				head.WriteString(line)
				if strings.HasPrefix(strings.ToLower(line), "content-length:") {
					cl, _ = strconv.Atoi(strings.TrimSpace(line[15:]))
				}
				if line == "\r\n" {
					break
				}
			}
			body := make([]byte, cl)
			if _, err := io.ReadFull(br, body); err != nil {
				return
			}
			n.mu.Lock()
			n.reqs = append(n.reqs, head.String()+string(body))
			n.mu.Unlock()
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	return n
}

func (n *recNode) last() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.reqs) == 0 {
		return "<none>"
	}
	return n.reqs[len(n.reqs)-1]
}

func (n *recNode) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.reqs)
}

func startRecH2Edge(t *testing.T, server string) (*h2Setup, *recNode) {
	t.Helper()
	node := startRecNode(t)
	return startH2EdgeFor(t, node.addr, server), node
}

// send writes one stream with the given fields (and body, when not nil)
// and returns status and body of the answer.
func (r *h2Raw) send(t *testing.T, id uint32, fields [][2]string, body []byte, endStream bool, wait time.Duration) (string, string) {
	r.buf.Reset()
	for _, f := range fields {
		_ = r.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.buf.Bytes(), EndStream: body == nil && endStream, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		if err := r.fr.WriteData(id, endStream, body); err != nil {
			t.Fatal(err)
		}
	}
	_ = r.conn.SetReadDeadline(time.Now().Add(wait))
	if r.dec == nil {
		r.dec = hpack.NewDecoder(65536, nil)
	}
	dec := r.dec
	status := ""
	var got bytes.Buffer
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return status + " (read: " + err.Error() + ")", got.String()
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			if f.StreamID != id {
				continue
			}
			hf, _ := dec.DecodeFull(f.HeaderBlockFragment())
			for _, h := range hf {
				if h.Name == ":status" {
					status = h.Value
				}
			}
			if f.StreamEnded() {
				return status, got.String()
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			got.Write(f.Data())
			if f.StreamEnded() {
				return status, got.String()
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "RST " + f.ErrCode.String(), got.String()
			}
		case *http2.GoAwayFrame:
			return "GOAWAY " + f.ErrCode.String(), got.String()
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = r.fr.WriteSettingsAck()
			}
		}
	}
}

func getFields(path string) [][2]string {
	return [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "site.test"}, {":path", path}}
}

// TestHTTP2RefusesWhatHTTP1Would: fields that disagree, or a body that
// does not match its declared length, get an error and never reach a
// node; legal spellings of the authority are served.
func TestHTTP2RefusesWhatHTTP1Would(t *testing.T) {
	s, node := startRecH2Edge(t, "")
	r := dialH2Raw(t, s)
	post := func(path, cl string) [][2]string {
		return [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "site.test"}, {":path", path}, {"content-length", cl}}
	}
	id := uint32(1)
	for _, tc := range []struct {
		name   string
		fields [][2]string
		body   []byte
		served bool
	}{
		{"host without :authority", [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/host-only"}, {"host", "site.test"}}, nil, true},
		{":authority and the same host", append(getFields("/same"), [2]string{"host", "site.test"}), nil, true},
		{":authority and another host", append(getFields("/both"), [2]string{"host", "other.test"}), nil, false},
		{"space in path", getFields("/sp ace"), nil, false},
		{"space in query", getFields("/q?a=1 HTTP/1.0"), nil, false},
		{"declared 10, 3 sent", post("/cl-short", "10"), []byte("abc"), false},
		{"declared 5, no body", post("/cl-nobody", "5"), nil, false},
	} {
		before := node.count()
		status, body := r.send(t, id, tc.fields, tc.body, true, 5*time.Second)
		id += 2
		reached := node.count() > before
		if tc.served != (status == "200") || reached != tc.served {
			t.Errorf("%s: status %s (%q), node reached %v; want served=%v\nnode got: %q", tc.name, status, body, reached, tc.served, node.last())
		}
	}
}

// TestHTTP2CancelledUploadNeverReachesNode: a client cancels a small
// upload half-way; the node must not get a request at all.
func TestHTTP2CancelledUploadNeverReachesNode(t *testing.T) {
	s, node := startRecH2Edge(t, "")
	r := dialH2Raw(t, s)
	r.buf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "site.test"}, {":path", "/transfer"}, {"content-type", "application/json"}, {"content-length", "40"}} {
		_ = r.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.buf.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	_ = r.fr.WriteData(1, false, []byte(`{"amount": 10`))
	time.Sleep(200 * time.Millisecond)
	_ = r.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	time.Sleep(500 * time.Millisecond)
	if n := node.count(); n != 0 {
		t.Errorf("the node got %d requests after the upload was cancelled: %q", n, node.last())
	}
}

// TestHTTP2SmallBodyTimeout: a declared small body that stalls is cut by
// body_timeout (408), as over HTTP/1.1.
func TestHTTP2SmallBodyTimeout(t *testing.T) {
	s, node := startRecH2Edge(t, "  body_timeout: 1s")
	r := dialH2Raw(t, s)
	start := time.Now()
	status, _ := r.send(t, 1, [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "site.test"}, {":path", "/stall"}, {"content-length", "100"}}, []byte("x"), false, 10*time.Second)
	if took := time.Since(start); status != "408" || took > 5*time.Second {
		t.Errorf("a stalled 100-byte body got %q after %v, want 408 after about body_timeout (1s)", status, took)
	}
	if n := node.count(); n != 0 {
		t.Errorf("the node got %d requests", n)
	}
}

// startBrokenNode answers with part of a body, then closes: chunked for
// /chunked, with a Content-Length for anything else.
func startBrokenNode(t *testing.T) string {
	t.Helper()
	return serveRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		first := ""
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if first == "" {
				first = line
			}
			if line == "\r\n" {
				break
			}
		}
		chunk := strings.Repeat("a", 32<<10)
		if strings.Contains(first, "/chunked") {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			for range 8 {
				fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk)
			}
			return // no last chunk
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", 1<<20)
		for range 8 {
			_, _ = io.WriteString(c, chunk)
		}
	})
}

// TestHTTP2CutShortBodyIsNotComplete: a node that dies mid-body must not
// give an HTTP/2 client a body that looks whole (RFC 9113 §8.1), as it
// does not over HTTP/1.1.
func TestHTTP2CutShortBodyIsNotComplete(t *testing.T) {
	s := startH2EdgeFor(t, startBrokenNode(t), "")
	for _, proto := range []string{"h1", "h2"} {
		for _, path := range []string{"/chunked", "/length"} {
			resp, err := s.client(proto).Get("https://site.test" + path)
			if err != nil {
				continue // refused before a body: fine
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Errorf("%s %s: read %d bytes and a clean end; want an error", proto, path, len(b))
			}
		}
	}
}

// TestHTTP2SlowReaderIsCut: a client that opens its windows wide, asks
// for a large download and reads nothing is cut by send_timeout, and the
// node's request ends.
func TestHTTP2SlowReaderIsCut(t *testing.T) {
	s := startH2Edge(t, "  send_timeout: 1s")
	raw, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.(*net.TCPConn).SetReadBuffer(4096)
	c := tls.Client(raw, &tls.Config{ServerName: "site.test", RootCAs: s.ca.pool, NextProtos: []string{"h2"}})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	_ = fr.WriteWindowUpdate(0, 1<<31-1-65535)
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range getFields("/download?n=500000000") {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: buf.Bytes(), EndStream: true, EndHeaders: true})
	deadline := time.Now().Add(15 * time.Second)
	for s.node.inflight.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for s.node.inflight.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := s.node.inflight.Load(); n != 0 {
		t.Errorf("the node still serves %d requests to a client that reads nothing, 15 s on (send_timeout 1s)", n)
	}
}

func TestH2ErrorType(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"conn_ENHANCE_YOUR_CALM_too_many_early_resets", "too_many_early_resets"},
		{"stream_PROTOCOL_settings_big_or_dups", "settings_big_or_dups"},
		{"conn_PROTOCOL_over_max_streams", "over_max_streams"},
		{"stream_13_headers_odd", "headers_odd"},
		{"rapid_reset", "rapid_reset"},
		{"conn_PROTOCOL", "conn_PROTOCOL"},
	} {
		if got := h2ErrorType(c.in); got != c.want {
			t.Errorf("h2ErrorType(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
