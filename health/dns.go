package health

// DNS discovery of a pool's nodes: a Resolver that queries SRV, A or AAAA
// records with github.com/miekg/dns (which, unlike the standard library,
// exposes TTLs), and DiscoverLoop, which re-resolves when the TTL expires and
// keeps the last good answer when the resolver fails.
//
// Everything DNS-specific stays in this file so that a later move to
// miekg/dns v2 touches nothing else.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edge-router/edge/config"
)

// Defaults applied by NewDNSResolver and DiscoverLoop to zero values.
const (
	// DNSDefaultTimeout bounds one query when the configuration has none.
	DNSDefaultTimeout = 2 * time.Second
	// DNSDefaultMinTTL is the shortest re-resolution period when none is given.
	DNSDefaultMinTTL = time.Second
	// DNSDefaultMaxTTL is the longest re-resolution period when none is given.
	DNSDefaultMaxTTL = 5 * time.Minute
	// DNSResolvConf is the file the default resolver is read from.
	DNSResolvConf = "/etc/resolv.conf"
)

const (
	dnsUDPSize = 4096 // EDNS0 payload size advertised in queries
	// dnsLookupParallel bounds concurrent follow-up A/AAAA queries for SRV
	// targets missing from the Additional section.
	dnsLookupParallel = 8
)

// ErrNoDNSRecords is wrapped by the errors of a resolution that found no
// usable records (NXDOMAIN, an empty answer, or SRV targets without
// addresses). DiscoverLoop counts it as an "empty" resolution.
var ErrNoDNSRecords = errors.New("no records")

// Endpoint is one discovered node.
type Endpoint struct {
	Address  string // host:port (IP literal host; IPv6 bracketed)
	Weight   int    // ≥1; SRV weight (0 → 1), 1 for A/AAAA
	Priority int    // SRV priority; 0 for A/AAAA
}

// Resolver resolves a pool's nodes. Implementations are safe for concurrent use.
type Resolver interface {
	// Resolve returns the endpoints, sorted by Address and unique by it,
	// and the minimum TTL of the records they came from.
	Resolve(ctx context.Context) ([]Endpoint, time.Duration, error)
}

// DNSResolver is a Resolver that queries one DNS server for SRV, A or AAAA
// records. It is safe for concurrent use once built.
type DNSResolver struct {
	// Logger receives warnings about SRV targets that are skipped. Set it
	// before the first Resolve; nil means slog.Default().
	Logger *slog.Logger

	name    string // as configured, for messages
	fqdn    string // name as queried
	qtype   uint16
	port    int    // for A and AAAA
	server  string // host:port
	timeout time.Duration
	udp     *dns.Client
	tcp     *dns.Client
}

var _ Resolver = (*DNSResolver)(nil)

// NewDNSResolver builds a Resolver for cfg. Zero values get defaults: Timeout
// 2s; Type SRV when Name starts with "_", else A; Resolver the first
// nameserver of /etc/resolv.conf. A Resolver without a port gets port 53.
func NewDNSResolver(cfg config.DNSDiscovery) (*DNSResolver, error) {
	name := strings.TrimSpace(cfg.Name)
	if name == "" {
		return nil, errors.New("dns discovery: name is required")
	}
	fqdn := dns.Fqdn(name)
	if _, ok := dns.IsDomainName(fqdn); !ok {
		return nil, fmt.Errorf("dns discovery: invalid name %q", name)
	}

	typ := strings.ToUpper(strings.TrimSpace(cfg.Type))
	if typ == "" {
		typ = config.DNSTypeA
		if strings.HasPrefix(name, "_") {
			typ = config.DNSTypeSRV
		}
	}
	var qtype uint16
	switch typ {
	case config.DNSTypeSRV:
		qtype = dns.TypeSRV
	case config.DNSTypeA:
		qtype = dns.TypeA
	case config.DNSTypeAAAA:
		qtype = dns.TypeAAAA
	default:
		return nil, fmt.Errorf("dns discovery %s: unknown type %q (want SRV, A or AAAA)", name, cfg.Type)
	}
	if qtype != dns.TypeSRV && (cfg.Port < 1 || cfg.Port > 65535) {
		return nil, fmt.Errorf("dns discovery %s %s: port %d out of range 1-65535", name, typ, cfg.Port)
	}

	server := strings.TrimSpace(cfg.Resolver)
	if server == "" {
		cc, err := dns.ClientConfigFromFile(DNSResolvConf)
		if err != nil {
			return nil, fmt.Errorf("dns discovery %s: no resolver configured and %s unreadable: %w", name, DNSResolvConf, err)
		}
		if len(cc.Servers) == 0 {
			return nil, fmt.Errorf("dns discovery %s: no resolver configured and no nameserver in %s", name, DNSResolvConf)
		}
		server = net.JoinHostPort(cc.Servers[0], cc.Port)
	} else {
		var err error
		if server, err = dnsServerAddress(server); err != nil {
			return nil, fmt.Errorf("dns discovery %s: resolver %q: %w", name, cfg.Resolver, err)
		}
	}

	timeout := cfg.Timeout.D()
	if timeout <= 0 {
		timeout = DNSDefaultTimeout
	}
	return &DNSResolver{
		name:    strings.TrimSuffix(name, "."),
		fqdn:    fqdn,
		qtype:   qtype,
		port:    cfg.Port,
		server:  server,
		timeout: timeout,
		udp:     &dns.Client{Net: "udp", Timeout: timeout, UDPSize: dnsUDPSize},
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout},
	}, nil
}

// dnsServerAddress normalises a resolver address to host:port, adding port
// 53 to a bare host or IP literal (IPv6 with or without brackets).
func dnsServerAddress(s string) (string, error) {
	if host, port, err := net.SplitHostPort(s); err == nil {
		if host == "" {
			return "", errors.New("missing host")
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return "", fmt.Errorf("invalid port %q", port)
		}
		return s, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if host == "" || strings.ContainsAny(host, "[]") {
		return "", errors.New("want host:port")
	}
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", errors.New("want host:port")
		}
	}
	return net.JoinHostPort(host, "53"), nil
}

// String describes the query, e.g. "_http._tcp.app.internal SRV via 10.0.0.2:53".
func (r *DNSResolver) String() string {
	return r.name + " " + dns.TypeToString[r.qtype] + " via " + r.server
}

// Resolve queries the server and returns the endpoints sorted by Address and
// the minimum TTL of the records used. An answer without usable records is
// an error wrapping ErrNoDNSRecords.
func (r *DNSResolver) Resolve(ctx context.Context) ([]Endpoint, time.Duration, error) {
	eps, ttl, err := r.resolve(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("resolving %s: %w", r, err)
	}
	return eps, ttl, nil
}

func (r *DNSResolver) resolve(ctx context.Context) ([]Endpoint, time.Duration, error) {
	resp, err := r.exchange(ctx, r.fqdn, r.qtype)
	if err != nil {
		return nil, 0, err
	}
	minTTL := dnsTTLMin{}
	var eps []Endpoint
	if r.qtype == dns.TypeSRV {
		eps, err = r.srvEndpoints(ctx, resp, &minTTL)
		if err != nil {
			return nil, 0, err
		}
	} else {
		addrs := dnsAddrs(resp.Answer, "", r.qtype, &minTTL)
		for _, a := range addrs {
			eps = append(eps, Endpoint{Address: netip.AddrPortFrom(a, uint16(r.port)).String(), Weight: 1})
		}
	}
	if len(eps) == 0 {
		return nil, 0, ErrNoDNSRecords
	}
	return dnsNormalize(eps), minTTL.get(), nil
}

// exchange sends one query over UDP, and again over TCP when the UDP answer
// is truncated, and checks the response code. NXDOMAIN wraps ErrNoDNSRecords.
func (r *DNSResolver) exchange(ctx context.Context, fqdn string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.SetEdns0(dnsUDPSize, false)
	resp, _, err := r.udp.ExchangeContext(ctx, m, r.server)
	if err != nil {
		return nil, dnsCtxErr(ctx, err)
	}
	if resp.Truncated {
		m.Id = dns.Id()
		resp, _, err = r.tcp.ExchangeContext(ctx, m, r.server)
		if err != nil {
			return nil, fmt.Errorf("udp answer truncated, tcp retry: %w", dnsCtxErr(ctx, err))
		}
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return resp, nil
	case dns.RcodeNameError:
		return nil, fmt.Errorf("%w (NXDOMAIN)", ErrNoDNSRecords)
	default:
		rc, ok := dns.RcodeToString[resp.Rcode]
		if !ok {
			rc = "rcode " + strconv.Itoa(resp.Rcode)
		}
		return nil, fmt.Errorf("server answered %s", rc)
	}
}

// dnsCtxErr prefers the context's error when the context ended the query.
// The socket deadline is the context's, so the read may time out an instant
// before ctx.Err() reports it.
func dnsCtxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return err
}

// srvEndpoints turns the SRV records of resp into endpoints, taking each
// target's addresses from the Additional section or else from A and AAAA
// queries. Targets without addresses are skipped. A target whose queries
// failed (rather than answering "no such records") fails the resolution
// when it has no address at all, so that a transient failure does not drop
// nodes; when one of A/AAAA answers, its addresses are used.
func (r *DNSResolver) srvEndpoints(ctx context.Context, resp *dns.Msg, minTTL *dnsTTLMin) ([]Endpoint, error) {
	var srvs []*dns.SRV
	for _, rr := range resp.Answer {
		switch rr := rr.(type) {
		case *dns.SRV:
			if rr.Target == "." {
				continue // RFC 2782: service decidedly not available here
			}
			if rr.Port == 0 {
				r.logger().Warn("dns discovery: skipping SRV record with port 0",
					"query", r.String(), "target", rr.Target)
				continue
			}
			srvs = append(srvs, rr)
			minTTL.add(rr.Hdr.Ttl)
		case *dns.CNAME:
			minTTL.add(rr.Hdr.Ttl)
		}
	}
	if len(srvs) == 0 {
		return nil, nil
	}

	// Addresses per target: from the Additional section, else looked up.
	type target struct {
		addrs []netip.Addr
		ttl   dnsTTLMin
		err   error
	}
	targets := map[string]*target{}
	var missing []string
	for _, s := range srvs {
		key := dnsCanon(s.Target)
		if _, ok := targets[key]; ok {
			continue
		}
		t := &target{}
		targets[key] = t
		t.addrs = append(dnsAddrs(resp.Extra, key, dns.TypeA, &t.ttl), dnsAddrs(resp.Extra, key, dns.TypeAAAA, &t.ttl)...)
		if len(t.addrs) == 0 {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		var wg sync.WaitGroup
		sem := make(chan struct{}, dnsLookupParallel)
		for _, key := range missing {
			t := targets[key]
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				t.addrs, t.err = r.lookupTarget(ctx, key, &t.ttl)
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}

	var eps []Endpoint
	for _, s := range srvs {
		t := targets[dnsCanon(s.Target)]
		if t.err != nil {
			return nil, t.err
		}
		if len(t.addrs) == 0 {
			continue
		}
		minTTL.merge(&t.ttl)
		w := int(s.Weight)
		if w < 1 {
			w = 1
		}
		for _, a := range t.addrs {
			eps = append(eps, Endpoint{
				Address:  netip.AddrPortFrom(a, s.Port).String(),
				Weight:   w,
				Priority: int(s.Priority),
			})
		}
	}
	for key, t := range targets {
		if t.err == nil && len(t.addrs) == 0 {
			r.logger().Warn("dns discovery: skipping SRV target without addresses",
				"query", r.String(), "target", strings.TrimSuffix(key, "."))
		}
	}
	return eps, nil
}

// lookupTarget queries A and AAAA for an SRV target concurrently and
// returns what answered. The error is set only when neither query gave an
// address and at least one failed other than with "no records".
func (r *DNSResolver) lookupTarget(ctx context.Context, fqdn string, ttl *dnsTTLMin) ([]netip.Addr, error) {
	type result struct {
		addrs []netip.Addr
		ttl   dnsTTLMin
		err   error
	}
	var res [2]result
	var wg sync.WaitGroup
	for i, qt := range [2]uint16{dns.TypeA, dns.TypeAAAA} {
		wg.Go(func() {
			resp, err := r.exchange(ctx, fqdn, qt)
			if err != nil {
				res[i].err = fmt.Errorf("target %s %s: %w", strings.TrimSuffix(fqdn, "."), dns.TypeToString[qt], err)
				return
			}
			res[i].addrs = dnsAddrs(resp.Answer, "", qt, &res[i].ttl)
		})
	}
	wg.Wait()
	var addrs []netip.Addr
	var errs []error
	for i := range res {
		if res[i].err != nil {
			if !errors.Is(res[i].err, ErrNoDNSRecords) {
				errs = append(errs, res[i].err)
			}
			continue
		}
		if len(res[i].addrs) > 0 {
			addrs = append(addrs, res[i].addrs...)
			ttl.merge(&res[i].ttl)
		}
	}
	if len(addrs) == 0 && len(errs) > 0 {
		return nil, errs[0]
	}
	return addrs, nil
}

func (r *DNSResolver) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// dnsAddrs returns the addresses of the qtype records in rrs, only those
// owned by owner when it is not empty, adding their TTLs (and those of
// CNAMEs when owner is empty, i.e. for an answer section) to ttl.
func dnsAddrs(rrs []dns.RR, owner string, qtype uint16, ttl *dnsTTLMin) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		if owner != "" && dnsCanon(rr.Header().Name) != owner {
			continue
		}
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			if qtype == dns.TypeA {
				ip = rr.A
			}
		case *dns.AAAA:
			if qtype == dns.TypeAAAA {
				ip = rr.AAAA
			}
		case *dns.CNAME:
			if owner == "" {
				ttl.add(rr.Hdr.Ttl)
			}
			continue
		}
		if ip == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		if qtype == dns.TypeA {
			a = a.Unmap() // net.IP keeps A records in 16-byte form
			if !a.Is4() {
				continue
			}
		}
		out = append(out, a)
		ttl.add(rr.Header().Ttl)
	}
	return out
}

// dnsCanon is a name's canonical form for comparisons.
func dnsCanon(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// dnsNormalize sorts endpoints by Address and drops duplicates, keeping for
// each address the lowest priority and, among those, the highest weight.
func dnsNormalize(eps []Endpoint) []Endpoint {
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(
			strings.Compare(a.Address, b.Address),
			cmp.Compare(a.Priority, b.Priority),
			cmp.Compare(b.Weight, a.Weight),
		)
	})
	return slices.CompactFunc(eps, func(a, b Endpoint) bool { return a.Address == b.Address })
}

// dnsTTLMin tracks the minimum TTL of the records seen.
type dnsTTLMin struct {
	set bool
	ttl uint32
}

func (m *dnsTTLMin) add(ttl uint32) {
	if !m.set || ttl < m.ttl {
		m.set, m.ttl = true, ttl
	}
}

func (m *dnsTTLMin) merge(o *dnsTTLMin) {
	if o.set {
		m.add(o.ttl)
	}
}

func (m *dnsTTLMin) get() time.Duration { return time.Duration(m.ttl) * time.Second }

// DNSMetrics are the metrics of DNS discovery, labelled by pool. A nil
// *DNSMetrics is valid and records nothing.
type DNSMetrics struct {
	resolutions *prometheus.CounterVec // pool, result
	nodes       *prometheus.GaugeVec   // pool
	lastSuccess *prometheus.GaugeVec   // pool
}

// Results counted in edge_dns_resolutions_total.
const (
	DNSResultSuccess = "success" // endpoints found
	DNSResultFailure = "failure" // the query failed (timeout, SERVFAIL, …)
	DNSResultEmpty   = "empty"   // no usable records (NXDOMAIN, no answer)
)

// NewDNSMetrics creates the discovery metrics and registers them on reg
// (when reg is not nil):
//
//	edge_dns_resolutions_total{pool,result}         result = success|failure|empty
//	edge_dns_nodes{pool}                            nodes in the last good answer
//	edge_dns_last_success_timestamp_seconds{pool}   time of the last good answer
//
// Collectors already registered on reg by an earlier call are reused, so it
// may be called again with the same registry (e.g. on a configuration
// reload).
func NewDNSMetrics(reg prometheus.Registerer) (*DNSMetrics, error) {
	m := &DNSMetrics{
		resolutions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_dns_resolutions_total",
			Help: "DNS discovery resolutions by pool and result (success, failure, empty).",
		}, []string{"pool", "result"}),
		nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edge_dns_nodes",
			Help: "Nodes in the last good DNS discovery answer, by pool.",
		}, []string{"pool"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edge_dns_last_success_timestamp_seconds",
			Help: "Unix time of the last good DNS discovery answer, by pool.",
		}, []string{"pool"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.resolutions, err = dnsRegister(reg, m.resolutions); err != nil {
		return nil, err
	}
	if m.nodes, err = dnsRegister(reg, m.nodes); err != nil {
		return nil, err
	}
	if m.lastSuccess, err = dnsRegister(reg, m.lastSuccess); err != nil {
		return nil, err
	}
	return m, nil
}

// dnsRegister registers c, or returns the identical collector already
// registered.
func dnsRegister[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, fmt.Errorf("registering dns discovery metrics: %w", err)
}

// init creates a pool's series so that they are exported (as zeros) before
// the first event.
func (m *DNSMetrics) init(pool string) {
	if m == nil {
		return
	}
	for _, res := range []string{DNSResultSuccess, DNSResultFailure, DNSResultEmpty} {
		m.resolutions.WithLabelValues(pool, res)
	}
	m.nodes.WithLabelValues(pool)
}

func (m *DNSMetrics) success(pool string, nodes int) {
	if m == nil {
		return
	}
	m.resolutions.WithLabelValues(pool, DNSResultSuccess).Inc()
	m.nodes.WithLabelValues(pool).Set(float64(nodes))
	m.lastSuccess.WithLabelValues(pool).SetToCurrentTime()
}

func (m *DNSMetrics) count(pool, result string) {
	if m == nil {
		return
	}
	m.resolutions.WithLabelValues(pool, result).Inc()
}

// Forget deletes a pool's series, for a pool removed from the
// configuration. Call it after that pool's DiscoverLoop has returned.
func (m *DNSMetrics) Forget(pool string) {
	if m == nil {
		return
	}
	m.resolutions.DeletePartialMatch(prometheus.Labels{"pool": pool})
	m.nodes.DeleteLabelValues(pool)
	m.lastSuccess.DeleteLabelValues(pool)
}

// DiscoverLoop resolves r until ctx is done: at once, then again when the
// answer's TTL, clamped to [minTTL, maxTTL], expires, each wait jittered by
// ±10%. Whenever the set of endpoints differs from the last one delivered
// (the first good answer always does), it calls onChange from the loop's
// goroutine, so never concurrently with itself; onChange gets its own copy,
// sorted by Address, and delays the next resolution while it runs.
//
// A failed resolution, or one with no endpoints, keeps the last good answer
// (onChange is never called with an empty list): it is logged as a warning,
// counted, and retried after a backoff that starts at minTTL and doubles
// with each consecutive failure, up to maxTTL.
//
// minTTL ≤ 0 means 1s, maxTTL ≤ 0 means 5m, and maxTTL is raised to minTTL
// if below it; no other floor is enforced. m and log may be nil.
func DiscoverLoop(ctx context.Context, pool string, r Resolver, minTTL, maxTTL time.Duration, m *DNSMetrics, log *slog.Logger, onChange func([]Endpoint)) {
	if minTTL <= 0 {
		minTTL = DNSDefaultMinTTL
	}
	if maxTTL <= 0 {
		maxTTL = DNSDefaultMaxTTL
	}
	maxTTL = max(maxTTL, minTTL)
	if log == nil {
		log = slog.Default()
	}
	log = log.With("pool", pool)
	m.init(pool)

	var (
		last      []Endpoint
		delivered bool
		failures  int // consecutive
		timer     *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		eps, ttl, err := r.Resolve(ctx)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if err == nil && len(eps) > 0 {
			failures = 0
			eps = dnsNormalize(slices.Clone(eps))
			m.success(pool, len(eps))
			wait = min(max(ttl, minTTL), maxTTL)
			if !delivered || !slices.Equal(eps, last) {
				log.Info("dns discovery: nodes changed", "nodes", len(eps), "previous", len(last))
				last, delivered = eps, true
				onChange(slices.Clone(eps))
			}
		} else {
			result := DNSResultFailure
			if err == nil {
				err = ErrNoDNSRecords
			}
			if errors.Is(err, ErrNoDNSRecords) {
				result = DNSResultEmpty
			}
			m.count(pool, result)
			wait = dnsBackoff(minTTL, maxTTL, failures)
			failures++
			log.Warn("dns discovery failed; keeping the last good nodes",
				"error", err, "result", result, "consecutive_failures", failures,
				"kept_nodes", len(last), "retry_in", wait.Round(time.Millisecond))
		}

		wait = dnsJitter(wait)
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// dnsBackoff is minTTL·2^failures, capped at maxTTL.
func dnsBackoff(minTTL, maxTTL time.Duration, failures int) time.Duration {
	d := minTTL
	for range failures {
		if d >= maxTTL/2 {
			return maxTTL
		}
		d *= 2
	}
	return min(d, maxTTL)
}

// dnsJitter spreads d uniformly over ±10%.
func dnsJitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}
