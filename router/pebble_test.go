package router

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// pebbleCA is an in-process ACME CA (Let's Encrypt's Pebble test server):
// the ACME API on an httptest TLS server, a validation authority that
// answers challenges on fixed ports of 127.0.0.1, and a DNS server that
// resolves every *.test name to 127.0.0.1. It records every new-order
// request, so a test can tell which names edge asked certificates for.
type pebbleCA struct {
	// dirURL is the ACME directory, for tls.acme.ca.
	dirURL string
	// apiRootsFile is a PEM file holding the ACME API's own TLS
	// certificate, for tls.acme.trusted_roots.
	apiRootsFile string
	// issuedRoots verifies certificates Pebble issued.
	issuedRoots *x509.CertPool
	// issuedRoot is the root of that chain.
	issuedRoot *x509.Certificate

	srv *httptest.Server

	mu     sync.Mutex
	orders [][]string // identifiers of each new-order request, in arrival order
}

// startPebble starts Pebble for an edge whose plain-HTTP listener is on
// 127.0.0.1:httpPort (HTTP-01) and HTTPS listener on 127.0.0.1:tlsPort
// (TLS-ALPN-01). Pebble's validation authority dials those ports for
// every name, so edge must be configured with them before it starts
// (see freePort). Set PEBBLE_DEBUG=1 to see Pebble's log.
func startPebble(t *testing.T, httpPort, tlsPort int) *pebbleCA {
	t.Helper()
	// Validate at once instead of after a random 0–5 s sleep, and never
	// reject a good nonce (certmagic retries them, but it costs time).
	// Read by va.New and wfe.New.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")

	logOut := io.Discard
	if os.Getenv("PEBBLE_DEBUG") == "1" {
		logOut = os.Stderr
	}
	logger := log.New(logOut, "pebble ", log.LstdFlags)

	dnsAddr := startPebbleDNS(t)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 1, 1)
	api := front.Handler()

	p := &pebbleCA{}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			p.recordOrder(body)
		}
		api.ServeHTTP(w, r)
	}))
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	p.srv.StartTLS()
	t.Cleanup(p.stop)

	p.dirURL = p.srv.URL + wfe.DirectoryPath
	p.apiRootsFile = filepath.Join(t.TempDir(), "acme-api-root.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	if err := os.WriteFile(p.apiRootsFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	p.issuedRoot = authority.GetRootCert(0).Cert
	p.issuedRoots = x509.NewCertPool()
	p.issuedRoots.AddCert(p.issuedRoot)
	return p
}

// recordOrder notes the identifiers of a new-order request (a flattened
// JWS whose payload is {"identifiers": [{"type": "dns", "value": …}]}).
func (p *pebbleCA) recordOrder(body []byte) {
	var jws struct {
		Payload string `json:"payload"`
	}
	_ = json.Unmarshal(body, &jws)
	payload, _ := base64.RawURLEncoding.DecodeString(jws.Payload)
	var order struct {
		Identifiers []struct {
			Value string `json:"value"`
		} `json:"identifiers"`
	}
	_ = json.Unmarshal(payload, &order)
	names := []string{}
	for _, id := range order.Identifiers {
		names = append(names, strings.ToLower(id.Value))
	}
	p.mu.Lock()
	p.orders = append(p.orders, names)
	p.mu.Unlock()
}

// orderCount is the number of new-order requests received so far.
func (p *pebbleCA) orderCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.orders)
}

// ordersFor is the number of new-order requests that named name.
func (p *pebbleCA) ordersFor(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, o := range p.orders {
		if slices.Contains(o, strings.ToLower(name)) {
			n++
		}
	}
	return n
}

// orderedNames lists every order's identifiers, for failure messages.
func (p *pebbleCA) orderedNames() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.orders)
}

// stop shuts the ACME API down; later requests to it are refused.
func (p *pebbleCA) stop() { p.srv.Close() }

// startPebbleDNS serves A 127.0.0.1 for every name under .test (and an
// empty answer for other questions) on UDP and TCP of one 127.0.0.1 port:
// Pebble's validation authority asks over TCP.
func startPebbleDNS(t *testing.T) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			if strings.HasSuffix(strings.ToLower(q.Name), ".test.") && q.Qtype == dns.TypeA {
				rr, err := dns.NewRR(q.Name + " 30 IN A 127.0.0.1")
				if err == nil {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		_ = w.WriteMsg(m)
	})
	return serveDNS(t, h)
}

// serveDNS runs handler on an in-process DNS server on one 127.0.0.1 port,
// over UDP and TCP (Pebble's VA and truncated answers use TCP), until the
// test ends, and returns its address.
func serveDNS(t *testing.T, handler dns.Handler) string {
	t.Helper()
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for attempt := 0; ; attempt++ {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	var started sync.WaitGroup
	started.Add(2)
	servers := []*dns.Server{
		{PacketConn: pc, Handler: handler, NotifyStartedFunc: started.Done},
		{Listener: ln, Handler: handler, NotifyStartedFunc: started.Done},
	}
	for _, s := range servers {
		go func() { _ = s.ActivateAndServe() }()
	}
	started.Wait()
	t.Cleanup(func() {
		for _, s := range servers {
			_ = s.Shutdown()
		}
	})
	return pc.LocalAddr().String()
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago, for
// listeners whose port must be known before edge starts (Pebble dials it).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
