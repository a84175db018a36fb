package cache

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// varyReq parses a request header with the given raw field lines.
func varyReq(fields string) (*fasthttp.RequestHeader, bool) {
	h := new(fasthttp.RequestHeader)
	raw := "GET /p HTTP/1.1\r\nHost: example.com\r\n" + fields + "\r\n"
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		return nil, false
	}
	return h, true
}

// crlfLines turns "\n"-separated lines into CRLF-terminated field lines.
func crlfLines(s string) string {
	var b strings.Builder
	for l := range strings.SplitSeq(s, "\n") {
		if l != "" {
			b.WriteString(l + "\r\n")
		}
	}
	return b.String()
}

// rawFieldLines returns the request's lines of a field, as parsed.
func rawFieldLines(h *fasthttp.RequestHeader, name string) []string {
	var out []string
	for k, v := range h.All() {
		if strings.EqualFold(string(k), name) {
			out = append(out, string(v))
		}
	}
	return out
}

func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// FuzzVary builds the entry for a fuzzed request and a response with
// fuzzed Vary lines (and route key fields), as the router stores it, then
// checks RFC 9111 §4.1 as the cache implements it: a response whose Vary
// lists "*" is never stored, so never matches; the request an entry was
// built from always matches it, also as it arrives again (serialised and
// parsed), whatever the scratch buffer holds; a request that adds a value
// to one selecting field, or sends an empty field the original lacked,
// does not match.
func FuzzVary(f *testing.F) {
	for _, s := range [][3]string{
		// request field lines, Vary lines, route key fields (comma-separated)
		{"Accept-Encoding: gzip, br", "Accept-Encoding", ""},
		{"Accept-Encoding: gzip\nAccept-Encoding: br", "accept-encoding", ""},
		{"Accept-Language: fr-CH, fr;q=0.9, en;q=0.8", "Accept-Language, Accept-Encoding", ""},
		{"Accept-Language: EN;q=0.5,\tfr", "accept-language", ""},
		{"X-Empty:", "X-Empty", ""},
		{"", "X-Absent", ""},
		{"Cookie: session=abc; theme=dark", "", "cookie:session,X-Device"},
		{"Cookie: theme=dark", "Cookie", "cookie:session"},
		{"Accept: */*", "*", ""},
		{"Accept: */*", "Accept, *", ""},
		{"Accept: */*", "Accept\n *", ""},
		{"User-Agent: ua\nX-A: 1,2 , 3", "User-Agent,,x-a", ""},
		{"Authorization: Bearer x", "Accept", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, reqFields, varyLines, keyFields string) {
		req, ok := varyReq(crlfLines(reqFields))
		if !ok {
			return // not a request edge would have read
		}
		var raw strings.Builder
		raw.WriteString("HTTP/1.1 200 OK\r\nCache-Control: public, max-age=60\r\nContent-Length: 0\r\n")
		for l := range strings.SplitSeq(varyLines, "\n") {
			raw.WriteString("Vary: " + l + "\r\n")
		}
		raw.WriteString("\r\n")
		resp := new(fasthttp.ResponseHeader)
		resp.SetNoDefaultContentType(true)
		if err := resp.Read(bufio.NewReader(strings.NewReader(raw.String()))); err != nil {
			return // not a response edge would have read
		}
		// Route key fields as the configuration allows them: field names
		// and cookie:NAME.
		var keyVary []string
		for k := range strings.SplitSeq(keyFields, ",") {
			if c, ok := strings.CutPrefix(k, CookiePrefix); ok && isFieldName(c) || isFieldName(k) {
				keyVary = append(keyVary, k)
			}
		}
		p := &Policy{KeyVary: keyVary}

		star := false
		for _, line := range resp.PeekAll("Vary") {
			for elem := range strings.SplitSeq(string(line), ",") {
				star = star || strings.Trim(elem, " \t") == "*"
			}
		}
		e, reason := p.NewEntry("GET|http|example.com|/p", req, resp, nil, now, now)
		if star {
			if e != nil {
				t.Fatalf("response with Vary %q stored: it must never match (names %q)", resp.PeekAll("Vary"), e.VaryNames)
			}
			return
		}
		if e == nil {
			t.Fatalf("public, max-age=60 response to %q not stored: %s", req.Header(), reason)
		}
		if len(e.VaryNames) != len(e.VaryValues) {
			t.Fatalf("%d Vary names, %d values", len(e.VaryNames), len(e.VaryValues))
		}

		if ok, _ := e.Matches(req, nil); !ok {
			t.Fatalf("the request the entry was built from does not match it\nrequest:\n%s\nnames %q values %q", req.Header(), e.VaryNames, e.VaryValues)
		}
		if ok, _ := e.Matches(req, []byte("left over from an earlier lookup")); !ok {
			t.Fatalf("match depends on the scratch buffer's contents\nrequest:\n%s", req.Header())
		}
		again := new(fasthttp.RequestHeader)
		if err := again.Read(bufio.NewReader(bytes.NewReader(req.Header()))); err != nil {
			t.Fatalf("re-reading %q: %v", req.Header(), err)
		}
		if ok, _ := e.Matches(again, nil); !ok {
			t.Fatalf("the same request, arriving again, does not match\nrequest:\n%s\nnames %q values %q", again.Header(), e.VaryNames, e.VaryValues)
		}

		for _, name := range e.VaryNames {
			var variants []string
			if c, isCookie := strings.CutPrefix(name, CookiePrefix); isCookie {
				if !hasCookie(req, c) {
					variants = append(variants, "Cookie: "+c+"=zz-other-value\r\n")
				}
			} else if isFieldName(name) {
				variants = append(variants, name+": zz-other-value\r\n")
				if len(rawFieldLines(req, name)) == 0 {
					variants = append(variants, name+":\r\n")
				}
			}
			for _, extra := range variants {
				other, ok := varyReq(crlfLines(reqFields) + extra)
				if !ok {
					continue
				}
				if c, isCookie := strings.CutPrefix(name, CookiePrefix); isCookie {
					if !hasCookie(other, c) {
						continue // the parser did not take the cookie
					}
				} else if equalStrings(rawFieldLines(other, name), rawFieldLines(req, name)) {
					continue // the parser did not take the line (a field it treats specially)
				}
				if ok, _ := e.Matches(other, nil); ok {
					t.Fatalf("entry for\n%s\nmatches a request that differs in %s:\n%s\nnames %q values %q",
						req.Header(), name, other.Header(), e.VaryNames, e.VaryValues)
				}
			}
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
