package health

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// checkDurationBuckets cover fast local checks to slow timeouts.
var checkDurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// nodeStateDesc describes edge_health_node_state, produced at scrape time.
var nodeStateDesc = prometheus.NewDesc(
	"edge_health_node_state",
	"Current state of a node: 1 for its state (up, down, draining, maint), 0 for the others.",
	[]string{"pool", "node", "state"}, nil,
)

// healthMetrics holds the package's Prometheus metrics. Every series of a
// node is removed when the node is forgotten.
type healthMetrics struct {
	checkDuration *prometheus.HistogramVec // pool, node
	checks        *prometheus.CounterVec   // pool, node, result
	ejections     *prometheus.CounterVec   // pool, node
	transitions   *prometheus.CounterVec   // pool, node, to
}

// newHealthMetrics creates the metrics and, when reg is not nil, registers
// them with a collector of node states that reads r at scrape time.
func newHealthMetrics(r *Registry, reg prometheus.Registerer) (*healthMetrics, error) {
	m := &healthMetrics{
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "edge_health_check_duration_seconds",
			Help:    "Duration of active health checks, by pool and node.",
			Buckets: checkDurationBuckets,
		}, []string{"pool", "node"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_health_checks_total",
			Help: "Active health checks, by pool, node and result (pass, fail).",
		}, []string{"pool", "node", "result"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_health_ejections_total",
			Help: "Ejections of nodes by passive outlier detection, by pool and node.",
		}, []string{"pool", "node"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_health_transitions_total",
			Help: "Health state changes decided by active checks (and ejections, when a pool has active checks), by pool, node and new state (up, down).",
		}, []string{"pool", "node", "to"}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.checkDuration, m.checks, m.ejections, m.transitions, nodeStateCollector{r}}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register health metrics: already registered (one Registry per Registerer): %w", err)
			}
			return nil, fmt.Errorf("register health metrics: %w", err)
		}
	}
	return m, nil
}

// initChecks creates a node's check series at zero, so rates work from the
// first scrape.
func (m *healthMetrics) initChecks(pool, node string) {
	m.checks.WithLabelValues(pool, node, "pass")
	m.checks.WithLabelValues(pool, node, "fail")
	m.transitions.WithLabelValues(pool, node, stateUp)
	m.transitions.WithLabelValues(pool, node, stateDown)
}

// initEjections creates a node's ejection series at zero.
func (m *healthMetrics) initEjections(pool, node string) {
	m.ejections.WithLabelValues(pool, node)
}

func (m *healthMetrics) checked(pool, node string, res CheckResult) {
	m.checkDuration.WithLabelValues(pool, node).Observe(res.Latency.Seconds())
	result := "fail"
	if res.Passed {
		result = "pass"
	}
	m.checks.WithLabelValues(pool, node, result).Inc()
}

func (m *healthMetrics) ejected(pool, node string) {
	m.ejections.WithLabelValues(pool, node).Inc()
}

func (m *healthMetrics) transition(pool, node, to string) {
	m.transitions.WithLabelValues(pool, node, to).Inc()
}

// forget removes every series of a node.
func (m *healthMetrics) forget(pool, node string) {
	l := prometheus.Labels{"pool": pool, "node": node}
	m.checkDuration.DeletePartialMatch(l)
	m.checks.DeletePartialMatch(l)
	m.ejections.DeletePartialMatch(l)
	m.transitions.DeletePartialMatch(l)
}

// forgetPool removes every series of a pool.
func (m *healthMetrics) forgetPool(pool string) {
	l := prometheus.Labels{"pool": pool}
	m.checkDuration.DeletePartialMatch(l)
	m.checks.DeletePartialMatch(l)
	m.ejections.DeletePartialMatch(l)
	m.transitions.DeletePartialMatch(l)
}

// nodeStateCollector produces edge_health_node_state from the registry at
// scrape time: no cost on the request path, and forgotten nodes vanish.
type nodeStateCollector struct{ r *Registry }

// Describe implements prometheus.Collector.
func (c nodeStateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- nodeStateDesc }

// Collect implements prometheus.Collector.
func (c nodeStateCollector) Collect(ch chan<- prometheus.Metric) {
	type row struct{ pool, node, state string }
	var rows []row
	now := monoNow()
	c.r.mu.Lock()
	for name, p := range c.r.pools {
		p.mu.Lock()
		for _, n := range p.nodes {
			if p.byName[n.Name()] != n {
				continue // a duplicate name would make a duplicate series
			}
			rows = append(rows, row{name, n.Name(), n.state(now)})
		}
		p.mu.Unlock()
	}
	c.r.mu.Unlock()
	for _, rw := range rows {
		for _, s := range nodeStates {
			v := 0.0
			if s == rw.state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(nodeStateDesc, prometheus.GaugeValue, v, rw.pool, rw.node, s)
		}
	}
}
