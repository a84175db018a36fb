package router

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Live access log ("edge tail", admin GET /logs): followers attach with a
// filter and receive, over a streamed response, the access-log line of
// every finished request that passes it. Nothing is written to disk and
// nothing is kept: a follower sees the requests that finish while it is
// attached.
//
// The request path pays one atomic load when nobody follows. With
// followers, each finished request is matched against each follower's
// filter, formatted once per format needed (with the access log's own
// builders) and copied into each matching follower's bounded queue without
// blocking: a follower that cannot keep up loses lines, which are counted
// and announced to it, and never slows requests down.

const (
	// maxTailFollowers bounds the followers attached at once; more are
	// refused with 503.
	maxTailFollowers = 16
	// tailHeartbeat is how often an idle stream gets an empty line, so a
	// follower whose connection died is noticed and detached.
	tailHeartbeat = 15 * time.Second
	// tailWriteTimeout bounds one write to a follower: a client that reads
	// nothing for this long is cut off and its slot freed.
	tailWriteTimeout = time.Minute
	// tailSocketBuffer is the kernel send buffer of a follower's
	// connection: a log stream needs no more, and a follower that stops
	// reading is noticed (its lines dropped) after this much rather than
	// after the several megabytes autotuning may allow.
	tailSocketBuffer = 32 << 10
	// tailBatch is how many queued lines are written before a flush.
	tailBatch = 64
)

// tailQueue is how many lines may wait for one follower's writer. (A
// variable for the tests only.)
var tailQueue = 1024

// tailHub fans finished requests out to live followers. Its zero value is
// ready: metrics are registered by the first follower (setup).
type tailHub struct {
	// followers is the attached followers, replaced as a whole (copy on
	// write) under mu; nil when there are none, which is what active
	// tests.
	followers atomic.Pointer[[]*follower]
	mu        sync.Mutex // serialises attach and detach

	once    sync.Once
	dropped prometheus.Counter // edge_tail_dropped_lines_total
	gauge   prometheus.Gauge   // edge_tail_followers
}

// follower is one attached stream: its filter, format and queue.
type follower struct {
	filter  tailFilter
	json    bool
	lines   chan *[]byte
	dropped atomic.Int64 // lines lost since the last notice
}

// active reports whether any follower is attached: a single atomic load,
// so that the request path does nothing more when nobody follows.
func (h *tailHub) active() bool { return h.followers.Load() != nil }

// setup registers the hub's metrics on reg, once. It runs before the first
// follower attaches, so publish always finds them.
func (h *tailHub) setup(reg prometheus.Registerer) {
	h.once.Do(func() {
		h.dropped = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edge_tail_dropped_lines_total",
			Help: "Live log lines (admin /logs, edge tail) dropped because a follower fell behind.",
		})
		h.gauge = prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edge_tail_followers",
			Help: "Live log followers (admin /logs, edge tail) attached now.",
		})
		reg.MustRegister(h.dropped, h.gauge)
	})
}

// attach adds f, unless maxTailFollowers are attached already.
func (h *tailHub) attach(f *follower) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	var cur []*follower
	if p := h.followers.Load(); p != nil {
		cur = *p
	}
	if len(cur) >= maxTailFollowers {
		return false
	}
	next := append(slices.Clip(cur), f) // a new array: readers keep the old one
	h.followers.Store(&next)
	h.gauge.Set(float64(len(next)))
	return true
}

// detach removes f. Requests that loaded the old list may still offer f a
// line; it stays in the queue, which nobody reads any more.
func (h *tailHub) detach(f *follower) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.followers.Load()
	if p == nil {
		return
	}
	next := make([]*follower, 0, len(*p))
	for _, g := range *p {
		if g != f {
			next = append(next, g)
		}
	}
	if len(next) == 0 {
		h.followers.Store(nil)
	} else {
		h.followers.Store(&next)
	}
	h.gauge.Set(float64(len(next)))
}

// publish hands one finished request to the followers whose filter it
// passes. It never blocks: a full queue loses the line.
func (h *tailHub) publish(ctx *fasthttp.RequestCtx, out *outcome, status int, dur time.Duration) {
	p := h.followers.Load()
	if p == nil {
		return
	}
	ev := tailEvent{ctx: ctx, out: out, status: status, dur: dur}
	var combined, js *[]byte // each format is built once, for every follower of it
	for _, f := range *p {
		if !f.filter.match(&ev) {
			continue
		}
		line := &combined
		if f.json {
			line = &js
		}
		if *line == nil {
			bp := lineBufPool.Get().(*[]byte)
			if f.json {
				*bp = appendJSONLine((*bp)[:0], ctx, out, status, dur)
			} else {
				*bp = appendCombinedLine((*bp)[:0], ctx, out, status, dur)
			}
			*line = bp
		}
		h.offer(f, **line)
	}
	for _, bp := range [...]*[]byte{combined, js} {
		if bp != nil {
			*bp = (*bp)[:0]
			lineBufPool.Put(bp)
		}
	}
}

// offer queues a copy of line for f, or counts it dropped when f's queue
// is full.
func (h *tailHub) offer(f *follower, line []byte) {
	if len(f.lines) == cap(f.lines) {
		h.drop(f)
		return
	}
	bp := lineBufPool.Get().(*[]byte)
	*bp = append((*bp)[:0], line...)
	select {
	case f.lines <- bp:
	default:
		lineBufPool.Put(bp)
		h.drop(f)
	}
}

// drop counts a line lost for f.
func (h *tailHub) drop(f *follower) {
	f.dropped.Add(1)
	h.dropped.Inc()
}

// follow writes f's lines to w until the server shuts down (done closes)
// or a write fails (the client went away, or read nothing for
// tailWriteTimeout); then it detaches f. conn is the client connection,
// whose write deadline it moves forward before each batch of lines.
func (h *tailHub) follow(f *follower, w *bufio.Writer, conn net.Conn, done <-chan struct{}) {
	defer h.detach(f)
	beat := time.NewTicker(tailHeartbeat)
	defer beat.Stop()
	var notice []byte
	for {
		select {
		case <-done:
			return
		case bp := <-f.lines:
			extendDeadline(conn)
			notice = f.appendDropped(notice[:0])
			_, _ = w.Write(notice)
			_, _ = w.Write(*bp)
			putLine(bp)
		batch:
			for range tailBatch - 1 {
				select {
				case bp = <-f.lines:
					_, _ = w.Write(*bp)
					putLine(bp)
				default:
					break batch
				}
			}
		case <-beat.C:
			extendDeadline(conn)
			notice = f.appendDropped(notice[:0])
			if len(notice) == 0 {
				notice = append(notice, '\n')
			}
			_, _ = w.Write(notice)
		}
		if w.Flush() != nil { // also reports a failed write above
			return
		}
	}
}

// extendDeadline gives the writes to a follower's connection that follow
// tailWriteTimeout to complete.
func extendDeadline(conn net.Conn) {
	if conn != nil {
		_ = conn.SetWriteDeadline(time.Now().Add(tailWriteTimeout))
	}
}

// putLine returns a line's buffer to the pool.
func putLine(bp *[]byte) {
	*bp = (*bp)[:0]
	lineBufPool.Put(bp)
}

// appendDropped appends the notice of the lines f lost since the last one
// (nothing when it lost none): a comment line for the combined format, a
// JSON object for JSON.
func (f *follower) appendDropped(b []byte) []byte {
	n := f.dropped.Swap(0)
	if n == 0 {
		return b
	}
	if f.json {
		b = append(b, `{"dropped_lines":`...)
		b = strconv.AppendInt(b, n, 10)
		return append(b, "}\n"...)
	}
	b = append(b, "# dropped "...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, " lines\n"...)
}

// tailEvent is a finished request being matched; the cache status is
// worked out on first use.
type tailEvent struct {
	ctx       *fasthttp.RequestCtx
	out       *outcome
	status    int
	dur       time.Duration
	cache     uint8
	cacheDone bool
}

func (ev *tailEvent) cacheClass() uint8 {
	if !ev.cacheDone {
		ev.cacheDone = true
		ev.cache = tailCacheNone
		if r := ev.out.route; r != nil && r.cache != nil {
			ev.cache = cacheClassOf(ev.ctx.Response.Header.PeekBytes(hdrCacheStatus))
		}
	}
	return ev.cache
}

// Cache classes a follower may filter on, as bits. The names are those of
// edge_cache_requests_total's results.
const (
	tailCacheHit         uint8 = 1 << iota // served from the store, fresh
	tailCacheStale                         // served from the store after its freshness ended
	tailCacheRevalidated                   // served from the store once a node confirmed it (304)
	tailCacheMiss                          // forwarded to a node: nothing usable stored
	tailCacheBypass                        // forwarded to a node: the method is not cached
	tailCacheNone                          // the route does not cache (or no route ran)
)

// cacheClassName names a cache class in a filter.
type cacheClassName struct {
	name string
	bit  uint8
}

var cacheClassNames = []cacheClassName{
	{"hit", tailCacheHit}, {"stale", tailCacheStale}, {"revalidated", tailCacheRevalidated},
	{"miss", tailCacheMiss}, {"bypass", tailCacheBypass}, {"none", tailCacheNone},
}

// cacheClassOf reads edge's member of a Cache-Status value (RFC 9211) as
// cache.go writes it. Answers from the store carry a ttl: "edge; hit;
// ttl=N" (stale when N < 0) and "edge; fwd=stale; ttl=N" (revalidated by
// a 304, or stale when N < 0: kept because the node failed). Without a
// ttl the request went to a node: "edge; fwd=method" bypasses the cache,
// any other fwd is a miss.
func cacheClassOf(v []byte) uint8 {
	for len(v) > 0 {
		var member []byte
		member, v, _ = bytes.Cut(v, []byte{','})
		name, params, _ := bytes.Cut(member, []byte{';'})
		if string(bytes.TrimSpace(name)) != cacheName {
			continue
		}
		var fwd []byte
		hasTTL, negTTL := false, false
		for len(params) > 0 {
			var p []byte
			p, params, _ = bytes.Cut(params, []byte{';'})
			k, val, _ := bytes.Cut(bytes.TrimSpace(p), []byte{'='})
			switch string(k) {
			case "fwd":
				fwd = val
			case "ttl":
				hasTTL, negTTL = true, len(val) > 0 && val[0] == '-'
			}
		}
		switch {
		case hasTTL && negTTL:
			return tailCacheStale
		case hasTTL && string(fwd) == "stale":
			return tailCacheRevalidated
		case hasTTL:
			return tailCacheHit
		case string(fwd) == "method":
			return tailCacheBypass
		default:
			return tailCacheMiss
		}
	}
	return tailCacheNone
}

// tailFilter selects the requests a follower sees. Empty parts match
// everything; the parts that are set must all match.
type tailFilter struct {
	routes     []string // route names; "-" for requests that matched none
	nodes      []string // node names; "-" for requests no node answered
	classes    uint8    // status classes, bit c for cxx
	codes      []int    // exact statuses
	cache      uint8    // cache classes
	slow       time.Duration
	methods    []string
	pathPrefix string
}

// match reports whether ev passes f. It allocates nothing.
func (f *tailFilter) match(ev *tailEvent) bool {
	if ev.dur < f.slow {
		return false
	}
	if (f.classes != 0 || len(f.codes) > 0) &&
		f.classes&(1<<uint(ev.status/100)) == 0 && !slices.Contains(f.codes, ev.status) {
		return false
	}
	if len(f.methods) > 0 && !containsBytes(f.methods, ev.ctx.Method()) {
		return false
	}
	if len(f.routes) > 0 || len(f.nodes) > 0 {
		route, node := outcomeNames(ev.out)
		if len(f.routes) > 0 && !slices.Contains(f.routes, route) {
			return false
		}
		if len(f.nodes) > 0 && !slices.Contains(f.nodes, node) {
			return false
		}
	}
	if f.pathPrefix != "" && !bytes.HasPrefix(ev.ctx.Path(), []byte(f.pathPrefix)) {
		return false
	}
	if f.cache != 0 && f.cache&ev.cacheClass() == 0 {
		return false
	}
	return true
}

func containsBytes(list []string, v []byte) bool {
	for _, s := range list {
		if s == string(v) {
			return true
		}
	}
	return false
}

// tailParams are the query parameters of GET /logs.
var tailParams = []string{"route", "node", "status", "cache", "slow", "method", "path_prefix", "format"}

// parseTailQuery reads the filter and format of GET /logs. Lists are
// comma-separated (a parameter may also be repeated). It returns every
// problem found.
func parseTailQuery(args *fasthttp.Args, snap *snapshot) (f tailFilter, asJSON bool, problems []string) {
	values := map[string][]string{}
	for k, v := range args.All() {
		key := string(k)
		if !slices.Contains(tailParams, key) {
			problems = append(problems, fmt.Sprintf("unknown parameter %q (known: %s)", key, strings.Join(tailParams, ", ")))
			continue
		}
		for item := range strings.SplitSeq(string(v), ",") {
			if item = strings.TrimSpace(item); item != "" {
				values[key] = append(values[key], item)
			}
		}
	}
	single := func(key string) string {
		vs := values[key]
		if len(vs) > 1 {
			problems = append(problems, fmt.Sprintf("%s: one value only, got %q", key, strings.Join(vs, ",")))
		}
		if len(vs) == 0 {
			return ""
		}
		return vs[0]
	}

	known := make([]string, 0, len(snap.routes))
	for _, r := range snap.routes {
		known = append(known, r.name)
	}
	for _, r := range values["route"] {
		if r != "-" && !slices.Contains(known, r) {
			problems = append(problems, fmt.Sprintf("route: %q is not a route of the running configuration (routes: %s)", r, strings.Join(known, ", ")))
			continue
		}
		f.routes = append(f.routes, r)
	}
	f.nodes = values["node"]
	for _, st := range values["status"] {
		if len(st) == 3 && st[0] >= '1' && st[0] <= '5' && (st[1:] == "xx" || st[1:] == "XX") {
			f.classes |= 1 << (st[0] - '0')
			continue
		}
		if code, err := strconv.Atoi(st); err == nil && len(st) == 3 && code >= 100 && code <= 599 {
			f.codes = append(f.codes, code)
			continue
		}
		problems = append(problems, fmt.Sprintf("status: %q is neither a status (100-599) nor a class (1xx-5xx)", st))
	}
	for _, c := range values["cache"] {
		i := slices.IndexFunc(cacheClassNames, func(n cacheClassName) bool { return strings.EqualFold(n.name, c) })
		if i < 0 {
			problems = append(problems, fmt.Sprintf("cache: %q is not one of hit, stale, revalidated, miss, bypass, none", c))
			continue
		}
		f.cache |= cacheClassNames[i].bit
	}
	if v := single("slow"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			problems = append(problems, fmt.Sprintf("slow: %q is not a positive duration (like 500ms or 2s)", v))
		}
		f.slow = d
	}
	for _, m := range values["method"] {
		m = strings.ToUpper(m)
		if strings.IndexFunc(m, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) }) >= 0 {
			problems = append(problems, fmt.Sprintf("method: %q is not a method", m))
			continue
		}
		f.methods = append(f.methods, m)
	}
	if v := single("path_prefix"); v != "" {
		if v[0] != '/' {
			problems = append(problems, fmt.Sprintf("path_prefix: %q must start with /", v))
		}
		f.pathPrefix = v
	}
	switch v := single("format"); v {
	case "", "combined":
	case "json":
		asJSON = true
	default:
		problems = append(problems, fmt.Sprintf("format: %q is not json or combined", v))
	}
	return f, asJSON, problems
}

// handleTail serves GET /logs: the access-log lines of the requests that
// pass the filter given in the query, streamed as they finish, until the
// client goes away or the server shuts down.
func (s *Server) handleTail(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		ctx.Response.Header.Set("Allow", "GET")
		ctx.Error("use GET\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	filter, asJSON, problems := parseTailQuery(ctx.QueryArgs(), s.snap.Load())
	if len(problems) > 0 {
		ctx.Error("bad filter:\n  "+strings.Join(problems, "\n  ")+"\n", fasthttp.StatusBadRequest)
		return
	}
	s.tail.setup(s.metrics.reg)
	f := &follower{filter: filter, json: asJSON, lines: make(chan *[]byte, tailQueue)}
	if !s.tail.attach(f) {
		ctx.Response.Header.SetBytesV("Retry-After", []byte("5"))
		ctx.Error(fmt.Sprintf("too many log followers (at most %d)\n", maxTailFollowers), fasthttp.StatusServiceUnavailable)
		return
	}
	// The admin server closes done when it shuts down: the stream ends.
	done := ctx.Done()
	conn := ctx.Conn()
	if c, ok := conn.(interface{ SetWriteBuffer(int) error }); ok {
		_ = c.SetWriteBuffer(tailSocketBuffer)
	}
	// A deadline set by the handler replaces the admin server's write
	// timeout, which would end the stream; follow moves it forward.
	_ = ctx.SetWriteDeadline(time.Now().Add(tailWriteTimeout))
	if asJSON {
		ctx.SetContentType("application/x-ndjson")
	} else {
		ctx.SetContentType("text/plain; charset=utf-8")
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetConnectionClose()
	ctx.Response.ImmediateHeaderFlush = true // the client sees it is attached
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) { s.tail.follow(f, w, conn, done) })
}
