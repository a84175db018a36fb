package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// TLS defaults documented on the types.
const (
	defaultTLSMinVersion = TLSVersion12
	defaultACMECA        = "https://acme-v02.api.letsencrypt.org/directory"
	defaultACMEStorage   = "/var/lib/edge/certificates"
)

// ACME challenge types accepted in ACME.Challenges.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

var defaultChallenges = []string{ChallengeHTTP01, ChallengeTLSALPN01}

// maxPEMBytes bounds a certificate, key or CA file read by Validate.
const maxPEMBytes = 1 << 20

// applyTLSDefaults fills the defaults of the tls section, lower-cases
// acme.names and acme.challenges, and removes the padding of
// acme.eab.mac_key (ACME clients expect unpadded base64url).
func (c *Config) applyTLSDefaults(set func(string) bool) {
	t := &c.TLS
	defaultString(&t.MinVersion, defaultTLSMinVersion, set, "tls.min_version")
	a := t.ACME
	if a == nil {
		return
	}
	defaultString(&a.CA, defaultACMECA, set, "tls.acme.ca")
	if a.FromRoutes == nil {
		fromRoutes := true
		a.FromRoutes = &fromRoutes
	}
	defaultString(&a.Storage, defaultACMEStorage, set, "tls.acme.storage")
	defaultList(&a.Challenges, defaultChallenges, set, "tls.acme.challenges")
	for i, n := range a.Names {
		a.Names[i] = strings.ToLower(n)
	}
	for i, ch := range a.Challenges {
		a.Challenges[i] = strings.ToLower(ch)
	}
	if a.EAB != nil {
		a.EAB.MACKey = strings.TrimRight(a.EAB.MACKey, "=")
	}
}

// validateTLS checks the tls section and the listeners' tls flags, and
// loads the files the section names: it sets CertificateFile.Loaded and
// Names, and ACME.RootPool.
func (c *Config) validateTLS(v *validator) {
	t := &c.TLS
	switch t.MinVersion {
	case TLSVersion12, TLSVersion13:
	default:
		v.add("tls.min_version", "must be %q or %q, got %q", TLSVersion12, TLSVersion13, t.MinVersion)
	}

	now := time.Now()
	for i := range t.Certificates {
		cf := &t.Certificates[i]
		p := joinIndex("tls.certificates", i)
		cf.Loaded, cf.Names = loadKeyPair(v, p, cf.Cert, cf.Key, true, now)
	}

	https, plain := 0, 0
	for i, l := range c.Listeners {
		if !l.TLS {
			plain++
			continue
		}
		https++
		if len(t.Certificates) == 0 && t.ACME == nil {
			v.add(joinIndex("listeners", i)+".tls", "an HTTPS listener needs tls.certificates or tls.acme")
		}
	}

	if t.ACME != nil {
		c.validateACME(v, "tls.acme", t.ACME)
		if https == 0 {
			v.add("tls.acme", "no listener has tls: true")
		}
		if len(t.ACME.Challenges) > 0 && !slices.Contains(t.ACME.Challenges, ChallengeTLSALPN01) && plain == 0 {
			v.add("tls.acme.challenges", "http-01 is answered on plain-HTTP listeners, and every listener has tls: true; add tls-alpn-01 or a plain-HTTP listener")
		}
	}

	h := &t.HSTS
	switch {
	case h.MaxAge < 0:
		v.add("tls.hsts.max_age", "must not be negative (0 turns HSTS off), got %s", h.MaxAge)
	case h.MaxAge > 0 && https == 0:
		v.add("tls.hsts.max_age", "HSTS is sent on HTTPS responses only, and no listener has tls: true")
	}
	if h.MaxAge <= 0 {
		if h.IncludeSubdomains {
			v.add("tls.hsts.include_subdomains", "requires hsts.max_age greater than 0")
		}
		if h.Preload {
			v.add("tls.hsts.preload", "requires hsts.max_age greater than 0")
		}
	}

	if t.RedirectHTTP && https == 0 {
		v.add("tls.redirect_http", "redirects to HTTPS, but no listener has tls: true")
	}
}

func (c *Config) validateACME(v *validator, p string, a *ACME) {
	a.RootPool = nil
	if !a.Agreed {
		v.add(p+".agreed", "must be true to accept the CA's terms of service")
	}
	if a.CA == "" {
		v.add(p+".ca", "the CA's ACME directory URL is required, e.g. %q", defaultACMECA)
	} else if u, err := url.Parse(a.CA); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || hasControl(a.CA) {
		v.add(p+".ca", "must be an absolute http or https URL, e.g. %q, got %q", defaultACMECA, a.CA)
	}
	if a.Email != "" {
		if msg := checkEmail(a.Email); msg != "" {
			v.add(p+".email", "%s", msg)
		}
	}
	if e := a.EAB; e != nil {
		ep := p + ".eab"
		if e.KeyID == "" {
			v.add(ep+".key_id", "key_id is required with eab")
		} else if hasControl(e.KeyID) {
			v.add(ep+".key_id", "must not contain spaces or control characters")
		}
		// The key is a secret: never quote it in a problem.
		switch {
		case e.MACKey == "":
			v.add(ep+".mac_key", "mac_key is required with eab")
		case !validBase64URL(e.MACKey):
			v.add(ep+".mac_key", "must be base64url-encoded (RFC 4648 §5), as the CA gives it")
		}
	}
	seen := map[string]int{}
	for i, n := range a.Names {
		np := joinIndex(p+".names", i)
		if msg := checkACMEName(n); msg != "" {
			v.add(np, "%s", msg)
			continue
		}
		ln := strings.ToLower(n)
		if j, dup := seen[ln]; dup {
			v.add(np, "duplicate name %q (also names[%d])", n, j)
		} else {
			seen[ln] = i
		}
	}
	if len(a.Challenges) == 0 {
		v.add(p+".challenges", "at least one challenge type is required: %q or %q", ChallengeHTTP01, ChallengeTLSALPN01)
	}
	seenCh := map[string]int{}
	for i, ch := range a.Challenges {
		cp := joinIndex(p+".challenges", i)
		switch ch {
		case ChallengeHTTP01, ChallengeTLSALPN01:
		default:
			v.add(cp, "unknown challenge type %q: use %q or %q", ch, ChallengeHTTP01, ChallengeTLSALPN01)
			continue
		}
		if j, dup := seenCh[ch]; dup {
			v.add(cp, "duplicate %q (also challenges[%d])", ch, j)
		} else {
			seenCh[ch] = i
		}
	}
	if a.Storage == "" {
		v.add(p+".storage", "a directory is required, e.g. %q", defaultACMEStorage)
	}
	if a.TrustedRoots != "" {
		a.RootPool = loadCertPool(v, p+".trusted_roots", "trusted roots file", a.TrustedRoots)
	}
	if len(c.ManagedNames()) == 0 && !(a.OnDemand && c.hasWildcardRoute()) {
		v.add(p, "no names to manage: set acme.names, or give routes match.hosts (exact names with from_routes, wildcards with on_demand)")
	}
}

// checkEmail returns a problem message for an ACME contact address, or "".
func checkEmail(e string) string {
	if strings.HasPrefix(strings.ToLower(e), "mailto:") {
		return fmt.Sprintf("invalid email %q: give the address without \"mailto:\"", e)
	}
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || hasControl(e) || strings.ContainsAny(e, "<>,;") {
		return fmt.Sprintf("invalid email %q: must be an address such as \"admin@example.com\"", e)
	}
	return ""
}

// validBase64URL reports whether s is base64url, with or without padding.
func validBase64URL(s string) bool {
	if _, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return true
	}
	_, err := base64.URLEncoding.DecodeString(s)
	return err == nil
}

// checkACMEName returns a problem message for an acme.names entry, or "".
func checkACMEName(n string) string {
	switch {
	case n == "":
		return "name is empty"
	case strings.Contains(n, "*"):
		return fmt.Sprintf("invalid name %q: wildcard certificates need the DNS-01 challenge, which edge does not offer; use on_demand with a route wildcard instead", n)
	case strings.Contains(n, "://") || strings.Contains(n, "/"):
		return fmt.Sprintf("invalid name %q: must be a host name, not a URL", n)
	}
	if _, err := netip.ParseAddr(strings.Trim(n, "[]")); err == nil {
		return fmt.Sprintf("invalid name %q: must be a host name, not an IP address", n)
	}
	if strings.Contains(n, ":") {
		return fmt.Sprintf("invalid name %q: must be a host name without a port", n)
	}
	if !validHostname(n) {
		return fmt.Sprintf("invalid host name %q", n)
	}
	return ""
}

// checkServerName returns a problem message for an upstream's
// tls.server_name, or "": a host name or an IP address.
func checkServerName(n string) string {
	if _, err := netip.ParseAddr(n); err == nil {
		return ""
	}
	switch {
	case strings.Contains(n, "*"):
		return fmt.Sprintf("invalid server name %q: must be a host name, not a wildcard", n)
	case strings.Contains(n, "/"):
		return fmt.Sprintf("invalid server name %q: must be a host name, not a URL", n)
	case strings.Contains(n, ":"):
		return fmt.Sprintf("invalid server name %q: must be a host name without a port", n)
	case !validHostname(strings.TrimSuffix(n, ".")):
		return fmt.Sprintf("invalid server name %q", n)
	}
	return ""
}

// validateUpstreamTLS checks an upstream's tls section and loads its
// files: it sets RootPool and ClientCert.
func validateUpstreamTLS(v *validator, p string, t *UpstreamTLS) {
	t.RootPool, t.ClientCert = nil, nil
	if t.CA != "" {
		if t.InsecureSkipVerify {
			v.add(p+".ca", "ca is ignored with insecure_skip_verify: remove one of them")
		} else {
			t.RootPool = loadCertPool(v, p+".ca", "CA file", t.CA)
		}
	}
	if t.ServerName != "" {
		if msg := checkServerName(t.ServerName); msg != "" {
			v.add(p+".server_name", "%s", msg)
		}
	}
	switch {
	case t.Cert != "" && t.Key == "":
		v.add(p+".key", "a key is required with cert, for mutual TLS")
	case t.Cert == "" && t.Key != "":
		v.add(p+".cert", "a cert is required with key, for mutual TLS")
	case t.Cert != "":
		t.ClientCert, _ = loadKeyPair(v, p, t.Cert, t.Key, false, time.Now())
	}
}

// loadKeyPair reads and checks the certificate chain and key at certPath
// and keyPath, named by the fields p.cert and p.key, as tls.LoadX509KeyPair
// would. It returns the pair with Leaf set, and the leaf's names, or nil
// after adding problems. When required, empty paths are problems.
func loadKeyPair(v *validator, p, certPath, keyPath string, required bool, now time.Time) (*tls.Certificate, []string) {
	var certPEM, keyPEM []byte
	var msg string
	if certPath == "" {
		if required {
			v.add(p+".cert", "a PEM certificate file is required")
		}
	} else if certPEM, msg = readPEMFile("cert file", certPath); msg != "" {
		v.add(p+".cert", "%s", msg)
	}
	if keyPath == "" {
		if required {
			v.add(p+".key", "a PEM private key file is required")
		}
	} else if keyPEM, msg = readPEMFile("key file", keyPath); msg != "" {
		v.add(p+".key", "%s", msg)
	}
	if certPEM == nil {
		return nil, nil
	}

	leaf := parseLeaf(v, p+".cert", certPath, certPEM)
	if leaf == nil {
		return nil, nil
	}
	var names []string
	for _, n := range leaf.DNSNames {
		if n = strings.ToLower(n); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{strings.ToLower(leaf.Subject.CommonName)}
	}
	expired := now.After(leaf.NotAfter)
	if expired {
		v.add(p+".cert", "certificate expired on %s (%s)", leaf.NotAfter.UTC().Format("2006-01-02 15:04:05 UTC"), certPath)
	}
	if keyPEM == nil {
		return nil, names
	}

	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		why := strings.TrimPrefix(err.Error(), "tls: ")
		if strings.Contains(why, "does not match") {
			v.add(p, "certificate %s and key %s do not match: %s", certPath, keyPath, why)
		} else {
			v.add(p+".key", "reading key file %s: %s", keyPath, why)
		}
		return nil, names
	}
	if expired {
		return nil, names
	}
	pair.Leaf = leaf
	return &pair, names
}

// parseLeaf returns the first certificate of a PEM chain, parsed, or nil
// after adding a problem at p.
func parseLeaf(v *validator, p, path string, data []byte) *x509.Certificate {
	var other []string
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			other = append(other, b.Type)
			continue
		}
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			v.add(p, "parsing the certificate in %s: %s", path, strings.TrimPrefix(err.Error(), "x509: "))
			return nil
		}
		return leaf
	}
	switch {
	case slices.ContainsFunc(other, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }):
		v.add(p, "no certificate in %s: it holds a private key (are cert and key swapped?)", path)
	default:
		v.add(p, "no certificate in %s: expected a PEM \"CERTIFICATE\" block", path)
	}
	return nil
}

// loadCertPool reads a PEM file of CA certificates into a pool, or
// returns nil after adding a problem at p.
func loadCertPool(v *validator, p, what, path string) *x509.CertPool {
	data, msg := readPEMFile(what, path)
	if msg != "" {
		v.add(p, "%s", msg)
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		v.add(p, "no certificate in %s: expected PEM \"CERTIFICATE\" blocks", path)
		return nil
	}
	return pool
}

// readPEMFile reads a file named in the configuration, or returns a
// problem message naming it. Only a regular file of at most maxPEMBytes is
// read, so that a path such as /dev/zero or a named pipe cannot exhaust
// memory or block validation.
func readPEMFile(what, path string) ([]byte, string) {
	fail := func(err error) ([]byte, string) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Sprintf("reading %s %s: %v", what, path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fail(err)
	}
	if !st.Mode().IsRegular() {
		return fail(errors.New("not a regular file"))
	}
	if st.Size() > maxPEMBytes {
		return fail(fmt.Errorf("larger than %s", Size(maxPEMBytes)))
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMBytes+1))
	switch {
	case err != nil:
		return fail(err)
	case len(data) > maxPEMBytes:
		return fail(fmt.Errorf("larger than %s", Size(maxPEMBytes)))
	case len(data) == 0:
		return fail(errors.New("file is empty"))
	}
	return data, ""
}

// hasWildcardRoute reports whether a route matches a wildcard host.
func (c *Config) hasWildcardRoute() bool {
	for _, r := range c.Routes {
		if r != nil && slices.ContainsFunc(r.Match.Hosts, func(h string) bool { return strings.HasPrefix(h, "*.") }) {
			return true
		}
	}
	return false
}

// fromRoutes reports whether ACME manages the exact hosts of routes.
func (a *ACME) fromRoutes() bool {
	return a.FromRoutes == nil || *a.FromRoutes
}

// ManagedNames returns the host names that ACME obtains certificates for,
// sorted and without duplicates, in lower case: acme.names and, when
// acme.from_routes, every exact host name (not wildcard, not IP address)
// of routes' match.hosts. It returns nil when ACME is off.
func (c *Config) ManagedNames() []string {
	a := c.TLS.ACME
	if a == nil {
		return nil
	}
	var names []string
	for _, n := range a.Names {
		if n != "" {
			names = append(names, strings.ToLower(n))
		}
	}
	if a.fromRoutes() {
		for _, r := range c.Routes {
			if r == nil {
				continue
			}
			for _, h := range r.Match.Hosts {
				if managedRouteHost(h) {
					names = append(names, strings.ToLower(h))
				}
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// managedRouteHost reports whether a route's match host is an exact host
// name that ACME can obtain a certificate for.
func managedRouteHost(h string) bool {
	if h == "" || strings.Contains(h, "*") || !validHostname(h) {
		return false
	}
	_, err := netip.ParseAddr(h)
	return err != nil
}

// OnDemandAllowed reports whether ACME may obtain a certificate on demand
// for the server name of a TLS handshake: acme.on_demand is on, and name
// (compared in lower case) is one of ManagedNames or lies under a route's
// wildcard host "*.example.com" (one or more labels in front of it). Names
// with a port, IP addresses and invalid names are never allowed.
func (c *Config) OnDemandAllowed(name string) bool {
	a := c.TLS.ACME
	if a == nil || !a.OnDemand || name == "" || strings.ContainsAny(name, ":*") || !validHostname(name) {
		return false
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return false
	}
	name = strings.ToLower(name)
	for _, n := range a.Names {
		if strings.ToLower(n) == name {
			return true
		}
	}
	for _, r := range c.Routes {
		if r == nil {
			continue
		}
		for _, h := range r.Match.Hosts {
			h = strings.ToLower(h)
			if suffix, ok := strings.CutPrefix(h, "*."); ok {
				if suffix != "" && strings.HasSuffix(name, "."+suffix) && len(name) > len(suffix)+1 {
					return true
				}
			} else if a.fromRoutes() && h == name && managedRouteHost(h) {
				return true
			}
		}
	}
	return false
}
