//go:build linux

package router

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edge-router/edge/config"
)

// Graceful degradation (issue #8): misbehaving nodes and clients cost a
// bounded time, get the right status, and leave nothing behind — no
// goroutine, no file descriptor, no connection to a node. The leak checks
// read /proc/self/fd, hence the linux build constraint.
//
// Every "bad" node here is a raw TCP server (hostileNode) that writes HTTP by
// hand, since no well-behaved server library would give these answers.

// degradeConfig proxies /bad/… to the node under test (retries and passive
// ejection off, so each request reaches it once) and everything else to a
// well-behaved node.
const degradeConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
server:
  read_header_timeout: {{.ReadHeader}}
  send_timeout: {{.Send}}
upstreams:
  good:
    nodes: [{address: "{{.Good}}", name: good}]
  bad:
    response_header_timeout: {{.Timeout}}
    retries: {attempts: 0}
    passive: {consecutive_failures: 0}
    nodes: [{address: "{{.Bad}}", name: bad}]
routes:
  - name: bad
    match: {path_prefix: /bad/}
    proxy: bad
  - name: good
    proxy: good
`

type degradeData struct {
	ReadHeader, Send, Timeout string
	Good, Bad                 string
}

// startDegradeEdge starts edge in front of a good node and the bad node at
// bad; empty durations take the defaults below. Edge's own log is kept in
// the returned buffer, for evidence when a case fails.
func startDegradeEdge(t *testing.T, good *testNode, bad string, d degradeData) (*edgeUnderTest, *lockedBuffer) {
	t.Helper()
	if d.ReadHeader == "" {
		d.ReadHeader = "10s"
	}
	if d.Send == "" {
		d.Send = "60s"
	}
	if d.Timeout == "" {
		d.Timeout = "2s"
	}
	d.Good, d.Bad = good.addr, bad
	path := filepath.Join(t.TempDir(), "edge.yaml")
	writeConfig(t, path, degradeConfig, d)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("loading test config: %v", err)
	}
	logs := &lockedBuffer{}
	return launchEdge(t, cfg, path, logs), logs
}

// badLink is edge's connection pool to the bad node.
func badLink(e *edgeUnderTest) *nodeLink {
	return e.srv.snap.Load().pools["bad"].nodes[0].link
}

// --- raw nodes --------------------------------------------------------

// hostileNode accepts TCP connections and runs serve on each. It counts the
// connections it accepted and those still open: a connection stays open
// until serve returns, which the serve functions below do once edge closes
// the connection (a read sees EOF or a write fails).
type hostileNode struct {
	addr     string
	ln       net.Listener
	accepted atomic.Int64
	open     atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

func startHostileNode(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *hostileNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &hostileNode{addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.accepted.Add(1)
			n.open.Add(1)
			n.mu.Lock()
			n.conns[c] = struct{}{}
			n.mu.Unlock()
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer func() {
					_ = c.Close()
					n.mu.Lock()
					delete(n.conns, c)
					n.mu.Unlock()
					n.open.Add(-1)
				}()
				// No node connection lives longer than this, whatever edge
				// does: a test fails on its own bounds well before.
				_ = c.SetDeadline(time.Now().Add(15 * time.Second))
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(n.close)
	return n
}

// close stops the node as a crashed process would, and waits until its
// goroutines are gone.
func (n *hostileNode) close() {
	n.closed.Do(func() {
		_ = n.ln.Close()
		n.mu.Lock()
		for c := range n.conns {
			_ = c.Close()
		}
		n.mu.Unlock()
		n.wg.Wait()
	})
}

// readHead reads a request's header and returns its target and
// Content-Length (-1 when absent).
func readHostileHead(br *bufio.Reader) (target string, cl int64, err error) {
	cl = -1
	for first := true; ; first = false {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", 0, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case first:
			if f := strings.Fields(line); len(f) == 3 {
				target = f[1]
			}
		case line == "":
			return target, cl, nil
		default:
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "content-length") {
				cl, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
}

// waitClosed serves nothing more: it returns when the peer closes.
func waitPeerClosed(br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) }

// streamForever answers with a chunked body that never ends (/bad/chunked)
// or a huge Content-Length trickled 1 KiB every 20 ms (/bad/trickle), until
// a write fails because edge closed the connection.
func streamForever(c net.Conn, br *bufio.Reader) {
	target, _, err := readHostileHead(br)
	if err != nil {
		return
	}
	chunk := strings.Repeat("x", 16<<10)
	switch target {
	case "/bad/chunked":
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
			return
		}
		frame := strconv.FormatInt(int64(len(chunk)), 16) + "\r\n" + chunk + "\r\n"
		for {
			if _, err := io.WriteString(c, frame); err != nil {
				return
			}
		}
	case "/bad/trickle":
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n"); err != nil {
			return
		}
		for {
			if _, err := io.WriteString(c, chunk[:1<<10]); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond) // the node's pace: this is the behaviour under test
		}
	}
}

// --- leak checks ------------------------------------------------------

// resources is what a leak would show: goroutines doing or waiting for
// work, and open file descriptors of the test process (edge, nodes and
// clients all live in it).
type resources struct {
	goroutines int
	fds        int
}

const (
	goroutineMargin = 4
	fdMargin        = 4
)

func measureResources() resources {
	return resources{goroutines: len(liveGoroutines()), fds: len(openFDs())}
}

// liveGoroutines returns the stacks of all goroutines except fasthttp's
// idle pool workers: a server keeps a worker per connection it served for
// MaxIdleWorkerDuration (10 s) after the connection closed, which is
// reuse, not a leak, and would otherwise hide the baseline for seconds.
func liveGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if idleFasthttpWorker(g) {
			continue
		}
		out = append(out, g)
	}
	return out
}

func idleFasthttpWorker(stack string) bool {
	for _, line := range strings.Split(stack, "\n")[1:] {
		if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "runtime.") {
			continue
		}
		// The first frame outside the runtime: an idle worker waits for
		// its next connection in workerFunc itself.
		return strings.HasPrefix(line, "github.com/valyala/fasthttp.(*workerPool).workerFunc(")
	}
	return false
}

// openFDs lists the test process's descriptors with what they point to.
func openFDs() []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		out = append(out, e.Name()+" -> "+target)
	}
	return out
}

// baseline closes the clients' idle connections and returns the resources
// in use once two readings 50 ms apart agree (or after a second).
func resourceBaseline(t *testing.T, clients ...*http.Client) resources {
	t.Helper()
	prev := resources{-1, -1}
	for deadline := time.Now().Add(time.Second); ; {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
		r := measureResources()
		if r == prev || time.Now().After(deadline) {
			return r
		}
		prev = r
		time.Sleep(50 * time.Millisecond)
	}
}

// expectNoLeak polls until goroutines and descriptors are back within a
// small margin of base, and fails with a dump of both after 5 s.
func expectNoLeak(t *testing.T, base resources, what string, clients ...*http.Client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
		r := measureResources()
		if r.goroutines <= base.goroutines+goroutineMargin && r.fds <= base.fds+fdMargin {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: resources not released after 5 s: %d goroutines (baseline %d), %d fds (baseline %d)\n"+
				"--- live goroutines:\n%s\n--- fds:\n%s",
				what, r.goroutines, base.goroutines, r.fds, base.fds,
				strings.Join(liveGoroutines(), "\n\n"), strings.Join(openFDs(), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expectGood checks that edge still serves a request to the good node.
func expectGoodNode(t *testing.T, e *edgeUnderTest, c *http.Client) {
	t.Helper()
	resp, body := do(t, c, "GET", e.url+"/healthy", nil, nil)
	if resp.StatusCode != 200 || body != "node=good path=/healthy" {
		t.Fatalf("request to the good node: %d %q", resp.StatusCode, body)
	}
}

// warmDegrade sends a few requests through edge, so that lazily started
// goroutines and the kept-alive connection to the good node exist before
// a baseline is taken.
func warmDegrade(t *testing.T, e *edgeUnderTest, c *http.Client) {
	t.Helper()
	for range 3 {
		expectGoodNode(t, e, c)
	}
	_ = scrape(t, e)
}

// --- cases -------------------------------------------------------------

func TestDegradeNodeThatNeverAnswersGets504AndLeaksNothing(t *testing.T) {
	good := startNode(t, "good")
	hole := startHostileNode(t, func(_ net.Conn, br *bufio.Reader) { waitPeerClosed(br) })
	const timeout = 300 * time.Millisecond
	e, _ := startDegradeEdge(t, good, hole.addr, degradeData{Timeout: "300ms"})
	c := testClient()
	warmDegrade(t, e, c)
	base := resourceBaseline(t, c)

	const n = 50
	statuses := make([]int, n)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			resp, err := c.Get(e.url + "/bad/" + strconv.Itoa(i))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i], took[i] = resp.StatusCode, time.Since(start)
		})
	}
	wg.Wait()
	for i := range n {
		if statuses[i] != 504 {
			t.Errorf("request %d: status %d, want 504", i, statuses[i])
		}
		// Not before the timeout, and not much after it (2 s of slack for
		// 50 at once on a loaded machine with -race).
		if took[i] < timeout-20*time.Millisecond || took[i] > timeout+2*time.Second {
			t.Errorf("request %d answered after %v; response_header_timeout is %v", i, took[i], timeout)
		}
	}
	if got := hole.accepted.Load(); got == 0 || got > n {
		t.Errorf("the node accepted %d connections for %d requests", got, n)
	}
	// Edge closes every connection that timed out: the node sees them go.
	waitFor(t, 3*time.Second, "node connections closed by edge", func() bool { return hole.open.Load() == 0 })
	link := badLink(e)
	if open, in := link.client.ConnsCount(), link.inflight.Load(); open != 0 || in != 0 {
		t.Errorf("edge still counts %d connections and %d requests in flight to the node", open, in)
	}
	expectGoodNode(t, e, c)
	hole.close()
	expectNoLeak(t, base, "after 50 timeouts", c)
}

func TestDegradeEndlessBodyIsStreamedAndDroppedWithTheClient(t *testing.T) {
	for _, path := range []string{"/bad/chunked", "/bad/trickle"} {
		t.Run(strings.TrimPrefix(path, "/bad/"), func(t *testing.T) {
			good := startNode(t, "good")
			node := startHostileNode(t, streamForever)
			e, _ := startDegradeEdge(t, good, node.addr, degradeData{Timeout: "1s"})
			c := testClient()
			warmDegrade(t, e, c)
			base := resourceBaseline(t, c)

			conn, err := net.DialTimeout("tcp", e.addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no response header: %v", err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			// The body never ends, so whatever arrives was streamed.
			want := int64(256 << 10)
			if path == "/bad/trickle" {
				want = 20 << 10 // 1 KiB per 20 ms: 400 ms of node time
			}
			if got, err := io.CopyN(io.Discard, resp.Body, want); err != nil {
				t.Fatalf("read %d of the first %d body bytes: %v", got, want, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the first %d bytes took %v", want, d)
			}
			if node.open.Load() != 1 {
				t.Fatalf("node has %d connections open, want 1 while streaming", node.open.Load())
			}
			// The client goes away mid-download: edge must drop the node.
			conn.Close()
			closedAt := time.Now()
			waitFor(t, 3*time.Second, "node connection closed after the client left", func() bool { return node.open.Load() == 0 })
			t.Logf("node saw its connection closed %v after the client left", time.Since(closedAt).Round(time.Millisecond))
			waitFor(t, 2*time.Second, "edge's in-flight count released", func() bool {
				l := badLink(e)
				return l.inflight.Load() == 0 && l.client.ConnsCount() == 0
			})
			expectGoodNode(t, e, c)
			node.close()
			expectNoLeak(t, base, "after a dropped endless download", c)
		})
	}
}

// TestDegradeStreamedResponseIsPassedOnAsItArrives: a node sends its header
// and the first bytes of a body, then pauses (a slow report, a long poll, a
// progress stream). The client must get what was sent without waiting for
// more, and the stalled node is cut after response_header_timeout, the
// longest pause between two reads of a body.
func TestDegradeStreamedResponseIsPassedOnAsItArrives(t *testing.T) {
	// A fixed-length body passes through fasthttp's 16 KiB write buffer
	// (fasthttp offers no flush to a body stream of known length), so its
	// first bytes wait for 16 KiB or the end; the header is flushed at once.
	// A chunked body is passed on chunk by chunk.
	for _, tc := range []struct {
		name, head, first string
		firstPrompt       bool
	}{
		{"fixed length", "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", "first-bytes", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "b\r\nfirst-bytes\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := startHostileNode(t, func(c net.Conn, br *bufio.Reader) {
				if _, _, err := readHostileHead(br); err != nil {
					return
				}
				if _, err := io.WriteString(c, tc.head+tc.first); err != nil {
					return
				}
				waitPeerClosed(br)
			})
			good := startNode(t, "good")
			const stall = 1500 * time.Millisecond
			e, _ := startDegradeEdge(t, good, node.addr, degradeData{Timeout: "1500ms"})
			c := testClient()
			warmDegrade(t, e, c)
			base := resourceBaseline(t, c)

			conn, err := net.DialTimeout("tcp", e.addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, "GET /bad/pause HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			// Well before edge would cut the stalled node.
			_ = conn.SetReadDeadline(start.Add(time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no response header within 1 s, while the node sent it at once and then paused: %v", err)
			}
			if tc.firstPrompt {
				first := make([]byte, len("first-bytes"))
				if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first-bytes" {
					t.Fatalf("the first body bytes were not passed on within 1 s while the node paused: read %q, %v", first, err)
				}
			}
			t.Logf("header after %v", time.Since(start).Round(time.Millisecond))
			// The stall is cut: the node's connection is closed, and so is
			// the client's response.
			_ = conn.SetReadDeadline(time.Now().Add(stall + 3*time.Second))
			_, err = io.Copy(io.Discard, resp.Body)
			var ne net.Error
			if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
				t.Errorf("after the node stalled: body read ended with %v, want the response cut", err)
			}
			waitFor(t, stall+2*time.Second, "stalled node connection closed", func() bool { return node.open.Load() == 0 })
			if d := time.Since(start); d < stall-50*time.Millisecond {
				t.Errorf("stalled node cut after %v, before the %v timeout", d, stall)
			}
			expectGoodNode(t, e, c)
			node.close()
			expectNoLeak(t, base, "after a stalled stream", c)
		})
	}
}

func TestDegradeMalformedNodeResponsesGet502(t *testing.T) {
	big := strings.Repeat("b", 70<<10) // over edge's 64 KiB response header limit
	answers := map[string]struct {
		raw        string
		closeAfter bool // the node closes after writing (else it serves the next request)
		cutOK      bool // the body streams: a cut connection is a valid outcome
	}{
		"/bad/garbage-status":  {raw: "FOO BAR BAZ\r\n\r\n"},
		"/bad/no-status-code":  {raw: "HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nok"},
		"/bad/header-no-colon": {raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nNo colon here\r\n\r\nok"},
		"/bad/short-body":      {raw: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", closeAfter: true},
		"/bad/short-large-body": {
			raw:        "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + strings.Repeat("s", 100<<10),
			closeAfter: true, cutOK: true},
		"/bad/duplicate-content-length": {raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
		"/bad/invalid-content-length":   {raw: "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nhello"},
		"/bad/bad-chunk-size": {
			raw:   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
			cutOK: true},
		"/bad/huge-header": {raw: "HTTP/1.1 200 OK\r\nX-Big: " + big + "\r\nContent-Length: 2\r\n\r\nok"},
	}
	// The node answers every request of a connection, so that a
	// connection edge wrongly kept would show as a wrong answer later,
	// not as a hang.
	node := startHostileNode(t, func(c net.Conn, br *bufio.Reader) {
		for {
			target, _, err := readHostileHead(br)
			if err != nil {
				return
			}
			a, ok := answers[target]
			if !ok {
				return
			}
			if _, err := io.WriteString(c, a.raw); err != nil || a.closeAfter {
				return
			}
		}
	})
	good := startNode(t, "good")
	e, _ := startDegradeEdge(t, good, node.addr, degradeData{})
	c := testClient()
	warmDegrade(t, e, c)
	base := resourceBaseline(t, c)

	paths := make([]string, 0, len(answers))
	for p := range answers {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, path := range paths {
		t.Run(strings.TrimPrefix(path, "/bad/"), func(t *testing.T) {
			resp, err := c.Get(e.url + path)
			if err != nil {
				// Edge had committed to streaming the answer (its header is
				// written with the first body bytes) when the body broke.
				if !answers[path].cutOK {
					t.Fatalf("no response at all: %v", err)
				}
				t.Logf("connection cut before a response: %v", err)
				waitFor(t, 3*time.Second, "edge closed the broken node connection", func() bool { return node.open.Load() == 0 })
				expectGoodNode(t, e, c)
				return
			}
			body, readErr := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == 502 && string(body) == "bad gateway\n" && readErr == nil:
				// the expected answer
			case answers[path].cutOK && resp.StatusCode == 200 && readErr != nil:
				t.Logf("header passed on, then the body was cut: %v", readErr)
			default:
				t.Errorf("got %d %q (body read error %v), want 502 \"bad gateway\"", resp.StatusCode, shortBody(body), readErr)
			}
			waitFor(t, 3*time.Second, "edge closed the broken node connection", func() bool { return node.open.Load() == 0 })
			expectGoodNode(t, e, c)
		})
	}
	if open := badLink(e).client.ConnsCount(); open != 0 {
		t.Errorf("edge keeps %d connections to the broken node", open)
	}
	node.close()
	expectNoLeak(t, base, "after malformed responses", c)
}

func shortBody(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// uploadSink reads an upload and reports how much of the declared body
// arrived and how reading it ended.
type uploadSink struct {
	declared int64
	got      int64
	err      error
}

func TestDegradeClientGoneMidUploadAbortsTheNodeRequest(t *testing.T) {
	const declared, sent = 1 << 20, 100 << 10
	sinks := make(chan uploadSink, 4)
	node := startHostileNode(t, func(c net.Conn, br *bufio.Reader) {
		target, cl, err := readHostileHead(br)
		if err != nil || target != "/bad/upload" {
			return
		}
		got, err := io.CopyN(io.Discard, br, cl)
		sinks <- uploadSink{declared: cl, got: got, err: err}
		if err == nil {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ncomplete")
			waitPeerClosed(br)
		}
	})
	good := startNode(t, "good")
	e, _ := startDegradeEdge(t, good, node.addr, degradeData{})
	c := testClient()
	warmDegrade(t, e, c)
	base := resourceBaseline(t, c)

	conn, err := net.DialTimeout("tcp", e.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	head := "POST /bad/upload HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(declared) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+strings.Repeat("u", sent)); err != nil {
		t.Fatal(err)
	}
	// Wait until the body is on its way to the node, then leave.
	waitFor(t, 3*time.Second, "upload forwarded to the node", func() bool { return node.accepted.Load() == 1 })
	conn.Close()

	select {
	case s := <-sinks:
		if s.err == nil || s.got >= declared {
			t.Fatalf("node read %d of %d body bytes, error %v: want the request cut short", s.got, s.declared, s.err)
		}
		if s.declared != declared {
			t.Errorf("node was told Content-Length %d, want %d", s.declared, declared)
		}
		t.Logf("node read %d of %d bytes, then: %v", s.got, s.declared, s.err)
	case <-time.After(5 * time.Second):
		t.Fatal("the node's request was not aborted within 5 s of the client leaving")
	}
	waitFor(t, 3*time.Second, "node connection closed", func() bool { return node.open.Load() == 0 })
	waitFor(t, 2*time.Second, "edge's connection to the node released", func() bool {
		l := badLink(e)
		return l.inflight.Load() == 0 && l.client.ConnsCount() == 0
	})
	expectGoodNode(t, e, c)
	node.close()
	expectNoLeak(t, base, "after an aborted upload", c)
}

func TestDegradeSlowLorisIsCutWhileOthersAreServed(t *testing.T) {
	const readHeader = 500 * time.Millisecond
	good := startNode(t, "good")
	unused := startHostileNode(t, func(_ net.Conn, br *bufio.Reader) { waitPeerClosed(br) })
	e, _ := startDegradeEdge(t, good, unused.addr, degradeData{ReadHeader: "500ms"})
	c := testClient()
	warmDegrade(t, e, c)
	base := resourceBaseline(t, c)

	// A well-behaved client keeps being served throughout.
	stop := make(chan struct{})
	var served atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			resp, err := c.Get(e.url + "/ok")
			if err != nil {
				t.Errorf("well-behaved client: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("well-behaved client: status %d", resp.StatusCode)
				return
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("well-behaved client waited %v", d)
			}
			served.Add(1)
			time.Sleep(20 * time.Millisecond) // a steady client's pace
		}
	})

	conn, err := net.DialTimeout("tcp", e.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The reader learns how the connection ended: a status line or EOF.
	ended := make(chan string, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if line != "" {
			ended <- "answer " + strings.TrimSpace(line)
			return
		}
		ended <- "closed: " + err.Error()
	}()
	header := "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: " + strings.Repeat("s", 100)
	start := time.Now()
	var how string
	const giveUp = 4 * time.Second // 8 × read_header_timeout
trickle:
	for i := 0; ; i++ {
		select {
		case how = <-ended:
			break trickle
		case <-time.After(200 * time.Millisecond): // one byte every 200 ms: the attack's pace
		}
		if time.Since(start) > giveUp {
			how = fmt.Sprintf("still connected after %v, %d header bytes trickled", giveUp, i)
			break
		}
		if _, err := conn.Write([]byte{header[i%len(header)]}); err != nil {
			how = "closed: write: " + err.Error()
			break
		}
	}
	cutAfter := time.Since(start)
	close(stop)
	wg.Wait()
	if !strings.HasPrefix(how, "answer HTTP/1.1 408") && !strings.HasPrefix(how, "closed") {
		t.Errorf("slow-loris client: %s; want 408 or a closed connection after read_header_timeout %v", how, readHeader)
	} else if cutAfter > readHeader+time.Second {
		t.Errorf("slow-loris client cut after %v (%s); read_header_timeout is %v", cutAfter, how, readHeader)
	} else {
		t.Logf("slow-loris client: %s after %v", how, cutAfter.Round(time.Millisecond))
	}
	if served.Load() < 5 {
		t.Errorf("well-behaved client served only %d times meanwhile", served.Load())
	}
	conn.Close()
	unused.close()
	expectNoLeak(t, base, "after a slow-loris client", c)
}

func TestDegradeSlowReaderIsCutAfterSendTimeout(t *testing.T) {
	const sendTimeout = 500 * time.Millisecond
	good := startNode(t, "good")
	node := startHostileNode(t, streamForever)
	e, _ := startDegradeEdge(t, good, node.addr, degradeData{Send: "500ms", Timeout: "5s"})
	c := testClient()
	warmDegrade(t, e, c)
	base := resourceBaseline(t, c)

	// A small receive window, set before connecting, so that the buffers
	// between edge and the client fill with little data.
	d := net.Dialer{Timeout: 2 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /bad/chunked HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The client never reads. Edge must give up on it once a write makes
	// no progress for send_timeout, and release the node connection.
	waitFor(t, 3*time.Second, "node streaming to edge", func() bool { return node.accepted.Load() == 1 })
	waitFor(t, 10*time.Second, "node connection closed after the client stopped reading", func() bool { return node.open.Load() == 0 })
	released := time.Since(start)
	waitFor(t, 2*time.Second, "edge's connection to the node released", func() bool {
		l := badLink(e)
		return l.inflight.Load() == 0 && l.client.ConnsCount() == 0
	})
	if released > sendTimeout+3*time.Second {
		t.Errorf("node released %v after the request; send_timeout is %v", released, sendTimeout)
	}
	// The client's connection was cut too: draining what was buffered
	// ends in EOF or a reset, not in our own read deadline.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the slow reader's connection is still open (%d bytes buffered, then timeout)", n)
	}
	t.Logf("node released after %v; the client had %d bytes buffered (%v)", released.Round(time.Millisecond), n, err)
	expectGoodNode(t, e, c)
	node.close()
	expectNoLeak(t, base, "after a slow reader", c)
}

// TestDegradeFileDescriptorExhaustionRecovers runs out of descriptors
// inside the process (edge, node and client share its table): the soft
// RLIMIT_NOFILE is lowered to a little above what is open, clients connect,
// and the table is filled with /dev/null so that edge's next accept fails
// with EMFILE. Edge must neither crash nor spin, and serve again once
// descriptors are free. The limit is restored before the test ends (and in
// Cleanup if it fails); nothing else runs meanwhile, since no test of the
// package is parallel, so the low limit cannot reach another test.
func TestDegradeFileDescriptorExhaustionRecovers(t *testing.T) {
	good := startNode(t, "good")
	unused := startHostileNode(t, func(_ net.Conn, br *bufio.Reader) { waitPeerClosed(br) })
	e, logs := startDegradeEdge(t, good, unused.addr, degradeData{})
	c := testClient()
	warmDegrade(t, e, c)

	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Skipf("cannot read RLIMIT_NOFILE: %v", err)
	}
	// The limit is one more than the highest descriptor number allowed.
	highest := 0
	for _, f := range openFDs() {
		num, _, _ := strings.Cut(f, " ")
		if n, err := strconv.Atoi(num); err == nil && n > highest {
			highest = n
		}
	}
	low := uint64(highest + 1 + 30)
	if low >= orig.Cur {
		t.Skipf("RLIMIT_NOFILE %d is already too low to lower to %d", orig.Cur, low)
	}
	var restoreOnce sync.Once
	restore := func() {
		restoreOnce.Do(func() {
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
				t.Errorf("restoring RLIMIT_NOFILE: %v", err)
			}
		})
	}
	var fillers []*os.File
	var clients []net.Conn
	release := func() {
		for _, f := range fillers {
			f.Close()
		}
		fillers = nil
		for _, cl := range clients {
			cl.Close()
		}
		clients = nil
	}
	t.Cleanup(func() { release(); restore() })
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: low, Max: orig.Max}); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE to %d: %v", low, err)
	}

	// Clients connect and are served while descriptors last.
	roundTrip := func(conn net.Conn) error {
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	for range 8 {
		conn, err := net.DialTimeout("tcp", e.addr, time.Second)
		if err != nil {
			break
		}
		clients = append(clients, conn)
		if err := roundTrip(conn); err != nil {
			t.Logf("client %d not served while descriptors ran low: %v", len(clients), err)
			break
		}
	}
	// Fill the table, then free one descriptor for one more client: its
	// socket takes it, and edge's accept finds none left.
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatalf("filling the descriptor table: %v", err)
			}
			break
		}
		fillers = append(fillers, f)
		if len(fillers) > 10000 {
			t.Fatal("the lowered limit does not bind")
		}
	}
	fillers[len(fillers)-1].Close()
	fillers = fillers[:len(fillers)-1]
	pending, err := net.DialTimeout("tcp", e.addr, time.Second)
	if err != nil {
		t.Fatalf("dialing edge with one descriptor free: %v", err)
	}
	clients = append(clients, pending)
	// pending's request waits in the accept queue (or on a connection edge
	// could not accept); it is read once edge can accept again.
	_ = pending.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(pending, "GET /pending HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("writing the pending request: %v", err)
	}

	// No spinning on the failing accept: the process stays nearly idle.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0, w0 := cpu(), time.Now()
	time.Sleep(time.Second) // the window over which CPU use is measured
	if used, wall := cpu()-c0, time.Since(w0); used > wall/2 {
		t.Errorf("out of descriptors, the process used %v of CPU in %v: edge spins", used, wall)
	}

	// Descriptors come back: edge serves again, the pending client first.
	fillers[len(fillers)-1].Close()
	fillers = fillers[:len(fillers)-1]
	answered := make(chan error, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(pending), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		answered <- err
	}()
	for _, f := range fillers {
		f.Close()
	}
	fillers = nil
	restore()
	select {
	case err := <-answered:
		if err != nil {
			t.Errorf("the client that connected while descriptors ran out: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("the client that connected while descriptors ran out is not served 3 s after descriptors were freed; edge logged:\n%s",
			grepLines(logs.String(), "level=ERROR"))
	}
	release()
	fresh := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := fresh.Get(e.url + "/after")
	if err != nil {
		t.Fatalf("edge does not serve after descriptors were freed: %v; edge logged:\n%s", err, grepLines(logs.String(), "level=ERROR"))
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after descriptors were freed: status %d", resp.StatusCode)
	}
	// The admin listener, which never hit the limit, works too.
	if !strings.Contains(scrape(t, e), "edge_") {
		t.Error("metrics missing after descriptor exhaustion")
	}
}

// A garbage answer, or a small body cut short, reaches the client as
// nothing: like a reset after the request was sent, it is retried on
// another node when the request may be sent again (found by the soak
// test, where 2 % of GETs got 502 from one misbehaving node of three).
func TestMalformedAnswerIsRetriedOnAnotherNode(t *testing.T) {
	const cfg = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app:
    policy: round_robin
    passive: {consecutive_failures: 0}
    retries: {budget_percent: 100}
    nodes: [{address: "{{.Bad}}", name: bad}, {address: "{{.Good}}", name: good}]
routes:
  - proxy: app
`
	for name, answer := range map[string]string{
		"garbage status line":  "FOO BAR BAZ\r\n\r\n",
		"short small body":     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
		"header without colon": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nNo colon\r\n\r\nok",
	} {
		t.Run(name, func(t *testing.T) {
			bad := startHostileNode(t, func(c net.Conn, br *bufio.Reader) {
				if _, _, err := readHostileHead(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, answer)
			})
			good := startNode(t, "good")
			e := startEdge(t, cfg, map[string]any{"Bad": bad.addr, "Good": good.addr})
			c := testClient()
			for i := range 6 {
				resp, body := do(t, c, "GET", e.url+"/page", nil, nil)
				if resp.StatusCode != 200 || resp.Header.Get("X-Node") != "good" {
					t.Fatalf("GET %d: status %d from %q (%q), want 200 from the good node", i, resp.StatusCode, resp.Header.Get("X-Node"), body)
				}
			}
			m := scrape(t, e)
			if n := metricValue(m, `edge_upstream_retries_total{pool="app",reason="reset"}`); n < 3 {
				t.Errorf("reset retries = %v, want at least 3 (round robin sends GETs to the bad node first):\n%s", n, grepLines(m, "edge_upstream_retries_total"))
			}
			// A POST is not sent again (retry_non_idempotent is off).
			var got502 bool
			for range 2 {
				resp, _ := do(t, c, "POST", e.url+"/form", nil, strings.NewReader("a=1"))
				got502 = got502 || resp.StatusCode == 502
			}
			if !got502 {
				t.Error("a POST that met the bad node was retried: want 502")
			}
		})
	}
}
