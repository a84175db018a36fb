package router

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rateStep is one call of a scripted rateLimiter sequence: after dt has
// passed on the synthetic clock, allow(key) must answer ok and wait.
type rateStep struct {
	dt   time.Duration
	key  netip.Addr
	ok   bool
	wait time.Duration
}

var (
	limitKeyA = netip.MustParseAddr("192.0.2.1")
	limitKeyB = netip.MustParseAddr("192.0.2.2")
)

func TestRateLimiterPolicies(t *testing.T) {
	a, b := limitKeyA, limitKeyB
	ok := func(dt time.Duration, key netip.Addr) rateStep { return rateStep{dt: dt, key: key, ok: true} }
	no := func(dt time.Duration, key netip.Addr, wait time.Duration) rateStep {
		return rateStep{dt: dt, key: key, wait: wait}
	}
	ms := time.Millisecond
	cases := []struct {
		name  string
		rate  float64
		burst int
		steps []rateStep
	}{
		{"burst allowed then refused", 1, 3, []rateStep{
			ok(0, a), ok(0, a), ok(0, a), no(0, a, time.Second), no(0, a, time.Second),
		}},
		{"refill after one over rate", 10, 1, []rateStep{
			ok(0, a), no(0, a, 100*ms), ok(100*ms, a), no(0, a, 100*ms),
		}},
		{"wait is exact", 4, 2, []rateStep{
			ok(0, a), ok(0, a), no(0, a, 250*ms), no(100*ms, a, 150*ms), no(149*ms, a, ms),
			ok(ms, a), no(0, a, 250*ms),
		}},
		{"fractional rate", 0.5, 1, []rateStep{
			ok(0, a), no(0, a, 2*time.Second), no(time.Second, a, time.Second), ok(time.Second, a),
			no(0, a, 2*time.Second),
		}},
		{"fractional rate with burst", 0.5, 2, []rateStep{
			ok(0, a), ok(0, a), no(0, a, 2*time.Second), ok(2*time.Second, a), no(0, a, 2*time.Second),
		}},
		{"refused calls take no token", 1, 1, []rateStep{
			ok(0, a), no(0, a, time.Second), no(500*ms, a, 500*ms), no(250*ms, a, 250*ms), ok(250*ms, a),
		}},
		{"idle time refills at most burst", 1, 2, []rateStep{
			ok(0, a), ok(0, a), ok(time.Hour, a), ok(0, a), no(0, a, time.Second),
		}},
		{"partial refill", 2, 4, []rateStep{
			ok(0, a), ok(0, a), ok(0, a), ok(0, a), no(0, a, 500*ms),
			ok(time.Second, a), ok(0, a), no(0, a, 500*ms),
		}},
		{"separate keys are independent", 1, 1, []rateStep{
			ok(0, a), no(0, a, time.Second), ok(0, b), no(0, b, time.Second), no(500*ms, a, 500*ms),
		}},
		{"mapped and unmapped share a bucket", 1, 1, []rateStep{
			ok(0, netip.MustParseAddr("1.2.3.4")), no(0, netip.MustParseAddr("::ffff:1.2.3.4"), time.Second),
			ok(time.Second, netip.MustParseAddr("::ffff:1.2.3.4")), no(0, netip.MustParseAddr("1.2.3.4"), time.Second),
		}},
		{"zones share a bucket", 1, 1, []rateStep{
			ok(0, netip.MustParseAddr("fe80::1%eth0")), no(0, netip.MustParseAddr("fe80::1"), time.Second),
		}},
		{"ipv6 keys", 1, 1, []rateStep{
			ok(0, netip.MustParseAddr("2001:db8::1")), no(0, netip.MustParseAddr("2001:db8::1"), time.Second),
			ok(0, netip.MustParseAddr("2001:db8::2")),
		}},
		{"zero key for keyless limits", 1, 2, []rateStep{
			ok(0, netip.Addr{}), ok(0, netip.Addr{}), no(0, netip.Addr{}, time.Second), ok(time.Second, netip.Addr{}),
			ok(0, a),
		}},
		{"very high rate", 1e12, 1, []rateStep{
			ok(0, a), no(0, a, time.Nanosecond), ok(time.Nanosecond, a),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newRateLimiter(tc.rate, tc.burst, 100)
			now := int64(0) // monoNow may well be near 0
			for i, s := range tc.steps {
				now += int64(s.dt)
				gotOK, gotWait := l.allow(s.key, now)
				if gotOK != s.ok || gotWait != s.wait {
					t.Fatalf("step %d (%v at +%v): allow = %v, %v; want %v, %v",
						i, s.key, time.Duration(now), gotOK, gotWait, s.ok, s.wait)
				}
			}
		})
	}
}

func TestNewRateLimiterRejectsBadArguments(t *testing.T) {
	cases := []struct {
		name           string
		rate           float64
		burst, maxKeys int
	}{
		{"zero rate", 0, 1, 1},
		{"negative rate", -1, 1, 1},
		{"zero burst", 1, 0, 1},
		{"zero maxKeys", 1, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("newRateLimiter did not panic")
				}
			}()
			newRateLimiter(tc.rate, tc.burst, tc.maxKeys)
		})
	}
}

func TestRateLimiterBoundUnderFloodOfDistinctKeys(t *testing.T) {
	const maxKeys = 1000
	l := newRateLimiter(1, 5, maxKeys)
	now := int64(0)
	for i := range 100_000 {
		var key netip.Addr
		if i%2 == 0 {
			key = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			key = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		}
		now += int64(time.Microsecond) // nobody refills: nothing is ever full again
		if ok, _ := l.allow(key, now); !ok {
			t.Fatalf("a new key %v was refused", key)
		}
		if i%1000 == 0 {
			if n := l.len(); n > maxKeys {
				t.Fatalf("after %d keys len() = %d > %d", i+1, n, maxKeys)
			}
		}
	}
	if n := l.len(); n > maxKeys || n < maxKeys/2 {
		t.Fatalf("len() = %d, want within (%d, %d]", n, maxKeys/2, maxKeys)
	}
	for _, tiny := range []int{1, 3, 64, 100} {
		l := newRateLimiter(1, 1, tiny)
		for i := range 1000 {
			l.allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 0)
		}
		if n := l.len(); n > tiny || n < 1 {
			t.Fatalf("maxKeys %d: len() = %d", tiny, n)
		}
	}
}

// sameShardKeys returns n distinct addresses that fall into the same shard
// of l as key.
func sameShardKeys(l *rateLimiter, key netip.Addr, n int) []netip.Addr {
	var keys []netip.Addr
	want := l.shard(key)
	for i := 0; len(keys) < n; i++ {
		k := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		if k != key && l.shard(k) == want {
			keys = append(keys, k)
		}
	}
	return keys
}

// tracked reports whether l holds a bucket for key.
func (l *rateLimiter) tracked(key netip.Addr) bool {
	s := l.shard(limitKey(key))
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[limitKey(key)]
	return ok
}

func TestRateLimiterDropsFullBucketsBeforeBusyOnes(t *testing.T) {
	l := newRateLimiter(1, 5, 4*maxLimitShards) // 4 keys per shard
	busy := limitKeyA
	others := sameShardKeys(l, busy, 4)
	idle, newcomer := others[:3], others[3]
	sec := int64(time.Second)
	for range 5 {
		l.allow(busy, 0) // empty: full again only at 5s
	}
	for _, k := range idle {
		l.allow(k, 0) // full again at 1s
	}
	if ok, _ := l.allow(newcomer, 2*sec); !ok {
		t.Fatal("newcomer refused")
	}
	for _, k := range idle {
		if l.tracked(k) {
			t.Errorf("idle full bucket %v was kept", k)
		}
	}
	if !l.tracked(busy) || !l.tracked(newcomer) {
		t.Fatal("busy key or newcomer not tracked")
	}
	// The busy key kept its state: 2 tokens refilled by 2s, not a fresh 5.
	for i, want := range []bool{true, true, false} {
		if ok, wait := l.allow(busy, 2*sec); ok != want || (!ok && wait != time.Second) {
			t.Fatalf("busy key call %d at 2s: allow = %v, %v", i, ok, wait)
		}
	}
}

func TestRateLimiterEvictsSomeBucketWhenNoneIsFull(t *testing.T) {
	l := newRateLimiter(1, 2, 4*maxLimitShards)
	keys := sameShardKeys(l, limitKeyB, 5)
	for _, k := range keys[:4] {
		l.allow(k, 0) // none full again before 1s
	}
	if ok, _ := l.allow(keys[4], 1); !ok {
		t.Fatal("newcomer refused")
	}
	s := l.shard(keys[4])
	s.mu.Lock()
	n := len(s.m)
	s.mu.Unlock()
	if n != 4 || !l.tracked(keys[4]) {
		t.Fatalf("shard holds %d keys (want 4), newcomer tracked %v", n, l.tracked(keys[4]))
	}
}

func TestRateLimiterConcurrentNeverExceedsBurstPlusRate(t *testing.T) {
	const (
		rate       = 2000.0
		burst      = 50
		goroutines = 8
		run        = 200 * time.Millisecond
	)
	l := newRateLimiter(rate, burst, 1000)
	shared := limitKeyA
	var sharedAllowed atomic.Int64
	own := make([]int64, goroutines)
	t0 := monoNow()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			mine := netip.AddrFrom4([4]byte{10, 1, 0, byte(g)})
			for monoNow()-t0 < int64(run) {
				if ok, wait := l.allow(shared, monoNow()); ok {
					sharedAllowed.Add(1)
				} else if wait <= 0 {
					t.Errorf("refused with wait %v", wait)
					return
				}
				if ok, _ := l.allow(mine, monoNow()); ok {
					own[g]++
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Duration(monoNow() - t0)
	limit := int64(burst + rate*elapsed.Seconds())
	check := func(what string, n int64) {
		if n > limit || n < burst {
			t.Errorf("%s: %d allowed in %v, want within [%d, %d]", what, n, elapsed, burst, limit)
		}
	}
	check("shared key", sharedAllowed.Load())
	for g, n := range own {
		check(fmt.Sprintf("own key of goroutine %d", g), n)
	}
}

func TestRateLimiterAllocationFree(t *testing.T) {
	l := newRateLimiter(1e9, 1, 100) // nearly always allows: both paths run
	keys := []netip.Addr{limitKeyA, netip.MustParseAddr("::ffff:192.0.2.9"), netip.MustParseAddr("2001:db8::7"), {}}
	now := int64(0)
	for _, k := range keys {
		l.allow(k, now)
	}
	for _, k := range keys {
		if n := testing.AllocsPerRun(1000, func() {
			now += 1
			l.allow(k, now)
			l.allow(k, now) // refused
		}); n != 0 {
			t.Errorf("allow(%v) allocates %v times per call", k, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = monoNow() }); n != 0 {
		t.Errorf("monoNow allocates %v times", n)
	}
}

// connOp is one call of a scripted connLimiter sequence.
type connOp struct {
	acquire bool // else release
	ip      netip.Addr
	ok      bool // acquire's answer
	count   int  // count(ip) afterwards
}

func TestConnLimiterPolicies(t *testing.T) {
	a, b := limitKeyA, limitKeyB
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	acq := func(ip netip.Addr, ok bool, count int) connOp { return connOp{true, ip, ok, count} }
	rel := func(ip netip.Addr, count int) connOp { return connOp{false, ip, false, count} }
	cases := []struct {
		name  string
		perIP int
		ops   []connOp
	}{
		{"refuses beyond perIP", 2, []connOp{acq(a, true, 1), acq(a, true, 2), acq(a, false, 2), acq(a, false, 2)}},
		{"release frees a slot", 1, []connOp{acq(a, true, 1), acq(a, false, 1), rel(a, 0), acq(a, true, 1)}},
		{"ips are independent", 1, []connOp{acq(a, true, 1), acq(b, true, 1), acq(a, false, 1), rel(b, 0), acq(a, false, 1)}},
		{"mapped and unmapped share", 1, []connOp{acq(mapped, true, 1), acq(a, false, 1), rel(a, 0), acq(mapped, true, 1)}},
		{"invalid address is never limited", 1, []connOp{acq(netip.Addr{}, true, 0), acq(netip.Addr{}, true, 0), rel(netip.Addr{}, 0)}},
		{"extra release is harmless", 1, []connOp{rel(a, 0), acq(a, true, 1), rel(a, 0), rel(a, 0), acq(a, true, 1), acq(a, false, 1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newConnLimiter(tc.perIP)
			for i, op := range tc.ops {
				if op.acquire {
					if got := c.acquire(op.ip); got != op.ok {
						t.Fatalf("op %d: acquire(%v) = %v, want %v", i, op.ip, got, op.ok)
					}
				} else {
					c.release(op.ip)
				}
				if got := c.count(op.ip); got != op.count {
					t.Fatalf("op %d: count(%v) = %d, want %d", i, op.ip, got, op.count)
				}
			}
		})
	}
}

func TestConnLimiterDeletesEntriesAtZero(t *testing.T) {
	c := newConnLimiter(3)
	for i := range 1000 {
		ip := netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)})
		c.acquire(ip)
		c.acquire(ip)
		c.release(ip)
		c.release(ip)
	}
	for i := range c.shards {
		if n := len(c.shards[i].m); n != 0 {
			t.Fatalf("shard %d keeps %d entries after every release", i, n)
		}
	}
}

func TestConnLimiterConcurrentNeverExceedsPerIP(t *testing.T) {
	const perIP = 3
	c := newConnLimiter(perIP)
	var held atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				if !c.acquire(limitKeyA) {
					continue
				}
				n := held.Add(1)
				if n > perIP {
					t.Errorf("%d connections held, perIP %d", n, perIP)
				}
				held.Add(-1)
				c.release(limitKeyA)
			}
		})
	}
	wg.Wait()
	if n := c.count(limitKeyA); n != 0 {
		t.Fatalf("count after all releases = %d", n)
	}
}

func TestConnLimiterAllocationFree(t *testing.T) {
	c := newConnLimiter(2)
	c.acquire(limitKeyA) // known key
	if n := testing.AllocsPerRun(1000, func() {
		c.acquire(limitKeyA)
		c.acquire(limitKeyA) // refused
		c.release(limitKeyA)
		_ = c.count(limitKeyA)
	}); n != 0 {
		t.Errorf("acquire/release on a known key allocates %v times", n)
	}
}

// limitEventually polls cond until it holds or within passes.
func limitEventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLimitListenerRefusesOverPerIPAndReleasesOnClose(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := newConnLimiter(2)
	var refused atomic.Int32
	ln := newLimitListener(inner, c, func() { refused.Add(1) })
	accepted := make(chan net.Conn, 10)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- conn
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	next := func() net.Conn {
		t.Helper()
		select {
		case conn := <-accepted:
			t.Cleanup(func() { conn.Close() })
			return conn
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	ip := netip.MustParseAddr("127.0.0.1")

	dial()
	dial()
	first := next()
	next()
	if n := c.count(ip); n != 2 {
		t.Fatalf("count = %d after two accepted, want 2", n)
	}

	third := dial()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("third connection read: %v, want EOF", err)
	}
	limitEventually(t, 5*time.Second, "onRefuse", func() bool { return refused.Load() == 1 })
	select {
	case conn := <-accepted:
		t.Fatalf("connection over the limit was returned from Accept: %v", conn.RemoteAddr())
	case <-time.After(50 * time.Millisecond):
	}

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { first.Close() })
	}
	wg.Wait()
	first.Close()
	if n := c.count(ip); n != 1 {
		t.Fatalf("count = %d after closing one conn three times, want 1", n)
	}

	fourth := dial()
	next()
	if n := c.count(ip); n != 2 || refused.Load() != 1 {
		t.Fatalf("count = %d, refused = %d after a new conn, want 2, 1", n, refused.Load())
	}
	fourth.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := fourth.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("accepted conn read: %v, want a timeout (the server keeps it open)", err)
	}

	ln.Close()
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after the listener was closed")
	}
}

// scriptedListener hands out conns, then fails with err.
type scriptedListener struct {
	conns []net.Conn
	err   error
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	if len(l.conns) == 0 {
		return nil, l.err
	}
	c := l.conns[0]
	l.conns = l.conns[1:]
	return c, nil
}

func (l *scriptedListener) Close() error   { return nil }
func (l *scriptedListener) Addr() net.Addr { return &net.UnixAddr{Name: "scripted", Net: "unix"} }

func TestLimitListenerReturnsInnerErrorsUnchanged(t *testing.T) {
	sentinel := errors.New("accept failed")
	ln := newLimitListener(&scriptedListener{err: sentinel}, newConnLimiter(1), nil)
	for range 2 {
		if conn, err := ln.Accept(); err != sentinel || conn != nil {
			t.Fatalf("Accept = %v, %v; want nil, the inner error", conn, err)
		}
	}
}

func TestLimitListenerNeverLimitsConnectionsWithoutIP(t *testing.T) {
	var conns []net.Conn
	for range 3 {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		conns = append(conns, a)
	}
	c := newConnLimiter(1)
	ln := newLimitListener(&scriptedListener{conns: conns, err: net.ErrClosed}, c, func() { t.Error("refused") })
	for i := range conns {
		conn, err := ln.Accept()
		if err != nil || conn != conns[i] {
			t.Fatalf("Accept %d = %v, %v; want the pipe unwrapped", i, conn, err)
		}
	}
}
