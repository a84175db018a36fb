package router

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// monoStart is the fixed origin of monoNow; it is set once at package
// initialisation and only read afterwards.
var monoStart = time.Now()

// monoNow returns monotonic nanoseconds since monoStart, the clock that
// rateLimiter.allow expects. Unlike time.Now().UnixNano() it never jumps
// when the wall clock is set. It is safe to call from any goroutine.
func monoNow() int64 {
	return int64(time.Since(monoStart))
}

// maxLimitShards is the number of shards a limiter uses when its bound
// allows; fewer are used for tiny bounds so that each shard holds at least
// one key.
const maxLimitShards = 64

// limitSample is how many entries a full rate-limiter shard looks at when
// it must make room for a new key, which keeps the cost of a flood of new
// keys constant instead of proportional to the shard size.
const limitSample = 16

// maxLimitNanos caps the emission interval and the burst tolerance so that
// adding them to a monotonic clock reading can never overflow an int64
// (2^60 ns is about 36 years).
const maxLimitNanos = int64(1) << 60

// limitShardIndex maps an address to a shard index in [0, n) for n a power
// of two, mixing in seed so that which addresses share a shard cannot be
// predicted from outside. It is a pure function, safe from any goroutine.
func limitShardIndex(ip netip.Addr, seed uint64, n int) int {
	b := ip.As16()
	h := binary.LittleEndian.Uint64(b[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(b[8:]) ^ seed
	// murmur3 fmix64 spreads every input bit over the top bits used below.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return int(h & uint64(n-1))
}

// limitShardCount returns the largest power of two not above
// maxLimitShards or maxKeys, so that maxKeys/shards is at least one.
// It is a pure function, safe from any goroutine.
func limitShardCount(maxKeys int) int {
	n := maxLimitShards
	for n > 1 && n > maxKeys {
		n /= 2
	}
	return n
}

// limitKey normalises a client address into a limiter key: IPv4-mapped
// IPv6 addresses are unmapped and zones dropped, so ::ffff:1.2.3.4 and
// 1.2.3.4 share an entry. The zero netip.Addr stays the zero key. It is a
// pure function, safe from any goroutine.
func limitKey(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}

// rateLimiter is a token bucket per key (client IP), memory-bounded.
//
// Each bucket holds up to burst tokens and refills at rate tokens per
// second; a request takes one token. The bucket is kept in the equivalent
// GCRA form, a single theoretical arrival time, so refill and wait are
// exact integer nanoseconds. At most maxKeys keys are tracked: when a
// shard is full, buckets that have refilled completely (which carry no
// state) are dropped first, and otherwise an arbitrary bucket is evicted;
// an evicted client simply gets a fresh, full bucket, so the bound errs on
// the side of allowing. Per-route (keyless) limits use the zero
// netip.Addr{} as their only key.
//
// All methods are safe for concurrent use by any number of goroutines.
type rateLimiter struct {
	interval int64  // ns between tokens, ceil(1e9/rate), at least 1
	tau      int64  // burst tolerance, (burst-1)*interval ns
	perShard int    // keys one shard may hold
	seed     uint64 // mixed into the shard hash
	shards   []rateShard
}

// rateShard is one lock-protected part of a rateLimiter; its fields are
// only touched with mu held. The padding keeps neighbouring shards' locks
// off one cache line.
type rateShard struct {
	mu sync.Mutex
	m  map[netip.Addr]int64 // key -> theoretical arrival time (monoNow ns)
	_  [40]byte
}

// newRateLimiter returns a limiter allowing rate tokens per second (> 0)
// with buckets of burst tokens (>= 1), tracking at most maxKeys (>= 1)
// keys. It panics on out-of-range arguments, which configuration
// validation must have rejected. It may be called from any goroutine.
func newRateLimiter(rate float64, burst int, maxKeys int) *rateLimiter {
	if !(rate > 0) || burst < 1 || maxKeys < 1 {
		panic("router: rate limiter needs rate > 0, burst >= 1 and maxKeys >= 1")
	}
	interval := maxLimitNanos
	if f := math.Ceil(1e9 / rate); f < float64(maxLimitNanos) {
		interval = max(int64(f), 1)
	}
	tau := maxLimitNanos
	if f := float64(burst-1) * float64(interval); f < float64(maxLimitNanos) {
		tau = int64(burst-1) * interval
	}
	n := limitShardCount(maxKeys)
	l := &rateLimiter{
		interval: interval,
		tau:      tau,
		perShard: maxKeys / n,
		seed:     rand.Uint64(),
		shards:   make([]rateShard, n),
	}
	for i := range l.shards {
		l.shards[i].m = make(map[netip.Addr]int64)
	}
	return l
}

// shard returns the shard that holds key, which must already be
// normalised by limitKey. It is safe from any goroutine.
func (l *rateLimiter) shard(key netip.Addr) *rateShard {
	return &l.shards[limitShardIndex(key, l.seed, len(l.shards))]
}

// allow takes one token for key at time now, in monoNow nanoseconds. When
// no token is left it returns false and the exact time until one will be;
// callers round up for Retry-After. Calls may pass slightly out-of-order
// now values (read before contending for the lock): an older now is only
// more conservative. It is safe for concurrent use and allocates nothing
// for a key already tracked.
func (l *rateLimiter) allow(key netip.Addr, now int64) (ok bool, wait time.Duration) {
	key = limitKey(key)
	s := l.shard(key)
	s.mu.Lock()
	tat, known := s.m[key]
	if !known {
		if len(s.m) >= l.perShard {
			l.makeRoom(s, now)
		}
		tat = now
	}
	if tat < now {
		tat = now
	}
	if over := tat - now - l.tau; over > 0 { // only a known key can be empty
		s.mu.Unlock()
		return false, time.Duration(over)
	}
	s.m[key] = tat + l.interval
	s.mu.Unlock()
	return true, 0
}

// makeRoom frees at least one entry of the full shard s: among a sample of
// its entries (Go map iteration starts at a random place) it drops every
// bucket that has refilled completely by now, and if there is none it
// evicts the sampled bucket closest to full. The caller holds s.mu.
func (l *rateLimiter) makeRoom(s *rateShard, now int64) {
	var (
		victim  netip.Addr
		oldest  int64
		seen    int
		dropped bool
	)
	for k, tat := range s.m {
		if tat <= now {
			delete(s.m, k)
			dropped = true
		} else if seen == 0 || tat < oldest {
			victim, oldest = k, tat
		}
		if seen++; seen >= limitSample {
			break
		}
	}
	if !dropped && seen > 0 {
		delete(s.m, victim)
	}
}

// len reports the number of tracked keys, for tests and a gauge. It locks
// each shard in turn, so under concurrent use the total is approximate.
// It is safe from any goroutine.
func (l *rateLimiter) len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// connLimiter counts open connections per client IP and refuses beyond
// perIP. An entry is deleted when its count drops to zero, so memory is
// bounded by the number of open connections. All methods are safe for
// concurrent use by any number of goroutines.
type connLimiter struct {
	perIP  int32
	seed   uint64
	shards [maxLimitShards]connShard
}

// connShard is one lock-protected part of a connLimiter; m is only
// touched with mu held. The padding keeps neighbouring locks off one cache
// line.
type connShard struct {
	mu sync.Mutex
	m  map[netip.Addr]int32
	_  [40]byte
}

// newConnLimiter returns a limiter allowing perIP (>= 1) open connections
// per client IP. It panics when perIP < 1, which configuration validation
// must have rejected. It may be called from any goroutine.
func newConnLimiter(perIP int) *connLimiter {
	if perIP < 1 {
		panic("router: connection limiter needs perIP >= 1")
	}
	c := &connLimiter{perIP: int32(min(perIP, math.MaxInt32)), seed: rand.Uint64()}
	for i := range c.shards {
		c.shards[i].m = make(map[netip.Addr]int32)
	}
	return c
}

// shard returns the shard that holds ip, which must already be normalised
// by limitKey. It is safe from any goroutine.
func (c *connLimiter) shard(ip netip.Addr) *connShard {
	return &c.shards[limitShardIndex(ip, c.seed, maxLimitShards)]
}

// acquire counts one more connection for ip and reports true, or reports
// false without counting when ip already holds perIP connections. An
// invalid (zero) address is never limited nor counted. It is safe for
// concurrent use and allocates nothing for an IP already counted.
func (c *connLimiter) acquire(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = limitKey(ip)
	s := c.shard(ip)
	s.mu.Lock()
	n := s.m[ip]
	if n >= c.perIP {
		s.mu.Unlock()
		return false
	}
	s.m[ip] = n + 1
	s.mu.Unlock()
	return true
}

// release gives back one connection of ip taken by a successful acquire,
// deleting the entry at zero. It is safe for concurrent use.
func (c *connLimiter) release(ip netip.Addr) {
	if !ip.IsValid() {
		return
	}
	ip = limitKey(ip)
	s := c.shard(ip)
	s.mu.Lock()
	if n := s.m[ip]; n > 1 {
		s.m[ip] = n - 1
	} else {
		delete(s.m, ip)
	}
	s.mu.Unlock()
}

// count reports the open connections counted for ip. It is safe for
// concurrent use.
func (c *connLimiter) count(ip netip.Addr) int {
	ip = limitKey(ip)
	s := c.shard(ip)
	s.mu.Lock()
	n := s.m[ip]
	s.mu.Unlock()
	return int(n)
}

// limitListener is a net.Listener whose accepted connections count against
// their remote IP in a connLimiter. Accept and Close may be called from any
// goroutines, as for the wrapped listener.
type limitListener struct {
	net.Listener
	limits   *connLimiter
	onRefuse func()
}

// newLimitListener wraps ln so that each accepted connection counts
// against its remote IP (unmapped) in c. A connection over the limit is
// closed at once, never returned from Accept, and onRefuse (may be nil) is
// called on the accepting goroutine; Accept then goes on accepting. Errors
// of ln are returned unchanged. Connections without an IP remote address
// (e.g. Unix sockets) are never limited. The count of a returned
// connection is released exactly once, on its first Close. It may be
// called from any goroutine.
func newLimitListener(ln net.Listener, c *connLimiter, onRefuse func()) net.Listener {
	return &limitListener{Listener: ln, limits: c, onRefuse: onRefuse}
}

// Accept returns the next connection within its IP's limit, closing the
// ones over it. It is safe for concurrent use, like the wrapped Accept.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(conn.RemoteAddr())
		if !ip.IsValid() {
			return conn, nil
		}
		ip = limitKey(ip)
		if l.limits.acquire(ip) {
			return &limitConn{Conn: conn, limits: l.limits, ip: ip}, nil
		}
		_ = conn.Close()
		if l.onRefuse != nil {
			l.onRefuse()
		}
	}
}

// remoteIP returns the IP of a remote address, or the zero netip.Addr for
// addresses that have none. It is a pure function, safe from any
// goroutine.
func remoteIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr()
	case interface{ AddrPort() netip.AddrPort }:
		return a.AddrPort().Addr()
	}
	return netip.Addr{}
}

// limitConn is an accepted connection counted in a connLimiter; it behaves
// as the embedded net.Conn except that Close also releases the count,
// exactly once. Its methods may be called concurrently as the embedded
// conn's may.
type limitConn struct {
	net.Conn
	limits   *connLimiter
	ip       netip.Addr
	released atomic.Bool
}

// Close closes the connection and, on the first call only, releases its
// count. It is safe to call several times and concurrently.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	if c.released.CompareAndSwap(false, true) {
		c.limits.release(c.ip)
	}
	return err
}
