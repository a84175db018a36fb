package cache

import (
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// tagIndex maps each purge tag to the heads whose variants carry it, so
// that a purge by tag visits only those keys, never the whole cache. A
// head is added before it is handed to ristretto and removed when it
// leaves (Store.exit), so the index holds only resident heads.
//
// Go maps never shrink: a map keeps the slots of its largest size. The
// store charges the outer map's slots by its peak (slotTagBytes each,
// see Store.reserve), and a map is copied once it holds a quarter of its
// peak, so that a burst of tags does not hold memory for good.
type tagIndex struct {
	mu   sync.Mutex
	tags map[string]tagSet
	peak int // len(tags) at its highest since the map was last copied
	// peakSeen mirrors peak for lock-free reads.
	peakSeen atomic.Int64
}

// tagSet holds the heads of one tag. Most tags (a product's, a CMS
// block's) belong to one key, so a single head needs no inner map.
type tagSet struct {
	one  *head
	many map[*head]struct{}
	peak int // len(many) at its highest since it was last copied
}

// minRebuild is the smallest peak worth copying a map for.
const minRebuild = 64

func newTagIndex() *tagIndex {
	return &tagIndex{tags: make(map[string]tagSet)}
}

// add indexes h under every tag of its variants. It reports whether the
// outer map's peak grew.
func (x *tagIndex) add(h *head) (grown bool) {
	if !h.tagged() {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	h.eachTag(func(tag string) {
		s, ok := x.tags[tag]
		switch {
		case !ok:
			// Clone, so that the index does not keep a whole header
			// alive through a tag sliced out of it.
			x.tags[strings.Clone(tag)] = tagSet{one: h}
			if len(x.tags) > x.peak {
				x.peak = len(x.tags)
				x.peakSeen.Store(int64(x.peak))
				grown = true
			}
			return
		case s.one == h:
			return
		case s.many == nil:
			s = tagSet{many: map[*head]struct{}{s.one: {}}}
		}
		s.many[h] = struct{}{}
		s.peak = max(s.peak, len(s.many))
		x.tags[tag] = s
	})
	return grown
}

// remove drops h from every tag of its variants. It reports whether the
// outer map was copied, lowering its peak.
func (x *tagIndex) remove(h *head) (shrunk bool) {
	if !h.tagged() {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	h.eachTag(func(tag string) {
		s, ok := x.tags[tag]
		switch {
		case !ok:
		case s.one == h:
			delete(x.tags, tag)
		case s.many != nil:
			delete(s.many, h)
			switch {
			case len(s.many) == 0:
				delete(x.tags, tag)
			case s.peak >= minRebuild && len(s.many) < s.peak/4:
				x.tags[tag] = tagSet{many: compact(s.many), peak: len(s.many)}
			}
		}
	})
	if x.peak >= minRebuild && len(x.tags) < x.peak/4 {
		x.tags = compact(x.tags)
		x.peak = len(x.tags)
		x.peakSeen.Store(int64(x.peak))
		return true
	}
	return false
}

// compact copies m into a map sized for its contents (maps.Clone keeps
// the original's capacity).
func compact[K comparable, V any](m map[K]V) map[K]V {
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// heads returns the heads carrying any of tags, each once.
func (x *tagIndex) heads(tags []string) []*head {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []*head
	seen := make(map[*head]struct{})
	for _, tag := range tags {
		s, ok := x.tags[tag]
		if !ok {
			continue
		}
		if s.one != nil {
			if _, dup := seen[s.one]; !dup {
				seen[s.one] = struct{}{}
				out = append(out, s.one)
			}
			continue
		}
		for h := range s.many {
			if _, dup := seen[h]; !dup {
				seen[h] = struct{}{}
				out = append(out, h)
			}
		}
	}
	return out
}

// all returns every indexed head, each once.
func (x *tagIndex) all() []*head {
	x.mu.Lock()
	defer x.mu.Unlock()
	seen := make(map[*head]struct{})
	for _, s := range x.tags {
		if s.one != nil {
			seen[s.one] = struct{}{}
		}
		for h := range s.many {
			seen[h] = struct{}{}
		}
	}
	out := make([]*head, 0, len(seen))
	for h := range seen {
		out = append(out, h)
	}
	return out
}

// size reports how many tags and (tag, head) pairs the index holds.
func (x *tagIndex) size() (tags, pairs int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.tags {
		if s.one != nil {
			pairs++
		}
		pairs += len(s.many)
	}
	return len(x.tags), pairs
}

// magentoTags extracts the tags of a purge pattern of the form Magento
// sends in X-Magento-Tags-Pattern, ((^|,)TAG(,|$))|((^|,)TAG2(,|$))…,
// so that it can be served from the tag index. ok is false for any other
// pattern, which must then be evaluated as a regular expression. Tags
// are limited to characters that are literal in a regular expression.
func magentoTags(pattern string) (tags []string, ok bool) {
	const open, close = "((^|,)", "(,|$))"
	for rest := pattern; ; {
		if !strings.HasPrefix(rest, open) {
			return nil, false
		}
		rest = rest[len(open):]
		end := strings.Index(rest, close)
		if end <= 0 || !literalTag(rest[:end]) {
			return nil, false
		}
		tags = append(tags, rest[:end])
		rest = rest[end+len(close):]
		if rest == "" {
			return tags, true
		}
		if rest[0] != '|' {
			return nil, false
		}
		rest = rest[1:]
	}
}

// literalTag reports whether tag has only characters that match
// themselves in a regular expression (Magento's tags are [a-z0-9_]).
func literalTag(tag string) bool {
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == ':' || c == '/' || c == '@' || c == '=') {
			return false
		}
	}
	return true
}

// tagMatcher decides which variants a purge applies to.
type tagMatcher func(e *Entry) bool

// anyTag matches the variants carrying any of tags.
func anyTag(tags []string) tagMatcher {
	if len(tags) <= 8 {
		return func(e *Entry) bool {
			for _, t := range e.Tags {
				for _, want := range tags {
					if t == want {
						return true
					}
				}
			}
			return false
		}
	}
	set := make(map[string]struct{}, len(tags))
	for _, t := range tags {
		set[t] = struct{}{}
	}
	return func(e *Entry) bool {
		for _, t := range e.Tags {
			if _, ok := set[t]; ok {
				return true
			}
		}
		return false
	}
}

// tagsMatch matches the variants whose tags, joined with ",", match re,
// as Varnish's ban obj.http.X-Magento-Tags ~ re does. A variant without
// tags has no such field, and a ban on a missing field matches nothing.
func tagsMatch(re *regexp.Regexp) tagMatcher {
	return func(e *Entry) bool {
		return len(e.Tags) > 0 && re.MatchString(strings.Join(e.Tags, ","))
	}
}

// everything matches every variant.
func everything(*Entry) bool { return true }
