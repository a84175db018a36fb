package bench

// Benchmarks of the cache (run with `make bench-go`, or
// `go test -run='^$' -bench=Cache -benchmem ./bench/`). As in proxy_test.go,
// client, edge and origin are fasthttp in one process over loopback, so
// allocs/op is edge's own. bench/cache.sh compares cache hits with HAProxy,
// nginx and Varnish.

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/router"
)

const cacheControlHit = "public, max-age=3600"

var (
	hdrCacheStatus = []byte("Cache-Status")
	hitToken       = []byte("hit")
)

// startCountingOrigin is a node that answers every request with the 1 KiB
// body and cacheControl, counting the requests it serves.
func startCountingOrigin(b *testing.B, cacheControl string) (string, *atomic.Int64) {
	var n atomic.Int64
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		n.Add(1)
		ctx.Response.Header.Set("Cache-Control", cacheControl)
		ctx.SetContentType("text/plain")
		ctx.SetBody(body1K)
	}}
	return serveOn(b, srv), &n
}

func serveOn(b *testing.B, srv *fasthttp.Server) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// startEdgeYAML builds and starts edge in process from a configuration
// whose listener is 127.0.0.1:0, with the admin API off; it returns the
// public listener's address.
func startEdgeYAML(b *testing.B, yaml string) string {
	b.Helper()
	cfg, err := config.Parse([]byte(yaml), "bench.yaml", func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	srv, err := router.New(cfg, router.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Shutdown(b.Context()) })
	return srv.Addrs()[0].String()
}

// edgeConfig is one pool of the origin and a catch-all route; routeCache
// is the route's cache section ("" for none).
func edgeConfig(origin, routeCache string) string {
	cfg := `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
access_log: {format: "off"}
cache: {size: 64MiB}
upstreams:
  app:
    policy: round_robin
    nodes: [{address: "` + origin + `"}]
routes:
  - name: app
    proxy: app
`
	if routeCache != "" {
		cfg += "    cache: " + routeCache + "\n"
	}
	return cfg
}

// checkHit reports what is wrong with a response that should be a cache
// hit of the 1 KiB body ("" if nothing).
func checkHit(resp *fasthttp.Response) string {
	switch {
	case resp.StatusCode() != fasthttp.StatusOK:
		return "status " + strconv.Itoa(resp.StatusCode())
	case !bytes.Equal(resp.Body(), body1K):
		return "body of " + strconv.Itoa(len(resp.Body())) + " bytes, want the 1 KiB body"
	case !bytes.Contains(resp.Header.PeekBytes(hdrCacheStatus), hitToken):
		return "Cache-Status " + strconv.Quote(string(resp.Header.PeekBytes(hdrCacheStatus))) + ", want a hit"
	}
	return ""
}

// startWarmCache starts the origin and a caching edge in front of it,
// fetches "/" once (the miss that stores it), then checks that warm
// more requests over client are all hits and that the origin saw one.
func startWarmCache(b *testing.B, client *fasthttp.HostClient, warm int) (url string, origin *atomic.Int64) {
	b.Helper()
	originAddr, hits := startCountingOrigin(b, cacheControlHit)
	addr := startEdgeYAML(b, edgeConfig(originAddr, "{}"))
	client.Addr = addr
	url = "http://" + addr + "/"
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 || !bytes.Equal(resp.Body(), body1K) {
		b.Fatalf("first request (the miss): %d, %d bytes, %v", resp.StatusCode(), len(resp.Body()), err)
	}
	for i := range warm {
		if err := client.Do(req, resp); err != nil {
			b.Fatalf("warm-up request %d: %v", i+2, err)
		}
		if bad := checkHit(resp); bad != "" {
			b.Fatalf("warm-up request %d: %s (origin requests so far: %d)", i+2, bad, hits.Load())
		}
	}
	if n := hits.Load(); n != 1 {
		b.Fatalf("after %d requests the origin saw %d, want 1", warm+1, n)
	}
	return url, hits
}

// BenchmarkCacheHit is edge answering from its cache: a catch-all route
// with `cache: {}` in front of a node that sends the 1 KiB body with
// Cache-Control: public, max-age=3600, loaded by parallel keep-alive
// clients after a warm-up. Every response must be a 200 with the body and
// a Cache-Status hit, and the node must have seen exactly one request.
// allocs/op (-benchmem) is the whole process's, i.e. edge's: fasthttp's
// client allocates nothing per request. cpu-ns/op is the CPU time the
// process (client, edge and kernel work on their behalf) spent per
// request: steadier than ns/op on a busy machine, and what a load test
// with edge pinned to a core measures (with the client's share on top).
func BenchmarkCacheHit(b *testing.B) {
	client := &fasthttp.HostClient{MaxConns: 256, ReadTimeout: 10 * time.Second}
	url, origin := startWarmCache(b, client, 2000)
	var failures atomic.Int64
	var firstFailure atomic.Pointer[string]
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu := time.Now(), processCPU()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(url)
		for pb.Next() {
			var bad string
			if err := client.Do(req, resp); err != nil {
				bad = err.Error()
			} else {
				bad = checkHit(resp)
			}
			if bad != "" {
				failures.Add(1)
				keepFirst(&firstFailure, bad)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d requests were not cache hits of the body; first: %s", n, b.N, *firstFailure.Load())
	}
	if n := origin.Load(); n != 1 {
		b.Fatalf("the origin saw %d requests, want exactly 1 (the first miss)", n)
	}
}

// processCPU returns the CPU time the process has used (user and
// system), in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// keepFirst stores msg in p unless p holds one already. (A function of its
// own, so that only a failure puts a string on the heap.)
func keepFirst(p *atomic.Pointer[string], msg string) { p.CompareAndSwap(nil, &msg) }

// BenchmarkCacheHitHandlerAllocs counts the allocations of edge's request
// handler on the hit path only: requests go one at a time over one
// keep-alive connection while every allocation is recorded in the memory
// profile (runtime.MemProfileRate = 1); handler-allocs/op counts those
// made on a fasthttp connection goroutine under a function of edge's
// router or cache packages — not the client, the origin or edge's
// background goroutines. The target is 0. ns/op here includes the
// profiling and is not a speed figure (BenchmarkCacheHit is).
func BenchmarkCacheHitHandlerAllocs(b *testing.B) {
	client := &fasthttp.HostClient{MaxConns: 1, ReadTimeout: 10 * time.Second}
	url, origin := startWarmCache(b, client, 2000)
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)

	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	// A few profiled requests first, so that one-time costs (the
	// profiler's own bucket tables, lazily grown buffers) are not counted.
	for range 100 {
		if err := client.Do(req, resp); err != nil || checkHit(resp) != "" {
			b.Fatalf("request before measuring: %v %s", err, checkHit(resp))
		}
	}
	before := handlerAllocs()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := client.Do(req, resp); err != nil {
			b.Fatal(err)
		}
		if bad := checkHit(resp); bad != "" {
			b.Fatal(bad)
		}
	}
	b.StopTimer()
	after := handlerAllocs()
	var objects, nbytes int64
	var stacks []allocSite
	for k, a := range after {
		d := a
		if p, ok := before[k]; ok {
			d.objects -= p.objects
			d.bytes -= p.bytes
		}
		if d.objects > 0 {
			objects += d.objects
			nbytes += d.bytes
			stacks = append(stacks, d)
		}
	}
	b.ReportMetric(float64(objects)/float64(b.N), "handler-allocs/op")
	b.ReportMetric(float64(nbytes)/float64(b.N), "handler-B/op")
	// The sites that allocate at least once per 1000 requests. (The GCs
	// that publish the profile empty the sync.Pools, whose refills show
	// up as a few objects in total, i.e. only in short runs.)
	sort.Slice(stacks, func(i, j int) bool { return stacks[i].objects > stacks[j].objects })
	for i, s := range stacks {
		if s.objects*1000 < int64(b.N) {
			break
		}
		b.Logf("allocation site %d: %d objects (%.4f/op), %d bytes in %d requests:\n%s",
			i+1, s.objects, float64(s.objects)/float64(b.N), s.bytes, b.N, s.stack)
	}
	if n := origin.Load(); n != 1 {
		b.Fatalf("the origin saw %d requests, want exactly 1 (the first miss)", n)
	}
}

type allocSite struct {
	objects, bytes int64
	stack          string
}

// handlerAllocs returns the memory profile's cumulative allocations whose
// stack runs through fasthttp's connection serving and edge's router or
// cache package, by stack.
func handlerAllocs() map[string]allocSite {
	// The profile is published by garbage collections: it is up to two
	// cycles old.
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	for {
		n, ok := runtime.MemProfile(recs, true)
		if ok {
			recs = recs[:n]
			break
		}
		recs = make([]runtime.MemProfileRecord, n+100)
	}
	out := map[string]allocSite{}
	for i := range recs {
		r := &recs[i]
		var sb strings.Builder
		conn, edge := false, false
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			switch {
			case strings.HasPrefix(f.Function, "github.com/valyala/fasthttp.(*Server).serveConn"):
				conn = true
			case strings.HasPrefix(f.Function, "github.com/edge-router/edge/router."),
				strings.HasPrefix(f.Function, "github.com/edge-router/edge/cache."):
				edge = true
			}
			sb.WriteString("\t" + f.Function + " " + f.File + ":" + strconv.Itoa(f.Line) + "\n")
			if !more {
				break
			}
		}
		if !conn || !edge {
			continue
		}
		k := sb.String()
		s := out[k]
		s.objects += r.AllocObjects
		s.bytes += r.AllocBytes
		s.stack = k
		out[k] = s
	}
	return out
}

// BenchmarkCacheMissVsProxy puts the cache's other paths beside the plain
// proxy (all parallel keep-alive clients, 1 KiB bodies, every request
// reaching the origin):
//
//	proxy  a route without cache (as BenchmarkEdgeProxy)
//	pass   a cached route, the node answers no-store: lookup, then forward
//	miss   a cached route, a new path per request with max-age=3600:
//	       lookup, forward, store (the 64 MiB store evicts as it fills)
func BenchmarkCacheMissVsProxy(b *testing.B) {
	cases := []struct {
		name, cacheControl, routeCache string
		uniquePaths                    bool
	}{
		{"proxy", "no-store", "", false},
		{"pass", "no-store", "{}", false},
		{"miss", cacheControlHit, "{}", true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			originAddr, origin := startCountingOrigin(b, c.cacheControl)
			addr := startEdgeYAML(b, edgeConfig(originAddr, c.routeCache))
			client := &fasthttp.HostClient{Addr: addr, MaxConns: 256, ReadTimeout: 10 * time.Second}
			prefix := "http://" + addr + "/"
			if c.uniquePaths {
				prefix += "m/"
			}
			var seq atomic.Int64
			do := func(req *fasthttp.Request, resp *fasthttp.Response, uri []byte) ([]byte, string) {
				if c.uniquePaths {
					uri = strconv.AppendInt(append(uri[:0], prefix...), seq.Add(1), 10)
					req.SetRequestURIBytes(uri)
				}
				if err := client.Do(req, resp); err != nil {
					return uri, err.Error()
				}
				if resp.StatusCode() != 200 || !bytes.Equal(resp.Body(), body1K) {
					return uri, "status " + strconv.Itoa(resp.StatusCode()) + ", " + strconv.Itoa(len(resp.Body())) + " bytes"
				}
				return uri, ""
			}
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			req.SetRequestURI(prefix)
			var uri []byte
			for range 2000 {
				var bad string
				if uri, bad = do(req, resp, uri); bad != "" {
					b.Fatalf("warm-up: %s", bad)
				}
			}
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
			served := origin.Load()
			var failures atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				req := fasthttp.AcquireRequest()
				resp := fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI(prefix)
				uri := make([]byte, 0, 64)
				for pb.Next() {
					var bad string
					if uri, bad = do(req, resp, uri); bad != "" {
						failures.Add(1)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			if n := failures.Load(); n > 0 {
				b.Fatalf("%d of %d requests failed", n, b.N)
			}
			if n := origin.Load() - served; n != int64(b.N) {
				b.Fatalf("the origin saw %d requests for %d client requests, want one each", n, b.N)
			}
		})
	}
}
