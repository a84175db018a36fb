package router

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/cache"
	"github.com/edge-router/edge/config"
)

// Explanation is what edge does with one request, step by step as the
// public listeners' handler takes it: the request as routed, the route
// that handles it and why every other one does not, the pool and the
// node it goes to, the cache entry it may be answered from, or the
// answer edge gives itself and why. It is what `edge explain` prints
// and GET /explain answers.
type Explanation struct {
	// Mode is "live" (a running edge: real node health and cache) or
	// "offline" (from a configuration file alone).
	Mode string `json:"mode"`
	// Notes are caveats of the evaluation (defaults assumed, what offline
	// mode cannot know).
	Notes []string `json:"notes,omitempty"`
	// Request is the request as edge reads and routes it.
	Request ExplainedRequest `json:"request"`
	// Outcome is "route" (a route handles the request), "error" (edge
	// refuses it before any route: Status and Error say how), "purge"
	// (the cache's PURGE handling takes it) or "acme_challenge" (an ACME
	// HTTP-01 validation request, answered by edge).
	Outcome string `json:"outcome"`
	// Status is the status edge answers with itself: its own errors,
	// redirects and fixed responses. 0 when a node answers.
	Status int `json:"status,omitempty"`
	// Error is the reason code of edge's own error answer (the access
	// log's and edge_http_client_errors_total's reason where there is
	// one): "uri_too_long", "header_too_large", "bad_request",
	// "bad_path", "no_route", "access_denied", "purge_not_configured",
	// "only_if_cached". Empty when the request is served.
	Error string `json:"error,omitempty"`
	// Detail says in words why edge answers Status itself.
	Detail string `json:"detail,omitempty"`
	// Route is the route that handles the request, if one does.
	Route *ExplainedRoute `json:"route,omitempty"`
	// NotMatched lists every other route, in configuration order, with
	// the reason it does not handle the request.
	NotMatched []RouteMiss `json:"routes_not_matched"`
	// RateLimits are the rate limits the request counts against.
	RateLimits []ExplainedRateLimit `json:"rate_limits,omitempty"`
	// Pool is where a proxy route sends the request.
	Pool *ExplainedPool `json:"pool,omitempty"`
	// Cache is the route's cache lookup, for routes with a cache.
	Cache *ExplainedCache `json:"cache,omitempty"`
}

// ExplainedRequest is a request as edge reads it.
type ExplainedRequest struct {
	Method string `json:"method"`
	// Scheme is "http" or "https" (the listener kind it arrives on).
	Scheme string `json:"scheme"`
	// HostHeader is the Host field as sent.
	HostHeader string `json:"host_header"`
	// Host is what routes match: lower case, without port or final dot.
	Host string `json:"host"`
	// Target is the request-target as sent.
	Target string `json:"target"`
	// Path is the normalised path that routes match (empty when the
	// request is refused before normalisation).
	Path string `json:"path,omitempty"`
	// Forwarded is the request-target sent to a node, when normalisation
	// changed it.
	Forwarded string `json:"forwarded_target,omitempty"`
	// Peer is the connection's address (the -client given).
	Peer string `json:"peer"`
	// Client is the client's address as access lists, rate limits and
	// hashing see it: Peer, or what a trusted proxy says in
	// X-Forwarded-For.
	Client string `json:"client"`
}

// ExplainedRoute is the route that handles a request.
type ExplainedRoute struct {
	Name string `json:"name"`
	// Index is the route's position in the file; -1 for the built-in
	// redirect of tls.redirect_http.
	Index int `json:"index"`
	// Match summarises the route's conditions.
	Match string `json:"match"`
	// Action is "proxy", "redirect" or "respond".
	Action string `json:"action"`
	// Pool is the upstream of a proxy route.
	Pool string `json:"pool,omitempty"`
	// Location is a redirect's target for this request.
	Location string `json:"location,omitempty"`
	// BodyBytes is the length of a fixed response's body.
	BodyBytes int `json:"body_bytes,omitempty"`
	// Access is the route's access list and its verdict on the client.
	Access *ExplainedAccess `json:"access,omitempty"`
	// RequestHeaders and ResponseHeaders are the route's header rules
	// ("set X-Name", "add X-Name", "remove X-Name"); request rules apply
	// to proxied requests, response rules to every answer.
	RequestHeaders  []string `json:"request_headers,omitempty"`
	ResponseHeaders []string `json:"response_headers,omitempty"`
}

// ExplainedAccess is a route's access list applied to a client.
type ExplainedAccess struct {
	Allow   []string `json:"allow,omitempty"`
	Deny    []string `json:"deny,omitempty"`
	Client  string   `json:"client"`
	Allowed bool     `json:"allowed"`
}

// RouteMiss is a route that does not handle a request, and why.
type RouteMiss struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// ExplainedRateLimit is a token bucket a request takes a token from.
// Explaining a request takes none, so whether the bucket is empty now
// is not known.
type ExplainedRateLimit struct {
	// Scope is "server" (before routing) or "route".
	Scope             string  `json:"scope"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	Burst             int     `json:"burst"`
	// Key is "client_ip" or "route".
	Key string `json:"key"`
}

// ExplainedPool is the pool a request goes to and the node it would get.
type ExplainedPool struct {
	Name    string `json:"name"`
	Policy  string `json:"policy"`
	AllDown string `json:"all_down"`
	// Hash says what a consistent_hash pool hashes for this request.
	Hash string `json:"hash,omitempty"`
	// Chosen is the node the pool's balancer picks now, empty when none
	// is available.
	Chosen        string `json:"chosen,omitempty"`
	ChosenAddress string `json:"chosen_address,omitempty"`
	// Choice says how the node was chosen, or why none was.
	Choice string          `json:"choice"`
	Nodes  []ExplainedNode `json:"nodes"`
}

// ExplainedNode is a node of a pool and its state.
type ExplainedNode struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is "up", "down", "draining" or "maint".
	State string `json:"state"`
	// Health is the active-check state: "up", "down" or "unchecked".
	Health string `json:"health"`
	Reason string `json:"reason,omitempty"`
	Backup bool   `json:"backup,omitempty"`
	Weight int    `json:"weight"`
	// InFlight is the requests the node is serving now.
	InFlight int64 `json:"in_flight"`
	// Available says the balancer may give the node requests.
	Available bool `json:"available"`
}

// ExplainedCache is a route's cache lookup for a request.
type ExplainedCache struct {
	// Key is the primary cache key, as the route builds it.
	Key string `json:"key,omitempty"`
	// VaryOn are the request fields (and "cookie:NAME") that the route
	// adds to the key; a stored response's Vary adds its own.
	VaryOn []string `json:"vary_on,omitempty"`
	// Cached says a stored response exists for this request (its key and
	// its variant).
	Cached bool `json:"cached"`
	// Variants is the number of responses stored under the key (for any
	// variant).
	Variants int `json:"variants"`
	// Answer is what the cache does: "hit", "hit-stale" (max-stale),
	// "stale-while-revalidate", "revalidate", "miss", "vary-miss",
	// "bypass" (the method is not answered from the cache).
	Answer string `json:"answer"`
	// Detail says why, in words.
	Detail string `json:"detail,omitempty"`
	// Entry is the stored response for this request, when there is one.
	Entry *ExplainedEntry `json:"entry,omitempty"`
}

// ExplainedEntry is a stored response.
type ExplainedEntry struct {
	Status int `json:"status"`
	// AgeSeconds is its current age (RFC 9111 §4.2.3).
	AgeSeconds int64 `json:"age_seconds"`
	// TTLSeconds is how long it stays fresh; negative once stale.
	TTLSeconds int64 `json:"ttl_seconds"`
	// Stale says the freshness lifetime is over.
	Stale bool `json:"stale"`
	// SoftPurged says a soft purge marked it stale.
	SoftPurged bool `json:"soft_purged,omitempty"`
	// StaleWhileRevalidateSeconds and StaleIfErrorSeconds are its stale
	// windows.
	StaleWhileRevalidateSeconds int64 `json:"stale_while_revalidate_seconds,omitempty"`
	StaleIfErrorSeconds         int64 `json:"stale_if_error_seconds,omitempty"`
	// Vary are the request fields that select the variant.
	Vary  []string `json:"vary,omitempty"`
	Tags  []string `json:"tags,omitempty"`
	Bytes int64    `json:"bytes"`
}

// Explanation outcomes.
const (
	OutcomeRoute = "route"
	OutcomeError = "error"
	OutcomePurge = "purge"
	OutcomeACME  = "acme_challenge"
)

// DefaultExplainClient is the client address an explanation assumes
// when none is given: 192.0.2.1 (TEST-NET-1, RFC 5737), standing for
// any client on the internet.
var DefaultExplainClient = netip.MustParseAddr("192.0.2.1")

// Explain says what edge does with req now, with the current
// configuration, the nodes' health and the cache, without sending
// anything anywhere and without counting the request in metrics, rate
// limits or cache statistics. tls says the request arrives on an HTTPS
// listener; client is the connection's address (DefaultExplainClient
// when invalid). It goes through the very steps and matching code of
// the public handler. For the framing checks to see its fields, req
// should have been read from the wire form (NewExplainRequest does).
//
// The balancer's pick is a real one: for round_robin and least_conn it
// advances the pool's rotation by one step, as a request would.
func (s *Server) Explain(req *fasthttp.Request, tls bool, client netip.Addr) Explanation {
	return s.explain(req, tls, client, false)
}

// explainConn stands for a client connection in an explained request's
// context: it has addresses and is never read or written.
type explainConn struct {
	net.Conn // nil: any I/O panics, and explaining does none
	remote   net.Addr
}

func (c *explainConn) RemoteAddr() net.Addr { return c.remote }
func (c *explainConn) LocalAddr() net.Addr  { return &net.TCPAddr{} }

// explainTLSConn makes the context report TLS (fasthttp's IsTLS looks
// for these methods on the connection).
type explainTLSConn struct{ explainConn }

func (c *explainTLSConn) Handshake() error { return nil }
func (c *explainTLSConn) ConnectionState() tls.ConnectionState {
	return tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}
}

// explain is Explain; offline says the server was built from a file
// only (no health checks, no DNS, an empty cache, no ACME manager).
func (s *Server) explain(req *fasthttp.Request, isTLS bool, client netip.Addr, offline bool) Explanation {
	snap := s.snap.Load()
	e := Explanation{Mode: "live", NotMatched: []RouteMiss{}}
	if offline {
		e.Mode = "offline"
		e.Notes = append(e.Notes, "offline: node health is not known, all nodes are assumed up; the cache is empty")
	}
	if !client.IsValid() {
		client = DefaultExplainClient
		e.Notes = append(e.Notes, fmt.Sprintf("no client address given: assumed %s", client))
	}
	client = client.Unmap()

	var ctx fasthttp.RequestCtx
	ec := explainConn{remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0))}
	if isTLS {
		ctx.Init2(&explainTLSConn{ec}, quietLogger{}, true)
	} else {
		ctx.Init2(&ec, quietLogger{}, true)
	}
	req.CopyTo(&ctx.Request)
	sc := &scratch{}

	e.Request = ExplainedRequest{
		Method:     string(ctx.Method()),
		Scheme:     schemeOf(&ctx),
		HostHeader: string(ctx.Request.Header.Host()),
		Target:     string(ctx.Request.Header.RequestURI()),
		Peer:       client.String(),
	}
	e.Request.Host = string(normalizeHost(nil, ctx.Request.Header.Host()))
	refuse := func(status int, code, detail string) Explanation {
		e.Outcome, e.Status, e.Error, e.Detail = OutcomeError, status, code, detail
		e.NotMatched = notConsidered(snap, "not considered: the request is refused before routing")
		return e
	}

	// The steps of handle, in its order.
	if len(ctx.Request.Header.RequestURI()) > snap.maxURI {
		return refuse(fasthttp.StatusRequestURITooLong, "uri_too_long",
			fmt.Sprintf("request-target of %d bytes is longer than server.max_uri_bytes (%d)", len(ctx.Request.Header.RequestURI()), snap.maxURI))
	}
	fe, fields := checkFraming(&ctx.Request.Header, snap.maxFields)
	sc.fields = fields
	switch fe {
	case framingOK:
	case framingTooManyFields:
		return refuse(fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large",
			fmt.Sprintf("more than server.max_header_count (%d) header fields", snap.maxFields))
	default:
		return refuse(fasthttp.StatusBadRequest, "bad_request", "framing: "+framingText(fe))
	}
	rawPath := originForm(ctx.Request.Header.RequestURI())
	if i := bytes.IndexByte(rawPath, '?'); i >= 0 {
		rawPath = rawPath[:i]
	}
	if !s.normalizeTarget(&ctx, snap, sc) {
		_, err := snap.paths.normalize(nil, rawPath)
		detail := "the path cannot be normalised"
		if err != nil {
			detail = fmt.Sprintf("path %q: %v", rawPath, err)
			if errors.Is(err, errEncodedSlash) {
				detail += " (server.encoded_slashes: reject)"
			}
		}
		return refuse(fasthttp.StatusBadRequest, "bad_path", detail)
	}
	e.Request.Path = string(sc.path)
	if fwd := string(ctx.Request.Header.RequestURI()); fwd != e.Request.Target {
		e.Request.Forwarded = fwd
	}
	_, cl, _ := sc.addrs(&ctx, snap)
	e.Request.Client = cl.String()
	if snap.rate != nil {
		e.RateLimits = append(e.RateLimits, explainRate("server", &snap.rate.cfg))
	}
	if snap.purge.on() && bytes.Equal(ctx.Method(), methodPURGE) {
		e.Outcome = OutcomePurge
		e.Detail = "PURGE is taken by the cache's purge handling (cache.purge) before any route"
		e.NotMatched = notConsidered(snap, "not considered: PURGE is handled before routing")
		return e
	}
	path := sc.path
	var r *route
	if !ctx.IsTLS() {
		acmeOn := s.acme.Load() != nil || (offline && snap.cfg.TLS.ACME != nil)
		if acmeOn && bytes.HasPrefix(path, acmeChallengePrefix) {
			e.Outcome = OutcomeACME
			e.Detail = "an ACME HTTP-01 validation request: edge answers it from its pending challenges, before any route"
			e.NotMatched = notConsidered(snap, "not considered: ACME challenges are answered before routing")
			return e
		}
		r = snap.httpsRoute
	}
	if r != nil {
		e.NotMatched = notConsidered(snap, "not considered: tls.redirect_http redirects every plain-HTTP request before routing")
	} else {
		sc.host = normalizeHost(sc.host, ctx.Request.Header.Host())
		list := snap.hosts.candidates(sc.host)
		r, sc.cand = list.match(&ctx, path, sc.cand) // the handler's own lookup
		e.NotMatched = explainMisses(&ctx, snap, list, r, path, sc.host)
	}
	if r == nil {
		return refuse404(e, snap)
	}
	e.Outcome = OutcomeRoute
	e.Route = describeRoute(snap, r)

	if r.access != nil {
		allowed := r.access.allows(cl)
		e.Route.Access.Client, e.Route.Access.Allowed = cl.String(), allowed
		if !allowed {
			e.Status, e.Error = fasthttp.StatusForbidden, "access_denied"
			e.Detail = fmt.Sprintf("client %s is refused by the route's access list", cl)
			return e
		}
	}
	if r.rate != nil {
		e.RateLimits = append(e.RateLimits, explainRate("route", &r.rate.cfg))
	}

	switch r.kind {
	case actionRedirect:
		e.Status = r.redirect.statusFor(ctx.Method())
		e.Route.Location = string(r.redirect.location(nil, &ctx))
		e.Detail = fmt.Sprintf("edge redirects with %d to %s", e.Status, e.Route.Location)
	case actionRespond:
		e.Status = r.respond.status
		e.Route.BodyBytes = len(r.respond.body)
		e.Detail = fmt.Sprintf("edge answers with the route's fixed response (%d, %d bytes)", e.Status, len(r.respond.body))
	case actionProxy:
		if r.cache != nil {
			e.Cache = s.explainCache(&e, &ctx, r, offline)
			if e.Error != "" {
				return e
			}
		}
		e.Pool = s.explainPool(snap, r.pool, &ctx, cl, offline)
		switch {
		case e.Cache != nil && (e.Cache.Answer == "hit" || e.Cache.Answer == "hit-stale" || e.Cache.Answer == "stale-while-revalidate"):
			e.Detail = "edge answers from the cache"
			if e.Cache.Answer == "stale-while-revalidate" {
				e.Detail += " and revalidates the entry with a node in the background"
			}
		case e.Pool.Chosen == "":
			e.Status = fasthttp.StatusServiceUnavailable
			e.Detail = fmt.Sprintf("no node of pool %s is available: edge answers 503", r.pool.name)
		default:
			e.Detail = fmt.Sprintf("edge proxies the request to node %s (%s) of pool %s", e.Pool.Chosen, e.Pool.ChosenAddress, r.pool.name)
		}
	}
	return e
}

// refuse404 completes an explanation for a request no route takes.
func refuse404(e Explanation, snap *snapshot) Explanation {
	e.Outcome, e.Status, e.Error = OutcomeError, fasthttp.StatusNotFound, "no_route"
	e.Detail = "no route matches: edge answers 404"
	if len(snap.routes) == 0 {
		e.Detail = "the configuration has no routes: edge answers 404"
	}
	return e
}

// notConsidered lists every route with the same reason.
func notConsidered(snap *snapshot, reason string) []RouteMiss {
	out := make([]RouteMiss, 0, len(snap.routes))
	for _, r := range snap.routes {
		out = append(out, RouteMiss{Name: r.name, Index: r.index, Reason: reason})
	}
	return out
}

// explainMisses says, for every route but matched, why it does not take
// the request: another host, a condition that fails (whyNot), or an
// earlier route that took it.
func explainMisses(ctx *fasthttp.RequestCtx, snap *snapshot, list routeList, matched *route, path, host []byte) []RouteMiss {
	candidate := make(map[*route]bool, len(list.routes))
	for _, r := range list.routes {
		candidate[r] = true
	}
	out := make([]RouteMiss, 0, len(snap.routes))
	for _, r := range snap.routes {
		if r == matched {
			continue
		}
		m := RouteMiss{Name: r.name, Index: r.index}
		switch {
		case !candidate[r]:
			m.Reason = fmt.Sprintf("not considered: other host (%q is not one of %s)", host,
				strings.Join(snap.cfg.Routes[r.index].Match.Hosts, ", "))
		case matched != nil && r.index > matched.index:
			m.Reason = fmt.Sprintf("not tried: route %s (#%d) matched first", matched.name, matched.index)
			if why := r.whyNot(nil, ctx, path); len(why) == 0 {
				m.Reason += " (this route would match too)"
			} else {
				m.Reason += " (nor would this one: " + strings.Join(why, "; ") + ")"
			}
		default:
			why := r.whyNot(nil, ctx, path)
			if len(why) == 0 {
				// Cannot happen: match tried it in order and refused it.
				why = []string{"its conditions hold, yet the route was not chosen"}
			}
			m.Reason = strings.Join(why, "; ")
		}
		out = append(out, m)
	}
	return out
}

// describeRoute is a route as an explanation shows it.
func describeRoute(snap *snapshot, r *route) *ExplainedRoute {
	er := &ExplainedRoute{Name: r.name, Index: r.index}
	if r == snap.httpsRoute {
		er.Index = -1
		er.Match = "tls.redirect_http: every plain-HTTP request"
		er.Action = "redirect"
		return er
	}
	cr := snap.cfg.Routes[r.index]
	er.Match = cr.Match.Describe()
	switch r.kind {
	case actionProxy:
		er.Action, er.Pool = "proxy", r.pool.name
	case actionRedirect:
		er.Action = "redirect"
	case actionRespond:
		er.Action = "respond"
	}
	if cr.Access != nil {
		er.Access = &ExplainedAccess{Allow: cr.Access.Allow, Deny: cr.Access.Deny}
	}
	if r.kind == actionProxy {
		er.RequestHeaders = describeHeaderRules(cr.RequestHeaders)
	}
	er.ResponseHeaders = describeHeaderRules(cr.ResponseHeaders)
	return er
}

// describeHeaderRules lists header rules as "remove X", "set X", "add X",
// in the order they apply.
func describeHeaderRules(h config.HeaderRules) []string {
	var out []string
	for _, n := range h.Remove {
		out = append(out, "remove "+n)
	}
	for _, kv := range sortedPairs(h.Set) {
		out = append(out, "set "+string(kv[0]))
	}
	for _, kv := range sortedPairs(h.Add) {
		out = append(out, "add "+string(kv[0]))
	}
	return out
}

func explainRate(scope string, rl *config.RateLimit) ExplainedRateLimit {
	return ExplainedRateLimit{Scope: scope, RequestsPerSecond: rl.RequestsPerSecond, Burst: rl.Burst, Key: rl.Key}
}

// redirectNoChange says why a shorthand redirect does not apply to a
// request (redirect.applies is false).
func redirectNoChange(r *redirect) string {
	switch r.kind {
	case redirectHTTPS:
		return "the request is already HTTPS"
	case redirectAddWWW:
		return "the host already starts with www."
	case redirectRemoveWWW:
		return "the host does not start with www."
	case redirectAddSlash:
		return "the path already ends with /"
	case redirectRemoveSlash:
		return "the path does not end with / (or is /)"
	}
	return "it would redirect to the same URL"
}

// framingText says what checkFraming found wrong.
func framingText(fe framingError) string {
	switch fe {
	case framingBareLF:
		return "a header line does not end in CRLF"
	case framingBareCR:
		return "a bare CR in a header line"
	case framingObsFold:
		return "obsolete line folding (a header line starts with whitespace)"
	case framingBadName:
		return "a header field name is not a token"
	case framingLengthAndChunked:
		return "both Content-Length and Transfer-Encoding (possible request smuggling)"
	case framingNotChunked:
		return "Transfer-Encoding whose final coding is not chunked"
	case framingNoHost:
		return "an HTTP/1.1 request without Host"
	case framingHostMismatch:
		return "the absolute request-target's authority differs from Host"
	case framingBadHost:
		return "Host holds characters a host name cannot have"
	case framingFragment:
		return "a fragment (#) in the request-target"
	}
	return "refused"
}

// explainPool says which node of p the balancer picks for the request now
// and the state of every node.
func (s *Server) explainPool(snap *snapshot, p *pool, ctx *fasthttp.RequestCtx, client netip.Addr, offline bool) *ExplainedPool {
	up := snap.cfg.Upstreams[p.name]
	ep := &ExplainedPool{Name: p.name, Policy: p.policy, AllDown: up.AllDown, Nodes: []ExplainedNode{}}
	var key uint64
	if p.hashSource != "" {
		key = p.hashKeyFor(ctx, client) // the handler's own key (prepare)
		ep.Hash = describeHash(p, ctx, client)
	}
	for _, n := range p.nodes {
		v := s.nodeView(p, n)
		en := ExplainedNode{
			Name: n.Name, Address: n.Address, State: v.State, Health: v.Health, Reason: v.Reason,
			Backup: n.backup, Weight: n.weight, InFlight: v.InFlight, Available: n.available(),
		}
		if until := n.link.refusedUntil.Load(); until != 0 && time.Now().UnixNano() < until {
			en.Available = false
			en.Reason = strings.TrimPrefix(en.Reason+"; refused a connection a moment ago", "; ")
		}
		if en.State == "" {
			en.State, en.Health = "up", "unchecked"
		}
		if offline {
			en.Health = "unknown"
		}
		ep.Nodes = append(ep.Nodes, en)
	}
	n := p.pick(key, nil)
	if n == nil {
		ep.Choice = "no node available"
		if p.tryAllWhenDown {
			ep.Choice += " (all_down: try_all finds none either: every node is drained or in maintenance)"
		} else {
			ep.Choice += " (all_down: fail)"
		}
		return ep
	}
	ep.Chosen, ep.ChosenAddress = n.Name, n.Address
	switch {
	case p.hashSource != "":
		ep.Choice = "consistent hash: the same key goes to the same node while it is available"
	case p.policy == config.PolicyRoundRobin:
		ep.Choice = "round_robin: the next node in the rotation; the next request gets another"
	case p.policy == config.PolicyLeastConn:
		ep.Choice = "least_conn: the node with the fewest requests in flight per weight now"
	default:
		ep.Choice = "random_two: one draw of two weighted random nodes, the less loaded wins; another request may get another"
	}
	if n.backup {
		ep.Choice += " (a backup node: no primary node is available)"
	}
	return ep
}

// describeHash says what a consistent_hash pool hashes for the request,
// following hashKeyFor.
func describeHash(p *pool, ctx *fasthttp.RequestCtx, client netip.Addr) string {
	switch p.hashSource {
	case config.HashHeader:
		if v := ctx.Request.Header.PeekBytes(p.hashName); len(v) > 0 {
			return fmt.Sprintf("header %s: %q", p.hashName, v)
		}
		return fmt.Sprintf("header %s is absent: client address %s", p.hashName, client)
	case config.HashCookie:
		if v := ctx.Request.Header.CookieBytes(p.hashName); len(v) > 0 {
			return fmt.Sprintf("cookie %s: %q", p.hashName, v)
		}
		return fmt.Sprintf("cookie %s is absent: client address %s", p.hashName, client)
	}
	return fmt.Sprintf("client address %s", client)
}

// explainCache looks the request up in the store as proxyCached does,
// without counting a hit or a miss. It sets e's error for requests the
// cache answers with an error itself.
func (s *Server) explainCache(e *Explanation, ctx *fasthttp.RequestCtx, r *route, offline bool) *ExplainedCache {
	rc := r.cache
	c := &ExplainedCache{VaryOn: rc.policy.KeyVary}
	method := ctx.Method()
	if !bytes.Equal(method, methodGET) && !bytes.Equal(method, methodHEAD) {
		c.Answer = "bypass"
		switch {
		case bytes.Equal(method, methodPURGE):
			e.Status, e.Error = fasthttp.StatusMethodNotAllowed, "purge_not_configured"
			e.Detail = "PURGE on a cached route without cache.purge: edge answers 405"
			c.Detail = "PURGE is not passed to nodes"
		case isSafe(method):
			c.Detail = fmt.Sprintf("%s is not answered from the cache", method)
		default:
			c.Detail = fmt.Sprintf("%s is not answered from the cache; a 2xx or 3xx answer removes what is stored for the URL", method)
		}
		return c
	}
	c.Key = string(appendCacheKey(nil, rc, ctx))
	ri := cache.ReadRequest(&ctx.Request.Header)
	rd, hasAuth := ri.Directives, ri.Authorization
	now := time.Now()
	var ent *cache.Entry
	var vs []*cache.Entry
	if !offline {
		// Variants, not Lookup: the same entries, newest variant first
		// below as Lookup tries them, and no hit is counted.
		vs = s.cache.store.Variants([]byte(c.Key))
		c.Variants = len(vs)
		for i := len(vs) - 1; i >= 0; i-- {
			if ok, _ := vs[i].Matches(&ctx.Request.Header, nil); ok {
				ent = vs[i]
				break
			}
		}
	}
	if ent != nil {
		c.Cached = true
		c.Entry = describeEntry(ent, now)
		if hasAuth && !ent.AuthOK {
			ent = nil
			c.Detail = "a response is stored, but not one that may answer a request with Authorization (RFC 9111 §3.5)"
		}
	}
	if ent != nil {
		switch cache.Usable(ent, rd, hasAuth, now) {
		case cache.UseFresh:
			c.Answer, c.Detail = "hit", "a fresh stored response answers"
			return c
		case cache.UseStale:
			c.Answer, c.Detail = "hit-stale", "the stored response is stale, and the request's max-stale accepts it"
			return c
		}
		if cache.StaleAllowed(ent, rd, hasAuth) && cache.CanServeStaleWhileRevalidate(ent, now) {
			c.Answer, c.Detail = "stale-while-revalidate", "the stale stored response answers while a node revalidates it"
			return c
		}
	}
	if rd.OnlyIfCached {
		c.Answer = "miss"
		e.Status, e.Error = fasthttp.StatusGatewayTimeout, "only_if_cached"
		e.Detail = "the request says only-if-cached and nothing stored may answer it: edge answers 504"
		return c
	}
	switch {
	case ent != nil:
		c.Answer = "revalidate"
		if c.Detail == "" {
			c.Detail = "the stored response may not answer as is: a node is asked (conditionally when it has validators)"
		}
	case c.Cached:
		c.Answer = "miss"
	case len(vs) > 0:
		// The entries read above: a second read could find none left.
		c.Answer = "vary-miss"
		c.Detail = fmt.Sprintf("%d response(s) stored under the key, none for this request's %s",
			len(vs), strings.Join(vs[0].VaryNames, ", "))
	default:
		c.Answer = "miss"
		c.Detail = "nothing stored under the key"
		if offline {
			c.Detail = "offline: the cache is empty"
		}
	}
	return c
}

func describeEntry(ent *cache.Entry, now time.Time) *ExplainedEntry {
	ttl := ent.TTL(now)
	return &ExplainedEntry{
		Status:                      ent.Status,
		AgeSeconds:                  int64(ent.Age(now) / time.Second),
		TTLSeconds:                  int64(ttl / time.Second),
		Stale:                       ttl <= 0,
		SoftPurged:                  ent.SoftPurged(),
		StaleWhileRevalidateSeconds: int64(ent.StaleWhileRevalidate / time.Second),
		StaleIfErrorSeconds:         int64(ent.StaleIfError / time.Second),
		Vary:                        ent.VaryNames,
		Tags:                        ent.Tags,
		Bytes:                       ent.Size,
	}
}

// ExplainInput is a request to explain, as the command line and the
// admin API take it.
type ExplainInput struct {
	// Method defaults to GET.
	Method string
	// URL is absolute: http://host[:port]/path?query or https://…
	URL string
	// Headers are "Name: value" lines. A Host line replaces the URL's
	// authority as the Host field.
	Headers []string
	// Client is the connection's address (DefaultExplainClient when
	// invalid).
	Client netip.Addr
}

// unreadableError marks a request that a listener cannot read at all; it
// wraps fasthttp's reason.
type unreadableError struct {
	status int
	code   string
	err    error
}

func (e *unreadableError) Error() string { return e.err.Error() }

// buildRequest writes in's request in wire form and reads it back with
// fasthttp's parser, as a listener reads requests (header size bound
// included), so that the framing checks see what a client would send.
// An error of type *unreadableError is a request the listener refuses;
// any other error is a mistake in the input.
func buildRequest(in ExplainInput, maxHeader int) (*fasthttp.Request, bool, error) {
	method := in.Method
	if method == "" {
		method = fasthttp.MethodGet
	}
	if !isTokenBytes([]byte(method)) {
		return nil, false, fmt.Errorf("method %q is not a token", method)
	}
	scheme, rest, ok := strings.Cut(in.URL, "://")
	scheme = strings.ToLower(scheme)
	if !ok || (scheme != "http" && scheme != "https") {
		return nil, false, fmt.Errorf("URL %q must be absolute: http://host/path or https://host/path", in.URL)
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i] // clients never send the fragment
	}
	authority, target := rest, "/"
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, target = rest[:i], rest[i:]
		if target[0] == '?' {
			target = "/" + target
		}
	}
	if authority == "" {
		return nil, false, fmt.Errorf("URL %q has no host", in.URL)
	}
	if strings.ContainsAny(in.URL, " \t\r\n") {
		return nil, false, fmt.Errorf("URL %q holds whitespace: percent-encode it", in.URL)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	hostSet := false
	for _, h := range in.Headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, false, fmt.Errorf("header %q: want \"Name: value\"", h)
		}
		if strings.ContainsAny(h, "\r\n") {
			return nil, false, fmt.Errorf("header %q holds a line break", h)
		}
		if strings.EqualFold(strings.TrimSpace(name), "Host") {
			hostSet = true
		}
		fmt.Fprintf(&b, "%s: %s\r\n", name, strings.TrimSpace(value))
	}
	if !hostSet {
		fmt.Fprintf(&b, "Host: %s\r\n", authority)
	}
	b.WriteString("\r\n")
	req := &fasthttp.Request{}
	br := bufio.NewReaderSize(strings.NewReader(b.String()), max(maxHeader, 16))
	if err := req.Header.Read(br); err != nil {
		var small *fasthttp.ErrSmallBuffer
		if errors.As(err, &small) {
			return nil, false, &unreadableError{fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large",
				fmt.Errorf("the request line and header are longer than server.max_header_bytes (%d)", maxHeader)}
		}
		return nil, false, &unreadableError{fasthttp.StatusBadRequest, "bad_request", fmt.Errorf("the listener cannot read the request: %w", err)}
	}
	return req, scheme == "https", nil
}

// ExplainRequest explains the request in describes (see Explain). The
// error is for input that does not describe a request (a relative URL,
// a header line without a colon); a request a listener would refuse to
// read is explained as such.
func (s *Server) ExplainRequest(in ExplainInput) (Explanation, error) {
	return s.explainInput(in, false)
}

func (s *Server) explainInput(in ExplainInput, offline bool) (Explanation, error) {
	snap := s.snap.Load()
	req, isTLS, err := buildRequest(in, int(snap.cfg.Server.MaxHeaderBytes.Bytes()))
	var unreadable *unreadableError
	switch {
	case errors.As(err, &unreadable):
		e := Explanation{Mode: "live", Outcome: OutcomeError, Status: unreadable.status, Error: unreadable.code,
			Detail: unreadable.err.Error(), NotMatched: notConsidered(snap, "not considered: the request cannot be read")}
		if offline {
			e.Mode = "offline"
		}
		e.Request = ExplainedRequest{Method: cmp.Or(in.Method, fasthttp.MethodGet), Target: in.URL}
		return e, nil
	case err != nil:
		return Explanation{}, err
	}
	return s.explain(req, isTLS, in.Client, offline), nil
}

// ExplainOffline explains a request against cfg alone, for `edge explain`
// without a running edge. It builds a Server that is never started, with
// active health checks, DNS discovery and the access log left out (so
// nothing is probed, resolved or written): node health is unknown and
// every node counts as up, and the cache is empty.
func ExplainOffline(cfg *config.Config, in ExplainInput) (Explanation, error) {
	quiet := *cfg
	quiet.AccessLog = config.AccessLog{Format: "off"}
	quiet.Watch = false
	quiet.Upstreams = make(map[string]*config.Upstream, len(cfg.Upstreams))
	for name, up := range cfg.Upstreams {
		u := *up
		u.HealthCheck = config.HealthCheck{}
		u.Discovery = config.Discovery{}
		quiet.Upstreams[name] = &u
	}
	srv, err := New(&quiet, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return Explanation{}, fmt.Errorf("building the configuration: %w", err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	e, err := srv.explainInput(in, true)
	if err != nil {
		return e, err
	}
	// The pools' explanations name the discovery the offline server left
	// out.
	if e.Pool != nil {
		if up := cfg.Upstreams[e.Pool.Name]; up != nil && up.Discovery.DNS != nil {
			e.Pool.Choice = fmt.Sprintf("offline: DNS discovery of %s is not resolved, only static nodes are shown; %s", up.Discovery.DNS.Name, e.Pool.Choice)
		}
	}
	return e, nil
}

// handleExplain serves GET /explain?url=…&method=…&header=Name:%20value&client=…
func (s *Server) handleExplain(ctx *fasthttp.RequestCtx) {
	if !requireMethod(ctx, fasthttp.MethodGet) {
		return
	}
	args := ctx.QueryArgs()
	in := ExplainInput{URL: string(args.Peek("url")), Method: string(args.Peek("method"))}
	if in.URL == "" {
		writeJSONError(ctx, fasthttp.StatusBadRequest, "url is required: /explain?url=http://host/path")
		return
	}
	for _, h := range args.PeekMulti("header") {
		in.Headers = append(in.Headers, string(h))
	}
	if c := args.Peek("client"); len(c) > 0 {
		a, err := netip.ParseAddr(string(c))
		if err != nil {
			writeJSONError(ctx, fasthttp.StatusBadRequest, "client %q is not an IP address", c)
			return
		}
		in.Client = a
	}
	e, err := s.ExplainRequest(in)
	if err != nil {
		writeJSONError(ctx, fasthttp.StatusBadRequest, "%s", err.Error())
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, e)
}

// handleConfig serves GET /config: the running configuration, defaults
// applied, as JSON with the configuration file's field names and every
// secret replaced by "[redacted]".
func (s *Server) handleConfig(ctx *fasthttp.RequestCtx) {
	if !requireMethod(ctx, fasthttp.MethodGet) {
		return
	}
	m, err := s.snap.Load().cfg.RedactedJSON()
	if err != nil {
		s.log.Error("encoding the running configuration", "error", err)
		writeJSONError(ctx, fasthttp.StatusInternalServerError, "the configuration cannot be encoded")
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, m)
}

// Redacted replaces a secret value in GET /config (config.Redacted).
const Redacted = config.Redacted
