package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// testNode is a real HTTP server on a loopback port that records what
// reached it. Paths:
//
//	/slow?ms=N        sleeps N ms, then answers
//	/status?code=N    answers with status N
//	/download?n=N     streams N bytes (chunked)
//	/upload           reads the body as a stream, answers its length
//	/hop              answers with hop-by-hop headers that must not pass
//	anything else     answers "node=<name> path=<path>"
//
// Every answer carries X-Node: <name>.
type testNode struct {
	name     string
	addr     string
	ln       net.Listener
	srv      *fasthttp.Server
	requests atomic.Int64
	inflight atomic.Int64
	maxIn    atomic.Int64

	mu      sync.Mutex
	lastHdr http.Header
	lastURI string
}

func startNode(t *testing.T, name string) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{name: name, addr: ln.Addr().String(), ln: ln}
	n.srv = &fasthttp.Server{
		Handler:           n.handle,
		StreamRequestBody: true,
		ReadBufferSize:    64 << 10,
		Logger:            quietLogger{},
	}
	go func() { _ = n.srv.Serve(ln) }()
	t.Cleanup(func() { _ = n.srv.Shutdown() })
	return n
}

// stop closes the node's listener and its connections, as a crashed
// process would.
func (n *testNode) stop() {
	_ = n.ln.Close() // Serve may not have registered the listener yet
	_ = n.srv.Shutdown()
}

func (n *testNode) handle(ctx *fasthttp.RequestCtx) {
	n.requests.Add(1)
	in := n.inflight.Add(1)
	defer n.inflight.Add(-1)
	for {
		m := n.maxIn.Load()
		if in <= m || n.maxIn.CompareAndSwap(m, in) {
			break
		}
	}
	h := http.Header{}
	for k, v := range ctx.Request.Header.All() {
		h.Add(string(k), string(v))
	}
	n.mu.Lock()
	n.lastHdr = h
	n.lastURI = string(ctx.RequestURI())
	n.mu.Unlock()

	ctx.Response.Header.Set("X-Node", n.name)
	args := ctx.QueryArgs()
	switch string(ctx.Path()) {
	case "/slow":
		ms, _ := strconv.Atoi(string(args.Peek("ms")))
		time.Sleep(time.Duration(ms) * time.Millisecond)
	case "/status":
		code, _ := strconv.Atoi(string(args.Peek("code")))
		ctx.SetStatusCode(code)
	case "/download":
		size, _ := strconv.ParseInt(string(args.Peek("n")), 10, 64)
		ctx.SetBodyStream(&patternReader{left: size}, -1)
		return
	case "/upload":
		got, err := io.Copy(io.Discard, ctx.RequestBodyStream())
		if err != nil {
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
		}
		ctx.SetBodyString(strconv.FormatInt(got, 10))
		return
	case "/hop":
		ctx.Response.Header.Set("Connection", "X-Secret")
		ctx.Response.Header.Set("X-Secret", "hop")
		ctx.Response.Header.Set("Keep-Alive", "timeout=5")
		ctx.Response.Header.Set("Proxy-Authenticate", "Basic")
	}
	fmt.Fprintf(ctx, "node=%s path=%s", n.name, ctx.Path())
}

func (n *testNode) header() http.Header {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastHdr
}

// patternReader produces left bytes of a repeating pattern without holding
// them in memory.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	p.left -= int64(len(b))
	return len(b), nil
}

// edgeUnderTest is a running Server with its config file on disk.
type edgeUnderTest struct {
	srv   *Server
	url   string // http://127.0.0.1:port
	addr  string
	admin string
	path  string
}

// startEdge writes cfgYAML (a text/template over data) to a file, loads it
// and starts a Server on loopback ports chosen by the kernel.
func startEdge(t *testing.T, cfgYAML string, data any) *edgeUnderTest {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.yaml")
	writeConfig(t, path, cfgYAML, data)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("loading test config: %v\n%s", err, renderConfig(t, cfgYAML, data))
	}
	return launchEdge(t, cfg, path, io.Discard)
}

// launchEdge starts a Server on cfg, loaded from path, with its own log
// written to logOut; the server is shut down at cleanup.
func launchEdge(t *testing.T, cfg *config.Config, path string, logOut io.Writer) *edgeUnderTest {
	t.Helper()
	srv, err := New(cfg, Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(logOut, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	e := &edgeUnderTest{srv: srv, addr: srv.Addrs()[0].String(), path: path}
	e.url = "http://" + e.addr
	if a := srv.AdminAddr(); a != nil {
		e.admin = "http://" + a.String()
	}
	return e
}

func renderConfig(t *testing.T, cfgYAML string, data any) string {
	t.Helper()
	var b bytes.Buffer
	if err := template.Must(template.New("cfg").Parse(cfgYAML)).Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func writeConfig(t *testing.T, path, cfgYAML string, data any) {
	t.Helper()
	// Write then rename, as an operator's tooling would: a reader never
	// sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(renderConfig(t, cfgYAML, data)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// nodesData is the usual template data: the nodes' addresses by index.
func nodesData(nodes ...*testNode) map[string]any {
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	return map[string]any{"Nodes": addrs}
}

// testClient is a plain net/http client that keeps connections alive and
// never follows redirects.
func testClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
	}
}

// get sends a request and returns the response with its body read.
func do(t *testing.T, c *http.Client, method, url string, hdr map[string]string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(b)
}

// rawRequest writes raw bytes to the listener and returns the status line
// of the answer (or "" when the connection closed without one).
func rawRequest(t *testing.T, addr, raw string) string {
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
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// serveRaw accepts connections on a loopback port until the test ends and
// hands each, on a goroutine of its own, to handle (which need not close
// it). It returns the address.
func serveRaw(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}
