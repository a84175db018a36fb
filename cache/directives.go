package cache

import (
	"math"
	"strings"

	"github.com/valyala/fasthttp"
)

// maxDeltaSeconds is the largest delta-seconds value kept: RFC 9111
// §1.2.2 lets a cache treat any larger value (and any overflow) as 2^31.
// It also keeps every lifetime far below time.Duration's range.
const maxDeltaSeconds = 1 << 31

// ResponseDirectives are a response's Cache-Control directives (RFC 9111
// §5.2.2), or those of a targeted field (RFC 9213). Durations are in
// seconds, -1 when the directive is absent. A value is a plain copy: any
// number of goroutines may read one.
type ResponseDirectives struct {
	// MaxAge, SMaxAge, StaleWhileRevalidate and StaleIfError are the
	// delta-seconds directives (RFC 9111 §5.2.2.1, §5.2.2.10; RFC 5861).
	// An invalid value (max-age=a3600, max-age=-1) counts as 0: RFC 9111
	// §4.2.1 encourages treating invalid freshness information as stale.
	// A value above 2^31 counts as 2^31 (§1.2.2).
	MaxAge, SMaxAge, StaleWhileRevalidate, StaleIfError int64
	// NoStore, NoCache (unqualified only), Private (unqualified only),
	// Public, MustRevalidate, ProxyRevalidate, MustUnderstand and
	// Immutable say whether each directive is present (RFC 9111
	// §5.2.2.2-9, RFC 8246).
	NoStore, NoCache, Private, Public, MustRevalidate, ProxyRevalidate, MustUnderstand, Immutable bool
	// NoCacheFields and PrivateFields are the lower-cased field names of
	// the qualified forms no-cache="a, b" and private="a, b" (RFC 9111
	// §5.2.2.4, §5.2.2.7).
	NoCacheFields, PrivateFields []string
}

// emptyResponseDirectives is a ResponseDirectives with no directive.
func emptyResponseDirectives() ResponseDirectives {
	return ResponseDirectives{MaxAge: -1, SMaxAge: -1, StaleWhileRevalidate: -1, StaleIfError: -1}
}

// ParseResponseDirectives parses the Cache-Control field lines of a
// response (RFC 9111 §5.2) as one list. Directive names are compared
// case-insensitively; arguments may be tokens or quoted strings (§5.2:
// recipients accept both forms), and a quoted string may hide commas and
// directive-like text. A malformed list member (max-age =5, max-age= 5)
// is ignored. When a delta-seconds directive appears more than once, the
// first occurrence is used (RFC 9111 §4.2.1 allows "the first occurrence"
// or "stale"; cache-tests only asks about it in check tests). Safe for
// concurrent use.
func ParseResponseDirectives(values ...[]byte) ResponseDirectives {
	d := emptyResponseDirectives()
	for _, v := range values {
		parseCacheControl(&d, v, false)
	}
	return d
}

// parseCacheControl adds the directives of one Cache-Control line to d.
// surrogate selects the Surrogate-Control dialect (Edge Architecture
// Specification 1.0): a ";target" suffix on a directive is ignored and
// max-age may be "freshness+stale", the second part read as
// stale-if-error. It reports how many directives it understood.
func parseCacheControl(d *ResponseDirectives, b []byte, surrogate bool) int {
	known := 0
	for {
		var dir ccDirective
		var found bool
		dir, b, found = nextCCDirective(b, surrogate)
		if !found {
			return known
		}
		if !dir.ok {
			continue
		}
		if applyResponseDirective(d, dir, surrogate) {
			known++
		}
	}
}

// applyResponseDirective sets the field of d that dir names and reports
// whether it knew the directive.
func applyResponseDirective(d *ResponseDirectives, dir ccDirective, surrogate bool) bool {
	switch {
	case equalFold(dir.name, "max-age"):
		v := dir.value
		if surrogate {
			if i := indexByte(v, '+'); i >= 0 {
				if d.StaleIfError < 0 {
					d.StaleIfError = deltaOrZero(v[i+1:], dir.hasValue)
				}
				v = v[:i]
			}
		}
		if d.MaxAge < 0 {
			d.MaxAge = deltaOrZero(v, dir.hasValue)
		}
	case equalFold(dir.name, "s-maxage"):
		if d.SMaxAge < 0 {
			d.SMaxAge = deltaOrZero(dir.value, dir.hasValue)
		}
	case equalFold(dir.name, "stale-while-revalidate"):
		if d.StaleWhileRevalidate < 0 {
			d.StaleWhileRevalidate = deltaOrZero(dir.value, dir.hasValue)
		}
	case equalFold(dir.name, "stale-if-error"):
		if d.StaleIfError < 0 {
			d.StaleIfError = deltaOrZero(dir.value, dir.hasValue)
		}
	case equalFold(dir.name, "no-store"):
		d.NoStore = true
	case equalFold(dir.name, "no-cache"):
		fields := dir.hasValue && appendFieldNames(&d.NoCacheFields, dir.value)
		if !fields {
			// RFC 9111 §5.2.2.4: unqualified; an empty list (no-cache="")
			// is read the same way, the stricter of the two readings.
			d.NoCache = true
		}
	case equalFold(dir.name, "private"):
		fields := dir.hasValue && appendFieldNames(&d.PrivateFields, dir.value)
		if !fields {
			d.Private = true
		}
	case equalFold(dir.name, "public"):
		d.Public = true
	case equalFold(dir.name, "must-revalidate"):
		d.MustRevalidate = true
	case equalFold(dir.name, "proxy-revalidate"):
		d.ProxyRevalidate = true
	case equalFold(dir.name, "must-understand"):
		d.MustUnderstand = true
	case equalFold(dir.name, "immutable"):
		d.Immutable = true
	default:
		return false
	}
	return true
}

// appendFieldNames appends the lower-cased field names of a qualified
// directive's argument ("a, b") to *dst and reports whether there was any.
func appendFieldNames(dst *[]string, list []byte) bool {
	added := false
	for len(list) > 0 {
		i := indexByte(list, ',')
		var name []byte
		if i < 0 {
			name, list = list, nil
		} else {
			name, list = list[:i], list[i+1:]
		}
		name = trimOWS(name)
		// A quoted-string may escape any character (RFC 9110 §5.6.4);
		// field names need none, so a backslash is simply dropped.
		name = trimByte(name, '\\')
		if len(name) == 0 || !isToken(name) {
			continue
		}
		n := strings.ToLower(string(name))
		dup := false
		for _, s := range *dst {
			if s == n {
				dup = true
				break
			}
		}
		if !dup {
			*dst = append(*dst, n)
		}
		added = true
	}
	return added
}

// ccDirective is one member of a Cache-Control list.
type ccDirective struct {
	name, value []byte
	// hasValue says an argument ("=...") was given, even an empty one.
	hasValue bool
	// ok is false for a malformed member, which is ignored.
	ok bool
}

// nextCCDirective scans the first member of the Cache-Control list b
// (RFC 9111 §5.2: #( token [ "=" ( token / quoted-string ) ] )) and
// returns it with the rest of the list. found is false at the end of the
// list. A quoted argument is returned without its quotes, escapes kept.
func nextCCDirective(b []byte, surrogate bool) (d ccDirective, rest []byte, found bool) {
	i := 0
	for i < len(b) && (b[i] == ',' || b[i] == ' ' || b[i] == '\t') {
		i++
	}
	if i == len(b) {
		return d, nil, false
	}
	start := i
	for i < len(b) && isTchar(b[i]) {
		i++
	}
	d.name = b[start:i]
	d.ok = len(d.name) > 0
	if i < len(b) && b[i] == '=' {
		i++
		d.hasValue = true
		if i < len(b) && b[i] == '"' {
			i++
			vs := i
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' && i+1 < len(b) {
					i++
				}
				i++
			}
			if i >= len(b) {
				// Unterminated: the rest of the line is its argument.
				return ccDirective{}, nil, true
			}
			d.value = b[vs:i]
			i++
		} else {
			vs := i
			for i < len(b) && isTchar(b[i]) {
				i++
			}
			d.value = b[vs:i]
		}
	}
	if surrogate && i < len(b) && b[i] == ';' {
		// A Surrogate-Control target ("no-store;edge1"): not ours to
		// judge, the directive applies.
		i++
		for i < len(b) && isTchar(b[i]) {
			i++
		}
	}
	j := i
	for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
		j++
	}
	if j < len(b) && b[j] != ',' {
		// Garbage after the member: skip to the next comma outside a
		// quoted string and ignore the member.
		d.ok = false
		for j < len(b) && b[j] != ',' {
			if b[j] == '"' {
				j++
				for j < len(b) && b[j] != '"' {
					if b[j] == '\\' {
						j++
					}
					j++
				}
			}
			j++
		}
	}
	if j > len(b) {
		j = len(b)
	}
	return d, b[j:], true
}

// parseDelta parses delta-seconds (RFC 9111 §1.2.2: 1*DIGIT), saturating
// at 2^31. ok is false for anything else (signs, decimals, letters, "").
func parseDelta(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDeltaSeconds {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDeltaSeconds), true
}

// deltaOrZero is a directive's delta-seconds, 0 when missing or invalid
// (RFC 9111 §4.2.1: invalid freshness information means stale).
func deltaOrZero(b []byte, hasValue bool) int64 {
	if !hasValue {
		return 0
	}
	n, ok := parseDelta(b)
	if !ok {
		return 0
	}
	return n
}

// RequestDirectives are a request's Cache-Control directives (RFC 9111
// §5.2.1). Durations are in seconds, -1 when absent; MaxStale is
// math.MaxInt64 for a bare max-stale (any staleness accepted). A value
// is a plain copy: any number of goroutines may read one.
type RequestDirectives struct {
	MaxAge, MaxStale, MinFresh     int64
	NoCache, NoStore, OnlyIfCached bool
}

// ParseRequestDirectives reads the request's Cache-Control field lines
// (RFC 9111 §5.2.1). "Pragma: no-cache" counts as no-cache only when the
// request has no Cache-Control field (RFC 9111 §5.4). Invalid arguments:
// max-age counts as 0 (the client wants a fresh answer), max-stale and
// min-fresh are ignored; the first occurrence of a repeated directive
// wins. It allocates nothing. Safe for concurrent use on distinct
// requests (fasthttp's request header iterator uses the header's scratch
// space).
func ParseRequestDirectives(req *fasthttp.RequestHeader) RequestDirectives {
	return ReadRequest(req).Directives
}

// RequestInfo is what answering a request from the cache needs of its
// fields. A plain value.
type RequestInfo struct {
	// Directives are as ParseRequestDirectives reads them.
	Directives RequestDirectives
	// Authorization says the request has credentials: its first
	// Authorization line is not empty.
	Authorization bool
	// Conditional says it has If-None-Match or If-Modified-Since: without
	// either, NotModified is false.
	Conditional bool
	// Ranged says it has Range: without it, RangeFor is not ok.
	Ranged bool
}

// ReadRequest reads a request's fields for the cache in one pass. It
// allocates nothing. Safe for concurrent use on distinct requests (as
// ParseRequestDirectives).
func ReadRequest(req *fasthttp.RequestHeader) RequestInfo {
	ri := RequestInfo{Directives: RequestDirectives{MaxAge: -1, MaxStale: -1, MinFresh: -1}}
	hasCC, pragmaNoCache, authSeen := false, false, false
	for k, v := range req.All() {
		if len(k) == 0 {
			continue
		}
		switch k[0] | 0x20 {
		case 'c':
			if equalFold(k, "cache-control") {
				hasCC = true
				parseRequestCC(&ri.Directives, v)
			}
		case 'p':
			if equalFold(k, "pragma") && !pragmaNoCache && pragmaHasNoCache(v) {
				pragmaNoCache = true
			}
		case 'a':
			if !authSeen && equalFold(k, "authorization") {
				authSeen, ri.Authorization = true, len(v) > 0
			}
		case 'i':
			if equalFold(k, "if-none-match") || equalFold(k, "if-modified-since") {
				ri.Conditional = true
			}
		case 'r':
			if equalFold(k, "range") {
				ri.Ranged = true
			}
		}
	}
	if !hasCC && pragmaNoCache {
		ri.Directives.NoCache = true
	}
	return ri
}

func parseRequestCC(rd *RequestDirectives, b []byte) {
	for {
		var dir ccDirective
		var found bool
		dir, b, found = nextCCDirective(b, false)
		if !found {
			return
		}
		if !dir.ok {
			continue
		}
		switch {
		case equalFold(dir.name, "max-age"):
			if rd.MaxAge < 0 {
				rd.MaxAge = deltaOrZero(dir.value, dir.hasValue)
			}
		case equalFold(dir.name, "max-stale"):
			if rd.MaxStale >= 0 {
				continue
			}
			if !dir.hasValue {
				rd.MaxStale = math.MaxInt64
			} else if n, ok := parseDelta(dir.value); ok {
				rd.MaxStale = n
			}
		case equalFold(dir.name, "min-fresh"):
			if rd.MinFresh < 0 {
				if n, ok := parseDelta(dir.value); ok && dir.hasValue {
					rd.MinFresh = n
				}
			}
		case equalFold(dir.name, "no-cache"):
			rd.NoCache = true
		case equalFold(dir.name, "no-store"):
			rd.NoStore = true
		case equalFold(dir.name, "only-if-cached"):
			rd.OnlyIfCached = true
		}
	}
}

// pragmaHasNoCache reports whether a Pragma line lists no-cache.
func pragmaHasNoCache(b []byte) bool {
	for {
		var dir ccDirective
		var found bool
		dir, b, found = nextCCDirective(b, false)
		if !found {
			return false
		}
		if dir.ok && !dir.hasValue && equalFold(dir.name, "no-cache") {
			return true
		}
	}
}

// parseTargeted parses the lines of a targeted cache-control field (RFC
// 9213 §2.1). Surrogate-Control uses the Cache-Control syntax (see
// parseCacheControl) and counts only when it holds a directive this
// package knows, so "Surrogate-Control: content="ESI/1.0"" leaves
// Cache-Control in charge. Every other field is a Structured Field
// Dictionary (RFC 8941): ok is false when it is empty or fails to parse,
// and RFC 9213 §2.2 then has the cache ignore it.
func parseTargeted(name string, values [][]byte) (ResponseDirectives, bool) {
	d := emptyResponseDirectives()
	if strings.EqualFold(name, "surrogate-control") {
		known := 0
		for _, v := range values {
			known += parseCacheControl(&d, v, true)
		}
		return d, known > 0
	}
	var joined []byte
	for _, v := range values {
		v = trimOWS(v)
		if len(v) == 0 {
			continue
		}
		if len(joined) > 0 {
			joined = append(joined, ',', ' ')
		}
		joined = append(joined, v...)
	}
	if len(joined) == 0 {
		return d, false
	}
	if !parseSFDictionary(&d, joined) {
		return emptyResponseDirectives(), false
	}
	return d, true
}

// trimOWS removes leading and trailing spaces and tabs.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// trimByte removes every c from b, in place when there is one.
func trimByte(b []byte, c byte) []byte {
	if indexByte(b, c) < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for _, x := range b {
		if x != c {
			out = append(out, x)
		}
	}
	return out
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// isToken reports whether b is a non-empty token (RFC 9110 §5.6.2).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

// isTchar reports whether c is a tchar (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	return tcharTable[c]
}

var tcharTable = func() (t [256]bool) {
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

// sfKind is the type of a Structured Field value (RFC 8941 §3).
type sfKind uint8

const (
	sfBoolean sfKind = iota
	sfInteger
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfInnerList
	sfOther // Date, Display String (RFC 9651)
)

// sfValue is a parsed dictionary member value: what applying it needs.
type sfValue struct {
	kind    sfKind
	boolean bool
	integer int64
	// items are the Strings and Tokens of an Inner List.
	items [][]byte
}

// sfParser parses a Structured Field Dictionary (RFC 8941 §4.2.2).
type sfParser struct {
	b []byte
	i int
}

// parseSFDictionary applies the members of the dictionary b to d and
// reports whether b parsed. Keys are lower-cased first: RFC 8941 only
// allows lower-case keys, but a cache gains nothing by refusing
// "MaX-AgE". Members of the wrong type are ignored (RFC 9213 §2.1: "SHOULD
// NOT consume values that violate these inferred constraints"); a later
// member overwrites an earlier one with the same key (RFC 8941 §3.2).
func parseSFDictionary(d *ResponseDirectives, b []byte) bool {
	p := sfParser{b: b}
	p.skipSP()
	for p.i < len(p.b) {
		key, ok := p.key()
		if !ok {
			return false
		}
		var v sfValue
		if p.peek() == '=' {
			p.i++
			if v, ok = p.itemOrInnerList(); !ok {
				return false
			}
		} else {
			v = sfValue{kind: sfBoolean, boolean: true}
			if !p.parameters() {
				return false
			}
		}
		applySFDirective(d, key, v)
		p.skipOWS()
		if p.i == len(p.b) {
			return true
		}
		if p.b[p.i] != ',' {
			return false
		}
		p.i++
		p.skipOWS()
		if p.i == len(p.b) {
			return false // trailing comma
		}
	}
	return true
}

func applySFDirective(d *ResponseDirectives, key []byte, v sfValue) {
	delta := func(dst *int64) {
		if v.kind == sfInteger && v.integer >= 0 {
			*dst = min(v.integer, maxDeltaSeconds)
		}
	}
	flag := func(dst *bool) {
		if v.kind == sfBoolean {
			*dst = v.boolean
		}
	}
	fields := func(flagDst *bool, dst *[]string) {
		switch v.kind {
		case sfBoolean:
			*flagDst = v.boolean
		case sfInnerList:
			added := false
			for _, it := range v.items {
				if appendFieldNames(dst, it) {
					added = true
				}
			}
			if !added {
				*flagDst = true
			}
		}
	}
	switch string(key) {
	case "max-age":
		delta(&d.MaxAge)
	case "s-maxage":
		delta(&d.SMaxAge)
	case "stale-while-revalidate":
		delta(&d.StaleWhileRevalidate)
	case "stale-if-error":
		delta(&d.StaleIfError)
	case "no-store":
		flag(&d.NoStore)
	case "no-cache":
		fields(&d.NoCache, &d.NoCacheFields)
	case "private":
		fields(&d.Private, &d.PrivateFields)
	case "public":
		flag(&d.Public)
	case "must-revalidate":
		flag(&d.MustRevalidate)
	case "proxy-revalidate":
		flag(&d.ProxyRevalidate)
	case "must-understand":
		flag(&d.MustUnderstand)
	case "immutable":
		flag(&d.Immutable)
	}
}

func (p *sfParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *sfParser) skipSP() {
	for p.i < len(p.b) && p.b[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t') {
		p.i++
	}
}

// key parses a key (RFC 8941 §4.2.3.3), lower-casing it in place.
func (p *sfParser) key() ([]byte, bool) {
	start := p.i
	if p.i >= len(p.b) {
		return nil, false
	}
	c := lower(p.b[p.i])
	if !(c >= 'a' && c <= 'z') && c != '*' {
		return nil, false
	}
	for p.i < len(p.b) {
		c = lower(p.b[p.i])
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.b[p.i] = c
		p.i++
	}
	return p.b[start:p.i], true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// parameters parses ";key[=item]"... (RFC 8941 §4.2.3.2); they are
// ignored (RFC 9213 §2.1).
func (p *sfParser) parameters() bool {
	for p.peek() == ';' {
		p.i++
		p.skipSP()
		if _, ok := p.key(); !ok {
			return false
		}
		if p.peek() == '=' {
			p.i++
			if _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

func (p *sfParser) itemOrInnerList() (sfValue, bool) {
	if p.peek() == '(' {
		return p.innerList()
	}
	v, ok := p.bareItem()
	if !ok {
		return v, false
	}
	return v, p.parameters()
}

// innerList parses "(" *SP [item *(1*SP item) *SP] ")" parameters (RFC
// 8941 §4.2.1.2).
func (p *sfParser) innerList() (sfValue, bool) {
	v := sfValue{kind: sfInnerList}
	p.i++ // "("
	for p.i < len(p.b) {
		p.skipSP()
		if p.peek() == ')' {
			p.i++
			return v, p.parameters()
		}
		start := p.i
		it, ok := p.bareItem()
		if !ok {
			return v, false
		}
		if it.kind == sfString || it.kind == sfToken {
			item := p.b[start:p.i]
			if it.kind == sfString {
				item = item[1 : len(item)-1]
			}
			v.items = append(v.items, item)
		}
		if !p.parameters() {
			return v, false
		}
		if c := p.peek(); c != ' ' && c != ')' {
			return v, false
		}
	}
	return v, false
}

// bareItem parses a bare item (RFC 8941 §4.2.3.1, RFC 9651 §4.2.3.1).
func (p *sfParser) bareItem() (sfValue, bool) {
	c := p.peek()
	switch {
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '"':
		return sfValue{kind: sfString}, p.str()
	case c == '*' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		p.i++
		for p.i < len(p.b) && (isTchar(p.b[p.i]) || p.b[p.i] == ':' || p.b[p.i] == '/') {
			p.i++
		}
		return sfValue{kind: sfToken}, true
	case c == ':':
		p.i++
		for p.i < len(p.b) && p.b[p.i] != ':' {
			x := p.b[p.i]
			if !(x >= 'A' && x <= 'Z' || x >= 'a' && x <= 'z' || x >= '0' && x <= '9' || x == '+' || x == '/' || x == '=') {
				return sfValue{}, false
			}
			p.i++
		}
		if p.i == len(p.b) {
			return sfValue{}, false
		}
		p.i++
		return sfValue{kind: sfBytes}, true
	case c == '?':
		p.i++
		switch p.peek() {
		case '0':
			p.i++
			return sfValue{kind: sfBoolean, boolean: false}, true
		case '1':
			p.i++
			return sfValue{kind: sfBoolean, boolean: true}, true
		}
		return sfValue{}, false
	case c == '@':
		p.i++
		v, ok := p.number()
		return sfValue{kind: sfOther}, ok && v.kind == sfInteger
	case c == '%':
		p.i++
		if p.peek() != '"' {
			return sfValue{}, false
		}
		p.i++
		for p.i < len(p.b) && p.b[p.i] != '"' {
			if x := p.b[p.i]; x < 0x20 || x > 0x7e {
				return sfValue{}, false
			}
			p.i++
		}
		if p.i == len(p.b) {
			return sfValue{}, false
		}
		p.i++
		return sfValue{kind: sfOther}, true
	}
	return sfValue{}, false
}

// number parses an Integer or Decimal (RFC 8941 §4.2.4).
func (p *sfParser) number() (sfValue, bool) {
	neg := false
	if p.peek() == '-' {
		neg = true
		p.i++
	}
	start := p.i
	var n int64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
		if p.i-start > 15 {
			return sfValue{}, false
		}
	}
	intDigits := p.i - start
	if intDigits == 0 {
		return sfValue{}, false
	}
	if p.peek() == '.' {
		if intDigits > 12 {
			return sfValue{}, false
		}
		p.i++
		fs := p.i
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
		if f := p.i - fs; f < 1 || f > 3 {
			return sfValue{}, false
		}
		return sfValue{kind: sfDecimal}, true
	}
	if neg {
		n = -n
	}
	return sfValue{kind: sfInteger, integer: n}, true
}

// str parses a String (RFC 8941 §4.2.5).
func (p *sfParser) str() bool {
	p.i++ // opening quote
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '\\':
			p.i++
			if x := p.peek(); x != '"' && x != '\\' {
				return false
			}
		case c == '"':
			p.i++
			return true
		case c < 0x20 || c > 0x7e:
			return false
		}
		p.i++
	}
	return false
}
