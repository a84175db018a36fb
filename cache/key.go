package cache

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// KeyOptions shape the query part of primary cache keys.
type KeyOptions struct {
	// Query is "keep" (as sent; the default when empty), "sort"
	// (parameters sorted stably by name) or "ignore" (left out).
	Query string
	// IgnoreParams are query parameter names left out of the key,
	// compared as sent (not percent-decoded); a trailing "*" makes a
	// prefix ("utm_*").
	IgnoreParams []string
}

// Key query modes.
const (
	QueryKeep   = "keep"
	QuerySort   = "sort"
	QueryIgnore = "ignore"
)

// Keyer builds primary cache keys (RFC 9111 §2: method and target URI).
// It is immutable: any number of goroutines may use one at once.
type Keyer struct {
	mode     string
	exact    []string
	prefixes []string
}

// NewKeyer returns a Keyer for o, or an error for an unknown query mode
// or an empty parameter name.
func NewKeyer(o KeyOptions) (*Keyer, error) {
	k := &Keyer{mode: o.Query}
	switch o.Query {
	case "":
		k.mode = QueryKeep
	case QueryKeep, QuerySort, QueryIgnore:
	default:
		return nil, fmt.Errorf("cache key: unknown query mode %q", o.Query)
	}
	for _, p := range o.IgnoreParams {
		if base, ok := strings.CutSuffix(p, "*"); ok {
			if base == "" {
				return nil, fmt.Errorf("cache key: ignored parameter %q matches every parameter: use query %q", p, QueryIgnore)
			}
			k.prefixes = append(k.prefixes, base)
			continue
		}
		if p == "" {
			return nil, fmt.Errorf("cache key: empty ignored parameter name")
		}
		k.exact = append(k.exact, p)
	}
	return k, nil
}

// Append appends the primary key of a request to dst: the method ("GET"
// for both GET and HEAD, which a stored GET answers; any other as sent),
// a space, the scheme (lower-cased), "://", the host (lower-cased, a
// trailing dot and the scheme's default port removed: RFC 9110 §4.2.3),
// the path as sent (not percent-decoded; "/" when empty) and the query
// shaped by the options (as sent; or with the ignored and empty
// parameters left out; or those also sorted), without "?" when it ends
// up empty. For example
// "GET https://shop.example/p?a=1&b=2". pathQuery is the origin-form
// request target. It allocates nothing when dst has room (and, for
// "sort", when the query has at most 64 parameters). Safe for concurrent
// use.
func (k *Keyer) Append(dst []byte, method, scheme, host, pathQuery []byte) []byte {
	if bytes.Equal(method, methodHead) {
		method = methodGet
	}
	dst = append(dst, method...)
	dst = append(dst, ' ')
	for _, c := range scheme {
		dst = append(dst, lower(c))
	}
	dst = append(dst, "://"...)
	dst = appendHost(dst, scheme, host)

	path, query := pathQuery, []byte(nil)
	if i := indexByte(pathQuery, '?'); i >= 0 {
		path, query = pathQuery[:i], pathQuery[i+1:]
	}
	if len(path) == 0 {
		dst = append(dst, '/')
	} else {
		dst = append(dst, path...)
	}
	if len(query) == 0 || k.mode == QueryIgnore {
		return dst
	}
	if k.mode == QuerySort {
		return k.appendSorted(dst, query)
	}
	if len(k.exact) == 0 && len(k.prefixes) == 0 {
		dst = append(dst, '?')
		return append(dst, query...)
	}
	mark := len(dst)
	dst = append(dst, '?')
	for len(query) > 0 {
		var p []byte
		p, query = nextParam(query)
		if len(p) == 0 || k.ignored(p) {
			continue
		}
		if len(dst) > mark+1 {
			dst = append(dst, '&')
		}
		dst = append(dst, p...)
	}
	if len(dst) == mark+1 {
		dst = dst[:mark]
	}
	return dst
}

var (
	methodGet  = []byte("GET")
	methodHead = []byte("HEAD")
)

// appendHost appends host lower-cased, without a trailing dot and without
// the default port of scheme.
func appendHost(dst, scheme, host []byte) []byte {
	name, port := host, []byte(nil)
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		name, port = host[:i], host[i+1:]
	}
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	if hasUpper(name) {
		for _, c := range name {
			dst = append(dst, lower(c))
		}
	} else {
		dst = append(dst, name...)
	}
	switch {
	case port == nil:
	case len(port) == 0:
		// "host:" has an empty port: the default (RFC 3986 §3.2.3).
	case equalFold(scheme, "http") && string(port) == "80",
		equalFold(scheme, "https") && string(port) == "443":
	default:
		dst = append(dst, ':')
		dst = append(dst, port...)
	}
	return dst
}

func hasUpper(b []byte) bool {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// nextParam splits the first parameter off a query.
func nextParam(q []byte) (p, rest []byte) {
	if i := indexByte(q, '&'); i >= 0 {
		return q[:i], q[i+1:]
	}
	return q, nil
}

// paramName is the name part of a "name=value" parameter.
func paramName(p []byte) []byte {
	if i := indexByte(p, '='); i >= 0 {
		return p[:i]
	}
	return p
}

// ignored reports whether the options leave parameter p out of the key.
func (k *Keyer) ignored(p []byte) bool {
	name := paramName(p)
	for _, n := range k.exact {
		if string(name) == n {
			return true
		}
	}
	for _, n := range k.prefixes {
		if len(name) >= len(n) && string(name[:len(n)]) == n {
			return true
		}
	}
	return false
}

// span is a parameter's position in a query.
type span struct{ start, end int32 }

// appendSorted appends "?" and the query's kept parameters, sorted stably
// by name, to dst.
func (k *Keyer) appendSorted(dst, query []byte) []byte {
	var stack [64]span
	spans := stack[:0]
	for i := 0; i <= len(query); {
		j := i
		for j < len(query) && query[j] != '&' {
			j++
		}
		if !k.ignored(query[i:j]) {
			spans = append(spans, span{int32(i), int32(j)})
		}
		i = j + 1
	}
	if len(spans) > len(stack) {
		slices.SortStableFunc(spans, func(a, b span) int {
			return bytes.Compare(paramName(query[a.start:a.end]), paramName(query[b.start:b.end]))
		})
	}
	// Insertion sort: stable, in place, and no closure to escape (a no-op
	// after the sort above).
	for i := 1; i < len(spans); i++ {
		s := spans[i]
		name := paramName(query[s.start:s.end])
		j := i
		for j > 0 && bytes.Compare(paramName(query[spans[j-1].start:spans[j-1].end]), name) > 0 {
			spans[j] = spans[j-1]
			j--
		}
		spans[j] = s
	}
	first := true
	for _, s := range spans {
		p := query[s.start:s.end]
		if len(p) == 0 {
			continue
		}
		if first {
			dst = append(dst, '?')
			first = false
		} else {
			dst = append(dst, '&')
		}
		dst = append(dst, p...)
	}
	return dst
}
