package cache

import (
	"fmt"
	"hash/maphash"
	"regexp"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/valyala/fasthttp"
)

// MaxVariants is the most variants kept per key; the oldest is dropped
// for a new one.
const MaxVariants = 16

// StoreConfig sizes a Store. It is a plain value, safe to copy and to
// read concurrently.
type StoreConfig struct {
	// MaxBytes bounds the memory the store holds, in bytes: every
	// entry's Size plus the memory Size leaves out (the Entry itself,
	// allocator rounding, its tags' index entries, see entryCost), and
	// the store's own structures (Stats.Overhead). Required.
	MaxBytes int64
}

// Stats are a Store's counters (cumulative) and levels (current), as
// Store.Stats read them. A plain value, safe to copy and to read
// concurrently.
type Stats struct {
	// Keys and Objects are the primary keys and the entries (variants)
	// held now.
	Keys, Objects int64
	// Bytes is the cost of the entries held now: their Size plus the
	// memory Size leaves out (the Entry, allocator rounding, the key's
	// and tags' index entries). Once the writes in flight are applied
	// it stays within MaxBytes-Overhead.
	Bytes int64
	// Overhead is the memory charged outside the entries: ristretto's
	// fixed structures and its maps' slots, which Go never frees, by the
	// most keys ever held. Bytes+Overhead stays within MaxBytes.
	Overhead int64
	// MaxBytes is the configured bound.
	MaxBytes int64
	// Stores counts the Inserts that stored their entry.
	Stores int64
	// Rejections counts the entries the store refused: by TinyLFU
	// admission, because ristretto's write buffer was full (Dropped,
	// which is included here), or because they were larger than a
	// quarter of MaxBytes.
	Rejections int64
	// Dropped counts the writes ristretto's full buffer dropped.
	Dropped int64
	// Evictions counts the entries evicted to make room for others (or
	// to meet a lowered bound).
	Evictions int64
	// Expirations counts the entries removed because their time to be
	// retained (Entry.Retain) ran out.
	Expirations int64
}

// Store holds entries by primary key in a byte-bounded ristretto cache
// with a tag index. ristretto keeps a seeded 64-bit hash of the key; the
// value is a head holding the full key, compared on every lookup, and the
// key's variants, replaced copy-on-write. Readers never lock; writers to
// one key are serialised. Safe for concurrent use, except Close.
type Store struct {
	c        *ristretto.Cache[uint64, *head]
	seed     maphash.Seed
	index    *tagIndex
	maxBytes atomic.Int64
	closed   atomic.Bool
	counters int64 // TinyLFU counters
	// peakKeys is the most keys ever held: ristretto's maps keep their
	// slots (slotKeyBytes).
	peakKeys atomic.Int64
	// hashHook replaces the key hash in tests, to force collisions.
	hashHook func(key string) uint64

	// writers serialises the writers of one hash (stripe).
	writers [256]sync.Mutex

	keys, objects, bytes        atomic.Int64
	stores, rejections, dropped atomic.Int64
	evictions, expirations      atomic.Int64
}

// head is the value ristretto holds for one key: the key itself (the
// cache keeps only its hash) and the key's variants, oldest first. It is
// immutable once handed to ristretto, except for exited; a change to the
// variants stores a new head.
type head struct {
	key      string
	hash     uint64
	variants []*Entry
	cost     int64
	// mixed says the variants' Retain ends differ, so that Lookup must
	// check each: otherwise ristretto's TTL, the latest end, covers them.
	mixed bool
	// exited is set, once, when the head leaves the cache (evicted,
	// expired, rejected, dropped, replaced or deleted); whoever sets it
	// settles the accounting.
	exited atomic.Bool
}

func (h *head) tagged() bool {
	for _, e := range h.variants {
		if len(e.Tags) > 0 {
			return true
		}
	}
	return false
}

func (h *head) eachTag(f func(tag string)) {
	for _, e := range h.variants {
		for _, t := range e.Tags {
			f(t)
		}
	}
}

// Why a head left the cache, for the counters.
type exitReason int

const (
	exitRemoved  exitReason = iota // replaced or deleted by the store itself
	exitEvicted                    // evicted by the policy
	exitExpired                    // its TTL ran out
	exitRejected                   // refused by TinyLFU admission
	exitDropped                    // dropped by ristretto's full buffer
)

// Memory the store charges, measured on Go 1.26 amd64 (see
// TestStoreChargesWhatItHolds and TestStoreMemoryStaysWithinBound).
const (
	// keyOverhead is a key's memory outside its entries and the maps
	// charged by their peak: the head, the expiry bucket's slot and
	// ristretto's Item while it is written.
	keyOverhead = 128
	// slotKeyBytes is the memory a key's slots take in ristretto's
	// store shard map (56 bytes) and policy map (16 bytes) at the load
	// of a map just grown. Go maps never shrink, so these are charged
	// by the largest number of keys ever held (Store.reserve), not by
	// the keys held now: after a flood of tiny objects the empty slots
	// stay allocated while the cache fills with large ones.
	slotKeyBytes = 192
	// slotTagBytes is the same for a tag's slot in the tag index's
	// outer map, charged by its peak since it was last copied.
	slotTagBytes = 96
	// tagOverhead is a (tag, key) pair's share of the tag index beyond
	// the outer map: a slot in the inner set of a shared tag, at up to
	// four times its load before the set is copied, and the set's
	// share of its map header.
	tagOverhead = 96
	// fieldSlack is the allocator's rounding of a header field's name
	// and value, if allocated separately (Policy packs them into one
	// buffer, which this overcounts a little).
	fieldSlack = 16
)

var (
	entrySize = int64(unsafe.Sizeof(Entry{}))
	fieldSize = int64(unsafe.Sizeof(Field{}))
)

// entryCost is what e costs in the store: e.Size (key, fields and body)
// plus the memory Size leaves out.
func entryCost(e *Entry) int64 {
	n := e.Size + allocSize(entrySize)
	n += allocSize(int64(cap(e.Body))) - int64(len(e.Body))
	n += allocSize(int64(cap(e.Header))*fieldSize) + int64(len(e.Header))*fieldSlack
	n += allocSize(int64(cap(e.VaryNames)) * 16)
	for _, name := range e.VaryNames {
		n += allocSize(int64(len(name)))
	}
	n += allocSize(int64(cap(e.VaryValues)) * 24)
	for _, v := range e.VaryValues {
		n += allocSize(int64(len(v)))
	}
	if len(e.Tags) > 0 {
		n += allocSize(int64(cap(e.Tags)) * 16)
		for _, t := range e.Tags {
			n += allocSize(int64(len(t))) + tagOverhead
		}
	}
	n += allocSize(int64(len(e.ETag))) + allocSize(int64(len(e.LastModified)))
	return n
}

// headCost is what a head with variants vs costs.
func headCost(vs []*Entry) int64 {
	n := int64(keyOverhead) + allocSize(int64(cap(vs))*8)
	for _, e := range vs {
		n += entryCost(e)
	}
	return n
}

// sizeClasses are the Go allocator's small size classes
// (internal/runtime/gc.SizeClassToSize, Go 1.26); larger objects are
// rounded up to whole 8 KiB pages.
var sizeClasses = [...]int64{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// allocSize is the heap an allocation of n bytes takes.
func allocSize(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if n > sizeClasses[len(sizeClasses)-1] {
		return (n + 8191) &^ 8191
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if sizeClasses[mid] < n {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return sizeClasses[lo]
}

// Sizing of ristretto.
const (
	// avgObject is the object size NumCounters is sized for: ristretto
	// wants about ten counters per object it holds.
	avgObject = 8 << 10
	// fixedBytes is what ristretto holds however empty: its write
	// buffer, a channel of 32768 pointers, its 256 shard maps and Get
	// buffers. A TinyLFU counter adds about 3.2 bytes (4 rows of 4 bits
	// and a bloom filter's 10 bits), charged as 4.
	fixedBytes = 32768*8 + 128<<10
)

// numCounters sizes TinyLFU for maxBytes: ten per expected object, a
// power of two as ristretto rounds it.
func numCounters(maxBytes int64) int64 {
	n := int64(1024)
	for n < 10*maxBytes/avgObject && n < 1<<26 {
		n <<= 1
	}
	return n
}

// NewStore returns an empty store bounded by cfg.MaxBytes. Safe for
// concurrent use; the Store must be closed.
func NewStore(cfg StoreConfig) (*Store, error) {
	if cfg.MaxBytes <= 0 {
		return nil, fmt.Errorf("creating cache store: max bytes %d: must be positive", cfg.MaxBytes)
	}
	s := &Store{seed: maphash.MakeSeed(), index: newTagIndex()}
	s.maxBytes.Store(cfg.MaxBytes)
	s.counters = numCounters(cfg.MaxBytes)
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *head]{
		NumCounters: s.counters,
		MaxCost:     s.limit(),
		BufferItems: 64,
		// Our costs include ristretto's per-item memory (keyOverhead).
		IgnoreInternalCost: true,
		// The key is already a hash; 0 skips ristretto's conflict check,
		// as the head's full key is compared instead.
		KeyToHash: func(k uint64) (uint64, uint64) { return k, 0 },
		// OnEvict and OnReject run before OnExit for the same value; the
		// first call to reach exit settles the accounting.
		OnEvict: func(it *ristretto.Item[*head]) {
			if it.Expiration.IsZero() {
				s.exit(it.Value, exitEvicted)
			} else {
				s.exit(it.Value, exitExpired)
			}
		},
		OnReject: func(it *ristretto.Item[*head]) { s.exit(it.Value, exitRejected) },
		OnExit:   func(h *head) { s.exit(h, exitRemoved) },
	})
	if err != nil {
		return nil, fmt.Errorf("creating cache store: %w", err)
	}
	s.c = c
	return s, nil
}

// reserve is the memory charged outside the entries' costs: ristretto's
// fixed structures and the map slots charged by their peak.
func (s *Store) reserve() int64 {
	return fixedBytes + 4*s.counters + slotKeyBytes*s.peakKeys.Load() + slotTagBytes*s.index.peakSeen.Load()
}

// limit is the bound on the entries' costs: MaxBytes less the reserve,
// and never below half of MaxBytes (a reserve that large would take a
// flood of objects far smaller than any response).
func (s *Store) limit() int64 {
	n := s.maxBytes.Load()
	return max(n-s.reserve(), n/2)
}

// updateLimit hands ristretto the current limit. ristretto evicts down
// to it on its next admission, which the caller's write is about to be
// (or, after SetMaxBytes, at once).
func (s *Store) updateLimit() { s.c.UpdateMaxCost(s.limit()) }

// exit settles the accounting of a head that left the cache: its bytes,
// its tag index entries and the counters. ristretto may report a head
// more than once (OnEvict then OnExit) and reports nil for values it no
// longer had; only the first report of a head counts.
func (s *Store) exit(h *head, why exitReason) {
	if h == nil || !h.exited.CompareAndSwap(false, true) {
		return
	}
	if s.index.remove(h) {
		s.updateLimit()
	}
	n := int64(len(h.variants))
	s.bytes.Add(-h.cost)
	s.objects.Add(-n)
	s.keys.Add(-1)
	if s.closed.Load() {
		return
	}
	switch why {
	case exitEvicted:
		s.evictions.Add(n)
	case exitExpired:
		s.expirations.Add(n)
	case exitRejected:
		s.rejections.Add(n)
	case exitDropped:
		s.rejections.Add(n)
		s.dropped.Add(n)
	}
}

func (s *Store) hash(key []byte) uint64 {
	if s.hashHook != nil {
		return s.hashHook(string(key))
	}
	return maphash.Bytes(s.seed, key)
}

func (s *Store) hashString(key string) uint64 {
	if s.hashHook != nil {
		return s.hashHook(key)
	}
	return maphash.String(s.seed, key)
}

// retained reports whether e is still within its Retain at now (Unix
// nanoseconds).
func retained(e *Entry, now int64) bool {
	return now-e.ResponseTime < int64(e.Retain)
}

// Lookup returns the variant of key that matches req (Entry.Matches), or
// nil. buf is scratch space, returned for reuse. It allocates nothing
// once buf is large enough, but for ristretto's access records, which it
// hands on in batches (at most one 512-byte slice per 64 lookups). Safe
// for concurrent use.
func (s *Store) Lookup(key []byte, req *fasthttp.RequestHeader, buf []byte) (*Entry, []byte) {
	h, ok := s.c.Get(s.hash(key))
	if !ok || h.key != string(key) {
		return nil, buf
	}
	var now int64
	if h.mixed {
		now = time.Now().UnixNano()
	}
	for i := len(h.variants) - 1; i >= 0; i-- {
		e := h.variants[i]
		if h.mixed && !retained(e, now) {
			continue
		}
		var match bool
		if match, buf = e.Matches(req, buf); match {
			return e, buf
		}
	}
	return nil, buf
}

// Variants returns the variants stored for key, oldest first, for
// conditional revalidation and the admin API. The slice is shared and
// must not be modified. Safe for concurrent use.
func (s *Store) Variants(key []byte) []*Entry {
	h := s.current(s.hash(key), key)
	if h == nil {
		return nil
	}
	now := time.Now().UnixNano()
	for i, e := range h.variants {
		if !retained(e, now) {
			out := append([]*Entry(nil), h.variants[:i]...)
			for _, e := range h.variants[i+1:] {
				if retained(e, now) {
					out = append(out, e)
				}
			}
			return out
		}
	}
	return h.variants
}

// current returns the head stored for key, or nil.
func (s *Store) current(hash uint64, key []byte) *head {
	h, ok := s.c.Get(hash)
	if !ok || h.key != string(key) {
		return nil
	}
	return h
}

// lock serialises the writers of hash.
func (s *Store) lock(hash uint64) *sync.Mutex {
	mu := &s.writers[hash%uint64(len(s.writers))]
	mu.Lock()
	return mu
}

// Insert stores e as the variant of e.Key with e's VaryValues, replacing
// the variant with the same values. When e.VaryNames differ from the
// stored variants' names the origin changed its Vary, and those variants
// are dropped; beyond MaxVariants the oldest is. The key is held for
// e.Retain from e.ResponseTime; nothing is stored when that has passed or
// when e costs more than a quarter of MaxBytes. Insert returns false when
// e was not stored (dropped, refused or evicted at once). It returns
// once the write is applied, so a following Lookup sees it. e must not
// be modified afterwards. Safe for concurrent use; writers to one key
// are serialised.
func (s *Store) Insert(e *Entry) bool {
	if e == nil || s.closed.Load() {
		return false
	}
	now := time.Now().UnixNano()
	if !retained(e, now) {
		return false
	}
	if entryCost(e) > s.maxBytes.Load()/4 {
		s.rejections.Add(1)
		return false
	}
	hash := s.hashString(e.Key)
	mu := s.lock(hash)
	defer mu.Unlock()

	cur, _ := s.c.Get(hash)
	var old []*Entry
	if cur != nil && cur.key == e.Key {
		old = cur.variants
	}
	vs := make([]*Entry, 0, len(old)+1)
	for _, v := range old {
		if !sameNames(v.VaryNames, e.VaryNames) {
			vs = vs[:0]
			break
		}
		if retained(v, now) && !sameValues(v.VaryValues, e.VaryValues) {
			vs = append(vs, v)
		}
	}
	vs = append(vs, e)
	// Drop the oldest variants beyond MaxVariants, and while the key
	// would cost more than a quarter of the bound: ristretto refuses a
	// key larger than the whole cache, and one near it flushes the rest.
	drop := max(0, len(vs)-MaxVariants)
	for limit := s.maxBytes.Load() / 4; drop < len(vs)-1 && headCost(vs[drop:]) > limit; {
		drop++
	}
	if drop > 0 {
		vs = append([]*Entry(nil), vs[drop:]...)
	}
	return s.put(hash, cur, newHead(e.Key, hash, vs), now)
}

func newHead(key string, hash uint64, vs []*Entry) *head {
	h := &head{key: key, hash: hash, variants: vs, cost: headCost(vs)}
	for _, e := range vs[1:] {
		if e.ResponseTime+int64(e.Retain) != vs[0].ResponseTime+int64(vs[0].Retain) {
			h.mixed = true
		}
	}
	return h
}

// put replaces cur (nil if none) with h. The caller holds hash's writer
// lock. A head that costs more than the one it replaces goes in as a new
// key: ristretto evicts only when a new key is added, so growing a key in
// place could take the cache past its bound.
func (s *Store) put(hash uint64, cur, h *head, now int64) bool {
	var ttl int64
	for _, e := range h.variants {
		ttl = max(ttl, e.ResponseTime+int64(e.Retain)-now)
	}
	if ttl <= 0 {
		return false
	}
	if cur == nil || h.cost > cur.cost {
		// cur is nil also when ristretto holds an expired head not yet
		// cleaned up, which an update would replace in place.
		s.c.Del(hash)
	}
	grown := s.index.add(h)
	s.bytes.Add(h.cost)
	s.objects.Add(int64(len(h.variants)))
	if k := s.keys.Add(1); k > s.peakKeys.Load() {
		for p := s.peakKeys.Load(); k > p && !s.peakKeys.CompareAndSwap(p, k); p = s.peakKeys.Load() {
		}
		grown = true
	}
	if grown {
		s.updateLimit()
	}
	if !s.c.SetWithTTL(hash, h, h.cost, time.Duration(ttl)) {
		s.exit(h, exitDropped)
		return false
	}
	// Apply the write now: the next Lookup sees it, ristretto's buffer
	// never holds more than one write per writer, and an update's cost
	// reaches the policy before the next writer's.
	s.c.Wait()
	if h.exited.Load() {
		return false
	}
	s.stores.Add(1)
	return true
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameValues compares VaryValues, where nil (field absent) differs from
// empty.
func sameValues(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) || string(a[i]) != string(b[i]) {
			return false
		}
	}
	return true
}

// Remove deletes every variant of key and returns how many there were.
// Safe for concurrent use.
func (s *Store) Remove(key []byte) int {
	return s.purgeKey(key, everything, false, time.Now())
}

// PurgeKey removes every variant of key, or with soft marks each stale
// (Entry.SoftPurge) and keeps it for stale serving and revalidation. It
// returns how many variants it purged. Safe for concurrent use.
func (s *Store) PurgeKey(key []byte, soft bool) int {
	return s.purgeKey(key, everything, soft, time.Now())
}

func (s *Store) purgeKey(key []byte, match tagMatcher, soft bool, now time.Time) int {
	hash := s.hash(key)
	if soft {
		return softPurge(s.current(hash, key), match, now)
	}
	mu := s.lock(hash)
	defer mu.Unlock()
	return s.hardPurge(s.current(hash, key), match, now)
}

// softPurge marks h's variants that match.
func softPurge(h *head, match tagMatcher, now time.Time) int {
	if h == nil {
		return 0
	}
	n := 0
	for _, e := range h.variants {
		if match(e) {
			e.SoftPurge(now)
			n++
		}
	}
	return n
}

// hardPurge removes cur's variants that match: the key when none is left,
// else a head with the others. The caller holds the key's writer lock.
func (s *Store) hardPurge(cur *head, match tagMatcher, now time.Time) int {
	if cur == nil {
		return 0
	}
	var keep []*Entry
	n := 0
	for _, e := range cur.variants {
		if match(e) {
			n++
		} else {
			keep = append(keep, e)
		}
	}
	switch {
	case n == 0:
	case len(keep) == 0:
		s.c.Del(cur.hash)
	default:
		if !s.put(cur.hash, cur, newHead(cur.key, cur.hash, keep), now.UnixNano()) {
			// Only the purged variants were still retained, or the
			// smaller head was refused: either way nothing is left.
			s.c.Del(cur.hash)
		}
	}
	return n
}

// purgeHeads purges the variants of heads that match. Each key is purged
// as it is now, not as the head collected: a variant added meanwhile
// carries its old siblings, which must not escape.
func (s *Store) purgeHeads(heads []*head, match tagMatcher, soft bool) int {
	now := time.Now()
	n := 0
	for _, h := range heads {
		if soft {
			n += softPurge(h, match, now)
			continue
		}
		mu := s.lock(h.hash)
		cur, ok := s.c.Get(h.hash)
		if ok && cur.key == h.key {
			n += s.hardPurge(cur, match, now)
		}
		mu.Unlock()
	}
	return n
}

// PurgeTags purges (soft: marks stale) every variant carrying any of
// tags, found through the tag index. It returns how many. Safe for
// concurrent use.
func (s *Store) PurgeTags(tags []string, soft bool) int {
	if len(tags) == 0 {
		return 0
	}
	return s.purgeHeads(s.index.heads(tags), anyTag(tags), soft)
}

// PurgePattern purges (soft: marks stale) every variant whose tags,
// joined with ",", match the regular expression pattern: Varnish's
// ban obj.http.X-Magento-Tags ~ pattern, as Magento's
// X-Magento-Tags-Pattern asks. Magento's own patterns
// (((^|,)TAG(,|$))|…) are served from the tag index; any other is
// compiled and evaluated against every tagged variant. Variants without
// tags never match, as a ban on a missing field matches nothing in
// Varnish (so ".*" purges every tagged variant, not the untagged ones).
// It returns how many variants it purged. Safe for concurrent use.
func (s *Store) PurgePattern(pattern string, soft bool) (int, error) {
	if tags, ok := magentoTags(pattern); ok {
		return s.PurgeTags(tags, soft), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return 0, fmt.Errorf("compiling purge pattern: %w", err)
	}
	return s.purgeHeads(s.index.all(), tagsMatch(re), soft), nil
}

// PurgeAll purges (soft: marks stale) every variant and returns how
// many. Safe for concurrent use.
func (s *Store) PurgeAll(soft bool) int {
	return s.purgeHeads(s.heads(), everything, soft)
}

// heads returns every head ristretto holds now.
func (s *Store) heads() []*head {
	var out []*head
	s.c.IterValues(func(h *head) bool {
		out = append(out, h)
		return false
	})
	return out
}

// SetMaxBytes changes the bound, for a configuration reload. A lower
// bound is met at once by evicting keys in no particular order; the
// TinyLFU counters keep the size they were made with. Safe for
// concurrent use.
func (s *Store) SetMaxBytes(n int64) {
	if n <= 0 {
		return
	}
	s.maxBytes.Store(n)
	s.updateLimit()
	if s.bytes.Load() <= s.limit() {
		return
	}
	for _, h := range s.heads() {
		if s.bytes.Load() <= s.limit() {
			return
		}
		mu := s.lock(h.hash)
		if cur, ok := s.c.Get(h.hash); ok && cur == h {
			s.c.Del(h.hash)
			s.evictions.Add(int64(len(h.variants)))
		}
		mu.Unlock()
	}
}

// Stats returns the store's counters and levels, each read atomically.
// Safe for concurrent use.
func (s *Store) Stats() Stats {
	return Stats{
		Keys:        s.keys.Load(),
		Objects:     s.objects.Load(),
		Bytes:       s.bytes.Load(),
		Overhead:    s.reserve(),
		MaxBytes:    s.maxBytes.Load(),
		Stores:      s.stores.Load(),
		Rejections:  s.rejections.Load(),
		Dropped:     s.dropped.Load(),
		Evictions:   s.evictions.Load(),
		Expirations: s.expirations.Load(),
	}
}

// Wait blocks until the writes buffered so far are applied (Insert
// already waits for its own). Safe for concurrent use.
func (s *Store) Wait() { s.c.Wait() }

// Close releases the store's goroutines and everything it holds. It must
// be called once, after every other call has returned.
func (s *Store) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.c.Close()
}
