package router

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// Client request framing (RFC 9112). fasthttp's parser already refuses a
// duplicated Content-Length or Host, whitespace before a colon, control
// characters in values, an unknown transfer coding and Transfer-Encoding
// in HTTP/1.0. checkFraming adds, on the header section as received, what
// a front proxy must also refuse so that no node behind it can be made to
// read a request differently than edge did; the request is then re-framed
// for the node, never passed on byte for byte.
//
// A request refused here is answered 400 with Connection: close (RFC 9112
// §6.3 requires closing after a framing error): the bytes after it on the
// connection are never read as another request.

// fieldKinds says which kinds of fields a request carries.
type fieldKinds uint8

const (
	sawOverride fieldKinds = 1 << iota // one of overrideHeaders
	sawHop                             // one of hopHeaders (Connection included)
)

// framingError is why checkFraming refused a request.
type framingError uint8

const (
	framingOK framingError = iota
	framingBareLF
	framingBareCR
	framingObsFold
	framingBadName
	framingLengthAndChunked
	framingNotChunked
	framingNoHost
	framingHostMismatch
	framingBadHost
	framingFragment
	framingTooManyFields
)

var (
	nameContentLength    = []byte("content-length")
	nameTransferEncoding = []byte("transfer-encoding")
)

// checkFraming inspects the request's header section. maxFields bounds the
// number of header fields. It also reports which kinds of fields the
// request carries (hop-by-hop fields, overrideHeaders), so that the proxy
// looks for them only when present. It allocates nothing.
func checkFraming(h *fasthttp.RequestHeader, maxFields int) (fe framingError, seen fieldKinds) {
	raw := h.RawHeaders()
	var fields int
	var sawLength, sawCoding bool
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			i = len(raw) // fasthttp keeps the block up to the last LF; be safe
		}
		line := raw[:i]
		if i < len(raw) {
			raw = raw[i+1:]
		} else {
			raw = nil
		}
		// Every line ends in CRLF (RFC 9112 §2.2): no bare LF, no bare CR.
		if len(line) == 0 || line[len(line)-1] != '\r' {
			return framingBareLF, seen
		}
		line = line[:len(line)-1]
		if bytes.IndexByte(line, '\r') >= 0 {
			return framingBareCR, seen
		}
		if len(line) == 0 {
			break // the empty line that ends the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			return framingObsFold, seen // RFC 9112 §5.2: obsolete line folding
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isTokenBytes(line[:colon]) {
			return framingBadName, seen // RFC 9110 §5.1: a field name is a token
		}
		fields++
		if fields > maxFields {
			return framingTooManyFields, seen
		}
		name := line[:colon]
		if isOverrideHeader(name) {
			seen |= sawOverride
		}
		if isHopHeader(name) {
			seen |= sawHop
		}
		switch len(name) {
		case len(nameContentLength):
			sawLength = sawLength || bytes.EqualFold(name, nameContentLength)
		case len(nameTransferEncoding):
			sawCoding = sawCoding || bytes.EqualFold(name, nameTransferEncoding)
		}
	}
	if sawCoding {
		// RFC 9112 §6.1: a request with both may be an attempt at request
		// smuggling; §6.3: chunked must be the final coding, and fasthttp
		// accepts nothing but chunked (and the obsolete "identity", which
		// frames nothing and is refused here).
		if sawLength {
			return framingLengthAndChunked, seen
		}
		if h.ContentLength() != -1 {
			return framingNotChunked, seen
		}
	}
	// RFC 9112 §3.2: an HTTP/1.1 request carries exactly one Host.
	// (HTTP/1.0 clients may omit it; an empty one cannot be routed by
	// name, and edge refuses it too.)
	host := h.Host()
	if len(host) == 0 && h.IsHTTP11() {
		return framingNoHost, seen
	}
	if !validHost(host) {
		return framingBadHost, seen
	}
	uri := h.RequestURI()
	if bytes.IndexByte(uri, '#') >= 0 {
		return framingFragment, seen // RFC 9112 §3.2: no fragment in a request-target
	}
	// RFC 9112 §3.2.2 lets the absolute form's authority replace Host; a
	// front proxy that routed on one while a node reads the other could be
	// fooled, so the two must agree.
	if len(uri) > 0 && uri[0] != '/' && uri[0] != '*' {
		if auth, ok := absoluteAuthority(uri); ok && !bytes.EqualFold(auth, host) {
			return framingHostMismatch, seen
		}
	}
	return framingOK, seen
}

// absoluteAuthority returns the authority of an absolute-form target
// ("http://host:port/path").
func absoluteAuthority(uri []byte) ([]byte, bool) {
	i := bytes.Index(uri, []byte("://"))
	if i <= 0 {
		return nil, false
	}
	rest := uri[i+3:]
	end := len(rest)
	for j, c := range rest {
		if c == '/' || c == '?' || c == '#' {
			end = j
			break
		}
	}
	return rest[:end], true
}

// hostChars marks the bytes allowed in Host (RFC 9110 §7.2: uri-host
// [":" port], where uri-host is an IP literal in brackets, an IPv4 address
// or a reg-name of unreserved, pct-encoded and sub-delims characters).
// Userinfo ("user@host") is not allowed there, nor is a path.
var hostChars = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = isUnreserved(byte(c))
	}
	for _, c := range "!$&'()*+,;=%:[]" {
		t[c] = true
	}
	return t
}()

func validHost(h []byte) bool {
	for _, c := range h {
		if !hostChars[c] {
			return false
		}
	}
	return true
}

// tokenChars marks the bytes allowed in a token (RFC 9110 §5.6.2).
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isTokenBytes reports whether b is a non-empty token.
func isTokenBytes(b []byte) bool {
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return len(b) > 0
}
