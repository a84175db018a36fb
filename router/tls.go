package router

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"go.uber.org/zap"

	"github.com/edge-router/edge/config"
)

// alpnACME is the ALPN protocol of TLS-ALPN-01 challenges (RFC 8737).
const alpnACME = "acme-tls/1"

// certificates are a snapshot's certificates from files, indexed for SNI:
// exact names first, then wildcards ("*.example.com" serves one label in
// front of example.com, as certificates do), then the first file as the
// default. Immutable.
type certificates struct {
	exact    map[string]*tls.Certificate
	wildcard map[string]*tls.Certificate // by suffix ".example.com"
	fallback *tls.Certificate
	expiry   map[string]time.Time // by name, for metrics
}

func newCertificates(files []config.CertificateFile) *certificates {
	c := &certificates{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}, expiry: map[string]time.Time{}}
	for _, f := range files {
		if f.Loaded == nil {
			continue
		}
		if c.fallback == nil {
			c.fallback = f.Loaded
		}
		for _, name := range f.Names {
			if suffix, ok := strings.CutPrefix(name, "*"); ok {
				if c.wildcard[suffix] == nil {
					c.wildcard[suffix] = f.Loaded
				}
			} else if c.exact[name] == nil {
				c.exact[name] = f.Loaded
			}
			if f.Loaded.Leaf != nil {
				c.expiry[name] = f.Loaded.Leaf.NotAfter
			}
		}
	}
	return c
}

// exactFor returns the certificate named exactly name.
func (c *certificates) exactFor(name string) *tls.Certificate { return c.exact[name] }

// wildcardFor returns the certificate whose wildcard covers name.
func (c *certificates) wildcardFor(name string) *tls.Certificate {
	if i := strings.IndexByte(name, '.'); i > 0 {
		return c.wildcard[name[i:]]
	}
	return nil
}

// acmeManager holds certmagic: the certificate cache, the config that
// obtains and renews certificates, and its ACME issuer. Built once at start;
// the ACME account settings take effect on restart, the names on reload.
type acmeManager struct {
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	http01  fasthttp.RequestHandler
	managed atomic.Pointer[[]string]
	log     *zap.Logger
	cancel  context.CancelFunc
	ctx     context.Context
}

// newACMEManager builds certmagic for the configuration. httpPort and
// tlsPort are the bound ports of the first plain and first HTTPS listener
// (0 when there is none), where the CA's challenge requests arrive.
func (s *Server) newACMEManager(a *config.ACME, httpHost string, httpPort, tlsPort int) *acmeManager {
	m := &acmeManager{log: zap.NewNop()}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	var magic *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		Logger:           m.log,
	})
	magic = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: a.Storage},
		Logger:  m.log,
	})
	if a.OnDemand {
		magic.OnDemand = &certmagic.OnDemandConfig{
			// Never issue for a name the configuration does not allow: any
			// client can send any SNI.
			DecisionFunc: func(_ context.Context, name string) error {
				if s.snap.Load().cfg.OnDemandAllowed(name) {
					return nil
				}
				return errNameNotAllowed
			},
		}
	}
	hasChallenge := func(c string) bool {
		for _, x := range a.Challenges {
			if x == c {
				return true
			}
		}
		return false
	}
	tmpl := certmagic.ACMEIssuer{
		CA:                      a.CA,
		Email:                   a.Email,
		Agreed:                  a.Agreed,
		TrustedRoots:            a.RootPool,
		DisableHTTPChallenge:    !hasChallenge("http-01") || httpPort == 0,
		DisableTLSALPNChallenge: !hasChallenge("tls-alpn-01") || tlsPort == 0,
		// Our own listeners hold these ports: certmagic finds them taken and
		// relies on us to answer the challenges (HTTP-01 below, TLS-ALPN-01
		// through GetCertificate).
		ListenHost:     httpHost,
		AltHTTPPort:    httpPort,
		AltTLSALPNPort: tlsPort,
		Logger:         m.log,
	}
	if a.EAB != nil {
		tmpl.ExternalAccount = &acme.EAB{KeyID: a.EAB.KeyID, MACKey: a.EAB.MACKey}
	}
	m.issuer = certmagic.NewACMEIssuer(magic, tmpl)
	magic.Issuers = []certmagic.Issuer{m.issuer}
	m.magic = magic
	m.http01 = fasthttpadaptor.NewFastHTTPHandler(m.issuer.HTTPChallengeHandler(http.NotFoundHandler()))
	return m
}

var errNameNotAllowed = errors.New("certificate name not allowed by the configuration")

// manage starts obtaining (or loading) certificates for names, in the
// background; renewals follow automatically.
func (m *acmeManager) manage(names []string, log interface{ Error(string, ...any) }) {
	m.managed.Store(&names)
	if len(names) == 0 {
		return
	}
	if err := m.magic.ManageAsync(m.ctx, names); err != nil {
		log.Error("managing certificates", "names", strings.Join(names, ","), "error", err)
	}
}

func (m *acmeManager) stop() {
	m.cancel()
	m.cache.Stop()
}

// getCertificate chooses the certificate for a handshake: a TLS-ALPN-01
// challenge certificate; a file certificate named exactly; a certificate
// certmagic manages (or may obtain on demand); a file wildcard; the first
// file certificate. A name nothing serves fails the handshake.
func (s *Server) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	snap := s.snap.Load()
	acm := s.acme.Load()
	for _, p := range hello.SupportedProtos {
		if p == alpnACME && acm != nil {
			return acm.magic.GetCertificate(hello)
		}
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if c := snap.certs.exactFor(name); c != nil {
		return c, nil
	}
	if acm != nil && name != "" {
		if c, err := acm.magic.GetCertificate(hello); err == nil {
			return c, nil
		}
	}
	if c := snap.certs.wildcardFor(name); c != nil {
		return c, nil
	}
	if snap.certs.fallback != nil {
		return snap.certs.fallback, nil
	}
	return nil, errNoCertificate
}

var errNoCertificate = errors.New("no certificate for this server name")

// tlsConfigFor builds the listener configuration of a snapshot. Listeners
// use one base configuration whose GetConfigForClient returns the current
// snapshot's, so a reload changes certificates and versions for the next
// handshake.
func (s *Server) tlsConfigFor(cfg *config.Config) *tls.Config {
	minVersion := uint16(tls.VersionTLS12)
	if cfg.TLS.MinVersion == config.TLSVersion13 {
		minVersion = tls.VersionTLS13
	}
	protos := []string{"http/1.1", alpnACME}
	if cfg.Server.HTTP2.HTTP2Enabled() {
		protos = []string{alpnH2, "http/1.1", alpnACME} // the server's order decides
	}
	return &tls.Config{
		MinVersion:     minVersion,
		NextProtos:     protos,
		GetCertificate: s.getCertificate,
	}
}

// baseTLSConfig is what HTTPS listeners are built with.
func (s *Server) baseTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1", alpnACME},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.snap.Load().tlsConfig, nil
		},
	}
}

// hstsValue builds the Strict-Transport-Security value (RFC 6797 §6.1).
func hstsValue(h config.HSTS) []byte {
	if h.MaxAge <= 0 {
		return nil
	}
	v := "max-age=" + itoaString(int64(h.MaxAge.D()/time.Second))
	if h.IncludeSubdomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return []byte(v)
}

func itoaString(n int64) string { return string(itoa(nil, int(n))) }

// tlsListener performs TLS on accepted connections and counts handshakes.
// The handshake runs on the connection's own goroutine (at its first read
// or write), never in Accept.
type tlsListener struct {
	net.Listener
	config  *tls.Config
	metrics *tlsMetrics
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsConn{Conn: tls.Server(c, l.config), metrics: l.metrics}, nil
}

// tlsConn is a server TLS connection that records its handshake. It keeps
// the Handshake and ConnectionState methods that fasthttp looks for to
// know a request came over TLS.
type tlsConn struct {
	*tls.Conn
	metrics *tlsMetrics
	once    sync.Once
	err     error
}

func (c *tlsConn) handshake() error {
	c.once.Do(func() {
		c.err = c.Conn.HandshakeContext(context.Background())
		c.metrics.record(c.Conn, c.err)
	})
	return c.err
}

func (c *tlsConn) Handshake() error { return c.handshake() }

func (c *tlsConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *tlsConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// tlsMetrics are the TLS metrics.
type tlsMetrics struct {
	handshakes *prometheus.CounterVec // version, cipher
	failures   *prometheus.CounterVec // reason
}

func newTLSMetrics(reg prometheus.Registerer, s *Server) *tlsMetrics {
	m := &tlsMetrics{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_tls_handshakes_total",
			Help: "Completed TLS handshakes with clients, by version and cipher suite.",
		}, []string{"version", "cipher"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_tls_handshake_failures_total",
			Help: "Failed TLS handshakes with clients, by reason (no_certificate, protocol_version, bad_certificate, timeout, eof, other).",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.handshakes, m.failures, &certExpiryCollector{s: s, desc: prometheus.NewDesc(
		"edge_tls_certificate_expiry_timestamp_seconds",
		"Unix time when the certificate for a name expires (file certificates and managed ones).",
		[]string{"name", "source"}, nil)})
	return m
}

func (m *tlsMetrics) record(c *tls.Conn, err error) {
	if err == nil {
		st := c.ConnectionState()
		m.handshakes.WithLabelValues(tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)).Inc()
		return
	}
	m.failures.WithLabelValues(handshakeFailureReason(err)).Inc()
}

func handshakeFailureReason(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, io.EOF) || strings.Contains(msg, "EOF"):
		return "eof"
	case isTimeout(err):
		return "timeout"
	case strings.Contains(msg, errNoCertificate.Error()) || strings.Contains(msg, "no certificate"):
		return "no_certificate"
	case strings.Contains(msg, "protocol version") || strings.Contains(msg, "unsupported versions"):
		return "protocol_version"
	case strings.Contains(msg, "bad certificate") || strings.Contains(msg, "unknown certificate"):
		return "bad_certificate"
	}
	return "other"
}

// certExpiryCollector reports certificate expiry at scrape time: file
// certificates from the current snapshot and managed names from
// certmagic's cache. Labels are configured names only.
type certExpiryCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func (c *certExpiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certExpiryCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.s.snap.Load()
	if snap == nil {
		return
	}
	for name, t := range snap.certs.expiry {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(t.Unix()), name, "file")
	}
	acm := c.s.acme.Load()
	if acm == nil {
		return
	}
	names := acm.managed.Load()
	if names == nil {
		return
	}
	for _, name := range *names {
		for _, cert := range acm.cache.AllMatchingCertificates(name) {
			if cert.Leaf != nil {
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(cert.Leaf.NotAfter.Unix()), name, "acme")
				break
			}
		}
	}
}

// upstreamTLSConfig builds the client TLS configuration for a pool's nodes.
func upstreamTLSConfig(t *config.UpstreamTLS) *tls.Config {
	if t == nil {
		return nil
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            t.RootPool,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // an operator's explicit choice
	}
	if t.ClientCert != nil {
		c.Certificates = []tls.Certificate{*t.ClientCert}
	}
	return c
}

// upstreamTLSID identifies an upstream TLS configuration for change
// detection (connection pools and health checks are rebuilt when it
// changes).
func upstreamTLSID(t *config.UpstreamTLS) string {
	if t == nil {
		return ""
	}
	return strings.Join([]string{t.CA, t.ServerName, t.Cert, t.Key, boolString(t.InsecureSkipVerify)}, "\x00")
}

func boolString(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
