package cache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds or a second passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type waitResult struct {
	e    *Entry
	done bool
}

// startWaiters joins key n times from other goroutines, each waiting up to
// timeout, and returns their results' channel. None may lead.
func startWaiters(t *testing.T, c *Coalescer, key string, n int, timeout time.Duration) <-chan waitResult {
	t.Helper()
	out := make(chan waitResult, n)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for range n {
		wg.Go(func() {
			f, leader := c.Join([]byte(key))
			if leader {
				t.Error("a second Join of a key in flight led")
				c.Done(f, nil)
				out <- waitResult{}
				return
			}
			e, done := f.Wait(timeout)
			out <- waitResult{e, done}
		})
	}
	return out
}

func TestCoalescerLeaderReleasesWaitersWithEntry(t *testing.T) {
	c := NewCoalescer()
	f, leader := c.Join([]byte("k"))
	if !leader {
		t.Fatal("first Join did not lead")
	}
	const n = 8
	results := startWaiters(t, c, "k", n, time.Minute)
	waitFor(t, "8 waiters", func() bool { return c.Waiters() == n })

	select {
	case r := <-results:
		t.Fatalf("a waiter returned %+v before Done", r)
	default:
	}
	e := newEntry("k", 10)
	c.Done(f, e)
	for range n {
		if r := <-results; r.e != e || !r.done {
			t.Fatalf("waiter got %+v, want the leader's entry, done", r)
		}
	}
	if got := c.Waiters(); got != 0 {
		t.Fatalf("Waiters = %d after release, want 0", got)
	}
	if e, done := f.Wait(time.Minute); e == nil || !done {
		t.Fatal("Wait on an ended flight did not return its entry at once")
	}
	if _, leader := c.Join([]byte("k")); !leader {
		t.Fatal("Join after Done did not lead a new flight")
	}
}

func TestCoalescerDoneNilReleasesWaitersAtOnce(t *testing.T) {
	c := NewCoalescer()
	f, _ := c.Join([]byte("k"))
	results := startWaiters(t, c, "k", 4, time.Minute)
	waitFor(t, "4 waiters", func() bool { return c.Waiters() == 4 })
	start := time.Now()
	c.Done(f, nil)
	for range 4 {
		if r := <-results; r.e != nil || !r.done {
			t.Fatalf("waiter got %+v, want nil, done", r)
		}
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("waiters took %v to be released", d)
	}
}

func TestCoalescerWaitTimesOut(t *testing.T) {
	c := NewCoalescer()
	f, _ := c.Join([]byte("k"))
	t.Cleanup(func() { c.Done(f, nil) })
	start := time.Now()
	results := startWaiters(t, c, "k", 2, 50*time.Millisecond)
	for range 2 {
		if r := <-results; r.e != nil || r.done {
			t.Fatalf("waiter got %+v, want a timeout", r)
		}
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("Wait returned after %v, before its timeout", d)
	}
	if got := c.Waiters(); got != 0 {
		t.Fatalf("Waiters = %d after timeouts, want 0", got)
	}
	if e, done := f.Wait(0); e != nil || done {
		t.Fatalf("Wait(0) on a flight in progress = %v, %v; want nil, false", e, done)
	}
}

func TestCoalescerDoneTwiceKeepsFirstAnswer(t *testing.T) {
	c := NewCoalescer()
	f, _ := c.Join([]byte("k"))
	e := newEntry("k", 10)
	c.Done(f, e)
	c.Done(f, nil)
	if got, done := f.Wait(time.Second); got != e || !done {
		t.Fatalf("Wait = %v, %v; want the first Done's entry", got, done)
	}
	// A second Done of an old flight must not end a newer one.
	g, leader := c.Join([]byte("k"))
	if !leader {
		t.Fatal("Join after Done did not lead")
	}
	c.Done(f, nil)
	if h, leader := c.Join([]byte("k")); leader || h != g {
		t.Fatal("a stale Done ended the newer flight")
	}
	c.Done(g, nil)
}

func TestCoalescerKeysAreIndependent(t *testing.T) {
	c := NewCoalescer()
	a, leadA := c.Join([]byte("a"))
	b, leadB := c.Join([]byte("b"))
	if !leadA || !leadB || a == b {
		t.Fatal("two keys shared a flight")
	}
	c.Done(a, nil)
	if _, done := b.Wait(0); done {
		t.Fatal("Done of a ended b")
	}
	c.Done(b, nil)
}

func TestCoalescerPassing(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := NewCoalescer()
	c.MarkPass([]byte("pass"), time.Minute, now)
	c.MarkPass([]byte("zero"), 0, now)
	tests := []struct {
		key  string
		at   time.Time
		want bool
	}{
		{"pass", now, true},
		{"pass", now.Add(59 * time.Second), true},
		{"pass", now.Add(time.Minute), false},
		{"zero", now, false},
		{"other", now, false},
	}
	for _, tt := range tests {
		if got := c.Passing([]byte(tt.key), tt.at); got != tt.want {
			t.Errorf("Passing(%q, +%v) = %v, want %v", tt.key, tt.at.Sub(now), got, tt.want)
		}
	}
	// Marking again extends the mark.
	c.MarkPass([]byte("pass"), 2*time.Minute, now)
	if !c.Passing([]byte("pass"), now.Add(90*time.Second)) {
		t.Error("a second MarkPass did not extend the mark")
	}
}

func TestCoalescerMarkPassIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := NewCoalescer()
	const extra = 1000
	for i := range MaxPassKeys + extra {
		c.MarkPass(fmt.Appendf(nil, "k%d", i), time.Hour, now)
	}
	if n := len(c.pass); n > MaxPassKeys {
		t.Fatalf("%d keys remembered, want at most %d", n, MaxPassKeys)
	}
	if c.Passing([]byte("k0"), now) || c.Passing(fmt.Appendf(nil, "k%d", extra-1), now) {
		t.Error("the oldest marks were kept")
	}
	if !c.Passing(fmt.Appendf(nil, "k%d", MaxPassKeys+extra-1), now) || !c.Passing(fmt.Appendf(nil, "k%d", extra), now) {
		t.Error("the newest marks were dropped")
	}

	// One key marked over and over, behind a long-lived mark, must not
	// grow the queue without bound.
	for range 3 * MaxPassKeys {
		c.MarkPass([]byte("hot"), time.Hour, now)
	}
	if n, limit := len(c.passQ)-c.passHead, MaxPassKeys+MaxPassKeys/2; n > limit {
		t.Fatalf("queue holds %d marks, want at most %d", n, limit)
	}
	if len(c.pass) > MaxPassKeys || !c.Passing([]byte("hot"), now) {
		t.Fatalf("%d keys remembered, hot passing %v", len(c.pass), c.Passing([]byte("hot"), now))
	}
}

func TestCoalescerMarkPassForgetsExpired(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := NewCoalescer()
	for i := range 100 {
		c.MarkPass(fmt.Appendf(nil, "k%d", i), time.Second, now)
	}
	c.MarkPass([]byte("later"), time.Second, now.Add(time.Minute))
	if n := len(c.pass); n != 1 {
		t.Fatalf("%d keys remembered after the others expired, want 1", n)
	}
}

func TestCoalescerConcurrentMissesShareOneFetch(t *testing.T) {
	c := NewCoalescer()
	s := newTestStore(t, 16<<20)
	var fetches sync.Map
	var wg sync.WaitGroup
	const keys, clients = 4, 16
	for i := range keys * clients {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", i%keys)
			for {
				if e := lookup(s, key, nil); e != nil {
					return
				}
				f, leader := c.Join([]byte(key))
				if !leader {
					if e, done := f.Wait(5 * time.Second); done && e != nil {
						return
					}
					continue
				}
				if lookup(s, key, nil) == nil { // stored by a flight just ended
					n, _ := fetches.LoadOrStore(key, new(int))
					*n.(*int)++
					time.Sleep(20 * time.Millisecond)
					e := newEntry(key, 10)
					s.Insert(e)
					c.Done(f, e)
				} else {
					c.Done(f, nil)
				}
				return
			}
		})
	}
	wg.Wait()
	for i := range keys {
		n, _ := fetches.Load(fmt.Sprintf("k%d", i))
		if n == nil || *n.(*int) != 1 {
			t.Errorf("k%d fetched %v times, want once", i, n)
		}
	}
}
