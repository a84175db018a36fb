package router

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-router/edge/config"
)

// ---------------------------------------------------------------------------
// Test certificates

// testCA is a local certificate authority that signs test certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of cert
	pool *x509.CertPool
	dir  string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, pool: x509.NewCertPool(), dir: t.TempDir()}
	ca.pool.AddCert(cert)
	ca.file = filepath.Join(ca.dir, name+".pem")
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

func randomSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

func writePEM(t *testing.T, path, typ string, der ...[]byte) {
	t.Helper()
	var b bytes.Buffer
	for _, d := range der {
		_ = pem.Encode(&b, &pem.Block{Type: typ, Bytes: d})
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// keyPair is a certificate and key written as PEM files.
type keyPair struct {
	Cert, Key string // file paths
	leaf      *x509.Certificate
	tls       tls.Certificate
}

// issue signs a certificate for names (the first is also the common name)
// and writes it and its key as base.crt and base.key in the CA's directory.
// A client certificate is for client authentication (mutual TLS).
func (ca *testCA) issue(t *testing.T, base string, client bool, names ...string) keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		// Whole seconds, so the expiry metric can be compared exactly.
		NotAfter:    time.Now().Add(20 * time.Hour).Truncate(time.Second),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	kp := keyPair{Cert: filepath.Join(ca.dir, base+".crt"), Key: filepath.Join(ca.dir, base+".key")}
	writePEM(t, kp.Cert, "CERTIFICATE", der)
	writePEM(t, kp.Key, "PRIVATE KEY", keyDER)
	if kp.leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	if kp.tls, err = tls.LoadX509KeyPair(kp.Cert, kp.Key); err != nil {
		t.Fatal(err)
	}
	return kp
}

// ---------------------------------------------------------------------------
// Edge with TLS

// tlsEdge is a running edge whose log is kept and printed when the test
// fails, and whose Start must not block.
type tlsEdge struct {
	*edgeUnderTest
	logs *lockedBuffer
	once sync.Once
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startTLSEdge(t *testing.T, cfgYAML string, data any) *tlsEdge {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.yaml")
	writeConfig(t, path, cfgYAML, data)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("loading test config: %v\n%s", err, renderConfig(t, cfgYAML, data))
	}
	logs := &lockedBuffer{}
	srv, err := New(cfg, Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- srv.Start() }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Start did not return within 10s\n%s", logs.String())
	}
	e := &tlsEdge{edgeUnderTest: &edgeUnderTest{srv: srv, addr: srv.Addrs()[0].String(), path: path}, logs: logs}
	e.url = "http://" + e.addr
	if a := srv.AdminAddr(); a != nil {
		e.admin = "http://" + a.String()
	}
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("edge log:\n%s", logs.String())
		}
	})
	return e
}

// stop shuts edge down (once).
func (e *tlsEdge) stop() {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.srv.Shutdown(ctx)
	})
}

// listenerAddr is the bound address of the i-th listener of the config.
func (e *tlsEdge) listenerAddr(i int) string { return e.srv.Addrs()[i].String() }

// reload rewrites the config file and reloads it.
func (e *tlsEdge) reload(t *testing.T, cfgYAML string, data any) error {
	t.Helper()
	writeConfig(t, e.path, cfgYAML, data)
	return e.srv.Reload()
}

// ---------------------------------------------------------------------------
// Clients

// handshake connects to addr and completes a TLS handshake with cfg (a
// copy; ServerName is the SNI, empty for none), then closes.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	cfg = cfg.Clone()
	d := &net.Dialer{Timeout: 2 * time.Second}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		return tls.ConnectionState{}, err
	}
	st := c.ConnectionState()
	// Let the server finish its side of the handshake (it reads the
	// client's Finished at its first read) before closing.
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, _ = c.Read(make([]byte, 1))
	return st, nil
}

// anyCert accepts whatever certificate is served, so that a test sees
// which one it is.
func anyCert(serverName string) *tls.Config {
	return &tls.Config{ServerName: serverName, InsecureSkipVerify: true} //nolint:gosec // the test inspects the leaf
}

func verifiedBy(roots *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{ServerName: serverName, RootCAs: roots}
}

// servedLeaf is the certificate edge serves for serverName (any
// certificate accepted), failing the test when the handshake fails.
func servedLeaf(t *testing.T, addr, serverName string) *x509.Certificate {
	t.Helper()
	st, err := handshake(addr, anyCert(serverName))
	if err != nil {
		t.Fatalf("handshake with SNI %q: %v", serverName, err)
	}
	return st.PeerCertificates[0]
}

// waitForCert polls TLS handshakes with SNI serverName, verified against
// roots, until one succeeds, and returns the leaf served.
func waitForCert(t *testing.T, e *tlsEdge, addr, serverName string, roots *x509.CertPool, within time.Duration) *x509.Certificate {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < within {
		st, err := handshake(addr, verifiedBy(roots, serverName))
		if err == nil {
			t.Logf("certificate for %s served after %v", serverName, time.Since(start).Round(time.Millisecond))
			return st.PeerCertificates[0]
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no verified certificate for %s on %s within %v; last handshake error: %v", serverName, addr, within, last)
	return nil
}

// httpsClient sends every request to addr over TLS with SNI serverName,
// verified against roots. Like a browser it offers h2 and http/1.1.
func httpsClient(addr, serverName string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 2 * time.Second}
	return &http.Client{
		Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "tcp", addr)
			},
			TLSClientConfig:   &tls.Config{ServerName: serverName, RootCAs: roots},
			ForceAttemptHTTP2: true,
		},
	}
}

// checkProxiedOverTLS sends GET https://host:port/ to addr and expects the
// node's 200 over HTTP/2 (server.http2 is on by default) with a
// certificate for host.
func checkProxiedOverTLS(t *testing.T, addr, host string, roots *x509.CertPool, node *testNode) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	resp, body := do(t, httpsClient(addr, host, roots), "GET", "https://"+host+":"+port+"/hello", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "node="+node.name+" path=/hello") {
		t.Fatalf("GET https://%s:%s/hello: %d %q, want 200 from node %s", host, port, resp.StatusCode, body, node.name)
	}
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("a client offering h2 and http/1.1 got %s, want HTTP/2.0", resp.Proto)
	}
	if resp.TLS == nil || resp.TLS.PeerCertificates[0].VerifyHostname(host) != nil {
		t.Errorf("served certificate is not for %s", host)
	}
}

// ---------------------------------------------------------------------------
// ACME

// acmeConfig is edge with ACME from Pebble. Data: HTTPPort (0 for no
// plain listener), TLSPort, CA, Roots, Storage, Challenges, Names,
// OnDemand, Hosts (route hosts, YAML flow list items), TLSExtra (more
// lines under tls, indented by two spaces), Node.
const acmeConfig = `
listeners:
{{- if .HTTPPort}}
  - {address: "127.0.0.1:{{.HTTPPort}}"}
{{- end}}
  - {address: "127.0.0.1:{{.TLSPort}}", tls: true}
admin: {address: "127.0.0.1:0"}
tls:
{{- if .TLSExtra}}
{{.TLSExtra}}
{{- end}}
  acme:
    ca: "{{.CA}}"
    email: ops@example.test
    agreed: true
    trusted_roots: "{{.Roots}}"
    storage: "{{.Storage}}"
    challenges: [{{.Challenges}}]
{{- if .Names}}
    names: [{{.Names}}]
{{- end}}
{{- if .OnDemand}}
    on_demand: true
{{- end}}
upstreams:
  app:
    nodes: [{address: "{{.Node}}", name: n0}]
routes:
  - name: app
{{- if .Hosts}}
    match: {hosts: [{{.Hosts}}]}
{{- end}}
    proxy: app
`

func acmeData(p *pebbleCA, node *testNode, httpPort, tlsPort int, storage, challenges string) map[string]any {
	return map[string]any{
		"HTTPPort":   httpPort,
		"TLSPort":    tlsPort,
		"CA":         p.dirURL,
		"Roots":      p.apiRootsFile,
		"Storage":    storage,
		"Challenges": challenges,
		"Node":       node.addr,
	}
}

// Issuance takes about a second with Pebble; allow for a slow CI machine.
const issueWithin = 20 * time.Second

func TestACMEHTTP01(t *testing.T) {
	node := startNode(t, "n0")
	httpPort, tlsPort := freePort(t), freePort(t)
	p := startPebble(t, httpPort, tlsPort)
	d := acmeData(p, node, httpPort, tlsPort, t.TempDir(), "http-01")
	d["Names"] = "app.example.test"
	e := startTLSEdge(t, acmeConfig, d)
	tlsAddr := e.listenerAddr(1)

	leaf := waitForCert(t, e, tlsAddr, "app.example.test", p.issuedRoots, issueWithin)
	if !slices.Equal(leaf.DNSNames, []string{"app.example.test"}) {
		t.Errorf("issued certificate names %v, want [app.example.test]", leaf.DNSNames)
	}
	checkProxiedOverTLS(t, tlsAddr, "app.example.test", p.issuedRoots, node)
	if n := p.ordersFor("app.example.test"); n < 1 {
		t.Errorf("Pebble got no order for app.example.test: %v", p.orderedNames())
	}

	// The managed certificate's expiry is exported like a file's.
	metric := `edge_tls_certificate_expiry_timestamp_seconds{`
	var got string
	waitFor(t, 5*time.Second, "expiry metric of app.example.test", func() bool {
		got = grepLines(scrape(t, e.edgeUnderTest), metric)
		return metricValue(got, `name="app.example.test"`) == float64(leaf.NotAfter.Unix())
	}, func() string { return fmt.Sprintf("want %d, got:\n%s", leaf.NotAfter.Unix(), got) })
}

func TestACMETLSALPN01(t *testing.T) {
	node := startNode(t, "n0")
	tlsPort := freePort(t)
	p := startPebble(t, freePort(t), tlsPort)
	d := acmeData(p, node, 0, tlsPort, t.TempDir(), "tls-alpn-01")
	d["Names"] = "app.example.test"
	e := startTLSEdge(t, acmeConfig, d)
	tlsAddr := e.listenerAddr(0)

	waitForCert(t, e, tlsAddr, "app.example.test", p.issuedRoots, issueWithin)
	checkProxiedOverTLS(t, tlsAddr, "app.example.test", p.issuedRoots, node)

	// A name added by a reload is obtained too.
	d["Names"] = "app.example.test, new.example.test"
	if err := e.reload(t, acmeConfig, d); err != nil {
		t.Fatalf("reload adding a name: %v", err)
	}
	waitForCert(t, e, tlsAddr, "new.example.test", p.issuedRoots, issueWithin)
	checkProxiedOverTLS(t, tlsAddr, "new.example.test", p.issuedRoots, node)
}

func TestCertificateStorageSurvivesRestart(t *testing.T) {
	node := startNode(t, "n0")
	storage := t.TempDir()
	httpPort, tlsPort := freePort(t), freePort(t)
	p := startPebble(t, httpPort, tlsPort)
	d := acmeData(p, node, httpPort, tlsPort, storage, "http-01")
	d["Names"] = "app.example.test"
	first := startTLSEdge(t, acmeConfig, d)
	issued := waitForCert(t, first, first.listenerAddr(1), "app.example.test", p.issuedRoots, issueWithin)
	first.stop()

	// The CA goes away: the second edge can only serve what is stored.
	orders := p.orderCount()
	p.stop()

	d2 := acmeData(p, node, freePort(t), freePort(t), storage, "http-01")
	d2["Names"] = "app.example.test"
	second := startTLSEdge(t, acmeConfig, d2)
	tlsAddr := second.listenerAddr(1)
	leaf := waitForCert(t, second, tlsAddr, "app.example.test", p.issuedRoots, 3*time.Second)
	if leaf.SerialNumber.Cmp(issued.SerialNumber) != 0 {
		t.Fatalf("after a restart edge serves serial %x, want the stored certificate's %x", leaf.SerialNumber, issued.SerialNumber)
	}
	checkProxiedOverTLS(t, tlsAddr, "app.example.test", p.issuedRoots, node)
	if got := p.orderCount(); got != orders {
		t.Fatalf("Pebble got %d new orders after the restart, want 0", got-orders)
	}
}

func TestOnDemandOnlyForAllowedNames(t *testing.T) {
	node := startNode(t, "n0")
	tlsPort := freePort(t)
	p := startPebble(t, freePort(t), tlsPort)
	d := acmeData(p, node, 0, tlsPort, t.TempDir(), "tls-alpn-01")
	d["OnDemand"] = true
	d["Hosts"] = `"*.ok.test"`
	e := startTLSEdge(t, acmeConfig, d)
	tlsAddr := e.listenerAddr(0)

	// Nothing is obtained before a client asks.
	time.Sleep(300 * time.Millisecond)
	if n := p.orderCount(); n != 0 {
		t.Fatalf("Pebble got %d orders before any handshake: %v", n, p.orderedNames())
	}

	leaf := waitForCert(t, e, tlsAddr, "x.ok.test", p.issuedRoots, issueWithin)
	if !slices.Contains(leaf.DNSNames, "x.ok.test") {
		t.Fatalf("on-demand certificate names %v, want x.ok.test", leaf.DNSNames)
	}
	checkProxiedOverTLS(t, tlsAddr, "x.ok.test", p.issuedRoots, node)

	// Names the configuration does not allow get no certificate at all
	// (any certificate is accepted here, so a served one would show).
	for _, name := range []string{"evil.test", "ok.test", "x.ok.test.evil.test"} {
		if st, err := handshake(tlsAddr, anyCert(name)); err == nil {
			t.Errorf("SNI %s: handshake succeeded with a certificate for %v, want a failed handshake", name, st.PeerCertificates[0].DNSNames)
		}
	}
	for _, name := range []string{"evil.test", "ok.test", "x.ok.test.evil.test"} {
		if n := p.ordersFor(name); n != 0 {
			t.Errorf("Pebble got %d orders for %s, want none; orders: %v", n, name, p.orderedNames())
		}
	}
	if n := p.ordersFor("x.ok.test"); n != 1 {
		t.Errorf("Pebble got %d orders for x.ok.test, want 1; orders: %v", n, p.orderedNames())
	}
}

// ---------------------------------------------------------------------------
// Certificates from files

// filesConfig is edge with certificates from files. Data: Certs
// ([]keyPair, the first is the default), Plain (also a plain listener,
// first), TLSExtra (more lines under tls, indented by two spaces), Server
// (a flow mapping for the server section), Node,
// Routes (more routes before the catch-all, indented by two spaces).
const filesConfig = `
listeners:
{{- if .Plain}}
  - {address: "127.0.0.1:0"}
{{- end}}
  - {address: "127.0.0.1:0", tls: true}
admin: {address: "127.0.0.1:0"}
{{- if .Server}}
server: {{.Server}}
{{- end}}
tls:
  certificates:
{{- range .Certs}}
    - {cert: "{{.Cert}}", key: "{{.Key}}"}
{{- end}}
{{- if .TLSExtra}}
{{.TLSExtra}}
{{- end}}
upstreams:
  app:
    nodes: [{address: "{{.Node}}", name: n0}]
routes:
{{- if .Routes}}
{{.Routes}}
{{- end}}
  - name: app
    proxy: app
`

func TestSNISelectsFileCertificates(t *testing.T) {
	node := startNode(t, "n0")
	ca := newTestCA(t, "test-ca")
	def := ca.issue(t, "default", false, "default.example.test")
	wild := ca.issue(t, "wild", false, "*.wild.test")
	exactWild := ca.issue(t, "exact-wild", false, "exact.wild.test")
	a := ca.issue(t, "a", false, "a.example.test")
	e := startTLSEdge(t, filesConfig, map[string]any{
		// The exact name exact.wild.test comes after the wildcard, and
		// still wins over it.
		"Certs": []keyPair{def, wild, exactWild, a},
		"Node":  node.addr,
	})
	addr := e.listenerAddr(0)

	for _, tc := range []struct {
		sni  string
		want keyPair
	}{
		{"a.example.test", a},
		{"A.Example.TEST", a},
		{"b.wild.test", wild},
		{"exact.wild.test", exactWild},
		{"unknown.test", def},
		{"", def}, // no SNI
	} {
		leaf := servedLeaf(t, addr, tc.sni)
		if leaf.SerialNumber.Cmp(tc.want.leaf.SerialNumber) != 0 {
			t.Errorf("SNI %q: got the certificate for %v, want the one for %v", tc.sni, leaf.DNSNames, tc.want.leaf.DNSNames)
		}
	}
	// The served chain verifies, and requests are proxied.
	checkProxiedOverTLS(t, addr, "a.example.test", ca.pool, node)
	checkProxiedOverTLS(t, addr, "b.wild.test", ca.pool, node)
}

func TestBadCertificateOnReloadKeepsOldOne(t *testing.T) {
	node := startNode(t, "n0")
	ca := newTestCA(t, "test-ca")
	old := ca.issue(t, "old", false, "a.example.test")
	next := ca.issue(t, "next", false, "a.example.test")
	data := func(kp keyPair) map[string]any {
		return map[string]any{"Certs": []keyPair{kp}, "Node": node.addr}
	}
	e := startTLSEdge(t, filesConfig, data(old))
	addr := e.listenerAddr(0)
	serves := func(want keyPair, when string) {
		t.Helper()
		if leaf := servedLeaf(t, addr, "a.example.test"); leaf.SerialNumber.Cmp(want.leaf.SerialNumber) != 0 {
			t.Fatalf("%s: edge serves serial %x, want %x", when, leaf.SerialNumber, want.leaf.SerialNumber)
		}
	}
	serves(old, "at start")

	// A key that does not belong to the certificate.
	mismatched := keyPair{Cert: next.Cert, Key: old.Key}
	err := e.reload(t, filesConfig, data(mismatched))
	if err == nil {
		t.Fatal("reload with a certificate and a key that do not match succeeded, want an error")
	}
	if !strings.Contains(err.Error(), next.Cert) && !strings.Contains(err.Error(), old.Key) {
		t.Errorf("reload error does not name the file (%s or %s): %v", next.Cert, old.Key, err)
	}
	serves(old, "after a reload with a mismatched key")

	// A file that does not exist.
	missing := keyPair{Cert: filepath.Join(t.TempDir(), "missing.crt"), Key: next.Key}
	err = e.reload(t, filesConfig, data(missing))
	if err == nil {
		t.Fatal("reload with a missing certificate file succeeded, want an error")
	}
	if !strings.Contains(err.Error(), missing.Cert) {
		t.Errorf("reload error does not name the missing file %s: %v", missing.Cert, err)
	}
	serves(old, "after a reload with a missing file")

	// A good new certificate is served after the reload.
	if err := e.reload(t, filesConfig, data(next)); err != nil {
		t.Fatalf("reload with a good certificate: %v", err)
	}
	serves(next, "after a good reload")

	// Files are read again on every reload, even when the configuration is
	// unchanged (a renewal by another tool writes over them).
	renewed := ca.issue(t, "renewed", false, "a.example.test")
	for _, f := range [][2]string{{renewed.Cert, next.Cert}, {renewed.Key, next.Key}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.srv.Reload(); err != nil {
		t.Fatalf("reload after the files were renewed: %v", err)
	}
	serves(renewed, "after the files were rewritten and reloaded")
	checkProxiedOverTLS(t, addr, "a.example.test", ca.pool, node)
}

func TestRedirectHTTPToHTTPS(t *testing.T) {
	node := startNode(t, "n0")
	httpPort, tlsPort := freePort(t), freePort(t)
	p := startPebble(t, httpPort, tlsPort)
	d := acmeData(p, node, httpPort, tlsPort, t.TempDir(), "http-01")
	d["Names"] = "app.example.test"
	d["TLSExtra"] = "  redirect_http: true"
	e := startTLSEdge(t, acmeConfig, d)
	plain, tlsAddr := e.listenerAddr(0), e.listenerAddr(1)

	// HTTP-01 challenges are answered despite the redirect.
	waitForCert(t, e, tlsAddr, "app.example.test", p.issuedRoots, issueWithin)

	c := testClient()
	before := node.requests.Load()
	for _, tc := range []struct {
		method string
		status int
	}{
		{"GET", 301},
		{"HEAD", 301},
		{"POST", 308},
		{"PUT", 308},
		{"DELETE", 308},
	} {
		var body io.Reader
		if tc.method == "POST" || tc.method == "PUT" {
			body = strings.NewReader("payload")
		}
		resp, _ := do(t, c, tc.method, "http://"+plain+"/path/x?q=1&r=%2F", map[string]string{"Host": "shop.example.test"}, body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s over plain HTTP: status %d, want %d", tc.method, resp.StatusCode, tc.status)
		}
		if loc, want := resp.Header.Get("Location"), "https://shop.example.test/path/x?q=1&r=%2F"; loc != want {
			t.Errorf("%s over plain HTTP: Location %q, want %q", tc.method, loc, want)
		}
	}
	if got := node.requests.Load() - before; got != 0 {
		t.Errorf("the node got %d plain-HTTP requests, want 0 (redirected before any route)", got)
	}

	// An ACME challenge path is never redirected (the token is unknown
	// here, so it is not found).
	resp, _ := do(t, c, "GET", "http://"+plain+"/.well-known/acme-challenge/unknown-token", map[string]string{"Host": "app.example.test"}, nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 || strings.HasPrefix(loc, "https://") {
		t.Errorf("GET /.well-known/acme-challenge/…: %d Location %q, want no redirect", resp.StatusCode, loc)
	}

	// HTTPS requests are proxied, not redirected.
	checkProxiedOverTLS(t, tlsAddr, "app.example.test", p.issuedRoots, node)
}

func TestHSTS(t *testing.T) {
	node := startNode(t, "n0")
	ca := newTestCA(t, "test-ca")
	a := ca.issue(t, "a", false, "a.example.test")
	e := startTLSEdge(t, filesConfig, map[string]any{
		"Certs":    []keyPair{a},
		"Plain":    true,
		"Node":     node.addr,
		"TLSExtra": "  hsts: {max_age: 8760h, include_subdomains: true}",
		"Routes":   "  - {name: fixed, match: {path: /fixed}, respond: {status: 200, body: fixed}}",
	})
	plain, secure := e.listenerAddr(0), e.listenerAddr(1)
	const want = "max-age=31536000; includeSubDomains"

	hc := httpsClient(secure, "a.example.test", ca.pool)
	for _, path := range []string{"/", "/fixed"} {
		resp, _ := do(t, hc, "GET", "https://a.example.test"+path, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET https://a.example.test%s: %d", path, resp.StatusCode)
		}
		if got := resp.Header.Values("Strict-Transport-Security"); len(got) != 1 || got[0] != want {
			t.Errorf("HTTPS %s: Strict-Transport-Security %q, want [%q]", path, got, want)
		}
	}
	for _, path := range []string{"/", "/fixed"} {
		resp, _ := do(t, testClient(), "GET", "http://"+plain+path, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET http://%s%s: %d", plain, path, resp.StatusCode)
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("plain HTTP %s: Strict-Transport-Security %q, want none (RFC 6797 §7.2)", path, got)
		}
	}
}

func TestXForwardedProtoHTTPS(t *testing.T) {
	node := startNode(t, "n0")
	ca := newTestCA(t, "test-ca")
	a := ca.issue(t, "a", false, "a.example.test")
	e := startTLSEdge(t, filesConfig, map[string]any{"Certs": []keyPair{a}, "Plain": true, "Node": node.addr})
	plain, secure := e.listenerAddr(0), e.listenerAddr(1)

	// A client's own claim is replaced (it is not a trusted proxy).
	spoof := map[string]string{"X-Forwarded-Proto": "http", "Forwarded": "proto=http"}
	do(t, httpsClient(secure, "a.example.test", ca.pool), "GET", "https://a.example.test/", spoof, nil)
	h := node.header()
	if got := h.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != "https" {
		t.Errorf("over HTTPS the node saw X-Forwarded-Proto %q, want [https]", got)
	}
	if got := h.Get("Forwarded"); !strings.Contains(got, "proto=https") || strings.Contains(got, "proto=http;") || strings.Count(got, "proto=") != 1 {
		t.Errorf("over HTTPS the node saw Forwarded %q, want one element with proto=https", got)
	}

	do(t, testClient(), "GET", "http://"+plain+"/", map[string]string{"X-Forwarded-Proto": "https"}, nil)
	h = node.header()
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("over plain HTTP the node saw X-Forwarded-Proto %q, want http", got)
	}
	if got := h.Get("Forwarded"); !strings.Contains(got, "proto=http") || strings.Contains(got, "proto=https") {
		t.Errorf("over plain HTTP the node saw Forwarded %q, want proto=http", got)
	}
}

// ---------------------------------------------------------------------------
// TLS to nodes

// tlsNode is an HTTPS node that requires a client certificate signed by
// its CA. /health answers "ok"; anything else "tls-node cn=<client CN>".
type tlsNode struct {
	srv      *httptest.Server
	addr     string
	requests atomic.Int64
	checks   atomic.Int64
}

func startTLSNode(t *testing.T, cert keyPair, clientCAs *x509.CertPool) *tlsNode {
	t.Helper()
	n := &tlsNode{}
	n.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/health" {
			n.checks.Add(1)
			_, _ = io.WriteString(w, "ok")
			return
		}
		n.requests.Add(1)
		fmt.Fprintf(w, "tls-node cn=%s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	n.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert.tls},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
	}
	n.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	n.srv.StartTLS()
	n.addr = n.srv.Listener.Addr().String()
	t.Cleanup(n.srv.Close)
	return n
}

// upstreamTLSConfig is edge on a plain listener in front of one HTTPS node.
// Data: Node, CA, Cert, Key (client certificate; none when empty), Check
// (active health checks), Insecure (insecure_skip_verify).
const upstreamTLSConfigYAML = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app:
    nodes: [{address: "{{.Node}}", name: n0}]
    tls: {server_name: node.test{{if .CA}}, ca: "{{.CA}}"{{end}}{{if .Cert}}, cert: "{{.Cert}}", key: "{{.Key}}"{{end}}{{if .Insecure}}, insecure_skip_verify: true{{end}}}
{{- if .Check}}
    health_check: {path: /health, interval: 200ms, timeout: 200ms, fall: 1, rise: 1}
{{- end}}
routes:
  - name: app
    proxy: app
`

func TestTLSToNodesWithMutualTLS(t *testing.T) {
	ca := newTestCA(t, "test-ca")
	other := newTestCA(t, "other-ca")
	client := ca.issue(t, "edge-client", true, "edge-client")
	node := startTLSNode(t, ca.issue(t, "node", false, "node.test"), ca.pool)

	t.Run("verified with a client certificate", func(t *testing.T) {
		e := startTLSEdge(t, upstreamTLSConfigYAML, map[string]any{
			"Node": node.addr, "CA": ca.file, "Cert": client.Cert, "Key": client.Key, "Check": true,
		})
		resp, body := do(t, testClient(), "GET", e.url+"/x", nil, nil)
		if resp.StatusCode != 200 || body != "tls-node cn=edge-client" {
			t.Fatalf("GET through edge: %d %q, want 200 \"tls-node cn=edge-client\"", resp.StatusCode, body)
		}
		// Health checks go over TLS with the client certificate too: the
		// node counts them, and after them the node is still up (fall: 1,
		// so one failed check would have taken it down).
		checks := node.checks.Load()
		waitFor(t, 5*time.Second, "two health checks over TLS", func() bool { return node.checks.Load() >= checks+2 },
			func() string { return fmt.Sprintf("%+v", poolNow(t, e.edgeUnderTest).Nodes) })
		n, _ := nodeNow(t, e.edgeUnderTest, "n0")
		if n.State != "up" || n.Health != "up" {
			t.Fatalf("node after TLS health checks: state %q health %q (%s), want up", n.State, n.Health, n.Reason)
		}
		if resp, _ := do(t, testClient(), "GET", e.url+"/y", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("GET through edge after health checks: %d", resp.StatusCode)
		}
	})

	t.Run("node certificate from another CA", func(t *testing.T) {
		e := startTLSEdge(t, upstreamTLSConfigYAML, map[string]any{
			"Node": node.addr, "CA": other.file, "Cert": client.Cert, "Key": client.Key,
		})
		before := node.requests.Load()
		if resp, body := do(t, testClient(), "GET", e.url+"/x", nil, nil); resp.StatusCode != 502 {
			t.Fatalf("GET through edge that does not trust the node: %d %q, want 502", resp.StatusCode, body)
		}
		if node.requests.Load() != before {
			t.Fatal("the request reached a node edge does not trust")
		}
	})

	t.Run("insecure_skip_verify trusts any node", func(t *testing.T) {
		e := startTLSEdge(t, upstreamTLSConfigYAML, map[string]any{
			"Node": node.addr, "Cert": client.Cert, "Key": client.Key, "Insecure": true,
		})
		if resp, body := do(t, testClient(), "GET", e.url+"/x", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("GET through edge with insecure_skip_verify: %d %q, want 200", resp.StatusCode, body)
		}
	})

	t.Run("reload changes the node TLS settings", func(t *testing.T) {
		good := map[string]any{"Node": node.addr, "CA": ca.file, "Cert": client.Cert, "Key": client.Key}
		bad := map[string]any{"Node": node.addr, "CA": other.file, "Cert": client.Cert, "Key": client.Key}
		e := startTLSEdge(t, upstreamTLSConfigYAML, good)
		c := testClient()
		if resp, _ := do(t, c, "GET", e.url+"/x", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("GET with the node's CA: %d, want 200", resp.StatusCode)
		}
		// Now edge no longer trusts the node: the kept-alive connection
		// made under the old settings must not carry the next request.
		if err := e.reload(t, upstreamTLSConfigYAML, bad); err != nil {
			t.Fatal(err)
		}
		before := node.requests.Load()
		if resp, _ := do(t, c, "GET", e.url+"/x", nil, nil); resp.StatusCode != 502 {
			t.Errorf("GET after a reload to a CA that does not sign the node: %d, want 502", resp.StatusCode)
		}
		if node.requests.Load() != before {
			t.Errorf("a request reached the node after the reload removed trust in it")
		}
		if err := e.reload(t, upstreamTLSConfigYAML, good); err != nil {
			t.Fatal(err)
		}
		if resp, _ := do(t, c, "GET", e.url+"/x", nil, nil); resp.StatusCode != 200 {
			t.Errorf("GET after a reload back to the node's CA: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("no client certificate", func(t *testing.T) {
		e := startTLSEdge(t, upstreamTLSConfigYAML, map[string]any{"Node": node.addr, "CA": ca.file})
		if resp, body := do(t, testClient(), "GET", e.url+"/x", nil, nil); resp.StatusCode != 502 {
			t.Fatalf("GET through edge without the client certificate the node requires: %d %q, want 502", resp.StatusCode, body)
		}
	})
}

// ---------------------------------------------------------------------------
// Versions and metrics

func TestTLSMinVersion(t *testing.T) {
	node := startNode(t, "n0")
	ca := newTestCA(t, "test-ca")
	a := ca.issue(t, "a", false, "a.example.test")
	tls12 := &tls.Config{ServerName: "a.example.test", RootCAs: ca.pool, MaxVersion: tls.VersionTLS12}
	tls13 := &tls.Config{ServerName: "a.example.test", RootCAs: ca.pool, MinVersion: tls.VersionTLS13}

	strict := startTLSEdge(t, filesConfig, map[string]any{"Certs": []keyPair{a}, "Node": node.addr, "TLSExtra": `  min_version: "1.3"`})
	if st, err := handshake(strict.listenerAddr(0), tls12); err == nil {
		t.Errorf("min_version 1.3: a TLS 1.2 client completed a handshake (version %s), want a failure", tls.VersionName(st.Version))
	}
	if st, err := handshake(strict.listenerAddr(0), tls13); err != nil || st.Version != tls.VersionTLS13 {
		t.Errorf("min_version 1.3: a TLS 1.3 client: %v, version %s", err, tls.VersionName(st.Version))
	}

	def := startTLSEdge(t, filesConfig, map[string]any{"Certs": []keyPair{a}, "Node": node.addr})
	if st, err := handshake(def.listenerAddr(0), tls12); err != nil || st.Version != tls.VersionTLS12 {
		t.Errorf("default min_version: a TLS 1.2 client: %v, version %s; want a TLS 1.2 handshake", err, tls.VersionName(st.Version))
	}
	if st, err := handshake(def.listenerAddr(0), tls13); err != nil || st.Version != tls.VersionTLS13 {
		t.Errorf("default min_version: a TLS 1.3 client: %v, version %s", err, tls.VersionName(st.Version))
	}
	tls11 := &tls.Config{ServerName: "a.example.test", RootCAs: ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if st, err := handshake(def.listenerAddr(0), tls11); err == nil {
		t.Errorf("default min_version: a TLS 1.1 client completed a handshake (version %s), want a failure", tls.VersionName(st.Version))
	}
}

// metricSamples parses the samples of one metric family from a scrape:
// each sample's labels and value.
func metricSamples(scrape, name string) []metricSample {
	var out []metricSample
	for line := range strings.SplitSeq(scrape, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		s := metricSample{labels: map[string]string{}}
		rest := strings.TrimPrefix(line, name)
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndex(rest, "}")
			if end < 0 {
				continue
			}
			for _, m := range labelRE.FindAllStringSubmatch(rest[1:end], -1) {
				s.labels[m[1]] = m[2]
			}
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		s.value, _ = strconv.ParseFloat(fields[0], 64)
		out = append(out, s)
	}
	return out
}

type metricSample struct {
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// metricValue is the value of the first line of lines containing label,
// or -1.
func metricValue(lines, label string) float64 {
	for line := range strings.SplitSeq(lines, "\n") {
		if strings.Contains(line, label) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

func TestTLSMetrics(t *testing.T) {
	node := startNode(t, "n0")
	ca := newTestCA(t, "test-ca")
	a := ca.issue(t, "a", false, "a.example.test")
	e := startTLSEdge(t, filesConfig, map[string]any{"Certs": []keyPair{a}, "Node": node.addr})
	addr := e.listenerAddr(0)

	for _, c := range []*tls.Config{
		{ServerName: "a.example.test", RootCAs: ca.pool, MinVersion: tls.VersionTLS13},
		{ServerName: "a.example.test", RootCAs: ca.pool, MinVersion: tls.VersionTLS13},
		{ServerName: "a.example.test", RootCAs: ca.pool, MaxVersion: tls.VersionTLS12},
	} {
		if _, err := handshake(addr, c); err != nil {
			t.Fatal(err)
		}
	}
	// Failed handshakes: a TLS 1.1 client, and plain HTTP sent to the
	// HTTPS port.
	_, _ = handshake(addr, &tls.Config{ServerName: "a.example.test", InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}) //nolint:gosec // fails anyway
	rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n")

	var body string
	ok := func(check func() string) func() bool {
		return func() bool { body = scrape(t, e.edgeUnderTest); return check() == "" }
	}
	handshakesOK := func() string {
		var v12, v13 float64
		for _, s := range metricSamples(body, "edge_tls_handshakes_total") {
			switch v := s.labels["version"]; {
			case strings.Contains(v, "1.3"):
				v13 += s.value
			case strings.Contains(v, "1.2"):
				v12 += s.value
			}
		}
		if v13 < 2 || v12 < 1 {
			return fmt.Sprintf("edge_tls_handshakes_total by version: 1.3=%v 1.2=%v, want ≥2 and ≥1", v13, v12)
		}
		return ""
	}
	failuresOK := func() string {
		var total float64
		for _, s := range metricSamples(body, "edge_tls_handshake_failures_total") {
			if s.labels["reason"] == "" {
				return "edge_tls_handshake_failures_total sample without a reason label"
			}
			total += s.value
		}
		if total < 2 {
			return fmt.Sprintf("edge_tls_handshake_failures_total sums to %v, want ≥2", total)
		}
		return ""
	}
	waitFor(t, 5*time.Second, "handshake metrics", ok(func() string { return handshakesOK() + failuresOK() }),
		func() string {
			return handshakesOK() + "\n" + failuresOK() + "\n" + grepLines(body, "edge_tls_")
		})

	// Completed handshakes are counted by version and cipher suite;
	// failures have their own metric, by reason (checked above).
	for _, s := range metricSamples(body, "edge_tls_handshakes_total") {
		if s.labels["version"] == "" || s.labels["cipher"] == "" {
			t.Errorf("edge_tls_handshakes_total lacks version or cipher:\n%s", grepLines(body, "edge_tls_handshake"))
			break
		}
	}

	exp := metricSamples(body, "edge_tls_certificate_expiry_timestamp_seconds")
	found := false
	for _, s := range exp {
		if s.labels["name"] == "a.example.test" {
			found = true
			if s.value != float64(a.leaf.NotAfter.Unix()) {
				t.Errorf("expiry of a.example.test: %v, want %d", s.value, a.leaf.NotAfter.Unix())
			}
		}
	}
	if !found {
		t.Errorf("no edge_tls_certificate_expiry_timestamp_seconds{name=\"a.example.test\"}:\n%s", grepLines(body, "edge_tls_"))
	}
}

func TestTLSHandshakeTimeout(t *testing.T) {
	node := startNode(t, "n0")
	ca := newTestCA(t, "test-ca")
	a := ca.issue(t, "a", false, "a.example.test")
	e := startTLSEdge(t, filesConfig, map[string]any{
		"Certs":  []keyPair{a},
		"Node":   node.addr,
		"Server": "{read_header_timeout: 300ms}",
	})
	// A client that starts a handshake and stalls (slow loris on TLS) is
	// closed after read_header_timeout, like one that stalls in its header.
	c, err := net.Dial("tcp", e.listenerAddr(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}); err != nil { // a ClientHello record, cut short
		t.Fatal(err)
	}
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.Copy(io.Discard, c)
	if took := time.Since(start); err != nil || took > 2*time.Second {
		t.Fatalf("stalled handshake: connection closed after %v (%v), want closed after about 300ms", took.Round(time.Millisecond), err)
	}
}
