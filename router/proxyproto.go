package router

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// The PROXY protocol (HAProxy's specification, versions 1 and 2) carries
// the client's address from a load balancer that forwards TCP, such as an
// AWS NLB, ahead of the connection's own bytes. On a listener that expects
// it, every connection must come from a configured load balancer and start
// with a valid header; anything else is closed. The address it carries is
// what RemoteAddr returns, so X-Forwarded-For, the access log, access
// lists, rate limits and hashing all see the real client. A listener that
// does not expect the header reads it as a malformed request (400).

var (
	errProxyHeader    = errors.New("invalid PROXY protocol header")
	proxyV2Signature  = []byte("\r\n\r\n\x00\r\nQUIT\n")
	proxyV1Prefix     = []byte("PROXY ")
	proxyHeaderMaxLen = 16 + 1024 // v2: 16 bytes, then addresses and TLVs (AWS adds some)
)

// proxyListener wraps accepted connections in proxyConn, closing at once
// those that do not come from a trusted load balancer.
type proxyListener struct {
	net.Listener
	trusted  trustedNets
	timeout  time.Duration // for the header to arrive
	refusals func(reason string)
}

func (l *proxyListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if peer := remoteIP(c.RemoteAddr()).Unmap(); !peer.IsValid() || !l.trusted.contains(peer) {
			_ = c.Close()
			l.refusals("untrusted")
			continue
		}
		return &proxyConn{Conn: c, timeout: l.timeout, refusals: l.refusals}, nil
	}
}

// proxyConn reads the PROXY header before the first byte is handed on
// (on the goroutine that reads the connection, so a slow load balancer
// never holds up Accept).
type proxyConn struct {
	net.Conn
	timeout  time.Duration
	refusals func(reason string)

	once sync.Once
	err  error
	src  net.Addr // nil: the header named no address (LOCAL, UNKNOWN)
	rest []byte   // bytes read after the header
}

func (c *proxyConn) Read(p []byte) (int, error) {
	c.once.Do(c.readHeader)
	if c.err != nil {
		return 0, c.err
	}
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr is the client's address from the header, or the load
// balancer's when the header names none (its own health checks).
func (c *proxyConn) RemoteAddr() net.Addr {
	c.once.Do(c.readHeader)
	if c.src != nil {
		return c.src
	}
	return c.Conn.RemoteAddr()
}

func (c *proxyConn) readHeader() {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	defer func() { _ = c.Conn.SetReadDeadline(time.Time{}) }()
	buf := make([]byte, 0, 256)
	for {
		n, _, src, err := parseProxyHeader(buf)
		if err != nil {
			c.fail()
			return
		}
		if n > 0 {
			c.src, c.rest = src, buf[n:]
			return
		}
		if len(buf) == cap(buf) {
			if cap(buf) >= proxyHeaderMaxLen {
				c.fail()
				return
			}
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		m, rerr := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if rerr != nil && m == 0 {
			c.fail()
			return
		}
	}
}

func (c *proxyConn) fail() {
	c.err = errProxyHeader
	c.refusals("invalid")
	_ = c.Conn.Close()
}

// parseProxyHeader parses a PROXY header at the start of b. It returns the
// header's length (0: more bytes are needed), the version, and the source
// address (nil for LOCAL, UNKNOWN and unspecified families).
func parseProxyHeader(b []byte) (n, version int, src net.Addr, err error) {
	switch {
	case len(b) >= len(proxyV2Signature) && bytes.Equal(b[:len(proxyV2Signature)], proxyV2Signature):
		return parseProxyV2(b)
	case len(b) < len(proxyV2Signature) && bytes.HasPrefix(proxyV2Signature, b):
		return 0, 0, nil, nil // could still be either
	case len(b) >= len(proxyV1Prefix) && bytes.Equal(b[:len(proxyV1Prefix)], proxyV1Prefix):
		return parseProxyV1(b)
	case len(b) < len(proxyV1Prefix) && bytes.HasPrefix(proxyV1Prefix, b):
		return 0, 0, nil, nil
	}
	return 0, 0, nil, errProxyHeader
}

// parseProxyV1 parses "PROXY TCP4|TCP6 src dst sport dport\r\n" or
// "PROXY UNKNOWN …\r\n", at most 107 bytes.
func parseProxyV1(b []byte) (int, int, net.Addr, error) {
	end := bytes.Index(b, []byte("\r\n"))
	if end < 0 {
		if len(b) >= 107 || bytes.IndexByte(b, '\n') >= 0 {
			return 0, 1, nil, errProxyHeader
		}
		return 0, 1, nil, nil
	}
	if end+2 > 107 {
		return 0, 1, nil, errProxyHeader
	}
	f := bytes.Split(b[len(proxyV1Prefix):end], []byte{' '})
	if len(f) >= 1 && string(f[0]) == "UNKNOWN" {
		return end + 2, 1, nil, nil
	}
	if len(f) != 5 || (string(f[0]) != "TCP4" && string(f[0]) != "TCP6") {
		return 0, 1, nil, errProxyHeader
	}
	src, err1 := netip.ParseAddr(string(f[1]))
	dst, err2 := netip.ParseAddr(string(f[2]))
	sport, err3 := strconv.ParseUint(string(f[3]), 10, 16)
	_, err4 := strconv.ParseUint(string(f[4]), 10, 16)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || src.Is4() != (string(f[0]) == "TCP4") || src.Is4() != dst.Is4() ||
		(len(f[3]) > 1 && f[3][0] == '0') {
		return 0, 1, nil, errProxyHeader
	}
	return end + 2, 1, net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, uint16(sport))), nil
}

// parseProxyV2 parses the binary header: signature, version and command,
// family and transport, length, addresses, TLVs (ignored).
func parseProxyV2(b []byte) (int, int, net.Addr, error) {
	if len(b) < 16 {
		return 0, 2, nil, nil
	}
	if b[12]>>4 != 2 {
		return 0, 2, nil, errProxyHeader
	}
	length := int(binary.BigEndian.Uint16(b[14:16]))
	if 16+length > proxyHeaderMaxLen {
		return 0, 2, nil, errProxyHeader
	}
	if len(b) < 16+length {
		return 0, 2, nil, nil
	}
	body := b[16 : 16+length]
	switch b[12] & 0x0f {
	case 0x0: // LOCAL: the load balancer's own connection (a health check)
		return 16 + length, 2, nil, nil
	case 0x1: // PROXY
	default:
		return 0, 2, nil, errProxyHeader
	}
	switch b[13] {
	case 0x11, 0x12: // TCP or UDP over IPv4
		if len(body) < 12 {
			return 0, 2, nil, errProxyHeader
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		port := binary.BigEndian.Uint16(body[8:10])
		return 16 + length, 2, net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, port)), nil
	case 0x21, 0x22: // over IPv6
		if len(body) < 36 {
			return 0, 2, nil, errProxyHeader
		}
		src := netip.AddrFrom16([16]byte(body[0:16])).Unmap()
		port := binary.BigEndian.Uint16(body[32:34])
		return 16 + length, 2, net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, port)), nil
	case 0x00: // UNSPEC
		return 16 + length, 2, nil, nil
	}
	return 0, 2, nil, errProxyHeader // unix sockets and unknown families
}
