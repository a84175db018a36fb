package router

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Strict HTTP/1.1 request framing (RFC 9112) at the public listener: every
// message whose framing or syntax is ambiguous is refused before anything
// reaches a node, and the connection is closed so that bytes after it are
// never read as a second request.

// frMarker appears only in bytes that a lenient parser would take for a
// second (smuggled) request or a hidden body. It must never reach a node.
const frMarker = "SMUGGLED"

// frSmuggled is appended to every refused request: edge must close the
// connection after its 400 and never answer or forward this.
const frSmuggled = "GET /" + frMarker + " HTTP/1.1\r\nHost: a\r\n\r\n"

// frFollowUp is sent on connections that must stay open after a valid
// request.
const frFollowUp = "GET /followup HTTP/1.1\r\nHost: a\r\n\r\n"

const frConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app:
    nodes: [{address: "{{index .Nodes 0}}"}]
routes:
  - name: all
    proxy: app
`

// frNode is a node that records every raw byte it receives, on every
// connection, and the requests it parsed from them. It answers 200 "ok".
type frNode struct {
	addr string
	mu   sync.Mutex
	raw  bytes.Buffer
	reqs []frReq
}

// frReq is a request as the node parsed it.
type frReq struct {
	method, uri, host, body string
	hdr                     [][2]string // names as received
}

func (r frReq) header(name string) (string, bool) {
	for _, kv := range r.hdr {
		if strings.EqualFold(kv[0], name) {
			return kv[1], true
		}
	}
	return "", false
}

func startFrNode(t *testing.T) *frNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &frNode{addr: ln.Addr().String()}
	srv := &fasthttp.Server{
		Handler:                       n.handle,
		ReadBufferSize:                64 << 10,
		DisableHeaderNamesNormalizing: true,
		Logger:                        quietLogger{},
	}
	go func() { _ = srv.Serve(frListener{Listener: ln, n: n}) }()
	t.Cleanup(func() {
		_ = ln.Close()
		_ = srv.Shutdown()
	})
	return n
}

func (n *frNode) handle(ctx *fasthttp.RequestCtx) {
	r := frReq{
		method: string(ctx.Method()),
		uri:    string(ctx.Request.Header.RequestURI()),
		host:   string(ctx.Request.Header.Host()),
		body:   string(ctx.PostBody()),
	}
	for k, v := range ctx.Request.Header.All() {
		r.hdr = append(r.hdr, [2]string{string(k), string(v)})
	}
	n.mu.Lock()
	n.reqs = append(n.reqs, r)
	n.mu.Unlock()
	ctx.SetContentType("text/plain")
	ctx.SetBodyString("ok")
}

func (n *frNode) reset() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.raw.Reset()
	n.reqs = nil
}

func (n *frNode) snapshot() ([]byte, []frReq) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return bytes.Clone(n.raw.Bytes()), append([]frReq(nil), n.reqs...)
}

type frListener struct {
	net.Listener
	n *frNode
}

func (l frListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &frConn{Conn: c, n: l.n}, nil
}

type frConn struct {
	net.Conn
	n *frNode
}

func (c *frConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	if k > 0 {
		c.n.mu.Lock()
		c.n.raw.Write(b[:k])
		c.n.mu.Unlock()
	}
	return k, err
}

// frClose is what must happen to the client connection after the answer.
type frClose int

const (
	frMustClose frClose = iota // closed, nothing more is answered
	frKeepOpen                 // a follow-up request is answered too
	frAnyClose                 // not checked
)

// frWant is one request the node must have received.
type frWant struct {
	method, uri, body string
	host              string            // checked when set
	hdr               map[string]string // header values that must arrive intact
	absent            []string          // headers that must not arrive
}

type frCase struct {
	name   string
	raw    string
	status int      // of the first response
	close  frClose  // after the last expected response
	extra  int      // further 200 responses expected (pipelined requests)
	node   []frWant // for 2xx cases; 4xx cases must reach the node not at all
}

func frShow(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%q...(%d bytes)", s[:200], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func frDial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, bufio.NewReader(c)
}

// frWrite writes raw bytes; a write error is not fatal, as edge may
// legitimately close the connection before reading all of them.
func frWrite(c net.Conn, raw string) {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, raw)
}

// frRead reads one response and its body, within 5 s.
func frRead(c net.Conn, br *bufio.Reader) (*http.Response, string, error) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// frExpectClosed asserts that edge closed the connection and sends
// nothing more (in particular no answer to a smuggled request).
func frExpectClosed(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := br.Peek(1)
	switch {
	case err == nil:
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if resp, err := http.ReadResponse(br, nil); err == nil {
			resp.Body.Close()
			t.Errorf("connection not closed: edge answered a second request with %d", resp.StatusCode)
		} else {
			t.Errorf("connection not closed: edge sent more bytes (%v)", err)
		}
	case frIsClosed(err):
	case frIsTimeout(err):
		t.Errorf("connection still open 2s after the response; it must be closed")
	default:
		t.Errorf("reading after the response: %v; want EOF", err)
	}
}

func frIsClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

func frIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// frCheckNode asserts the node's view of one case.
func frCheckNode(t *testing.T, n *frNode, want []frWant, refused bool) {
	t.Helper()
	raw, reqs := n.snapshot()
	if bytes.Contains(bytes.ToUpper(raw), []byte(frMarker)) {
		t.Errorf("the smuggling marker reached the node: %s", frShow(string(raw)))
	}
	if refused {
		if len(raw) > 0 {
			t.Errorf("refused request reached the node (%d requests): %s", len(reqs), frShow(string(raw)))
		}
		return
	}
	if len(reqs) != len(want) {
		got := make([]string, len(reqs))
		for i, r := range reqs {
			got[i] = r.method + " " + r.uri
		}
		t.Errorf("node received %d requests %q, want %d; raw %s", len(reqs), got, len(want), frShow(string(raw)))
		return
	}
	for i, w := range want {
		r := reqs[i]
		if r.method != w.method || r.uri != w.uri || r.body != w.body {
			t.Errorf("node request %d = %s %s body %q, want %s %s body %q", i, r.method, r.uri, r.body, w.method, w.uri, w.body)
		}
		if w.host != "" && r.host != w.host {
			t.Errorf("node request %d: Host %q, want %q", i, r.host, w.host)
		}
		for k, v := range w.hdr {
			if got, ok := r.header(k); !ok || got != v {
				t.Errorf("node request %d: header %s = %q (present %v), want %q", i, k, got, ok, v)
			}
		}
		for _, k := range w.absent {
			if got, ok := r.header(k); ok {
				t.Errorf("node request %d: header %s = %q must not be forwarded", i, k, got)
			}
		}
	}
}

func runFrCase(t *testing.T, e *edgeUnderTest, n *frNode, tc frCase) {
	t.Helper()
	n.reset()
	c, br := frDial(t, e.addr)
	frWrite(c, tc.raw)
	resp, body, err := frRead(c, br)
	if err != nil {
		t.Fatalf("no response (want %d): %v", tc.status, err)
	}
	if resp.StatusCode != tc.status {
		t.Errorf("status %d %q, want %d", resp.StatusCode, body, tc.status)
	}
	ok := tc.status == 200
	if ok && body != "ok" {
		t.Errorf("body %q, want the node's \"ok\"", body)
	}
	for i := 0; i < tc.extra; i++ {
		resp, body, err := frRead(c, br)
		if err != nil {
			t.Fatalf("pipelined response %d: %v", i+2, err)
		}
		if resp.StatusCode != 200 || body != "ok" {
			t.Errorf("pipelined response %d: %d %q, want 200 \"ok\"", i+2, resp.StatusCode, body)
		}
	}
	want := tc.node
	switch tc.close {
	case frMustClose:
		frExpectClosed(t, c, br)
	case frKeepOpen:
		frWrite(c, frFollowUp)
		resp, body, err := frRead(c, br)
		switch {
		case err != nil:
			t.Errorf("connection must stay open: follow-up request not answered: %v", err)
		case resp.StatusCode != 200 || body != "ok":
			t.Errorf("follow-up: %d %q, want 200 \"ok\"", resp.StatusCode, body)
		}
		want = append(append([]frWant(nil), want...), frWant{method: "GET", uri: "/followup"})
	}
	frCheckNode(t, n, want, !ok)
}

func frPost(path, headers, body string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n" + body
}

func frGet(headers string) string {
	return "GET / HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n"
}

const frChunked = "5\r\nhello\r\n0\r\n\r\n"

func frCases() []frCase {
	bad := func(name, raw string) frCase {
		return frCase{name: name, raw: raw + frSmuggled, status: 400, close: frMustClose}
	}
	te := func(name, value string) frCase {
		return bad(name, frPost("/te", "Transfer-Encoding: "+value+"\r\n", frChunked))
	}
	cl := func(name, value string) frCase {
		return bad(name, frPost("/cl", "Content-Length: "+value+"\r\n", "hello"))
	}
	chunk := func(name, body string) frCase {
		return bad(name, frPost("/chunk", "Transfer-Encoding: chunked\r\n", body))
	}
	line := func(name, requestLine string) frCase {
		return bad(name, requestLine+"\r\nHost: a\r\n\r\n")
	}
	hello := func(method, uri, body string) []frWant { return []frWant{{method: method, uri: uri, body: body}} }
	covered := "0\r\n\r\n" + frSmuggled

	var manyFields strings.Builder
	manyFields.WriteString("GET /many HTTP/1.1\r\nHost: a\r\n")
	for i := range 101 {
		fmt.Fprintf(&manyFields, "X-F%d: v\r\n", i)
	}
	manyFields.WriteString("\r\n")

	return []frCase{
		// Content-Length together with Transfer-Encoding (RFC 9112 §6.1, §6.3).
		bad("CL and TE, CL first", frPost("/x", fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n", len(frChunked)), frChunked)),
		bad("CL and TE, TE first", frPost("/x", fmt.Sprintf("Transfer-Encoding: chunked\r\nContent-Length: %d\r\n", len(frChunked)), frChunked)),
		bad("TE chunked with Content-Length 0", frPost("/x", "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", frChunked)),
		{name: "CL and TE, CL covers the smuggled request", raw: frPost("/x", fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n", len(covered)), covered), status: 400, close: frMustClose},

		// Several or invalid Content-Length (RFC 9112 §6.3 item 5, RFC 9110 §8.6).
		bad("two Content-Length, different values", frPost("/cl", "Content-Length: 5\r\nContent-Length: 6\r\n", "hello")),
		bad("two Content-Length, same value", frPost("/cl", "Content-Length: 5\r\nContent-Length: 5\r\n", "hello")),
		cl("Content-Length list 5, 5", "5, 5"),
		cl("Content-Length +5", "+5"),
		cl("Content-Length -1", "-1"),
		cl("Content-Length 0x5", "0x5"),
		cl("Content-Length 5 5", " 5 5"),
		bad("Content-Length empty", frPost("/cl", "Content-Length:\r\n", "hello")),
		cl("Content-Length 30 digits", "123456789012345678901234567890"),
		cl("Content-Length 5a", "5a"),

		// Transfer-Encoding other than exactly a final chunked.
		te("TE identity", "identity"),
		te("TE gzip", "gzip"),
		te("TE chunked, identity", "chunked, identity"),
		te("TE xchunked", "xchunked"),
		te("TE chunked with parameter", "chunked;x=1"),
		te("TE gzip, chunked", "gzip, chunked"),
		te("TE chunked, chunked", "chunked, chunked"),
		bad("two TE lines chunked chunked", frPost("/te", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", frChunked)),
		bad("two TE lines chunked identity", frPost("/te", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", frChunked)),
		te("TE vertical tab before chunked", "\x0bchunked"),
		te("TE form feed before chunked", "\x0cchunked"),

		// Obsolete line folding (RFC 9112 §5.2) and whitespace (§5.1, §2.2).
		bad("obs-fold with SP", frGet("X-A: a\r\n b\r\n")),
		bad("obs-fold with HTAB", frGet("X-A: a\r\n\tb\r\n")),
		bad("folded Transfer-Encoding", frPost("/te", "Transfer-Encoding:\r\n chunked\r\n", frChunked)),
		bad("whitespace line after request line", "GET / HTTP/1.1\r\n X-A: b\r\nHost: a\r\n\r\n"),
		bad("space before colon in Host", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
		bad("space before colon in Transfer-Encoding", frPost("/te", "Transfer-Encoding : chunked\r\n", frChunked)),

		// Field names must be tokens (RFC 9110 §5.1).
		bad("space in field name", frGet("X A: b\r\n")),
		bad("@ in field name", frGet("X@A: b\r\n")),
		bad("( in field name", frGet("X(A: b\r\n")),
		bad("NUL in field name", frGet("X\x00A: b\r\n")),
		bad("0xff in field name", frGet("X\xffA: b\r\n")),
		bad("empty field name", frGet(": b\r\n")),

		// Field values (RFC 9110 §5.5).
		bad("NUL in field value", frGet("X-A: a\x00b\r\n")),
		bad("0x01 in field value", frGet("X-A: a\x01b\r\n")),
		bad("DEL in field value", frGet("X-A: a\x7fb\r\n")),
		bad("bare CR in field value", frGet("X-A: a\rb\r\n")),

		// Line terminators (RFC 9112 §2.2).
		bad("bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n"),
		// RFC 9112 §2.2 lets a recipient accept a bare LF as a line
		// terminator. edge refuses it in the header section, where it can
		// see it, but fasthttp has read the request line before edge sees
		// the request: there it is accepted, and the request is re-framed
		// with CRLF for the node (see the control case below).
		bad("bare LF after header line", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"),
		bad("bare LF as empty line", "GET / HTTP/1.1\r\nHost: a\r\n\n"),
		bad("bare CR after request line", "GET / HTTP/1.1\rHost: a\r\n\r\n"),
		bad("bare CR after header line", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n"),

		// Chunked coding (RFC 9112 §7.1).
		chunk("chunk size g", "g\r\nhello\r\n0\r\n\r\n"),
		chunk("chunk size -1", "-1\r\nhello\r\n0\r\n\r\n"),
		chunk("chunk size 0x5", "0x5\r\nhello\r\n0\r\n\r\n"),
		chunk("chunk size with leading space", " 5\r\nhello\r\n0\r\n\r\n"),
		chunk("empty chunk size line", "\r\nhello\r\n0\r\n\r\n"),
		chunk("chunk size 17 hex digits", "10000000000000005\r\nhello\r\n0\r\n\r\n"),
		// 0x10 bytes of data are "hello\r\n0\r\n\r\nGET ", then "/SMUGGLED"
		// where CRLF must be.
		chunk("chunk size larger than data", "10\r\nhello\r\n0\r\n\r\n"),
		chunk("bare LF in chunk extension", "5;a=b\nhello\r\n0\r\n\r\n"),
		// The content of a chunk extension up to CRLF is ignored (RFC 9112
		// §7.1.1: a recipient MUST ignore unrecognised extensions), and
		// extensions are never passed on: those requests are answered, see
		// the controls below. A CR or LF inside one is refused.
		chunk("missing CRLF after chunk data", "5\r\nhello0\r\n\r\n"),
		chunk("chunk data longer than declared", "3\r\nhello\r\n0\r\n\r\n"),

		// Host (RFC 9112 §3.2).
		bad("missing Host", "GET / HTTP/1.1\r\n\r\n"),
		bad("two Host, same value", frGet("Host: a\r\n")),
		bad("two Host, different values", frGet("Host: b\r\n")),
		bad("Host a b", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
		bad("Host a/b", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
		bad("Host a@b", "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"),

		// HTTP/1.0 with Transfer-Encoding: the framing is faulty (RFC 9112 §6.1).
		bad("HTTP/1.0 with TE chunked", "POST /te HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"+frChunked),

		// Request line (RFC 9112 §3).
		line("double space in request line", "GET  / HTTP/1.1"),
		line("tab in request target", "GET /\tx HTTP/1.1"),
		line("extra word after version", "GET / HTTP/1.1 extra"),
		line("no version", "GET /"),
		line("version HTTP/1.2x", "GET / HTTP/1.2x"),
		line("version HTTP/1", "GET / HTTP/1"),
		line("invalid char in method", "GE(T / HTTP/1.1"),
		line("fragment in request target", "GET /a#frag HTTP/1.1"),
		line("space in request target", "GET /a b HTTP/1.1"),
		line("NUL in request target", "GET /a\x00b HTTP/1.1"),
		line("CTL in request target", "GET /a\x01b HTTP/1.1"),
		line("request target not starting with slash", "GET foo HTTP/1.1"),

		// Limits.
		{name: "header section over max_header_bytes", raw: frGet("X-Big: "+strings.Repeat("b", 20<<10)+"\r\n") + frSmuggled, status: 431, close: frMustClose},
		{name: "more than 100 header fields", raw: manyFields.String(), status: 431, close: frAnyClose},
		{name: "request target over max_uri_bytes", raw: "GET /" + strings.Repeat("u", 9<<10) + " HTTP/1.1\r\nHost: a\r\n\r\n", status: 414, close: frAnyClose},

		// Valid requests: answered, forwarded intact, connection kept.
		{name: "plain GET", raw: "GET /plain HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, close: frKeepOpen, node: hello("GET", "/plain", "")},
		{name: "POST with Content-Length", raw: frPost("/cl", "Content-Length: 5\r\n", "hello"), status: 200, close: frKeepOpen, node: hello("POST", "/cl", "hello")},
		{name: "OWS around Content-Length", raw: frPost("/owscl", "Content-Length: \t5 \t\r\n", "hello"), status: 200, close: frKeepOpen, node: hello("POST", "/owscl", "hello")},
		{name: "chunked with extension", raw: frPost("/ext", "Transfer-Encoding: chunked\r\n", "5;name=value\r\nhello\r\n0\r\n\r\n"), status: 200, close: frKeepOpen, node: hello("POST", "/ext", "hello")},
		{name: "chunked with trailers", raw: frPost("/trailer", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"), status: 200, close: frKeepOpen, node: hello("POST", "/trailer", "hello world")},
		{name: "TE Chunked in upper case", raw: frPost("/upper", "Transfer-Encoding: Chunked\r\n", frChunked), status: 200, close: frKeepOpen, node: hello("POST", "/upper", "hello")},
		// RFC 9112 §9.3: an HTTP/1.0 connection without keep-alive closes.
		{name: "HTTP/1.0 GET with Host", raw: "GET /old HTTP/1.0\r\nHost: a\r\n\r\n", status: 200, close: frMustClose, node: hello("GET", "/old", "")},
		{name: "HTTP/1.0 GET with keep-alive", raw: "GET /old HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", status: 200, close: frKeepOpen, node: hello("GET", "/old", "")},
		{name: "absolute-form with the same host", raw: "GET http://good.example/abs HTTP/1.1\r\nHost: good.example\r\n\r\n", status: 200, close: frKeepOpen,
			node: []frWant{{method: "GET", uri: "/abs", host: "good.example"}}},
		// RFC 9112 §3.2.2 tells an origin server to ignore Host here; a
		// proxy that routed on one while a node reads the other could be
		// fooled, so edge refuses a disagreement (as HAProxy does).
		bad("absolute-form with a different host", "GET http://evil.example/ HTTP/1.1\r\nHost: good\r\n\r\n"),
		{name: "bare LF after request line is accepted and re-framed", raw: "GET /lf HTTP/1.1\nHost: a\r\n\r\n", status: 200, close: frKeepOpen, node: hello("GET", "/lf", "")},
		{name: "control char in chunk extension is ignored", raw: frPost("/ext1", "Transfer-Encoding: chunked\r\n", "5;a=\x01b\r\nhello\r\n0\r\n\r\n"), status: 200, close: frKeepOpen, node: hello("POST", "/ext1", "hello")},
		{name: "chunk extension without name is ignored", raw: frPost("/ext2", "Transfer-Encoding: chunked\r\n", "5;\r\nhello\r\n0\r\n\r\n"), status: 200, close: frKeepOpen, node: hello("POST", "/ext2", "hello")},
		{name: "two pipelined GETs in one write", raw: "GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, close: frKeepOpen, extra: 1,
			node: []frWant{{method: "GET", uri: "/p1"}, {method: "GET", uri: "/p2"}}},
		{name: "HTAB and obs-text in field value", raw: "GET /obs HTTP/1.1\r\nHost: a\r\nX-V: a\tb\x80c\r\n\r\n", status: 200, close: frKeepOpen,
			node: []frWant{{method: "GET", uri: "/obs", hdr: map[string]string{"X-V": "a\tb\x80c"}}}},
		{name: "OWS around field value", raw: "GET /ows HTTP/1.1\r\nHost: a\r\nX-Ows: \t value \t\r\n\r\n", status: 200, close: frKeepOpen,
			node: []frWant{{method: "GET", uri: "/ows", hdr: map[string]string{"X-Ows": "value"}}}},
		{name: "all tchars in field name", raw: "GET /tchar HTTP/1.1\r\nHost: a\r\nX!#$%&'*+-.^_|~: v\r\n\r\n", status: 200, close: frKeepOpen,
			node: []frWant{{method: "GET", uri: "/tchar", hdr: map[string]string{"X!#$%&'*+-.^_|~": "v"}}}},
		// An unknown field: the request has no body, nothing after it is body.
		{name: "Transfer_Encoding is not Transfer-Encoding", raw: "GET /underscore HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n", status: 200, close: frKeepOpen,
			node: []frWant{{method: "GET", uri: "/underscore", absent: []string{"Transfer-Encoding", "Content-Length"}}}},
	}
}

func TestRawRequestFraming(t *testing.T) {
	n := startFrNode(t)
	e := startEdge(t, frConfig, map[string]any{"Nodes": []string{n.addr}})
	cases := frCases()
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		if tc.status != 200 && tc.status != 414 && tc.status != 431 && !strings.Contains(tc.raw, frMarker) {
			t.Fatalf("case %q: refused request without the smuggling marker", tc.name)
		}
	}
	if len(cases) < 60 {
		t.Fatalf("%d cases, want at least 60", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runFrCase(t, e, n, tc) })
	}
}

// TestSmuggledRequestNeverReachesNode runs the classic desync attacks, each
// followed on the same connection by a normal request (in the same write
// and in a second one). Edge answers 400, closes, and neither the smuggled
// request nor the follow-up reaches the node or is answered.
func TestSmuggledRequestNeverReachesNode(t *testing.T) {
	n := startFrNode(t)
	e := startEdge(t, frConfig, map[string]any{"Nodes": []string{n.addr}})

	// A request prefix that swallows the next client's request line.
	prefix := "GET /" + frMarker + " HTTP/1.1\r\nHost: a\r\nX-Ignore: x"
	clte := "0\r\n\r\n" + prefix
	full := "GET /" + frMarker + " HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nx="
	tecl := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(full), full)
	teclCL := len(fmt.Sprintf("%x\r\n", len(full)))
	post := func(headers, body string) string {
		return "POST /attack HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n" + body
	}
	attacks := []struct{ name, raw string }{
		{"CL.TE", post(fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n", len(clte)), clte)},
		{"TE.CL", post(fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n", teclCL), tecl)},
		{"TE.TE duplicate TE", post(fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: cow\r\n", len(clte)), clte)},
		{"TE.TE space before colon", post(fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding : chunked\r\n", len(clte)), clte)},
		{"TE.TE xchunked", post(fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: xchunked\r\n", len(clte)), clte)},
		{"TE.TE vertical tab", post(fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding:\x0bchunked\r\n", len(clte)), clte)},
		{"TE.TE obs-fold", post(fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding:\r\n chunked\r\n", teclCL), tecl)},
		{"TE.TE chunked, identity", post("Transfer-Encoding: chunked, identity\r\n", tecl)},
		{"CL.CL", post(fmt.Sprintf("Content-Length: %d\r\nContent-Length: 0\r\n", len(full)), full)},
	}
	const next = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, a := range attacks {
		for _, same := range []bool{true, false} {
			name := a.name + "/next in second write"
			if same {
				name = a.name + "/next in same write"
			}
			t.Run(name, func(t *testing.T) {
				n.reset()
				c, br := frDial(t, e.addr)
				if same {
					frWrite(c, a.raw+next)
				} else {
					frWrite(c, a.raw)
				}
				resp, body, err := frRead(c, br)
				if err != nil {
					t.Fatalf("no response (want 400): %v", err)
				}
				if resp.StatusCode != 400 {
					t.Errorf("status %d %q, want 400", resp.StatusCode, body)
				}
				if !same {
					frWrite(c, next)
				}
				frExpectClosed(t, c, br)
				raw, _ := n.snapshot()
				if bytes.Contains(raw, []byte("/next")) {
					t.Errorf("/next from the attack connection reached the node")
				}
				frCheckNode(t, n, nil, true)
			})
		}
	}
}
