package router

import (
	"bytes"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edge-router/edge/config"
)

// Retry reasons: label values of edge_upstream_retries_total and names in
// config.Retries.On (connect and busy are always retried and not listed).
const (
	reasonConnect = "connect" // the connection could not be made: nothing was sent
	reasonBusy    = "busy"    // the node had no free connection: nothing was sent
	reasonReset   = "reset"   // the connection broke before a response
	reasonTimeout = "timeout" // no response in time
)

var retryReasons = []string{reasonConnect, reasonBusy, reasonReset, reasonTimeout, "500", "502", "503", "504"}

// retryPolicy is a pool's compiled config.Retries.
type retryPolicy struct {
	attempts int
	onReset  bool
	onTime   bool
	status   [5]bool // 500..504 by status-500
	budget   *retryBudget

	counters  map[string]prometheus.Counter // by reason
	exhausted prometheus.Counter
}

func newRetryPolicy(pool string, c config.Retries, m *metrics) *retryPolicy {
	p := &retryPolicy{
		attempts:  c.Attempts,
		budget:    &retryBudget{percent: c.BudgetPercent, minPerSecond: int64(c.BudgetMinPerSecond)},
		counters:  map[string]prometheus.Counter{},
		exhausted: m.retryBudgetExhausted.WithLabelValues(pool),
	}
	for _, on := range c.On {
		switch on {
		case reasonReset:
			p.onReset = true
		case reasonTimeout:
			p.onTime = true
		case "500", "502", "503", "504":
			p.status[on[2]-'0'] = true
		}
	}
	for _, r := range retryReasons {
		p.counters[r] = m.retries.WithLabelValues(pool, r)
	}
	return p
}

// statusReason returns the retry reason for a node's answer, or "" when
// that status is not retried.
func (p *retryPolicy) statusReason(status int) string {
	if status < 500 || status > 504 || !p.status[status-500] {
		return ""
	}
	return statusReasons[status-500]
}

var statusReasons = [5]string{"500", "501", "502", "503", "504"}

// allow decides whether a request that reached a node may be sent again,
// and counts the retry (or the refusal by the budget).
func (p *retryPolicy) allow(reason string, done int, replayable bool) bool {
	if !replayable || done >= p.attempts {
		return false
	}
	switch reason {
	case reasonReset:
		if !p.onReset {
			return false
		}
	case reasonTimeout:
		if !p.onTime {
			return false
		}
	}
	if !p.budget.take() {
		p.exhausted.Inc()
		return false
	}
	p.counters[reason].Inc()
	return true
}

// countFree counts a retry that needs no permission (connect, busy).
func (p *retryPolicy) countFree(reason string) { p.counters[reason].Inc() }

// retryBudget caps retries at a share of requests over the current and
// the previous second, with a floor (like Envoy's retry budget), so that a
// failing pool is not hit with a multiple of its normal load.
type retryBudget struct {
	percent      float64
	minPerSecond int64

	second      atomic.Int64 // unix second of the current window
	requests    atomic.Int64
	retries     atomic.Int64
	prevRequest atomic.Int64
	prevRetries atomic.Int64
}

func (b *retryBudget) rotate() {
	now := time.Now().Unix()
	cur := b.second.Load()
	if cur == now || !b.second.CompareAndSwap(cur, now) {
		return
	}
	if now-cur == 1 {
		b.prevRequest.Store(b.requests.Swap(0))
		b.prevRetries.Store(b.retries.Swap(0))
	} else {
		b.prevRequest.Store(0)
		b.prevRetries.Store(0)
		b.requests.Store(0)
		b.retries.Store(0)
	}
}

// request counts one request to the pool.
func (b *retryBudget) request() {
	b.rotate()
	b.requests.Add(1)
}

// take reserves one retry if the budget allows it.
func (b *retryBudget) take() bool {
	b.rotate()
	reqs := b.requests.Load() + b.prevRequest.Load()
	limit := max(b.minPerSecond, int64(b.percent*float64(reqs)/100))
	if b.retries.Load()+b.prevRetries.Load() >= limit {
		return false
	}
	b.retries.Add(1)
	return true
}

// idempotentMethods are the methods RFC 9110 §9.2.2 defines as idempotent.
var idempotentMethods = [][]byte{
	[]byte("GET"), []byte("HEAD"), []byte("OPTIONS"), []byte("TRACE"), []byte("PUT"), []byte("DELETE"),
}

func isIdempotent(method []byte) bool {
	for _, m := range idempotentMethods {
		if bytes.Equal(method, m) {
			return true
		}
	}
	return false
}
