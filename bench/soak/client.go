package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The clients speak HTTP/1.1 over raw connections: net/http's and
// fasthttp's clients silently resend an idempotent request when a kept-alive
// connection breaks, which would hide exactly what this test looks for.

// Client classes.
const (
	clsGet        = "get"        // keep-alive GET/HEAD: small, 64 KiB, /cache/ (must succeed)
	clsChurn      = "churn"      // GET on a new connection each time (must succeed)
	clsPost       = "post"       // keep-alive POST /upload, small bodies (retry_non_idempotent route)
	clsLoris      = "loris"      // request header at 1 byte / 200 ms
	clsSlowRead   = "slowread"   // GET /big/ (256 KiB–1 MiB) read slowly
	clsSlowUpload = "slowupload" // POST /upload of 256 KiB sent slowly
	clsAbort      = "abort"      // close mid-header, mid-upload, mid-download
)

var classOrder = []string{clsGet, clsChurn, clsPost, clsLoris, clsSlowRead, clsSlowUpload, clsAbort}

// classStats counts one class's requests and their outcomes.
type classStats struct {
	name string
	must bool

	done     atomic.Int64 // requests finished (any outcome)
	ok       atomic.Int64
	failed   atomic.Int64 // must-succeed failures
	mu       sync.Mutex
	outcomes map[string]int64
}

// record counts a finished request and its outcome ("ok" for success).
func (s *classStats) record(res string) {
	s.done.Add(1)
	if res == "ok" {
		s.ok.Add(1)
	}
	s.outcome(res)
}

func (s *classStats) outcome(o string) {
	s.mu.Lock()
	s.outcomes[o]++
	s.mu.Unlock()
}

// topOutcomes lists the outcomes, most frequent first.
func (s *classStats) topOutcomes(n int) string {
	s.mu.Lock()
	type kv struct {
		k string
		v int64
	}
	var l []kv
	for k, v := range s.outcomes {
		l = append(l, kv{k, v})
	}
	s.mu.Unlock()
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v || l[i].v == l[j].v && l[i].k < l[j].k })
	var parts []string
	for i, e := range l {
		if i == n {
			parts = append(parts, fmt.Sprintf("… %d more", len(l)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s ×%d", e.k, e.v))
	}
	return strings.Join(parts, "; ")
}

// failure is a failed request of a must-succeed class (or a POST).
type failure struct {
	at      time.Duration // since the start of the load
	class   string
	what    string // method and path
	id      string // X-Request-ID
	err     string
	took    time.Duration
	origins string // what the origins did with it
}

func (f failure) String() string {
	o := f.origins
	if o == "" {
		o = "none reached an origin"
	}
	return fmt.Sprintf("t=%.1fs %s %s id=%s: %s (after %s; origins: %s)",
		f.at.Seconds(), f.class, f.what, f.id, f.err, f.took.Round(time.Millisecond), o)
}

// load runs the client classes against edge.
type load struct {
	opts    *options
	addr    string
	content *content
	rec     *recorder
	start   time.Time
	logf    func(string, ...any)

	stats map[string]*classStats

	mu        sync.Mutex
	failures  []failure  // must-succeed failures (first maxKept)
	postFails []failure  // POST failures (first maxKept)
	causeN    causeCount // every must-succeed failure by failureCause
	postCause causeCount // every POST failure by failureCause
	printed   int
	cacheHits atomic.Int64
	lorisCut  durStats // when edge cut a slow-loris header short
	lorisLate durStats // slow-loris headers completed after read_header_timeout, yet answered
}

const maxKept = 1000

func newLoad(opts *options, addr string, c *content, rec *recorder, logf func(string, ...any)) *load {
	l := &load{opts: opts, addr: addr, content: c, rec: rec, logf: logf, stats: map[string]*classStats{}}
	for _, n := range classOrder {
		l.stats[n] = &classStats{name: n, outcomes: map[string]int64{}}
	}
	l.stats[clsGet].must = true
	l.stats[clsChurn].must = true
	l.stats[clsPost].must = opts.postMustSucceed
	return l
}

// fail records a failed request of a class that must not fail.
func (l *load) fail(class, what, id, err string, took time.Duration) {
	st := l.stats[class]
	st.failed.Add(1)
	st.outcome("FAIL: " + shortErr(err))
	time.Sleep(50 * time.Millisecond) // let the origins record a late attempt
	f := failure{at: time.Since(l.start), class: class, what: what, id: id, err: err, took: took, origins: l.rec.get(id)}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.causeN.add(f.origins)
	if len(l.failures) < maxKept {
		l.failures = append(l.failures, f)
	}
	if l.printed < l.opts.printFailures {
		l.printed++
		l.logf("FAIL %s", f)
	}
}

func (l *load) postFail(what, id, err string, took time.Duration) {
	time.Sleep(50 * time.Millisecond)
	f := failure{at: time.Since(l.start), class: clsPost, what: what, id: id, err: err, took: took, origins: l.rec.get(id)}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.postCause.add(f.origins)
	if len(l.postFails) < maxKept {
		l.postFails = append(l.postFails, f)
	}
}

// shortErr keeps an error's kind for the outcome counts (no addresses or
// sizes, so that equal failures add up).
func shortErr(s string) string {
	for _, k := range []string{"connection reset", "broken pipe", "EOF", "i/o timeout", "refused", "unexpected EOF"} {
		if strings.Contains(s, k) {
			if i := strings.Index(s, ":"); i > 0 && i < 24 {
				return s[:i] + ": " + k
			}
			return k
		}
	}
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// run starts every class and returns when ctx ends and all have stopped.
func (l *load) run(ctx context.Context) {
	l.start = time.Now()
	o := l.opts
	var wg sync.WaitGroup
	spawn := func(n int, f func(ctx context.Context, i int)) {
		for i := range n {
			wg.Go(func() { f(ctx, i) })
		}
	}
	spawn(o.conns, l.getWorker)
	spawn(2, l.postWorker)
	spawn(2, l.churnWorker)
	spawn(o.slow, l.lorisWorker)
	spawn(max(1, o.slow/2), l.slowReadWorker)
	spawn(max(1, o.slow/2), l.slowUploadWorker)
	spawn(1, l.abortWorker)
	wg.Wait()
}

func (l *load) rng(class string, i int) *rand.Rand {
	h := uint64(0)
	for _, c := range class {
		h = h*131 + uint64(c)
	}
	return rand.New(rand.NewPCG(l.opts.seed, h<<8|uint64(i)))
}

// pacer spaces events at a mean interval (±25 % jitter) without catching
// up after a slow event: the load stays at or below its rate.
type pacer struct {
	every time.Duration
	next  time.Time
	rng   *rand.Rand
}

func newPacer(rate float64, rng *rand.Rand) *pacer {
	if rate <= 0 {
		rate = 1
	}
	p := &pacer{every: time.Duration(float64(time.Second) / rate), rng: rng}
	p.next = time.Now().Add(time.Duration(rng.Int64N(int64(p.every) + 1)))
	return p
}

func (p *pacer) wait(ctx context.Context) bool {
	if now := time.Now(); p.next.Before(now) {
		p.next = now
	}
	if d := time.Until(p.next); d > 0 && !sleepCtx(ctx, d) {
		return false
	}
	j := time.Duration(float64(p.every) * (0.75 + 0.5*p.rng.Float64()))
	p.next = p.next.Add(j)
	return ctx.Err() == nil
}

// hconn is a client connection to edge.
type hconn struct {
	c    net.Conn
	br   *bufio.Reader
	stop func() bool // undoes the close-on-cancel
}

func (l *load) dial(ctx context.Context) (*hconn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", l.addr)
	if err != nil {
		return nil, err
	}
	h := &hconn{c: c, br: bufio.NewReaderSize(c, 16<<10)}
	h.stop = context.AfterFunc(ctx, func() { _ = c.Close() })
	return h, nil
}

func (h *hconn) close() {
	if h == nil {
		return
	}
	h.stop()
	_ = h.c.Close()
}

// abort closes with a RST instead of a FIN.
func (h *hconn) abort() {
	if tc, ok := h.c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	h.close()
}

// roundTrip writes req and reads the whole response.
func (h *hconn) roundTrip(req []byte, method string, timeout time.Duration) (*http.Response, []byte, error) {
	_ = h.c.SetDeadline(time.Now().Add(timeout))
	if _, err := h.c.Write(req); err != nil {
		return nil, nil, fmt.Errorf("write request: %w", err)
	}
	resp, err := http.ReadResponse(h.br, &http.Request{Method: method})
	if err != nil {
		return nil, nil, fmt.Errorf("read response header: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, body, fmt.Errorf("read body (status %d, %d bytes in): %w", resp.StatusCode, len(body), err)
	}
	return resp, body, nil
}

func request(method, path, id string, extra string, body []byte) []byte {
	b := fmt.Appendf(nil, "%s %s HTTP/1.1\r\nHost: soak.test\r\nX-Request-ID: %s\r\n%s", method, path, id, extra)
	if body != nil {
		b = fmt.Appendf(b, "Content-Length: %d\r\nContent-Type: application/octet-stream\r\n", len(body))
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// snippet shows the start of a body in an error.
func snippet(b []byte) string {
	if len(b) > 60 {
		return strconv.Quote(string(b[:60])) + "…"
	}
	return strconv.Quote(string(b))
}

// checkBody compares an answer with the expected one.
func checkBody(resp *http.Response, body, want []byte, head bool) string {
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d (body %s)", resp.StatusCode, snippet(body))
	}
	if head {
		if resp.ContentLength != int64(len(want)) {
			return fmt.Sprintf("HEAD: Content-Length %d, want %d", resp.ContentLength, len(want))
		}
		if len(body) != 0 {
			return fmt.Sprintf("HEAD: %d body bytes", len(body))
		}
		return ""
	}
	if !bytes.Equal(body, want) {
		i := 0
		for i < len(body) && i < len(want) && body[i] == want[i] {
			i++
		}
		return fmt.Sprintf("body differs: %d bytes, want %d, first difference at byte %d", len(body), len(want), i)
	}
	return ""
}

// getWorker: keep-alive GETs and HEADs that must all succeed.
func (l *load) getWorker(ctx context.Context, i int) {
	rng := l.rng(clsGet, i)
	st := l.stats[clsGet]
	p := newPacer(l.opts.rate/float64(l.opts.conns), rng)
	var h *hconn
	defer func() { h.close() }()
	for n := 0; p.wait(ctx); n++ {
		var op, kind, method string
		var k int
		switch x := rng.IntN(100); {
		case x < 40:
			op, kind, k, method = "small", kindSmall, rng.IntN(1000), http.MethodGet
		case x < 65:
			op, kind, k, method = "64KiB", kindB64, rng.IntN(1000), http.MethodGet
		case x < 90:
			op, kind, k, method = "cache", kindCache, rng.IntN(32), http.MethodGet
		default:
			op, kind, k, method = "head", kindSmall, rng.IntN(1000), http.MethodHead
		}
		path := fmt.Sprintf("/%s/%d", kind, k)
		id := fmt.Sprintf("g%d-%d", i, n)
		what := method + " " + path
		t0 := time.Now()
		if h == nil {
			var err error
			if h, err = l.dial(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				st.done.Add(1)
				l.fail(clsGet, what, id, "dial: "+err.Error(), time.Since(t0))
				continue
			}
		}
		resp, body, err := h.roundTrip(request(method, path, id, "", nil), method, l.opts.reqTimeout)
		if ctx.Err() != nil {
			return // cut by the end of the run
		}
		st.done.Add(1)
		msg := ""
		if err != nil {
			msg = err.Error()
		} else {
			msg = checkBody(resp, body, l.content.body(kind, k), method == http.MethodHead)
		}
		if msg != "" {
			l.fail(clsGet, what, id, msg, time.Since(t0))
			h.close()
			h = nil
			continue
		}
		st.ok.Add(1)
		if op == "cache" && strings.Contains(strings.ToLower(resp.Header.Get("Cache-Status")), "hit") {
			l.cacheHits.Add(1)
			st.outcome("ok cache hit")
		} else {
			st.outcome("ok " + op)
		}
		if resp.Close {
			st.outcome("edge closed keep-alive (Connection: close)")
			h.close()
			h = nil
		}
	}
}

// churnWorker: one GET per new connection; must succeed.
func (l *load) churnWorker(ctx context.Context, i int) {
	rng := l.rng(clsChurn, i)
	st := l.stats[clsChurn]
	p := newPacer(l.opts.churnRate/2, rng)
	for n := 0; p.wait(ctx); n++ {
		k := rng.IntN(1000)
		path := fmt.Sprintf("/small/%d", k)
		id := fmt.Sprintf("c%d-%d", i, n)
		extra := ""
		if n%2 == 0 {
			extra = "Connection: close\r\n"
		}
		t0 := time.Now()
		h, err := l.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			st.done.Add(1)
			l.fail(clsChurn, "GET "+path, id, "dial: "+err.Error(), time.Since(t0))
			continue
		}
		resp, body, err := h.roundTrip(request(http.MethodGet, path, id, extra, nil), http.MethodGet, l.opts.reqTimeout)
		h.close()
		if ctx.Err() != nil {
			return
		}
		st.done.Add(1)
		msg := ""
		if err != nil {
			msg = err.Error()
		} else {
			msg = checkBody(resp, body, l.content.body(kindSmall, k), false)
		}
		if msg != "" {
			l.fail(clsChurn, "GET "+path, id, msg, time.Since(t0))
			continue
		}
		st.ok.Add(1)
		st.outcome("ok")
	}
}

// postWorker: keep-alive POSTs with small bodies to /upload, a route with
// retry_non_idempotent (a body of at most 64 KiB is held and can be
// resent). Counted apart; they fail the run only with -post-must-succeed.
func (l *load) postWorker(ctx context.Context, i int) {
	rng := l.rng(clsPost, i)
	st := l.stats[clsPost]
	p := newPacer(l.opts.postRate/2, rng)
	var h *hconn
	defer func() { h.close() }()
	for n := 0; p.wait(ctx); n++ {
		size := 256 + rng.IntN(3841)
		body := l.content.uploadBody(rng.IntN(10000), size)
		want := uploadAnswer(int64(size), crc32.ChecksumIEEE(body))
		id := fmt.Sprintf("p%d-%d", i, n)
		what := fmt.Sprintf("POST /upload (%d bytes)", size)
		t0 := time.Now()
		msg := ""
		var resp *http.Response
		if h == nil {
			var err error
			if h, err = l.dial(ctx); err != nil {
				msg = "dial: " + err.Error()
			}
		}
		if msg == "" {
			var got []byte
			var err error
			resp, got, err = h.roundTrip(request(http.MethodPost, "/upload", id, "", body), http.MethodPost, l.opts.reqTimeout)
			switch {
			case err != nil:
				msg = err.Error()
			case resp.StatusCode != http.StatusOK:
				msg = fmt.Sprintf("status %d (body %s)", resp.StatusCode, snippet(got))
			case string(got) != want:
				msg = fmt.Sprintf("answer %s, want %q", snippet(got), want)
			}
		}
		if ctx.Err() != nil {
			return
		}
		st.done.Add(1)
		if msg != "" {
			h.close()
			h = nil
			if st.must {
				l.fail(clsPost, what, id, msg, time.Since(t0))
			} else {
				st.outcome("failed: " + shortErr(msg))
				l.postFail(what, id, msg, time.Since(t0))
			}
			continue
		}
		st.ok.Add(1)
		st.outcome("ok")
		if resp.Close {
			h.close()
			h = nil
		}
	}
}

// lorisWorker sends a request header one byte every -loris-every; edge is
// expected to answer it when it completes within read_header_timeout, and
// to cut it (408 or close) at read_header_timeout otherwise.
func (l *load) lorisWorker(ctx context.Context, i int) {
	rng := l.rng(clsLoris, i)
	st := l.stats[clsLoris]
	if !sleepCtx(ctx, time.Duration(rng.Int64N(int64(2*time.Second)))) {
		return
	}
	for n := 0; ctx.Err() == nil; n++ {
		k := rng.IntN(1000)
		id := fmt.Sprintf("l%d-%d", i, n)
		pad := strings.Repeat("x", rng.IntN(60))
		req := request(http.MethodGet, fmt.Sprintf("/small/%d", k), id, "X-Pad: "+pad+"\r\n", nil)
		h, err := l.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			st.done.Add(1)
			st.outcome("dial error: " + shortErr(err.Error()))
			sleepCtx(ctx, time.Second)
			continue
		}
		type answer struct {
			resp *http.Response
			body []byte
			err  error
			at   time.Duration
		}
		t0 := time.Now()
		got := make(chan answer, 1)
		go func() {
			_ = h.c.SetReadDeadline(time.Now().Add(time.Minute))
			resp, err := http.ReadResponse(h.br, &http.Request{Method: http.MethodGet})
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
			}
			got <- answer{resp, body, err, time.Since(t0)}
		}()
		sent := 0
		var a answer
		var have bool
		var completeAt time.Duration
	send:
		for sent < len(req) {
			select {
			case a = <-got:
				have = true
				break send
			case <-ctx.Done():
				break send
			case <-time.After(l.opts.lorisEvery):
			}
			_ = h.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := h.c.Write(req[sent : sent+1]); err != nil {
				break
			}
			sent++
			completeAt = time.Since(t0)
		}
		if !have {
			select {
			case a = <-got:
			case <-ctx.Done():
			}
		}
		h.close()
		if ctx.Err() != nil {
			return
		}
		st.done.Add(1)
		complete := sent == len(req)
		secs := func(d time.Duration) string { return fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds())) }
		late := complete && completeAt > l.opts.readHeaderTimeout+time.Second
		switch {
		case !complete:
			l.lorisCut.add(a.at)
			how := "closed"
			if a.err == nil {
				how = strconv.Itoa(a.resp.StatusCode)
			}
			st.outcome(fmt.Sprintf("cut by edge at %s: %s", secs(a.at), how))
		case a.err != nil:
			st.outcome(l.explain(id, fmt.Sprintf("header complete at %s: %s", secs(completeAt), shortErr(a.err.Error()))))
		case a.resp.StatusCode == http.StatusOK:
			if msg := checkBody(a.resp, a.body, l.content.body(kindSmall, k), false); msg != "" {
				st.outcome("header complete, bad answer: " + msg)
				break
			}
			st.ok.Add(1)
			if late {
				l.lorisLate.add(completeAt)
				st.outcome("header complete after read_header_timeout, answered 200")
			} else {
				st.outcome("header complete within read_header_timeout, answered 200")
			}
		default:
			st.outcome(l.explain(id, fmt.Sprintf("header complete at %s: status %d", secs(completeAt), a.resp.StatusCode)))
		}
	}
}

// slowReadWorker fetches /big/ bodies through a small receive buffer at
// -slow-read-rate bytes per second.
func (l *load) slowReadWorker(ctx context.Context, i int) {
	rng := l.rng(clsSlowRead, i)
	st := l.stats[clsSlowRead]
	rate := l.opts.slowReadRate
	for n := 0; ctx.Err() == nil; n++ {
		k := rng.IntN(1000)
		path := fmt.Sprintf("/big/%d", k)
		id := fmt.Sprintf("r%d-%d", i, n)
		want := l.content.body(kindBig, k)
		h, err := l.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			st.done.Add(1)
			st.outcome("dial error: " + shortErr(err.Error()))
			sleepCtx(ctx, time.Second)
			continue
		}
		if tc, ok := h.c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(8 << 10)
		}
		h.br = bufio.NewReaderSize(h.c, 4<<10)
		res := func() string {
			_ = h.c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := h.c.Write(request(http.MethodGet, path, id, "", nil)); err != nil {
				return "write: " + shortErr(err.Error())
			}
			resp, err := http.ReadResponse(h.br, &http.Request{Method: http.MethodGet})
			if err != nil {
				return "header: " + shortErr(err.Error())
			}
			if resp.StatusCode != http.StatusOK {
				_, _ = io.Copy(io.Discard, resp.Body)
				return l.explain(id, fmt.Sprintf("status %d", resp.StatusCode))
			}
			buf := make([]byte, 4<<10)
			off := 0
			t0 := time.Now()
			for {
				_ = h.c.SetReadDeadline(time.Now().Add(30 * time.Second))
				m, err := resp.Body.Read(buf)
				if m > 0 {
					if off+m > len(want) || !bytes.Equal(buf[:m], want[off:off+m]) {
						return fmt.Sprintf("body differs at or after byte %d", off)
					}
					off += m
					if d := time.Duration(float64(off)/rate*float64(time.Second)) - time.Since(t0); d > 0 {
						if !sleepCtx(ctx, d) {
							return ""
						}
					}
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					who := l.rec.get(id)
					if strings.Contains(who, ":"+actTruncate) {
						return "truncated by the node (" + who + "): passed on as a cut body"
					}
					return fmt.Sprintf("body cut at %d KiB of %d: %s (origins: %s)", off>>10, len(want)>>10, shortErr(err.Error()), who)
				}
			}
			if off != len(want) {
				return fmt.Sprintf("body %d bytes, want %d", off, len(want))
			}
			return "ok"
		}()
		h.close()
		if ctx.Err() != nil {
			return
		}
		st.record(res)
	}
}

// slowUploadWorker POSTs 256 KiB to /upload at -slow-upload-rate bytes per
// second (half with Content-Length, half chunked). Such a body is streamed
// to the node and cannot be resent: a misbehaving node fails it.
func (l *load) slowUploadWorker(ctx context.Context, i int) {
	rng := l.rng(clsSlowUpload, i)
	st := l.stats[clsSlowUpload]
	const size = 256 << 10
	const piece = 4 << 10
	every := time.Duration(float64(piece) / l.opts.slowUploadRate * float64(time.Second))
	for n := 0; ctx.Err() == nil; n++ {
		body := l.content.uploadBody(rng.IntN(10000), size)
		want := uploadAnswer(size, crc32.ChecksumIEEE(body))
		id := fmt.Sprintf("u%d-%d", i, n)
		chunked := n%2 == 1
		h, err := l.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			st.done.Add(1)
			st.outcome("dial error: " + shortErr(err.Error()))
			sleepCtx(ctx, time.Second)
			continue
		}
		res := func() string {
			head := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: soak.test\r\nX-Request-ID: %s\r\nContent-Type: application/octet-stream\r\n", id)
			if chunked {
				head += "Transfer-Encoding: chunked\r\n\r\n"
			} else {
				head += fmt.Sprintf("Content-Length: %d\r\n\r\n", size)
			}
			_ = h.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(h.c, head); err != nil {
				return "write header: " + shortErr(err.Error())
			}
			for off := 0; off < size; off += piece {
				if !sleepCtx(ctx, every) {
					return ""
				}
				p := body[off : off+piece]
				var b []byte
				if chunked {
					b = fmt.Appendf(nil, "%x\r\n%s\r\n", len(p), p)
				} else {
					b = p
				}
				_ = h.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
				if _, err := h.c.Write(b); err != nil {
					return l.explain(id, fmt.Sprintf("write body at %d KiB: %s", off>>10, shortErr(err.Error())))
				}
			}
			if chunked {
				if _, err := io.WriteString(h.c, "0\r\n\r\n"); err != nil {
					return l.explain(id, "write last chunk: "+shortErr(err.Error()))
				}
			}
			_ = h.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(h.br, &http.Request{Method: http.MethodPost})
			if err != nil {
				return l.explain(id, "read answer: "+shortErr(err.Error()))
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				return l.explain(id, "read answer body: "+shortErr(err.Error()))
			}
			if resp.StatusCode != http.StatusOK {
				return l.explain(id, fmt.Sprintf("status %d", resp.StatusCode))
			}
			if string(got) != want {
				return fmt.Sprintf("answer %s, want %q", snippet(got), want)
			}
			return "ok"
		}()
		h.close()
		if ctx.Err() != nil {
			return
		}
		st.record(res)
	}
}

// explain adds what the origins did to a non-must outcome, collapsed to the
// misbehaviours seen ("node3 reset"), so outcomes add up.
func (l *load) explain(id, msg string) string {
	who := l.rec.get(id)
	var acts []string
	for _, a := range strings.Split(who, ", ") {
		if a != "" && !strings.HasSuffix(a, ":"+actOK) {
			acts = append(acts, a)
		}
	}
	if len(acts) == 0 {
		if who == "" {
			return msg + " (no origin saw it)"
		}
		return msg + " (origins answered ok)"
	}
	return msg + " (" + strings.Join(acts, ", ") + ")"
}

// abortWorker opens connections and drops them mid-request-header,
// mid-upload or mid-download, half of them with a RST.
func (l *load) abortWorker(ctx context.Context, i int) {
	rng := l.rng(clsAbort, i)
	st := l.stats[clsAbort]
	p := newPacer(l.opts.abortRate, rng)
	for n := 0; p.wait(ctx); n++ {
		kind := []string{"mid-header", "mid-upload", "mid-download"}[n%3]
		id := fmt.Sprintf("a%d-%d", i, n)
		h, err := l.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			st.done.Add(1)
			st.outcome("dial error: " + shortErr(err.Error()))
			continue
		}
		_ = h.c.SetDeadline(time.Now().Add(10 * time.Second))
		res := "ok"
		switch kind {
		case "mid-header":
			req := request(http.MethodGet, fmt.Sprintf("/small/%d", rng.IntN(1000)), id, "X-Pad: abcdefgh\r\n", nil)
			cut := 1 + rng.IntN(len(req)-3)
			if _, err := h.c.Write(req[:cut]); err != nil {
				res = "write: " + shortErr(err.Error())
			}
		case "mid-upload":
			head := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: soak.test\r\nX-Request-ID: %s\r\nContent-Length: %d\r\n\r\n", id, 256<<10)
			body := l.content.uploadBody(rng.IntN(10000), (1+rng.IntN(128))<<10)
			if _, err := h.c.Write(append([]byte(head), body...)); err != nil {
				res = "write: " + shortErr(err.Error())
			}
		case "mid-download":
			k := rng.IntN(1000)
			if _, err := h.c.Write(request(http.MethodGet, fmt.Sprintf("/big/%d", k), id, "", nil)); err != nil {
				res = "write: " + shortErr(err.Error())
				break
			}
			resp, err := http.ReadResponse(h.br, &http.Request{Method: http.MethodGet})
			if err != nil {
				res = l.explain(id, "header: "+shortErr(err.Error()))
				break
			}
			if resp.StatusCode != http.StatusOK {
				res = l.explain(id, fmt.Sprintf("status %d", resp.StatusCode))
				break
			}
			if _, err := io.CopyN(io.Discard, resp.Body, int64((4+rng.IntN(124))<<10)); err != nil {
				res = l.explain(id, "body: "+shortErr(err.Error()))
			}
		}
		sleepCtx(ctx, time.Duration(rng.IntN(300))*time.Millisecond)
		rst := rng.IntN(2) == 0
		if rst {
			h.abort()
		} else {
			h.close()
		}
		if ctx.Err() != nil {
			return
		}
		st.done.Add(1)
		if res == "ok" {
			st.ok.Add(1)
			how := "FIN"
			if rst {
				how = "RST"
			}
			res = kind + " " + how
		} else {
			res = kind + ": " + res
		}
		st.outcome(res)
	}
}

// durStats keeps the min and max of durations.
type durStats struct {
	mu       sync.Mutex
	n        int
	min, max time.Duration
}

func (d *durStats) add(v time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == 0 || v < d.min {
		d.min = v
	}
	if d.n == 0 || v > d.max {
		d.max = v
	}
	d.n++
}

func (d *durStats) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func (d *durStats) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == 0 {
		return "none"
	}
	return fmt.Sprintf("%d, after %.1f–%.1f s", d.n, d.min.Seconds(), d.max.Seconds())
}
