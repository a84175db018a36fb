// Command tlsload measures full TLS handshakes per second for bench/tls.sh.
//
// wrk with "Connection: close" does open a new connection per request, but it
// resumes the TLS session on each one (it SSL_clear()s and reuses its SSL
// object, which keeps the session). That benchmarks resumption, not handshakes.
// tlsload instead runs -c workers, each in a loop: TCP connect, a full TLS
// handshake (no client session cache, tickets disabled, so never a
// resumption), one GET with "Connection: close", read the whole response,
// close. It runs for -d, then prints one line in bench/run.sh's format:
//
//	requests=N errors=N non2xx=N rps=X p50_us=X p99_us=X p999_us=X resumed=N hs_p50_us=X hs_p99_us=X badsize=N tls=VERSION/CIPHER/GROUP
//
// requests counts completed exchanges (any status), one handshake each, so
// rps is handshakes/s. errors counts failed connects, handshakes, writes,
// reads and timeouts. Latency (p50/p99/p999) runs from connect() to the last
// byte of the body; hs_* is connect() to the end of the handshake. resumed
// counts handshakes the server reported as resumptions (must be 0 unless
// -resume). tls is the version, cipher suite and key exchange group of the
// last handshake.
//
// The key exchange group is X25519 by default (what wrk and curl with
// OpenSSL 3.0 use), so that every server does the same work: a Go server
// would otherwise pick the hybrid post-quantum X25519MLKEM768 that Go
// clients offer first, which OpenSSL 3.0 servers do not implement.
//
// -gencert writes a self-signed ECDSA P-256 certificate and key instead
// (for machines without openssl).
//
// Only loopback targets are accepted.
//
//	go run ./bench/tlsload -addr 127.0.0.1:18443 -c 64 -d 10s
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "", "target host:port (loopback IP only)")
	path := flag.String("path", "/nocache", "request path")
	name := flag.String("name", "bench.test", "TLS server name (SNI) and Host header")
	conns := flag.Int("c", 64, "concurrent workers, one connection at a time each")
	dur := flag.Duration("d", 10*time.Second, "duration")
	size := flag.Int64("size", -1, "expected body size; other sizes count in badsize (-1: any)")
	group := flag.String("group", "x25519", "key exchange group: x25519, p256, or default (Go's own list)")
	resume := flag.Bool("resume", false, "allow session resumption (a shared client session cache)")
	timeout := flag.Duration("timeout", 5*time.Second, "per-exchange timeout")
	genCert := flag.Bool("gencert", false, "write a self-signed ECDSA P-256 certificate for -name to -cert and -key, then exit")
	certOut := flag.String("cert", "cert.pem", "with -gencert: certificate file")
	keyOut := flag.String("key", "key.pem", "with -gencert: key file")
	flag.Parse()

	if *genCert {
		if err := writeCert(*name, *certOut, *keyOut); err != nil {
			fatal("%v", err)
		}
		return
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		fatal("-addr: %v", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		fatal("-addr must be a loopback IP address, got %q", host)
	}
	if *conns < 1 || *dur <= 0 {
		fatal("-c and -d must be positive")
	}

	cfg := &tls.Config{
		ServerName:         *name,
		InsecureSkipVerify: true, // like wrk; bench/tls.sh checks the certificate with curl first
		NextProtos:         []string{"http/1.1"},
	}
	switch *group {
	case "x25519":
		cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	case "p256":
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	case "default":
	default:
		fatal("-group must be x25519, p256 or default")
	}
	if *resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4 * *conns)
	} else {
		cfg.SessionTicketsDisabled = true // and no ClientSessionCache: every handshake is a full one
	}
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *name + "\r\nUser-Agent: tlsload\r\nConnection: close\r\n\r\n")

	var (
		requests, errs, non2xx, resumed, badSize atomic.Int64
		lastTLS                                  atomic.Value
		mu                                       sync.Mutex
		lat, hsLat                               []int64
		firstErr                                 atomic.Value
	)
	start := time.Now()
	deadline := start.Add(*dur)
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			myLat := make([]int64, 0, 4096)
			myHs := make([]int64, 0, 4096)
			br := bufio.NewReaderSize(nil, 16<<10)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				st, hs, code, n, err := exchange(*addr, cfg, req, br, *timeout)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				el := time.Since(t0)
				requests.Add(1)
				if st.DidResume {
					resumed.Add(1)
				}
				if code < 200 || code > 299 {
					non2xx.Add(1)
				}
				if *size >= 0 && n != *size {
					badSize.Add(1)
				}
				lastTLS.Store(strings.Replace(tls.VersionName(st.Version), " ", "v", 1) + "/" + tls.CipherSuiteName(st.CipherSuite) + "/" + st.CurveID.String())
				myLat = append(myLat, el.Microseconds())
				myHs = append(myHs, hs.Microseconds())
			}
			mu.Lock()
			lat = append(lat, myLat...)
			hsLat = append(hsLat, myHs...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	slices.Sort(hsLat)
	tlsDesc, _ := lastTLS.Load().(string)
	if tlsDesc == "" {
		tlsDesc = "-"
	}
	if e, ok := firstErr.Load().(string); ok {
		fmt.Fprintf(os.Stderr, "tlsload: %d errors, first: %s\n", errs.Load(), e)
	}
	fmt.Printf("requests=%d errors=%d non2xx=%d rps=%.0f p50_us=%d p99_us=%d p999_us=%d resumed=%d hs_p50_us=%d hs_p99_us=%d badsize=%d tls=%s\n",
		requests.Load(), errs.Load(), non2xx.Load(), float64(requests.Load())/elapsed.Seconds(),
		pct(lat, 50), pct(lat, 99), pct(lat, 99.9), resumed.Load(), pct(hsLat, 50), pct(hsLat, 99), badSize.Load(), tlsDesc)
}

// exchange does one connection: connect, handshake, one request, the whole
// response, close. It returns the TLS state, the time to the end of the
// handshake, the status code and the body size.
func exchange(addr string, cfg *tls.Config, req []byte, br *bufio.Reader, timeout time.Duration) (tls.ConnectionState, time.Duration, int, int64, error) {
	t0 := time.Now()
	raw, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return tls.ConnectionState{}, 0, 0, 0, err
	}
	defer raw.Close()
	if err := raw.SetDeadline(t0.Add(timeout)); err != nil {
		return tls.ConnectionState{}, 0, 0, 0, err
	}
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		return tls.ConnectionState{}, 0, 0, 0, fmt.Errorf("handshake: %w", err)
	}
	hs := time.Since(t0)
	if _, err := c.Write(req); err != nil {
		return tls.ConnectionState{}, 0, 0, 0, fmt.Errorf("write: %w", err)
	}
	br.Reset(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return tls.ConnectionState{}, 0, 0, 0, fmt.Errorf("read: %w", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return tls.ConnectionState{}, 0, 0, 0, fmt.Errorf("read body: %w", err)
	}
	return c.ConnectionState(), hs, resp.StatusCode, n, nil
}

// pct is the p-th percentile of sorted values (0 when empty).
func pct(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// writeCert writes a self-signed ECDSA P-256 certificate for name, valid
// for two days.
func writeCert(name, certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tlsload: "+format+"\n", args...)
	os.Exit(2)
}
