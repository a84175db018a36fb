package cache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// MaxPassKeys is the most keys a Coalescer remembers as not storable
// (MarkPass); the oldest marks are forgotten first.
const MaxPassKeys = 64 << 10

// Coalescer makes concurrent misses of one key share one fetch, and
// remembers the keys whose answers were not storable (hit-for-pass) so
// that their requests are not serialised behind one another. Safe for
// concurrent use.
type Coalescer struct {
	seed    maphash.Seed
	shards  [64]flightShard
	waiters atomic.Int64

	passMu sync.RWMutex
	pass   map[string]passMark // the latest mark of each key
	// passQ lists the marks oldest first, from passQ[passHead]; a key
	// marked again leaves an earlier, stale mark, skipped when popped.
	passQ    []passMark
	passHead int
	passSeq  uint64
}

type flightShard struct {
	mu      sync.Mutex
	flights map[string]*Flight
}

type passMark struct {
	key   string
	until int64  // Unix nanoseconds
	seq   uint64 // tells a key's latest mark from earlier ones
}

// Flight is one fetch in progress, shared by the requests of one key.
// Safe for concurrent use.
type Flight struct {
	c     *Coalescer
	key   string
	done  chan struct{}
	ended atomic.Bool
	e     *Entry // set before done is closed
}

// NewCoalescer returns an empty Coalescer. Safe for concurrent use.
func NewCoalescer() *Coalescer {
	c := &Coalescer{seed: maphash.MakeSeed(), pass: make(map[string]passMark)}
	for i := range c.shards {
		c.shards[i].flights = make(map[string]*Flight)
	}
	return c
}

func (c *Coalescer) shard(hash uint64) *flightShard {
	return &c.shards[hash%uint64(len(c.shards))]
}

// Join returns the key's flight, starting one when there is none. leader
// is true for the caller that started it: it must fetch, and must call
// Done exactly once, on every path (errors and panics too). The others
// Wait. Safe for concurrent use.
func (c *Coalescer) Join(key []byte) (f *Flight, leader bool) {
	sh := c.shard(maphash.Bytes(c.seed, key))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if f := sh.flights[string(key)]; f != nil {
		return f, false
	}
	f = &Flight{c: c, key: string(key), done: make(chan struct{})}
	sh.flights[f.key] = f
	return f, true
}

// Wait blocks until the flight is done or timeout passes. It returns the
// entry the leader stored (nil when the answer was not storable or the
// fetch failed: the waiter then fetches for itself) and done=false on
// timeout. The entry is the leader's variant: a waiter checks it against
// its own request (Entry.Matches). Safe for concurrent use.
func (f *Flight) Wait(timeout time.Duration) (e *Entry, done bool) {
	select {
	case <-f.done:
		return f.e, true
	default:
	}
	if timeout <= 0 {
		return nil, false
	}
	f.c.waiters.Add(1)
	defer f.c.waiters.Add(-1)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.done:
		return f.e, true
	case <-t.C:
		return nil, false
	}
}

// Done ends the flight and releases every waiter with e (nil: each
// waiter fetches for itself). The leader calls it as soon as it knows:
// right after the response header when the answer is not storable, so
// that no waiter is held behind a long body; after the store otherwise.
// Later calls for the same flight do nothing. Safe for concurrent use.
func (c *Coalescer) Done(f *Flight, e *Entry) {
	if f == nil || !f.ended.CompareAndSwap(false, true) {
		return
	}
	sh := c.shard(maphash.String(c.seed, f.key))
	sh.mu.Lock()
	if sh.flights[f.key] == f {
		delete(sh.flights, f.key)
	}
	sh.mu.Unlock()
	f.e = e
	close(f.done)
}

// Waiters reports how many goroutines are waiting for a flight now.
// Safe for concurrent use.
func (c *Coalescer) Waiters() int { return int(c.waiters.Load()) }

// MarkPass remembers key as not storable until now+d (hit-for-pass):
// Passing reports it, so that its requests skip coalescing. At most
// MaxPassKeys keys are remembered; the oldest marks go first. Safe for
// concurrent use.
func (c *Coalescer) MarkPass(key []byte, d time.Duration, now time.Time) {
	if d <= 0 {
		return
	}
	c.passMu.Lock()
	defer c.passMu.Unlock()
	c.passSeq++
	m := passMark{key: string(key), until: now.Add(d).UnixNano(), seq: c.passSeq}
	c.pass[m.key] = m
	c.passQ = append(c.passQ, m)
	// Forget the oldest marks while over the bound (of keys, and of
	// marks queued), and on the way the expired and stale ones.
	nowNs := now.UnixNano()
	for c.passHead < len(c.passQ) {
		front := c.passQ[c.passHead]
		latest := c.pass[front.key].seq == front.seq
		over := len(c.pass) > MaxPassKeys || len(c.passQ)-c.passHead > MaxPassKeys+MaxPassKeys/2
		if latest && !over && front.until > nowNs {
			break
		}
		if latest {
			delete(c.pass, front.key)
		}
		c.passQ[c.passHead] = passMark{}
		c.passHead++
	}
	if c.passHead > len(c.passQ)/2 {
		n := copy(c.passQ, c.passQ[c.passHead:])
		clear(c.passQ[n:])
		c.passQ, c.passHead = c.passQ[:n], 0
	}
}

// Passing reports whether key was marked by MarkPass and the mark has not
// run out at now. Safe for concurrent use.
func (c *Coalescer) Passing(key []byte, now time.Time) bool {
	c.passMu.RLock()
	m, ok := c.pass[string(key)]
	c.passMu.RUnlock()
	return ok && m.until > now.UnixNano()
}
