package router

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// hopHeaders are the hop-by-hop fields that a proxy must not forward
// (RFC 9110 §7.6.1), plus Proxy-Connection, which old clients send, and
// Keep-Alive (RFC 9112 §9.6). Content-Length and Transfer-Encoding are
// framing, which fasthttp re-creates for each hop.
var hopHeaders = [][]byte{
	[]byte("Connection"),
	[]byte("Proxy-Connection"),
	[]byte("Keep-Alive"),
	[]byte("Proxy-Authenticate"),
	[]byte("Proxy-Authorization"),
	[]byte("Te"),
	[]byte("Trailer"),
	[]byte("Transfer-Encoding"),
	[]byte("Upgrade"),
}

var (
	hdrXForwardedFor   = []byte("X-Forwarded-For")
	hdrXForwardedProto = []byte("X-Forwarded-Proto")
	hdrXForwardedHost  = []byte("X-Forwarded-Host")
	hdrForwarded       = []byte("Forwarded")
	hdrXRequestID      = []byte("X-Request-Id")
	hdrLocation        = []byte("Location")
)

// headerDeleter is what request and response headers share for removal.
type headerDeleter interface {
	PeekAll(key string) [][]byte
	DelBytes(key []byte)
}

// appendJoined appends every line of a header, joined by ", " as RFC 9110
// §5.3 allows for list-valued fields, so a value split over several lines
// is read whole (a second line cannot hide from a check of the first).
func appendJoined(dst []byte, h interface{ PeekAll(string) [][]byte }, key string) []byte {
	for i, v := range h.PeekAll(key) {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, v...)
	}
	return dst
}

// stripHopHeaders removes the fields named in Connection, on every
// Connection line (RFC 9110 §7.6.1), then the fixed hop-by-hop list.
// scratch is reused to hold the Connection value while its listed names
// are deleted; the grown slice is returned.
func stripHopHeaders(h headerDeleter, scratch []byte) []byte {
	if scratch = appendJoined(scratch[:0], h, "Connection"); len(scratch) > 0 {
		for tok := range bytes.SplitSeq(scratch, []byte{','}) {
			tok = bytes.TrimSpace(tok)
			if len(tok) > 0 {
				h.DelBytes(tok)
			}
		}
	}
	for _, name := range hopHeaders {
		h.DelBytes(name)
	}
	return scratch
}

// trustedNets reports whether an address belongs to a trusted proxy.
type trustedNets []netip.Prefix

func (t trustedNets) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr returns the address of the original client: the peer itself,
// or, when the peer is a trusted proxy, the right-most address in its
// X-Forwarded-For that is not a trusted proxy (the left-most part of the
// list is written by the client and cannot be believed).
func (t trustedNets) clientAddr(peer netip.Addr, xff []byte) netip.Addr {
	if len(t) == 0 || !t.contains(peer) || len(xff) == 0 {
		return peer
	}
	client := peer
	for len(xff) > 0 {
		i := bytes.LastIndexByte(xff, ',')
		part := bytes.TrimSpace(xff[i+1:])
		if i < 0 {
			xff = nil
		} else {
			xff = xff[:i]
		}
		a, err := netip.ParseAddr(string(part)) // no allocation: the conversion does not escape
		if err != nil {
			return client
		}
		client = a.Unmap()
		if !t.contains(client) {
			return client
		}
	}
	return client
}

// setForwardedHeaders writes X-Forwarded-For, -Proto, -Host and Forwarded
// (RFC 7239) for the request to a node. From a trusted proxy the existing
// values (every line of them, joined) are extended (For, Forwarded) or kept
// (Proto, Host); from anyone else they are replaced, so a client cannot
// claim another address. Each is written as one line: a node that reads
// only the first line must not see a client-written one. buf is scratch
// space; the grown slice is returned.
func setForwardedHeaders(req *fasthttp.RequestHeader, peer netip.Addr, trusted, overrides bool, scheme string, buf []byte) []byte {
	peer = peer.Unmap()
	out := buf[:0]
	if trusted {
		if out = appendJoined(out, req, "X-Forwarded-For"); len(out) > 0 {
			out = append(out, ", "...)
		}
	}
	out = peer.AppendTo(out)
	// Delete before setting: Set replaces only the first of several lines.
	req.DelBytes(hdrXForwardedFor)
	req.SetBytesKV(hdrXForwardedFor, out)

	if !trusted && overrides {
		for _, name := range overrideHeaders {
			req.DelBytes(name)
		}
	}
	if !trusted || len(req.PeekBytes(hdrXForwardedProto)) == 0 {
		req.DelBytes(hdrXForwardedProto)
		req.SetBytesK(hdrXForwardedProto, scheme)
	}
	if !trusted || len(req.PeekBytes(hdrXForwardedHost)) == 0 {
		req.DelBytes(hdrXForwardedHost)
		req.SetBytesKV(hdrXForwardedHost, req.Host())
	}

	// Forwarded: for=…;host=…;proto=… (RFC 7239 §4), IPv6 quoted and bracketed.
	fw := out[:0]
	if trusted {
		if fw = appendJoined(fw, req, "Forwarded"); len(fw) > 0 {
			fw = append(fw, ", "...)
		}
	}
	fw = append(fw, "for="...)
	if peer.Is6() {
		fw = append(fw, `"[`...)
		fw = peer.AppendTo(fw)
		fw = append(fw, `]"`...)
	} else {
		fw = peer.AppendTo(fw)
	}
	if host := req.Host(); len(host) > 0 {
		fw = append(fw, ";host="...)
		fw = appendForwardedValue(fw, host)
	}
	fw = append(fw, ";proto="...)
	fw = append(fw, scheme...)
	req.DelBytes(hdrForwarded)
	req.SetBytesKV(hdrForwarded, fw)
	return fw[:0]
}

// overrideHeaders are request fields that some applications and frameworks
// believe over the request line or Host (Symfony, Laravel and IIS among
// them), though no cache keys on them: from a client that is not a trusted
// proxy they are removed, so that nobody can make a node answer another
// URL, host or method than the one routed and cached (cache poisoning).
// X-Forwarded-For, -Proto, -Host and Forwarded are replaced instead.
var overrideHeaders = [][]byte{
	[]byte("X-Original-Url"),
	[]byte("X-Rewrite-Url"),
	[]byte("X-Original-Host"),
	[]byte("X-Host"),
	[]byte("X-Forwarded-Server"),
	[]byte("X-Forwarded-Port"),
	[]byte("X-Forwarded-Prefix"),
	[]byte("X-Forwarded-Scheme"),
	[]byte("X-Forwarded-Ssl"),
	[]byte("X-Http-Method-Override"),
	[]byte("X-Http-Method"),
	[]byte("X-Method-Override"),
}

// isHopHeader reports whether name is one of hopHeaders.
func isHopHeader(name []byte) bool {
	for _, h := range hopHeaders {
		if len(h) == len(name) && bytes.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// isOverrideHeader reports whether name is one of overrideHeaders.
func isOverrideHeader(name []byte) bool {
	if len(name) < 6 || name[0]|0x20 != 'x' || name[1] != '-' {
		return false
	}
	for _, o := range overrideHeaders {
		if len(o) == len(name) && bytes.EqualFold(o, name) {
			return true
		}
	}
	return false
}

// appendForwardedValue writes v as a Forwarded parameter value (RFC 7239
// §4): as a token when every byte is a tchar (RFC 9110 §5.6.2), else as a
// quoted-string with '"' and '\\' escaped. Control bytes, which fasthttp
// does not let into a header anyway, are dropped.
func appendForwardedValue(dst, v []byte) []byte {
	token := true
	for _, c := range v {
		if !isTChar(c) {
			token = false
			break
		}
	}
	if token {
		return append(dst, v...)
	}
	dst = append(dst, '"')
	for _, c := range v {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < ' ' || c == 0x7f:
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// isTChar reports whether c may appear in an RFC 9110 token.
func isTChar(c byte) bool { return tokenChars[c] }

// requestIDs generates X-Request-Id values: a random per-process prefix and
// a counter, so IDs are unique without a random read per request.
type requestIDs struct {
	prefix [16]byte // hex of 8 random bytes
	next   atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	g := &requestIDs{}
	hex.Encode(g.prefix[:], b[:])
	return g
}

// appendID appends a new 32-character ID to dst.
func (g *requestIDs) appendID(dst []byte) []byte {
	n := g.next.Add(1)
	dst = append(dst, g.prefix[:]...)
	var num [16]byte
	for i := 15; i >= 0; i-- {
		num[i] = "0123456789abcdef"[n&0xf]
		n >>= 4
	}
	return append(dst, num[:]...)
}

// validRequestID reports whether a client-supplied X-Request-Id may be
// passed on: 1–128 visible ASCII characters.
func validRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// headerRules are compiled config.HeaderRules: removals, then sets, then
// additions, each in name order so the result does not depend on map order.
type headerRules struct {
	remove [][]byte
	set    [][2][]byte
	add    [][2][]byte
}

func compileHeaderRules(c config.HeaderRules) headerRules {
	var r headerRules
	for _, name := range c.Remove {
		r.remove = append(r.remove, []byte(name))
	}
	r.set = sortedPairs(c.Set)
	r.add = sortedPairs(c.Add)
	return r
}

func sortedPairs(m map[string]string) [][2][]byte {
	out := make([][2][]byte, 0, len(m))
	for k, v := range m {
		out = append(out, [2][]byte{[]byte(k), []byte(v)})
	}
	slices.SortFunc(out, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	return out
}

// headerEditor is what request and response headers share for editing.
type headerEditor interface {
	DelBytes(key []byte)
	SetBytesKV(key, value []byte)
	AddBytesKV(key, value []byte)
}

func (r *headerRules) apply(h headerEditor) {
	for _, name := range r.remove {
		h.DelBytes(name)
	}
	for _, kv := range r.set {
		// Delete first: Set replaces only the first of several lines (a
		// client sending the field twice would keep its second value), and
		// merges a request's Cookie with the client's cookies.
		h.DelBytes(kv[0])
		h.SetBytesKV(kv[0], kv[1])
	}
	for _, kv := range r.add {
		h.AddBytesKV(kv[0], kv[1])
	}
}

// codeClass returns the index of a status code's class: 0 for 1xx … 4 for
// 5xx, and 5 for anything else.
func codeClass(status int) int {
	if status >= 100 && status < 600 {
		return status/100 - 1
	}
	return 5
}

var codeClassNames = [6]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

func itoa(b []byte, n int) []byte { return strconv.AppendInt(b, int64(n), 10) }
