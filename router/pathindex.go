package router

import "github.com/valyala/fasthttp"

// pathIndexMin is the number of candidate routes from which a host's
// routes get a pathIndex; below it, trying them in order is cheaper.
const pathIndexMin = 16

// routeList is the routes that can match one host, in configuration
// order, with an index on their path conditions when there are many, so
// that the cost of a lookup does not grow with the number of routes that
// have exact paths or prefixes. Immutable; any goroutine may use it.
type routeList struct {
	routes []*route
	paths  *pathIndex // nil: try routes in order
}

// pathIndex finds, for a path, the routes whose path condition can hold:
// exact paths by map, prefixes by one map lookup per distinct prefix
// length, and the routes without an exact path or prefix (regex or no
// path condition), which are always candidates. Candidates are then tried
// in configuration order, so the first matching route still wins.
type pathIndex struct {
	exact   map[string][]int32
	prefix  map[string][]int32
	lengths []int   // distinct prefix lengths, ascending
	others  []int32 // routes without exact path or prefix
}

func newRouteList(routes []*route) routeList {
	l := routeList{routes: routes}
	if len(routes) < pathIndexMin {
		return l
	}
	idx := &pathIndex{exact: map[string][]int32{}, prefix: map[string][]int32{}}
	seen := map[int]bool{}
	for i, r := range routes {
		switch {
		case r.exactPath != nil:
			idx.exact[string(r.exactPath)] = append(idx.exact[string(r.exactPath)], int32(i))
		case r.pathPrefix != nil:
			idx.prefix[string(r.pathPrefix)] = append(idx.prefix[string(r.pathPrefix)], int32(i))
			if n := len(r.pathPrefix); !seen[n] {
				seen[n] = true
				idx.lengths = append(idx.lengths, n)
			}
		default:
			idx.others = append(idx.others, int32(i))
		}
	}
	insertionSort(idx.lengths)
	l.paths = idx
	return l
}

// match returns the first route of the list that matches the request, or
// nil. buf is scratch space for candidate positions; the grown slice is
// returned for reuse.
func (l routeList) match(ctx *fasthttp.RequestCtx, path []byte, buf []int32) (*route, []int32) {
	if l.paths == nil {
		for _, r := range l.routes {
			if r.matches(ctx, path) {
				return r, buf
			}
		}
		return nil, buf
	}
	idx := l.paths
	cand := append(buf[:0], idx.others...)
	cand = append(cand, idx.exact[string(path)]...)
	for _, n := range idx.lengths {
		if n > len(path) {
			break
		}
		cand = append(cand, idx.prefix[string(path[:n])]...)
	}
	insertionSort(cand)
	for _, i := range cand {
		if r := l.routes[i]; r.matches(ctx, path) {
			return r, cand
		}
	}
	return nil, cand
}

// insertionSort sorts a short slice in place without allocating.
func insertionSort[T int | int32](s []T) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
