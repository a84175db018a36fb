package config

import (
	"net/netip"
	"strconv"
	"strings"
)

// Encoded-slash policies accepted in Server.EncodedSlashes.
const (
	// EncodedSlashesReject answers 400 to a path holding %2F (as Apache's
	// default AllowEncodedSlashes Off does): a node that decodes it would
	// see another path than the one routed.
	EncodedSlashesReject = "reject"
	// EncodedSlashesDecode turns %2F into "/" before routing.
	EncodedSlashesDecode = "decode"
	// EncodedSlashesKeep keeps %2F as it is, inside one path segment.
	EncodedSlashesKeep = "keep"
)

// Rate-limit keys accepted in RateLimit.Key.
const (
	RateKeyClientIP = "client_ip"
	RateKeyRoute    = "route"
)

// RateLimit is a token bucket: RequestsPerSecond tokens are added each
// second up to Burst, a request takes one, and a request that finds none
// is answered 429 with Retry-After.
type RateLimit struct {
	// RequestsPerSecond is the sustained rate; fractions are allowed
	// (0.5 is one request every two seconds). Required, > 0.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is the bucket size: requests allowed at once after a quiet
	// period. Default: RequestsPerSecond rounded up, at least 1.
	Burst int `yaml:"burst"`
	// Key is "client_ip" (one bucket per client address) or "route" (one
	// bucket for the whole route; only in a route's rate_limit).
	// Default: "client_ip".
	Key string `yaml:"key"`
	// MaxClients bounds the client addresses tracked; when it is reached,
	// buckets that are full again are dropped first (a client whose
	// bucket is dropped starts again with a full one). Default: 100000.
	MaxClients int `yaml:"max_clients"`
}

// Access is a route's access control by client address, evaluated on
// the real client address (the peer, or what a trusted proxy says in
// X-Forwarded-For). A client in Deny is refused; otherwise, when Allow
// is set, a client outside it is refused. Refused requests get 403.
type Access struct {
	// Allow lists CIDRs (or addresses). Empty allows every client that
	// Deny does not refuse.
	Allow []string `yaml:"allow"`
	// Deny lists CIDRs (or addresses) refused even when Allow holds them.
	Deny []string `yaml:"deny"`

	// AllowNets and DenyNets are Allow and Deny parsed (set by Validate).
	AllowNets []netip.Prefix `yaml:"-"`
	DenyNets  []netip.Prefix `yaml:"-"`
}

const (
	defaultMaxHeaderCount     = 100
	defaultMaxRequestsPerConn = 10000
	defaultRateMaxClients     = 100000
)

func (s *Server) applyLimitDefaults(set func(string) bool) {
	defaultInt(&s.MaxHeaderCount, defaultMaxHeaderCount, set, "server.max_header_count")
	defaultInt(&s.MaxRequestsPerConnection, defaultMaxRequestsPerConn, set, "server.max_requests_per_connection")
	defaultString(&s.EncodedSlashes, EncodedSlashesReject, set, "server.encoded_slashes")
	if s.MergeSlashes == nil {
		merge := true
		s.MergeSlashes = &merge
	}
	if s.RateLimit != nil {
		s.RateLimit.applyDefaults("server.rate_limit", set)
	}
}

func (r *RateLimit) applyDefaults(p string, set func(string) bool) {
	defaultString(&r.Key, RateKeyClientIP, set, p+".key")
	defaultInt(&r.MaxClients, defaultRateMaxClients, set, p+".max_clients")
	if r.Burst == 0 && !set(p+".burst") {
		r.Burst = max(1, int(r.RequestsPerSecond+0.999999))
	}
}

func (s *Server) validateLimits(v *validator) {
	if s.MaxHeaderCount < 1 || s.MaxHeaderCount > 10000 {
		v.add("server.max_header_count", "must be between 1 and 10000, got %d", s.MaxHeaderCount)
	}
	if s.MaxRequestsPerConnection < 0 {
		v.add("server.max_requests_per_connection", "must not be negative (0 means no limit), got %d", s.MaxRequestsPerConnection)
	}
	if s.MaxConnectionsPerIP < 0 {
		v.add("server.max_connections_per_ip", "must not be negative (0 means no limit), got %d", s.MaxConnectionsPerIP)
	}
	switch s.EncodedSlashes {
	case EncodedSlashesReject, EncodedSlashesDecode, EncodedSlashesKeep:
	default:
		v.add("server.encoded_slashes", "must be %q, %q or %q, got %q", EncodedSlashesReject, EncodedSlashesDecode, EncodedSlashesKeep, s.EncodedSlashes)
	}
	if s.RateLimit != nil {
		s.RateLimit.validate(v, "server.rate_limit", false)
	}
}

func (r *RateLimit) validate(v *validator, p string, route bool) {
	if !(r.RequestsPerSecond > 0) || r.RequestsPerSecond > 1e9 {
		v.add(p+".requests_per_second", "must be greater than 0 (and at most 1e9), got %v", r.RequestsPerSecond)
	}
	if r.Burst < 1 {
		v.add(p+".burst", "must be at least 1, got %d", r.Burst)
	}
	switch {
	case r.Key == RateKeyClientIP:
	case r.Key == RateKeyRoute && route:
	case route:
		v.add(p+".key", "must be %q or %q, got %q", RateKeyClientIP, RateKeyRoute, r.Key)
	default:
		v.add(p+".key", "must be %q here, got %q", RateKeyClientIP, r.Key)
	}
	if r.MaxClients < 1 {
		v.add(p+".max_clients", "must be at least 1, got %d", r.MaxClients)
	}
}

func (a *Access) validate(v *validator, p string) {
	a.AllowNets = parseNets(v, p+".allow", a.Allow)
	a.DenyNets = parseNets(v, p+".deny", a.Deny)
	if len(a.Allow) == 0 && len(a.Deny) == 0 {
		v.add(p, "set allow, deny or both")
	}
}

// parseNets parses a list of CIDRs or addresses, reporting each bad one.
func parseNets(v *validator, p string, list []string) []netip.Prefix {
	var nets []netip.Prefix
	for j, s := range list {
		pfx, ok := parsePrefix(s)
		if !ok {
			v.add(joinIndex(p, j), "invalid address %q: must be an IP address or a CIDR such as \"10.0.0.0/8\"", strings.TrimSpace(s))
			continue
		}
		nets = append(nets, pfx)
	}
	return nets
}

// nonNormalPath says why a configured path would never match a request,
// whose path edge normalises first (dot-segments removed, empty segments
// merged when configured, unreserved characters decoded), or "" when it
// is in normal form.
func nonNormalPath(p string, mergeSlashes bool) string {
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return "must not contain dot-segments (\"/./\", \"/../\"): requests are matched after those are removed"
		}
	}
	if mergeSlashes && strings.Contains(p, "//") {
		return "must not contain \"//\": requests are matched after empty segments are merged (server.merge_slashes)"
	}
	for i := 0; i+2 < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		hi, lo := unhexDigit(p[i+1]), unhexDigit(p[i+2])
		if hi < 0 || lo < 0 {
			return "has an invalid percent-encoding at byte " + strconv.Itoa(i)
		}
		if c := byte(hi<<4 | lo); isUnreservedByte(c) {
			return "must not percent-encode the unreserved character " + strconv.QuoteRune(rune(c)) + ": requests are matched after it is decoded"
		}
	}
	return ""
}

func unhexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isUnreservedByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
