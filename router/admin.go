package router

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// newAdminServer builds the admin API:
//
//	GET  /healthz  200 "ok" (no token needed)
//	GET  /metrics  Prometheus metrics
//	POST /reload   reload the configuration file; 200, or 422 with every problem
//	GET  /version  the version
//	GET  /debug/pprof/…  Go profiles (CPU, heap, goroutines) for diagnosis
//	GET  /         the live status page (HTML); GET /status its data (JSON)
//	GET  /login    the login form; POST /login, POST /logout (status.go)
//
// It also starts the sampler of the status page's per-node figures, which
// stops once the admin server is shut down.
func (s *Server) newAdminServer() *fasthttp.Server {
	s.metrics.status.startSampler(s)
	pprofMux := http.NewServeMux()
	pprofMux.HandleFunc("/debug/pprof/", pprof.Index)
	pprofMux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	pprofMux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	pprofMux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	pprofMux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	pprofHandler := fasthttpadaptor.NewFastHTTPHandler(pprofMux)
	metricsHandler := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{
		Registry:            s.metrics.reg,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
		EnableOpenMetrics:   true,
	}))
	return &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			defer func() {
				// fasthttp does not recover: a bug in one admin endpoint
				// must not take the public listeners down with it.
				if p := recover(); p != nil {
					s.log.Error("panic in admin handler", "path", string(ctx.Path()), "panic", p)
					ctx.Error("internal error\n", fasthttp.StatusInternalServerError)
				}
			}()
			path := string(ctx.Path())
			if path == "/healthz" {
				ctx.SetBodyString("ok\n")
				return
			}
			if reason := s.adminCrossSite(ctx); reason != "" {
				ctx.Error(reason+"\n", fasthttp.StatusForbidden)
				return
			}
			if path == "/login" || path == "/logout" {
				s.handleLogin(ctx, path)
				return
			}
			if !s.adminAuthorized(ctx) {
				if path == "/" && (ctx.IsGet() || ctx.IsHead()) {
					// A browser: it cannot send the bearer token, so it
					// logs in for a session cookie.
					seeOther(ctx, "/login")
					return
				}
				ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="edge admin"`)
				ctx.Error("unauthorized\n", fasthttp.StatusUnauthorized)
				return
			}
			if strings.HasPrefix(path, "/debug/pprof/") {
				pprofHandler(ctx)
				return
			}
			if path == "/cache" || strings.HasPrefix(path, "/cache/") {
				s.handleCacheAdmin(ctx, path)
				return
			}
			if path == "/pools" || strings.HasPrefix(path, "/pools/") {
				s.handlePools(ctx, path)
				return
			}
			if h := adminEndpoints[path]; h != nil {
				h(s, ctx)
				return
			}
			switch path {
			case "/metrics":
				metricsHandler(ctx)
			case "/reload":
				if !ctx.IsPost() {
					ctx.Response.Header.Set("Allow", "POST")
					ctx.Error("use POST\n", fasthttp.StatusMethodNotAllowed)
					return
				}
				if err := s.Reload(); err != nil {
					ctx.SetContentType("text/plain; charset=utf-8")
					ctx.SetStatusCode(fasthttp.StatusUnprocessableEntity)
					ctx.SetBodyString("configuration refused; the running configuration keeps serving:\n" + err.Error() + "\n")
					return
				}
				ctx.SetBodyString("reloaded\n")
			case "/version":
				ctx.SetBodyString(s.opts.Version + "\n")
			default:
				ctx.Error("not found\n", fasthttp.StatusNotFound)
			}
		},
		NoDefaultServerHeader: true,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          90 * time.Second, // a CPU profile takes 30 s by default
		IdleTimeout:           30 * time.Second,
		MaxRequestBodySize:    1 << 20,
		Logger:                quietLogger{},
	}
}

// adminEndpoints are the admin endpoints defined beside the feature they
// serve (status page, explain, live logs), by exact path, behind the same
// cross-site and token checks as the rest. Read-only.
var adminEndpoints = map[string]func(*Server, *fasthttp.RequestCtx){
	"/":        (*Server).handleStatusPage,
	"/status":  (*Server).handleStatus,
	"/explain": (*Server).handleExplain,
	"/config":  (*Server).handleConfig,
	"/logs":    (*Server).handleTail,
}

// adminAuthorized reports whether a request may use the admin API: always
// when no token is set; otherwise with "Authorization: Bearer <token>" or
// the session cookie that POST /login sets (a browser cannot send the
// header when it navigates). Both are checked in constant time.
func (s *Server) adminAuthorized(ctx *fasthttp.RequestCtx) bool {
	token := s.snap.Load().cfg.Admin.Token
	if token == "" {
		return true
	}
	const prefix = "Bearer "
	if got := ctx.Request.Header.Peek("Authorization"); len(got) > len(prefix) && string(got[:len(prefix)]) == prefix {
		return tokenEqual(got[len(prefix):], token)
	}
	if c := ctx.Request.Header.Cookie(adminCookie); len(c) > 0 {
		return validSession(token, c, time.Now())
	}
	return false
}

// tokenEqual compares a presented token with the admin token in constant
// time, lengths included (it compares their SHA-256 digests).
func tokenEqual(got []byte, token string) bool {
	a, b := sha256.Sum256(got), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// adminCrossSite refuses requests that a web page could have made the
// browser send: the admin API sends no CORS headers, so pages may not read
// its answers, but a cross-site POST (a form) still reaches it, and DNS
// rebinding turns a page's own host name into 127.0.0.1. It returns why a
// request is refused, or "".
//
//   - Sec-Fetch-Site, when sent, must be "same-origin" or "none" (typed
//     in the address bar, curl never sends it);
//   - Origin, when sent, must be the admin's own origin (the Host asked);
//   - without an admin token, Host must be an IP address or "localhost",
//     with or without a port (a rebound name is refused; with a token the
//     browser has nothing to send).
func (s *Server) adminCrossSite(ctx *fasthttp.RequestCtx) string {
	h := &ctx.Request.Header
	if site := h.Peek("Sec-Fetch-Site"); len(site) > 0 && string(site) != "same-origin" && string(site) != "none" {
		return "cross-site request refused"
	}
	host := string(h.Host())
	if origin := h.Peek("Origin"); len(origin) > 0 {
		o := string(origin)
		if i := strings.Index(o, "://"); i < 0 || !strings.EqualFold(o[i+3:], host) {
			return "cross-origin request refused"
		}
	}
	if s.snap.Load().cfg.Admin.Token == "" && !localHost(host) {
		return "admin host must be an IP address or localhost (DNS rebinding defence); set admin.token to use a name"
	}
	return ""
}

// localHost reports whether an admin Host header names an IP address or
// localhost.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// watchDebounce is how long the file must be quiet before a reload, so an
// editor's several writes make one reload.
const watchDebounce = 200 * time.Millisecond

// watch reloads the configuration when its file changes. It watches the
// directory, not the file, because editors and atomic writers replace the
// file by renaming another over it (and Kubernetes swaps a symlink).
func (s *Server) watch(path string) (stop func(), err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return nil, err
	}
	abs, _ := filepath.Abs(path)
	done := make(chan struct{})
	go func() {
		var timer *time.Timer
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if name, _ := filepath.Abs(ev.Name); name != abs || ev.Op == fsnotify.Chmod {
					continue
				}
				if timer != nil {
					timer.Stop()
				}
				// Reload logs and counts a refused configuration itself.
				timer = time.AfterFunc(watchDebounce, func() { _ = s.Reload() })
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				s.log.Warn("watching the configuration file", "error", err)
			case <-done:
				if timer != nil {
					timer.Stop()
				}
				return
			}
		}
	}()
	return func() { close(done); _ = w.Close() }, nil
}
