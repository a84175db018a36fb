package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// certSpec describes a self-signed test certificate.
type certSpec struct {
	cn       string
	dns      []string
	notAfter time.Time // zero: a day from now
}

// testPair is a certificate and key written to PEM files.
type testPair struct {
	cert, key string // file paths
}

// writePair generates a self-signed ECDSA certificate and writes it and
// its key to name.pem and name.key in dir.
func writePair(t *testing.T, dir, name string, spec certSpec) testPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notAfter := spec.notAfter
	if notAfter.IsZero() {
		notAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: spec.cn},
		DNSNames:              spec.dns,
		NotBefore:             notAfter.Add(-48 * time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := testPair{cert: filepath.Join(dir, name+".pem"), key: filepath.Join(dir, name+".key")}
	writeFile(t, p.cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, p.key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return p
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// httpsBase has a plain and an HTTPS listener, an upstream and a route
// for example.com.
const httpsBase = `listeners:
  - address: ":8080"
  - address: ":8443"
    tls: true
upstreams:
  app:
    nodes: [{address: "10.0.0.1:80"}]
routes:
  - match: {hosts: [example.com, "*.apps.example.com"]}
    proxy: app
`

// parseTLS parses httpsBase (unless src has its own listeners) followed by
// src, and returns the config or the problems.
func parseTLS(t *testing.T, src string) (*Config, []Problem) {
	t.Helper()
	if !strings.Contains(src, "listeners:") {
		src = httpsBase + src
	}
	cfg, err := Parse([]byte(src), "tls.yaml", nil)
	if err != nil {
		return nil, problemsOf(t, err)
	}
	return cfg, nil
}

// wantProblem fails unless ps has a problem at path containing every msg.
func wantProblem(t *testing.T, ps []Problem, path string, msgs ...string) {
	t.Helper()
	for _, p := range ps {
		if p.Path != path {
			continue
		}
		ok := true
		for _, m := range msgs {
			ok = ok && strings.Contains(p.Msg, m)
		}
		if ok {
			return
		}
	}
	t.Errorf("no problem at %s containing %q; got:\n%s", path, msgs, formatProblems(ps))
}

func formatProblems(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  line %d: %s: %s\n", p.Line, p.Path, p.Msg)
	}
	return b.String()
}

func TestTLSDefaults(t *testing.T) {
	cfg := mustParse(t, "watch: true\n", nil)
	if cfg.TLS.MinVersion != "1.2" || cfg.TLS.ACME != nil || cfg.TLS.RedirectHTTP || cfg.TLS.HSTS != (HSTS{}) {
		t.Errorf("TLS = %+v", cfg.TLS)
	}
	cfg, ps := parseTLS(t, "tls:\n  acme: {agreed: true}\n")
	if ps != nil {
		t.Fatal(formatProblems(ps))
	}
	a := cfg.TLS.ACME
	if a.CA != "https://acme-v02.api.letsencrypt.org/directory" || a.Storage != "/var/lib/edge/certificates" ||
		a.FromRoutes == nil || !*a.FromRoutes || a.OnDemand || a.RootPool != nil {
		t.Errorf("ACME = %+v", a)
	}
	if want := []string{"http-01", "tls-alpn-01"}; !reflect.DeepEqual(a.Challenges, want) {
		t.Errorf("Challenges = %q, want %q", a.Challenges, want)
	}

	// Explicit values are kept, and validated as written.
	cfg, ps = parseTLS(t, "tls:\n  min_version: '1.3'\n  acme: {agreed: true, from_routes: false, names: [WWW.Example.COM], challenges: [TLS-ALPN-01], ca: 'https://ca.internal/dir', storage: /tmp/certs}\n")
	if ps != nil {
		t.Fatal(formatProblems(ps))
	}
	a = cfg.TLS.ACME
	if cfg.TLS.MinVersion != "1.3" || *a.FromRoutes || a.CA != "https://ca.internal/dir" || a.Storage != "/tmp/certs" {
		t.Errorf("TLS = %+v, ACME = %+v", cfg.TLS, a)
	}
	if !reflect.DeepEqual(a.Names, []string{"www.example.com"}) || !reflect.DeepEqual(a.Challenges, []string{"tls-alpn-01"}) {
		t.Errorf("names %q, challenges %q: want them lower-cased", a.Names, a.Challenges)
	}

	_, ps = parseTLS(t, "tls:\n  min_version: ''\n  acme: {agreed: true, ca: '', storage: '', challenges: []}\n")
	wantProblem(t, ps, "tls.min_version", `must be "1.2" or "1.3", got ""`)
	wantProblem(t, ps, "tls.acme.ca", "URL is required")
	wantProblem(t, ps, "tls.acme.storage", "directory is required")
	wantProblem(t, ps, "tls.acme.challenges", "at least one challenge type")

	// A from_routes given as null is absent.
	cfg, ps = parseTLS(t, "tls:\n  acme: {agreed: true, from_routes: null}\n")
	if ps != nil || !*cfg.TLS.ACME.FromRoutes {
		t.Errorf("from_routes: null: %v %s", cfg.TLS.ACME.FromRoutes, formatProblems(ps))
	}
}

func TestTLSCertificates(t *testing.T) {
	dir := t.TempDir()
	a := writePair(t, dir, "a", certSpec{cn: "ignored", dns: []string{"Example.COM", "*.example.com", "example.com"}})
	b := writePair(t, dir, "b", certSpec{cn: "Legacy.Example.NET"})
	c := writePair(t, dir, "c", certSpec{})
	old := writePair(t, dir, "old", certSpec{dns: []string{"old.example.com"}, notAfter: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)})
	missing := filepath.Join(dir, "missing.pem")

	t.Run("valid pairs load", func(t *testing.T) {
		src := fmt.Sprintf("tls:\n  certificates:\n    - {cert: %q, key: %q}\n    - {cert: %q, key: %q}\n    - {cert: %q, key: %q}\n",
			a.cert, a.key, b.cert, b.key, c.cert, c.key)
		cfg, ps := parseTLS(t, src)
		if ps != nil {
			t.Fatal(formatProblems(ps))
		}
		certs := cfg.TLS.Certificates
		for i, want := range [][]string{{"example.com", "*.example.com"}, {"legacy.example.net"}, nil} {
			cf := certs[i]
			if !reflect.DeepEqual(cf.Names, want) {
				t.Errorf("certificates[%d].Names = %q, want %q", i, cf.Names, want)
			}
			if cf.Loaded == nil || cf.Loaded.Leaf == nil || cf.Loaded.PrivateKey == nil || len(cf.Loaded.Certificate) != 1 {
				t.Fatalf("certificates[%d].Loaded = %+v", i, cf.Loaded)
			}
		}
		if got := certs[0].Loaded.Leaf.DNSNames; !reflect.DeepEqual(got, []string{"Example.COM", "*.example.com", "example.com"}) {
			t.Errorf("leaf DNS names = %q", got)
		}
		// Validate again: the same result, loaded afresh.
		prev := certs[0].Loaded
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if certs[0].Loaded == prev || certs[0].Loaded == nil {
			t.Error("Validate did not reload the certificate")
		}
	})

	tests := []struct {
		name      string
		cert, key string
		path      string
		msgs      []string
	}{
		{"missing cert", missing, a.key, "tls.certificates[0].cert", []string{"reading cert file " + missing + ": no such file"}},
		{"missing key", a.cert, missing, "tls.certificates[0].key", []string{"reading key file " + missing + ": no such file"}},
		{"cert required", "", a.key, "tls.certificates[0].cert", []string{"required"}},
		{"key required", a.cert, "", "tls.certificates[0].key", []string{"required"}},
		{"mismatched pair", a.cert, b.key, "tls.certificates[0]", []string{a.cert, b.key, "do not match"}},
		{"expired", old.cert, old.key, "tls.certificates[0].cert", []string{"certificate expired on 2020-01-02 03:04:05 UTC"}},
		{"swapped", a.key, a.cert, "tls.certificates[0].cert", []string{"no certificate in " + a.key, "swapped"}},
		{"directory", dir, a.key, "tls.certificates[0].cert", []string{"reading cert file " + dir + ": not a regular file"}},
		{"device", "/dev/zero", a.key, "tls.certificates[0].cert", []string{"not a regular file"}},
		{"key is a certificate", a.cert, b.cert, "tls.certificates[0].key", []string{"reading key file " + b.cert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fmt.Sprintf("tls:\n  certificates:\n    - {cert: %q, key: %q}\n    - {cert: %q, key: %q}\n", c.cert, c.key, tt.cert, tt.key)
			_, ps := parseTLS(t, src)
			wantProblem(t, ps, strings.Replace(tt.path, "[0]", "[1]", 1), tt.msgs...)
			if len(ps) != 1 {
				t.Errorf("want exactly one problem, got:\n%s", formatProblems(ps))
			}
		})
	}

	t.Run("every problem with a line", func(t *testing.T) {
		src := fmt.Sprintf("tls:\n  certificates:\n    - cert: %q\n      key: %q\n    - cert: %q\n      key: %q\n", missing, missing, a.cert, b.key)
		_, ps := parseTLS(t, src)
		base := strings.Count(httpsBase, "\n")
		want := []Problem{
			{Path: "tls.certificates[0].cert", Line: base + 3},
			{Path: "tls.certificates[0].key", Line: base + 4},
			{Path: "tls.certificates[1]", Line: base + 5},
		}
		if len(ps) != len(want) {
			t.Fatalf("got:\n%s", formatProblems(ps))
		}
		for i, w := range want {
			if ps[i].Path != w.Path || ps[i].Line != w.Line {
				t.Errorf("problem %d = %s at line %d, want %s at line %d", i, ps[i].Path, ps[i].Line, w.Path, w.Line)
			}
		}
	})
}

func TestTLSListeners(t *testing.T) {
	_, ps := parseTLS(t, "listeners: [{address: ':80'}, {address: ':443', tls: true}]\n")
	wantProblem(t, ps, "listeners[1].tls", "an HTTPS listener needs tls.certificates or tls.acme")

	_, ps = parseTLS(t, "listeners: [{address: ':80'}]\ntls: {redirect_http: true, hsts: {max_age: 1h}, acme: {agreed: true, names: [a.example.com]}}\n")
	wantProblem(t, ps, "tls.redirect_http", "no listener has tls: true")
	wantProblem(t, ps, "tls.hsts.max_age", "no listener has tls: true")
	wantProblem(t, ps, "tls.acme", "no listener has tls: true")

	cfg, ps := parseTLS(t, "tls: {redirect_http: true, hsts: {max_age: 8760h, include_subdomains: true, preload: true}, acme: {agreed: true}}\n")
	if ps != nil {
		t.Fatal(formatProblems(ps))
	}
	if !cfg.Listeners[1].TLS || cfg.Listeners[0].TLS || !cfg.TLS.RedirectHTTP || cfg.TLS.HSTS.MaxAge != Duration(8760*time.Hour) {
		t.Errorf("config = %+v", cfg)
	}
}

func TestHSTS(t *testing.T) {
	_, ps := parseTLS(t, "tls: {acme: {agreed: true}, hsts: {include_subdomains: true, preload: true}}\n")
	wantProblem(t, ps, "tls.hsts.include_subdomains", "requires hsts.max_age greater than 0")
	wantProblem(t, ps, "tls.hsts.preload", "requires hsts.max_age greater than 0")
	_, ps = parseTLS(t, "tls: {acme: {agreed: true}, hsts: {max_age: -1s}}\n")
	if len(ps) == 0 || !strings.HasPrefix(ps[0].Path, "tls.hsts.max_age") {
		t.Errorf("a negative max_age was accepted: %s", formatProblems(ps))
	}

	// In code, where Duration's parser is not involved.
	c := Config{TLS: TLS{HSTS: HSTS{MaxAge: -1, Preload: true}}}
	c.applyDefaults(nil)
	c.Listeners[0].TLS = true
	c.TLS.ACME = &ACME{Agreed: true, Names: []string{"a.example.com"}}
	c.applyDefaults(nil)
	ps = problemsOf(t, c.Validate())
	wantProblem(t, ps, "tls.hsts.max_age", "must not be negative")
	wantProblem(t, ps, "tls.hsts.preload", "requires hsts.max_age")
}

func TestACME(t *testing.T) {
	dir := t.TempDir()
	root := writePair(t, dir, "root", certSpec{cn: "Test Root"})
	second := writePair(t, dir, "second", certSpec{cn: "Second Root"})
	bundle := filepath.Join(dir, "bundle.pem")
	rootPEM, _ := os.ReadFile(root.cert)
	secondPEM, _ := os.ReadFile(second.cert)
	writeFile(t, bundle, string(rootPEM)+string(secondPEM))
	missing := filepath.Join(dir, "missing.pem")

	t.Run("trusted roots", func(t *testing.T) {
		cfg, ps := parseTLS(t, fmt.Sprintf("tls:\n  acme: {agreed: true, trusted_roots: %q}\n", bundle))
		if ps != nil {
			t.Fatal(formatProblems(ps))
		}
		pool := cfg.TLS.ACME.RootPool
		if pool == nil {
			t.Fatal("RootPool not set")
		}
		leaf, _ := pem.Decode(secondPEM)
		crt, err := x509.ParseCertificate(leaf.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := crt.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
			t.Errorf("the second root is not in the pool: %v", err)
		}
		cfg.TLS.ACME.TrustedRoots = ""
		if err := cfg.Validate(); err != nil || cfg.TLS.ACME.RootPool != nil {
			t.Errorf("RootPool kept after trusted_roots was removed (err %v)", err)
		}
	})

	tests := []struct {
		name string
		acme string
		path string
		msg  string
	}{
		{"not agreed", "{}", "tls.acme.agreed", "must be true to accept the CA's terms of service"},
		{"agreed false", "{agreed: false}", "tls.acme.agreed", "must be true"},
		{"relative ca", "{agreed: true, ca: /directory}", "tls.acme.ca", "absolute http or https URL"},
		{"ftp ca", "{agreed: true, ca: 'ftp://ca.internal/dir'}", "tls.acme.ca", "absolute http or https URL"},
		{"ca without host", "{agreed: true, ca: 'https:///dir'}", "tls.acme.ca", "absolute http or https URL"},
		{"bad email", "{agreed: true, email: admin}", "tls.acme.email", `invalid email "admin"`},
		{"email without local part", "{agreed: true, email: '@example.com'}", "tls.acme.email", "invalid email"},
		{"mailto email", "{agreed: true, email: 'mailto:a@example.com'}", "tls.acme.email", "mailto"},
		{"wildcard name", "{agreed: true, names: ['*.example.com']}", "tls.acme.names[0]", "wildcard certificates need the DNS-01 challenge, which edge does not offer; use on_demand with a route wildcard instead"},
		{"ip name", "{agreed: true, names: [10.0.0.1]}", "tls.acme.names[0]", "not an IP address"},
		{"ipv6 name", "{agreed: true, names: ['::1']}", "tls.acme.names[0]", "not an IP address"},
		{"name with port", "{agreed: true, names: ['a.example.com:443']}", "tls.acme.names[0]", "without a port"},
		{"url name", "{agreed: true, names: ['https://a.example.com']}", "tls.acme.names[0]", "not a URL"},
		{"invalid name", "{agreed: true, names: [a..b]}", "tls.acme.names[0]", "invalid host name"},
		{"empty name", "{agreed: true, names: ['']}", "tls.acme.names[0]", "empty"},
		{"duplicate name", "{agreed: true, names: [a.example.com, A.Example.com]}", "tls.acme.names[1]", "duplicate name"},
		{"unknown challenge", "{agreed: true, challenges: [dns-01]}", "tls.acme.challenges[0]", `unknown challenge type "dns-01"`},
		{"duplicate challenge", "{agreed: true, challenges: [http-01, http-01]}", "tls.acme.challenges[1]", "duplicate"},
		{"empty challenges", "{agreed: true, challenges: []}", "tls.acme.challenges", "at least one"},
		{"empty storage", "{agreed: true, storage: ''}", "tls.acme.storage", "required"},
		{"missing trusted roots", fmt.Sprintf("{agreed: true, trusted_roots: %q}", missing), "tls.acme.trusted_roots", "reading trusted roots file " + missing + ": no such file"},
		{"trusted roots without certificates", fmt.Sprintf("{agreed: true, trusted_roots: %q}", root.key), "tls.acme.trusted_roots", "no certificate in " + root.key},
		{"eab without key_id", "{agreed: true, eab: {mac_key: YWJj}}", "tls.acme.eab.key_id", "required"},
		{"eab without mac_key", "{agreed: true, eab: {key_id: kid}}", "tls.acme.eab.mac_key", "required"},
		{"eab standard base64", "{agreed: true, eab: {key_id: kid, mac_key: 'a+b/'}}", "tls.acme.eab.mac_key", "base64url"},
		{"eab not base64", "{agreed: true, eab: {key_id: kid, mac_key: 'not base64!'}}", "tls.acme.eab.mac_key", "base64url"},
		{"eab empty", "{agreed: true, eab: {}}", "tls.acme.eab.key_id", "required"},
		{"http-01 only without a plain listener", "{agreed: true, challenges: [http-01]}", "tls.acme.challenges", "plain-HTTP listener"},
		{"nothing to manage", "{agreed: true, from_routes: false}", "tls.acme", "no names to manage"},
		{"on demand without wildcards", "{agreed: true, on_demand: true}", "tls.acme", "no names to manage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "tls:\n  acme: " + tt.acme + "\n"
			switch {
			case strings.Contains(tt.name, "plain listener"):
				src = strings.Replace(httpsBase, "  - address: \":8080\"\n", "", 1) + src
			case strings.Contains(tt.name, "without wildcards"):
				src = "listeners: [{address: ':443', tls: true}]\n" + src + "routes: [{match: {hosts: [10.0.0.1]}, respond: {}}]\n"
			}
			_, ps := parseTLS(t, src)
			wantProblem(t, ps, tt.path, tt.msg)
		})
	}

	t.Run("mac_key is not quoted in problems", func(t *testing.T) {
		_, ps := parseTLS(t, "tls:\n  acme: {agreed: true, eab: {key_id: kid, mac_key: 'SECRET!'}}\n")
		for _, p := range ps {
			if strings.Contains(p.Msg, "SECRET") {
				t.Errorf("problem quotes the key: %s", p.Msg)
			}
		}
	})

	cfg, ps := parseTLS(t, "tls:\n  acme: {agreed: true, eab: {key_id: kid, mac_key: 'YWJjZA=='}}\n")
	if ps != nil {
		t.Fatalf("padded mac_key refused:\n%s", formatProblems(ps))
	}
	if got := cfg.TLS.ACME.EAB.MACKey; got != "YWJjZA" {
		t.Errorf("mac_key = %q, want the padding removed", got)
	}

	valid := []string{
		"{agreed: true, eab: {key_id: kid, mac_key: 'YWJjZA'}}",
		"{agreed: true, eab: {key_id: kid, mac_key: 'YWJjZA=='}}",
		"{agreed: true, eab: {key_id: kid, mac_key: '-_-_'}}",
		"{agreed: true, email: admin@example.com, ca: 'http://localhost:14000/dir'}",
		"{agreed: true, names: [a.example.com, localhost], from_routes: false}",
		"{agreed: true, from_routes: false, on_demand: true, challenges: [tls-alpn-01]}",
		"{agreed: true, challenges: [http-01]}",
	}
	for _, src := range valid {
		if _, ps := parseTLS(t, "tls:\n  acme: "+src+"\n"); ps != nil {
			t.Errorf("%s refused:\n%s", src, formatProblems(ps))
		}
	}
}

func TestUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	ca := writePair(t, dir, "ca", certSpec{cn: "Upstream CA"})
	client := writePair(t, dir, "client", certSpec{cn: "edge"})
	other := writePair(t, dir, "other", certSpec{cn: "other"})
	missing := filepath.Join(dir, "missing.pem")
	up := func(tls string) string {
		return "upstreams:\n  app:\n    nodes: [{address: '10.0.0.1:443'}]\n    tls: " + tls + "\n"
	}

	cfg := mustParse(t, up(fmt.Sprintf("{ca: %q, cert: %q, key: %q, server_name: app.internal}", ca.cert, client.cert, client.key)), nil)
	ut := cfg.Upstreams["app"].TLS
	if ut.RootPool == nil || ut.ClientCert == nil || ut.ClientCert.Leaf == nil || ut.ClientCert.Leaf.Subject.CommonName != "edge" {
		t.Errorf("upstream TLS = %+v", ut)
	}
	cfg = mustParse(t, up("{}"), nil)
	if ut := cfg.Upstreams["app"].TLS; ut == nil || ut.RootPool != nil || ut.ClientCert != nil {
		t.Errorf("empty upstream TLS = %+v", ut)
	}
	mustParse(t, up("{insecure_skip_verify: true, server_name: 10.0.0.1}"), nil)
	mustParse(t, up("{server_name: 'app.internal.'}"), nil)

	tests := []struct {
		name, tls, path string
		msgs            []string
	}{
		{"ca with insecure", fmt.Sprintf("{ca: %q, insecure_skip_verify: true}", ca.cert), "upstreams.app.tls.ca", []string{"ca is ignored with insecure_skip_verify"}},
		{"missing ca", fmt.Sprintf("{ca: %q}", missing), "upstreams.app.tls.ca", []string{"reading CA file " + missing + ": no such file"}},
		{"ca without certificates", fmt.Sprintf("{ca: %q}", ca.key), "upstreams.app.tls.ca", []string{"no certificate in"}},
		{"cert without key", fmt.Sprintf("{cert: %q}", client.cert), "upstreams.app.tls.key", []string{"a key is required with cert"}},
		{"key without cert", fmt.Sprintf("{key: %q}", client.key), "upstreams.app.tls.cert", []string{"a cert is required with key"}},
		{"missing client cert", fmt.Sprintf("{cert: %q, key: %q}", missing, client.key), "upstreams.app.tls.cert", []string{"reading cert file " + missing}},
		{"mismatched client pair", fmt.Sprintf("{cert: %q, key: %q}", client.cert, other.key), "upstreams.app.tls", []string{client.cert, other.key, "do not match"}},
		{"server name with port", "{server_name: 'app.internal:443'}", "upstreams.app.tls.server_name", []string{"without a port"}},
		{"wildcard server name", "{server_name: '*.internal'}", "upstreams.app.tls.server_name", []string{"not a wildcard"}},
		{"invalid server name", "{server_name: 'a b'}", "upstreams.app.tls.server_name", []string{"invalid server name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(up(tt.tls)), "t.yaml", nil)
			ps := problemsOf(t, err)
			wantProblem(t, ps, tt.path, tt.msgs...)
			if len(ps) != 1 {
				t.Errorf("want one problem, got:\n%s", formatProblems(ps))
			}
		})
	}
}

func TestManagedNames(t *testing.T) {
	routes := "routes:\n" +
		"  - match: {hosts: [Example.com, '*.apps.example.com', www.example.com, 10.0.0.1]}\n    respond: {}\n" +
		"  - match: {hosts: [api.example.com, example.com]}\n    respond: {}\n" +
		"  - respond: {}\n"
	tests := []struct {
		name string
		tls  string
		want []string
	}{
		{"acme off", "tls: {}\n", nil},
		{"from routes", "tls: {acme: {agreed: true}}\n",
			[]string{"api.example.com", "example.com", "www.example.com"}},
		{"names and routes", "tls: {acme: {agreed: true, names: [Z.example.org, api.example.com]}}\n",
			[]string{"api.example.com", "example.com", "www.example.com", "z.example.org"}},
		{"names only", "tls: {acme: {agreed: true, from_routes: false, names: [b.example.org, a.example.org]}}\n",
			[]string{"a.example.org", "b.example.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "listeners: [{address: ':80'}, {address: ':443', tls: true}]\n" + tt.tls + routes
			if tt.want == nil {
				src = "listeners: [{address: ':80'}]\n" + tt.tls + routes
			}
			cfg := mustParse(t, src, nil)
			if got := cfg.ManagedNames(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ManagedNames() = %q, want %q", got, tt.want)
			}
		})
	}

	// In code, without defaults: a nil from_routes means true.
	c := &Config{
		TLS:    TLS{ACME: &ACME{Names: []string{"B.example.com"}}},
		Routes: []*Route{nil, {Match: Match{Hosts: []string{"A.example.com", "*.x.example.com"}}}},
	}
	if got, want := c.ManagedNames(), []string{"a.example.com", "b.example.com"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ManagedNames() = %q, want %q", got, want)
	}
}

func TestOnDemandAllowed(t *testing.T) {
	const routes = "routes:\n" +
		"  - match: {hosts: [example.com, '*.apps.example.com', 10.0.0.1]}\n    respond: {}\n"
	const listeners = "listeners: [{address: ':80'}, {address: ':443', tls: true}]\n"
	on := mustParse(t, listeners+"tls: {acme: {agreed: true, on_demand: true, names: [extra.example.org]}}\n"+routes, nil)
	noRoutes := mustParse(t, listeners+"tls: {acme: {agreed: true, on_demand: true, from_routes: false, names: [extra.example.org]}}\n"+routes, nil)
	off := mustParse(t, listeners+"tls: {acme: {agreed: true, names: [extra.example.org]}}\n"+routes, nil)
	noACME := mustParse(t, "listeners: [{address: ':80'}]\n"+routes, nil)
	if noACME.OnDemandAllowed("example.com") || noACME.OnDemandAllowed("a.apps.example.com") {
		t.Error("allowed without acme")
	}

	tests := []struct {
		name                      string
		wantOn, wantNoRoutes, off bool
	}{
		{"example.com", true, false, false},
		{"EXAMPLE.COM", true, false, false},
		{"extra.example.org", true, true, false},
		{"Extra.Example.Org", true, true, false},
		{"a.apps.example.com", true, true, false},
		{"a.b.apps.example.com", true, true, false},
		{"A.Apps.Example.Com", true, true, false},
		{"apps.example.com", false, false, false},
		{".apps.example.com", false, false, false},
		{"xapps.example.com", false, false, false},
		{"www.example.com", false, false, false},
		{"other.org", false, false, false},
		{"example.com:443", false, false, false},
		{"a.apps.example.com:443", false, false, false},
		{"10.0.0.1", false, false, false},
		{"::1", false, false, false},
		{"[::1]", false, false, false},
		{"*.apps.example.com", false, false, false},
		{"example.com.", false, false, false},
		{"", false, false, false},
		{"a b.apps.example.com", false, false, false},
	}
	for _, tt := range tests {
		if got := on.OnDemandAllowed(tt.name); got != tt.wantOn {
			t.Errorf("on_demand: OnDemandAllowed(%q) = %v, want %v", tt.name, got, tt.wantOn)
		}
		if got := noRoutes.OnDemandAllowed(tt.name); got != tt.wantNoRoutes {
			t.Errorf("from_routes false: OnDemandAllowed(%q) = %v, want %v", tt.name, got, tt.wantNoRoutes)
		}
		if got := off.OnDemandAllowed(tt.name); got != tt.off {
			t.Errorf("on_demand off: OnDemandAllowed(%q) = %v, want %v", tt.name, got, tt.off)
		}
	}
}

func TestTLSDerivedFieldsNotInYAML(t *testing.T) {
	// The YAML names of the fields Validate sets stay out of the file.
	for _, typ := range []string{"config.CertificateFile", "config.ACME", "config.UpstreamTLS"} {
		for _, f := range yamlFields(typ) {
			switch f {
			case "loaded", "names", "rootpool", "clientcert":
				if typ != "config.ACME" || f != "names" {
					t.Errorf("%s has a YAML field %q", typ, f)
				}
			}
		}
	}
	_, ps := parseTLS(t, "tls:\n  certificates: [{cert: a, key: b, loaded: x}]\n")
	wantProblem(t, ps, "tls.certificates[0].loaded", "unknown field")
}
