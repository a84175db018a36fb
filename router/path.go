package router

import (
	"bytes"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// Errors of path normalisation; both are answered with 400.
var (
	errBadPercent   = errors.New("invalid percent-encoding in path")
	errEncodedSlash = errors.New("encoded slash in path")
)

// pathPolicy is how request paths are normalised before routing. The
// normalised path is the one routes match and the one sent to the node, so
// that a path a route protects cannot be reached through another spelling
// of it (/%61dmin, /x/../admin, //admin). It is immutable; any goroutine
// may use it.
type pathPolicy struct {
	mergeSlashes   bool
	encodedSlashes string // config.EncodedSlashes*
}

func newPathPolicy(s config.Server) pathPolicy {
	return pathPolicy{mergeSlashes: s.MergeSlashes == nil || *s.MergeSlashes, encodedSlashes: s.EncodedSlashes}
}

// normalize appends the normal form of the path p (the request-target's
// path, starting with "/", without query) to dst:
//
//  1. percent-encoded unreserved characters (ALPHA, DIGIT, "-", ".", "_",
//     "~") are decoded and every other percent-encoding is written with
//     upper-case hex digits (RFC 3986 §6.2.2.1, §6.2.2.2); an invalid one
//     is an error;
//  2. an encoded slash (%2F) is kept, decoded or refused, as configured;
//  3. dot-segments are removed (RFC 3986 §5.2.4), after decoding, so
//     "%2e%2e" counts as "..";
//  4. empty segments ("//") are merged when configured.
//
// Other bytes are kept as they are. dst is reused when it has room.
func (pp pathPolicy) normalize(dst, p []byte) ([]byte, error) {
	// Step 1 and 2 write the decoded path after dst's current content,
	// then steps 3 and 4 rewrite it in place: the output is never longer
	// than the decoded input, and each segment is copied towards the front.
	base := len(dst)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(p) {
			return dst[:base], errBadPercent
		}
		hi, ok1 := hexValue(p[i+1])
		lo, ok2 := hexValue(p[i+2])
		if !ok1 || !ok2 {
			return dst[:base], errBadPercent
		}
		i += 2
		v := hi<<4 | lo
		switch {
		case isUnreserved(v):
			dst = append(dst, v)
		case v == '/' && pp.encodedSlashes == config.EncodedSlashesReject:
			return dst[:base], errEncodedSlash
		case v == '/' && pp.encodedSlashes == config.EncodedSlashesDecode:
			dst = append(dst, '/')
		default:
			dst = append(dst, '%', upperHex[v>>4], upperHex[v&15])
		}
	}
	res := pp.removeDots(dst[base:]) // in place: a prefix of dst[base:]
	return dst[:base+len(res)], nil
}

// removeDots removes dot-segments (and, when configured, empty segments)
// from the absolute path b, in place, and returns the result.
func (pp pathPolicy) removeDots(b []byte) []byte {
	if len(b) == 0 || b[0] != '/' {
		return b
	}
	out := b[:1] // always ends with '/' before a segment is appended
	rest := b[1:]
	for {
		seg := rest
		last := true
		for j, c := range rest {
			if c == '/' {
				seg, rest, last = rest[:j], rest[j+1:], false
				break
			}
		}
		switch {
		case len(seg) == 1 && seg[0] == '.':
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			if len(out) > 1 {
				j := len(out) - 2
				for out[j] != '/' {
					j--
				}
				out = out[:j+1]
			}
		case len(seg) == 0 && !last && pp.mergeSlashes:
		default:
			out = append(out, seg...) // copies forward within b: out never passes rest
			if !last {
				out = append(out, '/')
			}
		}
		if last {
			return out
		}
	}
}

const upperHex = "0123456789ABCDEF"

// isUnreserved reports RFC 3986 §2.3 unreserved characters.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// canonicalConfigPath turns a path from the configuration into the form
// normalize gives requests: bytes that a request-target cannot carry
// literally (non-ASCII, spaces, controls, '"', '<', '>', '\', '^', '`',
// '{', '|', '}') are percent-encoded, as a browser sends them.
// Validation has already refused dot-segments and empty segments.
func canonicalConfigPath(p string) []byte {
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) {
			if hi, ok1 := hexValue(p[i+1]); ok1 {
				if lo, ok2 := hexValue(p[i+2]); ok2 {
					v := hi<<4 | lo
					if isUnreserved(v) {
						out = append(out, v)
					} else {
						out = append(out, '%', upperHex[v>>4], upperHex[v&15])
					}
					i += 2
					continue
				}
			}
		}
		if c <= ' ' || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}' {
			out = append(out, '%', upperHex[c>>4], upperHex[c&15])
			continue
		}
		out = append(out, c)
	}
	return out
}

// normalizeTarget normalises the request's path (see pathPolicy) into
// sc.path and, when that changes the request-target or it was in absolute
// form, rewrites the target to origin form with the normal path, so that
// the node receives the path that was routed. It returns false for a path
// that cannot be normalised (400).
func (s *Server) normalizeTarget(ctx *fasthttp.RequestCtx, snap *snapshot, sc *scratch) bool {
	raw := ctx.Request.Header.RequestURI()
	target := raw
	if len(raw) > 0 && raw[0] != '/' {
		if len(raw) == 1 && raw[0] == '*' {
			sc.path = append(sc.path[:0], '*') // OPTIONS * (RFC 9112 §3.2.4)
			return true
		}
		target = originForm(raw)
	}
	path, query := target, []byte(nil)
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		path, query = target[:i], target[i:]
	}
	var err error
	if sc.path, err = snap.paths.normalize(sc.path[:0], path); err != nil {
		return false
	}
	if len(target) != len(raw) || !bytes.Equal(sc.path, path) {
		sc.buf = append(append(sc.buf[:0], sc.path...), query...)
		ctx.Request.SetRequestURIBytes(sc.buf)
	}
	return true
}
