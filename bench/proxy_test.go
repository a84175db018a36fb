// Package bench holds edge's benchmarks: Go benchmarks of the request path
// (this file; run with `make bench-go`) and the load harness (run.sh with
// the load generator in load/; run with `make bench-load`).
//
// The Go benchmarks run a client, the proxy and a node in one process over
// loopback. All three are fasthttp, which allocates nothing per request in
// steady state, so allocs/op is the proxy's own. Compare ns/op only between
// benchmarks of the same run: BenchmarkDirect (no proxy) and
// BenchmarkMinimalProxy (a bare fasthttp pass-through) are the yardsticks.
package bench

import (
	"bytes"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

var body1K = bytes.Repeat([]byte("a"), 1024)

func startOrigin(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetContentType("text/plain")
		ctx.SetBody(body1K)
	}}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func startEdge(b *testing.B, origin string) string {
	return startEdgeYAML(b, `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
upstreams:
  app:
    policy: round_robin
    nodes: [{address: "`+origin+`"}]
routes:
  - name: app
    proxy: app
`)
}

// startMinimalProxy is the floor: a fasthttp pass-through with nothing but
// Connection handling, like ../shared/bench/refproxy.
func startMinimalProxy(b *testing.B, origin string) string {
	hc := &fasthttp.HostClient{Addr: origin, MaxConns: 1024, MaxIdemponentCallAttempts: 1}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Request.Header.Del("Connection")
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error("bad gateway", fasthttp.StatusBadGateway)
			return
		}
		ctx.Response.Header.Del("Connection")
	}}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// drive sends b.N GET requests to addr from parallel clients, checking each
// answer, and reports requests per second.
func drive(b *testing.B, addr string) {
	client := &fasthttp.HostClient{Addr: addr, MaxConns: 256, ReadTimeout: 10 * time.Second}
	// Warm up connections and pools so the measurement is steady state.
	for range 2000 {
		if code, _, err := client.Get(nil, "http://"+addr+"/nocache"); err != nil || code != 200 {
			b.Fatalf("warm-up: %d %v", code, err)
		}
	}
	var failures atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/nocache")
		for pb.Next() {
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 || len(resp.Body()) != len(body1K) {
				failures.Add(1)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, b.N)
	}
}

// BenchmarkDirect is the client talking straight to the node: the limit.
func BenchmarkDirect(b *testing.B) { drive(b, startOrigin(b)) }

// BenchmarkMinimalProxy is a bare fasthttp pass-through proxy: the floor
// edge is compared with.
func BenchmarkMinimalProxy(b *testing.B) { drive(b, startMinimalProxy(b, startOrigin(b))) }

// BenchmarkEdgeProxy is edge's full proxy path: routing, hop-by-hop
// stripping, X-Forwarded-*, request ID, balancing, metrics.
func BenchmarkEdgeProxy(b *testing.B) { drive(b, startEdge(b, startOrigin(b))) }

// BenchmarkProxyHandlerAllocs counts the allocations of edge's handler on
// the proxied (pass-through) path, as BenchmarkCacheHitHandlerAllocs does
// for cache hits: requests one at a time over one keep-alive connection,
// every allocation recorded (runtime.MemProfileRate = 1), counting those
// on a fasthttp connection goroutine under edge's router or cache
// packages. The target is 0 handler-allocs/op; ns/op here includes the
// profiling and is not a speed figure.
func BenchmarkProxyHandlerAllocs(b *testing.B) {
	addr := startEdge(b, startOrigin(b))
	client := &fasthttp.HostClient{Addr: addr, MaxConns: 1, ReadTimeout: 10 * time.Second}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + "/catalog/../nocache?x=1")
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	for range 200 {
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("warm-up: %v %d", err, resp.StatusCode())
		}
	}
	before := handlerAllocs()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 || len(resp.Body()) != len(body1K) {
			b.Fatalf("request: %v %d", err, resp.StatusCode())
		}
	}
	b.StopTimer()
	var objects, nbytes int64
	for k, a := range handlerAllocs() {
		if p, ok := before[k]; ok {
			a.objects -= p.objects
			a.bytes -= p.bytes
		}
		if a.objects > 0 {
			objects += a.objects
			nbytes += a.bytes
			if a.objects*1000 >= int64(b.N) {
				b.Logf("allocation site: %d objects in %d requests:\n%s", a.objects, b.N, a.stack)
			}
		}
	}
	b.ReportMetric(float64(objects)/float64(b.N), "handler-allocs/op")
	b.ReportMetric(float64(nbytes)/float64(b.N), "handler-B/op")
}
