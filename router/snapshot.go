package router

import (
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/health"
)

// snapshot is everything the request path needs, built from one validated
// configuration and never modified afterwards. A request loads the current
// snapshot once and uses only it, so a reload never changes the rules under
// a request in flight.
type snapshot struct {
	cfg      *config.Config
	routes   []*route
	hosts    *hostIndex
	pools    map[string]*pool
	poolList []*pool // sorted by name

	trusted     trustedNets
	maxURI      int
	maxBody     int64 // 0: unlimited
	bodyTimeout time.Duration

	certs      *certificates
	tlsConfig  *tls.Config // what HTTPS handshakes use (GetConfigForClient)
	hsts       []byte      // Strict-Transport-Security value; nil: off
	httpsRoute *route      // tls.redirect_http: every plain request goes here; nil: off

	links map[string]*nodeLink // by linkKey, for the next reload
	purge purgeACL             // who may send PURGE; off when empty

	paths            pathPolicy
	maxFields        int       // header fields per request
	maxReqsPerConn   uint64    // 0: no limit
	rate             *rateRule // per client, before routing; nil: off
	limitHeaderCount prometheus.Counter
	limitReqsPerConn prometheus.Counter
}

// pool is a compiled upstream: its nodes and how to choose among them.
type pool struct {
	name    string
	policy  string
	nodes   []*Node // primaries, then backups; Node.index is the position
	primary Selector
	backup  Selector // nil when the pool has no backup nodes
	metrics []*nodeMetrics
	retry   *retryPolicy

	tryAllWhenDown bool
	hashSource     string
	hashName       []byte
}

// pick returns the node for a request, or nil when none may be tried.
// Primaries come first; backups only when no primary is usable. Then, as
// a last resort: nodes skipped only because they refused a connection a
// moment ago or are in slow start (so a pool whose nodes all restarted at
// once recovers without waiting); and, with all_down: try_all, nodes that
// are down or ejected (never those an operator drained or put in
// maintenance).
func (p *pool) pick(key uint64, tried *nodeSet) *Node {
	if n := selectNode(p.primary, key, tried); n != nil {
		return n
	}
	if p.backup != nil {
		if n := selectNode(p.backup, key, tried); n != nil {
			return n
		}
	}
	// The last resorts start at a random node, so that they spread load
	// rather than all landing on the first node.
	start := rand.IntN(max(len(p.nodes), 1))
	for i := range p.nodes {
		n := p.nodes[(start+i)%len(p.nodes)]
		if !tried.has(n.index) && n.available() {
			return n
		}
	}
	if p.tryAllWhenDown {
		for i := range p.nodes {
			n := p.nodes[(start+i)%len(p.nodes)]
			if !tried.has(n.index) && !n.operatorOut() {
				return n
			}
		}
	}
	return nil
}

// hashKeyFor computes the consistent-hash key of a request.
func (p *pool) hashKeyFor(ctx *fasthttp.RequestCtx, client netip.Addr) uint64 {
	switch p.hashSource {
	case config.HashHeader:
		if v := ctx.Request.Header.PeekBytes(p.hashName); len(v) > 0 {
			return hashKey(v)
		}
	case config.HashCookie:
		if v := ctx.Request.Header.CookieBytes(p.hashName); len(v) > 0 {
			return hashKey(v)
		}
	}
	a := client.As16()
	return hashKey(a[:])
}

// poolNode is one member of a pool before compilation: a static node from
// the configuration or one found by DNS discovery.
type poolNode struct {
	name, address string
	weight        int
	backup        bool
}

// poolMembers returns a pool's static nodes followed by those discovered
// (lowest SRV priority as primaries, higher ones as backups).
func poolMembers(up *config.Upstream, discovered []health.Endpoint) []poolNode {
	var out []poolNode
	for _, n := range up.Nodes {
		out = append(out, poolNode{name: n.Name, address: n.Address, weight: n.Weight, backup: n.Backup})
	}
	if len(discovered) == 0 {
		return out
	}
	minPriority := discovered[0].Priority
	for _, e := range discovered {
		minPriority = min(minPriority, e.Priority)
	}
	for _, e := range discovered {
		if len(out) == maxPoolNodes {
			break // a pool holds at most 256 nodes; DNS answers beyond that are ignored
		}
		w := min(max(e.Weight, 1), config.MaxWeight)
		out = append(out, poolNode{name: e.Address, address: e.Address, weight: w, backup: e.Priority > minPriority})
	}
	return out
}

// buildSnapshot compiles cfg. Node links (connection pools and live
// counters) are taken over from prev for nodes whose pool, address and
// transport settings are unchanged; health and operator state come from
// the registry, which keeps them for nodes that remain.
func (s *Server) buildSnapshot(cfg *config.Config, prev *snapshot) (*snapshot, error) {
	m := s.metrics
	snap := &snapshot{
		cfg:         cfg,
		pools:       map[string]*pool{},
		trusted:     trustedNets(cfg.Server.TrustedNets),
		maxURI:      int(cfg.Server.MaxURIBytes.Bytes()),
		maxBody:     cfg.Server.MaxBodyBytes.Bytes(),
		bodyTimeout: cfg.Server.BodyTimeout.D(),
		links:       map[string]*nodeLink{},
		certs:       newCertificates(cfg.TLS.Certificates),
		tlsConfig:   s.tlsConfigFor(cfg),
		hsts:        hstsValue(cfg.TLS.HSTS),

		paths:            newPathPolicy(cfg.Server),
		maxFields:        cfg.Server.MaxHeaderCount,
		maxReqsPerConn:   uint64(cfg.Server.MaxRequestsPerConnection),
		limitHeaderCount: s.limits.triggered.WithLabelValues(limitHeaderCount, ""),
		limitReqsPerConn: s.limits.triggered.WithLabelValues(limitReqsPerConn, ""),
	}
	var prevRate *rateRule
	prevRoutes := map[string]*route{}
	if prev != nil {
		prevRate = prev.rate
		for _, r := range prev.routes {
			prevRoutes[r.name] = r
		}
	}
	snap.rate = newRateRule(cfg.Server.RateLimit, prevRate, s.limits.triggered.WithLabelValues(limitRate, ""))
	if cfg.TLS.RedirectHTTP {
		const name = "_redirect_http"
		snap.httpsRoute = &route{name: name, kind: actionRedirect, redirect: &redirect{kind: redirectHTTPS}, metrics: m.forRoute(name, "", nil)}
	}
	var prevLinks map[string]*nodeLink
	if prev != nil {
		prevLinks = prev.links
	}

	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		up := cfg.Upstreams[name]
		p := &pool{
			name:           name,
			policy:         up.Policy,
			hashName:       []byte(up.Hash.Name),
			tryAllWhenDown: up.AllDown == config.AllDownTryAll,
			retry:          newRetryPolicy(name, up.Retries, m),
		}
		if up.Policy == config.PolicyConsistentHash {
			p.hashSource = up.Hash.Source
		}
		members := poolMembers(up, s.discovered(name))
		// Primaries first, then backups: selectors index nodes by position.
		slices.SortStableFunc(members, func(a, b poolNode) int { return boolCompare(a.backup, b.backup) })
		specs := make([]health.NodeSpec, len(members))
		for i, mb := range members {
			specs[i] = health.NodeSpec{Name: mb.name, Address: mb.address}
		}
		var check *config.HealthCheck
		if up.HealthCheck.Path != "" {
			check = &up.HealthCheck
		}
		states := s.health.Sync(name, health.PoolSpec{
			Check: check, Passive: up.Passive, SlowStart: up.SlowStart.D(),
			TLS: upstreamTLSConfig(up.TLS), TLSID: upstreamTLSID(up.TLS),
		}, specs)

		var primaries, backups []*Node
		for i, mb := range members {
			key := linkKey(name, mb.address, up)
			link := prevLinks[key]
			if link == nil {
				link = snap.links[key] // the same address listed twice (static and discovered)
			}
			if link == nil {
				link = newNodeLink(mb.name, mb.address, up)
			}
			snap.links[key] = link
			n := &Node{
				Name: mb.name, Address: mb.address, index: i, backup: mb.backup,
				weight: states[i].Weight(mb.weight), link: link, health: states[i],
			}
			p.nodes = append(p.nodes, n)
			p.metrics = append(p.metrics, m.forNode(name, mb.name))
			if mb.backup {
				backups = append(backups, n)
			} else {
				primaries = append(primaries, n)
			}
		}
		var err error
		if p.primary, err = newSelector(up.Policy, up.Hash.LoadFactor, primaries); err != nil {
			return nil, fmt.Errorf("upstream %s: %w", name, err)
		}
		if len(backups) > 0 {
			if p.backup, err = newSelector(up.Policy, up.Hash.LoadFactor, backups); err != nil {
				return nil, fmt.Errorf("upstream %s backups: %w", name, err)
			}
		}
		snap.pools[name] = p
		snap.poolList = append(snap.poolList, p)
	}
	s.health.Retain(names)

	for i, cr := range cfg.Routes {
		r := &route{
			name:               cr.Name,
			index:              i,
			pathRegex:          cr.Match.PathRegexp,
			requestRules:       compileHeaderRules(cr.RequestHeaders),
			responseRules:      compileHeaderRules(cr.ResponseHeaders),
			retryNonIdempotent: cr.RetryNonIdempotent,
			access:             newAccessList(cr.Access),
		}
		if r.access != nil {
			r.accessDenied = s.limits.triggered.WithLabelValues(limitAccess, cr.Name)
		}
		if cr.RateLimit != nil {
			var prevRule *rateRule
			if p := prevRoutes[cr.Name]; p != nil {
				prevRule = p.rate
			}
			r.rate = newRateRule(cr.RateLimit, prevRule, s.limits.triggered.WithLabelValues(limitRate, cr.Name))
		}
		if cr.Match.Path != "" {
			r.exactPath = canonicalConfigPath(cr.Match.Path)
		}
		if cr.Match.PathPrefix != "" {
			r.pathPrefix = canonicalConfigPath(cr.Match.PathPrefix)
		}
		for _, meth := range cr.Match.Methods {
			r.methods = append(r.methods, []byte(meth))
		}
		for _, h := range cr.Match.Headers {
			r.headers = append(r.headers, headerCond{name: []byte(h.Name), value: []byte(h.Value), hasValue: h.Value != ""})
		}
		switch {
		case cr.Proxy != "":
			r.kind = actionProxy
			r.pool = snap.pools[cr.Proxy]
			if r.pool == nil {
				return nil, fmt.Errorf("route %s: unknown upstream %q", cr.Name, cr.Proxy)
			}
			r.metrics = m.forRoute(cr.Name, r.pool.name, r.pool.nodes)
			if cr.Cache != nil {
				var err error
				if r.cache, err = newRouteCache(&cfg.Cache, cr.Cache, s.cache.metrics.forRoute(cr.Name)); err != nil {
					return nil, fmt.Errorf("route %s: cache: %w", cr.Name, err)
				}
			}
		case cr.Redirect != nil:
			r.kind = actionRedirect
			r.redirect = compileRedirect(cr.Redirect, cr.Match.PathPrefix)
			r.metrics = m.forRoute(cr.Name, "", nil)
		case cr.Respond != nil:
			r.kind = actionRespond
			r.respond = &respond{status: cr.Respond.Status, headers: sortedPairs(cr.Respond.Headers), body: []byte(cr.Respond.Body)}
			r.metrics = m.forRoute(cr.Name, "", nil)
		default:
			return nil, fmt.Errorf("route %s: no action", cr.Name)
		}
		snap.routes = append(snap.routes, r)
	}
	snap.hosts = buildHostIndex(snap.routes, cfg.Routes)
	snap.purge.nets = cfg.Cache.Purge.AllowNets
	if cfg.Cache.Purge.Token != "" {
		snap.purge.token = []byte(cfg.Cache.Purge.Token)
	}
	return snap, nil
}

// linkKey identifies a node's connection pool: the same node in the same
// pool with the same transport settings keeps its connections on reload.
func linkKey(pool, address string, up *config.Upstream) string {
	return pool + "\x00" + address + "\x00" +
		strconv.FormatInt(int64(up.ConnectTimeout), 10) + "/" +
		strconv.FormatInt(int64(up.ResponseHeaderTimeout), 10) + "/" +
		strconv.FormatInt(int64(up.IdleTimeout), 10) + "/" +
		strconv.Itoa(up.MaxConnsPerNode) + "/" +
		strconv.FormatInt(int64(up.ConnWaitTimeout), 10) + "/" +
		upstreamTLSID(up.TLS)
}

// responseHeaderLimit bounds a node's response header (fasthttp's read
// buffer is also its header limit).
const responseHeaderLimit = 64 << 10

func newNodeLink(name, address string, up *config.Upstream) *nodeLink {
	dialer := &net.Dialer{Timeout: up.ConnectTimeout.D(), KeepAlive: 30 * time.Second}
	ioTimeout := up.ResponseHeaderTimeout.D()
	link := &nodeLink{https: up.TLS != nil}
	link.client = &fasthttp.HostClient{
		IsTLS:     up.TLS != nil,
		TLSConfig: upstreamTLSConfig(up.TLS),
		Addr:      address,
		Dial: func(addr string) (net.Conn, error) {
			c, err := dialer.Dial("tcp", addr)
			if err != nil {
				return nil, &dialError{node: name, err: err}
			}
			return &slidingConn{Conn: wrapSysConn(c)}, nil
		},
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: false,
		DisablePathNormalizing:        true, // the path was normalised before routing; it is sent as routed
		MaxConns:                      up.MaxConnsPerNode,
		MaxConnWaitTimeout:            up.ConnWaitTimeout.D(),
		MaxIdleConnDuration:           up.IdleTimeout.D(),
		ReadTimeout:                   ioTimeout,
		WriteTimeout:                  ioTimeout,
		MaxIdemponentCallAttempts:     1, // retries are ours, on another node
		RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		Transport:                     &transport{link: link, node: name}, // streams large bodies, allocation-free
		ReadBufferSize:                responseHeaderLimit,
		WriteBufferSize:               16 << 10,
	}
	return link
}

// closeUnused closes the idle connections of links that next no longer
// uses. Requests still running on them finish normally.
func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func closeUnused(prev, next *snapshot) {
	if prev == nil {
		return
	}
	for key, link := range prev.links {
		if next.links[key] == nil {
			link.client.CloseIdleConnections()
			l := link
			time.AfterFunc(time.Minute, l.client.CloseIdleConnections)
		}
	}
}
