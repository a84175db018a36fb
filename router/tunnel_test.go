package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/valyala/fasthttp"
)

// wsNode is a real WebSocket echo server (net/http and gorilla's
// Upgrader) on a loopback port. Paths:
//
//	/decline400   answers 400 "not here" instead of upgrading
//	/decline200   answers 200 "plain answer" instead of upgrading
//	anything else upgrades (the 101 carries X-Node: <name>) and echoes
//	              every message with its type
type wsNode struct {
	name string
	addr string
	srv  *httptest.Server

	mu    sync.Mutex
	conns []*websocket.Conn
	hdr   http.Header
}

// startWSNode starts a wsNode, speaking TLS with cert when it is not nil.
func startWSNode(t *testing.T, name string, cert *tls.Certificate) *wsNode {
	t.Helper()
	n := &wsNode{name: name}
	n.srv = httptest.NewUnstartedServer(http.HandlerFunc(n.serve))
	n.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if cert != nil {
		n.srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		n.srv.StartTLS()
	} else {
		n.srv.Start()
	}
	n.addr = n.srv.Listener.Addr().String()
	t.Cleanup(func() {
		n.killConns()
		n.srv.Close()
	})
	return n
}

var wsUpgrader = websocket.Upgrader{ReadBufferSize: 4 << 10, WriteBufferSize: 4 << 10}

func (n *wsNode) serve(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	n.hdr = r.Header.Clone()
	n.mu.Unlock()
	switch r.URL.Path {
	case "/decline400":
		http.Error(w, "not here", http.StatusBadRequest)
		return
	case "/decline200":
		_, _ = io.WriteString(w, "plain answer")
		return
	}
	c, err := wsUpgrader.Upgrade(w, r, http.Header{"X-Node": {n.name}})
	if err != nil {
		return
	}
	n.mu.Lock()
	n.conns = append(n.conns, c)
	n.mu.Unlock()
	defer c.Close()
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

// header returns the header of the last request the node received.
func (n *wsNode) header() http.Header {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hdr
}

// killConns closes the node's WebSocket connections without a close
// frame, as a crashed process would.
func (n *wsNode) killConns() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.conns {
		_ = c.NetConn().Close()
	}
	n.conns = nil
}

// tunnelConfig is edge in front of the template's nodes, one route "ws".
// Data: Nodes, MaxOpen, Idle, Connect, Generation, Cache (the route caches).
const tunnelConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
server:
  tunnels: {max_open: {{.MaxOpen}}, idle_timeout: {{.Idle}}}
upstreams:
  app:
    policy: round_robin
    connect_timeout: {{.Connect}}
    nodes:
{{- range $i, $a := .Nodes}}
      - {address: "{{$a}}", name: "n{{$i}}"}
{{- end}}
routes:
  - name: ws
    proxy: app
    request_headers: {set: {X-Route: ws}}
    response_headers: {set: {X-Generation: "{{.Generation}}"}}
{{- if .Cache}}
    cache: {}
{{- end}}
`

func tunnelData(addrs ...string) map[string]any {
	return map[string]any{"Nodes": addrs, "MaxOpen": 100, "Idle": "1h", "Connect": "2s", "Generation": 1}
}

// wsDial opens a WebSocket through edge.
func wsDial(e *edgeUnderTest, path string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	return d.Dial("ws://"+e.addr+path, hdr)
}

// mustWSDial opens a WebSocket through edge or fails the test; the
// connection is closed at cleanup.
func mustWSDial(t *testing.T, e *edgeUnderTest, path string, hdr http.Header) (*websocket.Conn, *http.Response) {
	t.Helper()
	c, resp, err := wsDial(e, path, hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("WebSocket through edge: %v (status %d)", err, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, resp
}

// echo sends msg and expects it back.
func echo(t *testing.T, c *websocket.Conn, mt int, msg []byte) {
	t.Helper()
	if err := echoErr(c, mt, msg); err != nil {
		t.Fatal(err)
	}
}

func echoErr(c *websocket.Conn, mt int, msg []byte) error {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(mt, msg); err != nil {
		return fmt.Errorf("writing a message: %w", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	gotType, got, err := c.ReadMessage()
	if err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if gotType != mt || !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: type %d, %d bytes; want type %d, %d bytes equal to those sent", gotType, len(got), mt, len(msg))
	}
	return nil
}

// expectClosed reads from c and expects the connection to end (not a
// read timeout) within within.
func expectClosed(t *testing.T, c *websocket.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(within))
	_, msg, err := c.ReadMessage()
	elapsed := time.Since(start)
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("read a message %q from a tunnel that should have closed", msg)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("the tunnel was still open after %v", within)
	}
	return elapsed
}

func tunnelMetric(t *testing.T, e *edgeUnderTest, series string) float64 {
	t.Helper()
	return metricValue(scrape(t, e), series)
}

// waitTunnelsClosed waits until edge reports no open tunnel on route ws
// and the pool's nodes have nothing in flight.
func waitTunnelsClosed(t *testing.T, e *edgeUnderTest) {
	t.Helper()
	waitFor(t, 5*time.Second, "tunnels closed and node in-flight counts back to 0", func() bool {
		if v := tunnelMetric(t, e, `edge_tunnels_open{route="ws"}`); v > 0 { // -1: no series yet
			return false
		}
		for _, n := range e.srv.snap.Load().pools["app"].nodes {
			if n.Inflight() != 0 {
				return false
			}
		}
		return e.srv.tunnels.count.Load() == 0
	}, func() string { return grepLines(scrape(t, e), "edge_tunnel") })
}

func TestTunnelWebSocketEcho(t *testing.T) {
	node := startWSNode(t, "echo", nil)
	e := startEdge(t, tunnelConfig, tunnelData(node.addr))

	c, resp := mustWSDial(t, e, "/chat?room=1", http.Header{"X-Request-Id": {"req-abc-123"}})
	if got := resp.Header.Get("X-Node"); got != "echo" {
		t.Errorf("101 header X-Node = %q, want the node's \"echo\"", got)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "req-abc-123" {
		t.Errorf("101 header X-Request-Id = %q, want the client's", got)
	}
	if got := resp.Header.Get("X-Generation"); got != "1" {
		t.Errorf("101 header X-Generation = %q, want 1 (the route's response rules apply to the 101)", got)
	}
	h := node.header()
	for name, want := range map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Request-Id":      "req-abc-123",
		"X-Route":           "ws",
		"Upgrade":           "websocket",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("node saw %s: %q, want %q", name, got, want)
		}
	}
	if !strings.EqualFold(h.Get("Connection"), "upgrade") || h.Get("Sec-Websocket-Key") == "" {
		t.Errorf("node saw Connection %q, Sec-WebSocket-Key %q: the handshake must pass", h.Get("Connection"), h.Get("Sec-Websocket-Key"))
	}

	echo(t, c, websocket.TextMessage, []byte("hello through edge"))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	big[12345] = 0xff
	echo(t, c, websocket.BinaryMessage, big)
	echo(t, c, websocket.TextMessage, []byte("still there"))

	m := scrape(t, e)
	checks := map[string]float64{
		`edge_tunnels_open{route="ws"}`:                                              1,
		`edge_tunnels_total{result="upgraded",route="ws"}`:                           1,
		`edge_http_requests_total{code_class="1xx",node="n0",pool="app",route="ws"}`: 1,
	}
	for series, want := range checks {
		if got := metricValue(m, series); got != want {
			t.Errorf("%s = %v, want %v\n%s", series, got, want, grepLines(m, "tunnel"))
		}
	}
	for _, dir := range []string{"client_to_node", "node_to_client"} {
		series := `edge_tunnel_bytes_total{direction="` + dir + `",route="ws"}`
		if got := metricValue(m, series); got < 1<<20 {
			t.Errorf("%s = %v, want at least the 1 MiB message", series, got)
		}
	}

	// A client's close handshake ends the tunnel; everything is released.
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	expectClosed(t, c, 5*time.Second)
	_ = c.Close()
	waitTunnelsClosed(t, e)
	if got := tunnelMetric(t, e, `edge_tunnel_duration_seconds_count{route="ws"}`); got != 1 {
		t.Errorf("edge_tunnel_duration_seconds_count = %v, want 1", got)
	}
}

// A cached route tunnels an upgrade too; the cache is not involved.
func TestTunnelOnCachedRoute(t *testing.T) {
	node := startWSNode(t, "echo", nil)
	d := tunnelData(node.addr)
	d["Cache"] = true
	e := startEdge(t, tunnelConfig, d)
	for range 2 {
		c, _ := mustWSDial(t, e, "/same", nil)
		echo(t, c, websocket.TextMessage, []byte("not from a cache"))
		_ = c.Close()
	}
	if got := tunnelMetric(t, e, `edge_tunnels_total{result="upgraded",route="ws"}`); got != 2 {
		t.Fatalf("upgraded = %v, want 2", got)
	}
	waitTunnelsClosed(t, e)
}

func TestTunnelConcurrent(t *testing.T) {
	node := startWSNode(t, "echo", nil)
	e := startEdge(t, tunnelConfig, tunnelData(node.addr))
	const tunnels, messages = 6, 10
	conns := make([]*websocket.Conn, tunnels)
	for i := range conns {
		conns[i], _ = mustWSDial(t, e, "/", nil)
	}
	errs := make(chan error, tunnels)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			for j := range messages {
				if err := echoErr(c, websocket.TextMessage, fmt.Appendf(nil, "tunnel %d message %d", i, j)); err != nil {
					errs <- fmt.Errorf("tunnel %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := tunnelMetric(t, e, `edge_tunnels_open{route="ws"}`); got != tunnels {
		t.Fatalf("edge_tunnels_open = %v, want %d", got, tunnels)
	}
	if got := e.srv.snap.Load().pools["app"].nodes[0].Inflight(); got != tunnels {
		t.Fatalf("node in flight = %d, want %d (a tunnel counts as in flight)", got, tunnels)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	waitTunnelsClosed(t, e)
}

// A reload, even one that replaces the node's connection pool (a changed
// connect_timeout), leaves open tunnels alone.
func TestTunnelSurvivesReload(t *testing.T) {
	node := startWSNode(t, "echo", nil)
	d := tunnelData(node.addr)
	e := startEdge(t, tunnelConfig, d)
	c, _ := mustWSDial(t, e, "/", nil)
	echo(t, c, websocket.TextMessage, []byte("before"))
	oldLink := e.srv.snap.Load().pools["app"].nodes[0].link

	d["Generation"], d["Connect"] = 2, "3s"
	writeConfig(t, e.path, tunnelConfig, d)
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if e.srv.snap.Load().pools["app"].nodes[0].link == oldLink {
		t.Fatal("the reload kept the node's link; the test needs one that replaces it")
	}
	time.Sleep(50 * time.Millisecond)
	echo(t, c, websocket.TextMessage, []byte("after reload"))
	echo(t, c, websocket.BinaryMessage, bytes.Repeat([]byte{7}, 100<<10))

	_, resp := mustWSDial(t, e, "/", nil)
	if got := resp.Header.Get("X-Generation"); got != "2" {
		t.Fatalf("a tunnel opened after the reload got generation %q, want 2", got)
	}
	if got := tunnelMetric(t, e, `edge_tunnels_open{route="ws"}`); got != 2 {
		t.Fatalf("edge_tunnels_open = %v, want 2", got)
	}
	echo(t, c, websocket.TextMessage, []byte("old tunnel still fine"))
}

// When the node goes away, the client sees its connection end at once.
func TestTunnelNodeDeath(t *testing.T) {
	node := startWSNode(t, "echo", nil)
	e := startEdge(t, tunnelConfig, tunnelData(node.addr))
	c, _ := mustWSDial(t, e, "/", nil)
	echo(t, c, websocket.TextMessage, []byte("hi"))
	node.killConns()
	expectClosed(t, c, 2*time.Second)
	_ = c.Close() // as a client does on a read error; the tunnel was half-closed till now
	waitTunnelsClosed(t, e)
}

func TestTunnelIdleTimeout(t *testing.T) {
	node := startWSNode(t, "echo", nil)
	d := tunnelData(node.addr)
	d["Idle"] = "300ms"
	e := startEdge(t, tunnelConfig, d)
	idle, _ := mustWSDial(t, e, "/", nil)
	active, _ := mustWSDial(t, e, "/", nil)

	closedAfter := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		_ = idle.SetReadDeadline(start.Add(5 * time.Second))
		_, _, err := idle.ReadMessage()
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			closedAfter <- -1
			return
		}
		closedAfter <- time.Since(start)
	}()
	// The active tunnel moves a message every 100 ms for 1.2 s, four
	// times the idle timeout; both directions of it move.
	for i := range 12 {
		time.Sleep(100 * time.Millisecond)
		echo(t, active, websocket.TextMessage, fmt.Appendf(nil, "tick %d", i))
	}
	got := <-closedAfter
	if got < 0 {
		t.Fatal("the idle tunnel was not closed by edge")
	}
	if got < 250*time.Millisecond {
		t.Fatalf("the idle tunnel closed after %v, before its idle timeout of 300ms", got)
	}
	// The active one, idle from now on, is closed in turn.
	expectClosed(t, active, 3*time.Second)
	waitTunnelsClosed(t, e)
}

func TestTunnelMaxOpen(t *testing.T) {
	node := startWSNode(t, "echo", nil)
	d := tunnelData(node.addr)
	d["MaxOpen"] = 1
	e := startEdge(t, tunnelConfig, d)
	first, _ := mustWSDial(t, e, "/", nil)
	echo(t, first, websocket.TextMessage, []byte("one"))

	_, resp, err := wsDial(e, "/", nil)
	if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("second upgrade with max_open 1: %v, status %d; want 503", err, status)
	}
	if got := tunnelMetric(t, e, `edge_tunnels_total{result="refused_limit",route="ws"}`); got != 1 {
		t.Fatalf("refused_limit = %v, want 1", got)
	}
	echo(t, first, websocket.TextMessage, []byte("the first is not disturbed"))

	_ = first.Close()
	waitFor(t, 5*time.Second, "a new tunnel once the first closed", func() bool {
		c, _, err := wsDial(e, "/", nil)
		if err != nil {
			return false
		}
		defer c.Close()
		return echoErr(c, websocket.TextMessage, []byte("again")) == nil
	})

	t.Run("max_open 0 refuses every upgrade", func(t *testing.T) {
		d := tunnelData(node.addr)
		d["MaxOpen"] = 0
		e := startEdge(t, tunnelConfig, d)
		_, resp, err := wsDial(e, "/", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("upgrade with max_open 0: %v; want 503", err)
		}
	})
}

// A node that does not switch protocols answers as usual, and the client
// gets that answer; no tunnel opens.
func TestTunnelNodeDeclines(t *testing.T) {
	node := startWSNode(t, "echo", nil)
	e := startEdge(t, tunnelConfig, tunnelData(node.addr))
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/decline400", 400, "not here\n"},
		{"/decline200", 200, "plain answer"},
	} {
		_, resp, err := wsDial(e, tc.path, nil)
		if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
			t.Fatalf("%s: %v, want a failed handshake with the node's answer", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || string(body) != tc.body {
			t.Fatalf("%s: %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.status, tc.body)
		}
		if resp.Header.Get("X-Generation") != "1" {
			t.Errorf("%s: the route's response rules did not apply", tc.path)
		}
	}
	m := scrape(t, e)
	if got := metricValue(m, `edge_tunnels_total{result="node_declined",route="ws"}`); got != 2 {
		t.Errorf("node_declined = %v, want 2\n%s", got, grepLines(m, "tunnel"))
	}
	if got := metricValue(m, `edge_tunnels_total{result="upgraded",route="ws"}`); got > 0 {
		t.Errorf("upgraded = %v, want none", got)
	}
	if got := metricValue(m, `edge_http_requests_total{code_class="4xx",node="n0",pool="app",route="ws"}`); got != 1 {
		t.Errorf("the 400 was counted %v times as the node's answer, want 1", got)
	}
	waitTunnelsClosed(t, e)
}

// A node that refuses connections is skipped: the upgrade goes to another.
func TestTunnelDialFailover(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	node := startWSNode(t, "live", nil)
	e := startEdge(t, tunnelConfig, tunnelData(deadAddr, node.addr))
	for i := range 4 {
		c, resp := mustWSDial(t, e, "/", nil)
		if got := resp.Header.Get("X-Node"); got != "live" {
			t.Fatalf("upgrade %d answered by %q, want the live node", i, got)
		}
		echo(t, c, websocket.TextMessage, []byte("ok"))
		_ = c.Close()
	}
	m := scrape(t, e)
	if got := metricValue(m, `edge_upstream_errors_total{kind="dial",node="n0",pool="app"}`); got < 1 {
		t.Errorf("dial errors to the dead node = %v, want at least 1", got)
	}
	if got := metricValue(m, `edge_tunnels_total{result="upgraded",route="ws"}`); got != 4 {
		t.Errorf("upgraded = %v, want 4", got)
	}

	t.Run("every node down", func(t *testing.T) {
		e := startEdge(t, tunnelConfig, tunnelData(deadAddr))
		_, resp, err := wsDial(e, "/", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("upgrade with the only node down: %v; want 502", err)
		}
		if got := tunnelMetric(t, e, `edge_tunnels_total{result="dial_failed",route="ws"}`); got != 1 {
			t.Fatalf("dial_failed = %v, want 1", got)
		}
		waitTunnelsClosed(t, e)
	})
}

// Shutdown lets open tunnels run until its context ends, then closes them.
func TestTunnelGracefulShutdown(t *testing.T) {
	node := startWSNode(t, "echo", nil)

	t.Run("closed when the grace period ends", func(t *testing.T) {
		e := startEdge(t, tunnelConfig, tunnelData(node.addr))
		c, _ := mustWSDial(t, e, "/", nil)
		echo(t, c, websocket.TextMessage, []byte("before"))
		const grace = time.Second
		done := make(chan time.Duration, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			start := time.Now()
			_ = e.srv.Shutdown(ctx)
			done <- time.Since(start)
		}()
		time.Sleep(300 * time.Millisecond)
		echo(t, c, websocket.TextMessage, []byte("during the grace period"))
		if _, _, err := wsDial(e, "/", nil); err == nil {
			t.Error("a new upgrade was accepted during shutdown")
		}
		select {
		case took := <-done:
			if took < grace-100*time.Millisecond {
				t.Fatalf("Shutdown returned after %v, before the grace period of %v ended", took, grace)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown did not return")
		}
		expectClosed(t, c, 2*time.Second)
	})

	t.Run("returns once the tunnels ended", func(t *testing.T) {
		e := startEdge(t, tunnelConfig, tunnelData(node.addr))
		c, _ := mustWSDial(t, e, "/", nil)
		done := make(chan struct{})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = e.srv.Shutdown(ctx)
			close(done)
		}()
		time.Sleep(200 * time.Millisecond)
		echo(t, c, websocket.TextMessage, []byte("still open"))
		_ = c.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown kept waiting after the last tunnel ended")
		}
	})
}

// Any protocol, not only WebSocket: bytes the node sends right after its
// 101, and bytes the client sends right after its request, pass; so does
// a half-close in each direction. Hop-by-hop fields stay out.
func TestTunnelOtherProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	headers := make(chan []string, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				var lines []string
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
					lines = append(lines, strings.TrimSpace(line))
				}
				headers <- lines
				_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\nKeep-Alive: timeout=5\r\n\r\nHELLO\n")
				_, _ = io.Copy(c, br) // echo until the client half-closes
				_, _ = io.WriteString(c, "BYE\n")
			}()
		}
	}()
	e := startEdge(t, tunnelConfig, tunnelData(ln.Addr().String()))

	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, "GET /proto HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: 5\r\nUpgrade: foo/1\r\n\r\nearly\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	status, _ := br.ReadString('\n')
	if strings.TrimSpace(status) != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("status line %q, want 101", status)
	}
	var respHdr []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		respHdr = append(respHdr, strings.TrimSpace(line))
	}
	joined := strings.Join(respHdr, "\n")
	for _, want := range []string{"Connection: Upgrade", "Upgrade: foo/1", "X-Generation: 1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("101 to the client lacks %q:\n%s", want, joined)
		}
	}
	for _, bad := range []string{"Keep-Alive", "Content-Length", "Transfer-Encoding"} {
		if strings.Contains(joined, bad) {
			t.Errorf("101 to the client carries %s:\n%s", bad, joined)
		}
	}

	nodeHdr := strings.Join(<-headers, "\n")
	for _, want := range []string{"GET /proto HTTP/1.1", "Connection: Upgrade", "Upgrade: foo/1", "X-Forwarded-For: 127.0.0.1", "X-Request-Id: "} {
		if !strings.Contains(nodeHdr, want) {
			t.Errorf("request at the node lacks %q:\n%s", want, nodeHdr)
		}
	}
	for _, bad := range []string{"X-Hop", "Keep-Alive"} {
		if strings.Contains(nodeHdr, bad) {
			t.Errorf("request at the node carries the hop-by-hop %s:\n%s", bad, nodeHdr)
		}
	}

	for _, want := range []string{"HELLO\n", "early\n"} {
		if got, err := br.ReadString('\n'); got != want {
			t.Fatalf("read %q (%v), want %q", got, err, want)
		}
	}
	if _, err := io.WriteString(c, "more\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := br.ReadString('\n'); got != "more\n" {
		t.Fatalf("read %q (%v), want the echo", got, err)
	}
	// Half-close: the node sees the end, answers, and closes in turn.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "BYE\n" {
		t.Fatalf("after a half-close: %q, %v; want \"BYE\\n\" then the end", rest, err)
	}
	waitTunnelsClosed(t, e)
}

// Only a request that asks for an upgrade is tunnelled: keep-alive, an
// Upgrade without the Connection option (or the reverse), HTTP/1.0 and a
// request with a body go the normal way, Upgrade removed.
func TestTunnelNotForNormalRequests(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, tunnelConfig, tunnelData(node.addr))
	for _, tc := range []struct{ name, raw string }{
		{"keep-alive", "GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"},
		{"connection upgrade without Upgrade", "GET /a HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n"},
		{"Upgrade without connection option", "GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nUpgrade: websocket\r\n\r\n"},
		{"HTTP/1.0", "GET /a HTTP/1.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		{"with a body", "POST /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\nContent-Length: 4\r\n\r\nabcd"},
		{"connection close", "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close, Upgrade\r\nUpgrade: websocket\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawRequest(t, e.addr, tc.raw); !strings.HasPrefix(got, "HTTP/1.") || !strings.HasSuffix(got, " 200 OK") {
				t.Fatalf("status line %q, want 200 from the node", got)
			}
			if h := node.header(); h.Get("Upgrade") != "" || strings.Contains(strings.ToLower(h.Get("Connection")), "upgrade") {
				t.Fatalf("the node saw Upgrade %q, Connection %q on a normal request", h.Get("Upgrade"), h.Get("Connection"))
			}
		})
	}
	if m := scrape(t, e); strings.Contains(m, "edge_tunnels_total{") {
		t.Fatalf("a normal request was counted as an upgrade:\n%s", grepLines(m, "edge_tunnels_total"))
	}
}

// TLS on both sides: a wss client on edge's TLS listener, a node that
// speaks TLS; closing the node half-closes the client's TLS connection.
func TestTunnelTLS(t *testing.T) {
	ca := newTestCA(t, "test-ca")
	front := ca.issue(t, "front", false, "a.example.test")
	back := ca.issue(t, "back", false, "node.test")
	node := startWSNode(t, "tls-echo", &back.tls)
	const cfg = `
listeners: [{address: "127.0.0.1:0", tls: true}]
admin: {address: "127.0.0.1:0"}
tls:
  certificates: [{cert: "{{.Cert}}", key: "{{.Key}}"}]
upstreams:
  app:
    nodes: [{address: "{{.Node}}", name: n0}]
    tls: {server_name: node.test, ca: "{{.CA}}"}
routes:
  - name: ws
    proxy: app
`
	e := startTLSEdge(t, cfg, map[string]any{"Cert": front.Cert, "Key": front.Key, "Node": node.addr, "CA": ca.file})
	d := websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		TLSClientConfig:  &tls.Config{RootCAs: ca.pool, ServerName: "a.example.test"},
		NetDial:          func(string, string) (net.Conn, error) { return net.Dial("tcp", e.addr) },
	}
	c, resp, err := d.Dial("wss://a.example.test/secure", nil)
	if err != nil {
		t.Fatalf("wss through edge: %v\n%s", err, e.logs.String())
	}
	defer c.Close()
	if resp.Header.Get("X-Node") != "tls-echo" {
		t.Fatalf("101 X-Node %q, want tls-echo", resp.Header.Get("X-Node"))
	}
	if got := node.header().Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("node saw X-Forwarded-Proto %q, want https", got)
	}
	echo(t, c, websocket.TextMessage, []byte("secure hello"))
	echo(t, c, websocket.BinaryMessage, bytes.Repeat([]byte("tls"), 300_000))
	node.killConns()
	expectClosed(t, c, 2*time.Second)
	_ = c.Close()
	waitTunnelsClosed(t, e.edgeUnderTest)
}

// TestTunnelClientThatStopsReadingIsCut: the node keeps sending, the
// client half-closes and reads nothing: send_timeout ends the tunnel,
// frees its max_open slot and the node's in-flight count (fasthttp
// clears deadlines when it hands the connection over; that must not
// switch the send timeout off).
func TestTunnelClientThatStopsReadingIsCut(t *testing.T) {
	node := startUpgradeNode(t, "foo/1", func(c net.Conn) {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	cfg := strings.Replace(tunnelConfig, "server:\n", "server:\n  send_timeout: 1s\n", 1)
	e := startEdge(t, cfg, tunnelData(node))
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	_ = c.(*net.TCPConn).CloseWrite()
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.tunnels.count.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := e.srv.tunnels.count.Load(); n != 0 {
		t.Errorf("%d tunnels still open 10 s after the client stopped reading (send_timeout 1s)", n)
	}
	if n := e.srv.snap.Load().pools["app"].nodes[0].Inflight(); n != 0 {
		t.Errorf("the node still counts %d requests in flight", n)
	}
}

// TestTunnelNodeMustSwitchToWhatWasAsked: a 101 to a protocol the client
// did not ask for is not believed (502); h2c is never tunnelled.
func TestTunnelNodeMustSwitchToWhatWasAsked(t *testing.T) {
	node := startUpgradeNode(t, "bar/2", func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	e := startEdge(t, tunnelConfig, tunnelData(node))
	if got := rawRequest(t, e.addr, "GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 502") {
		t.Errorf("a switch to bar/2 when foo/1 was asked: %q, want 502", got)
	}
	if isUpgrade(mustRequestHeader(t, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")) {
		t.Error("an h2c upgrade is treated as a tunnel")
	}
}

// startUpgradeNode is a raw node that answers every request with a 101 to
// protocol, then hands the connection to then; it returns its address.
func startUpgradeNode(t *testing.T, protocol string, then func(net.Conn)) string {
	t.Helper()
	return serveRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+protocol+"\r\n\r\n")
		then(c)
	})
}

func mustRequestHeader(t *testing.T, raw string) *fasthttp.RequestHeader {
	t.Helper()
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	return &h
}
