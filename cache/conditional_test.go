package cache

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

func TestParseHTTPDate(t *testing.T) {
	ref := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC).Unix()
	future := time.Date(2050, 8, 18, 2, 1, 18, 0, time.UTC).Unix()
	tests := []struct {
		name, in string
		want     int64
		ok       bool
	}{
		{"IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", ref, true},
		{"rfc850", "Sunday, 06-Nov-94 08:49:37 GMT", ref, true},
		{"asctime", "Sun Nov  6 08:49:37 1994", ref, true},
		{"asctime two-digit day", "Thu Aug 18 02:01:18 2050", future, true},
		{"surrounding spaces", "  Sun, 06 Nov 1994 08:49:37 GMT ", ref, true},
		{"weekday not checked against the date", "Mon, 06 Nov 1994 08:49:37 GMT", ref, true},
		{"wrong case weekday", "THU, 18 Aug 2050 02:01:18 GMT", future, true},
		{"wrong case month", "Thu, 18 AUG 2050 02:01:18 GMT", future, true},
		{"wrong case zone", "Thu, 18 Aug 2050 02:01:18 gMT", future, true},
		{"rfc850 year 50 is 2050", "Thursday, 18-Aug-50 02:01:18 GMT", future, true},
		{"leap day", "Thu, 29 Feb 2024 00:00:00 GMT", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC).Unix(), true},
		{"2^31", "Tue, 19 Jan 2038 03:14:08 GMT", 1 << 31, true},
		{"far future", "Sat, 20 Nov 2286 17:46:39 GMT", 9999999999, true},
		{"UTC zone", "Thu, 18 Aug 2050 02:01:18 UTC", 0, false},
		{"AEST zone", "Thu, 18 Aug 2050 02:01:18 AEST", 0, false},
		{"two-digit year in IMF", "Thu, 18 Aug 50 02:01:18 GMT", 0, false},
		{"missing comma", "Thu 18 Aug 2050 02:01:18 GMT", 0, false},
		{"multiple spaces", "Thu, 18  Aug  2050 02:01:18 GMT", 0, false},
		{"date dashes", "Thu, 18-Aug-2050 02:01:18 GMT", 0, false},
		{"time periods", "Thu, 18 Aug 2050 02.01.18 GMT", 0, false},
		{"one-digit hour", "Thu, 18 Aug 2050 2:01:18 GMT", 0, false},
		{"one-digit day", "Thu, 8 Aug 2050 02:01:18 GMT", 0, false},
		{"Feb 30", "Thu, 30 Feb 2050 02:01:18 GMT", 0, false},
		{"not a leap year", "Mon, 29 Feb 2100 00:00:00 GMT", 0, false},
		{"hour 24", "Thu, 18 Aug 2050 24:01:18 GMT", 0, false},
		{"bad weekday", "Thx, 18 Aug 2050 02:01:18 GMT", 0, false},
		{"bad month", "Thu, 18 Agu 2050 02:01:18 GMT", 0, false},
		{"zero", "0", 0, false},
		{"empty", "", 0, false},
		{"number", "1234567890", 0, false},
		{"rfc850 short day name", "Sun, 06-Nov-94 08:49:37 GMT", 0, false},
		{"asctime with zone", "Sun Nov  6 08:49:37 1994 GMT", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseHTTPDate([]byte(tc.in))
			if ok != tc.ok || got != tc.want {
				t.Errorf("parseHTTPDate(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// ctEntry is a stored 200 with an ETag, a Last-Modified a day before its
// Date (a strong validator) and a 10-byte body.
func ctEntry(mod func(*Entry)) *Entry {
	e := &Entry{
		Status: 200,
		Header: []Field{
			{Name: []byte("Content-Type"), Value: []byte("text/plain")},
			{Name: []byte("Date"), Value: []byte(ptAt(0))},
			{Name: []byte("Cache-Control"), Value: []byte("max-age=60")},
			{Name: []byte("ETag"), Value: []byte(`"v1"`)},
			{Name: []byte("Last-Modified"), Value: []byte(ptAt(-86400))},
			{Name: []byte("Link"), Value: []byte("<a>")},
			{Name: []byte("Vary"), Value: []byte("Accept")},
			{Name: []byte("Link"), Value: []byte("<b>")},
			{Name: []byte("Content-Range"), Value: []byte("bytes 0-9/10")},
		},
		Body:         []byte("0123456789"),
		Date:         ptT0.Unix(),
		RequestTime:  ptT0.UnixNano(),
		ResponseTime: ptT0.UnixNano(),
		Lifetime:     time.Minute,
		ETag:         []byte(`"v1"`),
		LastModified: []byte(ptAt(-86400)),
	}
	if mod != nil {
		mod(e)
	}
	return e
}

func TestNotModified(t *testing.T) {
	tests := []struct {
		name   string
		method string
		e      func(*Entry)
		fields []string
		want   bool
	}{
		{name: "no conditional", want: false},
		{name: "matching strong tag", fields: []string{`If-None-Match: "v1"`}, want: true},
		{name: "weak request tag matches weakly", fields: []string{`If-None-Match: W/"v1"`}, want: true},
		{name: "weak stored tag matches weakly", e: func(e *Entry) { e.ETag = []byte(`W/"v1"`) }, fields: []string{`If-None-Match: "v1"`}, want: true},
		{name: "lower-case weakness flag", e: func(e *Entry) { e.ETag = []byte(`w/"v1"`) }, fields: []string{`If-None-Match: w/"v1"`}, want: true},
		{name: "other tag", fields: []string{`If-None-Match: "v2"`}, want: false},
		{name: "star", fields: []string{`If-None-Match: *`}, want: true},
		{name: "list, last", fields: []string{`If-None-Match: "a", "b",W/"v1"`}, want: true},
		{name: "list, middle", fields: []string{`If-None-Match: "a", "v1", "b"`}, want: true},
		{name: "comma inside a tag", e: func(e *Entry) { e.ETag = []byte(`"a,b"`) }, fields: []string{`If-None-Match: "x", "a,b"`}, want: true},
		{name: "comma inside a tag does not split it", e: func(e *Entry) { e.ETag = []byte(`"b"`) }, fields: []string{`If-None-Match: "a,b"`}, want: false},
		{name: "second line", fields: []string{`If-None-Match: "a"`, `If-None-Match: "v1"`}, want: true},
		{name: "unquoted request tag", fields: []string{`If-None-Match: v1`}, want: true},
		{name: "unquoted stored tag", e: func(e *Entry) { e.ETag = []byte(`v1`) }, fields: []string{`If-None-Match: "v1"`}, want: true},
		{name: "obs-text tag", e: func(e *Entry) { e.ETag = []byte("\"abcdef\xc3\xbc\"") }, fields: []string{"If-None-Match: \"abcdef\xc3\xbc\""}, want: true},
		{name: "entry without ETag", e: func(e *Entry) { e.ETag = nil }, fields: []string{`If-None-Match: "v1"`}, want: false},
		{name: "If-None-Match wins over If-Modified-Since", fields: []string{`If-None-Match: "v2"`, "If-Modified-Since: " + ptAt(0)}, want: false},
		{name: "If-None-Match wins (precedence test)", fields: []string{`If-None-Match: "v1"`, "If-Modified-Since: " + ptAt(-100000)}, want: true},
		{name: "IMS equal to Last-Modified", fields: []string{"If-Modified-Since: " + ptAt(-86400)}, want: true},
		{name: "IMS after Last-Modified", fields: []string{"If-Modified-Since: " + ptAt(-3600)}, want: true},
		{name: "IMS before Last-Modified", fields: []string{"If-Modified-Since: " + ptAt(-86401)}, want: false},
		{name: "IMS invalid", fields: []string{"If-Modified-Since: yesterday"}, want: false},
		{name: "IMS twice", fields: []string{"If-Modified-Since: " + ptAt(0), "If-Modified-Since: " + ptAt(0)}, want: false},
		{name: "IMS on HEAD", method: "HEAD", fields: []string{"If-Modified-Since: " + ptAt(0)}, want: true},
		{name: "IMS on POST", method: "POST", fields: []string{"If-Modified-Since: " + ptAt(0)}, want: false},
		{name: "IMS against Date without Last-Modified", e: func(e *Entry) { e.LastModified = nil }, fields: []string{"If-Modified-Since: " + ptAt(0)}, want: true},
		{name: "IMS before Date without Last-Modified", e: func(e *Entry) { e.LastModified = nil }, fields: []string{"If-Modified-Since: " + ptAt(-1)}, want: false},
		{name: "not for a 404", e: func(e *Entry) { e.Status = 404 }, fields: []string{`If-None-Match: "v1"`}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			if got := NotModified(ctEntry(tc.e), ptReq(t, method, "/", tc.fields...)); got != tc.want {
				t.Errorf("NotModified = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRangeFor(t *testing.T) {
	type want struct {
		start, end        int
		ok, unsatisfiable bool
	}
	tests := []struct {
		name   string
		method string
		e      func(*Entry)
		fields []string
		want   want
	}{
		{name: "no Range", want: want{}},
		{name: "first bytes", fields: []string{"Range: bytes=0-1"}, want: want{0, 1, true, false}},
		{name: "open end", fields: []string{"Range: bytes=1-"}, want: want{1, 9, true, false}},
		{name: "suffix", fields: []string{"Range: bytes=-1"}, want: want{9, 9, true, false}},
		{name: "suffix longer than body", fields: []string{"Range: bytes=-100"}, want: want{0, 9, true, false}},
		{name: "last past the end clamped", fields: []string{"Range: bytes=5-100"}, want: want{5, 9, true, false}},
		{name: "whole", fields: []string{"Range: bytes=0-9"}, want: want{0, 9, true, false}},
		{name: "unit case-insensitive, spaces", fields: []string{"Range: Bytes= 2 - 3 "}, want: want{2, 3, true, false}},
		{name: "start past the end", fields: []string{"Range: bytes=10-"}, want: want{ok: true, unsatisfiable: true}},
		{name: "zero suffix", fields: []string{"Range: bytes=-0"}, want: want{ok: true, unsatisfiable: true}},
		{name: "huge numbers", fields: []string{"Range: bytes=99999999999999999999999-"}, want: want{ok: true, unsatisfiable: true}},
		{name: "last before first: ignored", fields: []string{"Range: bytes=5-4"}, want: want{}},
		{name: "several ranges: whole", fields: []string{"Range: bytes=0-1, 5-6"}, want: want{}},
		{name: "two Range lines: whole", fields: []string{"Range: bytes=0-1", "Range: bytes=5-6"}, want: want{}},
		{name: "other unit", fields: []string{"Range: items=0-1"}, want: want{}},
		{name: "garbage", fields: []string{"Range: bytes=a-b"}, want: want{}},
		{name: "no dash", fields: []string{"Range: bytes=5"}, want: want{}},
		{name: "not GET", method: "HEAD", fields: []string{"Range: bytes=0-1"}, want: want{}},
		{name: "not a 200", e: func(e *Entry) { e.Status = 404 }, fields: []string{"Range: bytes=0-1"}, want: want{}},
		{name: "empty body", e: func(e *Entry) { e.Body = []byte{} }, fields: []string{"Range: bytes=-1"}, want: want{}},
		{name: "If-Range strong ETag matches", fields: []string{"Range: bytes=0-1", `If-Range: "v1"`}, want: want{0, 1, true, false}},
		{name: "If-Range other ETag", fields: []string{"Range: bytes=0-1", `If-Range: "v2"`}, want: want{}},
		{name: "If-Range weak ETag never matches", e: func(e *Entry) { e.ETag = []byte(`W/"v1"`) }, fields: []string{"Range: bytes=0-1", `If-Range: W/"v1"`}, want: want{}},
		{name: "If-Range date equal to Last-Modified", fields: []string{"Range: bytes=0-1", "If-Range: " + ptAt(-86400)}, want: want{0, 1, true, false}},
		{name: "If-Range date not equal", fields: []string{"Range: bytes=0-1", "If-Range: " + ptAt(-86399)}, want: want{}},
		{name: "If-Range date of a weak Last-Modified", e: func(e *Entry) { e.LastModified = []byte(ptAt(0)) }, fields: []string{"Range: bytes=0-1", "If-Range: " + ptAt(0)}, want: want{}},
		{name: "If-Range invalid", fields: []string{"Range: bytes=0-1", "If-Range: soon"}, want: want{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			s, e, ok, un := RangeFor(ctEntry(tc.e), ptReq(t, method, "/", tc.fields...))
			if got := (want{s, e, ok, un}); got != tc.want {
				t.Errorf("RangeFor = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAddValidators(t *testing.T) {
	tests := []struct {
		name string
		e    func(*Entry)
		want []string
	}{
		{name: "both validators", want: []string{`If-None-Match: "v1"`, "If-Modified-Since: " + ptAt(-86400)}},
		{name: "weak ETag as is", e: func(e *Entry) { e.ETag, e.LastModified = []byte(`W/"v1"`), nil }, want: []string{`If-None-Match: W/"v1"`}},
		{name: "unquoted ETag quoted", e: func(e *Entry) { e.ETag, e.LastModified = []byte(`v1`), nil }, want: []string{`If-None-Match: "v1"`}},
		{name: "Last-Modified only", e: func(e *Entry) { e.ETag = nil }, want: []string{"If-Modified-Since: " + ptAt(-86400)}},
		{name: "no validator: client conditionals still removed", e: func(e *Entry) { e.ETag, e.LastModified = nil, nil }, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := ptReq(t, "GET", "/", `If-None-Match: "client"`, "If-Modified-Since: "+ptAt(-5), `If-Match: "m"`,
				"If-Unmodified-Since: "+ptAt(-5), `If-Range: "r"`, "X-Keep: 1")
			AddValidators(req, ctEntry(tc.e))
			var got []string
			for k, v := range req.All() {
				if strings.HasPrefix(string(k), "If-") {
					got = append(got, string(k)+": "+string(v))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("conditionals %q, want %q", got, tc.want)
			}
			if string(req.Peek("X-Keep")) != "1" {
				t.Errorf("other fields touched")
			}
		})
	}
}

// ctFields lists a response's fields as "Name: value".
func ctFields(h *fasthttp.ResponseHeader) []string {
	var out []string
	for k, v := range h.All() {
		out = append(out, string(k)+": "+string(v))
	}
	return out
}

// ctServerResponse returns the response on the wire.
func ctWire(resp *fasthttp.Response) string {
	var b strings.Builder
	w := bufio.NewWriter(&b)
	if err := resp.Write(w); err != nil {
		panic(err)
	}
	w.Flush()
	return b.String()
}

func TestWrite(t *testing.T) {
	e := ctEntry(nil)
	var resp fasthttp.Response
	resp.Header.SetNoDefaultContentType(true)
	resp.Header.Set("X-Old", "left over")
	resp.SetBodyString("old body")
	resp.Header.SetConnectionClose()
	buf := e.Write(&resp, ptT0.Add(90*time.Second), nil)
	if resp.StatusCode() != 200 {
		t.Errorf("status %d", resp.StatusCode())
	}
	// fasthttp writes field names canonically: "Etag".
	want := []string{"Content-Type: text/plain", "Date: " + ptAt(0), "Cache-Control: max-age=60", `Etag: "v1"`, "Last-Modified: " + ptAt(-86400),
		"Link: <a>", "Vary: Accept", "Link: <b>", "Content-Range: bytes 0-9/10", "Age: 90", "Connection: close"}
	if got := ctFields(&resp.Header); !slices.Equal(got, want) {
		t.Errorf("fields\n got  %q\n want %q", got, want)
	}
	if string(resp.Body()) != "0123456789" || &resp.Body()[0] != &e.Body[0] {
		t.Errorf("body %q not e.Body", resp.Body())
	}
	if len(buf) == 0 {
		t.Errorf("scratch buffer not returned")
	}
	if wire := ctWire(&resp); !strings.Contains(wire, "\r\nContent-Length: 10\r\n") {
		t.Errorf("wire lacks Content-Length:\n%s", wire)
	}
}

func TestWriteAge(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Entry)
		at   time.Duration
		want string
	}{
		{name: "resident time", at: 1500 * time.Millisecond, want: "1"},
		{name: "received Age added", mod: func(e *Entry) { e.AgeValue = 30 }, at: 2 * time.Second, want: "32"},
		{name: "apparent age from an old Date", mod: func(e *Entry) { e.Date -= 100 }, at: 0, want: "100"},
		{name: "capped at 2^31", mod: func(e *Entry) { e.AgeValue = 1 << 31 }, at: time.Hour, want: "2147483648"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resp fasthttp.Response
			ctEntry(tc.mod).Write(&resp, ptT0.Add(tc.at), nil)
			if got := string(resp.Header.Peek("Age")); got != tc.want {
				t.Errorf("Age %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWriteNotModified(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Entry)
		want []string
	}{
		{name: "with ETag", want: []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", `Etag: "v1"`, "Vary: Accept", "Age: 5"}},
		{name: "Last-Modified without ETag", mod: func(e *Entry) {
			e.ETag = nil
			e.Header = slices.DeleteFunc(slices.Clone(e.Header), func(f Field) bool { return string(f.Name) == "ETag" })
			e.Header = append(e.Header, Field{Name: []byte("Expires"), Value: []byte(ptAt(60))}, Field{Name: []byte("Content-Location"), Value: []byte("/x")})
		}, want: []string{"Date: " + ptAt(0), "Cache-Control: max-age=60", "Last-Modified: " + ptAt(-86400), "Vary: Accept", "Expires: " + ptAt(60), "Content-Location: /x", "Age: 5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resp fasthttp.Response
			resp.Header.SetNoDefaultContentType(true)
			resp.SetBodyString("old")
			ctEntry(tc.mod).WriteNotModified(&resp, ptT0.Add(5*time.Second), nil)
			if resp.StatusCode() != 304 {
				t.Errorf("status %d", resp.StatusCode())
			}
			if got := ctFields(&resp.Header); !slices.Equal(got, tc.want) {
				t.Errorf("fields\n got  %q\n want %q", got, tc.want)
			}
			if len(resp.Body()) != 0 {
				t.Errorf("body %q", resp.Body())
			}
			if wire := ctWire(&resp); strings.Contains(wire, "Content-Length") || strings.Contains(wire, "old") {
				t.Errorf("wire:\n%s", wire)
			}
		})
	}
}

func TestWriteRange(t *testing.T) {
	tests := []struct {
		name          string
		start, end    int
		unsatisfiable bool
		wantStatus    int
		wantRange     string
		wantBody      string
		wantStored    bool
	}{
		{name: "206", start: 2, end: 4, wantStatus: 206, wantRange: "bytes 2-4/10", wantBody: "234", wantStored: true},
		{name: "last byte", start: 9, end: 9, wantStatus: 206, wantRange: "bytes 9-9/10", wantBody: "9", wantStored: true},
		{name: "416", unsatisfiable: true, wantStatus: 416, wantRange: "bytes */10", wantBody: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resp fasthttp.Response
			resp.Header.SetNoDefaultContentType(true)
			ctEntry(nil).WriteRange(&resp, tc.start, tc.end, tc.unsatisfiable, ptT0, nil)
			if resp.StatusCode() != tc.wantStatus {
				t.Errorf("status %d", resp.StatusCode())
			}
			if got := resp.Header.PeekAll("Content-Range"); len(got) != 1 || string(got[0]) != tc.wantRange {
				t.Errorf("Content-Range %q, want %q", got, tc.wantRange)
			}
			if string(resp.Body()) != tc.wantBody {
				t.Errorf("body %q, want %q", resp.Body(), tc.wantBody)
			}
			if got := string(resp.Header.Peek("Date")); got != ptAt(0) {
				t.Errorf("Date %q", got)
			}
			if got := len(resp.Header.Peek("ETag")) > 0; got != tc.wantStored {
				t.Errorf("stored fields written: %v", got)
			}
			if wire := ctWire(&resp); !strings.Contains(wire, fmt.Sprintf("\r\nContent-Length: %d\r\n", len(tc.wantBody))) {
				t.Errorf("wire:\n%s", wire)
			}
		})
	}
}

// TestWriteThroughServer serves entries with a server set up as the
// router's (NoDefaultDate, NoDefaultContentType): the stored Date reaches
// the client, not the server's clock, and no Content-Type is invented.
func TestWriteThroughServer(t *testing.T) {
	stored := ctEntry(func(e *Entry) {
		e.Header = slices.DeleteFunc(slices.Clone(e.Header), func(f Field) bool { return string(f.Name) == "Content-Type" })
	})
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	srv := &fasthttp.Server{
		NoDefaultDate:        true,
		NoDefaultContentType: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			var buf []byte
			switch string(ctx.Path()) {
			case "/304":
				stored.WriteNotModified(&ctx.Response, time.Now(), buf)
			case "/206":
				stored.WriteRange(&ctx.Response, 1, 2, false, time.Now(), buf)
			default:
				stored.Write(&ctx.Response, time.Now(), buf)
			}
		},
	}
	go srv.Serve(ln)     //nolint:errcheck
	defer srv.Shutdown() //nolint:errcheck
	for _, tc := range []struct {
		path, method string
		status       string
		body         string
		length       string
	}{
		{"/", "GET", "200 OK", "0123456789", "10"},
		{"/", "HEAD", "200 OK", "", "10"},
		{"/304", "GET", "304 Not Modified", "", ""},
		{"/206", "GET", "206 Partial Content", "12", "2"},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			conn, err := ln.Dial()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n", tc.method, tc.path)
			raw, err := io.ReadAll(conn)
			if err != nil {
				t.Fatal(err)
			}
			head, body, _ := strings.Cut(string(raw), "\r\n\r\n")
			lines := strings.Split(head, "\r\n")
			if lines[0] != "HTTP/1.1 "+tc.status {
				t.Errorf("status line %q", lines[0])
			}
			var dates, types, lengths []string
			for _, l := range lines[1:] {
				k, v, _ := strings.Cut(l, ": ")
				switch strings.ToLower(k) {
				case "date":
					dates = append(dates, v)
				case "content-type":
					types = append(types, v)
				case "content-length":
					lengths = append(lengths, v)
				}
			}
			if len(dates) != 1 || dates[0] != ptAt(0) {
				t.Errorf("Date %q, want the stored %q", dates, ptAt(0))
			}
			if len(types) != 0 {
				t.Errorf("Content-Type %q invented", types)
			}
			if tc.length == "" && len(lengths) != 0 || tc.length != "" && (len(lengths) != 1 || lengths[0] != tc.length) {
				t.Errorf("Content-Length %q, want %q", lengths, tc.length)
			}
			if body != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
		})
	}
}

func TestServingAllocatesNothing(t *testing.T) {
	e := ctEntry(nil)
	reqINM := ptReq(t, "GET", "/", `If-None-Match: "a", W/"v1"`, "Cookie: a=b")
	reqIMS := ptReq(t, "GET", "/", "If-Modified-Since: "+ptAt(0))
	reqRange := ptReq(t, "GET", "/", "Range: bytes=2-5", `If-Range: "v1"`)
	var resp fasthttp.Response
	var buf []byte
	now := ptT0.Add(time.Second)
	tests := []struct {
		name string
		f    func()
	}{
		{"NotModified If-None-Match", func() { _ = NotModified(e, reqINM) }},
		{"NotModified If-Modified-Since", func() { _ = NotModified(e, reqIMS) }},
		{"RangeFor", func() { _, _, _, _ = RangeFor(e, reqRange) }},
		{"Write", func() { buf = e.Write(&resp, now, buf) }},
		{"WriteNotModified", func() { buf = e.WriteNotModified(&resp, now, buf) }},
		{"WriteRange", func() { buf = e.WriteRange(&resp, 2, 5, false, now, buf) }},
		{"WriteRange 416", func() { buf = e.WriteRange(&resp, 0, 0, true, now, buf) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
				t.Errorf("%v allocations per call", n)
			}
		})
	}
	if !NotModified(e, reqINM) || !NotModified(e, reqIMS) {
		t.Error("conditionals not evaluated")
	}
}

func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "0", "Thu, 31 Apr 2050 00:00:60 GMT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sec, ok := parseHTTPDate([]byte(s))
		if !ok {
			return
		}
		// A valid date reads back the same from its IMF-fixdate form.
		again, ok := parseHTTPDate(fasthttp.AppendHTTPDate(nil, time.Unix(sec, 0)))
		if !ok || again != sec {
			t.Fatalf("%q = %d, but its IMF-fixdate reads %d, %v", s, sec, again, ok)
		}
	})
}

func FuzzRangeFor(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=3-", "bytes=0-1,2-3", "bytes=9-2", "Bytes=-0", "bytes= 1 - 2"} {
		f.Add(s, 10)
	}
	f.Fuzz(func(t *testing.T, rng string, size int) {
		if size < 0 || size > 1<<20 {
			return
		}
		start, end, ok, unsatisfiable := parseByteRange([]byte(rng), size)
		if !ok {
			if unsatisfiable {
				t.Fatal("unsatisfiable without ok")
			}
			return
		}
		if unsatisfiable {
			return
		}
		if start < 0 || end < start || end >= size {
			t.Fatalf("%q on %d bytes: %d-%d", rng, size, start, end)
		}
	})
}
