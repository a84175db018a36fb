package cache

import (
	"fmt"
	"regexp"
	"slices"
	"testing"
)

func TestMagentoTags(t *testing.T) {
	tests := []struct {
		pattern string
		tags    []string // nil: not Magento's form
	}{
		{"((^|,)cat_p_42(,|$))", []string{"cat_p_42"}},
		{"((^|,)cat_p_42(,|$))|((^|,)cat_c_7(,|$))|((^|,)cms_b_footer(,|$))", []string{"cat_p_42", "cat_c_7", "cms_b_footer"}},
		{"((^|,)cat_p(,|$))|((^|,)cat_p_42(,|$))", []string{"cat_p", "cat_p_42"}},
		{".*", nil},
		{"", nil},
		{"cat_p_42", nil},
		{"((^|,)cat_p_4.(,|$))", nil},              // a metacharacter in the tag
		{"((^|,)cat_p_42(,|$))|", nil},             // dangling alternative
		{"((^|,)cat_p_42(,|$))|cat_c_7", nil},      // a non-Magento alternative
		{"((^|,)(,|$))", nil},                      // empty tag
		{"((^|,)cat_p_42(,|$))((^|,)x(,|$))", nil}, // no "|" between
		{"((^|,)cat_p_42(,|$)", nil},               // unbalanced
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			tags, ok := magentoTags(tt.pattern)
			if ok != (tt.tags != nil) || !slices.Equal(tags, tt.tags) {
				t.Fatalf("magentoTags = %q, %v; want %q", tags, ok, tt.tags)
			}
			if !ok {
				return
			}
			// The extraction must agree with the regular expression on
			// every tag list, so that the index serves the same purge.
			re := regexp.MustCompile(tt.pattern)
			for _, list := range [][]string{
				{"cat_p_42"}, {"cat_p_420"}, {"xcat_p_42"}, {"cat_c_7", "cat_p_42"}, {"cat_p_42", "store"},
				{"cat_c_70", "cms_b_footer"}, {"cat_p"}, {"store"},
			} {
				e := &Entry{Tags: list}
				if got, want := anyTag(tags)(e), tagsMatch(re)(e); got != want {
					t.Errorf("tags %q: index match %v, regexp match %v", list, got, want)
				}
			}
		})
	}
}

func TestAnyTagWithManyTags(t *testing.T) {
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf("cat_p_%d", i))
	}
	match := anyTag(many)
	if !match(&Entry{Tags: []string{"store", "cat_p_19"}}) {
		t.Error("a listed tag did not match")
	}
	if match(&Entry{Tags: []string{"store", "cat_p_20"}}) {
		t.Error("an unlisted tag matched")
	}
}

func TestTagIndexSharedTags(t *testing.T) {
	x := newTagIndex()
	a := &head{key: "a", variants: []*Entry{{Tags: []string{"store", "cat_p_1"}}}}
	b := &head{key: "b", variants: []*Entry{{Tags: []string{"store", "cat_p_2"}}, {Tags: []string{"store"}}}}
	x.add(a)
	x.add(b)
	if tags, pairs := x.size(); tags != 3 || pairs != 4 {
		t.Fatalf("size = %d tags, %d pairs; want 3, 4", tags, pairs)
	}
	if got := x.heads([]string{"store", "cat_p_1", "unknown"}); len(got) != 2 {
		t.Fatalf("heads(store, cat_p_1) = %d heads, want a and b once each", len(got))
	}
	x.remove(a)
	if got := x.heads([]string{"cat_p_1"}); len(got) != 0 {
		t.Fatalf("heads(cat_p_1) after removing a = %d, want none", len(got))
	}
	if got := x.heads([]string{"store"}); len(got) != 1 || got[0] != b {
		t.Fatalf("heads(store) after removing a = %v, want b", got)
	}
	x.remove(a) // removing twice is harmless
	x.remove(b)
	if tags, pairs := x.size(); tags != 0 || pairs != 0 {
		t.Fatalf("size after removing all = %d tags, %d pairs; want empty", tags, pairs)
	}
}

func TestTagIndexCopiesMapsAfterBursts(t *testing.T) {
	x := newTagIndex()
	var heads []*head
	for i := range 1000 {
		h := &head{key: fmt.Sprint(i), variants: []*Entry{{Tags: []string{fmt.Sprintf("cat_p_%d", i), "store"}}}}
		heads = append(heads, h)
		x.add(h)
	}
	if got := x.peakSeen.Load(); got != 1001 {
		t.Fatalf("peak = %d, want 1001", got)
	}
	shrunk := false
	for _, h := range heads[:900] {
		shrunk = x.remove(h) || shrunk
	}
	if !shrunk {
		t.Fatal("the outer map was not copied after falling below a quarter of its peak")
	}
	if got := x.peakSeen.Load(); got >= 1001/4 {
		t.Fatalf("peak = %d after the copy, want below %d", got, 1001/4)
	}
	x.mu.Lock()
	store := x.tags["store"]
	x.mu.Unlock()
	if len(store.many) != 100 || store.peak >= 1000/4 {
		t.Fatalf("store's set holds %d heads with peak %d, want 100 after a copy", len(store.many), store.peak)
	}
	if got := x.heads([]string{"store"}); len(got) != 100 {
		t.Fatalf("heads(store) = %d, want the 100 left", len(got))
	}
}
