package router

import (
	"math"
	"net/netip"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// This file holds what stands between a client and the routes: access
// lists, rate limits and the limits' metrics. Framing checks are in
// framing.go and path normalisation in path.go.

// Limit names, the values of the "limit" label of edge_limit_triggered_total.
const (
	limitRate        = "rate"
	limitAccess      = "access"
	limitConnsPerIP  = "connections_per_ip"
	limitReqsPerConn = "requests_per_connection"
	limitHeaderCount = "header_count"
)

// limitMetrics counts limits that triggered. Its counters are resolved
// when a snapshot is built, so the request path only does atomic adds.
type limitMetrics struct {
	triggered  *prometheus.CounterVec // limit, route
	proxyProto map[string]prometheus.Counter
}

// proxyRefused counts a connection refused by a PROXY protocol listener;
// reason is "untrusted" or "invalid".
func (m *limitMetrics) proxyRefused(reason string) { m.proxyProto[reason].Inc() }

func newLimitMetrics(reg prometheus.Registerer, rejected func() float64) *limitMetrics {
	m := &limitMetrics{
		triggered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_limit_triggered_total",
			Help: "Times a limit refused or cut a client, by limit (rate, access, connections_per_ip, requests_per_connection, header_count) and route (empty before routing).",
		}, []string{"limit", "route"}),
	}
	reg.MustRegister(m.triggered, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "edge_http_connections_rejected_total",
		Help: "Client connections closed at once because server.max_connections were open.",
	}, rejected))
	pp := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edge_proxy_protocol_refused_total",
		Help: "Connections closed by a PROXY protocol listener, by reason (untrusted: not from proxy_protocol.from; invalid: no valid header in time).",
	}, []string{"reason"})
	reg.MustRegister(pp)
	m.proxyProto = map[string]prometheus.Counter{"untrusted": pp.WithLabelValues("untrusted"), "invalid": pp.WithLabelValues("invalid")}
	for _, l := range []string{limitRate, limitConnsPerIP, limitReqsPerConn, limitHeaderCount} {
		m.triggered.WithLabelValues(l, "")
	}
	return m
}

// accessList is a route's compiled access control (config.Access).
type accessList struct {
	allow, deny []netip.Prefix
}

func newAccessList(a *config.Access) *accessList {
	if a == nil {
		return nil
	}
	return &accessList{allow: a.AllowNets, deny: a.DenyNets}
}

// allows reports whether client may use the route: not denied, and
// allowed when an allow list is set.
func (a *accessList) allows(client netip.Addr) bool {
	client = client.Unmap()
	for _, p := range a.deny {
		if p.Contains(client) {
			return false
		}
	}
	if len(a.allow) == 0 {
		return true
	}
	for _, p := range a.allow {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// rateRule is a compiled config.RateLimit with its bucket(s).
type rateRule struct {
	cfg     config.RateLimit
	limiter *rateLimiter
	byRoute bool // one bucket for the route, not one per client
	hits    prometheus.Counter
}

// newRateRule compiles rl, taking over prev's buckets when its settings
// are unchanged, so a reload does not hand every client a full bucket.
func newRateRule(rl *config.RateLimit, prev *rateRule, hits prometheus.Counter) *rateRule {
	if rl == nil {
		return nil
	}
	r := &rateRule{cfg: *rl, byRoute: rl.Key == config.RateKeyRoute, hits: hits}
	if prev != nil && prev.cfg == *rl {
		r.limiter = prev.limiter
	} else {
		r.limiter = newRateLimiter(rl.RequestsPerSecond, rl.Burst, rl.MaxClients)
	}
	return r
}

// allow takes a token for client, or answers the request 429 with
// Retry-After (RFC 6585 §4, RFC 9110 §10.2.3) and returns false.
func (r *rateRule) allow(ctx *fasthttp.RequestCtx, client netip.Addr) bool {
	if r.byRoute {
		client = netip.Addr{}
	}
	ok, wait := r.limiter.allow(client, monoNow())
	if ok {
		return true
	}
	r.hits.Inc()
	writeError(ctx, fasthttp.StatusTooManyRequests)
	secs := int64(math.Ceil(wait.Seconds()))
	var b [20]byte
	ctx.Response.Header.SetBytesKV(hdrRetryAfter, strconv.AppendInt(b[:0], max(secs, 1), 10))
	return false
}

var hdrRetryAfter = []byte("Retry-After")
