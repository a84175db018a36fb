package cache

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func newTestStore(tb testing.TB, maxBytes int64) *Store {
	tb.Helper()
	s, err := NewStore(StoreConfig{MaxBytes: maxBytes})
	if err != nil {
		tb.Fatalf("NewStore: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// entryOption adjusts a test entry before its Size is computed.
type entryOption func(*Entry)

// vary makes the entry the variant for names = values; a value "<nil>"
// stands for a field the request lacked.
func vary(names []string, values ...string) entryOption {
	return func(e *Entry) {
		e.VaryNames = names
		e.VaryValues = make([][]byte, len(values))
		for i, v := range values {
			if v != "<nil>" {
				e.VaryValues[i] = []byte(v)
			}
		}
	}
}

func tags(t ...string) entryOption { return func(e *Entry) { e.Tags = t } }

func retain(d time.Duration) entryOption { return func(e *Entry) { e.Retain = d } }

// newEntry builds an entry as the policy would: fields and body copied
// into their own allocations, received now, retained for an hour.
func newEntry(key string, bodyLen int, opts ...entryOption) *Entry {
	now := time.Now()
	e := &Entry{
		Key:    key,
		Status: 200,
		Header: []Field{
			{Name: []byte("Content-Type"), Value: []byte("text/html; charset=UTF-8")},
			{Name: []byte("Cache-Control"), Value: []byte("public, max-age=86400")},
			{Name: []byte("Date"), Value: []byte(now.UTC().Format(time.RFC1123))},
		},
		Body:         make([]byte, bodyLen),
		RequestTime:  now.UnixNano(),
		ResponseTime: now.UnixNano(),
		Date:         now.Unix(),
		Lifetime:     time.Hour,
		Retain:       time.Hour,
	}
	for _, o := range opts {
		o(e)
	}
	e.Size = int64(len(e.Key) + len(e.Body))
	for _, f := range e.Header {
		e.Size += int64(len(f.Name) + len(f.Value))
	}
	return e
}

// request builds a request header from name, value pairs.
func request(kv ...string) *fasthttp.RequestHeader {
	var h fasthttp.RequestHeader
	h.SetMethod("GET")
	h.SetRequestURI("/")
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return &h
}

func lookup(s *Store, key string, req *fasthttp.RequestHeader) *Entry {
	if req == nil {
		req = request()
	}
	e, _ := s.Lookup([]byte(key), req, nil)
	return e
}

func mustInsert(t *testing.T, s *Store, e *Entry) {
	t.Helper()
	if !s.Insert(e) {
		t.Fatalf("Insert(%q) = false, want true (stats %+v)", e.Key, s.Stats())
	}
}

// residentCost sums the costs of the heads ristretto holds.
func residentCost(s *Store) (keys, objects, bytes int64) {
	for _, h := range s.heads() {
		keys++
		objects += int64(len(h.variants))
		bytes += h.cost
	}
	return keys, objects, bytes
}

func TestNewStoreRejectsBadConfig(t *testing.T) {
	for _, n := range []int64{0, -1} {
		if s, err := NewStore(StoreConfig{MaxBytes: n}); err == nil {
			s.Close()
			t.Errorf("NewStore(MaxBytes: %d) succeeded, want an error", n)
		}
	}
}

func TestStoreLookupSeesInsertAtOnce(t *testing.T) {
	s := newTestStore(t, 64<<20)
	e := newEntry("GET example.com/a", 100)
	mustInsert(t, s, e)
	if got := lookup(s, "GET example.com/a", nil); got != e {
		t.Fatalf("Lookup after Insert = %p, want %p", got, e)
	}
	if got := lookup(s, "GET example.com/b", nil); got != nil {
		t.Fatalf("Lookup(other key) = %p, want nil", got)
	}
	st := s.Stats()
	if st.Keys != 1 || st.Objects != 1 || st.Stores != 1 || st.Bytes != headCost([]*Entry{e}) {
		t.Fatalf("Stats = %+v, want 1 key, 1 object, 1 store, %d bytes", st, headCost([]*Entry{e}))
	}
}

func TestStoreLookupComparesFullKey(t *testing.T) {
	s := newTestStore(t, 64<<20)
	s.hashHook = func(string) uint64 { return 42 } // every key collides
	a := newEntry("GET example.com/a", 100)
	mustInsert(t, s, a)
	if got := lookup(s, "GET example.com/b", nil); got != nil {
		t.Fatalf("Lookup(b) with a stored under the same hash = %q, want a miss", got.Key)
	}
	if got := s.Variants([]byte("GET example.com/b")); got != nil {
		t.Fatalf("Variants(b) = %d entries, want none", len(got))
	}
	if n := s.Remove([]byte("GET example.com/b")); n != 0 {
		t.Fatalf("Remove(b) = %d, want 0: a must survive", n)
	}
	b := newEntry("GET example.com/b", 200)
	mustInsert(t, s, b)
	if got := lookup(s, "GET example.com/a", nil); got != nil {
		t.Fatalf("Lookup(a) after b took its hash = %q, want a miss", got.Key)
	}
	if got := lookup(s, "GET example.com/b", nil); got != b {
		t.Fatalf("Lookup(b) = %v, want b", got)
	}
	if st := s.Stats(); st.Keys != 1 || st.Objects != 1 || st.Bytes != headCost([]*Entry{b}) {
		t.Fatalf("Stats = %+v, want a's accounting gone", st)
	}
}

func TestStoreVariants(t *testing.T) {
	ae := []string{"accept-encoding"}
	tests := []struct {
		name    string
		inserts []*Entry
		// want maps a request's Accept-Encoding ("" = none) to the index
		// in inserts of the variant Lookup must return, -1 for a miss.
		want     map[string]int
		variants int
	}{
		{
			name: "distinct values are kept side by side",
			inserts: []*Entry{
				newEntry("k", 10, vary(ae, "gzip")),
				newEntry("k", 10, vary(ae, "br")),
				newEntry("k", 10, vary(ae, "<nil>")),
			},
			want:     map[string]int{"gzip": 0, "br": 1, "": 2, "zstd": -1},
			variants: 3,
		},
		{
			name: "the same values replace the variant",
			inserts: []*Entry{
				newEntry("k", 10, vary(ae, "gzip")),
				newEntry("k", 10, vary(ae, "br")),
				newEntry("k", 20, vary(ae, "gzip")),
			},
			want:     map[string]int{"gzip": 2, "br": 1, "": -1},
			variants: 2,
		},
		{
			name: "an empty value is a variant apart from an absent field",
			inserts: []*Entry{
				newEntry("k", 10, vary(ae, "<nil>")),
				newEntry("k", 10, vary(ae, "")),
			},
			want:     map[string]int{"gzip": -1},
			variants: 2,
		},
		{
			name: "changed Vary names drop the old variants",
			inserts: []*Entry{
				newEntry("k", 10, vary(ae, "gzip")),
				newEntry("k", 10, vary(ae, "br")),
				newEntry("k", 10, vary([]string{"accept-language"}, "<nil>")),
			},
			want:     map[string]int{"gzip": 2, "br": 2, "": 2},
			variants: 1,
		},
		{
			name: "no Vary after Vary drops the old variants",
			inserts: []*Entry{
				newEntry("k", 10, vary(ae, "gzip")),
				newEntry("k", 10),
			},
			want:     map[string]int{"gzip": 1, "": 1},
			variants: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t, 64<<20)
			for _, e := range tt.inserts {
				mustInsert(t, s, e)
			}
			for ae, i := range tt.want {
				req := request()
				if ae != "" {
					req = request("Accept-Encoding", ae)
				}
				got := lookup(s, "k", req)
				switch {
				case i < 0 && got != nil:
					t.Errorf("Lookup(Accept-Encoding %q) = %q, want a miss", ae, got.VaryValues)
				case i >= 0 && got != tt.inserts[i]:
					t.Errorf("Lookup(Accept-Encoding %q) = %v, want insert %d", ae, got, i)
				}
			}
			vs := s.Variants([]byte("k"))
			if len(vs) != tt.variants {
				t.Errorf("Variants = %d, want %d", len(vs), tt.variants)
			}
			if st := s.Stats(); st.Objects != int64(tt.variants) || st.Bytes != headCost(vs) {
				t.Errorf("Stats = %+v, want %d objects and %d bytes", st, tt.variants, headCost(vs))
			}
		})
	}
}

func TestStoreKeepsAtMostMaxVariants(t *testing.T) {
	s := newTestStore(t, 64<<20)
	names := []string{"x-v"}
	const n = MaxVariants + 4
	for i := range n {
		mustInsert(t, s, newEntry("k", 10, vary(names, fmt.Sprint(i))))
	}
	if got := len(s.Variants([]byte("k"))); got != MaxVariants {
		t.Fatalf("Variants = %d, want %d", got, MaxVariants)
	}
	for i := range n {
		hit := lookup(s, "k", request("X-V", fmt.Sprint(i))) != nil
		if want := i >= n-MaxVariants; hit != want {
			t.Errorf("variant %d: hit = %v, want %v (the oldest go first)", i, hit, want)
		}
	}
	if st := s.Stats(); st.Objects != MaxVariants {
		t.Fatalf("Objects = %d, want %d", st.Objects, MaxVariants)
	}
}

func TestStoreKeepsAKeyWithinAQuarterOfTheBound(t *testing.T) {
	const maxBytes = 4 << 20
	s := newTestStore(t, maxBytes)
	names := []string{"x-v"}
	for i := range 4 {
		mustInsert(t, s, newEntry("k", 400<<10, vary(names, fmt.Sprint(i))))
	}
	vs := s.Variants([]byte("k"))
	if len(vs) != 2 || string(vs[0].VaryValues[0]) != "2" || string(vs[1].VaryValues[0]) != "3" {
		t.Fatalf("Variants = %d, want the newest 2 of 400 KiB each in a 1 MiB quarter", len(vs))
	}
	if st := s.Stats(); st.Bytes > maxBytes/4 || st.Objects != 2 {
		t.Fatalf("Stats = %+v, want 2 objects within %d bytes", st, maxBytes/4)
	}
}

func TestStoreInsertRefuses(t *testing.T) {
	const maxBytes = 4 << 20
	tests := []struct {
		name      string
		e         *Entry
		rejection bool
	}{
		{"retain already over", newEntry("k", 10, retain(-time.Second)), false},
		{"retain zero", newEntry("k", 10, retain(0)), false},
		{"larger than a quarter of the bound", newEntry("k", maxBytes/4), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t, maxBytes)
			if s.Insert(tt.e) {
				t.Fatal("Insert = true, want false")
			}
			st := s.Stats()
			if got := st.Rejections == 1; got != tt.rejection {
				t.Errorf("Rejections = %d, want a rejection: %v", st.Rejections, tt.rejection)
			}
			if st.Keys != 0 || st.Bytes != 0 || lookup(s, "k", nil) != nil {
				t.Errorf("Stats = %+v after a refused Insert, want nothing held", st)
			}
		})
	}
}

func TestStoreExpiresVariantsAndKeys(t *testing.T) {
	s := newTestStore(t, 64<<20)
	names := []string{"x-v"}
	short := newEntry("k", 10, vary(names, "short"), retain(time.Second), tags("t_short"))
	long := newEntry("k", 10, vary(names, "long"), retain(2*time.Second), tags("t_long"))
	mustInsert(t, s, short)
	mustInsert(t, s, long)
	if lookup(s, "k", request("X-V", "short")) != short {
		t.Fatal("short variant missing before it expired")
	}

	time.Sleep(time.Until(time.Unix(0, short.ResponseTime).Add(short.Retain)) + 10*time.Millisecond)
	if got := lookup(s, "k", request("X-V", "short")); got != nil {
		t.Fatal("short variant served after its Retain")
	}
	if lookup(s, "k", request("X-V", "long")) != long {
		t.Fatal("long variant missing before it expired")
	}
	if vs := s.Variants([]byte("k")); len(vs) != 1 || vs[0] != long {
		t.Fatalf("Variants = %v, want only the long one", vs)
	}

	time.Sleep(time.Until(time.Unix(0, long.ResponseTime).Add(long.Retain)) + 10*time.Millisecond)
	if got := lookup(s, "k", request("X-V", "long")); got != nil {
		t.Fatal("long variant served after its Retain")
	}
	// ristretto reclaims expired keys in 5-second buckets.
	deadline := time.Now().Add(15 * time.Second)
	for s.Stats().Keys != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	st := s.Stats()
	if st.Keys != 0 || st.Objects != 0 || st.Bytes != 0 || st.Expirations != 2 {
		t.Fatalf("Stats = %+v, want the key expired with its 2 variants and nothing held", st)
	}
	if tags, pairs := s.index.size(); tags != 0 || pairs != 0 {
		t.Fatalf("tag index holds %d tags, %d pairs after expiry, want none", tags, pairs)
	}
}

func TestStoreTagIndexHoldsOnlyResidentKeys(t *testing.T) {
	s := newTestStore(t, 2<<20)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for i := range 3000 {
				id := g*3000 + i
				e := newEntry(fmt.Sprintf("k%d", id%5000), 200+rng.IntN(4000),
					tags(fmt.Sprintf("cat_p_%d", id), fmt.Sprintf("cat_c_%d", id%17), "store"))
				s.Insert(e)
			}
		})
	}
	wg.Wait()
	s.Wait()

	heads := s.heads()
	want := map[string]map[*head]bool{}
	for _, h := range heads {
		h.eachTag(func(tag string) {
			if want[tag] == nil {
				want[tag] = map[*head]bool{}
			}
			want[tag][h] = true
		})
	}
	wantPairs := 0
	for _, hs := range want {
		wantPairs += len(hs)
	}
	gotTags, gotPairs := s.index.size()
	if gotTags != len(want) || gotPairs != wantPairs {
		t.Fatalf("tag index holds %d tags, %d pairs; resident heads carry %d tags, %d pairs",
			gotTags, gotPairs, len(want), wantPairs)
	}
	for _, h := range s.index.all() {
		if cur, ok := s.c.Get(h.hash); !ok || cur != h {
			t.Fatalf("tag index holds head %q, which ristretto does not", h.key)
		}
	}
	st := s.Stats()
	if st.Evictions+st.Rejections == 0 {
		t.Fatalf("Stats = %+v: the test did not fill the store beyond its bound", st)
	}
	if keys, objects, bytes := residentCost(s); st.Keys != keys || st.Objects != objects || st.Bytes != bytes {
		t.Fatalf("Stats = %+v, resident heads: %d keys, %d objects, %d bytes", st, keys, objects, bytes)
	}
}

// taggedStore holds key k<i> for each tag list, one variant each.
func taggedStore(t *testing.T, tagLists ...[]string) *Store {
	s := newTestStore(t, 64<<20)
	for i, tl := range tagLists {
		mustInsert(t, s, newEntry(fmt.Sprintf("k%d", i), 10, tags(tl...)))
	}
	return s
}

// resident reports which of the keys k0…k<n-1> Lookup finds.
func resident(s *Store, n int) []int {
	var out []int
	for i := range n {
		if lookup(s, fmt.Sprintf("k%d", i), nil) != nil {
			out = append(out, i)
		}
	}
	return out
}

var purgeFixture = [][]string{
	0: {"cat_p_1", "cat_c_7", "store"},
	1: {"cat_p_10", "cat_c_7", "store"},
	2: {"cat_p_100"},
	3: {"cms_b_header", "store"},
	4: nil, // untagged
	5: {"cat_p_11"},
}

func TestStorePurgeTags(t *testing.T) {
	tests := []struct {
		name   string
		tags   []string
		purged int
		left   []int
	}{
		{"one tag of one key", []string{"cat_p_1"}, 1, []int{1, 2, 3, 4, 5}},
		{"a shared tag", []string{"cat_c_7"}, 2, []int{2, 3, 4, 5}},
		{"several tags, overlapping", []string{"cat_p_100", "store"}, 4, []int{4, 5}},
		{"unknown tag", []string{"cat_p_2"}, 0, []int{0, 1, 2, 3, 4, 5}},
		{"no tags", nil, 0, []int{0, 1, 2, 3, 4, 5}},
		{"a prefix is not a tag", []string{"cat_p"}, 0, []int{0, 1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := taggedStore(t, purgeFixture...)
			if n := s.PurgeTags(tt.tags, false); n != tt.purged {
				t.Errorf("PurgeTags(%q) = %d, want %d", tt.tags, n, tt.purged)
			}
			if got := resident(s, len(purgeFixture)); !slices.Equal(got, tt.left) {
				t.Errorf("resident after PurgeTags(%q) = %v, want %v", tt.tags, got, tt.left)
			}
			if st := s.Stats(); st.Objects != int64(len(tt.left)) {
				t.Errorf("Objects = %d, want %d", st.Objects, len(tt.left))
			}
		})
	}
}

func TestStorePurgePattern(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		purged  int
		left    []int
	}{
		{"Magento pattern, one tag", "((^|,)cat_p_1(,|$))", 1, []int{1, 2, 3, 4, 5}},
		{"Magento pattern does not purge cat_p_10 for cat_p_1", "((^|,)cat_p_1(,|$))|((^|,)cat_p_11(,|$))", 2, []int{1, 2, 3, 4}},
		{"Magento pattern, tag in the middle", "((^|,)cat_c_7(,|$))", 2, []int{2, 3, 4, 5}},
		{"Magento pattern, tag at the end", "((^|,)store(,|$))", 3, []int{2, 4, 5}},
		{"full flush purges every tagged entry", ".*", 5, []int{4}},
		{"third-party regular expression, unanchored", "cat_p_1[01]", 3, []int{0, 3, 4}},
		{"anchored regular expression", "^cms_", 1, []int{0, 1, 2, 4, 5}},
		{"unescaped prefix matches as a regex does", "cat_p_1", 4, []int{3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := taggedStore(t, purgeFixture...)
			n, err := s.PurgePattern(tt.pattern, false)
			if err != nil {
				t.Fatalf("PurgePattern(%q): %v", tt.pattern, err)
			}
			if n != tt.purged {
				t.Errorf("PurgePattern(%q) = %d, want %d", tt.pattern, n, tt.purged)
			}
			if got := resident(s, len(purgeFixture)); !slices.Equal(got, tt.left) {
				t.Errorf("resident after PurgePattern(%q) = %v, want %v", tt.pattern, got, tt.left)
			}
		})
	}
}

func TestStorePurgePatternRejectsInvalidRegexp(t *testing.T) {
	s := taggedStore(t, purgeFixture...)
	n, err := s.PurgePattern("((^|,)cat_p_1(,|$)", false)
	if err == nil || !strings.Contains(err.Error(), "compiling purge pattern") {
		t.Fatalf("PurgePattern(unbalanced) = %d, %v; want a wrapped compile error", n, err)
	}
	if got := resident(s, len(purgeFixture)); len(got) != len(purgeFixture) {
		t.Fatalf("resident after a failed purge = %v, want every key", got)
	}
}

func TestStorePurgeTagsKeepsOtherVariants(t *testing.T) {
	s := newTestStore(t, 64<<20)
	names := []string{"x-v"}
	a := newEntry("k", 10, vary(names, "a"), tags("cat_p_1"))
	b := newEntry("k", 10, vary(names, "b"), tags("cat_p_2"))
	mustInsert(t, s, a)
	mustInsert(t, s, b)
	if n := s.PurgeTags([]string{"cat_p_1"}, false); n != 1 {
		t.Fatalf("PurgeTags = %d, want 1", n)
	}
	if vs := s.Variants([]byte("k")); len(vs) != 1 || vs[0] != b {
		t.Fatalf("Variants = %v, want only b", vs)
	}
	if st := s.Stats(); st.Objects != 1 || st.Bytes != headCost([]*Entry{b}) {
		t.Fatalf("Stats = %+v, want b alone accounted", st)
	}
	if n := s.PurgeTags([]string{"cat_p_1"}, false); n != 0 {
		t.Fatalf("second PurgeTags = %d, want 0: the index must have dropped a's tag", n)
	}
	if tags, pairs := s.index.size(); tags != 1 || pairs != 1 {
		t.Fatalf("tag index holds %d tags, %d pairs, want b's one", tags, pairs)
	}
}

func TestStoreSoftPurgeMarksAndKeeps(t *testing.T) {
	tests := []struct {
		name   string
		purge  func(s *Store) int
		marked []int
	}{
		{"PurgeKey", func(s *Store) int { return s.PurgeKey([]byte("k0"), true) }, []int{0}},
		{"PurgeTags", func(s *Store) int { return s.PurgeTags([]string{"cat_c_7"}, true) }, []int{0, 1}},
		{"PurgePattern, Magento", func(s *Store) int {
			n, _ := s.PurgePattern("((^|,)store(,|$))", true)
			return n
		}, []int{0, 1, 3}},
		{"PurgePattern, regex", func(s *Store) int {
			n, _ := s.PurgePattern("^cat_p_1", true)
			return n
		}, []int{0, 1, 2, 5}},
		{"PurgeAll", func(s *Store) int { return s.PurgeAll(true) }, []int{0, 1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := taggedStore(t, purgeFixture...)
			before := s.Stats()
			if n := tt.purge(s); n != len(tt.marked) {
				t.Errorf("purge = %d, want %d", n, len(tt.marked))
			}
			now := time.Now()
			for i := range purgeFixture {
				e := lookup(s, fmt.Sprintf("k%d", i), nil)
				if e == nil {
					t.Fatalf("k%d gone after a soft purge, want it kept", i)
				}
				want := slices.Contains(tt.marked, i)
				if e.SoftPurged() != want {
					t.Errorf("k%d SoftPurged = %v, want %v", i, e.SoftPurged(), want)
				}
				if stale := e.TTL(now) < 0; stale != want {
					t.Errorf("k%d stale = %v, want %v", i, stale, want)
				}
			}
			if after := s.Stats(); after.Objects != before.Objects || after.Bytes != before.Bytes {
				t.Errorf("Stats after a soft purge = %+v, want as before %+v", after, before)
			}
		})
	}
}

func TestStorePurgeAllAndRemove(t *testing.T) {
	s := taggedStore(t, purgeFixture...)
	names := []string{"x-v"}
	mustInsert(t, s, newEntry("k6", 10, vary(names, "a")))
	mustInsert(t, s, newEntry("k6", 10, vary(names, "b")))
	if n := s.Remove([]byte("k6")); n != 2 {
		t.Fatalf("Remove(k6) = %d, want its 2 variants", n)
	}
	if n := s.Remove([]byte("k6")); n != 0 {
		t.Fatalf("second Remove(k6) = %d, want 0", n)
	}
	if n := s.PurgeKey([]byte("k5"), false); n != 1 {
		t.Fatalf("PurgeKey(k5) = %d, want 1", n)
	}
	if n := s.PurgeAll(false); n != 5 {
		t.Fatalf("PurgeAll = %d, want the 5 left", n)
	}
	s.Wait()
	if got := resident(s, 7); len(got) != 0 {
		t.Fatalf("resident after PurgeAll = %v, want none", got)
	}
	if st := s.Stats(); st.Keys != 0 || st.Objects != 0 || st.Bytes != 0 {
		t.Fatalf("Stats after PurgeAll = %+v, want nothing held", st)
	}
	if tags, pairs := s.index.size(); tags != 0 || pairs != 0 {
		t.Fatalf("tag index holds %d tags, %d pairs after PurgeAll, want none", tags, pairs)
	}
	// The store still works.
	e := newEntry("k0", 10, tags("store"))
	mustInsert(t, s, e)
	if lookup(s, "k0", nil) != e {
		t.Fatal("Lookup after PurgeAll and Insert missed")
	}
}

func TestStoreSetMaxBytesShrinksAtOnce(t *testing.T) {
	s := newTestStore(t, 16<<20)
	for i := range 400 {
		s.Insert(newEntry(fmt.Sprintf("k%d", i), 16<<10, tags(fmt.Sprintf("cat_p_%d", i))))
	}
	if st := s.Stats(); st.Bytes < 4<<20 {
		t.Fatalf("Stats = %+v, want more than 4 MiB held before shrinking", st)
	}
	s.SetMaxBytes(2 << 20)
	st := s.Stats()
	if st.Bytes > 2<<20 || st.MaxBytes != 2<<20 || st.Evictions == 0 {
		t.Fatalf("Stats after SetMaxBytes(2 MiB) = %+v, want at most 2 MiB held", st)
	}
	for range 400 {
		s.Insert(newEntry(fmt.Sprintf("n%d", rand.IntN(1e6)), 16<<10))
	}
	if st := s.Stats(); st.Bytes > 2<<20 {
		t.Fatalf("Stats after more inserts = %+v, want at most 2 MiB held", st)
	}
	if keys, objects, bytes := residentCost(s); keys != s.Stats().Keys || objects != s.Stats().Objects || bytes != s.Stats().Bytes {
		t.Fatalf("Stats = %+v, resident heads: %d keys, %d objects, %d bytes", s.Stats(), keys, objects, bytes)
	}
}

func TestStoreGrowingKeyStaysWithinBound(t *testing.T) {
	// ristretto evicts only when a new key is added, so a key gaining
	// variants must not grow in place past the bound.
	s := newTestStore(t, 4<<20)
	names := []string{"x-v"}
	for k := range 8 {
		for v := range MaxVariants {
			s.Insert(newEntry(fmt.Sprintf("k%d", k), 64<<10, vary(names, fmt.Sprint(v))))
		}
	}
	if st := s.Stats(); st.Bytes > 4<<20 {
		t.Fatalf("Stats = %+v, want at most 4 MiB held", st)
	}
}

// TestStoreMemoryStaysWithinBound proves the requirement: the heap
// the store holds stays within 10% of MaxBytes under concurrent inserts
// of ten times that, in objects of 1 KiB to 256 KiB.
func TestStoreMemoryStaysWithinBound(t *testing.T) {
	const maxBytes = 32 << 20
	before := heapAfterGC()
	s := newTestStore(t, maxBytes)

	var inserted, stored atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := 0; inserted.Load() < 10*maxBytes; i++ {
				// Log-uniform sizes: as many 1–2 KiB bodies as 128–256 KiB.
				size := int(1024 * math.Exp2(rng.Float64()*8))
				key := fmt.Sprintf("GET shop.example/p/%d/%d", g, i)
				if rng.IntN(10) == 0 {
					key = fmt.Sprintf("GET shop.example/hot/%d", rng.IntN(50))
				}
				var opts []entryOption
				if rng.IntN(3) == 0 {
					opts = append(opts, vary([]string{"accept-encoding"}, []string{"gzip", "br", "<nil>"}[rng.IntN(3)]))
				}
				if rng.IntN(2) == 0 {
					tl := []string{fmt.Sprintf("cat_p_%d_%d", g, i), fmt.Sprintf("cat_c_%d", rng.IntN(40)), "store"}
					for range rng.IntN(20) {
						tl = append(tl, fmt.Sprintf("cat_p_%d", rng.IntN(5000)))
					}
					opts = append(opts, tags(tl...))
				}
				e := newEntry(key, size, opts...)
				if s.Insert(e) {
					stored.Add(1)
				}
				inserted.Add(int64(size))
			}
		})
	}
	var lookups atomic.Int64
	var lg sync.WaitGroup
	for g := range 4 {
		lg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			req := request("Accept-Encoding", "gzip")
			key := make([]byte, 0, 64)
			var buf []byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				key = fmt.Appendf(key[:0], "GET shop.example/hot/%d", rng.IntN(50))
				_, buf = s.Lookup(key, req, buf)
				lookups.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	lg.Wait()
	s.Wait()

	st := s.Stats()
	after := heapAfterGC()
	held := int64(after) - int64(before)
	t.Logf("inserted %d MiB in %d stored objects, %d lookups; stats %+v", inserted.Load()>>20, stored.Load(), lookups.Load(), st)
	t.Logf("heap held by the store: %.2f MiB = %.1f%% of MaxBytes; Bytes = %.1f%% of MaxBytes",
		float64(held)/(1<<20), 100*float64(held)/maxBytes, 100*float64(st.Bytes)/maxBytes)
	if st.Bytes > maxBytes {
		t.Errorf("Stats.Bytes = %d, want at most MaxBytes %d", st.Bytes, maxBytes)
	}
	if limit := int64(maxBytes) * 11 / 10; held > limit {
		t.Errorf("heap held by the store = %d bytes, want at most 110%% of MaxBytes (%d)", held, limit)
	}
	if st.Bytes < maxBytes/2 {
		t.Errorf("Stats.Bytes = %d: the store holds less than half its bound, the test proves little", st.Bytes)
	}
	if keys, objects, bytes := residentCost(s); st.Keys != keys || st.Objects != objects || st.Bytes != bytes {
		t.Errorf("Stats = %+v, resident heads: %d keys, %d objects, %d bytes", st, keys, objects, bytes)
	}
	runtime.KeepAlive(s)
}

// TestStoreMemoryAfterSmallObjectFlood fills the store with the smallest
// objects, then replaces them with large ones: ristretto's maps keep the
// slots the small ones took (Go maps never shrink), and the store must
// charge them (Stats.Overhead) to stay within the bound.
func TestStoreMemoryAfterSmallObjectFlood(t *testing.T) {
	const maxBytes = 16 << 20
	before := heapAfterGC()
	s := newTestStore(t, maxBytes)
	fill := func(prefix string, size, n, hits int) {
		// Requested before, in rounds: TinyLFU admits keys seen often
		// over the once-seen small ones (ristretto counts accesses in
		// batches of 64, so the rounds must come before the inserts).
		req := request()
		for range hits {
			for i := range n {
				s.Lookup(fmt.Appendf(nil, "%s%d", prefix, i), req, nil)
				if i%64 == 0 {
					// ristretto drops access batches its policy
					// goroutine is too busy to take.
					time.Sleep(50 * time.Microsecond)
				}
			}
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := g; i < n; i += 4 {
					s.Insert(newEntry(fmt.Sprintf("%s%d", prefix, i), size))
				}
			})
		}
		wg.Wait()
	}
	fill("small", 0, 2*maxBytes/512, 0)
	small := s.Stats()
	fill("large", 128<<10, 2*maxBytes/(128<<10), 8)
	s.Wait()
	st := s.Stats()
	after := heapAfterGC()
	held := int64(after) - int64(before)
	t.Logf("after small objects: %+v; after large: %+v; heap held %.1f%% of MaxBytes", small, st, 100*float64(held)/maxBytes)
	if small.Keys < maxBytes/2048 {
		t.Fatalf("only %d small keys held, the flood did not fill the store", small.Keys)
	}
	if st.Keys > small.Keys/4 {
		t.Fatalf("%d keys held after the large objects, want them to have replaced most of the %d small ones", st.Keys, small.Keys)
	}
	if st.Bytes+st.Overhead > maxBytes {
		t.Errorf("Bytes+Overhead = %d, want at most MaxBytes %d", st.Bytes+st.Overhead, maxBytes)
	}
	if limit := int64(maxBytes) * 11 / 10; held > limit {
		t.Errorf("heap held by the store = %d bytes, want at most 110%% of MaxBytes (%d)", held, limit)
	}
	runtime.KeepAlive(s)
}

// TestStoreChargesWhatItHolds checks the overhead constants against the
// heap, for small objects, where they matter most: what the store
// charges (Bytes+Overhead) must cover the heap it holds, without
// overcharging by much.
func TestStoreChargesWhatItHolds(t *testing.T) {
	tests := []struct {
		name  string
		entry func(i int) []*Entry
	}{
		{"bare entries", func(i int) []*Entry {
			return []*Entry{newEntry(fmt.Sprintf("GET example.com/p/%d", i), 0)}
		}},
		{"1 KiB bodies", func(i int) []*Entry {
			return []*Entry{newEntry(fmt.Sprintf("GET example.com/p/%d", i), 1000)}
		}},
		{"unique tags", func(i int) []*Entry {
			return []*Entry{newEntry(fmt.Sprintf("GET example.com/p/%d", i), 0,
				tags(fmt.Sprintf("cat_p_%d", i), fmt.Sprintf("cat_p_%d_a", i), fmt.Sprintf("cat_p_%d_b", i), fmt.Sprintf("cat_p_%d_c", i)))}
		}},
		{"shared tags", func(i int) []*Entry {
			return []*Entry{newEntry(fmt.Sprintf("GET example.com/p/%d", i), 0,
				tags("store", "cms_b_header", fmt.Sprintf("cat_c_%d", i%10), fmt.Sprintf("cat_c_%d", i%100)))}
		}},
		{"four variants", func(i int) []*Entry {
			var es []*Entry
			for _, v := range []string{"gzip", "br", "zstd", "<nil>"} {
				es = append(es, newEntry(fmt.Sprintf("GET example.com/p/%d", i), 0, vary([]string{"accept-encoding"}, v)))
			}
			return es
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 10000
			before := heapAfterGC()
			s := newTestStore(t, 64<<20)
			for i := range n {
				for _, e := range tt.entry(i) {
					mustInsert(t, s, e)
				}
			}
			st := s.Stats()
			if st.Keys != n {
				t.Fatalf("Stats = %+v, want all %d keys held", st, n)
			}
			held := int64(heapAfterGC()) - int64(before)
			charged := st.Bytes + st.Overhead
			t.Logf("per key: heap %d bytes, charged %d (Bytes %d, Overhead %d)",
				held/n, charged/n, st.Bytes/n, st.Overhead/n)
			if held > charged {
				t.Errorf("heap held %d > charged %d: the store undercharges", held, charged)
			}
			if held < charged*6/10 {
				t.Errorf("heap held %d < 60%% of charged %d: the store overcharges", held, charged)
			}
			runtime.KeepAlive(s)
		})
	}
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestStoreLookupAllocatesNothing(t *testing.T) {
	s := newTestStore(t, 64<<20)
	mustInsert(t, s, newEntry("GET example.com/", 1000, vary([]string{"accept-encoding", "cookie:store"}, "gzip", "de")))
	mustInsert(t, s, newEntry("GET example.com/", 1000, vary([]string{"accept-encoding", "cookie:store"}, "br", "de")))
	key := []byte("GET example.com/")
	req := request("Accept-Encoding", "br", "Cookie", "store=de")
	var buf []byte
	var hit *Entry
	allocs := testing.AllocsPerRun(1000, func() {
		hit, buf = s.Lookup(key, req, buf)
	})
	if hit == nil {
		t.Fatal("Lookup missed")
	}
	if allocs != 0 {
		t.Fatalf("Lookup allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkStoreLookup(b *testing.B) {
	s := newTestStore(b, 256<<20)
	keys := make([][]byte, 10000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "GET example.com/p/%d", i)
		s.Insert(newEntry(string(keys[i]), 1000, vary([]string{"accept-encoding"}, "gzip")))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := request("Accept-Encoding", "gzip")
		var buf []byte
		var e *Entry
		for i := 0; pb.Next(); i++ {
			if e, buf = s.Lookup(keys[i%len(keys)], req, buf); e == nil {
				b.Error("Lookup missed")
				return
			}
		}
	})
}

// BenchmarkStoreInsert measures Insert under parallel load, with the
// Wait that makes it read-your-write: new keys into a store that grows
// (ristretto's maps with it) or into a full one (each admission evicts),
// and replacements of one of 1000 keys. The entries share one 4 KiB
// body; building one costs an allocation. stored/op is the share stored.
func BenchmarkStoreInsert(b *testing.B) {
	keys := make([]string, 1<<20)
	for i := range keys {
		keys[i] = fmt.Sprintf("GET example.com/p/%d", i)
	}
	body := make([]byte, 4096)
	for _, bc := range []struct {
		name     string
		maxBytes int64
		keys     int // distinct keys written
	}{
		{"new keys, growing", 8 << 30, len(keys)},
		{"new keys, full", 64 << 20, len(keys)},
		{"existing keys", 8 << 30, 1000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newTestStore(b, bc.maxBytes)
			if bc.maxBytes < 1<<30 {
				for _, key := range keys[len(keys)-100000:] {
					s.Insert(&Entry{Key: key, Body: body, ResponseTime: time.Now().UnixNano(), Retain: time.Hour, Size: int64(len(key) + len(body))})
				}
			}
			before := s.Stats().Stores
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := keys[int(n.Add(1))%bc.keys]
					now := time.Now().UnixNano()
					s.Insert(&Entry{Key: key, Body: body, Tags: []string{"store"}, ResponseTime: now, Retain: time.Hour, Size: int64(len(key) + len(body))})
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(s.Stats().Stores-before)/float64(b.N), "stored/op")
		})
	}
}
