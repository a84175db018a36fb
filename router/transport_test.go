package router

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawNode is a node that answers every request with fixed raw bytes, for
// framings a well-behaved server would not produce.
type rawNode struct {
	addr  string
	conns atomic.Int64
}

func startRawNode(t *testing.T, answer func(req *http.Request) string) *rawNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &rawNode{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					out := answer(req)
					if _, err := io.WriteString(c, out); err != nil {
						return
					}
					if strings.Contains(out, "Connection: close") || strings.HasSuffix(out, "\x00close") {
						return
					}
				}
			}()
		}
	}()
	return n
}

func rawNodeConfig(addr string) (string, map[string]any) {
	return poolConfig, map[string]any{"Nodes": []string{addr}, "Policy": "round_robin"}
}

func TestTransportFramings(t *testing.T) {
	big := strings.Repeat("z", 100<<10) // above smallBody: streamed
	cases := []struct {
		name     string
		answer   string
		wantBody string
		wantErr  bool // the client must see a broken response
	}{
		{"small fixed", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", false},
		{"large fixed is streamed", "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big, big, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", false},
		{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n", "hello", false},
		{"chunked with upper-case hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", "0123456789", false},
		{"no length: body until close", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close", "until close", false},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "", true},
		{"chunk without CRLF after data", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", "", true},
		{"large fixed cut short", "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n" + big, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			node := startRawNode(t, func(*http.Request) string { return tc.answer })
			cfg, data := rawNodeConfig(node.addr)
			e := startEdge(t, cfg, data)
			resp, err := testClient().Get(e.url + "/")
			if err != nil {
				if tc.wantErr {
					return
				}
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.wantErr {
				if err == nil && resp.StatusCode == 200 && len(body) > 0 && string(body) == tc.wantBody {
					t.Fatalf("a broken body reached the client as a complete one")
				}
				if err == nil && resp.StatusCode == 200 && resp.ContentLength < 0 {
					t.Fatalf("a broken chunked body was passed on as complete (%d bytes)", len(body))
				}
				return
			}
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if resp.StatusCode != 200 || !bytes.Equal(body, []byte(tc.wantBody)) {
				t.Fatalf("got %d with %d bytes, want 200 with %d bytes", resp.StatusCode, len(body), len(tc.wantBody))
			}
		})
	}
}

func TestStreamedBodiesKeepUpstreamConnectionsAlive(t *testing.T) {
	node := startNode(t, "n0")
	e := startEdge(t, poolConfig, poolData("round_robin", node))
	c := testClient()
	for i := range 20 {
		size := 200000 + i // streamed (chunked from the node)
		resp, body := do(t, c, "GET", e.url+"/download?n="+strconv.Itoa(size), nil, nil)
		if resp.StatusCode != 200 || len(body) != size {
			t.Fatalf("download %d: %d, %d bytes", i, resp.StatusCode, len(body))
		}
	}
	link := e.srv.snap.Load().pools["app"].nodes[0].link
	if n := link.client.ConnsCount(); n != 1 {
		t.Fatalf("20 sequential streamed downloads used %d upstream connections, want 1 (kept alive)", n)
	}
	// Every streamed body released its in-flight count when it was done.
	if in := link.inflight.Load(); in != 0 {
		t.Fatalf("node has %d requests in flight after all downloads finished, want 0", in)
	}
}

func TestNodeConnectionCloseDoesNotCloseTheClient(t *testing.T) {
	node := startRawNode(t, func(*http.Request) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
	})
	cfg, data := rawNodeConfig(node.addr)
	e := startEdge(t, cfg, data)
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for i := range 3 {
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on one client connection: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.Close {
			t.Fatalf("request %d: edge passed the node's Connection: close on to the client", i)
		}
	}
	if node.conns.Load() != 3 {
		t.Fatalf("node saw %d connections, want 3 (it closes each)", node.conns.Load())
	}
}
