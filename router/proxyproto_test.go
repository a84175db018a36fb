package router

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// proxyV2 builds a v2 header: command (0 LOCAL, 1 PROXY), family byte,
// source address and port (the destination is 192.0.2.1:443 or [2001:db8::1]:443).
func proxyV2(cmd, family byte, src netip.AddrPort, tlv []byte) []byte {
	var body []byte
	switch family {
	case 0x11:
		a := src.Addr().As4()
		body = append(body, a[:]...)
		body = append(body, 192, 0, 2, 1)
		body = binary.BigEndian.AppendUint16(body, src.Port())
		body = binary.BigEndian.AppendUint16(body, 443)
	case 0x21:
		a := src.Addr().As16()
		d := netip.MustParseAddr("2001:db8::1").As16()
		body = append(body, a[:]...)
		body = append(body, d[:]...)
		body = binary.BigEndian.AppendUint16(body, src.Port())
		body = binary.BigEndian.AppendUint16(body, 443)
	}
	body = append(body, tlv...)
	h := append([]byte{}, proxyV2Signature...)
	h = append(h, 0x20|cmd, family)
	h = binary.BigEndian.AppendUint16(h, uint16(len(body)))
	return append(h, body...)
}

func TestParseProxyHeader(t *testing.T) {
	v4 := netip.MustParseAddrPort("203.0.113.7:5555")
	v6 := netip.MustParseAddrPort("[2001:db8::7]:5555")
	tests := []struct {
		name    string
		in      string
		n       int    // header length; 0: more bytes needed
		src     string // "" for none
		wantErr bool
	}{
		{"v1 tcp4", "PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\nGET /", 42, "203.0.113.7:5555", false},
		{"v1 tcp6", "PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\n", 45, "[2001:db8::7]:5555", false},
		{"v1 unknown", "PROXY UNKNOWN\r\nGET /", 15, "", false},
		{"v1 unknown with addresses", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", 35, "", false},
		{"v1 incomplete", "PROXY TCP4 203.0.113.7 19", 0, "", false},
		{"prefix of both", "\r\n", 0, "", false},
		{"prefix of v1", "PRO", 0, "", false},
		{"v1 bad protocol", "PROXY TCP5 203.0.113.7 192.0.2.1 5555 80\r\n", 0, "", true},
		{"v1 bad address", "PROXY TCP4 203.0.113.x 192.0.2.1 5555 80\r\n", 0, "", true},
		{"v1 family mismatch", "PROXY TCP4 2001:db8::7 192.0.2.1 5555 80\r\n", 0, "", true},
		{"v1 port leading zero", "PROXY TCP4 203.0.113.7 192.0.2.1 05555 80\r\n", 0, "", true},
		{"v1 port too big", "PROXY TCP4 203.0.113.7 192.0.2.1 65536 80\r\n", 0, "", true},
		{"v1 missing field", "PROXY TCP4 203.0.113.7 192.0.2.1 5555\r\n", 0, "", true},
		{"v1 bare LF", "PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\n", 0, "", true},
		{"v1 too long", "PROXY UNKNOWN " + strings.Repeat("x", 100) + "\r\n", 0, "", true},
		{"not a header", "GET / HTTP/1.1\r\n", 0, "", true},
		{"v2 ipv4", string(proxyV2(1, 0x11, v4, nil)), 28, "203.0.113.7:5555", false},
		{"v2 ipv6", string(proxyV2(1, 0x21, v6, nil)), 52, "[2001:db8::7]:5555", false},
		{"v2 ipv4 with TLVs", string(proxyV2(1, 0x11, v4, []byte{0xEA, 0, 3, 1, 2, 3})), 34, "203.0.113.7:5555", false},
		{"v2 local", string(proxyV2(0, 0x00, v4, nil)), 16, "", false},
		{"v2 unspec", string(proxyV2(1, 0x00, v4, nil)), 16, "", false},
		{"v2 truncated", string(proxyV2(1, 0x11, v4, nil)[:20]), 0, "", false},
		{"v2 version 1", string(append(append([]byte{}, proxyV2Signature...), 0x11, 0x11, 0, 0)), 0, "", true},
		{"v2 bad command", string(append(append([]byte{}, proxyV2Signature...), 0x22, 0x11, 0, 0)), 0, "", true},
		{"v2 unix family", string(append(append([]byte{}, proxyV2Signature...), 0x21, 0x31, 0, 0)), 0, "", true},
		{"v2 ipv4 block short", string(append(append([]byte{}, proxyV2Signature...), 0x21, 0x11, 0, 4, 1, 2, 3, 4)), 0, "", true},
		{"v2 too long", string(append(append([]byte{}, proxyV2Signature...), 0x21, 0x11, 0xff, 0xff)), 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _, src, err := parseProxyHeader([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if n != tt.n {
				t.Fatalf("length = %d, want %d", n, tt.n)
			}
			got := ""
			if src != nil {
				got = src.String()
			}
			if got != tt.src {
				t.Fatalf("source = %q, want %q", got, tt.src)
			}
		})
	}
}

const proxyProtoConfig = `
listeners:
  - {name: lb, address: "127.0.0.1:0", proxy_protocol: {from: [{{.From}}]}}
  - {name: plain, address: "127.0.0.1:0"}
admin: {address: "127.0.0.1:0"}
upstreams:
  app:
    nodes: [{address: "{{index .Nodes 0}}"}]
routes:
  - name: office
    match: {path_prefix: /office}
    access: {allow: [203.0.113.0/24]}
    proxy: app
  - name: all
    proxy: app
`

// sendOver writes raw bytes on a new connection to addr and returns the
// answer's status (0 when the connection was closed without one).
func sendOver(t *testing.T, addr string, raw []byte) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(raw); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestProxyProtocolCarriesTheClientAddress(t *testing.T) {
	n := startNode(t, "a")
	data := nodesData(n)
	data["From"] = "127.0.0.1"
	e := startEdge(t, proxyProtoConfig, data)
	lb, plain := e.srv.Addrs()[0].String(), e.srv.Addrs()[1].String()
	get := func(path string) []byte {
		return []byte("GET " + path + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	}
	with := func(h []byte, path string) []byte { return append(append([]byte{}, h...), get(path)...) }
	v4 := netip.MustParseAddrPort("203.0.113.7:5555")
	v6 := netip.MustParseAddrPort("[2001:db8::7]:5555")

	tests := []struct {
		name   string
		raw    []byte
		status int
		xff    string
	}{
		{"v1", with([]byte("PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\n"), "/x"), 200, "203.0.113.7"},
		{"v2 ipv6", with(proxyV2(1, 0x21, v6, nil), "/x"), 200, "2001:db8::7"},
		{"v2 local is the balancer itself", with(proxyV2(0, 0x00, v4, nil), "/x"), 200, "127.0.0.1"},
		{"v1 unknown is the balancer itself", with([]byte("PROXY UNKNOWN\r\n"), "/x"), 200, "127.0.0.1"},
		{"access list sees the client", with(proxyV2(1, 0x11, v4, nil), "/office/a"), 200, "203.0.113.7"},
		{"access list refuses another client", with([]byte("PROXY TCP4 198.51.100.9 192.0.2.1 5555 80\r\n"), "/office/a"), 403, ""},
		{"no header", get("/x"), 0, ""},
		{"garbage header", with([]byte("PROXY TCP9 1 2 3 4\r\n"), "/x"), 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := n.requests.Load()
			if got := sendOver(t, lb, tt.raw); got != tt.status {
				t.Fatalf("status %d, want %d", got, tt.status)
			}
			if tt.status != 200 {
				if n.requests.Load() != before {
					t.Fatal("a refused connection reached the node")
				}
				return
			}
			if got := n.header().Get("X-Forwarded-For"); got != tt.xff {
				t.Fatalf("X-Forwarded-For = %q, want %q", got, tt.xff)
			}
		})
	}
	// A listener that does not expect the header reads it as a bad request.
	if got := sendOver(t, plain, with([]byte("PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\n"), "/x")); got != 400 {
		t.Fatalf("plain listener: status %d, want 400", got)
	}
	if m := scrape(t, e); !strings.Contains(m, `edge_proxy_protocol_refused_total{reason="invalid"} 2`) {
		t.Errorf("want 2 invalid headers counted:\n%s", grepLines(m, "edge_proxy_protocol_refused_total"))
	}
}

func TestProxyProtocolRefusesUntrustedSenders(t *testing.T) {
	n := startNode(t, "a")
	data := nodesData(n)
	data["From"] = "10.0.0.0/8"
	e := startEdge(t, proxyProtoConfig, data)
	lb := e.srv.Addrs()[0].String()
	raw := []byte("PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	if got := sendOver(t, lb, raw); got != 0 {
		t.Fatalf("status %d from a sender outside proxy_protocol.from, want the connection closed", got)
	}
	if n.requests.Load() != 0 {
		t.Fatal("the node was reached")
	}
	if m := scrape(t, e); !strings.Contains(m, `edge_proxy_protocol_refused_total{reason="untrusted"} 1`) {
		t.Errorf("untrusted sender not counted:\n%s", grepLines(m, "edge_proxy_protocol_refused_total"))
	}
}

// FuzzParseProxyHeader: any input is parsed without panicking, a header
// length never exceeds the input, and a header found is found again in
// its own bytes.
func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\nGET"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(proxyV2(1, 0x21, netip.MustParseAddrPort("[2001:db8::7]:1"), []byte{1, 0, 1, 9}))
	f.Add(proxyV2(0, 0x00, netip.AddrPort{}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, _, src, err := parseProxyHeader(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("header length %d beyond the input's %d", n, len(b))
		}
		if n > 0 {
			n2, _, src2, err := parseProxyHeader(b[:n])
			if err != nil || n2 != n || (src == nil) != (src2 == nil) || (src != nil && src.String() != src2.String()) {
				t.Fatalf("the header alone parses differently: %d %v %v, then %d %v %v", n, src, nil, n2, src2, err)
			}
		}
	})
}
