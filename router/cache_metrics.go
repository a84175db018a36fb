package router

import (
	"github.com/edge-router/edge/cache"
	"github.com/prometheus/client_golang/prometheus"
)

// Cache results, the values of edge_cache_requests_total's result label.
const (
	cacheHit         = "hit"         // answered from a fresh stored response
	cacheStale       = "stale"       // answered from a stale one (SWR, stale-if-error, grace, max-stale)
	cacheMiss        = "miss"        // forwarded: nothing usable stored
	cacheRevalidated = "revalidated" // a stored response was validated by a node (304)
	cacheBypass      = "bypass"      // not a cacheable request (method, PURGE)
)

// Why a stale response was served: edge_cache_stale_served_total's reason.
const (
	staleWhileRevalidate = "while_revalidate"
	staleIfError         = "if_error"
	staleGrace           = "grace"
	staleMaxStale        = "max_stale"
)

// cacheMetrics are the cache's series. The store's own counters are read
// at scrape time.
type cacheMetrics struct {
	requests  *prometheus.CounterVec // route, result
	stale     *prometheus.CounterVec // route, reason
	notStored *prometheus.CounterVec // route, reason
	stores    *prometheus.CounterVec // route
	coalesced *prometheus.CounterVec // route
	purges    *prometheus.CounterVec // source, kind
	purged    prometheus.Counter
}

// cacheRouteMetrics are a route's cache series, resolved once per
// snapshot so that a hit allocates nothing.
type cacheRouteMetrics struct {
	hit, stale, miss, revalidated, bypass prometheus.Counter
	stores, coalesced                     prometheus.Counter
	route                                 string
	m                                     *cacheMetrics
}

func newCacheMetrics(reg prometheus.Registerer, store func() *cache.Store, coal *cache.Coalescer) *cacheMetrics {
	m := &cacheMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_cache_requests_total",
			Help: "Requests to cached routes, by route and result (hit, stale, miss, revalidated, bypass).",
		}, []string{"route", "result"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_cache_stale_served_total",
			Help: "Stale responses served, by route and reason (while_revalidate, if_error, grace, max_stale).",
		}, []string{"route", "reason"}),
		notStored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_cache_not_stored_total",
			Help: "Node answers of cached routes that were not stored, by route and reason.",
		}, []string{"route", "reason"}),
		stores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_cache_stores_total",
			Help: "Responses handed to the store, by route (the store may still refuse them: edge_cache_store_rejections_total).",
		}, []string{"route"}),
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_cache_coalesced_requests_total",
			Help: "Requests that waited for another request's fetch of the same key, by route.",
		}, []string{"route"}),
		purges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edge_cache_purges_total",
			Help: "Purge operations, by source (method, admin) and kind (url, tag, pattern, all).",
		}, []string{"source", "kind"}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edge_cache_purged_objects_total",
			Help: "Stored responses removed or marked stale by purges and by unsafe methods.",
		}),
	}
	reg.MustRegister(m.requests, m.stale, m.notStored, m.stores, m.coalesced, m.purges, m.purged,
		&storeCollector{store: store, coal: coal})
	return m
}

func (m *cacheMetrics) forRoute(name string) *cacheRouteMetrics {
	return &cacheRouteMetrics{
		hit:         m.requests.WithLabelValues(name, cacheHit),
		stale:       m.requests.WithLabelValues(name, cacheStale),
		miss:        m.requests.WithLabelValues(name, cacheMiss),
		revalidated: m.requests.WithLabelValues(name, cacheRevalidated),
		bypass:      m.requests.WithLabelValues(name, cacheBypass),
		stores:      m.stores.WithLabelValues(name),
		coalesced:   m.coalesced.WithLabelValues(name),
		route:       name,
		m:           m,
	}
}

func (rm *cacheRouteMetrics) servedStale(reason string) {
	rm.stale.Inc()
	rm.m.stale.WithLabelValues(rm.route, reason).Inc()
}

func (rm *cacheRouteMetrics) notStored(reason string) {
	rm.m.notStored.WithLabelValues(rm.route, reason).Inc()
}

// storeCollector reports the store's levels and counters at scrape time.
type storeCollector struct {
	store func() *cache.Store
	coal  *cache.Coalescer
}

var (
	descCacheObjects = prometheus.NewDesc("edge_cache_objects",
		"Responses held in the cache (every variant counts).", nil, nil)
	descCacheBytes = prometheus.NewDesc("edge_cache_bytes",
		"Bytes held in the cache (keys, fields, bodies and a fixed overhead per object).", nil, nil)
	descCacheMaxBytes = prometheus.NewDesc("edge_cache_max_bytes",
		"The configured bound of edge_cache_bytes (cache.size).", nil, nil)
	descCacheRejections = prometheus.NewDesc("edge_cache_store_rejections_total",
		"Responses the store refused to admit (TinyLFU admission, full buffers, too large).", nil, nil)
	descCacheEvictions = prometheus.NewDesc("edge_cache_evictions_total",
		"Responses evicted to make room for others.", nil, nil)
	descCacheWaiters = prometheus.NewDesc("edge_cache_coalesced_waiters",
		"Requests waiting now for another request's fetch of the same key.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCacheObjects
	ch <- descCacheBytes
	ch <- descCacheMaxBytes
	ch <- descCacheRejections
	ch <- descCacheEvictions
	ch <- descCacheWaiters
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.store().Stats()
	ch <- prometheus.MustNewConstMetric(descCacheObjects, prometheus.GaugeValue, float64(st.Objects))
	ch <- prometheus.MustNewConstMetric(descCacheBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descCacheMaxBytes, prometheus.GaugeValue, float64(st.MaxBytes))
	ch <- prometheus.MustNewConstMetric(descCacheRejections, prometheus.CounterValue, float64(st.Rejections))
	ch <- prometheus.MustNewConstMetric(descCacheEvictions, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(descCacheWaiters, prometheus.GaugeValue, float64(c.coal.Waiters()))
}
