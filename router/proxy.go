package router

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// streamPrefetch is how much of a request body fasthttp reads before the
// handler runs; larger bodies are streamed to the node as they arrive.
const streamPrefetch = 64 << 10

// scratch is per-request working memory, pooled so a request in steady
// state allocates nothing. Nothing in it outlives the handler call.
type scratch struct {
	host []byte
	key  []byte
	buf  []byte
	xff  []byte
	path []byte  // the normalised path, as routed and sent
	cand []int32 // candidate routes (routeList.match)
	body bodyReader

	ahead  []byte // a chunked body read ahead (readAhead)
	aheadR bytes.Reader
	multi  multiReader

	fields fieldKinds // kinds of fields the request carries (checkFraming)

	// The addresses of the request, computed once (see addrs).
	addrDone bool
	trusted  bool
	peer     netip.Addr
	client   netip.Addr
}

// addrs returns the connection's peer address, the original client's
// address (from X-Forwarded-For when the peer is a trusted proxy) and
// whether the peer is trusted. They are computed on first use.
func (sc *scratch) addrs(ctx *fasthttp.RequestCtx, snap *snapshot) (peer, client netip.Addr, trusted bool) {
	if !sc.addrDone {
		sc.addrDone = true
		sc.peer = peerAddr(ctx)
		sc.client, sc.trusted = sc.peer, snap.trusted.contains(sc.peer)
		if sc.trusted {
			sc.xff = appendJoined(sc.xff[:0], &ctx.Request.Header, "X-Forwarded-For")
			sc.client = snap.trusted.clientAddr(sc.peer, sc.xff)
		}
	}
	return sc.peer, sc.client, sc.trusted
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{host: make([]byte, 0, 64), key: make([]byte, 0, 256), buf: make([]byte, 0, 256), path: make([]byte, 0, 256)}
}}

// outcome is what the handler learned about one request, for metrics and
// the access log.
type outcome struct {
	route    *route
	node     *Node // the node tried last; it answered unless err is set
	upstream time.Duration
	err      error
	reason   string // client error reason when no route ran

	retries     int    // times the request was sent again after reaching a node
	retryReason string // why the last other node was tried, if one was
}

// handle is the fasthttp handler of the public listeners.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := ctx.Time() // read by fasthttp just before the handler: no second clock read
	snap := s.snap.Load()
	s.metrics.inflight.Inc()
	sc := scratchPool.Get().(*scratch)
	var out outcome
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in request handler", "panic", p)
			out.err = errors.New("internal error")
			writeError(ctx, fasthttp.StatusInternalServerError)
		}
		if snap.maxReqsPerConn > 0 && ctx.ConnRequestNum() >= snap.maxReqsPerConn {
			// Last, so that nothing resets it: the answer says Connection: close.
			snap.limitReqsPerConn.Inc()
			ctx.SetConnectionClose()
		}
		s.finish(ctx, &out, start)
		sc.body = bodyReader{} // the client's stream is not kept
		sc.multi = multiReader{}
		if cap(sc.ahead) > 4*streamPrefetch {
			sc.ahead = nil
		}
		scratchPool.Put(sc)
		s.metrics.inflight.Dec()
	}()

	if len(ctx.Request.Header.RequestURI()) > snap.maxURI {
		out.reason = "uri_too_long"
		writeError(ctx, fasthttp.StatusRequestURITooLong)
		return
	}

	sc.addrDone = false
	fe, fields := checkFraming(&ctx.Request.Header, snap.maxFields)
	sc.fields = fields
	if fe != framingOK {
		if fe == framingTooManyFields {
			out.reason = "header_too_large"
			snap.limitHeaderCount.Inc()
			writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge)
			ctx.SetConnectionClose()
			return
		}
		out.reason = "bad_request"
		writeError(ctx, fasthttp.StatusBadRequest)
		return
	}
	if !s.normalizeTarget(ctx, snap, sc) {
		out.reason = "bad_path"
		writeError(ctx, fasthttp.StatusBadRequest)
		return
	}
	if snap.rate != nil {
		if _, client, _ := sc.addrs(ctx, snap); !snap.rate.allow(ctx, client) {
			out.reason = "rate_limited"
			return
		}
	}

	if snap.purge.on() && bytes.Equal(ctx.Method(), methodPURGE) {
		s.purgeRequest(ctx, snap)
		return
	}
	path := sc.path
	if !ctx.IsTLS() {
		if acm := s.acme.Load(); acm != nil && bytes.HasPrefix(path, acmeChallengePrefix) {
			acm.http01(ctx) // the CA validating an HTTP-01 challenge
			return
		}
		out.route = snap.httpsRoute // tls.redirect_http, before any route
	}
	if out.route == nil {
		sc.host = normalizeHost(sc.host, ctx.Request.Header.Host())
		out.route, sc.cand = snap.hosts.candidates(sc.host).match(ctx, path, sc.cand)
	}
	r := out.route
	if r == nil {
		out.reason = "no_route"
		writeError(ctx, fasthttp.StatusNotFound)
		return
	}
	if r.access != nil {
		if _, client, _ := sc.addrs(ctx, snap); !r.access.allows(client) {
			r.accessDenied.Inc()
			writeError(ctx, fasthttp.StatusForbidden)
			return
		}
	}
	if r.rate != nil {
		if _, client, _ := sc.addrs(ctx, snap); !r.rate.allow(ctx, client) {
			return
		}
	}

	switch r.kind {
	case actionRedirect:
		status := r.redirect.statusFor(ctx.Method())
		sc.buf = r.redirect.location(sc.buf[:0], ctx)
		ctx.Response.Header.SetBytesKV(hdrLocation, sc.buf)
		ctx.Response.SetStatusCode(status)
	case actionRespond:
		ctx.Response.SetStatusCode(r.respond.status)
		for _, kv := range r.respond.headers {
			ctx.Response.Header.SetBytesKV(kv[0], kv[1])
		}
		ctx.Response.SetBodyRaw(r.respond.body)
	case actionProxy:
		switch {
		case sc.fields&sawHop != 0 && isUpgrade(&ctx.Request.Header):
			s.tunnel(ctx, snap, r, sc, &out) // WebSocket and other upgrades (tunnel.go); never cached
		case r.cache != nil:
			s.proxyCached(ctx, snap, r, sc, &out)
		default:
			s.proxy(ctx, snap, r, sc, &out)
		}
	}
	r.responseRules.apply(&ctx.Response.Header)
	if snap.hsts != nil && ctx.IsTLS() && len(ctx.Response.Header.PeekBytes(hdrHSTS)) == 0 {
		ctx.Response.Header.SetBytesKV(hdrHSTS, snap.hsts)
	}
}

var (
	acmeChallengePrefix = []byte("/.well-known/acme-challenge/")
	hdrHSTS             = []byte("Strict-Transport-Security")
)

// proxy sends the request to a node of the route's pool and leaves the
// node's response (its body streamed) in ctx.Response.
func (s *Server) proxy(ctx *fasthttp.RequestCtx, snap *snapshot, r *route, sc *scratch, out *outcome) {
	f, ok := s.prepare(ctx, snap, r, sc, out)
	if !ok {
		return
	}
	if err := s.forward(&ctx.Request, &ctx.Response, r.pool, f, out); err != nil {
		out.err = err
		writeError(ctx, statusForError(err))
		return
	}
	s.answered(ctx, sc)
}

// fetch is what prepare learned about a request for forward.
type fetch struct {
	hashKey    uint64 // for consistent hashing
	replayable bool   // the body is held in memory
	mayResend  bool   // a retry may send the request again after it reached a node
}

// prepare checks the request body against the limits and turns the
// client's request into the one sent to nodes (hop-by-hop fields,
// forwarding fields, request ID, the route's rules). It answers the
// client itself and returns false when the request cannot be sent.
func (s *Server) prepare(ctx *fasthttp.RequestCtx, snap *snapshot, r *route, sc *scratch, out *outcome) (fetch, bool) {
	req := &ctx.Request
	cl := req.Header.ContentLength()
	if snap.maxBody > 0 && int64(cl) > snap.maxBody {
		out.err = ErrBodyTooLarge
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge)
		return fetch{}, false
	}
	// A body that is chunked or longer than the prefetch is read from the
	// client while it is written to the node: enforce the size limit and
	// the body timeout on the way.
	if cl == -1 || cl > streamPrefetch {
		if stream := req.BodyStream(); stream != nil {
			sc.body = bodyReader{r: stream, conn: ctx.Conn(), timeout: snap.bodyTimeout, limit: snap.maxBody}
			req.SetBodyStream(&sc.body, cl)
		}
	}
	if cl == -1 {
		// A chunked body is read ahead up to the prefetch size, so that a
		// small one is checked whole (a broken chunk is answered 400 and
		// nothing reaches a node) and can be sent with a Content-Length
		// and retried; a longer one is streamed after what was read.
		var err error
		if cl, err = readAhead(req, sc); err != nil {
			out.err = err
			writeError(ctx, statusForError(err))
			return fetch{}, false
		}
	}

	peer, client, trusted := sc.addrs(ctx, snap)

	if sc.fields&sawHop != 0 {
		sc.buf = stripHopHeaders(&req.Header, sc.buf)
	}
	req.Header.ResetConnectionClose()
	req.Header.Del("Expect") // the server already answered 100-continue
	req.Header.SetProtocol("HTTP/1.1")
	sc.buf = setForwardedHeaders(&req.Header, peer, trusted, sc.fields&sawOverride != 0, schemeOf(ctx), sc.buf)
	if !validRequestID(req.Header.PeekBytes(hdrXRequestID)) {
		sc.buf = s.ids.appendID(sc.buf[:0])
		req.Header.SetBytesKV(hdrXRequestID, sc.buf)
	}
	r.requestRules.apply(&req.Header)

	var f fetch
	if p := r.pool; p.hashSource != "" {
		f.hashKey = p.hashKeyFor(ctx, client)
	}

	// A body of up to streamPrefetch bytes is already in memory: hold it so
	// that a retry can send it again. A larger or chunked body is streamed
	// from the client and can be sent only once.
	// (fasthttp reports -2 for a request without a body, -1 for chunked.)
	f.replayable = cl != -1 && cl <= streamPrefetch
	if cl > 0 && f.replayable {
		req.Body() // reads the prefetched stream into the request's buffer
	}
	f.mayResend = f.replayable && (r.retryNonIdempotent || isIdempotent(ctx.Method()))
	return f, true
}

// forward sends req to a node of pool p, trying others as the pool's
// retry policy allows, and leaves the node's answer in resp (its body
// possibly streamed). out learns the node, the retries and the time taken.
// It returns the error of the last attempt when no node answered.
func (s *Server) forward(req *fasthttp.Request, resp *fasthttp.Response, p *pool, f fetch, out *outcome) error {
	key, replayable, mayResend := f.hashKey, f.replayable, f.mayResend
	p.retry.budget.request()

	var tried nodeSet
	var err error
	var next *Node // chosen before giving up an answer for a retry
	for {
		n := next
		next = nil
		if n == nil {
			n = p.pick(key, &tried)
		}
		if n == nil {
			if err == nil {
				err = ErrNoNodeAvailable
			}
			break
		}
		tried.add(n.index)
		out.node = n
		// fasthttp refuses a request whose scheme differs from the node's.
		if https := bytes.Equal(req.URI().Scheme(), schemeHTTPS); https != n.link.https {
			if n.link.https {
				req.URI().SetSchemeBytes(schemeHTTPS)
			} else {
				req.URI().SetSchemeBytes(schemeHTTP)
			}
		}
		t0 := time.Now()
		// In flight from the pick on, so that a drain's wait cannot see
		// the node idle while a request is on its way to it. A streamed
		// body keeps the count until it has been passed on (transport).
		n.link.inflight.Add(1)
		err = n.link.client.Do(req, resp)
		if err != nil || !resp.IsBodyStream() {
			n.link.inflight.Add(-1)
		}
		out.upstream = time.Since(t0)
		nm := p.metrics[n.index]
		if err == nil {
			status := resp.StatusCode()
			nm.duration.Observe(out.upstream.Seconds())
			if status >= 500 {
				n.reportFailure()
			} else {
				n.reportSuccess()
			}
			// The answer is given up for a retry only when another node
			// can take it: otherwise the client gets the node's own
			// answer (its body, Retry-After), not a 503 of ours.
			if reason := p.retry.statusReason(status); reason != "" {
				if next = p.pick(key, &tried); next != nil && p.retry.allow(reason, out.retries, mayResend) {
					out.retries++
					out.retryReason = reason
					resp.Reset() // closes a streamed body and its connection
					continue
				}
				next = nil
			}
			break
		}
		err = classifyUpstreamError(n.Name, err)
		var reset *resetError
		switch {
		case isDialError(err):
			// Nothing reached the node: always try another one, at once.
			// Its idle connections are likely dead too (it restarted or
			// died): drop them so they are not tried one by one later.
			nm.dialErr.Inc()
			n.reportFailure()
			n.link.client.CloseIdleConnections()
			n.link.refusedUntil.Store(time.Now().Add(refusedBackoff).UnixNano())
			p.retry.countFree(reasonConnect)
			out.retryReason = reasonConnect
			continue
		case errors.Is(err, ErrNodeBusy):
			// No connection was free: nothing was sent either.
			nm.busy.Inc()
			p.retry.countFree(reasonBusy)
			out.retryReason = reasonBusy
			continue
		case errors.As(err, &reset):
			nm.otherErr.Inc()
			if reset.reused {
				// A kept-alive connection that died while idle says little
				// about the node now (a restarted node leaves a pool full
				// of them), so it does not count against the node; the
				// other idle connections are dropped, as they likely died
				// with it.
				n.link.client.CloseIdleConnections()
			} else {
				n.reportFailure()
			}
			if !reset.sent && reset.reused && replayable {
				// The node had closed the kept-alive connection before it
				// could read the request: nothing was processed.
				p.retry.countFree(reasonReset)
				out.retryReason = reasonReset
				continue
			}
			if p.retry.allow(reasonReset, out.retries, mayResend) {
				out.retries++
				out.retryReason = reasonReset
				continue
			}
		case errors.Is(err, ErrNodeTimeout):
			nm.timeout.Inc()
			n.reportFailure()
			if p.retry.allow(reasonTimeout, out.retries, mayResend) {
				out.retries++
				out.retryReason = reasonTimeout
				continue
			}
		case errors.Is(err, ErrBodyTooLarge), errors.Is(err, ErrClientTimeout):
			// The client's fault, not the node's.
		default:
			nm.otherErr.Inc()
			n.reportFailure()
		}
		break
	}
	if err != nil {
		// The node (if any) is kept in out for the log, but the answer is
		// ours, so metrics count it as answered by no node.
		return err
	}
	if n := out.node; n.link.refusedUntil.Load() != 0 {
		n.link.refusedUntil.Store(0) // it answered: back in rotation
	}
	return nil
}

// answered turns a node's answer in ctx.Response into the client's.
func (s *Server) answered(ctx *fasthttp.RequestCtx, sc *scratch) {
	req, resp := &ctx.Request, &ctx.Response
	sc.buf = stripHopHeaders(&resp.Header, sc.buf)
	resp.Header.ResetConnectionClose()
	if len(resp.Header.PeekBytes(hdrXRequestID)) == 0 {
		resp.Header.SetBytesKV(hdrXRequestID, req.Header.PeekBytes(hdrXRequestID))
	}
}

var (
	schemeHTTP  = []byte("http")
	schemeHTTPS = []byte("https")
)

// refusedBackoff is how long a node that refused a connection is skipped
// by the balancer (it is still tried when no other node is left).
const refusedBackoff = time.Second

// writeError replaces whatever response was started with a short error
// response. Error bodies never carry internal error text.
func writeError(ctx *fasthttp.RequestCtx, status int) {
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.SetBodyString(statusText(status))
	switch status {
	case fasthttp.StatusRequestEntityTooLarge, fasthttp.StatusRequestTimeout, fasthttp.StatusBadRequest:
		// The request body may be left unread: the connection cannot be
		// reused safely.
		ctx.SetConnectionClose()
	}
}

// peerAddr returns the address of the connection's peer.
func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a.Unmap()
}

// readAhead reads a chunked request body up to streamPrefetch bytes. A
// body that ends within them becomes the request's in-memory body and its
// length is returned; otherwise the bytes read are put back in front of
// the rest of the stream and -1 is returned.
func readAhead(req *fasthttp.Request, sc *scratch) (int, error) {
	stream := req.BodyStream()
	if stream == nil {
		return -1, nil
	}
	buf := sc.ahead[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, 4<<10)
	}
	for len(buf) <= streamPrefetch {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := stream.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			sc.ahead = buf
			req.SetBody(buf) // copies; closes the finished stream
			return len(buf), nil
		}
		if err != nil {
			sc.ahead = buf
			return 0, err
		}
	}
	sc.ahead = buf
	sc.aheadR.Reset(buf)
	sc.multi = multiReader{first: &sc.aheadR, rest: stream}
	req.SetBodyStream(&sc.multi, -1)
	return -1, nil
}

// multiReader reads first, then rest (io.MultiReader without allocation).
type multiReader struct {
	first, rest io.Reader
}

func (m *multiReader) Read(p []byte) (int, error) {
	if m.first != nil {
		n, err := m.first.Read(p)
		if err == io.EOF {
			m.first = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return m.rest.Read(p)
}

// bodyReader streams a request body from the client to a node, enforcing
// the body size limit and the timeout between two reads (408).
type bodyReader struct {
	r       io.Reader
	conn    net.Conn
	timeout time.Duration
	limit   int64 // 0: none
	n       int64
	lastSet time.Time
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.timeout > 0 && b.conn != nil {
		if now := time.Now(); now.Sub(b.lastSet) > b.timeout/refreshDivisor {
			b.lastSet = now
			_ = b.conn.SetReadDeadline(now.Add(b.timeout))
		}
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.limit > 0 && b.n > b.limit {
		return n, ErrBodyTooLarge
	}
	if err != nil && err != io.EOF {
		if isTimeout(err) {
			return n, ErrClientTimeout
		}
		// A broken chunk or a client gone mid-body.
		return n, fmt.Errorf("%w: %v", ErrBadRequestBody, err)
	}
	return n, err
}
