package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults documented on the types.
const (
	defaultListenerAddress       = ":8080"
	defaultAdminAddress          = "127.0.0.1:9901"
	defaultReadHeaderTimeout     = Duration(10 * time.Second)
	defaultBodyTimeout           = Duration(60 * time.Second)
	defaultSendTimeout           = Duration(60 * time.Second)
	defaultServerIdleTimeout     = Duration(75 * time.Second)
	defaultGracePeriod           = Duration(30 * time.Second)
	defaultMaxHeaderBytes        = Size(16 << 10)
	defaultMaxURIBytes           = Size(8 << 10)
	defaultMaxBodyBytes          = Size(64 << 20)
	defaultMaxConnections        = 10000
	defaultAccessLogFormat       = "off"
	defaultPolicy                = PolicyRandomTwo
	defaultHashSource            = HashClientIP
	defaultLoadFactor            = 1.25
	defaultConnectTimeout        = Duration(2 * time.Second)
	defaultResponseHeaderTimeout = Duration(60 * time.Second)
	defaultUpstreamIdleTimeout   = Duration(60 * time.Second)
	defaultMaxConnsPerNode       = 512
	defaultConnWaitTimeout       = Duration(1 * time.Second)
	defaultNodeWeight            = 1
	defaultRespondStatus         = 200
	defaultHealthMethod          = "GET"
	defaultHealthInterval        = Duration(2 * time.Second)
	defaultHealthTimeout         = Duration(1 * time.Second)
	defaultHealthRise            = 2
	defaultHealthFall            = 3
	defaultConsecutiveFailures   = 5
	defaultEjectionTime          = Duration(10 * time.Second)
	defaultMaxEjectionTime       = Duration(5 * time.Minute)
	defaultRetryAttempts         = 2
	defaultBudgetPercent         = 20.0
	defaultBudgetMinPerSecond    = 3
	defaultAllDown               = AllDownFail
	defaultDNSMinTTL             = Duration(1 * time.Second)
	defaultDNSMaxTTL             = Duration(5 * time.Minute)
	defaultDNSTimeout            = Duration(2 * time.Second)
)

// Defaults of lists, copied into each configuration that needs them.
var (
	defaultExpectStatus = []string{"2xx", "3xx"}
	defaultRetryOn      = []string{RetryOnReset, RetryOnTimeout, "502", "503", "504"}
)

// Failures accepted in Retries.On besides the statuses "500", "502", "503"
// and "504".
const (
	// RetryOnReset retries when the connection broke before a response.
	RetryOnReset = "reset"
	// RetryOnTimeout retries when the response header did not come in time.
	RetryOnTimeout = "timeout"
)

// Limits and special values that Validate enforces.
const (
	// AdminOff is the admin address that disables the admin listener.
	AdminOff = "off"
	// MaxNodes is the most nodes an upstream may have.
	MaxNodes = 256
	// MaxWeight is the largest node weight.
	MaxWeight = 1000
	// MaxRetryAttempts is the largest Retries.Attempts.
	MaxRetryAttempts = 10
)

// applyDefaults fills every default documented on the types, and
// normalises match hosts, retries.on, acme.names and acme.challenges to
// lower case, and methods (of matches and health checks) and DNS record
// types to upper case.
//
// set reports whether the file gave the field at a path (as in
// Problem.Path) a non-null value; a default replaces only a zero value
// that the file did not give, so that an explicit zero is validated as
// written and "max_body_bytes: 0" keeps meaning no limit. A nil set treats
// every zero value as absent (for a Config built in code, where a zero
// MaxBodyBytes therefore becomes the 64MiB default).
func (c *Config) applyDefaults(set func(path string) bool) {
	if set == nil {
		set = func(string) bool { return false }
	}
	if len(c.Listeners) == 0 && !set("listeners") {
		c.Listeners = []Listener{{Address: defaultListenerAddress}}
	}
	for i := range c.Listeners {
		if c.Listeners[i].Name == "" {
			c.Listeners[i].Name = defaultListenerName(i)
		}
	}
	if c.Admin.Address == "" && !set("admin.address") {
		c.Admin.Address = defaultAdminAddress
	}

	s := &c.Server
	defaultDuration(&s.ReadHeaderTimeout, defaultReadHeaderTimeout, set, "server.read_header_timeout")
	defaultDuration(&s.BodyTimeout, defaultBodyTimeout, set, "server.body_timeout")
	defaultDuration(&s.SendTimeout, defaultSendTimeout, set, "server.send_timeout")
	defaultDuration(&s.IdleTimeout, defaultServerIdleTimeout, set, "server.idle_timeout")
	defaultDuration(&s.GracePeriod, defaultGracePeriod, set, "server.grace_period")
	defaultSize(&s.MaxHeaderBytes, defaultMaxHeaderBytes, set, "server.max_header_bytes")
	defaultSize(&s.MaxURIBytes, defaultMaxURIBytes, set, "server.max_uri_bytes")
	defaultSize(&s.MaxBodyBytes, defaultMaxBodyBytes, set, "server.max_body_bytes")
	defaultInt(&s.MaxConnections, defaultMaxConnections, set, "server.max_connections")
	s.applyLimitDefaults(set)
	s.applyProtocolDefaults(set)
	defaultString(&c.AccessLog.Format, defaultAccessLogFormat, set, "access_log.format")
	c.applyTLSDefaults(set)
	c.Cache.applyDefaults(set)

	for name, u := range c.Upstreams {
		if u == nil {
			u = &Upstream{}
			c.Upstreams[name] = u
		}
		u.applyDefaults(upstreamPath(name), set)
	}

	for i, r := range c.Routes {
		if r == nil {
			r = &Route{}
			c.Routes[i] = r
		}
		p := routePath(i)
		if r.Name == "" {
			r.Name = "route" + strconv.Itoa(i)
		}
		for j, h := range r.Match.Hosts {
			r.Match.Hosts[j] = strings.ToLower(h)
		}
		for j, m := range r.Match.Methods {
			r.Match.Methods[j] = strings.ToUpper(m)
		}
		if r.Respond != nil {
			defaultInt(&r.Respond.Status, defaultRespondStatus, set, p+".respond.status")
		}
		if r.Cache != nil {
			r.Cache.applyDefaults(p+".cache", set)
		}
		if r.RateLimit != nil {
			r.RateLimit.applyDefaults(p+".rate_limit", set)
		}
	}
}

func (u *Upstream) applyDefaults(p string, set func(string) bool) {
	defaultString(&u.Policy, defaultPolicy, set, p+".policy")
	defaultString(&u.Hash.Source, defaultHashSource, set, p+".hash.source")
	if u.Hash.LoadFactor == 0 {
		u.Hash.LoadFactor = defaultLoadFactor
	}
	defaultDuration(&u.ConnectTimeout, defaultConnectTimeout, set, p+".connect_timeout")
	defaultDuration(&u.ResponseHeaderTimeout, defaultResponseHeaderTimeout, set, p+".response_header_timeout")
	defaultDuration(&u.IdleTimeout, defaultUpstreamIdleTimeout, set, p+".idle_timeout")
	defaultInt(&u.MaxConnsPerNode, defaultMaxConnsPerNode, set, p+".max_conns_per_node")
	defaultDuration(&u.ConnWaitTimeout, defaultConnWaitTimeout, set, p+".conn_wait_timeout")

	// Health check settings default only when checks are on: without a
	// path, any other setting is a problem, not something to complete.
	if h := &u.HealthCheck; h.Path != "" {
		hp := p + ".health_check"
		defaultString(&h.Method, defaultHealthMethod, set, hp+".method")
		h.Method = strings.ToUpper(h.Method)
		defaultDuration(&h.Interval, defaultHealthInterval, set, hp+".interval")
		// A short interval brings a short default timeout along, so that
		// "interval: 500ms" alone is valid.
		timeout := defaultHealthTimeout
		if h.Interval > 0 {
			timeout = min(timeout, h.Interval)
		}
		defaultDuration(&h.Timeout, timeout, set, hp+".timeout")
		defaultList(&h.ExpectStatus, defaultExpectStatus, set, hp+".expect_status")
		defaultInt(&h.Rise, defaultHealthRise, set, hp+".rise")
		defaultInt(&h.Fall, defaultHealthFall, set, hp+".fall")
	}

	pp := p + ".passive"
	defaultInt(&u.Passive.ConsecutiveFailures, defaultConsecutiveFailures, set, pp+".consecutive_failures")
	defaultDuration(&u.Passive.EjectionTime, defaultEjectionTime, set, pp+".ejection_time")
	defaultDuration(&u.Passive.MaxEjectionTime, defaultMaxEjectionTime, set, pp+".max_ejection_time")

	r := &u.Retries
	rp := p + ".retries"
	defaultInt(&r.Attempts, defaultRetryAttempts, set, rp+".attempts")
	defaultList(&r.On, defaultRetryOn, set, rp+".on")
	for i, on := range r.On {
		r.On[i] = strings.ToLower(on)
	}
	defaultFloat(&r.BudgetPercent, defaultBudgetPercent, set, rp+".budget_percent")
	defaultInt(&r.BudgetMinPerSecond, defaultBudgetMinPerSecond, set, rp+".budget_min_per_second")

	defaultString(&u.AllDown, defaultAllDown, set, p+".all_down")

	if d := u.Discovery.DNS; d != nil {
		dp := p + ".discovery.dns"
		if d.Type == "" && !set(dp+".type") {
			if strings.HasPrefix(d.Name, "_") {
				d.Type = DNSTypeSRV
			} else {
				d.Type = DNSTypeA
			}
		}
		d.Type = strings.ToUpper(d.Type)
		defaultDuration(&d.MinTTL, defaultDNSMinTTL, set, dp+".min_ttl")
		defaultDuration(&d.MaxTTL, defaultDNSMaxTTL, set, dp+".max_ttl")
		defaultDuration(&d.Timeout, defaultDNSTimeout, set, dp+".timeout")
	}

	for i := range u.Nodes {
		n := &u.Nodes[i]
		defaultInt(&n.Weight, defaultNodeWeight, set, p+".nodes["+strconv.Itoa(i)+"].weight")
		if n.Name == "" {
			n.Name = n.Address
		}
	}
}

func defaultDuration(d *Duration, def Duration, set func(string) bool, path string) {
	if *d == 0 && !set(path) {
		*d = def
	}
}

func defaultSize(s *Size, def Size, set func(string) bool, path string) {
	if *s == 0 && !set(path) {
		*s = def
	}
}

func defaultInt(n *int, def int, set func(string) bool, path string) {
	if *n == 0 && !set(path) {
		*n = def
	}
}

func defaultFloat(f *float64, def float64, set func(string) bool, path string) {
	if *f == 0 && !set(path) {
		*f = def
	}
}

// defaultList sets a copy of def, so that no two configurations share it.
func defaultList(l *[]string, def []string, set func(string) bool, path string) {
	if len(*l) == 0 && !set(path) {
		*l = slices.Clone(def)
	}
}

func defaultString(s *string, def string, set func(string) bool, path string) {
	if *s == "" && !set(path) {
		*s = def
	}
}

// defaultListenerName is the name of the i-th listener: "http", "http2", …
func defaultListenerName(i int) string {
	if i == 0 {
		return "http"
	}
	return "http" + strconv.Itoa(i+1)
}

func upstreamPath(name string) string { return joinKey("upstreams", name) }

func routePath(i int) string { return joinIndex("routes", i) }

// Validate checks the configuration and returns a *ValidationError listing
// every problem found, or nil. It also sets the fields derived from
// others: Server.TrustedNets, Match.PathRegexp and Redirect.Template, and
// loads the files that the TLS settings name into CertificateFile.Loaded
// and Names, ACME.RootPool, and UpstreamTLS.RootPool and ClientCert.
//
// Validate does not apply defaults: Load and Parse do that first, and a
// Config built in code must set every field itself. Problems returned by
// Validate have no line numbers.
func (c *Config) Validate() error {
	return newValidationError(c.File, c.validate())
}

type validator struct {
	probs []Problem
}

func (v *validator) add(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// validate returns every problem of c, without line numbers.
func (c *Config) validate() []Problem {
	v := &validator{}
	binds := c.validateListeners(v)
	c.validateAdmin(v, binds)
	c.validateServer(v)
	c.validateTLS(v)
	switch c.AccessLog.Format {
	case "off", "combined", "json":
	default:
		v.add("access_log.format", "must be \"off\", \"combined\" or \"json\", got %q", c.AccessLog.Format)
	}
	names := make([]string, 0, len(c.Upstreams))
	for name := range c.Upstreams {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		validateUpstream(v, name, c.Upstreams[name])
	}
	c.Cache.validate(v)
	routeNames := map[string]int{}
	for i, r := range c.Routes {
		c.validateRoute(v, i, r, routeNames)
	}
	return v.probs
}

// bind is a listening address, for finding listeners that clash.
type bind struct {
	path, addr, host string
	port             int
}

func (b bind) wildcard() bool {
	if b.host == "" {
		return true
	}
	a, err := netip.ParseAddr(b.host)
	return err == nil && a.IsUnspecified()
}

// clash returns a problem message if a and b cannot both listen.
func (b bind) clash(o bind) string {
	if b.port != o.port || b.port == 0 { // port 0: the kernel picks a free port for each
		return ""
	}
	if b.host == o.host {
		return fmt.Sprintf("duplicate address %q (also %s)", b.addr, o.path)
	}
	if b.wildcard() || o.wildcard() {
		return fmt.Sprintf("address %q conflicts with %s %q: both listen on port %d", b.addr, o.path, o.addr, b.port)
	}
	return ""
}

func (c *Config) validateListeners(v *validator) []bind {
	if len(c.Listeners) == 0 {
		v.add("listeners", "at least one listener is required")
	}
	var binds []bind
	names := map[string]int{}
	for i, l := range c.Listeners {
		p := joinIndex("listeners", i)
		switch {
		case l.Name == "":
			v.add(p+".name", "name is required")
		case !validName(l.Name):
			v.add(p+".name", "invalid name %q: use only letters, digits, '_', '.' and '-'", l.Name)
		default:
			if j, dup := names[l.Name]; dup {
				v.add(p+".name", "duplicate listener name %q (also listeners[%d])", l.Name, j)
			} else {
				names[l.Name] = i
			}
		}
		if pp := c.Listeners[i].ProxyProtocol; pp != nil {
			pp.FromNets = parseNets(v, p+".proxy_protocol.from", pp.From)
			if len(pp.From) == 0 {
				v.add(p+".proxy_protocol.from", "list the load balancers' addresses allowed to send the header")
			}
		}
		b, ok := checkBind(v, p+".address", l.Address)
		if !ok {
			continue
		}
		for _, o := range binds {
			if msg := b.clash(o); msg != "" {
				v.add(b.path, "%s", msg)
				break
			}
		}
		binds = append(binds, b)
	}
	return binds
}

func checkBind(v *validator, path, addr string) (bind, bool) {
	host, port, msg := checkAddress(addr, false, true)
	if msg != "" {
		v.add(path, "%s", msg)
		return bind{}, false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	return bind{path: path, addr: addr, host: strings.ToLower(host), port: port}, true
}

func (c *Config) validateAdmin(v *validator, binds []bind) {
	if c.Admin.Address != AdminOff {
		if b, ok := checkBind(v, "admin.address", c.Admin.Address); ok {
			for _, o := range binds {
				if msg := b.clash(o); msg != "" {
					v.add(b.path, "%s", msg)
					break
				}
			}
		}
	}
	for _, r := range c.Admin.Token {
		if r <= ' ' || r >= 0x7f {
			v.add("admin.token", "must be printable ASCII without spaces")
			break
		}
	}
}

// checkAddress checks that addr is host:port with a numeric port 1–65535
// (or 0 when zeroPort: a listener on a port the kernel picks), and a host
// name or IP address (which may be empty unless hostRequired).
// It returns a problem message, or "".
func checkAddress(addr string, hostRequired, zeroPort bool) (host string, port int, msg string) {
	example := `":8080" or "127.0.0.1:8080"`
	if hostRequired {
		example = `"10.0.0.5:8080" or "app.internal:8080"`
	}
	if addr == "" {
		return "", 0, "address is required, e.g. " + example
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Sprintf("invalid address %q: must be host:port, e.g. %s", addr, example)
	}
	if hostRequired && host == "" {
		return "", 0, fmt.Sprintf("invalid address %q: the host is missing, e.g. %s", addr, example)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(strings.TrimSuffix(host, ".")) {
			return "", 0, fmt.Sprintf("invalid address %q: %q is neither an IP address nor a host name", addr, host)
		}
	}
	port, ok := parsePort(portStr)
	if !ok && !(zeroPort && portStr != "" && strings.Trim(portStr, "0") == "") {
		return "", 0, fmt.Sprintf("invalid address %q: the port must be a number from 1 to 65535", addr)
	}
	return host, port, ""
}

func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, _ := strconv.Atoi(s)
	return n, n >= 1 && n <= 65535
}

// validHostname reports whether h is a DNS-style host name: dot-separated
// labels of 1–63 letters, digits, '-' or '_', not starting or ending with
// '-', at most 253 bytes in all.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// validName reports whether s matches [A-Za-z0-9_.-]+.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '.' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 9110 token, as header names and
// methods must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// badHeaderValue reports whether s contains CR, LF or NUL, which would
// split or truncate a header.
func badHeaderValue(s string) bool {
	return strings.ContainsAny(s, "\r\n\x00")
}

// parsePrefix parses a CIDR (masked) or a single address (as a /32 or
// /128), ignoring surrounding space and an address's zone.
func parsePrefix(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return pfx.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

func (c *Config) validateServer(v *validator) {
	s := &c.Server
	s.TrustedNets = nil
	for i, t := range s.TrustedProxies {
		p := joinIndex("server.trusted_proxies", i)
		pfx, ok := parsePrefix(t)
		if !ok {
			v.add(p, "invalid trusted proxy %q: must be an IP address or a CIDR such as \"10.0.0.0/8\"", strings.TrimSpace(t))
			continue
		}
		s.TrustedNets = append(s.TrustedNets, pfx)
	}
	positive(v, "server.read_header_timeout", s.ReadHeaderTimeout)
	positive(v, "server.body_timeout", s.BodyTimeout)
	positive(v, "server.send_timeout", s.SendTimeout)
	positive(v, "server.idle_timeout", s.IdleTimeout)
	positive(v, "server.grace_period", s.GracePeriod)
	if s.MaxHeaderBytes < 1<<10 || s.MaxHeaderBytes > 1<<20 {
		v.add("server.max_header_bytes", "must be between 1KiB and 1MiB, got %s", s.MaxHeaderBytes)
	}
	switch {
	case s.MaxURIBytes < 256:
		v.add("server.max_uri_bytes", "must be at least 256B, got %s", s.MaxURIBytes)
	case s.MaxURIBytes > s.MaxHeaderBytes:
		v.add("server.max_uri_bytes", "must not exceed max_header_bytes (%s), got %s", s.MaxHeaderBytes, s.MaxURIBytes)
	}
	if s.MaxBodyBytes < 0 {
		v.add("server.max_body_bytes", "must not be negative (0 means no limit)")
	}
	if s.MaxConnections < 1 {
		v.add("server.max_connections", "must be at least 1, got %d", s.MaxConnections)
	}
	s.validateLimits(v)
	s.validateProtocols(v)
}

func positive(v *validator, path string, d Duration) {
	if d <= 0 {
		v.add(path, "must be greater than 0, got %s", d)
	}
}

func validateUpstream(v *validator, name string, u *Upstream) {
	p := upstreamPath(name)
	if !validName(name) {
		v.add(p, "invalid upstream name %q: use only letters, digits, '_', '.' and '-'", name)
	}
	if u == nil {
		v.add(p, "upstream is empty: at least one node is required, or discovery.dns")
		return
	}
	switch u.Policy {
	case PolicyRandomTwo, PolicyRoundRobin, PolicyLeastConn, PolicyConsistentHash:
	default:
		v.add(p+".policy", "unknown policy %q: use %q, %q, %q or %q", u.Policy,
			PolicyRandomTwo, PolicyRoundRobin, PolicyLeastConn, PolicyConsistentHash)
	}
	switch u.Hash.Source {
	case HashClientIP:
	case HashHeader, HashCookie:
		switch {
		case u.Hash.Name == "":
			v.add(p+".hash.name", "a %s name is required for hash source %q", u.Hash.Source, u.Hash.Source)
		case !isToken(u.Hash.Name):
			v.add(p+".hash.name", "invalid %s name %q", u.Hash.Source, u.Hash.Name)
		}
	default:
		v.add(p+".hash.source", "unknown hash source %q: use %q, %q or %q", u.Hash.Source, HashClientIP, HashHeader, HashCookie)
	}
	if lf := u.Hash.LoadFactor; lf != 0 && !(lf >= 1 && !math.IsInf(lf, 1)) {
		v.add(p+".hash.load_factor", "must be a finite number of at least 1, got %v", lf)
	}
	positive(v, p+".connect_timeout", u.ConnectTimeout)
	positive(v, p+".response_header_timeout", u.ResponseHeaderTimeout)
	positive(v, p+".idle_timeout", u.IdleTimeout)
	positive(v, p+".conn_wait_timeout", u.ConnWaitTimeout)
	if u.MaxConnsPerNode < 1 {
		v.add(p+".max_conns_per_node", "must be at least 1, got %d", u.MaxConnsPerNode)
	}

	validateHealthCheck(v, p+".health_check", &u.HealthCheck)
	validatePassive(v, p+".passive", &u.Passive)
	validateRetries(v, p+".retries", &u.Retries)
	switch u.AllDown {
	case AllDownFail, AllDownTryAll:
	default:
		v.add(p+".all_down", "must be %q or %q, got %q", AllDownFail, AllDownTryAll, u.AllDown)
	}
	if u.Discovery.DNS != nil {
		validateDNS(v, p+".discovery.dns", u.Discovery.DNS)
	}
	if u.TLS != nil {
		validateUpstreamTLS(v, p+".tls", u.TLS)
	}

	// A pool with DNS discovery may have no static nodes; static nodes,
	// when given, still need a primary among them.
	switch {
	case len(u.Nodes) == 0 && u.Discovery.DNS == nil:
		v.add(p+".nodes", "at least one node is required, or discovery.dns")
	case len(u.Nodes) > MaxNodes:
		v.add(p+".nodes", "at most %d nodes are allowed, got %d", MaxNodes, len(u.Nodes))
	}
	addrs := map[string]int{}
	names := map[string]int{}
	primaries := 0
	for i, n := range u.Nodes {
		np := joinIndex(p+".nodes", i)
		if !n.Backup {
			primaries++
		}
		dupAddr := false
		if host, port, msg := checkAddress(n.Address, true, false); msg != "" {
			v.add(np+".address", "%s", msg)
		} else {
			key := net.JoinHostPort(strings.ToLower(strings.TrimSuffix(host, ".")), strconv.Itoa(port))
			if j, dup := addrs[key]; dup {
				v.add(np+".address", "duplicate node address %q (also nodes[%d])", n.Address, j)
				dupAddr = true
			} else {
				addrs[key] = i
			}
		}
		switch {
		case n.Name == "":
			if n.Address != "" { // else the name defaults to the missing address
				v.add(np+".name", "name is required")
			}
		case badHeaderValue(n.Name):
			v.add(np+".name", "must not contain CR, LF or NUL")
		default:
			if j, dup := names[n.Name]; dup {
				// A name defaulted from a duplicate address is that problem.
				if !(dupAddr && n.Name == n.Address) {
					v.add(np+".name", "duplicate node name %q (also nodes[%d])", n.Name, j)
				}
			} else {
				names[n.Name] = i
			}
		}
		if n.Weight < 1 || n.Weight > MaxWeight {
			v.add(np+".weight", "must be from 1 to %d, got %d", MaxWeight, n.Weight)
		}
	}
	// With DNS discovery the discovered nodes are the primaries, and static
	// nodes may all be backups behind them.
	if len(u.Nodes) > 0 && primaries == 0 && u.Discovery.DNS == nil {
		v.add(p+".nodes", "at least one node must not be a backup")
	}
}

func validateHealthCheck(v *validator, p string, h *HealthCheck) {
	if h.Path == "" {
		var given []string
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"method", h.Method != ""},
			{"host", h.Host != ""},
			{"port", h.Port != 0},
			{"interval", h.Interval != 0},
			{"timeout", h.Timeout != 0},
			{"expect_status", len(h.ExpectStatus) > 0},
			{"expect_body", h.ExpectBody != ""},
			{"rise", h.Rise != 0},
			{"fall", h.Fall != 0},
		} {
			if f.set {
				given = append(given, f.name)
			}
		}
		if len(given) > 0 {
			v.add(p+".path", "health_check.path is required to enable health checks (%s given without it)", strings.Join(given, ", "))
		}
		return
	}
	switch {
	case !strings.HasPrefix(h.Path, "/"):
		v.add(p+".path", "must start with \"/\", got %q", h.Path)
	case hasControl(h.Path):
		v.add(p+".path", "must not contain spaces or control characters")
	case strings.Contains(h.Path, "#"):
		v.add(p+".path", "must not contain a fragment (\"#\")")
	}
	if !isToken(h.Method) {
		v.add(p+".method", "invalid method %q", h.Method)
	}
	if h.Host != "" {
		if msg := checkHostHeader(h.Host); msg != "" {
			v.add(p+".host", "%s", msg)
		}
	}
	if h.Port < 0 || h.Port > 65535 {
		v.add(p+".port", "must be from 1 to 65535 (or 0 for the node's own port), got %d", h.Port)
	}
	positive(v, p+".interval", h.Interval)
	positive(v, p+".timeout", h.Timeout)
	if h.Interval > 0 && h.Timeout > h.Interval {
		v.add(p+".timeout", "must not exceed interval (%s), got %s", h.Interval, h.Timeout)
	}
	if len(h.ExpectStatus) == 0 {
		v.add(p+".expect_status", "at least one status is required, e.g. [\"2xx\"]")
	}
	for i, s := range h.ExpectStatus {
		if _, _, err := parseStatusItem(s); err != nil {
			v.add(joinIndex(p+".expect_status", i), "%v", err)
		}
	}
	if h.Rise < 1 {
		v.add(p+".rise", "must be at least 1, got %d", h.Rise)
	}
	if h.Fall < 1 {
		v.add(p+".fall", "must be at least 1, got %d", h.Fall)
	}
}

// checkHostHeader returns a problem message for a Host header value, or
// "": a host name or IP address (IPv6 in brackets), with an optional port.
func checkHostHeader(h string) string {
	bad := fmt.Sprintf("invalid host %q: must be a host name or IP address with an optional port, e.g. \"app.internal\" or \"app.internal:8080\"", h)
	host, bracketed := h, false
	switch {
	case strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]"):
		host, bracketed = h[1:len(h)-1], true
	case strings.Contains(h, ":"):
		hp, port, err := net.SplitHostPort(h)
		if err != nil {
			return bad
		}
		if _, ok := parsePort(port); !ok {
			return fmt.Sprintf("invalid host %q: the port must be a number from 1 to 65535", h)
		}
		host, bracketed = hp, strings.HasPrefix(h, "[")
	}
	if bracketed {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return bad
		}
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		if strings.Contains(host, ":") {
			return bad // an IPv6 address needs brackets
		}
		return ""
	}
	if !validHostname(strings.TrimSuffix(host, ".")) {
		return bad
	}
	return ""
}

func validatePassive(v *validator, p string, ps *Passive) {
	if ps.ConsecutiveFailures < 0 {
		v.add(p+".consecutive_failures", "must not be negative (0 disables passive checks), got %d", ps.ConsecutiveFailures)
	}
	positive(v, p+".ejection_time", ps.EjectionTime)
	positive(v, p+".max_ejection_time", ps.MaxEjectionTime)
	if ps.EjectionTime > 0 && ps.MaxEjectionTime > 0 && ps.MaxEjectionTime < ps.EjectionTime {
		v.add(p+".max_ejection_time", "must not be less than ejection_time (%s), got %s", ps.EjectionTime, ps.MaxEjectionTime)
	}
}

func validateRetries(v *validator, p string, r *Retries) {
	if r.Attempts < 0 || r.Attempts > MaxRetryAttempts {
		v.add(p+".attempts", "must be from 0 to %d, got %d", MaxRetryAttempts, r.Attempts)
	}
	if len(r.On) == 0 {
		v.add(p+".on", "at least one failure to retry is required (set attempts: 0 to turn retries off)")
	}
	seen := map[string]int{}
	for i, on := range r.On {
		ip := joinIndex(p+".on", i)
		switch on {
		case RetryOnReset, RetryOnTimeout, "500", "502", "503", "504":
		default:
			v.add(ip, "unknown failure %q: use reset, timeout, 500, 502, 503 or 504", on)
			continue
		}
		if j, dup := seen[on]; dup {
			v.add(ip, "duplicate %q (also on[%d])", on, j)
		} else {
			seen[on] = i
		}
	}
	if bp := r.BudgetPercent; !(bp > 0 && bp <= 100) {
		v.add(p+".budget_percent", "must be greater than 0 and at most 100, got %v", bp)
	}
	if r.BudgetMinPerSecond < 0 {
		v.add(p+".budget_min_per_second", "must not be negative, got %d", r.BudgetMinPerSecond)
	}
}

func validateDNS(v *validator, p string, d *DNSDiscovery) {
	name := strings.TrimSuffix(d.Name, ".")
	if d.Name == "" {
		v.add(p+".name", "name is required, e.g. \"_http._tcp.app.internal\" (SRV) or \"app.internal\" (A)")
	} else if _, err := netip.ParseAddr(name); err == nil {
		v.add(p+".name", "%q is an IP address, not a name to resolve: list it under nodes instead", d.Name)
	} else if !validHostname(name) {
		v.add(p+".name", "invalid DNS name %q", d.Name)
	}
	switch d.Type {
	case DNSTypeSRV:
		if d.Port != 0 {
			v.add(p+".port", "must not be set for SRV records, which give each node's port")
		}
	case DNSTypeA, DNSTypeAAAA:
		switch {
		case d.Port == 0:
			// Without a name, the type is a guess: the name is the problem.
			if d.Name != "" {
				v.add(p+".port", "a port is required for %s records", d.Type)
			}
		case d.Port < 1 || d.Port > 65535:
			v.add(p+".port", "must be from 1 to 65535, got %d", d.Port)
		}
	default:
		v.add(p+".type", "unknown record type %q: use %q, %q or %q", d.Type, DNSTypeSRV, DNSTypeA, DNSTypeAAAA)
	}
	if d.Resolver != "" {
		if ap, err := netip.ParseAddrPort(d.Resolver); err != nil || ap.Port() == 0 {
			v.add(p+".resolver", "invalid resolver %q: must be an IP address and port, e.g. \"10.0.0.2:53\" or \"[fd00::53]:53\"", d.Resolver)
		}
	}
	positive(v, p+".min_ttl", d.MinTTL)
	positive(v, p+".max_ttl", d.MaxTTL)
	if d.MinTTL > 0 && d.MaxTTL > 0 && d.MaxTTL < d.MinTTL {
		v.add(p+".max_ttl", "must not be less than min_ttl (%s), got %s", d.MinTTL, d.MaxTTL)
	}
	positive(v, p+".timeout", d.Timeout)
}

func (c *Config) validateRoute(v *validator, i int, r *Route, names map[string]int) {
	p := routePath(i)
	if r == nil {
		v.add(p, "route is empty: exactly one of proxy, redirect or respond is required")
		return
	}
	switch {
	case r.Name == "":
		v.add(p+".name", "name is required")
	case !validName(r.Name):
		v.add(p+".name", "invalid route name %q: use only letters, digits, '_', '.' and '-'", r.Name)
	default:
		if j, dup := names[r.Name]; dup {
			v.add(p+".name", "duplicate route name %q (also routes[%d])", r.Name, j)
		} else {
			names[r.Name] = i
		}
	}

	var actions []string
	if r.Proxy != "" {
		actions = append(actions, "proxy")
	}
	if r.Redirect != nil {
		actions = append(actions, "redirect")
	}
	if r.Respond != nil {
		actions = append(actions, "respond")
	}
	switch len(actions) {
	case 0:
		v.add(p, "exactly one of proxy, redirect or respond is required")
	case 1:
	default:
		v.add(p, "exactly one of proxy, redirect or respond is required, got %s", strings.Join(actions, " and "))
	}
	if r.Proxy != "" {
		if _, ok := c.Upstreams[r.Proxy]; !ok {
			v.add(p+".proxy", "unknown upstream %q", r.Proxy)
		}
	}

	if r.RetryNonIdempotent && r.Proxy == "" {
		v.add(p+".retry_non_idempotent", "applies only to routes with proxy")
	}

	validateMatch(v, p+".match", &r.Match, c.Server.MergeSlashes == nil || *c.Server.MergeSlashes)
	if r.Access != nil {
		r.Access.validate(v, p+".access")
	}
	if r.RateLimit != nil {
		r.RateLimit.validate(v, p+".rate_limit", true)
	}
	if r.Redirect != nil {
		validateRedirect(v, p, r)
	}
	if r.Respond != nil {
		validateRespond(v, p+".respond", r.Respond)
	}
	validateHeaderRules(v, p+".request_headers", &r.RequestHeaders, true)
	validateHeaderRules(v, p+".response_headers", &r.ResponseHeaders, false)
	if r.Cache != nil {
		validateRouteCache(v, p+".cache", r)
	}
}

func validateMatch(v *validator, p string, m *Match, mergeSlashes bool) {
	for j, h := range m.Hosts {
		if msg := checkMatchHost(h); msg != "" {
			v.add(joinIndex(p+".hosts", j), "%s", msg)
		}
	}
	paths := 0
	for _, f := range []struct{ name, value string }{{"path", m.Path}, {"path_prefix", m.PathPrefix}} {
		if f.value == "" {
			continue
		}
		paths++
		switch {
		case !strings.HasPrefix(f.value, "/"):
			v.add(p+"."+f.name, "must start with \"/\", got %q", f.value)
		case strings.ContainsAny(f.value, "?#"):
			v.add(p+"."+f.name, "must be a path without a query string or fragment, got %q", f.value)
		case hasControl(f.value):
			v.add(p+"."+f.name, "must not contain spaces or control characters")
		default:
			if msg := nonNormalPath(f.value, mergeSlashes); msg != "" {
				v.add(p+"."+f.name, "%s, got %q", msg, f.value)
			}
		}
	}
	m.PathRegexp = nil
	if m.PathRegex != "" {
		paths++
		re, err := regexp.Compile(m.PathRegex)
		if err != nil {
			v.add(p+".path_regex", "invalid regular expression: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		} else {
			m.PathRegexp = re
		}
	}
	if paths > 1 {
		v.add(p, "at most one of path, path_prefix or path_regex may be set")
	}
	for j, meth := range m.Methods {
		if !isToken(meth) {
			v.add(joinIndex(p+".methods", j), "invalid method %q", meth)
		}
	}
	for j, h := range m.Headers {
		hp := joinIndex(p+".headers", j)
		switch {
		case h.Name == "":
			v.add(hp+".name", "header name is required")
		case !isToken(h.Name):
			v.add(hp+".name", "invalid header name %q", h.Name)
		}
		if badHeaderValue(h.Value) {
			v.add(hp+".value", "must not contain CR, LF or NUL")
		}
	}
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// checkMatchHost returns a problem message for a match.hosts entry, or "".
func checkMatchHost(h string) string {
	switch {
	case h == "":
		return "host is empty"
	case strings.Contains(h, "://"):
		return fmt.Sprintf("invalid host %q: must be a host name, not a URL", h)
	case strings.Contains(h, "/"):
		return fmt.Sprintf("invalid host %q: must be a host name without a path", h)
	case strings.HasPrefix(h, "["):
		return fmt.Sprintf("invalid host %q: IPv6 literals are not supported", h)
	case strings.Count(h, ":") > 1:
		return fmt.Sprintf("invalid host %q: IPv6 literals are not supported", h)
	case strings.Contains(h, ":"):
		return fmt.Sprintf("invalid host %q: must not include a port (hosts match on any port)", h)
	case h == "*":
		return `"*" would match every host: leave hosts empty instead`
	case strings.HasPrefix(h, "*."):
		if strings.Contains(h[2:], "*") || !validHostname(h[2:]) {
			return fmt.Sprintf("invalid wildcard host %q: must be \"*.\" followed by a host name, e.g. \"*.example.com\"", h)
		}
	case strings.Contains(h, "*"):
		return fmt.Sprintf("invalid host %q: a wildcard must be a leading \"*.\", e.g. \"*.example.com\"", h)
	case !validHostname(h):
		return fmt.Sprintf("invalid host name %q", h)
	}
	return ""
}

func validateRedirect(v *validator, routeP string, r *Route) {
	p := routeP + ".redirect"
	rd := r.Redirect
	var modes []string
	if rd.To != "" {
		modes = append(modes, "to")
	}
	if rd.HTTPS {
		modes = append(modes, "https")
	}
	if rd.WWW != "" {
		modes = append(modes, "www")
	}
	if rd.TrailingSlash != "" {
		modes = append(modes, "trailing_slash")
	}
	if rd.Prefix != "" {
		modes = append(modes, "prefix")
	}
	switch len(modes) {
	case 0:
		v.add(p, "exactly one of to, https, www, trailing_slash or prefix is required")
	case 1:
	default:
		v.add(p, "exactly one of to, https, www, trailing_slash or prefix is required, got %s", strings.Join(modes, " and "))
	}
	switch rd.Status {
	case 0, 301, 302, 303, 307, 308:
	default:
		v.add(p+".status", "must be 301, 302, 303, 307 or 308, got %d", rd.Status)
	}
	for _, f := range []struct{ name, value string }{{"www", rd.WWW}, {"trailing_slash", rd.TrailingSlash}} {
		if f.value != "" && f.value != "add" && f.value != "remove" {
			v.add(p+"."+f.name, "must be \"add\" or \"remove\", got %q", f.value)
		}
	}
	if rd.Prefix != "" {
		switch {
		case !strings.HasPrefix(rd.Prefix, "/"):
			v.add(p+".prefix", "must start with \"/\", got %q", rd.Prefix)
		case hasControl(rd.Prefix) || strings.ContainsAny(rd.Prefix, "?#"):
			v.add(p+".prefix", "must be a path without spaces, control characters, query or fragment")
		}
		if r.Match.PathPrefix == "" {
			v.add(p+".prefix", "requires match.path_prefix on the route")
		}
	}
	rd.Template = nil
	if rd.To != "" {
		t, err := ParseTemplate(rd.To)
		switch {
		case err != nil:
			v.add(p+".to", "%v", err)
		case hasControl(strings.ReplaceAll(rd.To, " ", "")):
			v.add(p+".to", "must not contain control characters")
		default:
			rd.Template = t
			if t.Uses(PlaceholderRest) && r.Match.PathPrefix == "" {
				v.add(p+".to", "{rest} requires match.path_prefix on the route")
			}
		}
	}
}

func validateRespond(v *validator, p string, rs *Respond) {
	if rs.Status < 100 || rs.Status > 599 {
		v.add(p+".status", "must be an HTTP status from 100 to 599, got %d", rs.Status)
	}
	checkHeaderMap(v, p+".headers", rs.Headers, "")
}

// framingHeaders are the headers edge manages itself, with the reason a
// configuration may not edit them.
var framingHeaders = map[string]string{
	"connection":        "is a hop-by-hop header that edge manages per connection",
	"keep-alive":        "is a hop-by-hop header that edge manages per connection",
	"proxy-connection":  "is a hop-by-hop header that edge manages per connection",
	"te":                "is a hop-by-hop header that edge manages per connection",
	"trailer":           "is a hop-by-hop header that edge manages per connection",
	"upgrade":           "is a hop-by-hop header that edge manages per connection",
	"transfer-encoding": "defines the message framing, which edge manages itself",
	"content-length":    "defines the message framing, which edge manages itself",
}

// checkHeaderMap checks set/add/headers maps. Header names are compared
// case-insensitively, so two spellings of one name are a problem.
// hostMsg, when not empty, is the problem with editing Host.
func checkHeaderMap(v *validator, p string, m map[string]string, hostMsg string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := map[string]string{}
	for _, k := range keys {
		kp := joinKey(p, k)
		if !checkHeaderName(v, kp, k) {
			continue
		}
		lk := strings.ToLower(k)
		if why, ok := framingHeaders[lk]; ok {
			v.add(kp, "%q cannot be edited: it %s", k, why)
		} else if lk == "host" && hostMsg != "" {
			v.add(kp, "%q %s", k, hostMsg)
		}
		if other, dup := seen[lk]; dup {
			v.add(kp, "header %q is also given as %q (header names are case-insensitive)", k, other)
		} else {
			seen[lk] = k
		}
		if badHeaderValue(m[k]) {
			v.add(kp, "value must not contain CR, LF or NUL")
		}
	}
}

func checkHeaderName(v *validator, p, name string) bool {
	if name == "" {
		v.add(p, "header name is empty")
		return false
	}
	if !isToken(name) {
		v.add(p, "invalid header name %q", name)
		return false
	}
	return true
}

func validateHeaderRules(v *validator, p string, h *HeaderRules, request bool) {
	checkHeaderMap(v, p+".set", h.Set, "")
	for name, value := range h.Set {
		if strings.TrimSpace(value) == "" {
			v.add(joinKey(p+".set", name), "empty value: use remove to delete the field")
		}
	}
	if request {
		checkHeaderMap(v, p+".add", h.Add, "cannot be added: a request has exactly one Host header; use set to change it")
	} else {
		checkHeaderMap(v, p+".add", h.Add, "")
	}
	for j, name := range h.Remove {
		jp := joinIndex(p+".remove", j)
		if !checkHeaderName(v, jp, name) {
			continue
		}
		lk := strings.ToLower(name)
		if why, ok := framingHeaders[lk]; ok {
			v.add(jp, "%q cannot be edited: it %s", name, why)
		} else if lk == "host" && request {
			v.add(jp, "%q cannot be removed: a request needs a Host header; use set to change it", name)
		}
	}
}

// StatusSet is a set of HTTP status codes from 100 to 599, such as the
// statuses that pass a health check. The zero value is empty.
type StatusSet struct {
	bits [10]uint64 // bit c%64 of bits[c/64] is code c
}

// Contains reports whether code is in s. Codes outside 100–599 never are.
func (s StatusSet) Contains(code int) bool {
	if code < 100 || code > 599 {
		return false
	}
	return s.bits[code/64]&(1<<(code%64)) != 0
}

func (s *StatusSet) addRange(lo, hi int) {
	for c := lo; c <= hi; c++ {
		s.bits[c/64] |= 1 << (c % 64)
	}
}

// ParseStatusSet parses a list such as HealthCheck.ExpectStatus: each item
// is a code ("200"), a class ("2xx", "1xx" to "5xx") or an inclusive range
// ("200-399"), of codes from 100 to 599. The list must not be empty.
// The error names the first invalid item.
func ParseStatusSet(items []string) (StatusSet, error) {
	var s StatusSet
	if len(items) == 0 {
		return s, errors.New("no statuses: list at least one, e.g. \"2xx\"")
	}
	for _, it := range items {
		lo, hi, err := parseStatusItem(it)
		if err != nil {
			return StatusSet{}, err
		}
		s.addRange(lo, hi)
	}
	return s, nil
}

// parseStatusItem parses one item of a status list into an inclusive
// range of codes.
func parseStatusItem(item string) (lo, hi int, err error) {
	t := strings.TrimSpace(item)
	if len(t) == 3 && strings.EqualFold(t[1:], "xx") {
		if t[0] < '1' || t[0] > '5' {
			return 0, 0, fmt.Errorf("invalid status class %q: use 1xx, 2xx, 3xx, 4xx or 5xx", item)
		}
		lo = int(t[0]-'0') * 100
		return lo, lo + 99, nil
	}
	if a, b, ok := strings.Cut(t, "-"); ok {
		lo, okLo := parseStatusCode(strings.TrimSpace(a))
		hi, okHi := parseStatusCode(strings.TrimSpace(b))
		switch {
		case !okLo || !okHi:
			return 0, 0, fmt.Errorf("invalid status range %q: both ends must be codes from 100 to 599, e.g. \"200-399\"", item)
		case lo > hi:
			return 0, 0, fmt.Errorf("invalid status range %q: %d is greater than %d", item, lo, hi)
		}
		return lo, hi, nil
	}
	if c, ok := parseStatusCode(t); ok {
		return c, c, nil
	}
	if _, err := strconv.Atoi(t); err == nil {
		return 0, 0, fmt.Errorf("invalid status %q: a status code is from 100 to 599", item)
	}
	return 0, 0, fmt.Errorf("invalid status %q: use a code (\"200\"), a class (\"2xx\") or a range (\"200-399\")", item)
}

// parseStatusCode parses a three-digit status code from 100 to 599.
func parseStatusCode(s string) (int, bool) {
	if len(s) != 3 {
		return 0, false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	c, _ := strconv.Atoi(s)
	return c, c >= 100 && c <= 599
}
