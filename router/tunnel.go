package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// Tunnels: an HTTP/1.1 request that asks to switch protocols (RFC 9110
// §7.8: "Connection: upgrade" and an Upgrade field), on a proxy route, is
// sent to a node over a connection of its own. When the node answers 101
// Switching Protocols, the client's connection is taken over from the
// HTTP server (hijacked) and bytes are copied both ways until either side
// closes or the tunnel has been idle for server.tunnels.idle_timeout.
// WebSocket is the common case; any other protocol a node accepts works
// the same way. Any other answer of the node goes to the client as a
// normal response.
//
// A tunnel owns its two sockets: the node connection never enters the
// node's connection pool, so a reload (which closes idle pooled
// connections of nodes that left) leaves open tunnels alone. Server
// Shutdown waits for tunnels until its context ends, then closes them.

// Results of an upgrade request: the values of the "result" label of
// edge_tunnels_total.
const (
	tunnelUpgraded     = "upgraded"      // the node answered 101: the tunnel opened
	tunnelRefusedLimit = "refused_limit" // server.tunnels.max_open were open (or edge is stopping): 503
	tunnelDeclined     = "node_declined" // the node answered something else, passed on to the client
	tunnelDialFailed   = "dial_failed"   // no node could be connected to: 502
	tunnelNoNode       = "no_node"       // no node of the pool was available: 503
	tunnelNodeError    = "node_error"    // connected, but no valid answer in time: 502 or 504
)

const (
	// tunnelBufferSize is the copy buffer of each direction of a tunnel
	// (nginx's proxy_buffer_size is 4 or 8 KiB): most tunnels are idle
	// WebSockets, which hold their buffers while they wait.
	tunnelBufferSize = 8 << 10
	// maxDeclinedBody bounds the body of a node's answer other than 101,
	// which is read whole before it is passed on.
	maxDeclinedBody = 1 << 20
	// hijackStartTimeout bounds the wait between the 101 from the node
	// and the moment the HTTP server hands over the client connection;
	// it passes at once unless the client connection failed meanwhile.
	hijackStartTimeout = 10 * time.Second
	// Defaults when a snapshot carries no configuration (unit tests).
	defaultTunnelMaxOpen = 10000
	defaultTunnelIdle    = time.Hour
)

var (
	hdrConnection = []byte("Connection")
	hdrUpgrade    = []byte("Upgrade")
	valueUpgrade  = []byte("Upgrade")
	tokenUpgrade  = []byte("upgrade")
)

// isUpgrade reports whether a request asks to switch protocols and can be
// tunnelled: HTTP/1.1 (RFC 9110 §7.8: an Upgrade in HTTP/1.0 is ignored),
// "upgrade" among the Connection options, a non-empty Upgrade field,
// no "Connection: close", and no body (an upgrade request with a body is
// proxied as a normal request, its Upgrade removed, as RFC 9110 §7.8
// lets a server ignore Upgrade). The caller checks first that the request
// carries a hop-by-hop field at all (checkFraming's sawHop), so normal
// requests never get here.
func isUpgrade(h *fasthttp.RequestHeader) bool {
	if !h.IsHTTP11() || h.ConnectionClose() || len(h.PeekBytes(hdrUpgrade)) == 0 {
		return false
	}
	// fasthttp reports -2 for a request without a body.
	if cl := h.ContentLength(); cl != 0 && cl != -2 {
		return false
	}
	// h2c (RFC 7540 §3.2) is never tunnelled: a node that took it would
	// give the client a raw HTTP/2 connection past edge's routing.
	for _, v := range h.PeekAll("Upgrade") {
		if listHasToken(v, tokenH2C) {
			return false
		}
	}
	for _, v := range h.PeekAll("Connection") {
		if listHasToken(v, tokenUpgrade) {
			return true
		}
	}
	return false
}

var tokenH2C = []byte("h2c")

// upgradeAccepted reports whether a 101's Upgrade (chosen) names only
// protocols the client asked for (requested), as RFC 9110 §7.8 requires
// of a server; a node that switches to anything else is not believed.
func upgradeAccepted(requested, chosen []byte) bool {
	if len(bytes.TrimSpace(chosen)) == 0 {
		return false
	}
	for len(chosen) > 0 {
		i := bytes.IndexByte(chosen, ',')
		if i < 0 {
			i = len(chosen)
		}
		tok := bytes.TrimSpace(chosen[:i])
		if len(tok) > 0 && !listHasToken(requested, tok) {
			return false
		}
		chosen = chosen[min(i+1, len(chosen)):]
	}
	return true
}

// listHasToken reports whether the comma-separated list v holds token,
// compared without case.
func listHasToken(v, token []byte) bool {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		var part []byte
		if i < 0 {
			part, v = v, nil
		} else {
			part, v = v[:i], v[i+1:]
		}
		if bytes.EqualFold(bytes.TrimSpace(part), token) {
			return true
		}
	}
	return false
}

// tunnelSet tracks the open tunnels of a Server. The zero value is ready;
// its metrics are registered on first use.
type tunnelSet struct {
	count atomic.Int64 // tunnels open or being set up, against max_open

	metricsOnce sync.Once
	metrics     *tunnelMetrics

	mu      sync.Mutex // guards the fields below
	open    map[*tunnel]struct{}
	closing bool           // Shutdown began: no more tunnels
	wg      sync.WaitGroup // one per registered tunnel, until its goroutines end
}

// tunnelMetrics are the tunnel metrics. Their series are labelled by
// route name only (a configuration-bounded set) and fixed enums.
type tunnelMetrics struct {
	open     *prometheus.GaugeVec     // route
	total    *prometheus.CounterVec   // route, result
	bytes    *prometheus.CounterVec   // route, direction
	duration *prometheus.HistogramVec // route
}

// metricsFor returns the tunnel metrics, registering them on reg the
// first time. A vector without series exports nothing, so registering
// late shows the same as registering at start.
func (ts *tunnelSet) metricsFor(reg prometheus.Registerer) *tunnelMetrics {
	ts.metricsOnce.Do(func() {
		m := &tunnelMetrics{
			open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "edge_tunnels_open",
				Help: "Upgraded connections (WebSocket and other protocols) open now, by route.",
			}, []string{"route"}),
			total: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "edge_tunnels_total",
				Help: "Upgrade requests, by route and result (upgraded, refused_limit, node_declined, dial_failed, no_node, node_error).",
			}, []string{"route", "result"}),
			bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "edge_tunnel_bytes_total",
				Help: "Bytes passed through tunnels after the upgrade, by route and direction (client_to_node, node_to_client).",
			}, []string{"route", "direction"}),
			duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "edge_tunnel_duration_seconds",
				Help:    "How long tunnels stayed open, by route.",
				Buckets: []float64{1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600},
			}, []string{"route"}),
		}
		reg.MustRegister(m.open, m.total, m.bytes, m.duration)
		ts.metrics = m
	})
	return ts.metrics
}

// reserve takes one of maxOpen tunnel slots, or reports that none is free.
func (ts *tunnelSet) reserve(maxOpen int) bool {
	for {
		n := ts.count.Load()
		if n >= int64(maxOpen) {
			return false
		}
		if ts.count.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// register adds t to the open tunnels, or reports false once Shutdown has
// begun.
func (ts *tunnelSet) register(t *tunnel) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closing {
		return false
	}
	if ts.open == nil {
		ts.open = map[*tunnel]struct{}{}
	}
	ts.open[t] = struct{}{}
	ts.wg.Add(1)
	return true
}

// remove takes an ended tunnel out of the set.
func (ts *tunnelSet) remove(t *tunnel) {
	ts.mu.Lock()
	delete(ts.open, t)
	ts.mu.Unlock()
	ts.wg.Done()
}

// shutdown waits for tunnels to end until ctx is done, then closes the
// rest (both of their sockets) and waits for their goroutines, which end
// at once. No tunnel opens after it began. The public servers have
// stopped when it is called; fasthttp does not wait for hijacked
// connections, so this is the only wait for tunnels.
func (ts *tunnelSet) shutdown(ctx context.Context) {
	ts.mu.Lock()
	ts.closing = true
	ts.mu.Unlock()
	done := make(chan struct{})
	go func() {
		ts.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	ts.mu.Lock()
	rest := make([]*tunnel, 0, len(ts.open))
	for t := range ts.open {
		rest = append(rest, t)
	}
	ts.mu.Unlock()
	for _, t := range rest {
		t.kill()
	}
	<-done
}

// Tunnel states.
const (
	tunnelPending int32 = iota // the 101 is ready; the client connection not yet handed over
	tunnelRunning              // bytes are copied
	tunnelAborted              // ended before it ran
	tunnelDone                 // ran and ended
)

// tunnel is one upgraded connection: a client connection taken over from
// the HTTP server and a connection of its own to a node.
type tunnel struct {
	set  *tunnelSet
	node *Node
	conn net.Conn // to the node, TLS or plain
	raw  net.Conn // the TCP connection under conn
	idle time.Duration

	head  []byte // the 101 to send the client, then bytes the node sent after it
	early int    // how many of head's bytes came after the node's 101

	state     atomic.Int32
	clientRaw net.Conn // the network connection under the client's; set before state becomes running
	timer     *time.Timer
	last      atomic.Int64 // unix ns of the last byte copied either way
	start     time.Time

	open          prometheus.Gauge
	clientToNode  prometheus.Counter
	nodeToClient  prometheus.Counter
	durationTotal prometheus.Observer
}

// tunnel handles an upgrade request on a proxy route (see isUpgrade): it
// prepares the request as a normal proxied one (forwarding fields,
// request ID, the route's header rules) but keeps Connection: Upgrade and
// Upgrade, picks a node as forward does (trying another one when a
// connection cannot be made), and sends the request on a connection of
// its own. A 101 from the node is left in ctx.Response for the metrics
// and the access log and the client connection is hijacked (see run);
// any other answer is passed on as a normal response.
func (s *Server) tunnel(ctx *fasthttp.RequestCtx, snap *snapshot, r *route, sc *scratch, out *outcome) {
	tm := s.tunnels.metricsFor(s.metrics.reg)
	maxOpen, idle := tunnelLimits(snap)
	if !s.tunnels.reserve(maxOpen) {
		tm.total.WithLabelValues(r.name, tunnelRefusedLimit).Inc()
		writeError(ctx, fasthttp.StatusServiceUnavailable)
		return
	}
	held := true // the slot is released here unless a tunnel took it
	defer func() {
		if held {
			s.tunnels.count.Add(-1)
		}
	}()

	req := &ctx.Request
	upgrade := appendJoined(nil, &req.Header, "Upgrade")
	peer, client, trusted := sc.addrs(ctx, snap)
	sc.buf = stripHopHeaders(&req.Header, sc.buf)
	req.Header.Del("Expect")
	req.Header.SetProtocol("HTTP/1.1")
	sc.buf = setForwardedHeaders(&req.Header, peer, trusted, sc.fields&sawOverride != 0, schemeOf(ctx), sc.buf)
	if !validRequestID(req.Header.PeekBytes(hdrXRequestID)) {
		sc.buf = s.ids.appendID(sc.buf[:0])
		req.Header.SetBytesKV(hdrXRequestID, sc.buf)
	}
	r.requestRules.apply(&req.Header)
	req.Header.DelBytes(hdrUpgrade)
	req.Header.SetBytesKV(hdrConnection, valueUpgrade)
	req.Header.SetBytesKV(hdrUpgrade, upgrade)

	p := r.pool
	var key uint64
	if p.hashSource != "" {
		key = p.hashKeyFor(ctx, client)
	}
	up := upstreamOf(snap, p)
	conn, raw, err := s.dialTunnel(p, up, key, out)
	if err != nil {
		result := tunnelDialFailed
		if errors.Is(err, ErrNoNodeAvailable) {
			result = tunnelNoNode
		}
		tm.total.WithLabelValues(r.name, result).Inc()
		out.err = err
		writeError(ctx, statusForError(err))
		return
	}
	n := out.node
	nm := p.metrics[n.index]
	inflight := true // the node's in-flight count, released here unless a tunnel took it
	defer func() {
		if inflight {
			_ = raw.Close()
			n.link.inflight.Add(-1)
		}
	}()

	t0 := time.Now()
	resp := &ctx.Response
	br := acquireTunnelReader(conn)
	defer releaseTunnelReader(br)
	err = exchangeHeaders(conn, raw, req, resp, br, responseHeaderTimeout(up))
	out.upstream = time.Since(t0)
	if err == nil && resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		err = readDeclinedBody(resp, br, req.Header.IsHead())
	}
	if err == nil && resp.StatusCode() == fasthttp.StatusSwitchingProtocols &&
		!upgradeAccepted(appendJoined(nil, &req.Header, "Upgrade"), appendJoined(nil, &resp.Header, "Upgrade")) {
		err = errWrongUpgrade
	}
	if err != nil {
		if errors.Is(err, ErrNodeTimeout) {
			nm.timeout.Inc()
		} else {
			nm.otherErr.Inc()
		}
		n.reportFailure()
		tm.total.WithLabelValues(r.name, tunnelNodeError).Inc()
		out.err = fmt.Errorf("node %s: %w", n.Name, err)
		writeError(ctx, statusForError(err))
		return
	}
	nm.duration.Observe(out.upstream.Seconds())
	if n.link.refusedUntil.Load() != 0 {
		n.link.refusedUntil.Store(0) // it answered: back in rotation
	}
	status := resp.StatusCode()
	if status >= 500 {
		n.reportFailure()
	} else {
		n.reportSuccess()
	}
	if status != fasthttp.StatusSwitchingProtocols {
		tm.total.WithLabelValues(r.name, tunnelDeclined).Inc()
		s.answered(ctx, sc) // the node connection is closed by the deferred call
		return
	}

	// The 101, as the client gets it: hop-by-hop fields removed but for
	// Connection and Upgrade, then the route's response rules. (handle
	// applies them again to ctx.Response, which is not sent.)
	nodeUpgrade := appendJoined(nil, &resp.Header, "Upgrade")
	sc.buf = stripHopHeaders(&resp.Header, sc.buf)
	resp.Header.ResetConnectionClose()
	resp.Header.SetBytesKV(hdrConnection, valueUpgrade)
	if len(nodeUpgrade) > 0 {
		resp.Header.SetBytesKV(hdrUpgrade, nodeUpgrade)
	}
	if len(resp.Header.PeekBytes(hdrXRequestID)) == 0 {
		resp.Header.SetBytesKV(hdrXRequestID, req.Header.PeekBytes(hdrXRequestID))
	}
	r.responseRules.apply(&resp.Header)
	if snap.hsts != nil && ctx.IsTLS() && len(resp.Header.PeekBytes(hdrHSTS)) == 0 {
		resp.Header.SetBytesKV(hdrHSTS, snap.hsts)
	}
	t := &tunnel{
		set: &s.tunnels, node: n, conn: conn, raw: raw, idle: idle, start: time.Now(),
		open:          tm.open.WithLabelValues(r.name),
		clientToNode:  tm.bytes.WithLabelValues(r.name, "client_to_node"),
		nodeToClient:  tm.bytes.WithLabelValues(r.name, "node_to_client"),
		durationTotal: tm.duration.WithLabelValues(r.name),
	}
	t.head = resp.Header.AppendBytes(nil)
	if k := br.Buffered(); k > 0 {
		// The node may speak the new protocol at once, in the same packet.
		early, _ := br.Peek(k)
		t.head = append(t.head, early...)
		t.early = k
	}
	t.open.Inc()
	if !s.tunnels.register(t) {
		t.open.Dec()
		tm.total.WithLabelValues(r.name, tunnelRefusedLimit).Inc()
		out.err = errors.New("stopping: tunnel refused")
		writeError(ctx, fasthttp.StatusServiceUnavailable)
		return
	}
	held, inflight = false, false
	tm.total.WithLabelValues(r.name, tunnelUpgraded).Inc()
	t.timer = time.AfterFunc(hijackStartTimeout, t.kill)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(t.run)
}

// tunnelLimits returns server.tunnels.max_open and idle_timeout.
func tunnelLimits(snap *snapshot) (maxOpen int, idle time.Duration) {
	if snap.cfg == nil {
		return defaultTunnelMaxOpen, defaultTunnelIdle
	}
	return snap.cfg.Server.Tunnels.MaxOpen, snap.cfg.Server.Tunnels.IdleTimeout.D()
}

// upstreamOf returns the configuration of pool p, or nil in unit tests
// whose snapshot has none.
func upstreamOf(snap *snapshot, p *pool) *config.Upstream {
	if snap.cfg == nil {
		return nil
	}
	return snap.cfg.Upstreams[p.name]
}

func connectTimeout(up *config.Upstream) time.Duration {
	if up == nil || up.ConnectTimeout <= 0 {
		return 2 * time.Second
	}
	return up.ConnectTimeout.D()
}

func responseHeaderTimeout(up *config.Upstream) time.Duration {
	if up == nil || up.ResponseHeaderTimeout <= 0 {
		return time.Minute
	}
	return up.ResponseHeaderTimeout.D()
}

// dialTunnel connects to a node of pool p for a tunnel, picking nodes as
// forward does and trying the next one whenever a connection cannot be
// made (nothing was sent, so that is always safe). The chosen node is
// left in out.node and counted in flight. It returns the connection (TLS
// when the pool speaks HTTPS) and the TCP connection under it.
func (s *Server) dialTunnel(p *pool, up *config.Upstream, key uint64, out *outcome) (conn, raw net.Conn, err error) {
	p.retry.budget.request()
	var tried nodeSet
	for {
		n := p.pick(key, &tried)
		if n == nil {
			if err == nil {
				err = ErrNoNodeAvailable
			}
			return nil, nil, err
		}
		tried.add(n.index)
		out.node = n
		n.link.inflight.Add(1)
		conn, raw, err = dialNode(n, up)
		if err == nil {
			return conn, raw, nil
		}
		n.link.inflight.Add(-1)
		nm := p.metrics[n.index]
		n.reportFailure()
		if !isDialError(err) {
			// The TLS handshake failed: the node is reachable but broken.
			nm.otherErr.Inc()
			return nil, nil, err
		}
		nm.dialErr.Inc()
		n.link.client.CloseIdleConnections()
		n.link.refusedUntil.Store(time.Now().Add(refusedBackoff).UnixNano())
		p.retry.countFree(reasonConnect)
		out.retryReason = reasonConnect
	}
}

// tunnelKeepAlive are the TCP keep-alive probes of a tunnel's client
// connection: after 30 s of silence, as the node side (dialNode's
// Dialer.KeepAlive), then Go's defaults (every 15 s, 9 times).
var tunnelKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second}

// keepTunnelAlive switches TCP keep-alive probes on for c, the innermost
// client connection of a tunnel. Public listeners accept without them
// (publicListenConfig), but a tunnel may idle for an hour, and a client
// that vanished without a FIN would otherwise hold its slot until then.
func keepTunnelAlive(c net.Conn) {
	if ka, ok := c.(interface {
		SetKeepAliveConfig(net.KeepAliveConfig) error
	}); ok {
		_ = ka.SetKeepAliveConfig(tunnelKeepAlive)
	}
}

// dialNode opens a connection of its own to n, with the pool's connect
// timeout bounding the TCP connection and the TLS handshake.
func dialNode(n *Node, up *config.Upstream) (conn, raw net.Conn, err error) {
	timeout := connectTimeout(up)
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	raw, err = d.Dial("tcp", n.Address)
	if err != nil {
		return nil, nil, &dialError{node: n.Name, err: err}
	}
	if !n.link.https {
		return raw, raw, nil
	}
	cfg := n.link.client.TLSConfig
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		// As fasthttp does for the pooled connections: verify (and send
		// as SNI) the host of the node's address.
		cfg = cfg.Clone()
		if host, _, herr := net.SplitHostPort(n.Address); herr == nil {
			cfg.ServerName = host
		} else {
			cfg.ServerName = n.Address
		}
	}
	tc := tls.Client(raw, cfg)
	_ = raw.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		_ = raw.Close()
		return nil, nil, fmt.Errorf("tls handshake with node %s: %w", n.Name, err)
	}
	_ = raw.SetDeadline(time.Time{})
	return tc, raw, nil
}

// exchangeHeaders writes the request header to the node and reads its
// answer's header (interim 1xx answers other than 101 skipped), both
// within timeout.
func exchangeHeaders(conn, raw net.Conn, req *fasthttp.Request, resp *fasthttp.Response, br *bufio.Reader, timeout time.Duration) error {
	_ = raw.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(req.Header.Header()); err != nil {
		if isTimeout(err) {
			return ErrNodeTimeout
		}
		return fmt.Errorf("sending the upgrade request: %w", err)
	}
	resp.SkipBody = true // the header only
	err := resp.ReadLimitBody(br, 0)
	resp.SkipBody = false
	if err != nil {
		if isTimeout(err) || errors.Is(err, fasthttp.ErrTimeout) {
			return ErrNodeTimeout
		}
		return fmt.Errorf("reading the answer to an upgrade request: %w", err)
	}
	return nil
}

// errDeclinedTooLarge is a node's answer other than 101 whose body
// exceeds maxDeclinedBody: the client gets 502.
var errDeclinedTooLarge = errors.New("answer to an upgrade request too large")

// readDeclinedBody reads the body of a node's answer other than 101 whole
// (up to maxDeclinedBody), so that it is passed on as a normal response
// and the node connection can be closed.
func readDeclinedBody(resp *fasthttp.Response, br *bufio.Reader, head bool) error {
	status := resp.StatusCode()
	// RFC 9112 §6.3: answers to HEAD, 1xx, 204 and 304 have no body.
	if head || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified {
		resp.SkipBody = head
		return nil
	}
	if err := resp.ReadBody(br, maxDeclinedBody); err != nil {
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			return errDeclinedTooLarge
		}
		if isTimeout(err) {
			return ErrNodeTimeout
		}
		return fmt.Errorf("reading the body of the answer to an upgrade request: %w", err)
	}
	// The body is in memory now: fasthttp frames it with Content-Length.
	resp.Header.SetContentLength(len(resp.Body()))
	return nil
}

var tunnelReaderPool sync.Pool

// acquireTunnelReader returns a reader of the node's answer header; its
// size is the header limit, as for pooled connections.
func acquireTunnelReader(c net.Conn) *bufio.Reader {
	if br, ok := tunnelReaderPool.Get().(*bufio.Reader); ok {
		br.Reset(c)
		return br
	}
	return bufio.NewReaderSize(c, responseHeaderLimit)
}

func releaseTunnelReader(br *bufio.Reader) {
	br.Reset(nil)
	tunnelReaderPool.Put(br)
}

var tunnelBufPool = sync.Pool{New: func() any {
	b := make([]byte, tunnelBufferSize)
	return &b
}}

// run is the hijack handler: fasthttp calls it, on a goroutine of its
// own, with the client connection once handle has returned (the client
// bytes it had read past the request come first from client). It sends
// the 101, then copies both ways until the tunnel ends, and returns only
// when both directions stopped: fasthttp closes client on return.
func (t *tunnel) run(client net.Conn) {
	// Resolved now: fasthttp reuses its wrapper of client once run returned.
	t.clientRaw = innermostConn(client)
	keepTunnelAlive(t.clientRaw)
	if !t.state.CompareAndSwap(tunnelPending, tunnelRunning) {
		return // killed before it started: finish already ran
	}
	t.timer.Stop()
	defer t.finish()
	if _, err := client.Write(t.head); err != nil {
		t.abort()
		return
	}
	if t.early > 0 {
		t.nodeToClient.Add(float64(t.early))
	}
	t.head = nil
	now := time.Now()
	t.last.Store(now.UnixNano())
	_ = client.SetReadDeadline(now.Add(t.idle))
	_ = t.raw.SetDeadline(time.Time{})
	_ = t.conn.SetReadDeadline(now.Add(t.idle))

	done := make(chan struct{})
	go func() {
		defer close(done)
		t.pipe(t.conn, client, t.nodeToClient, false)
	}()
	t.pipe(client, t.conn, t.clientToNode, true)
	<-done
}

// pipe copies src to dst until src ends. On EOF it half-closes dst (the
// other direction goes on); on any other failure, or when the tunnel was
// idle in both directions for t.idle, it closes both sides. The idle
// check costs no deadline update per read: each read deadline is set
// from the last activity only when it expires. A write that makes no
// progress ends the tunnel too: to the client after send_timeout (the
// client connection's own bound), to the node after t.idle (boundWrites).
func (t *tunnel) pipe(src, dst net.Conn, counter prometheus.Counter, boundWrites bool) {
	bp := tunnelBufPool.Get().(*[]byte)
	defer tunnelBufPool.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now()
			t.last.Store(now.UnixNano())
			counter.Add(float64(n))
			if boundWrites {
				_ = dst.SetWriteDeadline(now.Add(t.idle))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				t.abort()
				return
			}
		}
		switch {
		case err == nil:
			continue
		case isTimeout(err):
			// The read deadline passed: the tunnel is idle unless the
			// other direction moved meanwhile.
			next := time.Unix(0, t.last.Load()).Add(t.idle)
			if time.Until(next) > 0 {
				_ = src.SetReadDeadline(next)
				continue
			}
		case errors.Is(err, io.EOF):
			if closeWrite(dst) == nil {
				return // half-closed: the other direction may go on
			}
		}
		t.abort()
		return
	}
}

// abort closes both sockets, which ends both directions at once.
func (t *tunnel) abort() {
	_ = t.raw.Close()
	if t.clientRaw != nil {
		_ = t.clientRaw.Close()
	}
}

// kill ends a tunnel from outside (Shutdown after its grace period, or
// the client connection never handed over): one not yet running is
// finished here, a running one is aborted and finishes on its own.
func (t *tunnel) kill() {
	if t.state.CompareAndSwap(tunnelPending, tunnelAborted) {
		t.finish()
		return
	}
	if t.state.Load() == tunnelRunning {
		t.abort()
	}
}

// finish releases what the tunnel held: the node connection (fasthttp
// closes the client's), the node's in-flight count, the max_open slot.
func (t *tunnel) finish() {
	t.state.CompareAndSwap(tunnelRunning, tunnelDone)
	_ = t.raw.Close()
	t.node.link.inflight.Add(-1)
	t.set.count.Add(-1)
	t.open.Dec()
	t.durationTotal.Observe(time.Since(t.start).Seconds())
	t.set.remove(t)
}

// errNoHalfClose means a connection cannot be half-closed.
var (
	errNoHalfClose  = errors.New("connection cannot be half-closed")
	errWrongUpgrade = errors.New("the node switched to a protocol the client did not ask for")
)

// closeWrite half-closes c (TCP FIN, or TLS close_notify), looking
// through edge's and fasthttp's connection wrappers.
func closeWrite(c net.Conn) error {
	for range 8 {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			return cw.CloseWrite()
		}
		if c = wrappedConn(c); c == nil {
			return errNoHalfClose
		}
	}
	return errNoHalfClose
}

// innermostConn returns the network connection under c's wrappers (TLS
// included), whose Close ends every pending read and write at once.
func innermostConn(c net.Conn) net.Conn {
	for range 8 {
		next := wrappedConn(c)
		if nc, ok := c.(interface{ NetConn() net.Conn }); ok && next == nil { // *tls.Conn, tlsConn
			next = nc.NetConn()
		}
		if next == nil {
			return c
		}
		c = next
	}
	return c
}

// wrappedConn returns the connection one of edge's or fasthttp's
// wrappers holds (not TLS: that one changes the bytes), or nil.
func wrappedConn(c net.Conn) net.Conn {
	switch x := c.(type) {
	case interface{ UnsafeConn() net.Conn }: // fasthttp's hijacked connection
		return x.UnsafeConn()
	case *sendTimeoutConn:
		return x.Conn
	case *slidingConn:
		return x.Conn
	case *limitConn:
		return x.Conn
	case *proxyConn:
		return x.Conn
	}
	return nil
}
