package router

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"
)

// randomRoutes builds n routes with a mix of exact paths, prefixes (some
// shared, some nested), regular expressions, no path condition and method
// conditions.
func randomRoutes(rng *rand.Rand, n int) []*route {
	segs := []string{"a", "b", "admin", "catalog", "static", "api", "v1", "x"}
	randPath := func() string {
		p := ""
		for range 1 + rng.IntN(3) {
			p += "/" + segs[rng.IntN(len(segs))]
		}
		return p
	}
	routes := make([]*route, n)
	for i := range routes {
		r := &route{name: "r" + strconv.Itoa(i), index: i}
		switch rng.IntN(10) {
		case 0, 1, 2:
			r.exactPath = []byte(randPath())
		case 3, 4, 5, 6:
			p := randPath()
			if rng.IntN(2) == 0 {
				p += "/"
			}
			r.pathPrefix = []byte(p)
		case 7:
			r.pathRegex = regexp.MustCompile("^/" + segs[rng.IntN(len(segs))] + `/\w+$`)
		}
		if rng.IntN(4) == 0 {
			r.methods = [][]byte{[]byte("POST")}
		}
		routes[i] = r
	}
	return routes
}

func TestPathIndexMatchesLikeAScanInOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	segs := []string{"a", "b", "admin", "catalog", "static", "api", "v1", "x", "zz", ""}
	var ctx fasthttp.RequestCtx
	for trial := range 200 {
		routes := randomRoutes(rng, pathIndexMin+rng.IntN(200))
		indexed := newRouteList(routes)
		if indexed.paths == nil {
			t.Fatal("no index built")
		}
		linear := routeList{routes: routes}
		var buf []int32
		for range 200 {
			path := ""
			for range rng.IntN(5) {
				path += "/" + segs[rng.IntN(len(segs))]
			}
			if path == "" || rng.IntN(5) == 0 {
				path += "/"
			}
			method := []string{"GET", "POST"}[rng.IntN(2)]
			ctx.Request.Header.SetMethod(method)
			want, _ := linear.match(&ctx, []byte(path), nil)
			var got *route
			got, buf = indexed.match(&ctx, []byte(path), buf)
			if got != want {
				t.Fatalf("trial %d: %s %s: index chose %v, scan chose %v", trial, method, path, name(got), name(want))
			}
		}
	}
}

func name(r *route) string {
	if r == nil {
		return "none"
	}
	return r.name
}

// BenchmarkRouteMatch matches a path against 1, 100 and 10,000 routes on
// one host: prefixes like a shop's (/catalog/<n>/), and the matching route
// last, the worst case for a scan.
func BenchmarkRouteMatch(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			routes := make([]*route, n)
			for i := range routes {
				routes[i] = &route{name: "r", index: i, pathPrefix: []byte("/catalog/" + strconv.Itoa(i) + "/")}
			}
			l := newRouteList(routes)
			path := []byte("/catalog/" + strconv.Itoa(n-1) + "/product/42.html")
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod("GET")
			buf := make([]int32, 0, 16)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				var r *route
				r, buf = l.match(&ctx, path, buf)
				if r != routes[n-1] {
					b.Fatal("wrong route")
				}
			}
		})
	}
}
