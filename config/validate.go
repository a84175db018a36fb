package config

import (
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
)

// Limits and special values that Validate enforces.
const (
	// AdminOff is the admin address that disables the admin listener.
	AdminOff = "off"
	// MaxNodes is the most nodes an upstream may have.
	MaxNodes = 256
	// MaxWeight is the largest node weight.
	MaxWeight = 1000
)

// applyDefaults fills every default documented on the types, and
// normalises match hosts to lower case and methods to upper case.
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
	defaultString(&c.AccessLog.Format, defaultAccessLogFormat, set, "access_log.format")

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
// others: Server.TrustedNets, Match.PathRegexp and Redirect.Template.
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

func (c *Config) validateServer(v *validator) {
	s := &c.Server
	s.TrustedNets = nil
	for i, t := range s.TrustedProxies {
		p := joinIndex("server.trusted_proxies", i)
		t = strings.TrimSpace(t)
		if pfx, err := netip.ParsePrefix(t); err == nil {
			s.TrustedNets = append(s.TrustedNets, pfx.Masked())
			continue
		}
		if a, err := netip.ParseAddr(t); err == nil {
			a = a.WithZone("")
			s.TrustedNets = append(s.TrustedNets, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		v.add(p, "invalid trusted proxy %q: must be an IP address or a CIDR such as \"10.0.0.0/8\"", t)
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
		v.add(p, "upstream is empty: at least one node is required")
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

	switch {
	case len(u.Nodes) == 0:
		v.add(p+".nodes", "at least one node is required")
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
	if len(u.Nodes) > 0 && primaries == 0 {
		v.add(p+".nodes", "at least one node must not be a backup")
	}
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

	validateMatch(v, p+".match", &r.Match)
	if r.Redirect != nil {
		validateRedirect(v, p, r)
	}
	if r.Respond != nil {
		validateRespond(v, p+".respond", r.Respond)
	}
	validateHeaderRules(v, p+".request_headers", &r.RequestHeaders, true)
	validateHeaderRules(v, p+".response_headers", &r.ResponseHeaders, false)
}

func validateMatch(v *validator, p string, m *Match) {
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
