package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// HTTP/2 to clients (RFC 9113) on the TLS listeners.
//
// fasthttp speaks only HTTP/1.x. A TLS connection whose ALPN settles on
// "h2" is handed, on the goroutine fasthttp gave it (so max_connections,
// the PROXY protocol and the send timeout apply to it as to any other),
// to the standard library's HTTP/2 server, which carries the framing,
// flow control, HPACK and the known attacks' defences: a bounded number
// of running handlers per connection with a bounded queue behind them
// (rapid reset, CVE-2023-44487), a bounded header list and CONTINUATION
// sequence (CVE-2023-45288), a bounded control-frame queue (settings and
// ping floods). Each stream is then turned into a fasthttp request and
// run through the very handler HTTP/1.1 requests run through (routing,
// limits, cache, balancing, header rules, the access log), and its
// answer is written back as HTTP/2. Nodes are reached over the same
// pooled HTTP/1.1 connections.
//
// The request is given to the handler as the HTTP/1.1 header section it
// is equivalent to, parsed by fasthttp: the checks made on what a client
// sent (header count, field names, Host, hop-by-hop and override fields)
// are the same code for both versions.

// alpnH2 is HTTP/2's ALPN protocol ID (RFC 9113 §3.2).
const alpnH2 = "h2"

// h2Server serves the HTTP/2 connections of every TLS listener. Safe for
// concurrent use.
type h2Server struct {
	s       *Server
	base    *http.Server
	ln      *connQueue
	maxHdr  int
	resets  int           // server.http2.max_reset_streams
	send    time.Duration // server.send_timeout, per stream
	metrics *h2Metrics

	conns sync.Map // *tls.Conn → *h2Conn, while it is served
}

// h2Conn is one HTTP/2 connection's state.
type h2Conn struct {
	conn  *tls.Conn
	state tls.ConnectionState
	done  chan struct{} // closed when the HTTP/2 server is done with it

	// The streams the client cancelled in the current window.
	windowStart atomic.Int64 // monotonic nanoseconds
	resets      atomic.Int64
	closed      atomic.Bool
}

// resetWindow is the period max_reset_streams counts over.
const resetWindow = 10 * time.Second

type h2ConnKey struct{}

// h2Metrics are the HTTP/2 metrics.
type h2Metrics struct {
	open    prometheus.Gauge
	streams prometheus.Counter
	resets  prometheus.Counter
	errors  *prometheus.CounterVec // type
}

func newH2Metrics(reg prometheus.Registerer) *h2Metrics {
	m := &h2Metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edge_http2_connections_open",
			Help: "HTTP/2 client connections open.",
		}),
		streams: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edge_http2_streams_total",
			Help: "HTTP/2 streams (requests) received from clients.",
		}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edge_http2_streams_reset_total",
			Help: "HTTP/2 streams the client cancelled before their answer was complete.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_http2_errors_total",
			Help: "HTTP/2 protocol errors and defences triggered, by type (the HTTP/2 server's own names, e.g. too_many_early_resets; rapid_reset when server.http2.max_reset_streams closed a connection).",
		}, []string{"type"}),
	}
	reg.MustRegister(m.open, m.streams, m.resets, m.errors)
	return m
}

// newH2Server builds the HTTP/2 server from the start configuration.
func (s *Server) newH2Server(cfg *config.Config, addr net.Addr) *h2Server {
	h := &h2Server{
		s:       s,
		ln:      newConnQueue(addr),
		maxHdr:  int(cfg.Server.MaxHeaderBytes.Bytes()),
		resets:  cfg.Server.HTTP2.MaxResetStreams,
		send:    cfg.Server.SendTimeout.D(),
		metrics: s.h2Metrics,
	}
	h.base = &http.Server{
		Handler:        h,
		IdleTimeout:    cfg.Server.IdleTimeout.D(),
		MaxHeaderBytes: h.maxHdr, // SETTINGS_MAX_HEADER_LIST_SIZE, and the bound on CONTINUATION
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: cfg.Server.HTTP2.MaxConcurrentStreams,
			// No WriteByteTimeout: the connection under TLS bounds every
			// write by send_timeout (sendTimeoutConn), and each stream's
			// writes are bounded by it too (writeResponse), which also
			// covers a client that never opens its flow-control window.
			CountError: func(t string) { h.metrics.errors.WithLabelValues(h2ErrorType(t)).Inc() },
		},
		// OPTIONS * is a request like another: the routes decide.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     log.New(io.Discard, "", 0), // every condition is counted
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if hc, ok := h.conns.Load(c); ok {
				return context.WithValue(ctx, h2ConnKey{}, hc)
			}
			return ctx
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st != http.StateClosed && st != http.StateHijacked {
				return
			}
			if hc, ok := h.conns.LoadAndDelete(c); ok {
				close(hc.(*h2Conn).done)
			}
		},
	}
	var protocols http.Protocols
	protocols.SetHTTP2(true) // only connections that chose h2 come here
	h.base.Protocols = &protocols
	return h
}

// run serves the connections handed over until shutdown.
func (h *h2Server) run() {
	if err := h.base.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		h.s.log.Error("http/2 server stopped", "error", err)
	}
}

// serveConn is fasthttp's handler for connections that negotiated h2: it
// hands the connection to the HTTP/2 server and returns when that is done
// with it, so that fasthttp counts it as open all along.
func (h *h2Server) serveConn(c net.Conn) error {
	tc, ok := c.(*tlsConn)
	if !ok {
		return errors.New("h2 negotiated on a connection that is not TLS")
	}
	hc := &h2Conn{conn: tc.Conn, state: tc.ConnectionState(), done: make(chan struct{})}
	hc.windowStart.Store(monoNow())
	h.conns.Store(tc.Conn, hc)
	if !h.ln.put(tc.Conn) {
		h.conns.Delete(tc.Conn)
		return nil // shutting down: fasthttp closes it
	}
	h.metrics.open.Inc()
	<-hc.done
	h.metrics.open.Dec()
	return nil
}

// shutdown sends GOAWAY on every connection, waits for their streams to
// finish until ctx is done, then closes what is left.
func (h *h2Server) shutdown(ctx context.Context) {
	if err := h.base.Shutdown(ctx); err != nil {
		_ = h.base.Close()
	}
}

// countReset records a stream the client cancelled, and closes the
// connection when it cancelled more than max_reset_streams in the window.
func (h *h2Server) countReset(hc *h2Conn) {
	h.metrics.resets.Inc()
	if hc == nil {
		return
	}
	now := monoNow()
	if start := hc.windowStart.Load(); now-start > int64(resetWindow) && hc.windowStart.CompareAndSwap(start, now) {
		hc.resets.Store(0)
	}
	if hc.resets.Add(1) > int64(h.resets) && hc.closed.CompareAndSwap(false, true) {
		h.metrics.errors.WithLabelValues("rapid_reset").Inc()
		_ = hc.conn.Close()
	}
}

// h2Stream is the working memory of one stream, pooled.
type h2Stream struct {
	ctx  fasthttp.RequestCtx
	conn h2StreamConn
	raw  []byte
	rd   bytes.Reader
	br   *bufio.Reader
	body h2Body
	buf  []byte // a small request body, read whole
}

// h2Body is a stream's request body as the handler reads it. Closing it
// does nothing: the handler replaces body streams (closing the one it
// replaces), and the HTTP/2 server closes the stream's body itself.
type h2Body struct{ r io.Reader }

func (b *h2Body) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *h2Body) Close() error               { return nil }

var h2StreamPool sync.Pool // *h2Stream

var errNotAConnection = errors.New("an HTTP/2 stream has no connection of its own")

// h2StreamConn is what fasthttp's RequestCtx sees as the connection of a
// stream: the HTTP/2 connection's addresses and TLS state, and the
// stream's own read and write deadlines (so server.body_timeout applies
// to request bodies as over HTTP/1.1). It is never read or written.
type h2StreamConn struct {
	hc *h2Conn
	rc *http.ResponseController
}

func (c *h2StreamConn) Read([]byte) (int, error)  { return 0, errNotAConnection }
func (c *h2StreamConn) Write([]byte) (int, error) { return 0, errNotAConnection }
func (c *h2StreamConn) Close() error              { return nil }
func (c *h2StreamConn) LocalAddr() net.Addr       { return c.hc.conn.LocalAddr() }
func (c *h2StreamConn) RemoteAddr() net.Addr      { return c.hc.conn.RemoteAddr() }
func (c *h2StreamConn) SetDeadline(t time.Time) error {
	_ = c.rc.SetReadDeadline(t)
	return c.rc.SetWriteDeadline(t)
}
func (c *h2StreamConn) SetReadDeadline(t time.Time) error  { return c.rc.SetReadDeadline(t) }
func (c *h2StreamConn) SetWriteDeadline(t time.Time) error { return c.rc.SetWriteDeadline(t) }

// Handshake and ConnectionState make fasthttp's RequestCtx.IsTLS true.
func (c *h2StreamConn) Handshake() error                     { return nil }
func (c *h2StreamConn) ConnectionState() tls.ConnectionState { return c.hc.state }

// isHTTP2 reports whether ctx is an HTTP/2 stream.
func isHTTP2(ctx *fasthttp.RequestCtx) bool {
	_, ok := ctx.Conn().(*h2StreamConn)
	return ok
}

// ServeHTTP runs one stream through the public handler.
func (h *h2Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.metrics.streams.Inc()
	hc, _ := r.Context().Value(h2ConnKey{}).(*h2Conn)
	if hc == nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if r.Context().Err() != nil {
		h.countReset(hc) // cancelled before it started: no work for it
		return
	}
	if r.Method == http.MethodConnect {
		// RFC 9113 §8.5 CONNECT (and RFC 8441's extended CONNECT for
		// WebSockets) is not offered.
		h.s.metrics.clientError("bad_request")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = io.WriteString(w, statusText(http.StatusMethodNotAllowed))
		return
	}
	st, _ := h2StreamPool.Get().(*h2Stream)
	if st == nil {
		st = &h2Stream{}
	}
	defer h.release(st)
	st.conn = h2StreamConn{hc: hc, rc: http.NewResponseController(w)}
	ctx := &st.ctx
	ctx.Init2(&st.conn, quietLogger{}, false)
	// The settings the public fasthttp servers give every response.
	ctx.Response.Header.SetNoDefaultContentType(true)

	if err := h.readRequest(st, r); err != nil {
		status, reason := http.StatusBadRequest, "bad_request"
		if errors.Is(err, ErrClientTimeout) {
			status, reason = http.StatusRequestTimeout, "timeout"
		}
		h.s.metrics.clientError(reason)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, statusText(status))
		return
	}
	h.s.handle(ctx)
	h.writeResponse(w, r, ctx, st.conn.rc)
	if r.Context().Err() != nil {
		h.countReset(hc) // the client cancelled it while it ran
	}
}

func (h *h2Server) release(st *h2Stream) {
	st.ctx.Request.Reset()
	st.ctx.Response.Reset() // closes a body stream not read to its end
	st.conn = h2StreamConn{}
	st.body.r = nil
	if cap(st.buf) > streamPrefetch {
		st.buf = nil
	}
	if cap(st.raw) > 4*h.maxHdr {
		st.raw = nil
	}
	h2StreamPool.Put(st)
}

// readRequest turns r into the HTTP/1.1 request it stands for, in
// st.ctx.Request. Go's HTTP/2 server has already refused what RFC 9113
// §8.2 forbids (connection-specific fields, upper-case names, invalid
// values) and joined split Cookie fields (§8.2.3).
func (h *h2Server) readRequest(st *h2Stream, r *http.Request) error {
	if r.Host == "" || r.RequestURI == "" {
		return errors.New("missing :authority or :path")
	}
	b := append(st.raw[:0], r.Method...)
	b = append(b, ' ')
	b = append(b, r.RequestURI...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	for name, values := range r.Header {
		switch name {
		case "Host":
			// RFC 9113 §8.3.1: Host may come with :authority (Go copies
			// it into r.Host when :authority is missing); it must then
			// say the same, once.
			if len(values) != 1 || !strings.EqualFold(values[0], r.Host) {
				return errors.New("host field disagrees with :authority")
			}
			continue
		case "Content-Length":
			// RFC 9113 §8.1.1: the declared length must be the body's.
			if len(values) != 1 || r.ContentLength < 0 || values[0] != strconv.FormatInt(r.ContentLength, 10) {
				return errors.New("content-length disagrees with the body")
			}
		}
		for _, v := range values {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	st.raw = b
	st.rd.Reset(b)
	if st.br == nil {
		// The header list is bounded by MaxHeaderBytes; the HTTP/1.1 form
		// adds ": " and CRLF per field, less than HPACK's 32 bytes each.
		st.br = bufio.NewReaderSize(&st.rd, 2*h.maxHdr+4096)
	} else {
		st.br.Reset(&st.rd)
	}
	req := &st.ctx.Request
	if err := req.Header.Read(st.br); err != nil {
		return err
	}
	req.Header.SetProtocol("HTTP/2.0") // for the access log; nodes get HTTP/1.1
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if n := r.ContentLength; n > 0 && n <= streamPrefetch {
		// As fasthttp does over HTTP/1.1, a small body is read whole
		// before the handler runs, within body_timeout: one cut short or
		// cancelled never reaches a node.
		if cap(st.buf) < int(n) {
			st.buf = make([]byte, n, max(n, 4<<10))
		}
		b := st.buf[:n]
		_ = st.conn.rc.SetReadDeadline(time.Now().Add(h.s.snap.Load().bodyTimeout))
		_, err := io.ReadFull(r.Body, b)
		_ = st.conn.rc.SetReadDeadline(time.Time{})
		if err != nil {
			if isTimeout(err) {
				return ErrClientTimeout
			}
			return fmt.Errorf("%w: %v", ErrBadRequestBody, err)
		}
		req.SetBodyRaw(b)
		return nil
	}
	st.body.r = r.Body
	req.SetBodyStream(&st.body, int(r.ContentLength)) // -1: length unknown
	return nil
}

// writeResponse writes the handler's answer in ctx as HTTP/2.
func (h *h2Server) writeResponse(w http.ResponseWriter, r *http.Request, ctx *fasthttp.RequestCtx, rc *http.ResponseController) {
	resp := &ctx.Response
	hdr := w.Header()
	for name, value := range resp.Header.All() {
		if connectionSpecific(name) || bytes.EqualFold(name, hdrContentLength) {
			continue
		}
		k := string(name)
		hdr[k] = append(hdr[k], string(value))
	}
	// As over HTTP/1.1, edge adds neither a Date nor a sniffed
	// Content-Type that the node did not send.
	if _, ok := hdr["Date"]; !ok {
		hdr["Date"] = nil
	}
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = nil
	}
	status := resp.StatusCode()
	noBody := r.Method == http.MethodHead || status < 200 || status == http.StatusNoContent || status == http.StatusNotModified
	stream := resp.IsBodyStream()
	switch {
	case stream || noBody:
		if n := resp.Header.ContentLength(); n >= 0 && status != http.StatusNoContent {
			hdr["Content-Length"] = []string{strconv.Itoa(n)}
		}
	default:
		hdr["Content-Length"] = []string{strconv.Itoa(len(resp.Body()))}
	}
	w.WriteHeader(status)
	if noBody {
		return
	}
	sw := streamWriter{w: w, f: w.(http.Flusher), rc: rc, timeout: h.send, flush: stream}
	if stream {
		// Streamed from a node: each piece goes out as it arrives.
		if err := resp.BodyWriteTo(&sw); err != nil {
			// The node's body broke off (or the client went away): reset
			// the stream, so the client never takes a cut-short body for
			// a whole one (RFC 9113 §8.1).
			panic(http.ErrAbortHandler)
		}
		return
	}
	_, _ = sw.Write(resp.Body())
}

var hdrContentLength = []byte("Content-Length")

// connectionSpecific reports the fields RFC 9113 §8.2.2 forbids in
// HTTP/2 (edge strips the hop-by-hop fields of node answers already;
// these are what fasthttp itself may add).
func connectionSpecific(name []byte) bool {
	for _, i := range [...]int{0, 1, 2, 7, 8} { // Connection, Proxy-Connection, Keep-Alive, Transfer-Encoding, Upgrade
		if len(name) == len(hopHeaders[i]) && bytes.EqualFold(name, hopHeaders[i]) {
			return true
		}
	}
	return false
}

// streamWriter writes a stream's body in pieces of at most 64 KiB, each
// of which must go out within the send timeout (so a client that stops
// reading, or never opens its flow-control window, is cut as over
// HTTP/1.1), flushing after each when the body is streamed.
type streamWriter struct {
	w       io.Writer
	f       http.Flusher
	rc      *http.ResponseController
	timeout time.Duration
	flush   bool
}

func (sw *streamWriter) Write(p []byte) (int, error) {
	var written int
	for len(p) > 0 {
		piece := p[:min(len(p), 64<<10)]
		if sw.timeout > 0 {
			_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
		}
		n, err := sw.w.Write(piece)
		written += n
		if err != nil {
			return written, err
		}
		if sw.flush {
			sw.f.Flush()
		}
		p = p[n:]
	}
	return written, nil
}

// connQueue is the listener the HTTP/2 server accepts from: connections
// fasthttp handed over after their TLS handshake chose h2.
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

// put hands c to Accept; false when the queue is closed.
func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.closed:
		return false
	}
}

// Accept implements net.Listener.
func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

// Addr implements net.Listener.
func (q *connQueue) Addr() net.Addr { return q.addr }

// h2ErrorType turns the name Go's HTTP/2 server counts an error under
// ("conn_ENHANCE_YOUR_CALM_too_many_early_resets": scope, error code,
// reason) into its reason alone ("too_many_early_resets"), the fixed set of
// names the README documents as edge_http2_errors_total's type label.
func h2ErrorType(name string) string {
	rest, ok := strings.CutPrefix(name, "conn_")
	if !ok {
		if rest, ok = strings.CutPrefix(name, "stream_"); !ok {
			return name
		}
	}
	// Skip the error code: upper-case words and digits.
	for {
		word, after, found := strings.Cut(rest, "_")
		if strings.ToUpper(word) != word {
			break
		}
		if rest = after; !found {
			break
		}
	}
	if rest == "" {
		return name
	}
	return rest
}
