package router

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/edge-router/edge/cache"
	"github.com/edge-router/edge/config"
	"github.com/valyala/fasthttp"
)

// routeCache is a route's compiled cache section.
type routeCache struct {
	policy     *cache.Policy
	keyer      *cache.Keyer
	grace      time.Duration
	hitForPass time.Duration
	coalesce   time.Duration
	metrics    *cacheRouteMetrics
}

// newRouteCache compiles a route's cache section against the global one.
func newRouteCache(g *config.Cache, rc *config.RouteCache, m *cacheRouteMetrics) (*routeCache, error) {
	keyer, err := cache.NewKeyer(cache.KeyOptions{Query: rc.Key.Query, IgnoreParams: rc.Key.IgnoreParams})
	if err != nil {
		return nil, err
	}
	var keyVary []string
	for _, h := range rc.Key.Headers {
		keyVary = append(keyVary, strings.ToLower(h))
	}
	for _, c := range rc.Key.Cookies {
		keyVary = append(keyVary, cache.CookiePrefix+c)
	}
	return &routeCache{
		policy: &cache.Policy{
			ControlHeaders:       g.ControlHeaders,
			TagHeaders:           g.TagHeaders,
			KeepTagHeaders:       g.KeepTagHeaders,
			HeuristicFraction:    g.HeuristicFraction,
			HeuristicMax:         g.HeuristicMax.D(),
			DefaultTTL:           rc.DefaultTTL.D(),
			StaleWhileRevalidate: rc.StaleWhileRevalidate.D(),
			StaleIfError:         rc.StaleIfError.D(),
			Grace:                rc.Grace.D(),
			Keep:                 rc.Keep.D(),
			StripSetCookie:       rc.StripSetCookie,
			MaxObjectSize:        int64(g.MaxObjectSize),
			KeyVary:              keyVary,
		},
		keyer:      keyer,
		grace:      rc.Grace.D(),
		hitForPass: rc.HitForPass.D(),
		coalesce:   rc.CoalesceTimeout.D(),
		metrics:    m,
	}, nil
}

var (
	methodGET   = []byte(fasthttp.MethodGet)
	methodHEAD  = []byte(fasthttp.MethodHead)
	methodPURGE = []byte("PURGE")

	hdrCacheStatus     = []byte("Cache-Status")
	hdrAuthorization   = []byte("Authorization")
	hdrLocation2       = []byte("Location")
	hdrContentLocation = []byte("Content-Location")
)

// cacheName is this cache's name in Cache-Status (RFC 9211 §2).
const cacheName = "edge"

// proxyCached answers a request of a route with a cache: from the store
// when it can (RFC 9111 §4), else through a node, storing the answer when
// it may (§3), and invalidating stored responses after unsafe methods
// (§4.4).
func (s *Server) proxyCached(ctx *fasthttp.RequestCtx, snap *snapshot, r *route, sc *scratch, out *outcome) {
	rc := r.cache
	method := ctx.Method()
	get := bytes.Equal(method, methodGET)
	if !get && !bytes.Equal(method, methodHEAD) {
		rc.metrics.bypass.Inc()
		if bytes.Equal(method, methodPURGE) {
			// cache.purge allows nobody (else handle took it): PURGE is
			// not a method this route's node sees.
			ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
			ctx.Response.SetStatusCode(fasthttp.StatusMethodNotAllowed)
			ctx.Response.SetBodyString("purge not configured\n")
			return
		}
		s.proxy(ctx, snap, r, sc, out)
		if out.err == nil && !isSafe(method) {
			if st := ctx.Response.StatusCode(); st >= 200 && st < 400 {
				s.invalidateAfterUnsafe(ctx, rc, sc)
			}
		}
		rc.policy.StripForClient(&ctx.Response.Header)
		sc.buf = appendCacheStatus(sc.buf[:0], "method", 0, false)
		ctx.Response.Header.SetBytesKV(hdrCacheStatus, sc.buf)
		return
	}

	// The response is still as the server handed it over: its settings
	// are those of every public listener's responses (an HTTP/2 stream's
	// are not a server's).
	if !isHTTP2(ctx) {
		s.cache.hits.Seed(&ctx.Response.Header)
	}
	now := ctx.Time() // when the server read the request
	if now.IsZero() {
		now = time.Now()
	}
	req := &ctx.Request
	sc.key = appendCacheKey(sc.key[:0], rc, ctx)
	ri := cache.ReadRequest(&req.Header)
	rd, hasAuth := ri.Directives, ri.Authorization
	store := s.cache.store
	var e *cache.Entry
	e, sc.buf = store.Lookup(sc.key, &req.Header, sc.buf)
	if e != nil && hasAuth && !e.AuthOK {
		// RFC 9111 §3.5: not for this request, not even to validate (a
		// node might answer 304 for the tag without looking at who asks).
		e = nil
	}
	if e != nil {
		switch cache.Usable(e, rd, hasAuth, now) {
		case cache.UseFresh:
			rc.metrics.hit.Inc()
			s.serveStored(ctx, e, now, sc, "", &ri)
			return
		case cache.UseStale:
			rc.metrics.servedStale(staleMaxStale)
			s.serveStored(ctx, e, now, sc, "", &ri)
			return
		}
		if cache.StaleAllowed(e, rd, hasAuth) && cache.CanServeStaleWhileRevalidate(e, now) {
			rc.metrics.servedStale(staleWhileRevalidate)
			s.refreshInBackground(ctx, snap, r, e) // changes the request
			s.serveStored(ctx, e, now, sc, "", nil)
			return
		}
	}
	if rd.OnlyIfCached {
		// RFC 9111 §5.2.1.7: nothing stored that may be used.
		rc.metrics.miss.Inc()
		writeError(ctx, fasthttp.StatusGatewayTimeout)
		sc.buf = appendCacheStatus(sc.buf[:0], "miss", 0, false)
		ctx.Response.Header.SetBytesKV(hdrCacheStatus, sc.buf)
		return
	}

	// Concurrent misses of one key share one fetch. A request that must
	// not use a stored answer (no-cache, Authorization) fetches alone.
	fl := &flightEnd{coal: s.cache.coal}
	if e == nil && get && rc.coalesce > 0 && !rd.NoCache && !rd.NoStore && !hasAuth && !fl.coal.Passing(sc.key, now) {
		f, leader := fl.coal.Join(sc.key)
		if leader {
			fl.f = f
		} else {
			rc.metrics.coalesced.Inc()
			if w, _ := f.Wait(rc.coalesce); w != nil {
				var ok bool
				ok, sc.buf = w.Matches(&req.Header, sc.buf)
				if now = time.Now(); ok && cache.Usable(w, rd, hasAuth, now) == cache.UseFresh {
					rc.metrics.hit.Inc()
					s.serveStored(ctx, w, now, sc, "", &ri)
					return
				}
			}
		}
	}
	defer fl.done(nil) // also when the fetch panics

	fwd := "uri-miss"
	switch {
	case e != nil:
		fwd = "stale"
	case rd.NoCache:
		fwd = "request"
	case len(store.Variants(sc.key)) > 0:
		fwd = "vary-miss"
	}
	s.fetchForCache(ctx, snap, r, sc, out, e, rd, fwd, fl)
}

// flightEnd ends a coalesced fetch once: with the stored entry, or nil to
// send the waiters to the nodes themselves.
type flightEnd struct {
	coal *cache.Coalescer
	f    *cache.Flight // nil: not a leader, or already ended
}

func (fl *flightEnd) done(e *cache.Entry) {
	if fl.f != nil {
		fl.coal.Done(fl.f, e)
		fl.f = nil
	}
}

// handOff moves the flight to a new flightEnd (a streamed body's sink),
// leaving fl without one.
func (fl *flightEnd) handOff() *flightEnd {
	n := &flightEnd{coal: fl.coal, f: fl.f}
	fl.f = nil
	return n
}

// fetchForCache forwards a request the store could not answer (stale is
// the entry to revalidate, if any), then serves stale on failure,
// refreshes the entry on 304, or stores the answer when it may.
func (s *Server) fetchForCache(ctx *fasthttp.RequestCtx, snap *snapshot, r *route, sc *scratch, out *outcome,
	stale *cache.Entry, rd cache.RequestDirectives, fwd string, fl *flightEnd) {
	rc := r.cache
	f, ok := s.prepare(ctx, snap, r, sc, out)
	if !ok {
		return
	}
	req, resp := &ctx.Request, &ctx.Response
	validating := stale != nil && (stale.ETag != nil || stale.LastModified != nil)
	var clientConds [][]string
	if validating {
		// The node gets the cache's validators; the client's own
		// preconditions are answered here, from the result.
		clientConds = saveFields(&req.Header, preconditions)
		cache.AddValidators(&req.Header, stale)
	}
	reqTime := time.Now()
	err := s.forward(req, resp, r.pool, f, out)
	respTime := time.Now()
	if validating {
		restoreFields(&req.Header, preconditions, clientConds)
	}
	status := resp.StatusCode()
	if err != nil || status >= 500 {
		if stale != nil && cache.CanServeStaleOnError(stale, rc.grace, respTime) {
			reason := staleIfError
			if !cache.CanServeStaleOnError(stale, 0, respTime) {
				reason = staleGrace
			}
			rc.metrics.servedStale(reason)
			out.err = nil
			s.serveStored(ctx, stale, respTime, sc, "stale", nil)
			return
		}
		if err != nil {
			rc.metrics.miss.Inc()
			out.err = err
			writeError(ctx, statusForError(err))
			sc.buf = appendCacheStatus(sc.buf[:0], fwd, 0, false)
			ctx.Response.Header.SetBytesKV(hdrCacheStatus, sc.buf)
			return
		}
	}

	store := s.cache.store
	if status == fasthttp.StatusNotModified && validating {
		// RFC 9111 §4.3.4: the 304 freshens the stored response.
		rc.metrics.revalidated.Inc()
		fresh := rc.policy.Refresh(stale, &resp.Header, reqTime, respTime)
		if store.Insert(fresh) {
			rc.metrics.stores.Inc()
		}
		fl.done(fresh)
		s.serveStored(ctx, fresh, respTime, sc, "stale", nil)
		return
	}

	rc.metrics.miss.Inc()
	s.answered(ctx, sc)
	reason := ""
	switch {
	case rd.NoStore:
		reason = "request_no_store" // RFC 9111 §5.2.1.5
	default:
		reason = rc.policy.Storable(&req.Header, &resp.Header, respTime)
	}
	stored := false
	switch {
	case reason != "":
		rc.metrics.notStored(reason)
		if reason != "request_no_store" && reason != cache.ReasonAuthorization && reason != cache.ReasonMethod &&
			status != fasthttp.StatusNotModified && status != fasthttp.StatusPartialContent {
			// Answers of this kind will likely not be storable the next
			// time either: do not make requests queue for them. (Not
			// when the request caused it: a client's own conditional or
			// range, its Authorization or no-store.)
			s.cache.coal.MarkPass(sc.key, rc.hitForPass, respTime)
		}
		fl.done(nil)
	case resp.IsBodyStream():
		// Stored once the body has passed to the client whole; waiters
		// are released then.
		if sk, ok := resp.BodyStream().(sinkable); ok {
			sk.setSink(newEntrySink(s, rc, string(sc.key), req, resp, reqTime, respTime, fl.handOff()))
			stored = true
		} else {
			fl.done(nil)
		}
	default:
		e, why := rc.policy.NewEntry(string(sc.key), &req.Header, &resp.Header, resp.Body(), reqTime, respTime)
		if e == nil {
			rc.metrics.notStored(why)
			fl.done(nil)
			break
		}
		if store.Insert(e) {
			rc.metrics.stores.Inc()
		}
		stored = true
		fl.done(e)
	}
	rc.policy.StripForClient(&resp.Header)
	sc.buf = appendCacheStatus(sc.buf[:0], fwd, status, stored)
	resp.Header.SetBytesKV(hdrCacheStatus, sc.buf)
}

// entrySink collects a streamed body on its way to the client and stores
// the entry once the body is complete and within the object size limit.
type entrySink struct {
	s                 *Server
	rc                *routeCache
	key               string
	req               fasthttp.RequestHeader
	resp              fasthttp.ResponseHeader
	reqTime, respTime time.Time
	body              []byte
	over              bool
	fl                *flightEnd
}

func newEntrySink(s *Server, rc *routeCache, key string, req *fasthttp.Request, resp *fasthttp.Response,
	reqTime, respTime time.Time, fl *flightEnd) *entrySink {
	es := &entrySink{s: s, rc: rc, key: key, reqTime: reqTime, respTime: respTime, fl: fl}
	req.Header.CopyTo(&es.req)
	resp.Header.CopyTo(&es.resp)
	if cl := resp.Header.ContentLength(); cl > 0 && int64(cl) <= rc.policy.MaxObjectSize {
		es.body = make([]byte, 0, cl)
	}
	return es
}

func (es *entrySink) write(p []byte) {
	if es.over {
		return
	}
	if int64(len(es.body)+len(p)) > es.rc.policy.MaxObjectSize {
		es.over, es.body = true, nil
		return
	}
	es.body = append(es.body, p...)
}

func (es *entrySink) end(err error) {
	defer es.fl.done(nil) // no-op once done(e) ran
	if err != nil || es.over {
		if es.over {
			es.rc.metrics.notStored(cache.ReasonTooLarge)
		}
		return
	}
	e, why := es.rc.policy.NewEntry(es.key, &es.req, &es.resp, es.body, es.reqTime, es.respTime)
	if e == nil {
		es.rc.metrics.notStored(why)
		return
	}
	if es.s.cache.store.Insert(e) {
		es.rc.metrics.stores.Inc()
	}
	es.fl.done(e)
}

// serveStored answers from a stored response: 304 to a client's matching
// conditional, 206/416 to a range, else the whole response (RFC 9111
// §4.3.2, RFC 9110 §13, §14). fwd is the Cache-Status fwd parameter, ""
// for a plain hit. ri is what cache.ReadRequest read of the request, if
// the request has not changed since (nil: read it again). It allocates
// nothing.
func (s *Server) serveStored(ctx *fasthttp.RequestCtx, e *cache.Entry, now time.Time, sc *scratch, fwd string, ri *cache.RequestInfo) {
	// hits' writers replace the whole response (closing a node's streamed
	// body) and give it the public listeners' settings (no Date or
	// Content-Type of fasthttp's own), which a Reset would have dropped.
	resp := &ctx.Response
	req := &ctx.Request.Header
	// Cache-Status (RFC 9211) goes with the stored fields: the writer
	// keeps it, and Age, with the header it copies.
	var csBuf [64]byte
	cs := cache.Field{Name: hdrCacheStatus, Value: appendHitStatus(csBuf[:0], fwd, e.TTL(now))}
	hits := &s.cache.hits
	switch {
	case (ri == nil || ri.Conditional) && cache.NotModified(e, req):
		sc.buf = hits.WriteNotModified(e, resp, now, sc.buf, cs)
	default:
		if ri == nil || ri.Ranged {
			if start, end, ok, unsatisfiable := cache.RangeFor(e, req); ok || unsatisfiable {
				sc.buf = hits.WriteRange(e, resp, start, end, unsatisfiable, now, sc.buf, cs)
				break
			}
		}
		sc.buf = hits.Write(e, resp, now, sc.buf, cs)
	}
	// The request ID is this request's, never the stored one of the
	// request that filled the cache.
	id := ctx.Request.Header.PeekCanonical(hdrXRequestID)
	if !validRequestID(id) {
		sc.xff = s.ids.appendID(sc.xff[:0])
		id = sc.xff
		if s.accessLog.Load().enabled() || s.tail.active() {
			// For the access log and live followers, should a response rule remove the
			// response's. (Nothing else reads it: a stored answer
			// goes to no node.)
			ctx.Request.Header.SetBytesKV(hdrXRequestID, id)
		}
	}
	resp.Header.SetCanonical(hdrXRequestID, id)
}

// appendHitStatus appends the Cache-Status value (RFC 9211) of an answer
// from the store: fwd is the fwd parameter ("" for a hit), ttl the
// entry's freshness left.
func appendHitStatus(dst []byte, fwd string, ttl time.Duration) []byte {
	dst = append(dst, cacheName...)
	if fwd == "" {
		dst = append(dst, "; hit"...)
	} else {
		dst = append(dst, "; fwd="...)
		dst = append(dst, fwd...)
	}
	dst = append(dst, "; ttl="...)
	return strconv.AppendInt(dst, int64(ttl/time.Second), 10)
}

// appendCacheStatus appends a Cache-Status value (RFC 9211) for a request
// that went to a node: fwd says why, status is the node's (0: none).
func appendCacheStatus(dst []byte, fwd string, status int, stored bool) []byte {
	dst = append(dst, cacheName...)
	dst = append(dst, "; fwd="...)
	dst = append(dst, fwd...)
	if status > 0 {
		dst = append(dst, "; fwd-status="...)
		dst = strconv.AppendInt(dst, int64(status), 10)
	}
	if stored {
		dst = append(dst, "; stored"...)
	}
	return dst
}

// appendCacheKey appends the route's primary cache key for the request.
func appendCacheKey(dst []byte, rc *routeCache, ctx *fasthttp.RequestCtx) []byte {
	scheme := schemeHTTP
	if ctx.IsTLS() {
		scheme = schemeHTTPS
	}
	return rc.keyer.Append(dst, ctx.Method(), scheme, ctx.Host(), originForm(ctx.Request.Header.RequestURI()))
}

// originForm returns the path and query of a request target, also when
// it came in absolute form (RFC 9112 §3.2.2).
func originForm(uri []byte) []byte {
	if len(uri) > 0 && uri[0] == '/' {
		return uri
	}
	if i := bytes.Index(uri, []byte("://")); i >= 0 {
		rest := uri[i+3:]
		if j := bytes.IndexByte(rest, '/'); j >= 0 {
			return rest[j:]
		}
		if j := bytes.IndexByte(rest, '?'); j >= 0 {
			return append([]byte("/"), rest[j:]...)
		}
		return []byte("/")
	}
	return uri
}

// isSafe reports whether a method is safe (RFC 9110 §9.2.1); any other,
// known or not, invalidates what is stored for its target (RFC 9111 §4.4).
func isSafe(method []byte) bool {
	switch string(method) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions, fasthttp.MethodTrace:
		return true
	}
	return false
}

// invalidateAfterUnsafe removes what is stored for the request's target
// and for the same-origin URIs in the answer's Location and
// Content-Location (RFC 9111 §4.4).
func (s *Server) invalidateAfterUnsafe(ctx *fasthttp.RequestCtx, rc *routeCache, sc *scratch) {
	store := s.cache.store
	scheme := schemeHTTP
	if ctx.IsTLS() {
		scheme = schemeHTTPS
	}
	host := ctx.Host()
	n := 0
	sc.key = rc.keyer.Append(sc.key[:0], methodGET, scheme, host, originForm(ctx.Request.Header.RequestURI()))
	n += store.Remove(sc.key)
	for _, h := range [][]byte{hdrLocation2, hdrContentLocation} {
		v := ctx.Response.Header.PeekBytes(h)
		if len(v) == 0 {
			continue
		}
		target, ok := sameOriginTarget(v, scheme, host)
		if !ok {
			continue
		}
		sc.key = rc.keyer.Append(sc.key[:0], methodGET, scheme, host, target)
		n += store.Remove(sc.key)
	}
	if n > 0 {
		s.cache.metrics.purged.Add(float64(n))
	}
}

// sameOriginTarget returns the path and query of a URI reference when it
// is relative or has the request's scheme and host (RFC 9111 §4.4 forbids
// invalidating other origins on a response's say-so).
func sameOriginTarget(ref, scheme, host []byte) ([]byte, bool) {
	if len(ref) > 0 && ref[0] == '/' {
		if len(ref) > 1 && ref[1] == '/' {
			return nil, false // network-path reference: another host, maybe
		}
		return ref, true
	}
	prefix := append(append(append([]byte(nil), scheme...), "://"...), host...)
	if len(ref) < len(prefix) || !bytes.EqualFold(ref[:len(prefix)], prefix) {
		return nil, false
	}
	rest := ref[len(prefix):]
	switch {
	case len(rest) == 0:
		return []byte("/"), true
	case rest[0] == '/':
		return rest, true
	case rest[0] == '?':
		return append([]byte("/"), rest...), true
	}
	return nil, false
}

// refreshInBackground revalidates e with one request of its own while
// the client gets e stale (RFC 5861 §3). Only one refresh per key runs at
// a time: requests arriving meanwhile are served stale without another.
// It must run before the stale answer is written: it turns the client's
// request into the node's, which may write an error into the response.
func (s *Server) refreshInBackground(ctx *fasthttp.RequestCtx, snap *snapshot, r *route, e *cache.Entry) {
	rc := r.cache
	coal := s.cache.coal
	f, leader := coal.Join([]byte(e.Key))
	if !leader {
		return
	}
	var out outcome
	sc := scratchPool.Get().(*scratch)
	fe, ok := s.prepare(ctx, snap, r, sc, &out)
	scratchPool.Put(sc)
	if !ok {
		coal.Done(f, nil)
		return
	}
	bg := fasthttp.AcquireRequest()
	ctx.Request.CopyTo(bg)
	go func() {
		resp := fasthttp.AcquireResponse()
		var stored *cache.Entry
		defer func() {
			coal.Done(f, stored)
			fasthttp.ReleaseResponse(resp)
			fasthttp.ReleaseRequest(bg)
		}()
		cache.AddValidators(&bg.Header, e)
		reqTime := time.Now()
		if err := s.forward(bg, resp, r.pool, fe, &out); err != nil {
			return // keep serving e while its windows last
		}
		respTime := time.Now()
		switch st := resp.StatusCode(); {
		case st == fasthttp.StatusNotModified:
			stored = rc.policy.Refresh(e, &resp.Header, reqTime, respTime)
			rc.metrics.revalidated.Inc()
		case st >= 500:
			return
		default:
			if why := rc.policy.Storable(&bg.Header, &resp.Header, respTime); why != "" {
				rc.metrics.notStored(why)
				return
			}
			body, complete := readWhole(resp, rc.policy.MaxObjectSize)
			if !complete {
				rc.metrics.notStored(cache.ReasonTooLarge)
				return
			}
			var why string
			if stored, why = rc.policy.NewEntry(e.Key, &bg.Header, &resp.Header, body, reqTime, respTime); stored == nil {
				rc.metrics.notStored(why)
				return
			}
		}
		if s.cache.store.Insert(stored) {
			rc.metrics.stores.Inc()
		}
	}()
}

// readWhole returns a node's whole response body when it is at most limit
// bytes and arrived complete; a streamed body is read and closed.
func readWhole(resp *fasthttp.Response, limit int64) ([]byte, bool) {
	if !resp.IsBodyStream() {
		b := resp.Body()
		return b, int64(len(b)) <= limit
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(resp.BodyStream(), limit+1))
	if err != nil || n > limit {
		_ = resp.CloseBodyStream()
		return nil, false
	}
	_ = resp.CloseBodyStream()
	return buf.Bytes(), true
}

// preconditions are the request fields of RFC 9110 §13.1.
var preconditions = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

// saveFields copies the values of the named fields, every line.
func saveFields(h *fasthttp.RequestHeader, names []string) [][]string {
	saved := make([][]string, len(names))
	for i, n := range names {
		for _, v := range h.PeekAll(n) {
			saved[i] = append(saved[i], string(v))
		}
	}
	return saved
}

// restoreFields puts back what saveFields copied.
func restoreFields(h *fasthttp.RequestHeader, names []string, saved [][]string) {
	for i, n := range names {
		h.Del(n)
		for _, v := range saved[i] {
			h.Add(n, v)
		}
	}
}
