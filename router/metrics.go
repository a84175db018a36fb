package router

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// durationBuckets are classic buckets for proxy latency, 0.5 ms to 30 s.
var durationBuckets = []float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// metrics holds every Prometheus metric of the router. Label values come
// only from configuration (route, pool and node names) and fixed sets.
type metrics struct {
	reg *prometheus.Registry

	requests         *prometheus.CounterVec        // route, pool, node, code_class
	requestDuration  *prometheus.HistogramVec      // route
	upstreamDuration *prometheus.HistogramVec      // pool, node
	upstreamErrors   *prometheus.CounterVec        // pool, node, kind
	clientErrors     *prometheus.CounterVec        // reason
	clientErrorBy    map[string]prometheus.Counter // clientErrors resolved per reason, read-only after newMetrics
	inflight         prometheus.Gauge
	reloads          *prometheus.CounterVec // result
	lastReloadOK     prometheus.Gauge
	lastReloadTime   prometheus.Gauge
	accessLogDropped prometheus.Counter

	retries              *prometheus.CounterVec // pool, reason
	retryBudgetExhausted *prometheus.CounterVec // pool

	// status is the admin status page's state: per-node rolling figures
	// and the last reload's result (status.go).
	status *statusState
}

func newMetrics(conns prometheus.Collector) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_http_requests_total",
			Help: "Requests answered, by route, pool, node and status class (pool and node empty when no node answered).",
		}, []string{"route", "pool", "node", "code_class"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "edge_http_request_duration_seconds",
			Help:                            "Time from the request header to the response header, by route.",
			Buckets:                         durationBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: 0,
		}, []string{"route"}),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                           "edge_upstream_request_duration_seconds",
			Help:                           "Time from sending a request to a node to its response header, by pool and node.",
			Buckets:                        durationBuckets,
			NativeHistogramBucketFactor:    1.1,
			NativeHistogramMaxBucketNumber: 100,
		}, []string{"pool", "node"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_upstream_errors_total",
			Help: "Failed attempts to get a response from a node, by pool, node and kind (dial, timeout, busy, other).",
		}, []string{"pool", "node", "kind"}),
		clientErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_http_client_errors_total",
			Help: "Requests refused before routing, by reason (bad_request, bad_path, uri_too_long, header_too_large, body_too_large, timeout, no_route, rate_limited).",
		}, []string{"reason"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edge_http_requests_in_flight",
			Help: "Requests being handled now.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_config_reloads_total",
			Help: "Configuration reloads, by result (success, failure).",
		}, []string{"result"}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edge_config_last_reload_successful",
			Help: "1 if the last configuration reload succeeded, else 0.",
		}),
		lastReloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edge_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load.",
		}),
		accessLogDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edge_access_log_dropped_total",
			Help: "Access log lines dropped because the writer fell behind.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_upstream_retries_total",
			Help: "Requests sent again to another node, by pool and reason (connect, busy, reset, timeout, 500, 502, 503, 504).",
		}, []string{"pool", "reason"}),
		retryBudgetExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_upstream_retry_budget_exhausted_total",
			Help: "Retries refused because the pool's retry budget was used up.",
		}, []string{"pool"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.requestDuration, m.upstreamDuration, m.upstreamErrors, m.clientErrors,
		m.inflight, m.reloads, m.lastReloadOK, m.lastReloadTime, m.accessLogDropped,
		m.retries, m.retryBudgetExhausted,
	)
	if conns != nil {
		reg.MustRegister(conns)
	}
	// Make the reload series exist from the start, so a dashboard shows 0.
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	m.status = newStatusState()
	m.clientErrorBy = map[string]prometheus.Counter{}
	for _, reason := range []string{"bad_request", "bad_path", "uri_too_long", "header_too_large", "body_too_large", "timeout", "no_route", "rate_limited"} {
		m.clientErrorBy[reason] = m.clientErrors.WithLabelValues(reason)
	}
	return m
}

// clientError counts a request refused before routing. The label is looked
// up once at start, so a flood of bad requests costs no allocation.
func (m *metrics) clientError(reason string) { m.clientErrorBy[reason].Inc() }

// routeMetrics are a route's metric handles, resolved once per snapshot so
// the request path only does atomic adds. Counters per (node, class) are
// created on first use, so series exist only for combinations seen.
type routeMetrics struct {
	m        *metrics
	route    string
	pool     string
	duration prometheus.Observer
	// cells[nodeIndex+1][class]; index 0 is "no node".
	cells [][6]counterCell
	nodes []string
	// stats[nodeIndex+1] are the nodes' rolling figures for the status
	// page; stats[0] is nil ("no node").
	stats []*nodeStats
}

type counterCell struct {
	once sync.Once
	c    atomic.Pointer[prometheus.Counter]
}

func (m *metrics) forRoute(name, pool string, nodes []*Node) *routeMetrics {
	rm := &routeMetrics{m: m, route: name, pool: pool, duration: m.requestDuration.WithLabelValues(name)}
	rm.cells = make([][6]counterCell, len(nodes)+1)
	rm.nodes = make([]string, len(nodes)+1)
	rm.stats = make([]*nodeStats, len(nodes)+1)
	for i, n := range nodes {
		rm.nodes[i+1] = n.Name
		rm.stats[i+1] = m.status.statsFor(pool, n.Name)
	}
	return rm
}

// count records one answered request; node is nil when no node answered.
func (rm *routeMetrics) count(node *Node, status int, seconds float64) {
	i := 0
	if node != nil {
		i = node.index + 1
	}
	cell := &rm.cells[i][codeClass(status)]
	c := cell.c.Load()
	if c == nil {
		cell.once.Do(func() {
			pool, name := "", ""
			if i > 0 {
				pool, name = rm.pool, rm.nodes[i]
			}
			counter := rm.m.requests.WithLabelValues(rm.route, pool, name, codeClassNames[codeClass(status)])
			cell.c.Store(&counter)
		})
		c = cell.c.Load()
	}
	(*c).Inc()
	rm.duration.Observe(seconds)
	if st := rm.stats[i]; st != nil {
		st.record(status, seconds) // atomic adds only
	}
}

// nodeMetrics are a node's metric handles within its pool.
type nodeMetrics struct {
	duration prometheus.Observer
	dialErr  prometheus.Counter
	timeout  prometheus.Counter
	busy     prometheus.Counter
	otherErr prometheus.Counter
	// stats are the node's rolling figures, shared with routeMetrics and
	// read by the status sampler.
	stats *nodeStats
}

func (m *metrics) forNode(pool, node string) *nodeMetrics {
	return &nodeMetrics{
		stats:    m.status.statsFor(pool, node),
		duration: m.upstreamDuration.WithLabelValues(pool, node),
		dialErr:  m.upstreamErrors.WithLabelValues(pool, node, "dial"),
		timeout:  m.upstreamErrors.WithLabelValues(pool, node, "timeout"),
		busy:     m.upstreamErrors.WithLabelValues(pool, node, "busy"),
		otherErr: m.upstreamErrors.WithLabelValues(pool, node, "other"),
	}
}

// connCollector reports each node's open and idle connections at scrape
// time, reading the live snapshot, so it costs the request path nothing.
type connCollector struct {
	desc *prometheus.Desc
	snap func() *snapshot
}

func newConnCollector(snap func() *snapshot) *connCollector {
	return &connCollector{
		desc: prometheus.NewDesc("edge_upstream_connections",
			"Connections to each node, by pool, node and state (open includes idle).",
			[]string{"pool", "node", "state"}, nil),
		snap: snap,
	}
}

func (c *connCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *connCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	if s == nil {
		return
	}
	for _, p := range s.poolList {
		for _, n := range p.nodes {
			hc := n.link.client
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(hc.ConnsCount()), p.name, n.Name, "open")
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(hc.IdleConnsCount()), p.name, n.Name, "idle")
		}
	}
}
