package router

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/health"
)

// maxPoolNodes bounds the nodes of one pool, so a set of tried nodes fits
// in a fixed-size bit set on the stack.
const maxPoolNodes = 256

// Node is one backend server of a pool, as seen by one snapshot. Its
// connection pool (client) and live counters (link) are shared with the
// nodes of other snapshots that have the same pool, address and transport
// settings, so a reload keeps connections and in-flight counts.
//
// A Node is immutable after its snapshot is built; its counters are atomic.
// All methods are safe for concurrent use.
type Node struct {
	// Name labels the node in metrics and logs.
	Name string
	// Address is the node's host:port.
	Address string

	index  int  // position in its pool's node list (primaries then backups)
	weight int  // effective weight (configured, or the operator's override), ≥ 1
	backup bool // takes traffic only when no primary is usable

	link   *nodeLink
	health *health.Node // health, ejection and operator state; nil in unit tests
}

// nodeLink is the part of a node that outlives a reload.
type nodeLink struct {
	client   *fasthttp.HostClient
	https    bool // the node speaks HTTPS
	inflight atomic.Int64
	// refusedUntil holds a unix-nano time before which the node is skipped
	// because it refused a connection; 0 when it is not skipped. The health
	// checker replaces this crude signal with real state.
	refusedUntil atomic.Int64
}

// Inflight returns the number of requests the node is serving now.
func (n *Node) Inflight() int64 { return n.link.inflight.Load() }

// Weight returns the node's effective weight (≥ 1).
func (n *Node) Weight() int { return n.weight }

// Index returns the node's position in its pool.
func (n *Node) Index() int { return n.index }

// Usable reports whether the node may be given a new request now: it is
// available (health up, not ejected, not drained or in maintenance) and
// did not refuse a connection in the last moment. A node in slow start is
// usable for a growing share of calls, so every policy ramps it up.
func (n *Node) Usable() bool {
	if until := n.link.refusedUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		return false
	}
	if n.health == nil {
		return true
	}
	if !n.health.Available() {
		return false
	}
	if f := n.health.SlowStartFactor(); f < 1 && rand.Float64() >= f {
		return false
	}
	return true
}

// available reports whether the node's health and operator state allow
// traffic, ignoring the short refused-connection skip and slow start.
func (n *Node) available() bool { return n.health == nil || n.health.Available() }

// operatorOut reports whether an operator took the node out (drain or
// maintenance): such a node gets no new requests even when all are down.
func (n *Node) operatorOut() bool {
	return n.health != nil && n.health.AdminState() != health.Ready
}

func (n *Node) reportSuccess() {
	if n.health != nil {
		n.health.ReportSuccess()
	}
}

func (n *Node) reportFailure() {
	if n.health != nil {
		n.health.ReportFailure()
	}
}

// nodeSet is a set of node indexes of one pool (at most maxPoolNodes).
// The zero value is empty. It is a value type meant to live on the stack.
type nodeSet struct{ bits [maxPoolNodes / 64]uint64 }

func (s *nodeSet) add(i int)      { s.bits[i>>6] |= 1 << (uint(i) & 63) }
func (s *nodeSet) has(i int) bool { return s != nil && s.bits[i>>6]&(1<<(uint(i)&63)) != 0 }
