// Package config defines edge's configuration file: its types, loading with
// environment expansion, defaults, and validation that reports every problem
// with a field path and line number.
//
// Runtime packages never parse YAML: they receive a *Config that Load has
// defaulted and validated, and must treat it as immutable. A *Config may be
// read by any number of goroutines at once.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"regexp"
)

// Config is the whole configuration file.
type Config struct {
	// Listeners are the public HTTP listeners. Default: one listener on ":8080".
	Listeners []Listener `yaml:"listeners"`
	// Admin is the admin listener (metrics, reload, runtime state).
	Admin Admin `yaml:"admin"`
	// Server holds client-side timeouts, limits and trusted proxies.
	Server Server `yaml:"server"`
	// AccessLog configures the access log. Default: off.
	AccessLog AccessLog `yaml:"access_log"`
	// Watch reloads the configuration when the file changes (debounced).
	// Default: false; SIGHUP and the admin API always reload.
	Watch bool `yaml:"watch"`
	// TLS configures certificates for HTTPS listeners, and HSTS.
	TLS TLS `yaml:"tls"`
	// Upstreams are the named pools of nodes that routes proxy to.
	Upstreams map[string]*Upstream `yaml:"upstreams"`
	// Cache is the shared HTTP cache that routes with a cache section use.
	Cache Cache `yaml:"cache"`
	// Routes are evaluated in file order; the first route whose every
	// match condition holds handles the request.
	Routes []*Route `yaml:"routes"`

	// File is the path the configuration was loaded from (set by Load).
	File string `yaml:"-"`
}

// Listener is one public listener.
type Listener struct {
	// Name labels the listener in logs. Default: "http", "http2", … by position.
	Name string `yaml:"name"`
	// Address is host:port to listen on. Required.
	Address string `yaml:"address"`
	// TLS makes this an HTTPS listener, with certificates from the top-level
	// tls section. Default: false (plain HTTP).
	TLS bool `yaml:"tls"`
	// ProxyProtocol, when set, makes the listener expect a PROXY protocol
	// header (v1 or v2) on every connection, as sent by a cloud network
	// load balancer, and take the client address from it. Default: off.
	ProxyProtocol *ProxyProtocol `yaml:"proxy_protocol"`
}

// ProxyProtocol configures the PROXY protocol (HAProxy's v1 text and v2
// binary headers) on a listener.
type ProxyProtocol struct {
	// From lists the CIDRs (or addresses) of the load balancers allowed to
	// send the header; a connection from anywhere else is closed, as is one
	// without a valid header. Required.
	From []string `yaml:"from"`

	// FromNets is From parsed (set by Validate).
	FromNets []netip.Prefix `yaml:"-"`
}

// TLS versions accepted in TLS.MinVersion.
const (
	TLSVersion12 = "1.2"
	TLSVersion13 = "1.3"
)

// TLS configures HTTPS: certificates from files and from ACME, and HSTS.
type TLS struct {
	// MinVersion is "1.2" or "1.3". Default: "1.2".
	MinVersion string `yaml:"min_version"`
	// Certificates are certificate/key file pairs, chosen by SNI among their
	// names (exact names before wildcards). The first is the default for
	// clients that send no matching name. Reloaded on every reload.
	Certificates []CertificateFile `yaml:"certificates"`
	// ACME obtains and renews certificates automatically. Off when nil.
	ACME *ACME `yaml:"acme"`
	// RedirectHTTP answers every plain-HTTP request (except ACME HTTP-01
	// challenges) with a redirect to https:// (301 for GET and HEAD, 308
	// otherwise), before any route. Default: false.
	RedirectHTTP bool `yaml:"redirect_http"`
	// HSTS adds Strict-Transport-Security to HTTPS responses.
	HSTS HSTS `yaml:"hsts"`
}

// CertificateFile is a PEM certificate chain and its private key.
type CertificateFile struct {
	// Cert is the PEM certificate chain file. Required.
	Cert string `yaml:"cert"`
	// Key is the PEM private key file. Required.
	Key string `yaml:"key"`

	// Loaded is the pair read from Cert and Key, with Leaf set (set by
	// Validate).
	Loaded *tls.Certificate `yaml:"-"`
	// Names are the leaf's DNS names in lower case (its common name when it
	// has none), wildcards such as "*.example.com" included (set by
	// Validate).
	Names []string `yaml:"-"`
}

// ACME configures automatic certificates (certmagic).
type ACME struct {
	// CA is the ACME directory URL. Default: Let's Encrypt's production
	// directory.
	CA string `yaml:"ca"`
	// Email is the account's contact address.
	Email string `yaml:"email"`
	// Agreed must be true: it accepts the CA's terms of service.
	Agreed bool `yaml:"agreed"`
	// EAB is External Account Binding, for CAs that require it.
	EAB *EAB `yaml:"eab"`
	// Names are host names to obtain certificates for, besides the exact
	// host names of routes (when FromRoutes is true).
	Names []string `yaml:"names"`
	// FromRoutes also manages every exact host name in routes' match.hosts.
	// Default: true.
	FromRoutes *bool `yaml:"from_routes"`
	// OnDemand obtains a certificate at the first handshake for a name that
	// the configuration allows (Names, route hosts, and names under route
	// wildcards like *.example.com), never for any other name. Default: false.
	OnDemand bool `yaml:"on_demand"`
	// Storage is the directory holding certificates, keys and locks; several
	// edge instances may share it. Default: "/var/lib/edge/certificates".
	Storage string `yaml:"storage"`
	// TrustedRoots is a PEM file of CA certificates to trust for the ACME
	// server's own HTTPS (a private CA, or Pebble in tests). Default: the
	// system's roots.
	TrustedRoots string `yaml:"trusted_roots"`
	// Challenges are the challenge types to use: "http-01" (answered on
	// plain-HTTP listeners) and "tls-alpn-01" (on HTTPS listeners).
	// Default: both.
	Challenges []string `yaml:"challenges"`

	// RootPool is TrustedRoots read, or nil for the system's roots (set by
	// Validate).
	RootPool *x509.CertPool `yaml:"-"`
}

// EAB is an External Account Binding (RFC 8555 §7.3.4).
type EAB struct {
	// KeyID is the key identifier given by the CA. Required.
	KeyID string `yaml:"key_id"`
	// MACKey is the base64url HMAC key given by the CA. Required.
	MACKey string `yaml:"mac_key"`
}

// HSTS configures the Strict-Transport-Security header (RFC 6797).
type HSTS struct {
	// MaxAge enables HSTS when > 0, e.g. "8760h". Default: 0, off.
	MaxAge Duration `yaml:"max_age"`
	// IncludeSubdomains adds includeSubDomains.
	IncludeSubdomains bool `yaml:"include_subdomains"`
	// Preload adds preload.
	Preload bool `yaml:"preload"`
}

// UpstreamTLS configures HTTPS from edge to a pool's nodes.
type UpstreamTLS struct {
	// CA is a PEM file of CA certificates to verify nodes with. Default:
	// the system's roots.
	CA string `yaml:"ca"`
	// ServerName is the name to verify (and send as SNI). Default: the
	// node address's host.
	ServerName string `yaml:"server_name"`
	// Cert and Key are a client certificate for mutual TLS. Optional.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// InsecureSkipVerify disables verification of the node's certificate.
	// Default: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`

	// RootPool is CA read, or nil for the system's roots (set by Validate).
	RootPool *x509.CertPool `yaml:"-"`
	// ClientCert is Cert and Key read, with Leaf set, or nil (set by
	// Validate).
	ClientCert *tls.Certificate `yaml:"-"`
}

// Admin is the admin listener: /metrics, /reload, /healthz, /config.
type Admin struct {
	// Address is host:port. Default: "127.0.0.1:9901". "off" disables it.
	Address string `yaml:"address"`
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every admin request except /healthz, or as the session cookie that
	// the status page's login (POST /login) sets from it. Default: empty
	// (no token).
	Token string `yaml:"token"`
}

// Server holds the settings of the public listeners that concern clients.
type Server struct {
	// ReadHeaderTimeout bounds reading a request's header, from its first
	// byte on a new connection (slow-loris defence). Answered with 408.
	// Default: 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// BodyTimeout bounds the wait between two reads of a request body
	// (like nginx's client_body_timeout), so large uploads may take as long
	// as they keep moving. Default: 60s.
	BodyTimeout Duration `yaml:"body_timeout"`
	// SendTimeout bounds the wait between two writes of a response to the
	// client (like nginx's send_timeout). Default: 60s.
	SendTimeout Duration `yaml:"send_timeout"`
	// IdleTimeout closes a keep-alive client connection idle this long.
	// Default: 75s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// GracePeriod is how long a graceful stop waits for in-flight requests.
	// Default: 30s.
	GracePeriod Duration `yaml:"grace_period"`
	// MaxHeaderBytes bounds the request line plus header; larger requests
	// get 431. Default: 16KiB.
	MaxHeaderBytes Size `yaml:"max_header_bytes"`
	// MaxURIBytes bounds the request target; longer ones get 414.
	// Default: 8KiB.
	MaxURIBytes Size `yaml:"max_uri_bytes"`
	// MaxBodyBytes bounds a request body; larger ones get 413. 0 means no
	// limit. Default: 64MiB.
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// MaxConnections bounds concurrent client connections. Default: 10000.
	MaxConnections int `yaml:"max_connections"`
	// MaxHeaderCount bounds the number of request header fields; more get
	// 431. Default: 100.
	MaxHeaderCount int `yaml:"max_header_count"`
	// MaxRequestsPerConnection closes a keep-alive client connection after
	// this many requests (0: no limit). Default: 10000.
	MaxRequestsPerConnection int `yaml:"max_requests_per_connection"`
	// MaxConnectionsPerIP bounds concurrent connections from one client
	// address; further ones are closed at once. 0 means no limit.
	// Default: 0.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// RateLimit limits requests per client address, before routing (each
	// route may add its own). Default: off.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// MergeSlashes merges empty path segments ("//") before routing, as
	// nginx's merge_slashes does. Default: true.
	MergeSlashes *bool `yaml:"merge_slashes"`
	// EncodedSlashes says what happens to "%2F" in a path: "reject" (400),
	// "decode" (to "/", before routing) or "keep". Default: "reject".
	EncodedSlashes string `yaml:"encoded_slashes"`
	// TrustedProxies are CIDRs (or single addresses) whose X-Forwarded-For,
	// X-Forwarded-Proto, X-Forwarded-Host and Forwarded headers are believed
	// and extended; from any other peer they are replaced. Default: none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// HTTP2 configures HTTP/2 to clients on TLS listeners.
	HTTP2 HTTP2 `yaml:"http2"`
	// Tunnels configures upgraded connections (WebSocket) passed through.
	Tunnels Tunnels `yaml:"tunnels"`

	// TrustedNets is TrustedProxies parsed (set by Validate).
	TrustedNets []netip.Prefix `yaml:"-"`
}

// AccessLog configures the access log.
type AccessLog struct {
	// Format is "off", "combined" or "json". Default: "off".
	Format string `yaml:"format"`
	// Path is the file to append to; empty or "-" means standard error.
	Path string `yaml:"path"`
}

// Balancing policy names accepted in Upstream.Policy.
const (
	PolicyRandomTwo      = "random_two"
	PolicyRoundRobin     = "round_robin"
	PolicyLeastConn      = "least_conn"
	PolicyConsistentHash = "consistent_hash"
)

// Upstream is a named pool of nodes.
type Upstream struct {
	// Policy picks a node for each request: "random_two" (power of two
	// random choices by in-flight load, weighted), "round_robin" (smooth
	// weighted), "least_conn" (weighted) or "consistent_hash".
	// Default: "random_two".
	Policy string `yaml:"policy"`
	// Hash configures "consistent_hash"; ignored by other policies.
	Hash Hash `yaml:"hash"`
	// Nodes are the pool's static members. At least one is required unless
	// Discovery finds them.
	Nodes []Node `yaml:"nodes"`
	// ConnectTimeout bounds dialing a node. Default: 2s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// ResponseHeaderTimeout bounds the wait from sending the request to
	// receiving the response header; exceeded gives 504. Default: 60s.
	ResponseHeaderTimeout Duration `yaml:"response_header_timeout"`
	// IdleTimeout closes a keep-alive connection to a node idle this long.
	// Default: 60s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxConnsPerNode bounds open connections to each node. Default: 512.
	MaxConnsPerNode int `yaml:"max_conns_per_node"`
	// ConnWaitTimeout is how long a request waits for a free connection when
	// a node is at MaxConnsPerNode, before it is answered 503. Default: 1s.
	ConnWaitTimeout Duration `yaml:"conn_wait_timeout"`
	// HealthCheck configures active health checks; off unless Path is set.
	HealthCheck HealthCheck `yaml:"health_check"`
	// Passive configures outlier detection from live traffic.
	Passive Passive `yaml:"passive"`
	// Retries configures retries after a request was sent to a node.
	// (A request that could not be sent, because the connection failed,
	// always goes to another node.)
	Retries Retries `yaml:"retries"`
	// SlowStart ramps the share of traffic of a node that comes back (or is
	// new) from 10% to full over this period. Default: 0, off.
	SlowStart Duration `yaml:"slow_start"`
	// AllDown says what happens when no node of the pool is available:
	// "fail" answers 503 at once; "try_all" tries the nodes anyway.
	// Default: "fail".
	AllDown string `yaml:"all_down"`
	// Discovery takes the pool's nodes from DNS, in addition to Nodes.
	Discovery Discovery `yaml:"discovery"`
	// TLS, when set, makes edge speak HTTPS to the nodes (and to their
	// health checks).
	TLS *UpstreamTLS `yaml:"tls"`
}

// All-down policies accepted in Upstream.AllDown.
const (
	AllDownFail   = "fail"
	AllDownTryAll = "try_all"
)

// HealthCheck is an active HTTP health check, sent to every node of a pool.
type HealthCheck struct {
	// Path is the request path, e.g. "/health". Empty disables active checks.
	Path string `yaml:"path"`
	// Method is the request method. Default: "GET".
	Method string `yaml:"method"`
	// Host is the Host header. Default: the node's address.
	Host string `yaml:"host"`
	// Port, when set, is probed instead of the node's own port.
	Port int `yaml:"port"`
	// Interval between two checks of a node (each one jittered by ±10%).
	// A new or changed node is checked at once. Default: 2s.
	Interval Duration `yaml:"interval"`
	// Timeout bounds one check. Default: 1s.
	Timeout Duration `yaml:"timeout"`
	// ExpectStatus lists the statuses that pass: codes ("200"), classes
	// ("2xx") or ranges ("200-399"). Default: ["2xx", "3xx"].
	ExpectStatus []string `yaml:"expect_status"`
	// ExpectBody, when set, must occur in the response body.
	ExpectBody string `yaml:"expect_body"`
	// Rise is how many passing checks in a row bring a down node up.
	// Default: 2.
	Rise int `yaml:"rise"`
	// Fall is how many failing checks in a row take an up node down.
	// Default: 3.
	Fall int `yaml:"fall"`
}

// Passive is outlier detection: nodes failing live requests are ejected.
type Passive struct {
	// ConsecutiveFailures (connect failures, timeouts, 5xx answers) eject
	// a node. 0 disables passive checks. Default: 5.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// EjectionTime is how long the first ejection lasts; each further
	// ejection doubles it. Default: 10s.
	EjectionTime Duration `yaml:"ejection_time"`
	// MaxEjectionTime caps the ejection time. Default: 5m.
	MaxEjectionTime Duration `yaml:"max_ejection_time"`
}

// Retries configures retries of requests that reached a node.
type Retries struct {
	// Attempts is how many more nodes a request may be sent to after a
	// failure, each a different node. Default: 2.
	Attempts int `yaml:"attempts"`
	// On lists the failures retried: "reset" (the connection broke before
	// a response), "timeout", and statuses "500", "502", "503", "504".
	// Default: [reset, timeout, "502", "503", "504"]. Only idempotent
	// requests are retried unless the route sets retry_non_idempotent.
	On []string `yaml:"on"`
	// BudgetPercent caps retries at this share of the pool's requests, so
	// retries cannot turn a brown-out into an outage. Default: 20.
	BudgetPercent float64 `yaml:"budget_percent"`
	// BudgetMinPerSecond is always allowed, whatever the share. Default: 3.
	BudgetMinPerSecond int `yaml:"budget_min_per_second"`
}

// Discovery sources for a pool's nodes.
type Discovery struct {
	// DNS takes nodes from SRV or A/AAAA records.
	DNS *DNSDiscovery `yaml:"dns"`
}

// DNS record types accepted in DNSDiscovery.Type.
const (
	DNSTypeSRV  = "SRV"
	DNSTypeA    = "A"
	DNSTypeAAAA = "AAAA"
)

// DNSDiscovery resolves a pool's nodes from DNS, re-resolving when the
// answer's TTL expires. When the resolver fails, the last good answer stays.
type DNSDiscovery struct {
	// Name is the name to resolve, e.g. "_http._tcp.app.internal" (SRV) or
	// "app.internal" (A/AAAA). Required.
	Name string `yaml:"name"`
	// Type is "SRV", "A" or "AAAA". Default: "SRV" for names starting with
	// "_", else "A".
	Type string `yaml:"type"`
	// Port of the nodes, for A and AAAA records. Required for those.
	Port int `yaml:"port"`
	// Resolver is the DNS server's host:port. Default: the first
	// nameserver of /etc/resolv.conf.
	Resolver string `yaml:"resolver"`
	// MinTTL and MaxTTL clamp the re-resolution period. Defaults: 1s, 5m.
	MinTTL Duration `yaml:"min_ttl"`
	MaxTTL Duration `yaml:"max_ttl"`
	// Timeout bounds one query. Default: 2s.
	Timeout Duration `yaml:"timeout"`
}

// Hash sources accepted in Hash.Source.
const (
	HashClientIP = "client_ip"
	HashHeader   = "header"
	HashCookie   = "cookie"
)

// Hash configures consistent hashing.
type Hash struct {
	// Source is "client_ip", "header" or "cookie". Default: "client_ip".
	Source string `yaml:"source"`
	// Name is the header or cookie name; required for those sources.
	Name string `yaml:"name"`
	// LoadFactor bounds a node's in-flight requests to LoadFactor times the
	// pool's average (consistent hashing with bounded loads), so one hot key
	// cannot overload a node. Must be ≥ 1; 0 means the default, 1.25.
	LoadFactor float64 `yaml:"load_factor"`
}

// Node is one backend server.
type Node struct {
	// Name labels the node in metrics and logs. Default: the address.
	Name string `yaml:"name"`
	// Address is host:port. Required.
	Address string `yaml:"address"`
	// Weight is the node's relative share of traffic, 1–1000. Default: 1.
	Weight int `yaml:"weight"`
	// Backup nodes take traffic only when no primary node is available.
	Backup bool `yaml:"backup"`
}

// Route matches requests and says what to do with them: exactly one of
// Proxy, Redirect or Respond.
type Route struct {
	// Name labels the route in metrics and logs. Default: "route<index>".
	Name string `yaml:"name"`
	// Match lists the conditions; all must hold. Empty matches everything.
	Match Match `yaml:"match"`
	// Proxy is the name of the upstream to proxy to.
	Proxy string `yaml:"proxy"`
	// Redirect answers with a redirect.
	Redirect *Redirect `yaml:"redirect"`
	// Respond answers with a fixed response.
	Respond *Respond `yaml:"respond"`
	// RequestHeaders edit the request before it is sent to a node.
	RequestHeaders HeaderRules `yaml:"request_headers"`
	// ResponseHeaders edit the response before it is sent to the client,
	// for every action.
	ResponseHeaders HeaderRules `yaml:"response_headers"`
	// RetryNonIdempotent lets the pool's retries re-send requests with
	// non-idempotent methods (POST, PATCH) that already reached a node,
	// when their body was held in memory. Default: false.
	RetryNonIdempotent bool `yaml:"retry_non_idempotent"`
	// Access allows or denies clients by address (403). Default: all
	// clients allowed.
	Access *Access `yaml:"access"`
	// RateLimit limits the route's requests, per client address or for
	// the whole route (429). Default: off.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// Cache stores the route's responses and answers from them (RFC
	// 9111). Default: off.
	Cache *RouteCache `yaml:"cache"`
}

// Match holds a route's conditions.
type Match struct {
	// Hosts are exact host names or "*.example.com" wildcards (one or more
	// labels in front of example.com), compared case-insensitively and
	// without the port. Empty means any host.
	Hosts []string `yaml:"hosts"`
	// Path matches the request path exactly.
	Path string `yaml:"path"`
	// PathPrefix matches paths that start with it.
	PathPrefix string `yaml:"path_prefix"`
	// PathRegex is a Go (RE2) regular expression searched in the path;
	// anchor it with ^ and $ as needed.
	PathRegex string `yaml:"path_regex"`
	// Methods are request methods (upper case). Empty means any.
	Methods []string `yaml:"methods"`
	// Headers must all be present (and equal, when Value is set).
	Headers []HeaderMatch `yaml:"headers"`

	// PathRegexp is PathRegex compiled (set by Validate).
	PathRegexp *regexp.Regexp `yaml:"-"`
}

// HeaderMatch is one header condition.
type HeaderMatch struct {
	// Name is the header name (case-insensitive). Required.
	Name string `yaml:"name"`
	// Value, when set, must equal the header's value exactly.
	Value string `yaml:"value"`
}

// Redirect answers with a 3xx and a Location built from the request.
//
// Either To is a template, or one shorthand builds the target. A route
// whose shorthand would not change the URL does not match, so a shorthand
// can never redirect to itself.
type Redirect struct {
	// To is the target template. Placeholders: {scheme}, {host} (with port
	// if the client sent one), {hostname} (without port), {path}, {query}
	// (without "?"), {uri} (path and query, as requested) and {rest} (the
	// path after the route's path_prefix).
	To string `yaml:"to"`
	// Status is 301, 302, 303, 307 or 308. Default: 301 for GET and HEAD
	// and 308 for other methods, so a method and body are never lost.
	Status int `yaml:"status"`
	// DropQuery removes the request's query string from the target (when
	// the template does not place {query} or {uri} itself). Default: false,
	// the query string is kept.
	DropQuery bool `yaml:"drop_query"`
	// HTTPS redirects plain-HTTP requests to https:// on the same host.
	HTTPS bool `yaml:"https"`
	// WWW is "add" (example.com → www.example.com) or "remove".
	WWW string `yaml:"www"`
	// TrailingSlash is "add" (/a → /a/) or "remove" (/a/ → /a).
	TrailingSlash string `yaml:"trailing_slash"`
	// Prefix replaces the route's match.path_prefix with this value, keeping
	// the rest of the path: a path prefix move.
	Prefix string `yaml:"prefix"`

	// Template is To parsed (set by Validate); nil for shorthands.
	Template Template `yaml:"-"`
}

// Respond is a fixed response, e.g. a maintenance page.
type Respond struct {
	// Status is the HTTP status code. Default: 200.
	Status int `yaml:"status"`
	// Headers are set on the response.
	Headers map[string]string `yaml:"headers"`
	// Body is the response body. Default: empty.
	Body string `yaml:"body"`
}

// HeaderRules edit headers: Remove first, then Set, then Add.
type HeaderRules struct {
	// Set replaces any existing values of each header.
	Set map[string]string `yaml:"set"`
	// Add appends a value, keeping existing ones.
	Add map[string]string `yaml:"add"`
	// Remove deletes headers by name.
	Remove []string `yaml:"remove"`
}
