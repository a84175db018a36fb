package router

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// The admin status page: GET /status (JSON) and GET / (HTML), both built
// from the same statusView. Per-node traffic figures come from nodeStats,
// counted on the request path with atomic adds only, and sampled once a
// second into a one-minute history by a goroutine of the admin server.

// latencyBuckets is the size of a node's latency histogram: half-octave
// buckets of 8.192 µs units, bucket 0 below one unit, the last one
// open-ended from about 69 s.
const latencyBuckets = 48

// latencyUnitShift turns nanoseconds into the histogram's 8.192 µs units.
const latencyUnitShift = 13

// latencyBucket returns the histogram bucket of a duration in seconds,
// with integer operations only.
func latencyBucket(seconds float64) int {
	if !(seconds > 0) {
		return 0
	}
	if seconds >= 1e4 {
		return latencyBuckets - 1
	}
	u := uint64(seconds*1e9) >> latencyUnitShift
	if u == 0 {
		return 0
	}
	l := bits.Len64(u)
	if l == 1 {
		return 1
	}
	i := 2*(l-1) + int(u>>(l-2)&1)
	return min(i, latencyBuckets-1)
}

// latencyBounds returns the range [lo, hi) of bucket i in seconds.
func latencyBounds(i int) (lo, hi float64) {
	var from, to uint64 // in units
	switch {
	case i <= 0:
		from, to = 0, 1
	case i == 1:
		from, to = 1, 2
	default:
		base := uint64(1) << uint(i/2) // values with i/2+1 significant bits
		step := base >> 1              // two buckets per power of two
		from = base + uint64(i%2)*step
		to = from + step
	}
	const unit = float64(uint64(1)<<latencyUnitShift) / 1e9
	return float64(from) * unit, float64(to) * unit
}

// nodeStats are a node's cumulative counters for the status page. The
// request path only adds to them atomically (routeMetrics.count); the
// sampler reads them once a second.
type nodeStats struct {
	requests atomic.Uint64 // answers from the node
	errors   atomic.Uint64 // of which 5xx
	latency  [latencyBuckets]atomic.Uint64
}

// record counts one answer from the node: three atomic adds, no lock and
// no allocation.
func (st *nodeStats) record(status int, seconds float64) {
	st.requests.Add(1)
	if status >= 500 {
		st.errors.Add(1)
	}
	st.latency[latencyBucket(seconds)].Add(1)
}

// Sampling of nodeStats.
const (
	sampleEvery = time.Second
	historyLen  = 60 // samples kept: one minute
	rateWindow  = 10 // samples behind requests/s and the error rate
	// forgetAfter drops the figures of a node gone from the configuration.
	forgetAfter = time.Minute
)

// sample is what one node did during one sampling interval.
type sample struct {
	at    int64   // unix milliseconds at the end of the interval
	secs  float64 // length of the interval
	req   uint32  // answers
	errs  uint32  // 5xx answers
	fails uint32  // failed attempts (dial, timeout, busy, other)
	lat   [latencyBuckets]uint32
}

// reading is a node's cumulative counters at one moment.
type reading struct {
	req, errs, fails uint64
	lat              [latencyBuckets]uint64
}

// nodeSeries is a node's history: a ring of the last historyLen samples.
type nodeSeries struct {
	last   reading
	lastAt time.Time
	ring   [historyLen]sample
	n      int // samples held
	next   int // where the next sample goes
	seen   time.Time
}

func counterDelta(cur, prev uint64) uint32 {
	if cur < prev { // the counters started over (node forgotten and back)
		prev = 0
	}
	return uint32(min(cur-prev, math.MaxUint32))
}

func (ns *nodeSeries) push(now time.Time, r reading) {
	smp := sample{
		at:    now.UnixMilli(),
		secs:  now.Sub(ns.lastAt).Seconds(),
		req:   counterDelta(r.req, ns.last.req),
		errs:  counterDelta(r.errs, ns.last.errs),
		fails: counterDelta(r.fails, ns.last.fails),
	}
	for i := range smp.lat {
		smp.lat[i] = counterDelta(r.lat[i], ns.last.lat[i])
	}
	ns.ring[ns.next] = smp
	ns.next = (ns.next + 1) % historyLen
	ns.n = min(ns.n+1, historyLen)
	ns.last, ns.lastAt = r, now
}

// recent returns the last n samples, oldest first.
func (ns *nodeSeries) recent(n int) []sample {
	n = min(n, ns.n)
	out := make([]sample, 0, n)
	for k := n; k > 0; k-- {
		out = append(out, ns.ring[(ns.next-k+historyLen)%historyLen])
	}
	return out
}

// statusState is what the status page keeps: the nodes' counters and
// histories, and the last reload's outcome. It outlives reloads.
type statusState struct {
	started time.Time

	mu     sync.Mutex
	stats  map[string]*statsEntry // by pool "\x00" node
	series map[string]*nodeSeries // by the same key

	samplerOnce sync.Once

	reloadMu       sync.Mutex
	reloadAt       time.Time
	reloadErr      string // "" when the noted reload succeeded
	reloadFailures uint64 // failed reloads counted when it was noted
}

type statsEntry struct {
	st   *nodeStats
	seen time.Time
}

func newStatusState() *statusState {
	return &statusState{started: time.Now(), stats: map[string]*statsEntry{}, series: map[string]*nodeSeries{}}
}

func statsKey(pool, node string) string { return pool + "\x00" + node }

// statsFor returns the counters of a node, the same ones for every
// snapshot that has the node, so that a reload keeps its figures.
func (ss *statusState) statsFor(pool, node string) *nodeStats {
	key := statsKey(pool, node)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	e := ss.stats[key]
	if e == nil {
		e = &statsEntry{st: &nodeStats{}}
		ss.stats[key] = e
	}
	e.seen = time.Now()
	return e.st
}

// noteReload records the outcome of a reload for the status page, with
// the failure count it leaves (see statusView).
func (ss *statusState) noteReload(err error, failures uint64) {
	ss.reloadMu.Lock()
	defer ss.reloadMu.Unlock()
	ss.reloadAt = time.Now()
	ss.reloadErr = ""
	ss.reloadFailures = failures
	if err != nil {
		ss.reloadErr = err.Error()
	}
}

// noteReload records the outcome of a reload for the status page; Apply
// and reloadFailed call it, whatever asked for the reload (admin API,
// file watcher, SIGHUP).
func (s *Server) noteReload(err error) {
	s.metrics.status.noteReload(err, counterValue(s.metrics.reloads.WithLabelValues("failure")))
}

// counterValue reads a Prometheus counter (off the request path).
func counterValue(c prometheus.Counter) uint64 {
	var m dto.Metric
	if c == nil || c.Write(&m) != nil || m.Counter == nil {
		return 0
	}
	return uint64(m.Counter.GetValue())
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if g.Write(&m) != nil || m.Gauge == nil {
		return 0
	}
	return m.Gauge.GetValue()
}

func readNode(nm *nodeMetrics) reading {
	var r reading
	r.req = nm.stats.requests.Load()
	r.errs = nm.stats.errors.Load()
	for i := range r.lat {
		r.lat[i] = nm.stats.latency[i].Load()
	}
	r.fails = counterValue(nm.dialErr) + counterValue(nm.timeout) + counterValue(nm.busy) + counterValue(nm.otherErr)
	return r
}

// startSampler starts, once, the goroutine that samples every node's
// counters each second. It stops by itself when the admin server is shut
// down (Shutdown clears s.admin).
func (ss *statusState) startSampler(s *Server) {
	ss.samplerOnce.Do(func() {
		ss.sample(s.snap.Load(), time.Now())
		go func() {
			t := time.NewTicker(sampleEvery)
			defer t.Stop()
			for now := range t.C {
				s.mu.Lock()
				running := s.admin != nil
				s.mu.Unlock()
				if !running {
					return
				}
				ss.sample(s.snap.Load(), now)
			}
		}()
	})
}

// sample takes one reading of every node of snap and forgets the nodes
// gone from the configuration for a while.
func (ss *statusState) sample(snap *snapshot, now time.Time) {
	if snap == nil {
		return
	}
	type nodeReading struct {
		key string
		r   reading
	}
	var got []nodeReading
	for _, p := range snap.poolList {
		for i, n := range p.nodes {
			if i < len(p.metrics) && p.metrics[i].stats != nil {
				got = append(got, nodeReading{statsKey(p.name, n.Name), readNode(p.metrics[i])})
			}
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, g := range got {
		ns := ss.series[g.key]
		if ns == nil {
			ss.series[g.key] = &nodeSeries{last: g.r, lastAt: now, seen: now}
			continue
		}
		ns.push(now, g.r)
		ns.seen = now
		if e := ss.stats[g.key]; e != nil {
			e.seen = now
		}
	}
	for k, ns := range ss.series {
		if now.Sub(ns.seen) > forgetAfter {
			delete(ss.series, k)
		}
	}
	for k, e := range ss.stats {
		if now.Sub(e.seen) > forgetAfter {
			delete(ss.stats, k)
		}
	}
}

// quantile returns the q-quantile of a histogram in milliseconds,
// interpolating within the bucket; nil when it is empty.
func quantile[T uint32 | uint64](b *[latencyBuckets]T, q float64) *float64 {
	var total uint64
	for _, c := range b {
		total += uint64(c)
	}
	if total == 0 {
		return nil
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range b {
		if c == 0 {
			continue
		}
		if float64(cum+uint64(c)) >= rank {
			lo, hi := latencyBounds(i)
			v := (lo + (hi-lo)*(rank-float64(cum))/float64(c)) * 1000
			v = math.Round(v*1000) / 1000
			return &v
		}
		cum += uint64(c)
	}
	lo, hi := latencyBounds(latencyBuckets - 1)
	v := (lo + hi) / 2 * 1000
	return &v
}

// historyPoint is one second of a node's history.
type historyPoint struct {
	Time              int64    `json:"t"` // unix milliseconds
	RequestsPerSecond float64  `json:"rps"`
	Errors            uint32   `json:"errors"` // 5xx answers and failed attempts
	P50MS             *float64 `json:"p50_ms"` // null: no answer that second
	P99MS             *float64 `json:"p99_ms"`
}

// nodeTraffic is what a node did lately.
type nodeTraffic struct {
	// RequestsPerSecond counts the node's answers over the last ~10 s.
	RequestsPerSecond float64 `json:"requests_per_second"`
	// ErrorRate is (5xx answers + failed attempts) / (answers + failed
	// attempts) over the last ~10 s, from 0 to 1.
	ErrorRate float64 `json:"error_rate"`
	// P50MS and P99MS are latency quantiles over the last minute, request
	// header to response header; null without answers.
	P50MS *float64 `json:"p50_ms"`
	P99MS *float64 `json:"p99_ms"`
	// Requests, Errors5xx and Failures are totals since the node appeared.
	Requests  uint64 `json:"requests"`
	Errors5xx uint64 `json:"errors_5xx"`
	Failures  uint64 `json:"failures"`
	// History holds one point a second, oldest first, up to a minute.
	History []historyPoint `json:"history"`
}

// traffic summarises a node's series (ns may be nil: no sample yet).
func traffic(ns *nodeSeries, r reading) nodeTraffic {
	t := nodeTraffic{Requests: r.req, Errors5xx: r.errs, Failures: r.fails, History: []historyPoint{}}
	if ns == nil {
		return t
	}
	var secs float64
	var req, errs, fails uint64
	for _, smp := range ns.recent(rateWindow) {
		secs += smp.secs
		req += uint64(smp.req)
		errs += uint64(smp.errs)
		fails += uint64(smp.fails)
	}
	if secs > 0 {
		t.RequestsPerSecond = round3(float64(req) / secs)
	}
	if attempts := req + fails; attempts > 0 {
		t.ErrorRate = round3(float64(errs+fails) / float64(attempts))
	}
	var sum [latencyBuckets]uint64
	for _, smp := range ns.recent(historyLen) {
		for i, c := range smp.lat {
			sum[i] += uint64(c)
		}
		p := historyPoint{Time: smp.at, Errors: smp.errs + smp.fails, P50MS: quantile(&smp.lat, 0.5), P99MS: quantile(&smp.lat, 0.99)}
		if smp.secs > 0 {
			p.RequestsPerSecond = round3(float64(smp.req) / smp.secs)
		}
		t.History = append(t.History, p)
	}
	t.P50MS, t.P99MS = quantile(&sum, 0.5), quantile(&sum, 0.99)
	return t
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// statusView is the whole status page, as GET /status answers it.
type statusView struct {
	Version       string    `json:"version"`
	ConfigPath    string    `json:"config_path"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Now           time.Time `json:"now"`
	AuthRequired  bool      `json:"auth_required"` // an admin token is set
	AdminAddress  string    `json:"admin_address"`

	Reload       reloadView        `json:"reload"`
	Listeners    []listenerView    `json:"listeners"`
	Routes       []routeView       `json:"routes"`
	Pools        []poolStatusView  `json:"pools"`
	Cache        cacheView         `json:"cache"`
	Certificates []certificateView `json:"certificates"`
}

// reloadView is the outcome of the last configuration load.
type reloadView struct {
	// OK is false when the last reload was refused (the previous
	// configuration keeps serving).
	OK bool `json:"ok"`
	// Time is when the last reload was tried (or the start).
	Time time.Time `json:"time"`
	// LastSuccess is when a configuration was last applied.
	LastSuccess time.Time `json:"last_success"`
	// Error is why the last reload was refused; empty when OK.
	Error     string `json:"error,omitempty"`
	Successes uint64 `json:"successes"`
	Failures  uint64 `json:"failures"`
}

type listenerView struct {
	Name          string   `json:"name"`
	Address       string   `json:"address"`
	TLS           bool     `json:"tls"`
	ProxyProtocol bool     `json:"proxy_protocol"`
	ProxyFrom     []string `json:"proxy_protocol_from,omitempty"`
}

type routeView struct {
	Name   string `json:"name"`
	Match  string `json:"match"`  // summary of the conditions; "*" for all
	Action string `json:"action"` // proxy, redirect or respond
	Pool   string `json:"pool,omitempty"`
	Target string `json:"target,omitempty"` // redirect target or fixed status
	Cached bool   `json:"cached"`
}

type poolStatusView struct {
	Name    string `json:"name"`
	Policy  string `json:"policy"`
	AllDown string `json:"all_down"`
	// Retries counts requests sent again to another node, by reason.
	Retries              uint64            `json:"retries"`
	RetriesByReason      map[string]uint64 `json:"retries_by_reason"`
	RetryBudgetExhausted uint64            `json:"retry_budget_exhausted"`
	Nodes                []nodeStatusView  `json:"nodes"`
}

type nodeStatusView struct {
	nodeView
	Pool string `json:"pool"`
	// EjectionsTotal counts passive ejections since the node appeared.
	EjectionsTotal uint64      `json:"ejections_total"`
	Traffic        nodeTraffic `json:"traffic"`
}

type cacheView struct {
	Objects   int64 `json:"objects"`
	Bytes     int64 `json:"bytes"`
	MaxBytes  int64 `json:"max_bytes"`
	Evictions int64 `json:"evictions"`
	// Hits counts fresh and stale answers from the store; Misses the
	// requests forwarded (miss and revalidated); HitRatio is
	// Hits/(Hits+Misses), null before the first cached request.
	Hits     uint64   `json:"hits"`
	Misses   uint64   `json:"misses"`
	HitRatio *float64 `json:"hit_ratio"`
	Routes   int      `json:"cached_routes"`
}

type certificateView struct {
	Name     string    `json:"name"`
	Source   string    `json:"source"` // file or acme
	NotAfter time.Time `json:"not_after"`
	DaysLeft float64   `json:"days_left"`
}

// families gathers the named metric families from the registry.
func (s *Server) families(names ...string) map[string][]*dto.Metric {
	out := map[string][]*dto.Metric{}
	mfs, _ := s.metrics.reg.Gather() // a partial answer is still useful
	for _, mf := range mfs {
		if slices.Contains(names, mf.GetName()) {
			out[mf.GetName()] = mf.GetMetric()
		}
	}
	return out
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// statusView builds the status page's data from the current snapshot.
func (s *Server) statusView() statusView {
	snap := s.snap.Load()
	ss := s.metrics.status
	now := time.Now()
	v := statusView{
		Version:       s.opts.Version,
		ConfigPath:    s.opts.ConfigPath,
		StartedAt:     ss.started,
		UptimeSeconds: math.Round(now.Sub(ss.started).Seconds()),
		Now:           now,
		AuthRequired:  snap.cfg.Admin.Token != "",
		Listeners:     []listenerView{},
		Routes:        []routeView{},
		Pools:         []poolStatusView{},
		Certificates:  []certificateView{},
	}

	s.mu.Lock()
	for _, l := range s.public {
		lv := listenerView{Name: l.name, Address: l.ln.Addr().String(), TLS: l.tls, ProxyProtocol: l.proxy != nil}
		if l.proxy != nil {
			lv.ProxyFrom = l.proxy.From
		}
		v.Listeners = append(v.Listeners, lv)
	}
	if s.adminAddr != nil {
		v.AdminAddress = s.adminAddr.String()
	}
	s.mu.Unlock()

	fams := s.families("edge_health_ejections_total", "edge_upstream_retries_total",
		"edge_upstream_retry_budget_exhausted_total", "edge_cache_requests_total", "edge_config_reloads_total")

	// Reload.
	v.Reload.OK = gaugeValue(s.metrics.lastReloadOK) == 1
	v.Reload.LastSuccess = time.Unix(0, int64(gaugeValue(s.metrics.lastReloadTime)*1e9))
	v.Reload.Time = v.Reload.LastSuccess
	for _, m := range fams["edge_config_reloads_total"] {
		switch labelValue(m, "result") {
		case "success":
			v.Reload.Successes = uint64(m.GetCounter().GetValue())
		case "failure":
			v.Reload.Failures = uint64(m.GetCounter().GetValue())
		}
	}
	ss.reloadMu.Lock()
	if !ss.reloadAt.IsZero() && !ss.reloadAt.Before(v.Reload.Time) {
		v.Reload.Time = ss.reloadAt
	}
	if !v.Reload.OK {
		// The noted error is the last one only if no reload failed since
		// (one that was not noted, such as SIGHUP's).
		if ss.reloadErr != "" && ss.reloadFailures == v.Reload.Failures {
			v.Reload.Error = ss.reloadErr
		} else {
			v.Reload.Error = "refused (the reason is in edge's log)"
		}
	}
	ss.reloadMu.Unlock()

	// Routes.
	cached := 0
	for i, cr := range snap.cfg.Routes {
		rv := routeView{Name: cr.Name, Match: cr.Match.Describe()}
		switch {
		case cr.Proxy != "":
			rv.Action, rv.Pool = "proxy", cr.Proxy
		case cr.Redirect != nil:
			rv.Action, rv.Target = "redirect", redirectSummary(cr.Redirect)
		case cr.Respond != nil:
			rv.Action, rv.Target = "respond", strconv.Itoa(max(cr.Respond.Status, 200))
			if cr.Respond.Status == 0 {
				rv.Target = "200"
			}
		}
		if i < len(snap.routes) && snap.routes[i].cache != nil {
			rv.Cached = true
			cached++
		}
		v.Routes = append(v.Routes, rv)
	}

	// Pools and nodes.
	ejections := map[string]uint64{}
	for _, m := range fams["edge_health_ejections_total"] {
		ejections[statsKey(labelValue(m, "pool"), labelValue(m, "node"))] = uint64(m.GetCounter().GetValue())
	}
	retries := map[string]map[string]uint64{}
	for _, m := range fams["edge_upstream_retries_total"] {
		p := labelValue(m, "pool")
		if retries[p] == nil {
			retries[p] = map[string]uint64{}
		}
		retries[p][labelValue(m, "reason")] = uint64(m.GetCounter().GetValue())
	}
	exhausted := map[string]uint64{}
	for _, m := range fams["edge_upstream_retry_budget_exhausted_total"] {
		exhausted[labelValue(m, "pool")] = uint64(m.GetCounter().GetValue())
	}
	for _, p := range snap.poolList {
		up := snap.cfg.Upstreams[p.name]
		pv := poolStatusView{Name: p.name, Policy: p.policy, RetriesByReason: map[string]uint64{},
			RetryBudgetExhausted: exhausted[p.name], Nodes: []nodeStatusView{}}
		if up != nil {
			pv.AllDown = up.AllDown
		}
		for reason, n := range retries[p.name] {
			if n > 0 {
				pv.RetriesByReason[reason] = n
				pv.Retries += n
			}
		}
		for i, n := range p.nodes {
			nv := nodeStatusView{nodeView: s.nodeView(p, n), Pool: p.name, EjectionsTotal: ejections[statsKey(p.name, n.Name)]}
			if nv.Name == "" {
				nv.Name, nv.Address = n.Name, n.Address
			}
			var r reading
			if i < len(p.metrics) && p.metrics[i].stats != nil {
				r = readNode(p.metrics[i])
			}
			ss.mu.Lock()
			nv.Traffic = traffic(ss.series[statsKey(p.name, n.Name)], r)
			ss.mu.Unlock()
			pv.Nodes = append(pv.Nodes, nv)
		}
		v.Pools = append(v.Pools, pv)
	}

	// Cache.
	st := s.cache.store.Stats()
	v.Cache = cacheView{Objects: st.Objects, Bytes: st.Bytes, MaxBytes: st.MaxBytes, Evictions: st.Evictions, Routes: cached}
	for _, m := range fams["edge_cache_requests_total"] {
		n := uint64(m.GetCounter().GetValue())
		switch labelValue(m, "result") {
		case cacheHit, cacheStale:
			v.Cache.Hits += n
		case cacheMiss, cacheRevalidated:
			v.Cache.Misses += n
		}
	}
	if all := v.Cache.Hits + v.Cache.Misses; all > 0 {
		r := round3(float64(v.Cache.Hits) / float64(all))
		v.Cache.HitRatio = &r
	}

	// Certificates.
	addCert := func(name, source string, notAfter time.Time) {
		v.Certificates = append(v.Certificates, certificateView{Name: name, Source: source, NotAfter: notAfter,
			DaysLeft: math.Round(notAfter.Sub(now).Hours()/24*10) / 10})
	}
	for name, t := range snap.certs.expiry {
		addCert(name, "file", t)
	}
	if acm := s.acme.Load(); acm != nil {
		if names := acm.managed.Load(); names != nil {
			for _, name := range *names {
				for _, cert := range acm.cache.AllMatchingCertificates(name) {
					if cert.Leaf != nil {
						addCert(name, "acme", cert.Leaf.NotAfter)
						break
					}
				}
			}
		}
	}
	slices.SortFunc(v.Certificates, func(a, b certificateView) int {
		return strings.Compare(a.Name+"\x00"+a.Source, b.Name+"\x00"+b.Source)
	})
	return v
}

// redirectSummary describes a redirect's target.
func redirectSummary(r *config.Redirect) string {
	var parts []string
	if r.To != "" {
		parts = append(parts, r.To)
	}
	if r.HTTPS {
		parts = append(parts, "https")
	}
	if r.WWW != "" {
		parts = append(parts, "www "+r.WWW)
	}
	if r.TrailingSlash != "" {
		parts = append(parts, "trailing slash "+r.TrailingSlash)
	}
	if r.Prefix != "" {
		parts = append(parts, "prefix "+r.Prefix)
	}
	s := strings.Join(parts, ", ")
	if r.Status != 0 {
		s += " (" + strconv.Itoa(r.Status) + ")"
	}
	return s
}

// The page.

//go:embed status.html
var statusHTML string

var (
	statusTemplates = template.Must(template.New("status").Funcs(template.FuncMap{
		"ms":        fmtMS,
		"pct":       fmtPct,
		"bytes":     fmtBytes,
		"duration":  fmtUptime,
		"stamp":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"sparkRPS":  sparkRPS,
		"sparkP50":  func(h []historyPoint) string { return sparkLatency(h, false) },
		"sparkP99":  func(h []historyPoint) string { return sparkLatency(h, true) },
		"actions":   nodeActions,
		"certClass": certClass,
		"check":     checkSummary,
		"deref":     func(v *float64) float64 { return *v },
	}).Parse(statusHTML))
	// pageCSP allows only the page's own inline script and style (by
	// hash) and requests to the admin listener itself.
	pageCSP = buildPageCSP()
)

// blockHashCSP returns the CSP source of the text between the first open
// and close tag of a rendered template.
func blockHashCSP(name, open, close string) string {
	var b bytes.Buffer
	if err := statusTemplates.ExecuteTemplate(&b, name, nil); err != nil {
		panic(fmt.Sprintf("status page: rendering %s: %v", name, err))
	}
	text := b.String()
	i, j := strings.Index(text, open), strings.LastIndex(text, close)
	if i < 0 || j < i {
		panic("status page: no " + open + " in " + name)
	}
	sum := sha256.Sum256([]byte(text[i+len(open) : j]))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

func buildPageCSP() string {
	return "default-src 'none'; script-src " + blockHashCSP("script", "<script>", "</script>") +
		"; style-src " + blockHashCSP("style", "<style>", "</style>") +
		"; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}

// pageHeaders are set on the status and login pages.
func pageHeaders(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.SetContentType("text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // no-referrer would make the forms send "Origin: null"
}

func renderPage(ctx *fasthttp.RequestCtx, status int, name string, data any) {
	var b bytes.Buffer
	if err := statusTemplates.ExecuteTemplate(&b, name, data); err != nil {
		ctx.Error("internal error\n", fasthttp.StatusInternalServerError)
		return
	}
	pageHeaders(ctx)
	ctx.SetStatusCode(status)
	ctx.SetBody(b.Bytes())
}

// handleStatus serves GET /status: what the page shows, as JSON.
func (s *Server) handleStatus(ctx *fasthttp.RequestCtx) {
	if !requireMethod(ctx, fasthttp.MethodGet) {
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, fasthttp.StatusOK, s.statusView())
}

// handleStatusPage serves GET / (and HEAD): the status page.
func (s *Server) handleStatusPage(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		ctx.Error("use GET\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	renderPage(ctx, fasthttp.StatusOK, "page", s.statusView())
}

// Formatting for the template (the page's script formats the same way).

func fmtMS(v *float64) string {
	if v == nil {
		return "–"
	}
	switch {
	case *v >= 1000:
		return strconv.FormatFloat(*v/1000, 'f', 2, 64) + " s"
	case *v >= 10:
		return strconv.FormatFloat(*v, 'f', 0, 64) + " ms"
	}
	return strconv.FormatFloat(*v, 'f', 2, 64) + " ms"
}

func fmtPct(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + " %" }

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	f, i := float64(n), 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + [...]string{"B", "KiB", "MiB", "GiB", "TiB"}[i]
}

func fmtUptime(secs float64) string {
	d := time.Duration(secs) * time.Second
	days := int(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	if days > 0 {
		return fmt.Sprintf("%dd %dh %dm", days, int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dh %dm %ds", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

func certClass(days float64) string {
	switch {
	case days < 7:
		return "bad"
	case days < 21:
		return "warn"
	}
	return "ok"
}

// checkSummary describes a node's last active check.
func checkSummary(n nodeStatusView) string {
	c := n.LastCheck
	if c == nil {
		if n.Health == "unchecked" {
			return "no active check"
		}
		return "not checked yet"
	}
	var b strings.Builder
	if c.Passed {
		b.WriteString("passed")
	} else {
		b.WriteString("failed")
	}
	if c.Status != 0 {
		b.WriteString(", status " + strconv.Itoa(c.Status))
	}
	b.WriteString(", " + strconv.FormatFloat(float64(c.Latency)/float64(time.Millisecond), 'f', 1, 64) + " ms")
	if c.Error != "" {
		b.WriteString(": " + c.Error)
	}
	return b.String()
}

// nodeAction is a button of a node's row.
type nodeAction struct{ State, Label string }

// nodeActions returns the operator actions offered for a node's state.
func nodeActions(adminState string) []nodeAction {
	switch adminState {
	case "drain":
		return []nodeAction{{"ready", "undrain"}, {"maint", "maint"}}
	case "maint":
		return []nodeAction{{"ready", "end maint"}}
	}
	return []nodeAction{{"drain", "drain"}, {"maint", "maint"}}
}

// Sparklines: polyline points in a 120×28 box, the newest point on the
// right, one point a second over the last minute.
const sparkW, sparkH = 120.0, 28.0

func sparkPoints(vals []float64, top float64) string {
	if len(vals) == 0 {
		return ""
	}
	if top <= 0 {
		top = 1
	}
	var b strings.Builder
	step := sparkW / float64(historyLen-1)
	x0 := sparkW - step*float64(len(vals)-1)
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(' ')
		}
		y := sparkH - 1 - (sparkH-2)*min(v/top, 1)
		b.WriteString(strconv.FormatFloat(x0+step*float64(i), 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
	}
	return b.String()
}

func sparkRPS(h []historyPoint) string {
	vals := make([]float64, len(h))
	top := 0.0
	for i, p := range h {
		vals[i] = p.RequestsPerSecond
		top = max(top, p.RequestsPerSecond)
	}
	return sparkPoints(vals, top)
}

// sparkLatency draws p50 (or p99) on the scale of the largest p99, so the
// two lines share an axis.
func sparkLatency(h []historyPoint, p99 bool) string {
	vals := make([]float64, len(h))
	top := 0.0
	for i, p := range h {
		if p.P99MS != nil {
			top = max(top, *p.P99MS)
		}
		src := p.P50MS
		if p99 {
			src = p.P99MS
		}
		if src != nil {
			vals[i] = *src
		}
	}
	return sparkPoints(vals, top)
}

// The login page and the session cookie.

// adminCookie is the name of the admin session cookie.
const adminCookie = "edge_admin"

// sessionLifetime is how long a login lasts.
const sessionLifetime = 12 * time.Hour

// sessionMAC is the cookie's MAC for an expiry: HMAC-SHA256 keyed by the
// admin token, so the cookie never holds the token and a new token ends
// every session.
func sessionMAC(token string, expiry int64) []byte {
	h := hmac.New(sha256.New, []byte(token))
	h.Write([]byte("edge admin session v1\x00" + strconv.FormatInt(expiry, 10)))
	return h.Sum(nil)
}

// sessionCookieValue returns a cookie value valid until expiry.
func sessionCookieValue(token string, expiry time.Time) string {
	exp := expiry.Unix()
	return strconv.FormatInt(exp, 10) + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(token, exp))
}

// validSession checks a cookie value against the token, in constant time.
func validSession(token string, value []byte, now time.Time) bool {
	expText, macText, ok := bytes.Cut(value, []byte{'.'})
	if !ok {
		return false
	}
	exp, err := strconv.ParseInt(string(expText), 10, 64)
	if err != nil || now.Unix() >= exp || exp > now.Add(sessionLifetime+time.Minute).Unix() {
		return false
	}
	got := make([]byte, base64.RawURLEncoding.DecodedLen(len(macText)))
	n, err := base64.RawURLEncoding.Decode(got, macText)
	if err != nil {
		return false
	}
	return hmac.Equal(got[:n], sessionMAC(token, exp))
}

type loginData struct {
	Failed bool
}

// handleLogin serves GET /login (the form), POST /login (field token) and
// POST /logout. It needs no token itself; the cross-site checks ran.
func (s *Server) handleLogin(ctx *fasthttp.RequestCtx, path string) {
	token := s.snap.Load().cfg.Admin.Token
	if path == "/logout" {
		if !requireMethod(ctx, fasthttp.MethodPost) {
			return
		}
		setSessionCookie(ctx, "", -1)
		seeOther(ctx, "/login")
		return
	}
	switch {
	case ctx.IsGet() || ctx.IsHead():
		if token == "" {
			seeOther(ctx, "/")
			return
		}
		renderPage(ctx, fasthttp.StatusOK, "login", loginData{})
	case ctx.IsPost():
		if token == "" {
			seeOther(ctx, "/")
			return
		}
		got := ctx.PostArgs().Peek("token")
		if !tokenEqual(got, token) {
			s.log.Warn("admin login refused", "remote", peerAddr(ctx).String())
			renderPage(ctx, fasthttp.StatusUnauthorized, "login", loginData{Failed: true})
			return
		}
		setSessionCookie(ctx, sessionCookieValue(token, time.Now().Add(sessionLifetime)), int(sessionLifetime/time.Second))
		seeOther(ctx, "/")
	default:
		ctx.Response.Header.Set("Allow", "GET, POST")
		ctx.Error("use GET or POST\n", fasthttp.StatusMethodNotAllowed)
	}
}

// seeOther answers 303 with a relative Location (fasthttp's Redirect
// would make it absolute from the Host header).
func seeOther(ctx *fasthttp.RequestCtx, location string) {
	ctx.Response.Header.Set("Location", location)
	ctx.SetStatusCode(fasthttp.StatusSeeOther)
}

// setSessionCookie sets (or, with maxAge < 0, removes) the session cookie:
// HttpOnly, SameSite=Strict, Path=/. It is not Secure: the admin listener
// speaks plain HTTP (on loopback by default).
func setSessionCookie(ctx *fasthttp.RequestCtx, value string, maxAge int) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(adminCookie)
	c.SetValue(value)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	if maxAge < 0 {
		c.SetExpire(fasthttp.CookieExpireDelete)
		c.SetMaxAge(-1)
	} else {
		c.SetMaxAge(maxAge)
	}
	ctx.Response.Header.SetCookie(c)
}
