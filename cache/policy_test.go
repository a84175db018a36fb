package cache

import (
	"bufio"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// ptT0 is when the test responses are received.
var ptT0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// ptAt is the HTTP-date sec seconds after ptT0.
func ptAt(sec int) string {
	return string(fasthttp.AppendHTTPDate(nil, ptT0.Add(time.Duration(sec)*time.Second)))
}

// ptResp parses a response header with the given status and "Name:
// value" fields, as fasthttp reads a node's answer (with no invented
// Content-Type, as under the project's server settings).
func ptResp(tb testing.TB, status int, fields ...string) *fasthttp.ResponseHeader {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d Whatever\r\n", status)
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("\r\n")
	h := new(fasthttp.ResponseHeader)
	h.SetNoDefaultContentType(true)
	if err := h.Read(bufio.NewReader(strings.NewReader(b.String()))); err != nil {
		tb.Fatalf("parsing response %q: %v", b.String(), err)
	}
	return h
}

// ptReq parses a request header for target with the given fields.
func ptReq(tb testing.TB, method, target string, fields ...string) *fasthttp.RequestHeader {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: example.com\r\n", method, target)
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("\r\n")
	h := new(fasthttp.RequestHeader)
	if err := h.Read(bufio.NewReader(strings.NewReader(b.String()))); err != nil {
		tb.Fatalf("parsing request %q: %v", b.String(), err)
	}
	return h
}

// ptPolicy is the policy with the configuration defaults (config/cache.go).
func ptPolicy() *Policy {
	return &Policy{
		ControlHeaders:    []string{"CDN-Cache-Control", "Surrogate-Control"},
		TagHeaders:        []string{"Surrogate-Key", "Cache-Tag", "X-Magento-Tags"},
		HeuristicFraction: 0.1,
		HeuristicMax:      24 * time.Hour,
		Keep:              time.Hour,
		MaxObjectSize:     8 << 20,
	}
}

// ptEntry stores a response to a GET of / received at ptT0.
func ptEntry(tb testing.TB, p *Policy, status int, req []string, resp ...string) (*Entry, string) {
	tb.Helper()
	return p.NewEntry("GET http://example.com/", ptReq(tb, "GET", "/", req...), ptResp(tb, status, resp...), []byte("body"), ptT0, ptT0)
}

// ptScenario is one cache-tests test (tests/*.mjs in http-tests/cache-tests)
// reduced to a stored response and a later request.
type ptScenario struct {
	id     string
	status int           // 200 when 0
	req    []string      // the first request's fields
	resp   []string      // the response's fields; Date: ptT0 is added when absent, as the test server does
	pause  time.Duration // pause_after: 3s
	req2   []string      // the second request's fields
	policy func(*Policy) // changes to the default policy
	// want is what cache-tests observes: "cached", "not_cached", or
	// "validated" (etag_validated / lm_validated).
	want string
}

const ptPause = 3 * time.Second

// ptOutcome plays a scenario as the router does with this package.
func ptOutcome(tb testing.TB, sc ptScenario) string {
	tb.Helper()
	p := ptPolicy()
	if sc.policy != nil {
		sc.policy(p)
	}
	status := sc.status
	if status == 0 {
		status = 200
	}
	resp := sc.resp
	if !slices.ContainsFunc(resp, func(f string) bool { return strings.HasPrefix(strings.ToLower(f), "date:") }) {
		resp = append([]string{"Date: " + ptAt(0)}, resp...)
	}
	e, _ := ptEntry(tb, p, status, sc.req, resp...)
	if e == nil {
		return "not_cached"
	}
	req2 := ptReq(tb, "GET", "/", sc.req2...)
	if ok, _ := e.Matches(req2, nil); !ok {
		return "not_cached"
	}
	now := ptT0.Add(sc.pause)
	rd := ParseRequestDirectives(req2)
	hasAuth := len(req2.Peek("Authorization")) > 0
	switch Usable(e, rd, hasAuth, now) {
	case UseFresh, UseStale:
		return "cached"
	}
	if StaleAllowed(e, rd, hasAuth) && CanServeStaleWhileRevalidate(e, now) {
		return "cached"
	}
	if e.ETag != nil || e.LastModified != nil {
		return "validated"
	}
	return "not_cached"
}

// TestCacheTestsScenarios checks the suite's expectations (required and
// optimal tests; check tests where a decision was made) against
// Storable, NewEntry, Matches, Usable and the stale rules together.
func TestCacheTestsScenarios(t *testing.T) {
	fresh := []string{"Expires: " + ptAt(100000), "Last-Modified: " + ptAt(0), "Date: " + ptAt(0)}
	stale := []string{"Expires: " + ptAt(-5000), "Last-Modified: " + ptAt(-100000), "Date: " + ptAt(0)}
	heur := func(extra ...string) []string {
		return append([]string{"Last-Modified: " + ptAt(-24*3600), "Date: " + ptAt(0)}, extra...)
	}
	tests := []ptScenario{
		// cc-freshness
		{id: "freshness-none", want: "not_cached", pause: ptPause},
		{id: "freshness-max-age", resp: []string{"Cache-Control: max-age=3600"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-stale", resp: []string{"Cache-Control: max-age=2"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-0", resp: []string{"Cache-Control: max-age=0"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-max-minus-1", resp: []string{"Cache-Control: max-age=2147483647"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-max", resp: []string{"Cache-Control: max-age=2147483648"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-max-plus-1", resp: []string{"Cache-Control: max-age=2147483649"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-max-plus", resp: []string{"Cache-Control: max-age=99999999999"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-age", resp: []string{"Date: " + ptAt(0), "Cache-Control: max-age=3600", "Age: 7200"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-date", resp: []string{"Date: " + ptAt(-7200), "Cache-Control: max-age=3600"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-expires", resp: []string{"Cache-Control: max-age=3600", "Expires: " + ptAt(-7200), "Date: " + ptAt(0)}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-expires-invalid", resp: []string{"Cache-Control: max-age=3600", "Expires: 0", "Date: " + ptAt(0)}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-0-expires", resp: []string{"Expires: " + ptAt(3600), "Cache-Control: max-age=0", "Date: " + ptAt(0)}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-extension", resp: []string{"Cache-Control: foobar, max-age=3600"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-case-insenstive", resp: []string{"Cache-Control: MaX-aGe=3600"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-negative", resp: []string{"Cache-Control: max-age=-3600"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-s-maxage-shared", resp: []string{"Cache-Control: s-maxage=3600"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-s-maxage-shared-longer", resp: []string{"Cache-Control: max-age=3600, s-maxage=1"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-s-maxage-shared-longer-reversed", resp: []string{"Cache-Control: s-maxage=1, max-age=3600"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-s-maxage-shared-longer-multiple", resp: []string{"Cache-Control: max-age=3600", "Cache-Control: s-maxage=1"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-s-maxage-shared-shorter", resp: []string{"Cache-Control: max-age=1, s-maxage=3600"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-s-maxage-shared-shorter-expires", resp: []string{"Expires: " + ptAt(-10), "Cache-Control: max-age=0, s-maxage=3600"}, pause: ptPause, want: "cached"},

		// cc-parse (check tests: the first occurrence of a duplicate wins,
		// RFC 9111 §4.2.1, so the stale-then-fresh ones answer N)
		{id: "freshness-max-age-two-fresh-stale-sameline", resp: []string{"Cache-Control: max-age=1800, max-age=1"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-two-fresh-stale-sepline", resp: []string{"Cache-Control: max-age=1800", "Cache-Control: max-age=1"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-two-stale-fresh-sameline (check, N)", resp: []string{"Cache-Control: max-age=1, max-age=1800"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-two-stale-fresh-sepline (check, N)", resp: []string{"Cache-Control: max-age=1", "Cache-Control: max-age=1800"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-quoted", resp: []string{`Cache-Control: max-age="3600"`}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-ignore-quoted", resp: []string{`Cache-Control: extension="max-age=3600", max-age=1`}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-ignore-quoted-rev", resp: []string{`Cache-Control: max-age=1, extension="max-age=3600"`}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-space-before-equals", resp: []string{"Cache-Control: max-age =3600"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-space-after-equals", resp: []string{"Cache-Control: max-age= 3600"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-max-age-leading-zero", resp: []string{"Cache-Control: max-age=003600"}, pause: ptPause, want: "cached"},
		{id: "freshness-max-age-single-quoted", resp: []string{"Cache-Control: max-age='3600'"}, pause: ptPause, want: "not_cached"},

		// age-parse
		{id: "age-parse-nonnumeric", resp: []string{"Cache-Control: max-age=3600", "Age: abc"}, pause: ptPause, want: "cached"},
		{id: "age-parse-negative", resp: []string{"Cache-Control: max-age=3600", "Age: -7200"}, pause: ptPause, want: "cached"},
		{id: "age-parse-float", resp: []string{"Cache-Control: max-age=3600", "Age: 7200.0"}, pause: ptPause, want: "cached"},
		{id: "age-parse-large-minus-one", resp: []string{"Cache-Control: max-age=3600", "Age: 2147483647"}, pause: ptPause, want: "not_cached"},
		{id: "age-parse-large", resp: []string{"Cache-Control: max-age=3600", "Age: 2147483648"}, pause: ptPause, want: "not_cached"},
		{id: "age-parse-larger", resp: []string{"Cache-Control: max-age=3600", "Age: 2147483649"}, pause: ptPause, want: "not_cached"},
		{id: "age-parse-suffix", resp: []string{"Cache-Control: max-age=3600", "Age: 7200, 0"}, pause: ptPause, want: "not_cached"},
		{id: "age-parse-prefix", resp: []string{"Cache-Control: max-age=3600", "Age: 0, 7200"}, pause: ptPause, want: "cached"},
		{id: "age-parse-suffix-twoline", resp: []string{"Cache-Control: max-age=3600", "Age: 7200", "Age: 0"}, pause: ptPause, want: "not_cached"},
		{id: "age-parse-prefix-twoline", resp: []string{"Cache-Control: max-age=3600", "Age: 0", "Age: 7200"}, pause: ptPause, want: "cached"},
		{id: "age-parse-dup-0", resp: []string{"Cache-Control: max-age=3600", "Age: 0, 0"}, pause: ptPause, want: "cached"},
		{id: "age-parse-dup-0-twoline", resp: []string{"Cache-Control: max-age=3600", "Age: 0", "Age: 0"}, pause: ptPause, want: "cached"},
		{id: "age-parse-dup-old", resp: []string{"Cache-Control: max-age=10000", "Age: 3600", "Age: 3600"}, pause: ptPause, want: "cached"},
		{id: "age-parse-parameter", resp: []string{"Cache-Control: max-age=3600", "Age: 7200;foo=bar"}, pause: ptPause, want: "not_cached"},
		{id: "age-parse-numeric-parameter", resp: []string{"Cache-Control: max-age=3600", "Age: 7200;foo=111"}, pause: ptPause, want: "not_cached"},

		// expires
		{id: "freshness-expires-future", resp: []string{"Expires: " + ptAt(30*24*3600), "Date: " + ptAt(0)}, pause: ptPause, want: "cached"},
		{id: "freshness-expires-past", resp: []string{"Expires: " + ptAt(-30*24*3600), "Date: " + ptAt(0)}, pause: ptPause, want: "not_cached"},
		{id: "freshness-expires-present", resp: []string{"Expires: " + ptAt(0), "Date: " + ptAt(0)}, want: "not_cached"},
		{id: "freshness-expires-old-date", resp: []string{"Expires: " + ptAt(300), "Date: " + ptAt(400)}, pause: ptPause, want: "not_cached"},
		{id: "freshness-expires-invalid", resp: []string{"Expires: 0", "Date: " + ptAt(0)}, pause: ptPause, want: "not_cached"},
		{id: "ancient Date: stale, no overflow", resp: []string{"Date: Mon, 01 Jan 0001 00:00:00 GMT", "Cache-Control: max-age=60", `ETag: "x"`}, want: "validated"},
		{id: "freshness-expires-invalid-date", resp: []string{"Date: foo", "Expires: " + ptAt(10)}, want: "cached"},
		{id: "freshness-expires-age-slow-date", resp: []string{"Date: " + ptAt(-10), "Expires: " + ptAt(10), "Age: 25"}, want: "not_cached"},
		{id: "freshness-expires-age-fast-date", resp: []string{"Date: " + ptAt(10), "Expires: " + ptAt(20), "Age: 15"}, want: "not_cached"},

		// expires-parse
		{id: "freshness-expires-32bit", resp: []string{"Expires: Tue, 19 Jan 2038 14:14:08 GMT"}, pause: ptPause, want: "cached"},
		{id: "freshness-expires-far-future", resp: []string{"Expires: Sun, 21 Nov 2286 04:46:39 GMT"}, pause: ptPause, want: "cached"},
		{id: "freshness-expires-rfc850", resp: []string{"Expires: Thursday, 18-Aug-50 02:01:18 GMT"}, pause: ptPause, want: "cached"},
		{id: "freshness-expires-ansi-c", resp: []string{"Expires: Thu Aug  8 02:01:18 2050"}, pause: ptPause, want: "cached"},
		{id: "freshness-expires-wrong-case-weekday", resp: []string{"Expires: THU, 18 Aug 2050 02:01:18 GMT"}, pause: ptPause, want: "cached"},
		{id: "freshness-expires-wrong-case-month", resp: []string{"Expires: Thu, 18 AUG 2050 02:01:18 GMT"}, pause: ptPause, want: "cached"},
		{id: "freshness-expires-wrong-case-tz", resp: []string{"Expires: Thu, 18 Aug 2050 02:01:18 gMT"}, pause: ptPause, want: "cached"},
		{id: "freshness-expires-invalid-utc", resp: []string{"Expires: Thu, 18 Aug 2050 02:01:18 UTC"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-expires-invalid-aest", resp: []string{"Expires: Thu, 18 Aug 2050 02:01:18 AEST"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-expires-invalid-2-digit-year", resp: []string{"Expires: Thu, 18 Aug 50 02:01:18 GMT"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-expires-invalid-no-comma", resp: []string{"Expires: Thu 18 Aug 2050 02:01:18 GMT"}, pause: ptPause, want: "not_cached"},
		{id: "freshness-expires-invalid-multiple-spaces", resp: []string{"Expires: Thu, 18  Aug  2050 02:01:18 GMT"}, want: "not_cached"},
		{id: "freshness-expires-invalid-date-dashes", resp: []string{"Expires: Thu, 18-Aug-2050 02:01:18 GMT"}, want: "not_cached"},
		{id: "freshness-expires-invalid-time-periods", resp: []string{"Expires: Thu, 18 Aug 2050 02.01.18 GMT"}, want: "not_cached"},
		{id: "freshness-expires-invalid-1-digit-hour", resp: []string{"Expires: Thu, 18 Aug 2050 2:01:18 GMT"}, want: "not_cached"},
		{id: "freshness-expires-invalid-multiple-lines", resp: []string{"Expires: Thu, 18 Aug 2050 2:01:18 GMT", "Expires: Thu, 18 Aug 2050 2:01:19 GMT"}, want: "not_cached"},

		// cc-response
		{id: "cc-resp-private-shared", resp: []string{"Cache-Control: private, max-age=3600"}, want: "not_cached"},
		{id: "cc-resp-no-store", resp: []string{"Cache-Control: no-store"}, want: "not_cached"},
		{id: "cc-resp-no-store-case-insensitive", resp: []string{"Cache-Control: No-StOrE"}, want: "not_cached"},
		{id: "cc-resp-no-store-fresh", resp: []string{"Cache-Control: max-age=10000, no-store", "Expires: " + ptAt(10000)}, want: "not_cached"},
		{id: "cc-resp-no-cache", resp: []string{"Cache-Control: max-age=10000, no-cache", "Expires: " + ptAt(10000)}, want: "not_cached"},
		{id: "cc-resp-no-cache-case-insensitive", resp: []string{"Cache-Control: max-age=10000, No-CaChE", "Expires: " + ptAt(10000)}, want: "not_cached"},
		{id: "cc-resp-no-cache-revalidate", resp: []string{"Cache-Control: no-cache", `ETag: "abcd"`}, want: "validated"},
		{id: "cc-resp-no-cache-revalidate-fresh", resp: []string{"Cache-Control: max-age=10000, no-cache", "Expires: " + ptAt(10000), `ETag: "abcd"`}, want: "validated"},
		{id: "cc-resp-must-revalidate-fresh", resp: []string{"Cache-Control: max-age=10000, must-revalidate", `ETag: "abcd"`}, want: "cached"},
		{id: "cc-resp-must-revalidate-stale", resp: []string{"Cache-Control: max-age=2, must-revalidate", `ETag: "abcd"`}, pause: ptPause, want: "validated"},

		// stale
		{id: "stale-while-revalidate", resp: []string{"Cache-Control: max-age=1, stale-while-revalidate=3600", `ETag: "abc"`}, pause: ptPause, want: "cached"},
		{id: "stale-while-revalidate-window (past it)", resp: []string{"Cache-Control: max-age=1, stale-while-revalidate=4", `ETag: "abc"`}, pause: 2 * ptPause, want: "validated"},
		{id: "stale-close-must-revalidate (no swr past lifetime)", resp: []string{"Cache-Control: max-age=2, must-revalidate, stale-while-revalidate=60"}, pause: ptPause, want: "not_cached"},

		// heuristic
		{id: "heuristic-200-cached", resp: heur(), want: "cached"},
		{id: "heuristic-201-not_cached", status: 201, resp: heur(), want: "not_cached"},
		{id: "heuristic-202-not_cached", status: 202, resp: heur(), want: "not_cached"},
		{id: "heuristic-203-cached", status: 203, resp: heur(), want: "cached"},
		{id: "heuristic-204-cached", status: 204, resp: heur(), want: "cached"},
		{id: "heuristic-403-not_cached", status: 403, resp: heur(), want: "not_cached"},
		{id: "heuristic-404-cached", status: 404, resp: heur(), want: "cached"},
		{id: "heuristic-405-cached", status: 405, resp: heur(), want: "cached"},
		{id: "heuristic-410-cached", status: 410, resp: heur(), want: "cached"},
		{id: "heuristic-414-cached", status: 414, resp: heur(), want: "cached"},
		{id: "heuristic-501-cached", status: 501, resp: heur(), want: "cached"},
		{id: "heuristic-502-not_cached", status: 502, resp: heur(), want: "not_cached"},
		{id: "heuristic-503-not_cached", status: 503, resp: heur(), want: "not_cached"},
		{id: "heuristic-504-not_cached", status: 504, resp: heur(), want: "not_cached"},
		{id: "heuristic-599-not_cached", status: 599, resp: heur(), want: "not_cached"},
		{id: "heuristic-599-cached (public)", status: 599, resp: heur("Cache-Control: public"), want: "cached"},
		{id: "heuristic-delta-3600 (check)", resp: []string{"Last-Modified: " + ptAt(-3600), "Date: " + ptAt(0)}, pause: ptPause, want: "cached"},
		{id: "default_ttl without Last-Modified", resp: []string{}, policy: func(p *Policy) { p.DefaultTTL = time.Minute }, pause: ptPause, want: "cached"},

		// status: every status with explicit freshness; none stale
		{id: "status-200-fresh", resp: fresh, want: "cached"},
		{id: "status-203-fresh", status: 203, resp: fresh, want: "cached"},
		{id: "status-204-fresh", status: 204, resp: fresh, want: "cached"},
		{id: "status-299-fresh", status: 299, resp: fresh, want: "cached"},
		{id: "status-301-fresh", status: 301, resp: fresh, want: "cached"},
		{id: "status-302-fresh", status: 302, resp: fresh, want: "cached"},
		{id: "status-303-fresh", status: 303, resp: fresh, want: "cached"},
		{id: "status-307-fresh", status: 307, resp: fresh, want: "cached"},
		{id: "status-308-fresh", status: 308, resp: fresh, want: "cached"},
		{id: "status-400-fresh", status: 400, resp: fresh, want: "cached"},
		{id: "status-404-fresh", status: 404, resp: fresh, want: "cached"},
		{id: "status-410-fresh", status: 410, resp: fresh, want: "cached"},
		{id: "status-499-fresh", status: 499, resp: fresh, want: "cached"},
		{id: "status-500-fresh", status: 500, resp: fresh, want: "cached"},
		{id: "status-502-fresh", status: 502, resp: fresh, want: "cached"},
		{id: "status-503-fresh", status: 503, resp: fresh, want: "cached"},
		{id: "status-504-fresh", status: 504, resp: fresh, want: "cached"},
		{id: "status-599-fresh", status: 599, resp: fresh, want: "cached"},
		{id: "status-200-stale", resp: stale, want: "validated"},
		{id: "status-302-stale", status: 302, resp: stale, want: "validated"},
		{id: "status-599-stale", status: 599, resp: stale, want: "validated"},
		{id: "status-599-must-understand", status: 599, resp: []string{"Cache-Control: max-age=3600, no-store, must-understand"}, want: "not_cached"},
		{id: "status-200-must-understand", resp: []string{"Cache-Control: max-age=3600, no-store, must-understand"}, want: "cached"},
		{id: "status-206 never stored", status: 206, resp: []string{"Cache-Control: max-age=3600", "Content-Range: bytes 4-9/10"}, want: "not_cached"},

		// vary
		{id: "vary-match", req: []string{"Foo: 1"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo"}, req2: []string{"Foo: 1"}, want: "cached"},
		{id: "vary-no-match", req: []string{"Foo: 1"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo"}, req2: []string{"Foo: 2"}, want: "not_cached"},
		{id: "vary-omit-stored", resp: []string{"Cache-Control: max-age=5000", "Vary: Foo"}, req2: []string{"Foo: 1"}, want: "not_cached"},
		{id: "vary-omit", req: []string{"Foo: 1"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo"}, want: "not_cached"},
		{id: "vary-cache-key", req: []string{"Foo: 1", "Other: 2"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo"}, req2: []string{"Foo: 1", "Other: 3"}, want: "cached"},
		{id: "vary-2-match", req: []string{"Foo: 1", "Bar: abc"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo, Bar"}, req2: []string{"Foo: 1", "Bar: abc"}, want: "cached"},
		{id: "vary-2-no-match", req: []string{"Foo: 1", "Bar: abc"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo, Bar"}, req2: []string{"Foo: 2", "Bar: abc"}, want: "not_cached"},
		{id: "vary-2-match-omit", req: []string{"Foo: 1", "Bar: abc"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo, Bar"}, want: "not_cached"},
		{id: "vary-3-match", req: []string{"Foo: 1", "Bar: abc", "Baz: 789"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo, Bar, Baz"}, req2: []string{"Foo: 1", "Bar: abc", "Baz: 789"}, want: "cached"},
		{id: "vary-3-no-match", req: []string{"Foo: 1", "Bar: abc", "Baz: 789"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo, Bar, Baz"}, req2: []string{"Foo: 2", "Bar: abc", "Baz: 789"}, want: "not_cached"},
		{id: "vary-3-order", req: []string{"Foo: 1", "Bar: abc", "Baz: 789"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo, Bar, Baz"}, req2: []string{"Foo: 1", "Baz: 789", "Bar: abcde"}, want: "not_cached"},
		{id: "vary-3-omit", req: []string{"Foo: 1", "Baz: 789"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo, Bar, Baz"}, req2: []string{"Foo: 1", "Baz: 789"}, want: "cached"},
		{id: "vary-star", req: []string{"Foo: 1"}, resp: []string{"Cache-Control: max-age=5000", "Vary: *"}, req2: []string{"Foo: 1"}, want: "not_cached"},
		{id: "vary-normalise-combine", req: []string{"Foo: 1, 2"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo"}, req2: []string{"Foo: 1", "Foo: 2"}, want: "cached"},
		{id: "vary-normalise-space", req: []string{"Foo: 1,2"}, resp: []string{"Cache-Control: max-age=5000", "Vary: Foo"}, req2: []string{"Foo:  1, 2 "}, want: "cached"},
		{id: "vary-syntax-star-star", resp: []string{"Cache-Control: max-age=5000", "Vary: *, *"}, want: "not_cached"},
		{id: "vary-syntax-star-star-lines", resp: []string{"Cache-Control: max-age=5000", "Vary: *", "Vary: *"}, want: "not_cached"},
		{id: "vary-syntax-empty-star", resp: []string{"Cache-Control: max-age=5000", "Vary: , *"}, want: "not_cached"},
		{id: "vary-syntax-empty-star-lines", resp: []string{"Cache-Control: max-age=5000", "Vary: ", "Vary: *"}, want: "not_cached"},
		{id: "vary-syntax-star-foo", resp: []string{"Cache-Control: max-age=5000", "Vary: *, Foo"}, want: "not_cached"},
		{id: "vary-syntax-foo-star", resp: []string{"Cache-Control: max-age=5000", "Vary: Foo, *"}, want: "not_cached"},

		// auth
		{id: "other-authorization", req: []string{"Authorization: FOO"}, resp: fresh, want: "not_cached"},
		{id: "other-authorization-public", req: []string{"Authorization: FOO"}, resp: []string{"Cache-Control: max-age=3600, public"}, pause: ptPause, want: "cached"},
		{id: "other-authorization-must-revalidate", req: []string{"Authorization: FOO"}, resp: []string{"Cache-Control: max-age=3600, must-revalidate"}, pause: ptPause, want: "cached"},
		{id: "other-authorization-smaxage", req: []string{"Authorization: FOO"}, resp: []string{"Cache-Control: s-maxage=3600"}, pause: ptPause, want: "cached"},
		{id: "authenticated request bypasses a shared entry", resp: fresh, req2: []string{"Authorization: FOO"}, want: "validated"},

		// other
		{id: "other-set-cookie (optimal, refused by default)", resp: append([]string{"Set-Cookie: a=b"}, fresh...), want: "not_cached"},
		{id: "other-set-cookie with strip_set_cookie", resp: append([]string{"Set-Cookie: a=b"}, fresh...), policy: func(p *Policy) { p.StripSetCookie = true }, want: "cached"},
		{id: "other-cookie", resp: fresh, req2: []string{"Cookie: a=b"}, want: "cached"},
		{id: "other-heuristic-content-disposition-attachment", resp: []string{"Last-Modified: " + ptAt(-100000), "Date: " + ptAt(0), "Content-Disposition: attachment; filename=example.txt"}, want: "cached"},

		// cdn-cache-control
		{id: "cdn-max-age", resp: []string{"CDN-Cache-Control: max-age=3600"}, pause: ptPause, want: "cached"},
		{id: "cdn-max-age-max", resp: []string{"CDN-Cache-Control: max-age=2147483648"}, pause: ptPause, want: "cached"},
		{id: "cdn-max-age-max-plus", resp: []string{"CDN-Cache-Control: max-age=99999999999"}, pause: ptPause, want: "cached"},
		{id: "cdn-max-age-age", resp: []string{"CDN-Cache-Control: max-age=3600", "Age: 7200"}, pause: ptPause, want: "not_cached"},
		{id: "cdn-max-age-space-before-equals", resp: []string{"Cache-Control: max-age=1", "CDN-Cache-Control: max-age =100"}, pause: ptPause, want: "not_cached"},
		{id: "cdn-max-age-space-after-equals", resp: []string{"Cache-Control: max-age=1", "CDN-Cache-Control: max-age= 100"}, pause: ptPause, want: "not_cached"},
		{id: "cdn-max-age-0", resp: []string{"CDN-Cache-Control: max-age=0"}, pause: ptPause, want: "not_cached"},
		{id: "cdn-max-age-extension", resp: []string{"CDN-Cache-Control: foobar, max-age=3600"}, pause: ptPause, want: "cached"},
		{id: "cdn-max-age-case-insensitive", resp: []string{"CDN-Cache-Control: MaX-aGe=3600"}, pause: ptPause, want: "cached"},
		{id: "cdn-max-age-expires", resp: []string{"CDN-Cache-Control: max-age=3600", "Expires: " + ptAt(-10000)}, pause: ptPause, want: "cached"},
		{id: "cdn-max-age-cc-max-age-invalid-expires", resp: []string{"CDN-Cache-Control: max-age=3600", "Expires: 0"}, pause: ptPause, want: "cached"},
		{id: "cdn-max-age-0-expires", resp: []string{"CDN-Cache-Control: max-age=0", "Expires: " + ptAt(10000)}, pause: ptPause, want: "not_cached"},
		{id: "cdn-max-age-short-cc-max-age", resp: []string{"Cache-Control: max-age=1", "CDN-Cache-Control: max-age=3600"}, pause: ptPause, want: "cached"},
		{id: "cdn-max-age-long-cc-max-age", resp: []string{"Cache-Control: max-age=3600", "CDN-Cache-Control: max-age=1"}, pause: ptPause, want: "not_cached"},
		{id: "cdn-private", resp: []string{"CDN-Cache-Control: private", "Cache-Control: max-age=10000", "Expires: " + ptAt(10000)}, want: "not_cached"},
		{id: "cdn-no-cache", resp: []string{"CDN-Cache-Control: no-cache", "Cache-Control: max-age=10000", "Expires: " + ptAt(10000)}, want: "not_cached"},
		{id: "cdn-no-store-cc-fresh", resp: []string{"Cache-Control: max-age=10000", "CDN-Cache-Control: no-store", "Expires: " + ptAt(10000)}, pause: ptPause, want: "not_cached"},
		{id: "cdn-fresh-cc-nostore", resp: []string{"Cache-Control: no-store", "CDN-Cache-Control: max-age=10000"}, pause: ptPause, want: "cached"},
		{id: "cdn-cc-invalid-sh-type-unknown", resp: []string{"CDN-Cache-Control: max-age=10000, &&&&&", "Cache-Control: no-store"}, pause: ptPause, want: "not_cached"},
		{id: "cdn-cc-invalid-sh-type-wrong", resp: []string{`CDN-Cache-Control: max-age="10000"`, "Cache-Control: no-store"}, pause: ptPause, want: "not_cached"},
		{id: "surrogate-control max-age over Cache-Control no-store", resp: []string{"Cache-Control: no-store", "Surrogate-Control: max-age=600"}, pause: ptPause, want: "cached"},
		{id: "surrogate-control content only leaves Cache-Control in charge", resp: []string{"Cache-Control: max-age=600", `Surrogate-Control: content="ESI/1.0"`}, pause: ptPause, want: "cached"},
		{id: "surrogate-control no-store with target", resp: []string{"Cache-Control: max-age=600", "Surrogate-Control: no-store;edge1"}, want: "not_cached"},
		{id: "cdn-cache-control wins over surrogate-control", resp: []string{"Surrogate-Control: no-store", "CDN-Cache-Control: max-age=600"}, pause: ptPause, want: "cached"},

		// pragma (check tests): request Pragma: no-cache without Cache-Control
		// counts as no-cache (RFC 9111 §5.4), so pragma-request-no-cache is N
		{id: "pragma-request-no-cache (check, N)", resp: []string{"Cache-Control: max-age=3600"}, req2: []string{"Pragma: no-cache"}, want: "not_cached"},
		{id: "pragma-request-no-cache with Cache-Control", resp: []string{"Cache-Control: max-age=3600"}, req2: []string{"Pragma: no-cache", "Cache-Control: max-stale=5"}, want: "cached"},
		{id: "pragma-request-extension", resp: []string{"Cache-Control: max-age=3600"}, req2: []string{"Pragma: unrecognised-extension"}, want: "cached"},
		{id: "pragma-response-no-cache", resp: []string{"Cache-Control: max-age=3600", "Pragma: no-cache"}, want: "cached"},
		{id: "pragma-response-no-cache-heuristic", resp: []string{"Last-Modified: " + ptAt(-10000), "Pragma: no-cache"}, want: "cached"},

		// cc-request (check tests)
		{id: "ccreq-ma0", resp: fresh, pause: ptPause, req2: []string{"Cache-Control: max-age=0"}, want: "validated"},
		{id: "ccreq-ma1", resp: []string{"Expires: " + ptAt(100000)}, pause: ptPause, req2: []string{"Cache-Control: max-age=1"}, want: "not_cached"},
		{id: "ccreq-magreaterage", resp: []string{"Cache-Control: max-age=3600", "Age: 1800"}, req2: []string{"Cache-Control: max-age=600"}, want: "not_cached"},
		{id: "ccreq-max-stale", resp: []string{"Cache-Control: max-age=1"}, pause: ptPause, req2: []string{"Cache-Control: max-stale=1000"}, want: "cached"},
		// Stale on arrival without validator or stale window: not worth
		// storing for the rare max-stale request.
		{id: "ccreq-max-stale-age (check, N)", resp: []string{"Cache-Control: max-age=1500", "Age: 2000"}, req2: []string{"Cache-Control: max-stale=1000"}, want: "not_cached"},
		{id: "ccreq-max-stale must-revalidate", resp: []string{"Cache-Control: max-age=1, must-revalidate"}, pause: ptPause, req2: []string{"Cache-Control: max-stale"}, want: "not_cached"},
		{id: "ccreq-min-fresh", resp: []string{"Cache-Control: max-age=1500"}, req2: []string{"Cache-Control: min-fresh=2000"}, want: "not_cached"},
		{id: "ccreq-min-fresh-age", resp: []string{"Cache-Control: max-age=1500", "Age: 1000"}, req2: []string{"Cache-Control: min-fresh=1000"}, want: "not_cached"},
		{id: "ccreq-no-cache", resp: []string{"Cache-Control: max-age=3600"}, req2: []string{"Cache-Control: no-cache"}, want: "not_cached"},
		{id: "ccreq-no-cache-lm", resp: []string{"Cache-Control: max-age=3600", "Last-Modified: " + ptAt(-10000)}, req2: []string{"Cache-Control: no-cache"}, want: "validated"},
		{id: "ccreq-no-cache-etag", resp: []string{"Cache-Control: max-age=3600", `ETag: "abc"`}, req2: []string{"Cache-Control: no-cache"}, want: "validated"},
	}
	for _, sc := range tests {
		t.Run(sc.id, func(t *testing.T) {
			if got := ptOutcome(t, sc); got != sc.want {
				t.Errorf("%s: got %s, want %s", sc.id, got, sc.want)
			}
		})
	}
}

func TestStorable(t *testing.T) {
	tests := []struct {
		name   string
		method string
		req    []string
		status int
		resp   []string
		policy func(*Policy)
		want   string
	}{
		{name: "fresh GET", resp: []string{"Cache-Control: max-age=60"}, want: ""},
		{name: "HEAD is not stored", method: "HEAD", resp: []string{"Cache-Control: max-age=60"}, want: ReasonMethod},
		{name: "POST is not stored", method: "POST", resp: []string{"Cache-Control: max-age=60"}, want: ReasonMethod},
		{name: "206", status: 206, resp: []string{"Cache-Control: max-age=60"}, want: ReasonStatus},
		{name: "304", status: 304, resp: []string{"Cache-Control: max-age=60"}, want: ReasonStatus},
		{name: "103 interim", status: 103, resp: []string{"Cache-Control: max-age=60"}, want: ReasonStatus},
		{name: "no-store", resp: []string{"Cache-Control: max-age=60, no-store"}, want: ReasonNoStore},
		{name: "no-store, must-understand, known status", resp: []string{"Cache-Control: max-age=60, no-store, must-understand"}, want: ""},
		{name: "must-understand, unknown status", status: 299, resp: []string{"Cache-Control: max-age=60, must-understand"}, want: ReasonStatus},
		{name: "private", resp: []string{"Cache-Control: private, max-age=60"}, want: ReasonPrivate},
		{name: "qualified private is storable", resp: []string{`Cache-Control: private="Set-Cookie", max-age=60`}, want: ""},
		{name: "CDN-Cache-Control private", resp: []string{"Cache-Control: max-age=60", "CDN-Cache-Control: private"}, want: ReasonPrivate},
		{name: "CDN-Cache-Control no-store over fresh Cache-Control", resp: []string{"Cache-Control: max-age=60", "CDN-Cache-Control: no-store"}, want: ReasonNoStore},
		{name: "Cache-Control private ignored under CDN-Cache-Control", resp: []string{"Cache-Control: private", "CDN-Cache-Control: max-age=60"}, want: ""},
		{name: "Authorization", req: []string{"Authorization: Basic x"}, resp: []string{"Cache-Control: max-age=60"}, want: ReasonAuthorization},
		{name: "Authorization, empty value", req: []string{"Authorization:"}, resp: []string{"Cache-Control: max-age=60"}, want: ReasonAuthorization},
		{name: "Authorization and public", req: []string{"Authorization: Basic x"}, resp: []string{"Cache-Control: max-age=60, public"}, want: ""},
		{name: "Authorization and s-maxage", req: []string{"Authorization: Basic x"}, resp: []string{"Cache-Control: s-maxage=60"}, want: ""},
		{name: "Authorization and must-revalidate", req: []string{"Authorization: Basic x"}, resp: []string{"Cache-Control: max-age=60, must-revalidate"}, want: ""},
		{name: "Vary star", resp: []string{"Cache-Control: max-age=60", "Vary: Accept, *"}, want: ReasonVaryStar},
		{name: "Set-Cookie", resp: []string{"Cache-Control: max-age=60", "Set-Cookie: a=b"}, want: ReasonSetCookie},
		{name: "Set-Cookie stripped", resp: []string{"Cache-Control: max-age=60", "Set-Cookie: a=b"}, policy: func(p *Policy) { p.StripSetCookie = true }, want: ""},
		{name: "Content-Length too large", resp: []string{"Cache-Control: max-age=60", "Content-Length: 101"}, policy: func(p *Policy) { p.MaxObjectSize = 100 }, want: ReasonTooLarge},
		{name: "Content-Length at the limit", resp: []string{"Cache-Control: max-age=60", "Content-Length: 100"}, policy: func(p *Policy) { p.MaxObjectSize = 100 }, want: ""},
		{name: "302 without explicit freshness", status: 302, resp: []string{`ETag: "x"`}, want: ReasonStatus},
		{name: "302 public", status: 302, resp: []string{"Cache-Control: public", `ETag: "x"`}, want: ""},
		{name: "302 with Expires", status: 302, resp: []string{"Expires: " + ptAt(60)}, want: ""},
		{name: "302 with a targeted field", status: 302, resp: []string{"CDN-Cache-Control: max-age=60"}, want: ""},
		{name: "no lifetime, no validator", resp: []string{"Cache-Control: max-age=0"}, want: ReasonNoLifetime},
		{name: "stale on arrival, no validator", resp: []string{"Cache-Control: max-age=60", "Age: 120"}, want: ReasonNoLifetime},
		{name: "no lifetime but ETag and keep", resp: []string{"Cache-Control: max-age=0", `ETag: "x"`}, want: ""},
		{name: "no lifetime, ETag, no keep", resp: []string{"Cache-Control: max-age=0", `ETag: "x"`}, policy: func(p *Policy) { p.Keep = 0 }, want: ReasonNoLifetime},
		{name: "no lifetime but stale-if-error", resp: []string{"Cache-Control: max-age=0, stale-if-error=60"}, want: ""},
		{name: "no lifetime but route grace", resp: []string{"Cache-Control: max-age=0"}, policy: func(p *Policy) { p.Grace = time.Minute }, want: ""},
		{name: "grace unusable with must-revalidate", resp: []string{"Cache-Control: max-age=0, must-revalidate"}, policy: func(p *Policy) { p.Grace = time.Minute }, want: ReasonNoLifetime},
		{name: "no-cache without validator", resp: []string{"Cache-Control: no-cache, max-age=60"}, want: ReasonNoLifetime},
		{name: "no-cache with Last-Modified", resp: []string{"Cache-Control: no-cache", "Last-Modified: " + ptAt(-60)}, want: ""},
		{name: "qualified no-cache is not no-cache", resp: []string{`Cache-Control: no-cache="Set-Cookie", max-age=60`}, want: ""},
		{name: "heuristic", resp: []string{"Last-Modified: " + ptAt(-3600)}, want: ""},
		{name: "heuristic off", resp: []string{"Last-Modified: " + ptAt(-3600)}, policy: func(p *Policy) { p.HeuristicFraction, p.Keep = 0, 0 }, want: ReasonNoLifetime},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ptPolicy()
			if tc.policy != nil {
				tc.policy(p)
			}
			method := tc.method
			if method == "" {
				method = "GET"
			}
			status := tc.status
			if status == 0 {
				status = 200
			}
			req := ptReq(t, method, "/", tc.req...)
			var resp *fasthttp.ResponseHeader
			if status < 200 {
				resp = ptResp(t, 200, append([]string{"Date: " + ptAt(0)}, tc.resp...)...)
				resp.SetStatusCode(status)
			} else {
				resp = ptResp(t, status, append([]string{"Date: " + ptAt(0)}, tc.resp...)...)
			}
			if got := p.Storable(req, resp, ptT0); got != tc.want {
				t.Errorf("Storable = %q, want %q", got, tc.want)
			}
			// NewEntry agrees.
			e, why := p.NewEntry("k", req, resp, nil, ptT0, ptT0)
			if why != tc.want || (e == nil) != (tc.want != "") {
				t.Errorf("NewEntry = %v, %q; want reason %q", e != nil, why, tc.want)
			}
		})
	}
}

func TestNewEntryTooLargeBody(t *testing.T) {
	p := ptPolicy()
	p.MaxObjectSize = 4
	req := ptReq(t, "GET", "/")
	resp := ptResp(t, 200, "Cache-Control: max-age=60")
	for _, tc := range []struct {
		name string
		body string
		want string
	}{
		{name: "at the limit", body: "1234", want: ""},
		{name: "over the limit, chunked (no Content-Length)", body: "12345", want: ReasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, why := p.NewEntry("k", req, resp, []byte(tc.body), ptT0, ptT0); why != tc.want {
				t.Errorf("reason %q, want %q", why, tc.want)
			}
		})
	}
}

func TestNewEntryFreshness(t *testing.T) {
	type want struct {
		lifetime               time.Duration
		heuristic              bool
		swr, sie               time.Duration
		noStale, noCache, auth bool
		date, age              int64
	}
	tests := []struct {
		name   string
		resp   []string
		policy func(*Policy)
		want   want
	}{
		{name: "max-age", resp: []string{"Cache-Control: max-age=60"}, want: want{lifetime: time.Minute}},
		{name: "s-maxage wins over max-age", resp: []string{"Cache-Control: max-age=600, s-maxage=60"}, want: want{lifetime: time.Minute, noStale: true, auth: true}},
		{name: "max-age wins over Expires", resp: []string{"Cache-Control: max-age=60", "Expires: " + ptAt(3600)}, want: want{lifetime: time.Minute}},
		{name: "Expires minus Date", resp: []string{"Expires: " + ptAt(90)}, want: want{lifetime: 90 * time.Second}},
		{name: "Expires minus a Date in the past", resp: []string{"Date: " + ptAt(-30), "Expires: " + ptAt(90)}, want: want{lifetime: 120 * time.Second, date: -30}},
		{name: "Expires before Date", resp: []string{"Date: " + ptAt(400), "Expires: " + ptAt(300)}, want: want{date: 400}},
		{name: "Expires 0", resp: []string{"Expires: 0"}, want: want{}},
		{name: "Expires rfc850", resp: []string{"Date: Tuesday, 10-Mar-26 12:00:00 GMT", "Expires: Tuesday, 10-Mar-26 12:01:00 GMT"}, want: want{lifetime: time.Minute}},
		{name: "Expires asctime", resp: []string{"Date: Tue Mar 10 12:00:00 2026", "Expires: Tue Mar 10 12:01:00 2026"}, want: want{lifetime: time.Minute}},
		{name: "invalid Date: respTime", resp: []string{"Date: yesterday", "Expires: " + ptAt(60)}, want: want{lifetime: time.Minute}},
		{name: "no Date: respTime", resp: []string{"Expires: " + ptAt(60)}, want: want{lifetime: time.Minute}},
		{name: "lifetime capped at 2^31 s", resp: []string{"Expires: Fri, 01 Jan 9999 00:00:00 GMT"}, want: want{lifetime: maxDeltaSeconds * time.Second}},
		{name: "heuristic 10% of a day", resp: []string{"Last-Modified: " + ptAt(-86400)}, want: want{lifetime: 8640 * time.Second, heuristic: true}},
		{name: "heuristic capped", resp: []string{"Last-Modified: " + ptAt(-86400)}, policy: func(p *Policy) { p.HeuristicMax = time.Hour }, want: want{lifetime: time.Hour, heuristic: true}},
		{name: "heuristic Last-Modified after Date", resp: []string{"Last-Modified: " + ptAt(60)}, want: want{heuristic: true}},
		{name: "default TTL over the heuristic", resp: []string{"Last-Modified: " + ptAt(-86400)}, policy: func(p *Policy) { p.DefaultTTL = time.Minute }, want: want{lifetime: time.Minute, heuristic: true}},
		{name: "default TTL not over max-age=0", resp: []string{"Cache-Control: max-age=0", `ETag: "x"`}, policy: func(p *Policy) { p.DefaultTTL = time.Minute }, want: want{}},
		{name: "RFC 5861 windows from the response", resp: []string{"Cache-Control: max-age=1, stale-while-revalidate=30, stale-if-error=60"}, policy: func(p *Policy) { p.StaleWhileRevalidate, p.StaleIfError = time.Hour, time.Hour }, want: want{lifetime: time.Second, swr: 30 * time.Second, sie: time.Minute}},
		{name: "RFC 5861 windows from the policy", resp: []string{"Cache-Control: max-age=1"}, policy: func(p *Policy) { p.StaleWhileRevalidate, p.StaleIfError = time.Hour, 2*time.Hour }, want: want{lifetime: time.Second, swr: time.Hour, sie: 2 * time.Hour}},
		{name: "explicit zero windows", resp: []string{"Cache-Control: max-age=1, stale-while-revalidate=0"}, policy: func(p *Policy) { p.StaleWhileRevalidate = time.Hour }, want: want{lifetime: time.Second}},
		{name: "must-revalidate", resp: []string{"Cache-Control: max-age=1, must-revalidate"}, want: want{lifetime: time.Second, noStale: true, auth: true}},
		{name: "proxy-revalidate", resp: []string{"Cache-Control: max-age=1, proxy-revalidate"}, want: want{lifetime: time.Second, noStale: true}},
		{name: "public", resp: []string{"Cache-Control: max-age=1, public"}, want: want{lifetime: time.Second, auth: true}},
		{name: "no-cache", resp: []string{"Cache-Control: max-age=1, no-cache", `ETag: "x"`}, want: want{lifetime: time.Second, noCache: true}},
		{name: "Age", resp: []string{"Cache-Control: max-age=100", "Age: 30"}, want: want{lifetime: 100 * time.Second, age: 30}},
		{name: "CDN-Cache-Control over Cache-Control", resp: []string{"Cache-Control: max-age=1, must-revalidate", "CDN-Cache-Control: max-age=60"}, want: want{lifetime: time.Minute}},
		{name: "CDN-Cache-Control ignores Expires", resp: []string{"CDN-Cache-Control: public", "Expires: " + ptAt(60), `ETag: "x"`}, want: want{heuristic: true, auth: true}},
		{name: "ancient Date kept within 2^31 s", resp: []string{"Date: Mon, 01 Jan 0001 00:00:00 GMT", "Cache-Control: max-age=60"}, want: want{lifetime: time.Minute, date: -maxDeltaSeconds}},
		{name: "Surrogate-Control max-age+stale", resp: []string{"Surrogate-Control: max-age=60+600"}, want: want{lifetime: time.Minute, sie: 10 * time.Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ptPolicy()
			if tc.policy != nil {
				tc.policy(p)
			}
			resp := tc.resp
			if !slices.ContainsFunc(resp, func(f string) bool { return strings.HasPrefix(f, "Date:") }) {
				resp = append(resp, "Date: "+ptAt(0))
			}
			p.Keep = time.Hour
			e, why := ptEntry(t, p, 200, nil, append(resp, `ETag: "v"`)...)
			if e == nil {
				t.Fatalf("not stored: %s", why)
			}
			got := want{e.Lifetime, e.Heuristic, e.StaleWhileRevalidate, e.StaleIfError, e.NoStale, e.NoCache, e.AuthOK, e.Date - ptT0.Unix(), e.AgeValue}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func ptFieldNames(fs []Field) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Name)+": "+string(f.Value))
	}
	return out
}

func TestNewEntryHeader(t *testing.T) {
	tests := []struct {
		name   string
		resp   []string
		policy func(*Policy)
		want   []string
	}{
		{
			name: "order and repeated fields kept",
			resp: []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", "X-A: 1", "Link: <a>", "X-B: 2", "Link: <b>"},
			want: []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", "X-A: 1", "Link: <a>", "X-B: 2", "Link: <b>"},
		},
		{
			name: "hop-by-hop, Age, Content-Length, Set-Cookie dropped",
			resp: []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive", "TE: trailers",
				"Upgrade: h2c", "Proxy-Authenticate: Basic", "Proxy-Authentication-Info: x", "Proxy-Authorization: y", "Age: 3", "Content-Length: 4", "Set-Cookie: a=b", "Set-Cookie2: a=b"},
			policy: func(p *Policy) { p.StripSetCookie = true },
			want:   []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", "Set-Cookie2: a=b"},
		},
		{
			name: "fields listed in Connection dropped",
			resp: []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", "Connection: a, B", "Connection: c", "A: 1", "b: 2", "C: 3", "D: 4"},
			want: []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", "D: 4"},
		},
		{
			name: "private and no-cache field names dropped",
			resp: []string{"Date: " + ptAt(0), `Cache-Control: max-age=60, private="X-User", no-cache="a, b"`, "X-User: 7", "A: 1", "B: 2", "C: 3"},
			want: []string{"Date: " + ptAt(0), `Cache-Control: max-age=60, private="X-User", no-cache="a, b"`, "C: 3"},
		},
		{
			name: "targeted and tag fields dropped",
			resp: []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", "CDN-Cache-Control: max-age=600", "Surrogate-Control: max-age=6", "Surrogate-Key: a b", "X-Magento-Tags: c,d", "Cache-Tag: e"},
			want: []string{"Date: " + ptAt(0), "Cache-Control: max-age=60"},
		},
		{
			name:   "tag fields kept with KeepTagHeaders",
			resp:   []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", "CDN-Cache-Control: max-age=600", "Surrogate-Key: a b"},
			policy: func(p *Policy) { p.KeepTagHeaders = true },
			want:   []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", "Surrogate-Key: a b"},
		},
		{
			name: "Date added when missing",
			resp: []string{"Cache-Control: max-age=60", "Content-Type: text/html"},
			want: []string{"Content-Type: text/html", "Cache-Control: max-age=60", "Date: " + ptAt(0)},
		},
		{
			name: "invalid Date kept as sent",
			resp: []string{"Date: foo", "Cache-Control: max-age=60"},
			want: []string{"Date: foo", "Cache-Control: max-age=60"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ptPolicy()
			if tc.policy != nil {
				tc.policy(p)
			}
			e, why := ptEntry(t, p, 200, nil, tc.resp...)
			if e == nil {
				t.Fatalf("not stored: %s", why)
			}
			if got := ptFieldNames(e.Header); !slices.Equal(got, tc.want) {
				t.Errorf("Header\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

func TestNewEntryStoresNoInventedContentType(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		want   string
	}{
		{name: "none sent", fields: []string{"Cache-Control: max-age=60"}, want: ""},
		{name: "the default value sent", fields: []string{"Cache-Control: max-age=60", "Content-Type: text/plain; charset=utf-8"}, want: "text/plain; charset=utf-8"},
		{name: "another sent", fields: []string{"Cache-Control: max-age=60", "Content-Type: text/html"}, want: "text/html"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := ptResp(t, 200, tc.fields...)
			resp.SetNoDefaultContentType(false) // as on a fasthttp.AcquireResponse
			if len(resp.ContentType()) == 0 {
				t.Fatal("fasthttp no longer reports a default Content-Type: this test is moot")
			}
			e, why := ptPolicy().NewEntry("k", ptReq(t, "GET", "/"), resp, nil, ptT0, ptT0)
			if e == nil {
				t.Fatalf("not stored: %s", why)
			}
			var got []string
			for _, f := range e.Header {
				if strings.EqualFold(string(f.Name), "content-type") {
					got = append(got, string(f.Value))
				}
			}
			if want := []string{tc.want}; tc.want == "" && len(got) != 0 || tc.want != "" && !slices.Equal(got, want) {
				t.Errorf("Content-Type %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewEntryTagsAndVary(t *testing.T) {
	tests := []struct {
		name      string
		req       []string
		resp      []string
		keyVary   []string
		wantTags  []string
		wantNames []string
		wantVals  []string // "<nil>" for absent
	}{
		{
			name:     "Surrogate-Key by spaces, others by commas, trimmed, deduplicated",
			resp:     []string{"Surrogate-Key:  a  b a ", "X-Magento-Tags: cat_p_1, ,cat_c_2,b", "Cache-Tag: z"},
			wantTags: []string{"a", "b", "cat_p_1", "cat_c_2", "z"},
		},
		{
			name:      "Vary lines lower-cased and deduplicated after the route's own",
			req:       []string{"Accept-Language: de", "X-Magento-Vary: 1"},
			resp:      []string{"Vary: Accept-Encoding, accept-language", "Vary: X-Magento-Vary, , Accept-Encoding"},
			keyVary:   []string{"X-Magento-Vary", "cookie:X-Magento-Vary"},
			wantNames: []string{"x-magento-vary", "cookie:X-Magento-Vary", "accept-encoding", "accept-language"},
			wantVals:  []string{"1", "<nil>", "<nil>", "de"},
		},
		{
			name:      "present but empty is not absent",
			req:       []string{"Foo:"},
			resp:      []string{"Vary: Foo"},
			wantNames: []string{"foo"},
			wantVals:  []string{""},
		},
		{
			name:      "cookie value",
			req:       []string{"Cookie: a=1; X-Magento-Vary=abc"},
			keyVary:   []string{"cookie:X-Magento-Vary"},
			wantNames: []string{"cookie:X-Magento-Vary"},
			wantVals:  []string{"abc"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ptPolicy()
			p.KeyVary = tc.keyVary
			e, why := ptEntry(t, p, 200, tc.req, append(tc.resp, "Cache-Control: max-age=60")...)
			if e == nil {
				t.Fatalf("not stored: %s", why)
			}
			if !slices.Equal(e.Tags, tc.wantTags) {
				t.Errorf("Tags = %q, want %q", e.Tags, tc.wantTags)
			}
			if !slices.Equal(e.VaryNames, tc.wantNames) {
				t.Errorf("VaryNames = %q, want %q", e.VaryNames, tc.wantNames)
			}
			var vals []string
			for _, v := range e.VaryValues {
				if v == nil {
					vals = append(vals, "<nil>")
				} else {
					vals = append(vals, string(v))
				}
			}
			if !slices.Equal(vals, tc.wantVals) {
				t.Errorf("VaryValues = %q, want %q", vals, tc.wantVals)
			}
			if ok, _ := e.Matches(ptReq(t, "GET", "/", tc.req...), nil); !ok {
				t.Errorf("the entry does not match the request that stored it")
			}
		})
	}
}

func TestNewEntryRetainSizeAndCopies(t *testing.T) {
	tests := []struct {
		name       string
		resp       []string
		policy     func(*Policy)
		wantRetain time.Duration
	}{
		{name: "fresh, no validator", resp: []string{"Cache-Control: max-age=60"}, wantRetain: time.Minute},
		{name: "fresh, validator: plus keep", resp: []string{"Cache-Control: max-age=60", `ETag: "x"`}, wantRetain: time.Minute + time.Hour},
		{name: "initial age taken off", resp: []string{"Cache-Control: max-age=60", "Age: 20"}, wantRetain: 40 * time.Second},
		{name: "longest window", resp: []string{"Cache-Control: max-age=60, stale-while-revalidate=10, stale-if-error=30"}, policy: func(p *Policy) { p.Grace = 20 * time.Second }, wantRetain: 90 * time.Second},
		{name: "grace", resp: []string{"Cache-Control: max-age=60"}, policy: func(p *Policy) { p.Grace = 2 * time.Hour }, wantRetain: time.Minute + 2*time.Hour},
		{name: "windows unusable under must-revalidate", resp: []string{"Cache-Control: max-age=60, must-revalidate, stale-if-error=600", `ETag: "x"`}, policy: func(p *Policy) { p.Grace, p.Keep = 2*time.Hour, time.Minute }, wantRetain: 2 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ptPolicy()
			if tc.policy != nil {
				tc.policy(p)
			}
			req := ptReq(t, "GET", "/")
			resp := ptResp(t, 200, append(tc.resp, "Date: "+ptAt(0))...)
			body := []byte("hello")
			key := []byte("GET http://example.com/")
			e, why := p.NewEntry(string(key), req, resp, body, ptT0.Add(-time.Second), ptT0)
			if e == nil {
				t.Fatalf("not stored: %s", why)
			}
			// Age at receipt includes the 1s response delay (RFC 9111 §4.2.3).
			want := tc.wantRetain
			if e.Lifetime > 0 {
				want -= time.Second
			}
			if e.Retain != want {
				t.Errorf("Retain = %v, want %v", e.Retain, want)
			}
			size := int64(len(key) + len(body))
			for _, f := range e.Header {
				size += int64(len(f.Name) + len(f.Value))
			}
			if e.Size != size {
				t.Errorf("Size = %d, want %d", e.Size, size)
			}
			if e.RequestTime != ptT0.Add(-time.Second).UnixNano() || e.ResponseTime != ptT0.UnixNano() || e.Status != 200 {
				t.Errorf("times/status = %d %d %d", e.RequestTime, e.ResponseTime, e.Status)
			}
			// Nothing refers to fasthttp's buffers or the caller's.
			for i := range body {
				body[i] = 'X'
			}
			resp.Reset()
			resp.Set("Cache-Control", "garbage-garbage-garbage-garbage")
			req.Reset()
			if string(e.Body) != "hello" || cap(e.Body) != len(e.Body) {
				t.Errorf("Body = %q (cap %d)", e.Body, cap(e.Body))
			}
			if !slices.Contains(ptFieldNames(e.Header), tc.resp[0]) {
				t.Errorf("Header lost %q: %q", tc.resp[0], ptFieldNames(e.Header))
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	lm := "Wed, 01 Jan 2020 00:00:00 GMT"
	base := []string{"Date: " + ptAt(0), "Cache-Control: max-age=2", "Last-Modified: " + lm, `ETag: "v1"`, "Test-Header: A", "Link: <a>", "Link: <b>", "Content-Type: text/plain"}
	later := ptT0.Add(10 * time.Second)
	tests := []struct {
		name       string
		old        []string
		policy     func(*Policy)
		resp304    []string
		wantFields []string // fields expected among the merged ones
		wantGone   []string // field names expected absent
		wantLife   time.Duration
		wantStore  bool
		wantAge    int64
		wantTags   []string
	}{
		{
			name:       "304 without headers keeps stored fields and lifetime",
			resp304:    []string{},
			wantFields: []string{"Test-Header: A", "Link: <a>", "Link: <b>", "Content-Type: text/plain", "Date: " + string(fasthttp.AppendHTTPDate(nil, later))},
			wantLife:   2 * time.Second, wantStore: true,
		},
		{
			name:       "304 fields replace all stored lines of their name",
			resp304:    []string{"Date: " + ptAt(10), "Test-Header: B", "Link: <c>", "Cache-Control: max-age=3600", `ETag: "v1"`},
			wantFields: []string{"Test-Header: B", "Link: <c>", "Cache-Control: max-age=3600", "Content-Type: text/plain", "Date: " + ptAt(10)},
			wantGone:   []string{"Link: <a>", "Test-Header: A"},
			wantLife:   time.Hour, wantStore: true,
		},
		{
			name:       "Content-Length and hop-by-hop of the 304 not taken, Age read",
			resp304:    []string{"Date: " + ptAt(10), "Content-Length: 10", "Keep-Alive: timeout=1", "Age: 5", "Cache-Control: max-age=60"},
			wantFields: []string{"Cache-Control: max-age=60"},
			wantGone:   []string{"Content-Length: 10", "Keep-Alive: timeout=1", "Age: 5"},
			wantLife:   time.Minute, wantStore: true, wantAge: 5,
		},
		{
			name:      "Expires from the 304",
			resp304:   []string{"Date: " + ptAt(10), "Cache-Control: public", "Expires: " + ptAt(70)},
			wantGone:  []string{"Cache-Control: max-age=2"},
			wantLife:  time.Minute, // the 304's Cache-Control replaced max-age=2
			wantStore: true,
		},
		{
			name:      "weak ETag matches weakly",
			resp304:   []string{"Date: " + ptAt(10), `ETag: W/"v1"`, "Cache-Control: max-age=60"},
			wantLife:  time.Minute,
			wantStore: true,
		},
		{
			name:      "different strong ETag: not stored",
			resp304:   []string{"Date: " + ptAt(10), `ETag: "v2"`, "Cache-Control: max-age=60"},
			wantLife:  time.Minute,
			wantStore: false,
		},
		{
			name:      "different Last-Modified: not stored",
			old:       []string{"Date: " + ptAt(0), "Cache-Control: max-age=2", "Last-Modified: " + lm},
			resp304:   []string{"Date: " + ptAt(10), "Last-Modified: " + ptAt(0), "Cache-Control: max-age=60"},
			wantLife:  time.Minute,
			wantStore: false,
		},
		{
			name:      "304 with no-store: not stored",
			resp304:   []string{"Date: " + ptAt(10), "Cache-Control: no-store"},
			wantLife:  24 * time.Hour, // heuristic, capped
			wantStore: false,
		},
		{
			name:      "304 with CDN-Cache-Control",
			resp304:   []string{"Date: " + ptAt(10), "CDN-Cache-Control: max-age=600"},
			wantGone:  []string{"CDN-Cache-Control: max-age=600"},
			wantLife:  10 * time.Minute,
			wantStore: true,
		},
		{
			name:      "old lifetime from CDN-Cache-Control kept by a bare 304",
			old:       []string{"Date: " + ptAt(0), "Cache-Control: no-store", "CDN-Cache-Control: max-age=600", `ETag: "v1"`},
			resp304:   []string{"Date: " + ptAt(10)},
			wantLife:  10 * time.Minute,
			wantStore: true,
		},
		{
			name:      "tags from the 304",
			old:       append([]string{"Surrogate-Key: a"}, base...),
			resp304:   []string{"Date: " + ptAt(10), "Surrogate-Key: b c"},
			wantLife:  2 * time.Second,
			wantStore: true,
			wantTags:  []string{"b", "c"},
		},
		{
			name:      "tags kept without tag fields",
			old:       append([]string{"Surrogate-Key: a"}, base...),
			resp304:   []string{"Date: " + ptAt(10)},
			wantLife:  2 * time.Second,
			wantStore: true,
			wantTags:  []string{"a"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ptPolicy()
			if tc.policy != nil {
				tc.policy(p)
			}
			oldFields := tc.old
			if oldFields == nil {
				oldFields = base
			}
			old, why := ptEntry(t, p, 200, []string{"Foo: 1"}, append(oldFields, "Vary: Foo")...)
			if old == nil {
				t.Fatalf("not stored: %s", why)
			}
			oldHeader := slices.Clone(ptFieldNames(old.Header))
			resp := ptResp(t, 304, tc.resp304...)
			e := p.Refresh(old, resp, later.Add(-time.Second), later)
			if e == nil {
				t.Fatal("Refresh returned nil")
			}
			got := ptFieldNames(e.Header)
			for _, f := range tc.wantFields {
				if !slices.Contains(got, f) {
					t.Errorf("merged fields %q lack %q", got, f)
				}
			}
			for _, f := range tc.wantGone {
				if slices.Contains(got, f) {
					t.Errorf("merged fields %q have %q", got, f)
				}
			}
			if e.Lifetime != tc.wantLife {
				t.Errorf("Lifetime = %v, want %v", e.Lifetime, tc.wantLife)
			}
			if stored := e.Retain > 0; stored != tc.wantStore {
				t.Errorf("Retain = %v, want storable %v", e.Retain, tc.wantStore)
			}
			if e.AgeValue != tc.wantAge {
				t.Errorf("AgeValue = %d, want %d", e.AgeValue, tc.wantAge)
			}
			if tc.wantTags != nil && !slices.Equal(e.Tags, tc.wantTags) {
				t.Errorf("Tags = %q, want %q", e.Tags, tc.wantTags)
			}
			if e.ResponseTime != later.UnixNano() || e.RequestTime != later.Add(-time.Second).UnixNano() {
				t.Errorf("times not updated")
			}
			if &e.Body[0] != &old.Body[0] || e.Key != old.Key || !slices.Equal(e.VaryNames, old.VaryNames) || e.Status != old.Status {
				t.Errorf("body, key, vary or status not old's")
			}
			if !slices.Equal(ptFieldNames(old.Header), oldHeader) || old.ResponseTime != ptT0.UnixNano() {
				t.Errorf("old was modified")
			}
		})
	}
}

func TestUsable(t *testing.T) {
	mk := func(lifetime time.Duration, mod func(*Entry)) *Entry {
		e := &Entry{Date: ptT0.Unix(), RequestTime: ptT0.UnixNano(), ResponseTime: ptT0.UnixNano(), Lifetime: lifetime}
		if mod != nil {
			mod(e)
		}
		return e
	}
	none := RequestDirectives{MaxAge: -1, MaxStale: -1, MinFresh: -1}
	with := func(f func(*RequestDirectives)) RequestDirectives {
		rd := none
		f(&rd)
		return rd
	}
	tests := []struct {
		name    string
		e       *Entry
		rd      RequestDirectives
		hasAuth bool
		at      time.Duration
		want    Use
	}{
		{name: "fresh", e: mk(time.Minute, nil), rd: none, at: 30 * time.Second, want: UseFresh},
		{name: "stale", e: mk(time.Minute, nil), rd: none, at: 61 * time.Second, want: UseRevalidate},
		{name: "exactly at lifetime is stale", e: mk(time.Minute, nil), rd: none, at: time.Minute, want: UseRevalidate},
		{name: "entry no-cache", e: mk(time.Minute, func(e *Entry) { e.NoCache = true }), rd: none, want: UseRevalidate},
		{name: "request no-cache", e: mk(time.Minute, nil), rd: with(func(r *RequestDirectives) { r.NoCache = true }), want: UseRevalidate},
		{name: "Authorization, not AuthOK", e: mk(time.Minute, nil), rd: none, hasAuth: true, want: UseRevalidate},
		{name: "Authorization, AuthOK", e: mk(time.Minute, func(e *Entry) { e.AuthOK = true }), rd: none, hasAuth: true, want: UseFresh},
		{name: "request max-age exceeded", e: mk(time.Hour, nil), rd: with(func(r *RequestDirectives) { r.MaxAge = 10 }), at: 11 * time.Second, want: UseRevalidate},
		{name: "request max-age met", e: mk(time.Hour, nil), rd: with(func(r *RequestDirectives) { r.MaxAge = 10 }), at: 10 * time.Second, want: UseFresh},
		{name: "Age counts for max-age", e: mk(time.Hour, func(e *Entry) { e.AgeValue = 30 }), rd: with(func(r *RequestDirectives) { r.MaxAge = 10 }), want: UseRevalidate},
		{name: "min-fresh not met", e: mk(time.Minute, nil), rd: with(func(r *RequestDirectives) { r.MinFresh = 31 }), at: 30 * time.Second, want: UseRevalidate},
		{name: "min-fresh met", e: mk(time.Minute, nil), rd: with(func(r *RequestDirectives) { r.MinFresh = 30 }), at: 30 * time.Second, want: UseFresh},
		{name: "max-stale covers", e: mk(time.Minute, nil), rd: with(func(r *RequestDirectives) { r.MaxStale = 10 }), at: 70 * time.Second, want: UseStale},
		{name: "max-stale too short", e: mk(time.Minute, nil), rd: with(func(r *RequestDirectives) { r.MaxStale = 9 }), at: 70 * time.Second, want: UseRevalidate},
		{name: "bare max-stale", e: mk(time.Minute, nil), rd: with(func(r *RequestDirectives) { r.MaxStale = math.MaxInt64 }), at: 1000 * time.Hour, want: UseStale},
		{name: "max-stale and must-revalidate", e: mk(time.Minute, func(e *Entry) { e.NoStale = true }), rd: with(func(r *RequestDirectives) { r.MaxStale = math.MaxInt64 }), at: 2 * time.Minute, want: UseRevalidate},
		{name: "soft-purged is stale", e: mk(time.Hour, func(e *Entry) { e.SoftPurge(ptT0) }), rd: none, at: time.Second, want: UseRevalidate},
		{name: "soft-purged and max-stale", e: mk(time.Hour, func(e *Entry) { e.SoftPurge(ptT0) }), rd: with(func(r *RequestDirectives) { r.MaxStale = math.MaxInt64 }), at: time.Second, want: UseRevalidate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Usable(tc.e, tc.rd, tc.hasAuth, ptT0.Add(tc.at)); got != tc.want {
				t.Errorf("Usable = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStaleRules(t *testing.T) {
	mk := func(mod func(*Entry)) *Entry {
		e := &Entry{Date: ptT0.Unix(), RequestTime: ptT0.UnixNano(), ResponseTime: ptT0.UnixNano(), Lifetime: time.Minute,
			StaleWhileRevalidate: 30 * time.Second, StaleIfError: 2 * time.Minute}
		if mod != nil {
			mod(e)
		}
		return e
	}
	tests := []struct {
		name      string
		e         *Entry
		at        time.Duration
		grace     time.Duration
		wantSWR   bool
		wantError bool
	}{
		{name: "fresh: neither", e: mk(nil), at: 30 * time.Second},
		{name: "in both windows", e: mk(nil), at: 80 * time.Second, wantSWR: true, wantError: true},
		{name: "past swr, in sie", e: mk(nil), at: 100 * time.Second, wantError: true},
		{name: "past both", e: mk(nil), at: 200 * time.Second},
		{name: "grace longer than sie", e: mk(nil), at: 200 * time.Second, grace: time.Hour, wantError: true},
		{name: "no windows", e: mk(func(e *Entry) { e.StaleWhileRevalidate, e.StaleIfError = 0, 0 }), at: 61 * time.Second},
		{name: "must-revalidate", e: mk(func(e *Entry) { e.NoStale = true }), at: 80 * time.Second, grace: time.Hour},
		{name: "no-cache", e: mk(func(e *Entry) { e.NoCache = true }), at: 80 * time.Second, grace: time.Hour},
		{name: "soft-purged fresh entry is in its windows", e: mk(func(e *Entry) { e.SoftPurge(ptT0) }), at: time.Second, wantSWR: true, wantError: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := ptT0.Add(tc.at)
			if got := CanServeStaleWhileRevalidate(tc.e, now); got != tc.wantSWR {
				t.Errorf("CanServeStaleWhileRevalidate = %v, want %v", got, tc.wantSWR)
			}
			if got := CanServeStaleOnError(tc.e, tc.grace, now); got != tc.wantError {
				t.Errorf("CanServeStaleOnError = %v, want %v", got, tc.wantError)
			}
		})
	}
}

func TestStaleAllowed(t *testing.T) {
	none := RequestDirectives{MaxAge: -1, MaxStale: -1, MinFresh: -1}
	tests := []struct {
		name    string
		rd      RequestDirectives
		hasAuth bool
		authOK  bool
		want    bool
	}{
		{name: "plain request", rd: none, want: true},
		{name: "no-cache", rd: RequestDirectives{MaxAge: -1, MaxStale: -1, MinFresh: -1, NoCache: true}},
		{name: "max-age", rd: RequestDirectives{MaxAge: 0, MaxStale: -1, MinFresh: -1}},
		{name: "min-fresh", rd: RequestDirectives{MaxAge: -1, MaxStale: -1, MinFresh: 1}},
		{name: "Authorization", rd: none, hasAuth: true},
		{name: "Authorization, AuthOK", rd: none, hasAuth: true, authOK: true, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := StaleAllowed(&Entry{AuthOK: tc.authOK}, tc.rd, tc.hasAuth); got != tc.want {
				t.Errorf("StaleAllowed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStripForClient(t *testing.T) {
	tests := []struct {
		name string
		keep bool
		want []string
	}{
		{name: "targeted and tag fields removed", want: []string{"Cache-Control: max-age=1", "X-Other: 1"}},
		{name: "tag fields kept", keep: true, want: []string{"Cache-Control: max-age=1", "X-Magento-Tags: a,b", "X-Other: 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ptPolicy()
			p.KeepTagHeaders = tc.keep
			resp := ptResp(t, 200, "Cache-Control: max-age=1", "CDN-Cache-Control: max-age=60", "surrogate-control: max-age=6",
				"X-Magento-Tags: a,b", "X-Other: 1")
			p.StripForClient(resp)
			resp.ResetConnectionClose() // no Content-Length: fasthttp reports Connection: close
			var got []string
			for k, v := range resp.All() {
				got = append(got, string(k)+": "+string(v))
			}
			slices.Sort(got) // fasthttp's Del does not keep the order
			if !slices.Equal(got, tc.want) {
				t.Errorf("fields %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPolicyConcurrentUse(t *testing.T) {
	p := ptPolicy()
	done := make(chan *Entry)
	for range 8 {
		req := ptReq(t, "GET", "/", "Foo: 1")
		resp := ptResp(t, 200, "Cache-Control: max-age=60", "Vary: Foo", "Surrogate-Key: a b", "Date: "+ptAt(0))
		go func() {
			e, _ := p.NewEntry("k", req, resp, []byte("x"), ptT0, ptT0)
			done <- e
		}()
	}
	var first *Entry
	for range 8 {
		e := <-done
		if e == nil {
			t.Fatal("not stored")
		}
		if first == nil {
			first = e
		} else if !slices.Equal(ptFieldNames(e.Header), ptFieldNames(first.Header)) || !slices.Equal(e.Tags, first.Tags) {
			t.Errorf("entries differ")
		}
	}
}

func TestUseString(t *testing.T) {
	for _, tc := range []struct {
		u    Use
		want string
	}{{UseFresh, "fresh"}, {UseStale, "stale"}, {UseRevalidate, "revalidate"}, {Use(9), "unknown"}} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.u.String(); got != tc.want {
				t.Errorf("String = %q", got)
			}
		})
	}
}
