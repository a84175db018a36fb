// Package cache is edge's shared HTTP cache (RFC 9111): the store (a
// byte-bounded ristretto cache with a tag index), the storage and
// freshness policy as functions over fasthttp headers, cache keys, and
// request coalescing. It knows HTTP caching, not pools or routes: the
// router decides when to look up, fetch and store.
package cache

import (
	"bytes"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Field is one stored header field.
type Field struct {
	Name, Value []byte
}

// Entry is one stored response: one variant of a primary key. It is
// immutable once built, except for its soft-purge mark, so any number of
// goroutines may read it while it is being served.
type Entry struct {
	// Key is the primary cache key (see Keyer); the store compares it on
	// every hit, as ristretto keeps only hashes.
	Key string
	// VaryNames are the request fields (and "cookie:NAME" pseudo-fields)
	// that select this variant: the route's key headers and cookies
	// first, then the fields the response's Vary lists, lower-cased.
	VaryNames []string
	// VaryValues are the request's normalised values of VaryNames, as
	// AppendVaryValue makes them; nil for a field the request lacked.
	VaryValues [][]byte

	// Status is the response status code.
	Status int
	// Header holds the stored end-to-end fields in order, without Age,
	// Content-Length, Transfer-Encoding, hop-by-hop fields, Set-Cookie,
	// and the targeted control and tag fields (unless kept).
	Header []Field
	// Body is the whole response body, copied out of fasthttp's buffers.
	Body []byte
	// Tags are the purge tags the response carried.
	Tags []string

	// RequestTime and ResponseTime are when the request that fetched (or
	// last validated) the response was sent and its answer received
	// (RFC 9111 §4.2.3), Unix nanoseconds.
	RequestTime, ResponseTime int64
	// Date is the Date field in Unix seconds, or ResponseTime's second
	// when the response had none.
	Date int64
	// AgeValue is the Age field received, in seconds (0 if none).
	AgeValue int64
	// Lifetime is the freshness lifetime (RFC 9111 §4.2.1).
	Lifetime time.Duration
	// Heuristic says Lifetime came from §4.2.2 heuristics (or the route's
	// default TTL), not from the response.
	Heuristic bool
	// NoStale forbids serving the entry stale at all (must-revalidate,
	// proxy-revalidate or s-maxage: RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10).
	NoStale bool
	// NoCache requires validation before every use (RFC 9111 §5.2.2.4).
	NoCache bool
	// AuthOK lets the entry answer a request with Authorization (public,
	// s-maxage or must-revalidate: RFC 9111 §3.5).
	AuthOK bool
	// StaleWhileRevalidate and StaleIfError are the windows past Lifetime
	// in which the entry may be served stale (RFC 5861), from the
	// response or the route's defaults.
	StaleWhileRevalidate, StaleIfError time.Duration
	// ETag and LastModified are the validators, nil when absent.
	ETag, LastModified []byte
	// Retain is how long after ResponseTime the store holds the entry:
	// Lifetime (less the age it had when received) plus the longest of
	// the stale windows, the route's grace and, for an entry with a
	// validator, the route's keep.
	Retain time.Duration
	// Size is what the entry costs in the store: key, fields and body.
	Size int64

	// softPurged is the Unix nanosecond time of a soft purge, 0 if none.
	softPurged atomic.Int64
	// id tells entries apart for HitWriter, 0 until it first writes one.
	id atomic.Uint64
}

// SoftPurge marks the entry stale as of now: it is served only where a
// stale response may be (stale-while-revalidate, stale-if-error, grace)
// and revalidated otherwise. Safe for concurrent use.
func (e *Entry) SoftPurge(now time.Time) {
	e.softPurged.CompareAndSwap(0, now.UnixNano())
}

// SoftPurged reports whether SoftPurge was called.
func (e *Entry) SoftPurged() bool { return e.softPurged.Load() != 0 }

// Age is the entry's current age at now (RFC 9111 §4.2.3).
func (e *Entry) Age(now time.Time) time.Duration {
	apparent := max(0, e.ResponseTime/int64(time.Second)-e.Date)
	responseDelay := max(0, e.ResponseTime-e.RequestTime)
	corrected := e.AgeValue*int64(time.Second) + responseDelay
	initial := max(apparent*int64(time.Second), corrected)
	resident := max(0, now.UnixNano()-e.ResponseTime)
	return time.Duration(initial + resident)
}

// TTL is how long the entry stays fresh from now: negative once stale.
// A soft-purged entry is stale.
func (e *Entry) TTL(now time.Time) time.Duration {
	if e.SoftPurged() {
		return min(-time.Nanosecond, e.Lifetime-e.Age(now))
	}
	return e.Lifetime - e.Age(now)
}

// Matches reports whether the entry is the variant for req: every field
// in VaryNames has, normalised, the value stored. buf is scratch space
// and is returned for reuse. It allocates nothing once buf is large
// enough.
func (e *Entry) Matches(req *fasthttp.RequestHeader, buf []byte) (bool, []byte) {
	for i, name := range e.VaryNames {
		buf = AppendVaryValue(buf[:0], req, name)
		want := e.VaryValues[i]
		if len(want) == 0 || len(buf) == 0 {
			// Absent matches only absent, and an empty field only an
			// empty field (RFC 9111 §4.1).
			if (want == nil) != absent(req, name) || len(buf) != len(want) {
				return false, buf
			}
			continue
		}
		if !bytes.Equal(buf, want) {
			return false, buf
		}
	}
	return true, buf
}

// absent reports whether the request lacks the (pseudo-)field name.
func absent(req *fasthttp.RequestHeader, name string) bool {
	if c, ok := cookieName(name); ok {
		return len(req.Cookie(c)) == 0 && !hasCookie(req, c)
	}
	return len(req.Peek(name)) == 0 && !hasField(req, name)
}

// CookiePrefix marks a VaryNames item that is a cookie's value.
const CookiePrefix = "cookie:"

func cookieName(name string) (string, bool) {
	if len(name) > len(CookiePrefix) && name[:len(CookiePrefix)] == CookiePrefix {
		return name[len(CookiePrefix):], true
	}
	return "", false
}

// hasField reports whether a field is present, even with an empty value.
func hasField(req *fasthttp.RequestHeader, name string) bool {
	found := false
	for k := range req.All() {
		if !found && equalFold(k, name) {
			found = true
		}
	}
	return found
}

// hasCookie reports whether a cookie is present, even with an empty value.
func hasCookie(req *fasthttp.RequestHeader, name string) bool {
	found := false
	for k := range req.Cookies() {
		if !found && string(k) == name {
			found = true
		}
	}
	return found
}

// AppendVaryValue appends the request's normalised value of a Vary field
// (or of a "cookie:NAME" pseudo-field) to dst (RFC 9111 §4.1): all field
// lines joined with ",", optional whitespace around the list elements
// removed. Values are compared case-sensitively, as the RFC allows a
// cache to be stricter than the field's own semantics.
func AppendVaryValue(dst []byte, req *fasthttp.RequestHeader, name string) []byte {
	if c, ok := cookieName(name); ok {
		return append(dst, req.Cookie(c)...)
	}
	start := len(dst)
	first := true
	for k, v := range req.All() {
		if !equalFold(k, name) {
			continue
		}
		for elem := range bytes.SplitSeq(v, comma) {
			elem = bytes.Trim(elem, " \t")
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, elem...)
		}
	}
	if strings.EqualFold(name, "accept-language") {
		dst = normalizeLanguages(dst, start)
	}
	return dst
}

// normalizeLanguages rewrites the Accept-Language list in dst[start:] so
// that lists that mean the same select the same variant (RFC 9111 §4.1
// allows normalising by the field's semantics; RFC 9110 §12.5.4): tags
// lower-cased, whitespace dropped, elements ordered by weight (highest
// first) then by tag, "q=1" left out. Lists of more than 16 elements, or
// with parameters other than q, are left as they are. Allocates nothing
// while dst has room for a second copy.
func normalizeLanguages(dst []byte, start int) []byte {
	type lang struct {
		tag []byte
		q   []byte // the weight's text, nil for 1
	}
	var langs [16]lang
	n := 0
	list := dst[start:]
	for elem := range bytes.SplitSeq(list, comma) {
		if len(elem) == 0 {
			continue
		}
		if n == len(langs) {
			return dst
		}
		tag, params, _ := bytes.Cut(elem, []byte(";"))
		l := lang{tag: bytes.TrimRight(tag, " \t")}
		if len(params) > 0 {
			params = bytes.TrimSpace(params)
			if len(params) < 2 || (params[0] != 'q' && params[0] != 'Q') || params[1] != '=' {
				return dst
			}
			l.q = bytes.TrimSpace(params[2:])
			if bytes.Equal(l.q, []byte("1")) || bytes.Equal(l.q, []byte("1.0")) || bytes.Equal(l.q, []byte("1.00")) || bytes.Equal(l.q, []byte("1.000")) {
				l.q = nil
			}
		}
		langs[n] = l
		n++
	}
	weight := func(q []byte) []byte {
		if q == nil {
			return []byte("1")
		}
		return q
	}
	less := func(a, b lang) bool {
		// Weights are compared as text: "0.8" > "0.75" holds for the
		// qvalue grammar (a leading digit, then up to three decimals).
		if c := bytes.Compare(weight(a.q), weight(b.q)); c != 0 {
			return c > 0
		}
		return bytesLessFold(a.tag, b.tag)
	}
	for i := 1; i < n; i++ { // insertion sort: n ≤ 16, no allocation
		for j := i; j > 0 && less(langs[j], langs[j-1]); j-- {
			langs[j], langs[j-1] = langs[j-1], langs[j]
		}
	}
	out := len(dst)
	for i := 0; i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		for _, c := range langs[i].tag {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
		if langs[i].q != nil {
			dst = append(dst, ";q="...)
			dst = append(dst, langs[i].q...)
		}
	}
	return append(dst[:start], dst[out:]...)
}

// bytesLessFold orders ASCII strings ignoring case.
func bytesLessFold(a, b []byte) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return x < y
		}
	}
	return len(a) < len(b)
}

var comma = []byte(",")

// equalFold compares an ASCII field name with a lower- or mixed-case name
// without allocating.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
