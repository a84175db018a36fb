// Package router is edge's engine: the public listeners, route matching,
// redirects and fixed responses, pools and balancing, the proxy itself,
// hot reload of the configuration, metrics, the access log and the admin
// API. It reads only validated configurations (package config).
package router

import (
	"context"
	"errors"
	"fmt"
	"github.com/edge-router/edge/cache"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/health"
)

// Options are the settings of a Server that do not come from the
// configuration file.
type Options struct {
	// ConfigPath is the file Reload reads. Empty disables Reload.
	ConfigPath string
	// Logger receives the server's own log (not the access log).
	// Default: slog.Default().
	Logger *slog.Logger
	// Version is reported by the admin API.
	Version string
}

// Server is a running edge: public listeners, the admin listener and the
// current configuration snapshot. All methods are safe for concurrent use.
type Server struct {
	opts       Options
	log        *slog.Logger
	metrics    *metrics
	ids        *requestIDs
	health     *health.Registry
	dnsMetrics *health.DNSMetrics
	disc       discoveries
	tlsMetrics *tlsMetrics
	h2Metrics  *h2Metrics
	acme       atomic.Pointer[acmeManager] // nil without tls.acme
	cache      cacheState
	limits     *limitMetrics

	tunnels tunnelSet // open upgraded connections (tunnel.go)
	tail    tailHub   // live access-log followers (tail.go)

	snap      atomic.Pointer[snapshot]
	accessLog atomic.Pointer[accessLogger]

	reloadMu sync.Mutex // serialises Apply/Reload

	mu        sync.Mutex // guards the fields below
	started   bool
	public    []*listener
	admin     *fasthttp.Server
	h2        *h2Server // nil without a TLS listener
	adminAddr net.Addr
	stopWatch func()
	// startCfg holds the settings that only a restart changes.
	startCfg *config.Config
}

type listener struct {
	name  string
	ln    net.Listener
	srv   *fasthttp.Server
	tls   bool
	proxy *config.ProxyProtocol // nil: no PROXY protocol
}

// New builds a Server for a validated configuration. It does not listen
// yet; call Start.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Logger, ids: newRequestIDs()}
	s.metrics = newMetrics(newConnCollector(s.snap.Load))
	var err error
	if s.health, err = health.NewRegistry(s.metrics.reg, s.log); err != nil {
		return nil, err
	}
	if s.dnsMetrics, err = health.NewDNSMetrics(s.metrics.reg); err != nil {
		return nil, err
	}
	s.tlsMetrics = newTLSMetrics(s.metrics.reg, s)
	s.h2Metrics = newH2Metrics(s.metrics.reg)
	s.tail.setup(s.metrics.reg)
	s.limits = newLimitMetrics(s.metrics.reg, s.rejectedConnections)
	if s.cache.store, err = cache.NewStore(cache.StoreConfig{MaxBytes: int64(cfg.Cache.Size)}); err != nil {
		return nil, fmt.Errorf("creating the cache store: %w", err)
	}
	s.cache.coal = cache.NewCoalescer()
	s.cache.metrics = newCacheMetrics(s.metrics.reg, func() *cache.Store { return s.cache.store }, s.cache.coal)
	s.syncDiscovery(cfg)
	snap, err := s.buildSnapshot(cfg, nil)
	if err != nil {
		s.stopDiscovery()
		s.health.Close()
		return nil, err
	}
	al, err := newAccessLogger(cfg.AccessLog, s.metrics.accessLogDropped)
	if err != nil {
		return nil, err
	}
	s.accessLog.Store(al)
	s.snap.Store(snap)
	s.startCfg = cfg
	s.metrics.lastReloadOK.Set(1)
	s.metrics.lastReloadTime.SetToCurrentTime()
	return s, nil
}

// publicListenConfig opens the public listeners. TCP keep-alive probes
// are off on accepted connections (KeepAlive -1), as in HAProxy (no
// "option clitcpka") and nginx (no so_keepalive): idle_timeout and
// read_header_timeout already end idle and silent clients, and switching
// the probes on costs four setsockopt calls per connection (about 1 µs
// each on this project's VM). A tunnel, which may idle for an hour,
// switches them on for its client (tunnel.run).
var publicListenConfig = net.ListenConfig{KeepAlive: -1}

// Start binds every listener and serves in the background. It fails, and
// leaves nothing open, if any address cannot be bound.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("server already started")
	}
	cfg := s.startCfg
	var opened []net.Listener
	fail := func(err error) error {
		for _, ln := range opened {
			_ = ln.Close()
		}
		return err
	}
	for _, l := range cfg.Listeners {
		ln, err := publicListenConfig.Listen(context.Background(), "tcp", l.Address)
		if err != nil {
			return fail(fmt.Errorf("listening on %s (%s): %w", l.Address, l.Name, err))
		}
		opened = append(opened, ln)
		s.public = append(s.public, &listener{name: l.Name, ln: ln, srv: s.newPublicServer(cfg), tls: l.TLS, proxy: l.ProxyProtocol})
	}
	var adminLn net.Listener
	if cfg.Admin.Address != "off" {
		ln, err := net.Listen("tcp", cfg.Admin.Address)
		if err != nil {
			s.public = nil
			return fail(fmt.Errorf("listening on admin address %s: %w", cfg.Admin.Address, err))
		}
		adminLn = ln
		s.admin = s.newAdminServer()
		s.adminAddr = ln.Addr()
	}
	if cfg.TLS.ACME != nil {
		s.startACME(cfg)
	}
	var perIP *connLimiter // shared by every public listener
	if n := cfg.Server.MaxConnectionsPerIP; n > 0 {
		perIP = newConnLimiter(n)
	}
	refused := s.limits.triggered.WithLabelValues(limitConnsPerIP, "")
	for _, l := range s.public {
		var inner net.Listener = &retryListener{Listener: l.ln, onError: func(err error) {
			s.log.Error("accepting connections; retrying", "listener", l.name, "error", err)
		}}
		if perIP != nil {
			inner = newLimitListener(inner, perIP, refused.Inc)
		}
		var wrapped net.Listener = &sendTimeoutListener{Listener: inner, sendTimeout: cfg.Server.SendTimeout.D()}
		if l.proxy != nil {
			wrapped = &proxyListener{Listener: wrapped, trusted: trustedNets(l.proxy.FromNets),
				timeout: cfg.Server.ReadHeaderTimeout.D(), refusals: s.limits.proxyRefused}
		}
		if l.tls {
			wrapped = &tlsListener{Listener: wrapped, config: s.baseTLSConfig(), metrics: s.tlsMetrics}
			if s.h2 == nil {
				s.h2 = s.newH2Server(cfg, l.ln.Addr())
				go s.h2.run()
			}
			l.srv.NextProto(alpnH2, s.h2.serveConn)
		}
		go s.serve(l.name, l.srv, wrapped)
		s.log.Info("listening", "listener", l.name, "address", l.ln.Addr().String(), "tls", l.tls)
	}
	if adminLn != nil {
		go s.serve("admin", s.admin, adminLn)
		s.log.Info("admin listening", "address", adminLn.Addr().String())
	}
	if cfg.Watch && s.opts.ConfigPath != "" {
		stop, err := s.watch(s.opts.ConfigPath)
		if err != nil {
			s.log.Warn("not watching the configuration file", "error", err)
		} else {
			s.stopWatch = stop
		}
	}
	s.started = true
	return nil
}

// startACME builds certmagic once the listeners are bound, so that it knows
// the ports where challenge requests arrive, and starts managing names.
func (s *Server) startACME(cfg *config.Config) {
	var httpHost string
	var httpPort, tlsPort int
	for _, l := range s.public {
		addr, ok := l.ln.Addr().(*net.TCPAddr)
		if !ok {
			continue
		}
		switch {
		case l.tls && tlsPort == 0:
			tlsPort = addr.Port
		case !l.tls && httpPort == 0:
			httpPort = addr.Port
			if !addr.IP.IsUnspecified() {
				httpHost = addr.IP.String()
			}
		}
	}
	acm := s.newACMEManager(cfg.TLS.ACME, httpHost, httpPort, tlsPort)
	s.acme.Store(acm)
	acm.manage(cfg.ManagedNames(), s.log)
}

func (s *Server) serve(name string, srv *fasthttp.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Error("listener stopped", "listener", name, "error", err)
	}
}

func (s *Server) newPublicServer(cfg *config.Config) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      s.handle,
		ErrorHandler:                 s.handleReadError,
		ExpectHandler:                s.handleExpect,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		ReadTimeout:                  cfg.Server.ReadHeaderTimeout.D(),
		IdleTimeout:                  cfg.Server.IdleTimeout.D(),
		ReadBufferSize:               int(cfg.Server.MaxHeaderBytes.Bytes()),
		WriteBufferSize:              16 << 10,
		MaxRequestBodySize:           streamPrefetch,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		Concurrency:                  cfg.Server.MaxConnections,
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		Logger:                       quietLogger{},
	}
}

// handleReadError answers requests that fasthttp could not read.
func (s *Server) handleReadError(ctx *fasthttp.RequestCtx, err error) {
	var status int
	var reason string
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		status, reason = fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, reason = fasthttp.StatusRequestEntityTooLarge, "body_too_large"
	case isTimeout(err):
		status, reason = fasthttp.StatusRequestTimeout, "timeout"
	default:
		status, reason = fasthttp.StatusBadRequest, "bad_request"
	}
	s.metrics.clientError(reason)
	writeError(ctx, status)
}

// handleExpect answers "Expect: 100-continue" (RFC 9110 §10.1.1): a body
// declared larger than the limit is refused with 413 before the client
// sends it; anything else may continue.
func (s *Server) handleExpect(ctx *fasthttp.RequestCtx) int {
	if max := s.snap.Load().maxBody; max > 0 && int64(ctx.Request.Header.ContentLength()) > max {
		s.metrics.clientError("body_too_large")
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.Response.SetBodyString(statusText(fasthttp.StatusRequestEntityTooLarge))
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// quietLogger drops fasthttp's own log lines: every condition it reports
// is answered and counted by us.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// Reload reads the configuration file again and applies it. An invalid file
// is refused with every problem listed, and the running configuration keeps
// serving.
func (s *Server) Reload() error {
	if s.opts.ConfigPath == "" {
		return errors.New("reload: no configuration file")
	}
	cfg, err := config.Load(s.opts.ConfigPath)
	if err != nil {
		s.reloadFailed(err)
		return err
	}
	return s.Apply(cfg)
}

// Apply swaps in a new validated configuration. Requests in flight finish
// on the snapshot they started with; connections to unchanged nodes are
// kept. Settings that need new sockets (listener addresses, the admin
// address, header buffer size, server timeouts) take effect on restart;
// a change to them is logged.
func (s *Server) Apply(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := s.snap.Load()
	s.syncDiscovery(cfg)
	next, err := s.buildSnapshot(cfg, prev)
	if err != nil {
		s.syncDiscovery(prev.cfg)
		s.reloadFailed(err)
		return err
	}
	oldLog := s.accessLog.Load()
	newLog, err := newAccessLogger(cfg.AccessLog, s.metrics.accessLogDropped)
	if err != nil {
		s.reloadFailed(err)
		return err
	}
	s.warnRestartOnly(cfg)
	if cfg.Cache.Size != prev.cfg.Cache.Size {
		s.cache.store.SetMaxBytes(int64(cfg.Cache.Size))
	}
	s.snap.Store(next)
	if acm := s.acme.Load(); acm != nil {
		acm.manage(cfg.ManagedNames(), s.log) // new names are obtained, known ones kept
	}
	s.accessLog.Store(newLog)
	oldLog.close()
	closeUnused(prev, next)
	s.metrics.reloads.WithLabelValues("success").Inc()
	s.metrics.lastReloadOK.Set(1)
	s.metrics.lastReloadTime.SetToCurrentTime()
	s.noteReload(nil)
	s.log.Info("configuration applied", "routes", len(next.routes), "upstreams", len(next.pools))
	return nil
}

// rebuild compiles the running configuration again, for changes that come
// from outside the file: an operator's weight override, a DNS answer.
func (s *Server) rebuild() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := s.snap.Load()
	next, err := s.buildSnapshot(prev.cfg, prev)
	if err != nil {
		s.log.Error("rebuilding the configuration snapshot", "error", err)
		return err
	}
	s.snap.Store(next)
	closeUnused(prev, next)
	return nil
}

func (s *Server) reloadFailed(err error) {
	s.metrics.reloads.WithLabelValues("failure").Inc()
	s.metrics.lastReloadOK.Set(0)
	s.noteReload(err)
	s.log.Error("configuration refused; the running configuration keeps serving", "error", err)
}

func (s *Server) warnRestartOnly(cfg *config.Config) {
	s.mu.Lock()
	start := s.startCfg
	s.mu.Unlock()
	same := len(start.Listeners) == len(cfg.Listeners)
	for i := 0; same && i < len(cfg.Listeners); i++ {
		same = start.Listeners[i].Address == cfg.Listeners[i].Address
	}
	for i := 0; same && i < len(cfg.Listeners); i++ {
		same = start.Listeners[i].TLS == cfg.Listeners[i].TLS &&
			(start.Listeners[i].ProxyProtocol == nil) == (cfg.Listeners[i].ProxyProtocol == nil)
	}
	if (start.TLS.ACME == nil) != (cfg.TLS.ACME == nil) ||
		(start.TLS.ACME != nil && (start.TLS.ACME.CA != cfg.TLS.ACME.CA || start.TLS.ACME.Storage != cfg.TLS.ACME.Storage ||
			start.TLS.ACME.Email != cfg.TLS.ACME.Email || start.TLS.ACME.OnDemand != cfg.TLS.ACME.OnDemand)) {
		s.log.Warn("tls.acme account settings changed; they take effect on restart (names are applied now)")
	}
	if !same || start.Admin != cfg.Admin ||
		start.Server.MaxHeaderBytes != cfg.Server.MaxHeaderBytes ||
		start.Server.ReadHeaderTimeout != cfg.Server.ReadHeaderTimeout ||
		start.Server.IdleTimeout != cfg.Server.IdleTimeout ||
		start.Server.SendTimeout != cfg.Server.SendTimeout ||
		start.Server.MaxConnections != cfg.Server.MaxConnections ||
		start.Server.MaxConnectionsPerIP != cfg.Server.MaxConnectionsPerIP {
		s.log.Warn("listeners, admin and server timeouts/buffer sizes changed; they take effect on restart")
	}
}

// Shutdown stops accepting connections and waits for requests in flight
// to finish, until ctx is done; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	public, admin, stopWatch, h2 := s.public, s.admin, s.stopWatch, s.h2
	s.public, s.admin, s.stopWatch, s.h2 = nil, nil, nil, nil
	s.mu.Unlock()
	if stopWatch != nil {
		stopWatch()
	}
	s.stopDiscovery()
	var wg sync.WaitGroup
	errs := make([]error, len(public))
	for i, l := range public {
		wg.Go(func() { errs[i] = l.srv.ShutdownWithContext(ctx) })
	}
	if h2 != nil {
		wg.Go(func() { h2.shutdown(ctx) }) // GOAWAY, then the streams finish
	}
	wg.Wait()
	s.tunnels.shutdown(ctx) // tunnels last: they may run until the grace period ends
	if admin != nil {
		actx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = admin.ShutdownWithContext(actx)
		cancel()
	}
	if snap := s.snap.Load(); snap != nil {
		for _, link := range snap.links {
			link.client.CloseIdleConnections()
		}
	}
	s.accessLog.Load().close()
	s.health.Close()
	s.cache.store.Close()
	if acm := s.acme.Swap(nil); acm != nil {
		acm.stop()
	}
	return errors.Join(errs...)
}

// rejectedConnections is the number of client connections refused because
// server.max_connections were open, over every public listener.
func (s *Server) rejectedConnections() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint32
	for _, l := range s.public {
		n += l.srv.GetRejectedConnectionsCount()
	}
	return float64(n)
}

// Addrs returns the bound addresses of the public listeners, in
// configuration order (useful when a listener was given port 0).
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.public))
	for i, l := range s.public {
		out[i] = l.ln.Addr()
	}
	return out
}

// AdminAddr returns the bound admin address, or nil when it is off.
func (s *Server) AdminAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminAddr
}

// finish records a request in metrics and the access log.
func (s *Server) finish(ctx *fasthttp.RequestCtx, out *outcome, start time.Time) {
	status := ctx.Response.StatusCode()
	dur := time.Since(start)
	if out.route != nil {
		node := out.node
		if out.err != nil {
			node = nil
		}
		out.route.metrics.count(node, status, dur.Seconds())
	} else if out.reason != "" {
		s.metrics.clientError(out.reason)
	}
	if al := s.accessLog.Load(); al.enabled() {
		al.log(ctx, out, status, dur)
	}
	if s.tail.active() {
		s.tail.publish(ctx, out, status, dur)
	}
}
