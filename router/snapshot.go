package router

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
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

	links map[string]*nodeLink // by linkKey, for the next reload
}

// pool is a compiled upstream: its nodes and how to choose among them.
type pool struct {
	name    string
	nodes   []*Node // primaries, then backups; Node.index is the position
	primary Selector
	backup  Selector // nil when the pool has no backup nodes
	metrics []*nodeMetrics

	hashSource string
	hashName   []byte
}

// pick returns the node for a request, or nil when every node was tried.
// Primaries come first; backups only when no primary is usable. Nodes
// skipped only because they recently refused a connection are still tried
// as a last resort, so a pool whose nodes all restarted at once recovers
// without waiting.
func (p *pool) pick(key uint64, tried *nodeSet) *Node {
	if n := selectNode(p.primary, key, tried); n != nil {
		return n
	}
	if p.backup != nil {
		if n := selectNode(p.backup, key, tried); n != nil {
			return n
		}
	}
	for _, n := range p.nodes {
		if !tried.has(n.index) {
			return n
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

// buildSnapshot compiles cfg. Node links (connection pools and live
// counters) are taken over from prev for nodes whose pool, address and
// transport settings are unchanged.
func buildSnapshot(cfg *config.Config, prev *snapshot, m *metrics) (*snapshot, error) {
	s := &snapshot{
		cfg:         cfg,
		pools:       map[string]*pool{},
		trusted:     trustedNets(cfg.Server.TrustedNets),
		maxURI:      int(cfg.Server.MaxURIBytes.Bytes()),
		maxBody:     cfg.Server.MaxBodyBytes.Bytes(),
		bodyTimeout: cfg.Server.BodyTimeout.D(),
		links:       map[string]*nodeLink{},
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
		p := &pool{name: name, hashSource: up.Hash.Source, hashName: []byte(up.Hash.Name)}
		var primaries, backups []*Node
		for _, want := range []bool{false, true} {
			for _, cn := range up.Nodes {
				if cn.Backup != want {
					continue
				}
				key := linkKey(name, cn.Address, up)
				link := prevLinks[key]
				if link == nil {
					link = newNodeLink(cn.Name, cn.Address, up)
				}
				s.links[key] = link
				n := &Node{Name: cn.Name, Address: cn.Address, index: len(p.nodes), weight: cn.Weight, backup: cn.Backup, link: link}
				p.nodes = append(p.nodes, n)
				p.metrics = append(p.metrics, m.forNode(name, cn.Name))
				if cn.Backup {
					backups = append(backups, n)
				} else {
					primaries = append(primaries, n)
				}
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
		s.pools[name] = p
		s.poolList = append(s.poolList, p)
	}

	for i, cr := range cfg.Routes {
		r := &route{
			name:          cr.Name,
			index:         i,
			pathRegex:     cr.Match.PathRegexp,
			requestRules:  compileHeaderRules(cr.RequestHeaders),
			responseRules: compileHeaderRules(cr.ResponseHeaders),
		}
		if cr.Match.Path != "" {
			r.exactPath = []byte(cr.Match.Path)
		}
		if cr.Match.PathPrefix != "" {
			r.pathPrefix = []byte(cr.Match.PathPrefix)
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
			r.pool = s.pools[cr.Proxy]
			if r.pool == nil {
				return nil, fmt.Errorf("route %s: unknown upstream %q", cr.Name, cr.Proxy)
			}
			r.metrics = m.forRoute(cr.Name, r.pool.name, r.pool.nodes)
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
		s.routes = append(s.routes, r)
	}
	s.hosts = buildHostIndex(s.routes, cfg.Routes)
	return s, nil
}

// linkKey identifies a node's connection pool: the same node in the same
// pool with the same transport settings keeps its connections on reload.
func linkKey(pool, address string, up *config.Upstream) string {
	return pool + "\x00" + address + "\x00" +
		strconv.FormatInt(int64(up.ConnectTimeout), 10) + "/" +
		strconv.FormatInt(int64(up.ResponseHeaderTimeout), 10) + "/" +
		strconv.FormatInt(int64(up.IdleTimeout), 10) + "/" +
		strconv.Itoa(up.MaxConnsPerNode) + "/" +
		strconv.FormatInt(int64(up.ConnWaitTimeout), 10)
}

// responseHeaderLimit bounds a node's response header (fasthttp's read
// buffer is also its header limit).
const responseHeaderLimit = 64 << 10

func newNodeLink(name, address string, up *config.Upstream) *nodeLink {
	dialer := &net.Dialer{Timeout: up.ConnectTimeout.D(), KeepAlive: 30 * time.Second}
	ioTimeout := up.ResponseHeaderTimeout.D()
	return &nodeLink{client: &fasthttp.HostClient{
		Addr: address,
		Dial: func(addr string) (net.Conn, error) {
			c, err := dialer.Dial("tcp", addr)
			if err != nil {
				return nil, &dialError{node: name, err: err}
			}
			return &slidingConn{Conn: c}, nil
		},
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: false,
		MaxConns:                      up.MaxConnsPerNode,
		MaxConnWaitTimeout:            up.ConnWaitTimeout.D(),
		MaxIdleConnDuration:           up.IdleTimeout.D(),
		ReadTimeout:                   ioTimeout,
		WriteTimeout:                  ioTimeout,
		MaxIdemponentCallAttempts:     1, // retries are ours, on another node
		RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		Transport:                     transport{}, // streams large bodies, allocation-free
		ReadBufferSize:                responseHeaderLimit,
		WriteBufferSize:               16 << 10,
	}}
}

// closeUnused closes the idle connections of links that next no longer
// uses. Requests still running on them finish normally.
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
