package cache

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// rdWant builds the expected ResponseDirectives from the empty one.
func rdWant(f func(*ResponseDirectives)) ResponseDirectives {
	d := emptyResponseDirectives()
	if f != nil {
		f(&d)
	}
	return d
}

func TestParseResponseDirectives(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  ResponseDirectives
	}{
		{name: "none", lines: nil, want: rdWant(nil)},
		{name: "empty line", lines: []string{""}, want: rdWant(nil)},
		{name: "max-age", lines: []string{"max-age=60"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 60 })},
		{name: "names are case-insensitive", lines: []string{"MaX-AgE=60, S-MAXAGE=5, No-StOrE"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge, d.SMaxAge, d.NoStore = 60, 5, true })},
		{name: "quoted argument accepted", lines: []string{`max-age="3600"`}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 3600 })},
		{name: "leading zeros", lines: []string{"max-age=003600"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 3600 })},
		{name: "single quotes are invalid: stale", lines: []string{"max-age='3600'"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 0 })},
		{name: "decimal is invalid", lines: []string{"max-age=3600.0"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 0 })},
		{name: "leading alpha is invalid", lines: []string{"max-age=a3600"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 0 })},
		{name: "trailing alpha is invalid", lines: []string{"max-age=3600a"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 0 })},
		{name: "negative is invalid", lines: []string{"max-age=-3600"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 0 })},
		{name: "no argument is invalid", lines: []string{"max-age, s-maxage="}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge, d.SMaxAge = 0, 0 })},
		{name: "2^31-1 kept", lines: []string{"max-age=2147483647"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 2147483647 })},
		{name: "2^31+1 saturates", lines: []string{"max-age=2147483649"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 1 << 31 })},
		{name: "huge saturates", lines: []string{"max-age=999999999999999999999999"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 1 << 31 })},
		{name: "space before equals: member ignored", lines: []string{"max-age =3600"}, want: rdWant(nil)},
		{name: "space after equals: member ignored", lines: []string{"max-age= 3600"}, want: rdWant(nil)},
		{name: "quoted text is not a directive", lines: []string{`extension="max-age=3600", max-age=1`}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 1 })},
		{name: "quoted text after is not a directive", lines: []string{`max-age=1, extension="max-age=3600, no-store"`}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 1 })},
		{name: "escaped quote in a quoted string", lines: []string{`x="a\"b, no-store", public`}, want: rdWant(func(d *ResponseDirectives) { d.Public = true })},
		{name: "unterminated quoted string swallows the rest", lines: []string{`public, x="max-age=5, no-store`}, want: rdWant(func(d *ResponseDirectives) { d.Public = true })},
		{name: "duplicate on one line: first wins", lines: []string{"max-age=1800, max-age=1"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 1800 })},
		{name: "duplicate on two lines: first wins", lines: []string{"max-age=1", "max-age=1800"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 1 })},
		{name: "invalid first occurrence wins", lines: []string{"max-age=x, max-age=60"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 0 })},
		{name: "lines are one list", lines: []string{"public", "s-maxage=5", "must-revalidate"}, want: rdWant(func(d *ResponseDirectives) { d.Public, d.SMaxAge, d.MustRevalidate = true, 5, true })},
		{name: "empty members and whitespace", lines: []string{" , ,\tpublic ,, max-age=5 ,"}, want: rdWant(func(d *ResponseDirectives) { d.Public, d.MaxAge = true, 5 })},
		{name: "every flag", lines: []string{"no-store, no-cache, private, public, must-revalidate, proxy-revalidate, must-understand, immutable"},
			want: rdWant(func(d *ResponseDirectives) {
				d.NoStore, d.NoCache, d.Private, d.Public, d.MustRevalidate, d.ProxyRevalidate, d.MustUnderstand, d.Immutable = true, true, true, true, true, true, true, true
			})},
		{name: "stale windows", lines: []string{"stale-while-revalidate=30, stale-if-error=600"}, want: rdWant(func(d *ResponseDirectives) { d.StaleWhileRevalidate, d.StaleIfError = 30, 600 })},
		{name: "qualified no-cache: fields, not no-cache", lines: []string{`no-cache="Set-Cookie, X-A"`}, want: rdWant(func(d *ResponseDirectives) { d.NoCacheFields = []string{"set-cookie", "x-a"} })},
		{name: "qualified no-cache token form", lines: []string{`no-cache=Set-Cookie`}, want: rdWant(func(d *ResponseDirectives) { d.NoCacheFields = []string{"set-cookie"} })},
		{name: "qualified and unqualified no-cache", lines: []string{`no-cache="a", no-cache`}, want: rdWant(func(d *ResponseDirectives) { d.NoCache, d.NoCacheFields = true, []string{"a"} })},
		{name: "empty qualified no-cache reads as no-cache", lines: []string{`no-cache=""`}, want: rdWant(func(d *ResponseDirectives) { d.NoCache = true })},
		{name: "qualified private: fields, not private", lines: []string{`private="X-User, x-user,, Set-Cookie"`}, want: rdWant(func(d *ResponseDirectives) { d.PrivateFields = []string{"x-user", "set-cookie"} })},
		{name: "private fields over two members", lines: []string{`private="a"`, `private="b"`}, want: rdWant(func(d *ResponseDirectives) { d.PrivateFields = []string{"a", "b"} })},
		{name: "unknown directives ignored", lines: []string{"foobar, x=1, &&&, max-age=5"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 5 })},
		{name: "Surrogate-Control syntax is not Cache-Control's", lines: []string{"max-age=30+60, no-store;edge"}, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 0 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var lines [][]byte
			for _, l := range tc.lines {
				lines = append(lines, []byte(l))
			}
			if got := ParseResponseDirectives(lines...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseTargeted(t *testing.T) {
	tests := []struct {
		name   string
		field  string
		lines  []string
		want   ResponseDirectives
		wantOK bool
	}{
		{name: "max-age", field: "CDN-Cache-Control", lines: []string{"max-age=3600"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 3600 })},
		{name: "keys folded to lower case", field: "CDN-Cache-Control", lines: []string{"MaX-aGe=3600"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 3600 })},
		{name: "extension token", field: "CDN-Cache-Control", lines: []string{"foobar, max-age=3600"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 3600 })},
		{name: "only unknown directives still count (RFC 9213 §3.1 none)", field: "CDN-Cache-Control", lines: []string{"none"}, wantOK: true, want: rdWant(nil)},
		{name: "invalid dictionary ignored", field: "CDN-Cache-Control", lines: []string{"max-age=10000, &&&&&"}},
		{name: "string max-age not consumed", field: "CDN-Cache-Control", lines: []string{`max-age="10000"`}, wantOK: true, want: rdWant(nil)},
		{name: "decimal max-age not consumed", field: "CDN-Cache-Control", lines: []string{"max-age=3600.5"}, wantOK: true, want: rdWant(nil)},
		{name: "negative max-age not consumed", field: "CDN-Cache-Control", lines: []string{"max-age=-1"}, wantOK: true, want: rdWant(nil)},
		{name: "too many digits: invalid", field: "CDN-Cache-Control", lines: []string{"max-age=1234567890123456"}},
		{name: "large integer saturates", field: "CDN-Cache-Control", lines: []string{"max-age=99999999999"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 1 << 31 })},
		{name: "space before equals: invalid", field: "CDN-Cache-Control", lines: []string{"max-age =100"}},
		{name: "space after equals: invalid", field: "CDN-Cache-Control", lines: []string{"max-age= 100"}},
		{name: "trailing comma: invalid", field: "CDN-Cache-Control", lines: []string{"max-age=1,"}},
		{name: "empty: ignored", field: "CDN-Cache-Control", lines: []string{"", " "}},
		{name: "parameters ignored", field: "CDN-Cache-Control", lines: []string{"max-age=60;a=1;b, public;x"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge, d.Public = 60, true })},
		{name: "booleans", field: "CDN-Cache-Control", lines: []string{"no-store=?0, no-cache, private=?1"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.NoCache, d.Private = true, true })},
		{name: "later member overwrites", field: "CDN-Cache-Control", lines: []string{"max-age=1, max-age=60"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 60 })},
		{name: "lines joined", field: "CDN-Cache-Control", lines: []string{"max-age=60", "no-cache"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge, d.NoCache = 60, true })},
		{name: "private with an inner list", field: "CDN-Cache-Control", lines: []string{`private=("Set-Cookie" x-user), max-age=5`}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.PrivateFields, d.MaxAge = []string{"set-cookie", "x-user"}, 5 })},
		{name: "empty inner list reads as unqualified", field: "CDN-Cache-Control", lines: []string{`no-cache=()`}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.NoCache = true })},
		{name: "every bare item type parses", field: "CDN-Cache-Control", lines: []string{`a=1, b=-2.5, c="s\"q", d=tok/x:y, e=:aGk=:, f=?1, g=@1659578233, h=%"x", i=(1 "a" b;p=1);q=2, public`}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.Public = true })},
		{name: "bad string escape", field: "CDN-Cache-Control", lines: []string{`a="\x"`}},
		{name: "unterminated inner list", field: "CDN-Cache-Control", lines: []string{`a=(1 2`}},
		{name: "any other field is a dictionary", field: "Edge-Cache-Control", lines: []string{"s-maxage=60"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.SMaxAge = 60 })},

		{name: "Surrogate-Control max-age", field: "Surrogate-Control", lines: []string{"max-age=300"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 300 })},
		{name: "Surrogate-Control max-age+stale", field: "Surrogate-Control", lines: []string{"max-age=30+60"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge, d.StaleIfError = 30, 60 })},
		{name: "Surrogate-Control explicit stale-if-error wins", field: "surrogate-control", lines: []string{"stale-if-error=5, max-age=30+60"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge, d.StaleIfError = 30, 5 })},
		{name: "Surrogate-Control target suffix ignored", field: "Surrogate-Control", lines: []string{"no-store;edge1, max-age=5;edge2"}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.NoStore, d.MaxAge = true, 5 })},
		{name: "Surrogate-Control content only: ignored", field: "Surrogate-Control", lines: []string{`content="ESI/1.0"`}},
		{name: "Surrogate-Control content and max-age", field: "Surrogate-Control", lines: []string{`content="ESI/1.0 ESI-Inline/1.0", max-age=60`}, wantOK: true, want: rdWant(func(d *ResponseDirectives) { d.MaxAge = 60 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var lines [][]byte
			for _, l := range tc.lines {
				lines = append(lines, []byte(l))
			}
			got, ok := parseTargeted(tc.field, lines)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tc.wantOK, got)
			}
			if ok && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseRequestDirectives(t *testing.T) {
	none := RequestDirectives{MaxAge: -1, MaxStale: -1, MinFresh: -1}
	with := func(f func(*RequestDirectives)) RequestDirectives {
		rd := none
		f(&rd)
		return rd
	}
	tests := []struct {
		name   string
		fields []string
		want   RequestDirectives
	}{
		{name: "none", want: none},
		{name: "max-age=0", fields: []string{"Cache-Control: max-age=0"}, want: with(func(r *RequestDirectives) { r.MaxAge = 0 })},
		{name: "invalid max-age counts as 0", fields: []string{"Cache-Control: max-age=x"}, want: with(func(r *RequestDirectives) { r.MaxAge = 0 })},
		{name: "bare max-stale", fields: []string{"Cache-Control: max-stale"}, want: with(func(r *RequestDirectives) { r.MaxStale = math.MaxInt64 })},
		{name: "max-stale=10", fields: []string{"Cache-Control: MAX-STALE=10"}, want: with(func(r *RequestDirectives) { r.MaxStale = 10 })},
		{name: "invalid max-stale ignored", fields: []string{"Cache-Control: max-stale=ten"}, want: none},
		{name: "min-fresh", fields: []string{`Cache-Control: min-fresh="20"`}, want: with(func(r *RequestDirectives) { r.MinFresh = 20 })},
		{name: "invalid min-fresh ignored", fields: []string{"Cache-Control: min-fresh"}, want: none},
		{name: "flags", fields: []string{"Cache-Control: no-cache, no-store, only-if-cached"}, want: with(func(r *RequestDirectives) { r.NoCache, r.NoStore, r.OnlyIfCached = true, true, true })},
		{name: "several lines, first occurrence wins", fields: []string{"Cache-Control: max-age=5", "Cache-Control: max-age=1, no-store"}, want: with(func(r *RequestDirectives) { r.MaxAge, r.NoStore = 5, true })},
		{name: "Pragma no-cache without Cache-Control", fields: []string{"Pragma: no-cache"}, want: with(func(r *RequestDirectives) { r.NoCache = true })},
		{name: "Pragma no-cache with Cache-Control", fields: []string{"Pragma: no-cache", "Cache-Control: max-stale=1"}, want: with(func(r *RequestDirectives) { r.MaxStale = 1 })},
		{name: "Pragma extension", fields: []string{"Pragma: x-foo, No-Cache"}, want: with(func(r *RequestDirectives) { r.NoCache = true })},
		{name: "Pragma other", fields: []string{"Pragma: unrecognised-extension"}, want: none},
		{name: "quoted text", fields: []string{`Cache-Control: x="no-cache", max-age=3`}, want: with(func(r *RequestDirectives) { r.MaxAge = 3 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := ptReq(t, "GET", "/", tc.fields...)
			if got := ParseRequestDirectives(req); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseRequestDirectivesAllocatesNothing(t *testing.T) {
	req := ptReq(t, "GET", "/", "Cache-Control: max-age=10, max-stale, no-cache", "Pragma: no-cache", "Cookie: a=b", "Cache-Control: min-fresh=5")
	var rd RequestDirectives
	if n := testing.AllocsPerRun(1000, func() { rd = ParseRequestDirectives(req) }); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
	if rd.MaxAge != 10 || rd.MinFresh != 5 || !rd.NoCache {
		t.Errorf("parsed %+v", rd)
	}
}

// TestReadRequest: the flags ReadRequest reads beside the directives,
// and that a request without Conditional (Ranged) is never answered by
// NotModified (RangeFor), whatever the entry.
func TestReadRequest(t *testing.T) {
	tests := []struct {
		name                      string
		method                    string
		fields                    []string
		auth, conditional, ranged bool
	}{
		{name: "none"},
		{name: "Authorization", fields: []string{"Authorization: Bearer x"}, auth: true},
		{name: "lower-case Authorization", fields: []string{"authorization: Basic eA=="}, auth: true},
		{name: "empty Authorization", fields: []string{"Authorization:"}},
		{name: "empty first Authorization line", fields: []string{"Authorization:", "Authorization: Basic eA=="}},
		{name: "If-None-Match", fields: []string{`If-None-Match: "v1"`}, conditional: true},
		{name: "If-Modified-Since", fields: []string{"If-Modified-Since: " + ptAt(0)}, conditional: true},
		{name: "If-Match is not", fields: []string{`If-Match: "v1"`, "If-Unmodified-Since: " + ptAt(0)}},
		{name: "Range", fields: []string{"Range: bytes=0-1"}, ranged: true},
		{name: "Range and If-Range", fields: []string{"Range: bytes=0-1", `If-Range: "v1"`}, ranged: true},
		{name: "If-Range alone", fields: []string{`If-Range: "v1"`}},
		{name: "HEAD with all", method: "HEAD", fields: []string{"Authorization: x", `If-None-Match: *`, "Range: bytes=-1", "Cookie: a=b", "Cache-Control: no-cache"},
			auth: true, conditional: true, ranged: true},
	}
	entries := []*Entry{ctEntry(nil), ctEntry(func(e *Entry) { e.ETag = nil }), ctEntry(func(e *Entry) { e.Status = 404 })}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			req := ptReq(t, method, "/", tc.fields...)
			ri := ReadRequest(req)
			if ri.Authorization != tc.auth || ri.Conditional != tc.conditional || ri.Ranged != tc.ranged {
				t.Errorf("got %+v, want auth %v, conditional %v, ranged %v", ri, tc.auth, tc.conditional, tc.ranged)
			}
			if peeked := len(req.Peek("Authorization")) > 0; ri.Authorization != peeked {
				t.Errorf("Authorization %v, but Peek finds %v", ri.Authorization, peeked)
			}
			if ri.Directives != ParseRequestDirectives(req) {
				t.Errorf("directives %+v, ParseRequestDirectives %+v", ri.Directives, ParseRequestDirectives(req))
			}
			for _, e := range entries {
				if !ri.Conditional && NotModified(e, req) {
					t.Errorf("not Conditional, but NotModified")
				}
				if _, _, ok, unsatisfiable := RangeFor(e, req); !ri.Ranged && (ok || unsatisfiable) {
					t.Errorf("not Ranged, but RangeFor is ok")
				}
			}
		})
	}
}

func TestReadRequestAllocatesNothing(t *testing.T) {
	req := ptReq(t, "GET", "/", "Cache-Control: max-age=10", "Authorization: x", "Cookie: a=b", `If-None-Match: "a"`, "Range: bytes=1-2")
	var ri RequestInfo
	if n := testing.AllocsPerRun(1000, func() { ri = ReadRequest(req) }); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
	if ri.Directives.MaxAge != 10 || !ri.Authorization || !ri.Conditional || !ri.Ranged {
		t.Errorf("read %+v", ri)
	}
}

func TestParseAge(t *testing.T) {
	tests := []struct {
		name, in string
		want     int64
	}{
		{"number", "30", 30},
		{"spaces", " 30 ", 30},
		{"non-numeric", "abc", 0},
		{"negative", "-7200", 0},
		{"float", "7200.0", 0},
		{"2^31-1", "2147483647", 2147483647},
		{"2^31", "2147483648", 1 << 31},
		{"2^31+1 saturates", "2147483649", 1 << 31},
		{"list: first member", "7200, 0", 7200},
		{"list: first member zero", "0, 7200", 0},
		{"parameter", "7200;foo=bar", 7200},
		{"empty", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseAge([]byte(tc.in)); got != tc.want {
				t.Errorf("parseAge(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseResponseDirectives(f *testing.F) {
	for _, s := range []string{
		"max-age=60", `no-cache="a, b", private`, `x="\"`, "max-age=30+60, no-store;edge", "max-age='1'", ",,", `a="`,
		"MaX-aGe=99999999999999999999, s-maxage=0, stale-if-error=5",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, surrogate bool) {
		var d ResponseDirectives
		if surrogate {
			d, _ = parseTargeted("Surrogate-Control", [][]byte{[]byte(s)})
		} else {
			d = ParseResponseDirectives([]byte(s), []byte(s))
		}
		for _, v := range []int64{d.MaxAge, d.SMaxAge, d.StaleWhileRevalidate, d.StaleIfError} {
			if v < -1 || v > maxDeltaSeconds {
				t.Fatalf("delta out of range: %+v", d)
			}
		}
		for _, list := range [][]string{d.NoCacheFields, d.PrivateFields} {
			for _, n := range list {
				if n == "" || n != strings.ToLower(n) || !isToken([]byte(n)) {
					t.Fatalf("bad field name %q", n)
				}
			}
		}
		// The same input once or twice says the same: only first
		// occurrences and flags count.
		if !surrogate {
			once := ParseResponseDirectives([]byte(s))
			if once.MaxAge != d.MaxAge || once.SMaxAge != d.SMaxAge || once.NoStore != d.NoStore || once.NoCache != d.NoCache || once.Private != d.Private {
				t.Fatalf("doubling the line changed the result: %+v vs %+v", once, d)
			}
		}
	})
}

func FuzzParseTargeted(f *testing.F) {
	for _, s := range []string{
		"max-age=60", `private=("a" b), no-store=?0`, "max-age=10000, &&&&&", `a=:aGk=:, b=%"x", c=@1`, "max-age=1.25;x=?1", "a=(", "a=-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in := []byte(s)
		d, ok := parseTargeted("CDN-Cache-Control", [][]byte{in})
		if !ok && !reflect.DeepEqual(d, emptyResponseDirectives()) {
			t.Fatalf("ignored field left directives: %+v", d)
		}
		for _, v := range []int64{d.MaxAge, d.SMaxAge, d.StaleWhileRevalidate, d.StaleIfError} {
			if v < -1 || v > maxDeltaSeconds {
				t.Fatalf("delta out of range: %+v", d)
			}
		}
		if string(in) != s {
			t.Fatalf("input modified")
		}
	})
}

// BenchmarkReadRequest is the reading of a browser's request for a hit:
// ReadRequest's one pass against a pass per question.
func BenchmarkReadRequest(b *testing.B) {
	req := ptReq(b, "GET", "/p/1", "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "Accept-Language: en-US,en;q=0.5",
		"Accept-Encoding: gzip, deflate, br", "Connection: keep-alive", "Cookie: session=0123456789abcdef; theme=dark; consent=yes",
		"Upgrade-Insecure-Requests: 1", "Sec-Fetch-Dest: document", "Sec-Fetch-Mode: navigate", "Sec-Fetch-Site: none", "Priority: u=0, i")
	e := ctEntry(nil)
	b.Run("passes", func(b *testing.B) {
		for b.Loop() {
			_ = ParseRequestDirectives(req)
			_ = len(req.Peek("Authorization")) > 0
			_ = NotModified(e, req)
			_, _, _, _ = RangeFor(e, req)
		}
	})
	b.Run("ReadRequest", func(b *testing.B) {
		for b.Loop() {
			ri := ReadRequest(req)
			if ri.Conditional {
				_ = NotModified(e, req)
			}
			if ri.Ranged {
				_, _, _, _ = RangeFor(e, req)
			}
		}
	})
}
