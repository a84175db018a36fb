package cache

import (
	"bytes"
	"iter"
	"math"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Policy is a route's storage and freshness policy. It is immutable after
// construction: any number of goroutines may use one at once.
type Policy struct {
	// ControlHeaders are the targeted cache-control fields (RFC 9213),
	// e.g. CDN-Cache-Control, Surrogate-Control. The first one present
	// (and valid) governs storage and freshness instead of Cache-Control
	// and Expires (RFC 9213 §2.2); Cache-Control still reaches the
	// client. They are never stored and StripForClient removes them.
	// Surrogate-Control uses the Cache-Control syntax, with content="..."
	// and ";target" suffixes ignored; the others are Structured Field
	// Dictionaries (RFC 8941).
	ControlHeaders []string
	// TagHeaders are the response fields carrying purge tags:
	// Surrogate-Key is space-separated, the others (X-Magento-Tags,
	// Cache-Tag) comma-separated.
	TagHeaders []string
	// KeepTagHeaders stores the tag fields and passes them to clients.
	KeepTagHeaders bool
	// HeuristicFraction of Date minus Last-Modified is the lifetime of a
	// response without explicit freshness (RFC 9111 §4.2.2); 0 turns the
	// heuristic off. HeuristicMax caps it (0: no cap).
	HeuristicFraction float64
	HeuristicMax      time.Duration
	// DefaultTTL, when positive, is the lifetime of a response without
	// explicit freshness that may be cached heuristically (its status is
	// heuristically cacheable, or it is public); it takes precedence over
	// the Last-Modified heuristic.
	DefaultTTL time.Duration
	// StaleWhileRevalidate and StaleIfError are the RFC 5861 windows of a
	// response that sets none.
	StaleWhileRevalidate, StaleIfError time.Duration
	// Grace and Keep: see Entry.Retain and CanServeStaleOnError.
	Grace, Keep time.Duration
	// StripSetCookie stores responses with Set-Cookie, without the field;
	// otherwise they are not stored.
	StripSetCookie bool
	// MaxObjectSize is the largest body stored, in bytes; 0: no limit.
	MaxObjectSize int64
	// KeyVary are the route's own key fields: request field names, and
	// "cookie:NAME" for a cookie's value. They come first in every
	// entry's VaryNames.
	KeyVary []string
}

// Reasons a response is not stored: a bounded set, used as metric labels.
const (
	ReasonMethod        = "method"
	ReasonStatus        = "status"
	ReasonNoStore       = "no_store"
	ReasonPrivate       = "private"
	ReasonAuthorization = "authorization"
	ReasonSetCookie     = "set_cookie"
	ReasonVaryStar      = "vary_star"
	ReasonTooLarge      = "too_large"
	ReasonNoLifetime    = "no_lifetime"
)

// fieldsOf adapts a response header to the field iterator respInfo reads.
func fieldsOf(h *fasthttp.ResponseHeader) iter.Seq2[[]byte, []byte] { return h.All() }

// storedFields iterates over stored fields.
func storedFields(fs []Field) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, f := range fs {
			if !yield(f.Name, f.Value) {
				return
			}
		}
	}
}

// respInfo is what the policy reads from a response's fields: views into
// the fields, valid while they are.
type respInfo struct {
	cc        [][]byte   // Cache-Control lines
	targeted  [][][]byte // lines of each of Policy.ControlHeaders
	expires   []byte
	hasExp    bool
	date      []byte
	hasDate   bool
	age       []byte
	hasAge    bool
	etag      []byte
	lm        []byte
	vary      [][]byte
	conn      [][]byte // names listed in Connection
	setCookie bool
}

func (p *Policy) collect(fields iter.Seq2[[]byte, []byte]) respInfo {
	var ri respInfo
	ri.targeted = make([][][]byte, len(p.ControlHeaders))
	for k, v := range fields {
		switch {
		case equalFold(k, "cache-control"):
			ri.cc = append(ri.cc, v)
		case equalFold(k, "expires"):
			if !ri.hasExp {
				ri.expires, ri.hasExp = v, true
			}
		case equalFold(k, "date"):
			if !ri.hasDate {
				ri.date, ri.hasDate = v, true
			}
		case equalFold(k, "age"):
			if !ri.hasAge {
				ri.age, ri.hasAge = v, true
			}
		case equalFold(k, "etag"):
			if ri.etag == nil {
				ri.etag = v
			}
		case equalFold(k, "last-modified"):
			if ri.lm == nil {
				ri.lm = v
			}
		case equalFold(k, "vary"):
			ri.vary = append(ri.vary, v)
		case equalFold(k, "connection"):
			ri.conn = append(ri.conn, splitList(v)...)
		case equalFold(k, "set-cookie"):
			ri.setCookie = true
		default:
			for i, name := range p.ControlHeaders {
				if equalFold(k, name) {
					ri.targeted[i] = append(ri.targeted[i], v)
					break
				}
			}
		}
	}
	return ri
}

// hasFreshnessFields reports whether the fields carry any freshness
// information: Cache-Control, Expires or a targeted field.
func (ri *respInfo) hasFreshnessFields() bool {
	if len(ri.cc) > 0 || ri.hasExp {
		return true
	}
	for _, t := range ri.targeted {
		if len(t) > 0 {
			return true
		}
	}
	return false
}

// verdict is the policy's reading of a response.
type verdict struct {
	d        ResponseDirectives // the governing directives
	cc       ResponseDirectives // Cache-Control's, for the field exclusions
	targeted bool               // d came from a targeted field
	date     int64              // Unix seconds
	age      int64
	// explicit: max-age, s-maxage, Expires or a targeted field give
	// the response explicit permission and lifetime (RFC 9111 §3).
	explicit  bool
	lifetime  time.Duration
	heuristic bool
	swr, sie  time.Duration
	noStale   bool
	noCache   bool
	authOK    bool
	validator bool
	varyStar  bool
}

// judge reads ri for a response with status received at respTime.
func (p *Policy) judge(ri *respInfo, status int, respTime time.Time) verdict {
	var v verdict
	v.cc = ParseResponseDirectives(ri.cc...)
	v.d = v.cc
	// RFC 9213 §2.2: the first targeted field with a valid, non-empty
	// value governs, and Cache-Control and Expires are then ignored.
	for i, lines := range ri.targeted {
		if len(lines) == 0 {
			continue
		}
		if d, ok := parseTargeted(p.ControlHeaders[i], lines); ok {
			v.d, v.targeted = d, true
			break
		}
	}
	v.date = respTime.Unix()
	if ri.hasDate {
		if t, ok := parseHTTPDate(ri.date); ok {
			// Kept within 2^31 s of respTime, so that Entry.Age's
			// nanosecond arithmetic cannot overflow (RFC 9111 §1.2.2).
			v.date = min(max(t, v.date-maxDeltaSeconds), v.date+maxDeltaSeconds)
		}
	}
	if ri.hasAge {
		v.age = parseAge(ri.age)
	}
	v.validator = ri.etag != nil || ri.lm != nil
	for _, line := range ri.vary {
		for _, name := range splitList(line) {
			if len(name) == 1 && name[0] == '*' {
				v.varyStar = true
			}
		}
	}

	// RFC 9111 §4.2.1: a shared cache uses s-maxage, then max-age, then
	// Expires minus Date.
	const maxLifetime = maxDeltaSeconds * time.Second
	switch {
	case v.d.SMaxAge >= 0:
		v.explicit, v.lifetime = true, time.Duration(v.d.SMaxAge)*time.Second
	case v.d.MaxAge >= 0:
		v.explicit, v.lifetime = true, time.Duration(v.d.MaxAge)*time.Second
	case !v.targeted && ri.hasExp:
		v.explicit = true
		// RFC 9111 §5.3: an invalid Expires, such as "0", is in the past.
		if exp, ok := parseHTTPDate(ri.expires); ok {
			v.lifetime = time.Duration(min(max(exp-v.date, 0), maxDeltaSeconds)) * time.Second
		}
	case heuristicStatus(status) || v.d.Public:
		// RFC 9111 §4.2.2.
		v.heuristic = true
		if p.DefaultTTL > 0 {
			v.lifetime = p.DefaultTTL
		} else if p.HeuristicFraction > 0 && ri.lm != nil {
			if lm, ok := parseHTTPDate(ri.lm); ok && v.date > lm {
				f := p.HeuristicFraction * float64(v.date-lm) * float64(time.Second)
				v.lifetime = time.Duration(min(f, float64(maxLifetime)))
				if p.HeuristicMax > 0 {
					v.lifetime = min(v.lifetime, p.HeuristicMax)
				}
			}
		}
	}
	if v.targeted {
		v.explicit = true // a cache extension that allows storing (RFC 9111 §3)
	}
	v.lifetime = min(v.lifetime, maxLifetime)

	v.swr, v.sie = p.StaleWhileRevalidate, p.StaleIfError
	if v.d.StaleWhileRevalidate >= 0 {
		v.swr = time.Duration(v.d.StaleWhileRevalidate) * time.Second
	}
	if v.d.StaleIfError >= 0 {
		v.sie = time.Duration(v.d.StaleIfError) * time.Second
	}
	// RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10: no stale use at all.
	v.noStale = v.d.MustRevalidate || v.d.ProxyRevalidate || v.d.SMaxAge >= 0
	v.noCache = v.d.NoCache
	// RFC 9111 §3.5.
	v.authOK = v.d.Public || v.d.SMaxAge >= 0 || v.d.MustRevalidate
	return v
}

// retain is how long past its ResponseTime a response judged v, with the
// given initial age, is worth holding (see Entry.Retain). Stale windows
// that can never be used (no-cache, must-revalidate, ...) are left out.
func (p *Policy) retain(v *verdict, initialAge time.Duration) time.Duration {
	fresh := max(0, v.lifetime-initialAge)
	var extra time.Duration
	if !v.noStale && !v.noCache {
		extra = max(v.swr, v.sie, p.Grace)
	}
	if v.validator {
		extra = max(extra, p.Keep)
	}
	return fresh + extra
}

// initialAge is a response's age when received (RFC 9111 §4.2.3).
func initialAge(date, ageValue int64, reqTime, respTime time.Time) time.Duration {
	e := Entry{Date: date, AgeValue: ageValue, RequestTime: reqTime.UnixNano(), ResponseTime: respTime.UnixNano()}
	return e.Age(respTime)
}

// Storable decides from the request and response headers alone (before
// the body is read) whether the response may be stored at now, and
// returns "" or the reason it may not (RFC 9111 §3):
//
//   - only responses to GET are stored (HEAD is answered from a stored
//     GET but not stored);
//   - the status must be final, and neither 206 nor 304;
//   - no-store is obeyed, unless must-understand is present and the
//     status is one this cache understands (§5.2.2.3); must-understand
//     with an unknown status is not stored;
//   - unqualified private: a shared cache does not store (§5.2.2.7);
//   - with Authorization in the request, only public, s-maxage or
//     must-revalidate responses are stored (§3.5);
//   - Vary: * is never matched (§4.1), so not stored;
//   - Set-Cookie is not stored unless StripSetCookie;
//   - a Content-Length above MaxObjectSize is too large;
//   - without explicit freshness (max-age, s-maxage, Expires, a targeted
//     field) or public, only heuristically cacheable statuses are stored
//     (RFC 9110 §15.1);
//   - a response that could never be reused (neither fresh time, nor a
//     validator with a Keep window, nor a usable stale window; or
//     no-cache without a validator) is not stored.
//
// Safe for concurrent use.
func (p *Policy) Storable(req *fasthttp.RequestHeader, resp *fasthttp.ResponseHeader, now time.Time) string {
	_, _, reason := p.storable(req, resp, now, now)
	return reason
}

func (p *Policy) storable(req *fasthttp.RequestHeader, resp *fasthttp.ResponseHeader, reqTime, respTime time.Time) (respInfo, verdict, string) {
	if !req.IsGet() {
		return respInfo{}, verdict{}, ReasonMethod
	}
	status := resp.StatusCode()
	if status < 200 || status > 599 || status == fasthttp.StatusPartialContent || status == fasthttp.StatusNotModified {
		return respInfo{}, verdict{}, ReasonStatus
	}
	ri := p.collect(fieldsOf(resp))
	v := p.judge(&ri, status, respTime)
	if reason := p.refuse(&v, status); reason != "" {
		return ri, v, reason
	}
	if hasField(req, "authorization") && !v.authOK {
		return ri, v, ReasonAuthorization
	}
	if v.varyStar {
		return ri, v, ReasonVaryStar
	}
	if ri.setCookie && !p.StripSetCookie {
		return ri, v, ReasonSetCookie
	}
	if p.MaxObjectSize > 0 && int64(resp.ContentLength()) > p.MaxObjectSize {
		return ri, v, ReasonTooLarge
	}
	if !v.explicit && !v.d.Public && !heuristicStatus(status) {
		return ri, v, ReasonStatus
	}
	if v.noCache && !v.validator {
		return ri, v, ReasonNoLifetime
	}
	if p.retain(&v, initialAge(v.date, v.age, reqTime, respTime)) <= 0 {
		return ri, v, ReasonNoLifetime
	}
	return ri, v, ""
}

// refuse applies the directive rules shared by Storable and Refresh.
func (p *Policy) refuse(v *verdict, status int) string {
	if v.d.MustUnderstand && !understoodStatus(status) {
		return ReasonStatus
	}
	if v.d.NoStore && !v.d.MustUnderstand {
		return ReasonNoStore
	}
	if v.d.Private {
		return ReasonPrivate
	}
	return ""
}

// NewEntry builds the Entry for a response to req, received whole with
// body, copying everything it keeps out of fasthttp's buffers. key is the
// primary key (see Keyer); reqTime and respTime are when the request was
// sent and the response headers arrived. It returns nil and the reason
// when the response may not be stored (Storable, or a body larger than
// MaxObjectSize).
//
// The Entry holds: VaryNames (KeyVary, then the fields of every Vary
// line, lower-cased, without duplicates) and the request's values of
// them; Header, the fields in order without the hop-by-hop ones and
// those listed in Connection (RFC 9111 §3.1), Age, Content-Length,
// Transfer-Encoding, Set-Cookie, the fields named by private="..." and
// no-cache="..." (§5.2.2.4, §5.2.2.7), the targeted control fields and,
// unless KeepTagHeaders, the tag fields; a Date field is added when the
// response had none (RFC 9110 §6.6.1). The default Content-Type fasthttp
// reports for a header without SetNoDefaultContentType(true) is not
// stored: only fields the node sent are.
//
// Safe for concurrent use (on distinct req and resp).
func (p *Policy) NewEntry(key string, req *fasthttp.RequestHeader, resp *fasthttp.ResponseHeader, body []byte, reqTime, respTime time.Time) (*Entry, string) {
	ri, v, reason := p.storable(req, resp, reqTime, respTime)
	if reason != "" {
		return nil, reason
	}
	if p.MaxObjectSize > 0 && int64(len(body)) > p.MaxObjectSize {
		return nil, ReasonTooLarge
	}
	e := &Entry{
		Key:          strings.Clone(key),
		Status:       resp.StatusCode(),
		Body:         cloneExact(body),
		RequestTime:  reqTime.UnixNano(),
		ResponseTime: respTime.UnixNano(),
	}
	e.Header = p.storeFields(nil, fieldsOf(resp), &ri, &v, respTime)
	e.Tags = p.tags(fieldsOf(resp))
	e.VaryNames, e.VaryValues = p.vary(req, ri.vary)
	p.fill(e, &v, ri.etag, ri.lm)
	return e, ""
}

// fill sets e's freshness, validators, Retain and Size from v.
func (p *Policy) fill(e *Entry, v *verdict, etag, lm []byte) {
	e.Date = v.date
	e.AgeValue = v.age
	e.Lifetime = v.lifetime
	e.Heuristic = v.heuristic
	e.StaleWhileRevalidate, e.StaleIfError = v.swr, v.sie
	e.NoStale, e.NoCache, e.AuthOK = v.noStale, v.noCache, v.authOK
	e.ETag, e.LastModified = cloneOrNil(etag), cloneOrNil(lm)
	e.Retain = p.retain(v, e.Age(time.Unix(0, e.ResponseTime)))
	size := int64(len(e.Key) + len(e.Body))
	for _, f := range e.Header {
		size += int64(len(f.Name) + len(f.Value))
	}
	e.Size = size
}

// cloneExact copies b into a slice whose capacity is its length, so that
// no append by a reader can reach memory another reader sees.
func cloneExact(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c[:len(b):len(b)]
}

func cloneOrNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return cloneExact(b)
}

// hopByHop are the fields a cache never stores (RFC 9110 §7.6.1, RFC 9111
// §3.1), with those it makes itself (Age, Content-Length) and Set-Cookie.
var hopByHop = []string{
	"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding",
	"upgrade", "trailer", "proxy-authenticate", "proxy-authentication-info",
	"proxy-authorization", "age", "content-length", "set-cookie",
}

// defaultContentType is the Content-Type fasthttp reports for a response
// without one, unless told not to: the very slice, which tells an
// invented field from one the node sent with the same value.
var defaultContentType = new(fasthttp.ResponseHeader).ContentType()

// keepField reports whether a field k: val is stored.
func (p *Policy) keepField(k, val []byte, ri *respInfo, v *verdict) bool {
	if len(val) > 0 && len(defaultContentType) > 0 && &val[0] == &defaultContentType[0] {
		return false // invented by fasthttp, not sent
	}
	for _, n := range hopByHop {
		if equalFold(k, n) {
			return false
		}
	}
	for _, n := range ri.conn {
		if equalFoldBytes(k, n) {
			return false
		}
	}
	for _, list := range [][]string{v.d.NoCacheFields, v.d.PrivateFields, v.cc.NoCacheFields, v.cc.PrivateFields} {
		for _, n := range list {
			if equalFold(k, n) {
				return false
			}
		}
	}
	for _, n := range p.ControlHeaders {
		if equalFold(k, n) {
			return false
		}
	}
	if !p.KeepTagHeaders {
		for _, n := range p.TagHeaders {
			if equalFold(k, n) {
				return false
			}
		}
	}
	return true
}

// storeFields returns base's fields, except those the kept fields of
// fields replace, followed by the kept fields, and a Date field made from
// respTime when those have none. Names and values share one allocation.
func (p *Policy) storeFields(base []Field, fields iter.Seq2[[]byte, []byte], ri *respInfo, v *verdict, respTime time.Time) []Field {
	var names [][]byte // lower-cased names of the new fields
	n, count := 0, 0
	newDate := false
	for k, val := range fields {
		if !p.keepField(k, val, ri, v) {
			continue
		}
		n += len(k) + len(val)
		count++
		if equalFold(k, "date") {
			newDate = true
		}
		names = append(names, k)
	}
	// A stored Date is always replaced: by the new one, or by respTime
	// when the new fields have none (RFC 9110 §6.6.1).
	replaced := func(name []byte) bool {
		if equalFold(name, "date") {
			return true
		}
		for _, k := range names {
			if equalFoldBytes(name, k) {
				return true
			}
		}
		return false
	}
	haveDate := newDate
	for _, f := range base {
		if replaced(f.Name) {
			continue
		}
		n += len(f.Name) + len(f.Value)
		count++
	}
	const dateLen = len("Date") + len(time.RFC1123)
	if !haveDate {
		n += dateLen
		count++
	}
	buf := make([]byte, 0, n)
	out := make([]Field, 0, count)
	add := func(k, val []byte) {
		s := len(buf)
		buf = append(buf, k...)
		m := len(buf)
		buf = append(buf, val...)
		out = append(out, Field{Name: buf[s:m:m], Value: buf[m:len(buf):len(buf)]})
	}
	for _, f := range base {
		if !replaced(f.Name) {
			add(f.Name, f.Value)
		}
	}
	for k, val := range fields {
		if p.keepField(k, val, ri, v) {
			add(k, val)
		}
	}
	if !haveDate {
		var d [len(time.RFC1123)]byte
		add([]byte("Date"), fasthttp.AppendHTTPDate(d[:0], respTime))
	}
	return out
}

// tags returns the purge tags of the response's tag fields: trimmed,
// without empty ones and duplicates.
func (p *Policy) tags(fields iter.Seq2[[]byte, []byte]) []string {
	var tags []string
	for k, val := range fields {
		for _, name := range p.TagHeaders {
			if !equalFold(k, name) {
				continue
			}
			sep := byte(',')
			if equalFold(k, "surrogate-key") {
				sep = ' '
			}
			for len(val) > 0 {
				i := indexByte(val, sep)
				var t []byte
				if i < 0 {
					t, val = val, nil
				} else {
					t, val = val[:i], val[i+1:]
				}
				t = bytes.TrimSpace(t)
				if len(t) == 0 {
					continue
				}
				dup := false
				for _, s := range tags {
					if s == string(t) {
						dup = true
						break
					}
				}
				if !dup {
					tags = append(tags, string(t))
				}
			}
			break
		}
	}
	return tags
}

// vary returns the entry's VaryNames and the request's values of them.
func (p *Policy) vary(req *fasthttp.RequestHeader, varyLines [][]byte) ([]string, [][]byte) {
	var names []string
	add := func(n string) {
		for _, s := range names {
			if s == n {
				return
			}
		}
		names = append(names, n)
	}
	for _, n := range p.KeyVary {
		if c, ok := cookieName(n); ok {
			add(CookiePrefix + c)
		} else {
			add(strings.ToLower(n))
		}
	}
	for _, line := range varyLines {
		for _, n := range splitList(line) {
			add(strings.ToLower(string(n)))
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	values := make([][]byte, len(names))
	for i, n := range names {
		if absent(req, n) {
			continue
		}
		values[i] = AppendVaryValue([]byte{}, req, n)
	}
	return names, values
}

// splitList splits a comma-separated field line into its trimmed,
// non-empty elements.
func splitList(line []byte) [][]byte {
	var out [][]byte
	for len(line) > 0 {
		i := indexByte(line, ',')
		var el []byte
		if i < 0 {
			el, line = line, nil
		} else {
			el, line = line[:i], line[i+1:]
		}
		if el = trimOWS(el); len(el) > 0 {
			out = append(out, el)
		}
	}
	return out
}

// equalFoldBytes compares two ASCII field names case-insensitively.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// Refresh returns a new Entry for old after a 304 (Not Modified) answer
// to a conditional request made with AddValidators (RFC 9111 §4.3.4):
// the stored fields are updated with those of the 304 (each field the 304
// carries replaces all stored lines of that name; Content-Length and the
// fields NewEntry never stores are not taken; a 304 without Date gets
// respTime's), the times are the new ones, and freshness is recomputed
// from the merged fields and the 304's targeted field. When the 304
// carries no freshness information at all (no Cache-Control, Expires or
// targeted field), old's explicit lifetime and directives are kept, as
// the targeted field they may have come from is not stored. Body, key,
// status and vary are old's; tags are the 304's when it has tag fields,
// else old's. old is not modified.
//
// The result always answers the request that revalidated old. Its Retain
// is 0, so that the store refuses it, when it must not be stored: the
// 304's validator does not select old (§4.3.4: a strong ETag must equal
// old's, a weak one match it weakly, a Last-Modified be the same date),
// or the merged response may no longer be stored (no-store, private, or
// nothing left to reuse). Safe for concurrent use.
func (p *Policy) Refresh(old *Entry, resp *fasthttp.ResponseHeader, reqTime, respTime time.Time) *Entry {
	ri304 := p.collect(fieldsOf(resp))
	v304 := p.judge(&ri304, old.Status, respTime)
	merged := p.storeFields(old.Header, fieldsOf(resp), &ri304, &v304, respTime)
	ri := p.collect(storedFields(merged))
	ri.targeted = ri304.targeted
	ri.age, ri.hasAge = ri304.age, ri304.hasAge
	v := p.judge(&ri, old.Status, respTime)
	if !ri304.hasFreshnessFields() {
		v.d, v.targeted = emptyResponseDirectives(), false
		v.noStale, v.noCache, v.authOK = old.NoStale, old.NoCache, old.AuthOK
		v.swr, v.sie = old.StaleWhileRevalidate, old.StaleIfError
		if !old.Heuristic {
			v.lifetime, v.heuristic = old.Lifetime, false
		}
	}
	e := &Entry{
		Key:          old.Key,
		VaryNames:    old.VaryNames,
		VaryValues:   old.VaryValues,
		Status:       old.Status,
		Header:       merged,
		Body:         old.Body,
		Tags:         old.Tags,
		RequestTime:  reqTime.UnixNano(),
		ResponseTime: respTime.UnixNano(),
	}
	if t := p.tags(fieldsOf(resp)); t != nil {
		e.Tags = t
	}
	p.fill(e, &v, ri.etag, ri.lm)
	if !validatorsMatch(old, &ri304) || p.refuse(&v, old.Status) != "" {
		e.Retain = 0
	}
	return e
}

// validatorsMatch reports whether a 304 with fields ri selects old for
// update (RFC 9111 §4.3.4).
func validatorsMatch(old *Entry, ri *respInfo) bool {
	if ri.etag != nil {
		if old.ETag == nil {
			return false
		}
		if isWeak(ri.etag) {
			return weakMatch(old.ETag, ri.etag)
		}
		return strongMatch(old.ETag, ri.etag)
	}
	if ri.lm != nil && old.LastModified != nil {
		a, okA := parseHTTPDate(ri.lm)
		b, okB := parseHTTPDate(old.LastModified)
		return okA && okB && a == b
	}
	return true
}

// StripForClient removes from a response on its way to the client the
// targeted control fields and, unless KeepTagHeaders, the tag fields. It
// is meant for every answer of a cached route, stored or not. Safe for
// concurrent use on distinct responses.
func (p *Policy) StripForClient(resp *fasthttp.ResponseHeader) {
	for _, n := range p.ControlHeaders {
		resp.Del(n)
	}
	if !p.KeepTagHeaders {
		for _, n := range p.TagHeaders {
			resp.Del(n)
		}
	}
}

// Use is what a stored response may do for a request.
type Use int

const (
	// UseFresh: the entry is fresh enough for the request; serve it.
	UseFresh Use = iota
	// UseStale: the entry is stale but the request's max-stale accepts
	// it (RFC 9111 §5.2.1.2); serve it, still a hit.
	UseStale
	// UseRevalidate: the entry may not be served as is; contact a node
	// (conditionally, with AddValidators, when it has validators).
	UseRevalidate
)

// String names u for logs and metric labels.
func (u Use) String() string {
	switch u {
	case UseFresh:
		return "fresh"
	case UseStale:
		return "stale"
	case UseRevalidate:
		return "revalidate"
	}
	return "unknown"
}

// Usable says whether e may answer a request with directives rd at now
// without contacting a node (RFC 9111 §4, §4.2.4, §5.2.1). It returns
// UseRevalidate when: e.NoCache (§5.2.2.4); the request has no-cache
// (§5.2.1.4); the request has Authorization (hasAuth) and e is not
// AuthOK, so that authenticated requests bypass shared responses;
// e's age exceeds the request's max-age (§5.2.1.1); e stays fresh less
// than the request's min-fresh (§5.2.1.3); or e is stale and max-stale
// does not cover it (never for must-revalidate, proxy-revalidate or
// s-maxage, §5.2.2.2, nor for a soft-purged entry). Stale-while-
// revalidate and stale-if-error are the caller's to apply after
// UseRevalidate, when StaleAllowed says the request permits it. Safe for
// concurrent use.
func Usable(e *Entry, rd RequestDirectives, hasAuth bool, now time.Time) Use {
	if e.NoCache || rd.NoCache || (hasAuth && !e.AuthOK) {
		return UseRevalidate
	}
	age := e.Age(now)
	ttl := e.TTL(now)
	if rd.MaxAge >= 0 && age > seconds(rd.MaxAge) {
		return UseRevalidate
	}
	if rd.MinFresh >= 0 && ttl < seconds(rd.MinFresh) {
		return UseRevalidate
	}
	if ttl > 0 {
		return UseFresh
	}
	if rd.MaxStale >= 0 && !e.NoStale && !e.SoftPurged() && -ttl <= seconds(rd.MaxStale) {
		return UseStale
	}
	return UseRevalidate
}

// StaleAllowed reports whether the request lets the cache answer it with
// a stale e at all (stale-while-revalidate, stale-if-error, grace): not
// when it asks for validation (no-cache), bounds the age (max-age,
// min-fresh), or carries Authorization that e may not answer. Safe for
// concurrent use.
func StaleAllowed(e *Entry, rd RequestDirectives, hasAuth bool) bool {
	return !rd.NoCache && rd.MaxAge < 0 && rd.MinFresh < 0 && (!hasAuth || e.AuthOK)
}

// seconds converts delta-seconds to a Duration, saturating.
func seconds(s int64) time.Duration {
	if s >= math.MaxInt64/int64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(s) * time.Second
}

// CanServeStaleWhileRevalidate reports whether e, stale at now, may be
// served while one request revalidates it in the background: it is
// within e.StaleWhileRevalidate past its lifetime (RFC 5861 §3). Never
// for e.NoStale or e.NoCache, nor for a fresh e (use Usable). Safe for
// concurrent use.
func CanServeStaleWhileRevalidate(e *Entry, now time.Time) bool {
	if e.NoStale || e.NoCache {
		return false
	}
	ttl := e.TTL(now)
	return ttl <= 0 && -ttl <= e.StaleWhileRevalidate && e.StaleWhileRevalidate > 0
}

// CanServeStaleOnError reports whether e, stale at now, may be served
// because the node failed (error, 5xx, unreachable): it is within the
// longer of e.StaleIfError (RFC 5861 §4) and the route's grace past its
// lifetime. Never for e.NoStale or e.NoCache, nor for a fresh e. Safe for
// concurrent use.
func CanServeStaleOnError(e *Entry, grace time.Duration, now time.Time) bool {
	if e.NoStale || e.NoCache {
		return false
	}
	window := max(e.StaleIfError, grace)
	ttl := e.TTL(now)
	return ttl <= 0 && -ttl <= window && window > 0
}

// heuristicStatus reports whether a status is heuristically cacheable
// (RFC 9110 §15.1).
func heuristicStatus(s int) bool {
	switch s {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus reports whether this cache knows the caching
// requirements of a status (RFC 9111 §5.2.2.3): those RFC 9110 defines.
func understoodStatus(s int) bool {
	switch {
	case s >= 200 && s <= 206, s >= 300 && s <= 308 && s != 306,
		s >= 400 && s <= 417, s == 421, s == 422, s == 426, s >= 500 && s <= 505:
		return true
	}
	return false
}

// parseAge reads an Age field line (RFC 9111 §5.1) as cache-tests
// expects: the first list member of the first line; a non-negative
// integer, optionally followed by parameters (";x=y"), counts, saturated
// at 2^31; anything else (negative, decimal, text) is ignored as 0.
func parseAge(b []byte) int64 {
	if i := indexByte(b, ','); i >= 0 {
		b = b[:i]
	}
	if i := indexByte(b, ';'); i >= 0 {
		b = b[:i]
	}
	n, ok := parseDelta(trimOWS(b))
	if !ok {
		return 0
	}
	return n
}
