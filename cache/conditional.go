package cache

import (
	"bufio"
	"bytes"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// conditionalFields are the request preconditions (RFC 9110 §13.1).
var conditionalFields = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

// AddValidators makes req, about to be sent to a node, a conditional
// request validating e (RFC 9111 §4.3.1): If-None-Match with e.ETag and
// If-Modified-Since with e.LastModified, whichever e has. The client's own
// preconditions are removed first: the cache evaluates them itself
// against the (re)validated entry (NotModified, RangeFor), and a node
// answering them instead would answer for the client, not for the cache.
// An unquoted stored ETag is sent quoted. Safe for concurrent use on
// distinct requests.
func AddValidators(req *fasthttp.RequestHeader, e *Entry) {
	for _, n := range conditionalFields {
		req.Del(n)
	}
	if e.ETag != nil {
		tag := e.ETag
		if weak, opaque := splitETag(tag); !weak && (len(opaque) < 2 || opaque[0] != '"' || opaque[len(opaque)-1] != '"') {
			q := make([]byte, 0, len(opaque)+2)
			q = append(q, '"')
			q = append(q, opaque...)
			tag = append(q, '"')
		}
		req.SetBytesV("If-None-Match", tag)
	}
	if e.LastModified != nil {
		req.SetBytesV("If-Modified-Since", e.LastModified)
	}
}

// NotModified reports whether a client's conditional request is answered
// by 304 (Not Modified) from e (RFC 9111 §4.3.2). If-None-Match, when
// present, decides alone (RFC 9110 §13.2.2): "*" or an entity-tag that
// matches e.ETag by weak comparison (§8.8.3.2) in any of its lines.
// Otherwise If-Modified-Since on a GET or HEAD (§13.1.3): e was not
// modified when its Last-Modified (or, without one, its Date) is not
// later than the field's date; an invalid date is ignored. Only a 2xx
// entry is answered so. It allocates nothing. Safe for concurrent use on
// distinct requests.
func NotModified(e *Entry, req *fasthttp.RequestHeader) bool {
	if e.Status < 200 || e.Status > 299 {
		return false
	}
	inm, match := false, false
	var ims []byte
	imsLines := 0
	for k, v := range req.All() {
		switch {
		case equalFold(k, "if-none-match"):
			inm = true
			if !match && inmMatches(v, e.ETag) {
				match = true
			}
		case equalFold(k, "if-modified-since"):
			imsLines++
			ims = v
		}
	}
	if inm {
		return match
	}
	if imsLines != 1 || !(req.IsGet() || req.IsHead()) {
		return false
	}
	since, ok := parseHTTPDate(ims)
	if !ok {
		return false
	}
	modified := e.Date
	if e.LastModified != nil {
		lm, ok := parseHTTPDate(e.LastModified)
		if !ok {
			return false
		}
		modified = lm
	}
	return modified <= since
}

// inmMatches reports whether an If-None-Match line ("*" or a list of
// entity-tags) matches etag by weak comparison. Unquoted tags are
// tolerated and compared without quotes.
func inmMatches(line, etag []byte) bool {
	b := line
	for {
		for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == ',') {
			b = b[1:]
		}
		if len(b) == 0 {
			return false
		}
		if b[0] == '*' {
			return true
		}
		start := 0
		if len(b) >= 2 && (b[0] == 'W' || b[0] == 'w') && b[1] == '/' {
			start = 2
		}
		i := start
		if i < len(b) && b[i] == '"' {
			i++
			for i < len(b) && b[i] != '"' {
				i++
			}
			if i < len(b) {
				i++
			}
		} else {
			for i < len(b) && b[i] != ',' && b[i] != ' ' && b[i] != '\t' {
				i++
			}
		}
		if etag != nil && weakMatch(b[:i], etag) {
			return true
		}
		b = b[i:]
	}
}

// splitETag splits an entity-tag into its weakness and opaque-tag (RFC
// 9110 §8.8.3); a lower-case "w/" is accepted.
func splitETag(t []byte) (weak bool, opaque []byte) {
	t = trimOWS(t)
	if len(t) >= 2 && (t[0] == 'W' || t[0] == 'w') && t[1] == '/' {
		return true, t[2:]
	}
	return false, t
}

func isWeak(t []byte) bool {
	w, _ := splitETag(t)
	return w
}

// unquote removes the quotes around an opaque-tag, if both are there.
func unquote(o []byte) []byte {
	if len(o) >= 2 && o[0] == '"' && o[len(o)-1] == '"' {
		return o[1 : len(o)-1]
	}
	return o
}

// weakMatch is the weak comparison of two entity-tags (RFC 9110
// §8.8.3.2): their opaque-tags are equal, weak or not.
func weakMatch(a, b []byte) bool {
	_, oa := splitETag(a)
	_, ob := splitETag(b)
	return bytes.Equal(unquote(oa), unquote(ob))
}

// strongMatch is the strong comparison: both strong, opaque-tags equal.
func strongMatch(a, b []byte) bool {
	wa, oa := splitETag(a)
	wb, ob := splitETag(b)
	return !wa && !wb && bytes.Equal(unquote(oa), unquote(ob))
}

// RangeFor returns the byte range of e.Body that req asks for with Range
// (RFC 9110 §14), start and end inclusive. ok is false when the whole
// entry is to be served as is: no Range, not a GET (§14.2), an entry
// other than 200, a zero-length body, a unit other than bytes, several
// ranges or several Range lines (served whole rather than as
// multipart/byteranges, which §14.2 allows), invalid syntax (ignored,
// §14.2), or an If-Range that does not match (§13.1.5: a strong ETag
// equal to e's, or a date equal to e's Last-Modified, itself strong, i.e.
// at least a second before Date). unsatisfiable is true (with ok) when
// the range starts past the end, for a 416. It allocates nothing. Safe
// for concurrent use on distinct requests.
func RangeFor(e *Entry, req *fasthttp.RequestHeader) (start, end int, ok, unsatisfiable bool) {
	if !req.IsGet() || e.Status != fasthttp.StatusOK || len(e.Body) == 0 {
		return 0, 0, false, false
	}
	var rng, ifRange []byte
	lines, ifRangeSeen := 0, false
	for k, v := range req.All() {
		switch {
		case equalFold(k, "range"):
			lines++
			rng = v
		case equalFold(k, "if-range"):
			if ifRangeSeen {
				return 0, 0, false, false
			}
			ifRangeSeen, ifRange = true, v
		}
	}
	if lines != 1 {
		return 0, 0, false, false
	}
	if ifRangeSeen && !ifRangeMatches(e, ifRange) {
		return 0, 0, false, false
	}
	return parseByteRange(trimOWS(rng), len(e.Body))
}

// ifRangeMatches evaluates an If-Range value against e (RFC 9110 §13.1.5).
func ifRangeMatches(e *Entry, v []byte) bool {
	v = trimOWS(v)
	if len(v) > 0 && (v[0] == '"' || len(v) >= 2 && v[0] == 'W' && v[1] == '/') {
		return e.ETag != nil && strongMatch(v, e.ETag)
	}
	if e.LastModified == nil {
		return false
	}
	t, ok := parseHTTPDate(v)
	if !ok {
		return false
	}
	lm, ok := parseHTTPDate(e.LastModified)
	return ok && lm == t && lm < e.Date
}

// parseByteRange parses a single "bytes=" range-spec for a body of size
// bytes (RFC 9110 §14.1.2).
func parseByteRange(b []byte, size int) (start, end int, ok, unsatisfiable bool) {
	const unit = "bytes="
	if size <= 0 || len(b) < len(unit) || !equalFold(b[:len(unit)], unit) {
		return 0, 0, false, false
	}
	b = trimOWS(b[len(unit):])
	dash := indexByte(b, '-')
	if dash < 0 {
		return 0, 0, false, false
	}
	first, last := b[:dash], trimOWS(b[dash+1:])
	first = trimOWS(first)
	if len(first) == 0 {
		// suffix-byte-range-spec: the last n bytes.
		n, valid := parseDigits(last)
		if !valid {
			return 0, 0, false, false
		}
		if n == 0 {
			return 0, 0, true, true
		}
		return max(0, size-n), size - 1, true, false
	}
	s, valid := parseDigits(first)
	if !valid {
		return 0, 0, false, false
	}
	en := size - 1
	if len(last) > 0 {
		l, valid := parseDigits(last)
		if !valid || l < s {
			return 0, 0, false, false
		}
		en = min(l, size-1)
	}
	if s >= size {
		return 0, 0, true, true
	}
	return s, en, true, false
}

// parseDigits parses 1*DIGIT, saturating far above any body size or year.
func parseDigits(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<40 {
			n = n*10 + int(c-'0')
		}
	}
	return n, true
}

// dateReader parses a tiny response header into a fasthttp.Response: the
// only way to put a Date field in it, as fasthttp's setters drop Date
// ("managed automatically") and the server here runs with NoDefaultDate.
type dateReader struct {
	src bytes.Reader
	br  *bufio.Reader
}

var dateReaders = sync.Pool{New: func() any {
	r := &dateReader{}
	r.br = bufio.NewReaderSize(&r.src, 256)
	return r
}}

// startResponse resets h to an empty answer with status and a Date field
// for date (Unix seconds). The header's connection-close flag and the
// server's settings (NoDefaultDate, NoDefaultContentType) are kept.
func startResponse(h *fasthttp.ResponseHeader, status int, date int64, buf []byte) []byte {
	closing := h.ConnectionClose()
	buf = append(buf[:0], "HTTP/1.1 200 OK\r\nDate: "...)
	buf = fasthttp.AppendHTTPDate(buf, time.Unix(date, 0))
	buf = append(buf, "\r\nContent-Length: 0\r\n\r\n"...)
	r := dateReaders.Get().(*dateReader)
	r.src.Reset(buf)
	r.br.Reset(&r.src)
	if err := h.Read(r.br); err != nil {
		// Unreachable: the header above is well-formed. Without Date.
		h.Reset()
	}
	r.src.Reset(nil)
	dateReaders.Put(r)
	h.Del(fasthttp.HeaderContentLength)
	h.SetStatusCode(status)
	h.SetStatusMessage(nil) // the status's own reason phrase
	h.SetProtocol(nil)
	if closing {
		h.SetConnectionClose()
	} else {
		h.ResetConnectionClose()
	}
	return buf
}

// appendAge adds the Age field for e at now (RFC 9111 §5.1: whole
// seconds, at most 2^31).
func appendAge(h *fasthttp.ResponseHeader, e *Entry, now time.Time, buf []byte) []byte {
	buf = strconv.AppendInt(buf[:0], ageSeconds(e, now), 10)
	h.AddBytesKV(ageName, buf)
	return buf
}

// ageSeconds is the Age field's value for e at now.
func ageSeconds(e *Entry, now time.Time) int64 {
	return min(int64(e.Age(now)/time.Second), maxDeltaSeconds)
}

var (
	ageName          = []byte("Age")
	contentRangeName = []byte("Content-Range")
)

// Write puts e into resp as the answer at now: status, the stored fields
// in order (repeated fields preserved), Date as stored (RFC 9110 §6.6.1:
// a cache does not change it), Age (RFC 9111 §5.1, whole seconds: e's
// current age, §4.2.3) and the body, which is not copied (e is
// immutable). It replaces resp's header and body (closing a body stream)
// but keeps the server's NoDefaultDate and NoDefaultContentType settings:
// do not call resp.Reset() first, which clears them, after which fasthttp
// writes its own clock's Date instead of the stored one (and a default
// Content-Type). buf is scratch space and is returned for reuse. It
// allocates nothing once resp and buf have grown. Safe for concurrent use
// with other readers of e.
func (e *Entry) Write(resp *fasthttp.Response, now time.Time, buf []byte) []byte {
	buf = e.writeHeader(&resp.Header, e.Status, now, buf, false)
	resp.SetBodyRaw(e.Body)
	return buf
}

// writeHeader writes status, e's fields (but Date, which startResponse
// makes, and Content-Range when ranged) and Age.
func (e *Entry) writeHeader(h *fasthttp.ResponseHeader, status int, now time.Time, buf []byte, ranged bool) []byte {
	buf = e.writeFields(h, status, buf, ranged)
	return appendAge(h, e, now, buf)
}

// writeFields is writeHeader without Age.
func (e *Entry) writeFields(h *fasthttp.ResponseHeader, status int, buf []byte, ranged bool) []byte {
	buf = startResponse(h, status, e.Date, buf)
	for _, f := range e.Header {
		if equalFold(f.Name, "date") || ranged && equalFold(f.Name, "content-range") {
			continue
		}
		h.AddBytesKV(f.Name, f.Value)
	}
	return buf
}

// notModifiedFields are the fields a 304 carries (RFC 9110 §15.4.5),
// besides Date.
var notModifiedFields = []string{"cache-control", "content-location", "etag", "expires", "vary"}

// WriteNotModified puts a 304 (Not Modified) for e into resp, as answered
// at now: Cache-Control, Content-Location, Date, ETag, Expires and Vary
// as stored (RFC 9110 §15.4.5), Last-Modified when e has no ETag (it then
// is the validator the client holds), and Age; no body. buf is scratch
// space and is returned. It allocates nothing once resp and buf have
// grown. As for Write, do not Reset resp first. Safe for concurrent use
// with other readers of e.
func (e *Entry) WriteNotModified(resp *fasthttp.Response, now time.Time, buf []byte) []byte {
	h := &resp.Header
	buf = e.writeNotModifiedFields(h, buf)
	buf = appendAge(h, e, now, buf)
	resp.ResetBody()
	return buf
}

// writeNotModifiedFields writes a 304's status and fields for e, but Age.
func (e *Entry) writeNotModifiedFields(h *fasthttp.ResponseHeader, buf []byte) []byte {
	buf = startResponse(h, fasthttp.StatusNotModified, e.Date, buf)
	for _, f := range e.Header {
		keep := e.ETag == nil && equalFold(f.Name, "last-modified")
		for _, n := range notModifiedFields {
			if keep || equalFold(f.Name, n) {
				keep = true
				break
			}
		}
		if keep {
			h.AddBytesKV(f.Name, f.Value)
		}
	}
	return buf
}

// WriteRange puts into resp, as answered at now, a 206 (Partial Content)
// with the bytes start to end (inclusive) of e.Body, the stored fields
// and Content-Range (RFC 9110 §15.3.7, §14.4), or, when unsatisfiable, a
// 416 (Range Not Satisfiable) with only Date and "Content-Range: bytes
// */size" (§15.5.17). start, end and unsatisfiable come from RangeFor.
// The body is not copied. As for Write, do not Reset resp first. buf is
// scratch space and is returned. It allocates nothing once resp and buf
// have grown. Safe for concurrent use with other readers of e.
func (e *Entry) WriteRange(resp *fasthttp.Response, start, end int, unsatisfiable bool, now time.Time, buf []byte) []byte {
	h := &resp.Header
	if unsatisfiable {
		buf = startResponse(h, fasthttp.StatusRequestedRangeNotSatisfiable, e.Date, buf)
		buf = append(buf[:0], "bytes */"...)
		buf = strconv.AppendInt(buf, int64(len(e.Body)), 10)
		h.SetBytesKV(contentRangeName, buf)
		resp.ResetBody()
		return buf
	}
	buf = e.writeHeader(h, fasthttp.StatusPartialContent, now, buf, true)
	h.SetContentRange(start, end, len(e.Body))
	resp.SetBodyRaw(e.Body[start : end+1 : end+1])
	return buf
}

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) in any of its
// three formats (IMF-fixdate, rfc850-date, asctime-date) into Unix
// seconds. Names and "GMT" are matched case-insensitively; anything else
// (another zone, a two-digit year in IMF-fixdate, missing comma, extra
// spaces, one-digit hour) is invalid. A two-digit rfc850 year more than
// 50 years in the future is taken from the previous century (§5.6.7). It
// allocates nothing.
func parseHTTPDate(b []byte) (int64, bool) {
	b = trimOWS(b)
	switch {
	case len(b) == 29 && b[3] == ',':
		// Sun, 06 Nov 1994 08:49:37 GMT
		if dayName(b[:3]) < 0 || b[4] != ' ' || b[7] != ' ' || b[11] != ' ' || b[16] != ' ' || b[25] != ' ' || !equalFold(b[26:], "gmt") {
			return 0, false
		}
		return dateOf(year4(b[12:16]), monthName(b[8:11]), b[5:7], b[17:25])
	case len(b) == 24 && b[3] == ' ':
		// Sun Nov  6 08:49:37 1994
		if dayName(b[:3]) < 0 || b[7] != ' ' || b[10] != ' ' || b[19] != ' ' {
			return 0, false
		}
		day := b[8:10]
		if day[0] == ' ' {
			day = day[1:]
		}
		return dateOf(year4(b[20:24]), monthName(b[4:7]), day, b[11:19])
	}
	// Sunday, 06-Nov-94 08:49:37 GMT
	c := indexByte(b, ',')
	if c < 6 || longDayName(b[:c]) < 0 {
		return 0, false
	}
	r := b[c:]
	if len(r) != 24 || r[1] != ' ' || r[4] != '-' || r[8] != '-' || r[11] != ' ' || r[20] != ' ' || !equalFold(r[21:], "gmt") {
		return 0, false
	}
	yy, ok := parseDigits(r[9:11])
	if !ok {
		return 0, false
	}
	now := time.Now().UTC().Year()
	year := now/100*100 + yy
	if year > now+50 {
		year -= 100
	} else if year <= now-50 {
		year += 100
	}
	return dateOf(year, monthName(r[5:8]), r[2:4], r[12:20])
}

// year4 reads a four-digit year, -1 if it is not one.
func year4(b []byte) int {
	y, ok := parseDigits(b)
	if !ok || len(b) != 4 {
		return -1
	}
	return y
}

// dateOf assembles a date from its parts, checking them.
func dateOf(y, month int, day, clock []byte) (int64, bool) {
	d, okD := parseDigits(day)
	if y < 0 || !okD || len(day) > 2 || month < 1 || d < 1 || d > daysIn(month, y) {
		return 0, false
	}
	if len(clock) != 8 || clock[2] != ':' || clock[5] != ':' {
		return 0, false
	}
	hh, ok1 := parseDigits(clock[0:2])
	mm, ok2 := parseDigits(clock[3:5])
	ss, ok3 := parseDigits(clock[6:8])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 60 {
		return 0, false
	}
	return time.Date(y, time.Month(month), d, hh, mm, ss, 0, time.UTC).Unix(), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

var (
	dayNames     = [...]string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	longDayNames = [...]string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	monthNames   = [...]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
)

func dayName(b []byte) int {
	for i, n := range dayNames {
		if equalFold(b, n) {
			return i
		}
	}
	return -1
}

func longDayName(b []byte) int {
	for i, n := range longDayNames {
		if equalFold(b, n) {
			return i
		}
	}
	return -1
}

// monthName returns 1 to 12, or 0 for no month.
func monthName(b []byte) int {
	for i, n := range monthNames {
		if equalFold(b, n) {
			return i + 1
		}
	}
	return 0
}
