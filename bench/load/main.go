// Command load is a small HTTP/1.1 load generator for edge's benchmarks
// (bench/run.sh uses it when wrk is not installed).
//
// Each of -c workers owns one keep-alive connection (a fasthttp.HostClient
// with MaxConns 1) and sends GET requests back to back (closed loop), or on a
// fixed schedule when -rate is set. Latencies go into a log-linear histogram
// (≤ 0.8 % error). It runs -warmup plus -d, then prints one line:
//
//	requests=N errors=N non2xx=N rps=X p50_us=X p99_us=X p999_us=X
//
// requests counts responses completed in the measured window (any status),
// errors counts transport failures and timeouts, rps = requests / -d.
// With -rate, a request sent late because the server held up the previous
// one has its latency measured from its scheduled start (no coordinated
// omission); one sent on time, from when it was sent.
//
// Only loopback targets are accepted: this is a benchmark tool, not a load
// tester for other people's servers.
//
//	go run ./bench/load -url http://127.0.0.1:8080/ -c 64 -d 10s
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	target := flag.String("url", "", "target URL (http://, loopback host only)")
	conns := flag.Int("c", 64, "concurrent connections (one worker each)")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 0, "load before the measured window (not counted)")
	rate := flag.Float64("rate", 0, "fixed offered load, req/s over all connections (0 = closed loop)")
	newConn := flag.Bool("new-conn", false, "open a new connection for every request")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout")
	flag.Parse()

	addr, err := loopbackAddr(*target)
	if err == nil && (*conns < 1 || *dur <= 0 || *warmup < 0 || *rate < 0 || *timeout <= 0) {
		err = errors.New("need -c ≥ 1, -d > 0, -warmup ≥ 0, -rate ≥ 0, -timeout > 0")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}

	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*dur)
	var interval time.Duration // per worker, when -rate is set
	if *rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(*conns) / *rate)
	}

	results := make(chan *stats, *conns)
	for i := 0; i < *conns; i++ {
		w := &worker{
			hc: &fasthttp.HostClient{
				Addr:                      addr,
				MaxConns:                  1,
				MaxIdemponentCallAttempts: 1, // count every failure, never retry
				MaxIdleConnDuration:       time.Minute,
				ReadTimeout:               *timeout,
				WriteTimeout:              *timeout,
				NoDefaultUserAgentHeader:  true,
			},
			url: *target, newConn: *newConn, timeout: *timeout,
			measureFrom: measureFrom, end: end,
			interval: interval,
			// spread the workers' schedules over one interval
			first: start.Add(interval * time.Duration(i) / time.Duration(*conns)),
		}
		go func() { results <- w.run() }()
	}

	// Bounded in time: a worker stuck past every timeout is counted as an
	// error and left behind.
	total := &stats{}
	watchdog := time.NewTimer(time.Until(end) + 3*(*timeout) + time.Second)
	for got := 0; got < *conns; got++ {
		select {
		case s := <-results:
			total.merge(s)
		case <-watchdog.C:
			fmt.Fprintf(os.Stderr, "load: %d workers did not stop in time\n", *conns-got)
			total.errors += int64(*conns - got)
			got = *conns
		}
	}
	if total.firstErr != nil {
		fmt.Fprintln(os.Stderr, "load: first error:", total.firstErr)
	}
	fmt.Printf("requests=%d errors=%d non2xx=%d rps=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f\n",
		total.requests, total.errors, total.non2xx,
		float64(total.requests)/dur.Seconds(),
		total.hist.quantileUS(0.50), total.hist.quantileUS(0.99), total.hist.quantileUS(0.999))
	if total.requests == 0 {
		os.Exit(1)
	}
}

// loopbackAddr checks that raw is an http:// URL on a loopback host and
// returns its host:port.
func loopbackAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("-url %q: want http://host[:port]/path", raw)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	ok := strings.EqualFold(host, "localhost")
	if ip := net.ParseIP(host); ip != nil {
		ok = ip.IsLoopback()
	}
	if !ok {
		return "", fmt.Errorf("-url %q: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed", raw)
	}
	return net.JoinHostPort(host, port), nil
}

type worker struct {
	hc          *fasthttp.HostClient
	url         string
	newConn     bool
	timeout     time.Duration
	measureFrom time.Time
	end         time.Time
	interval    time.Duration
	first       time.Time
}

func (w *worker) run() *stats {
	s := &stats{}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(w.url)
	if w.newConn {
		req.SetConnectionClose()
	}
	next := w.first
	for {
		t0 := time.Now()
		if w.interval > 0 {
			if d := next.Sub(t0); d > 0 {
				// On time: latency counts from the actual send, so the
				// timer's wake-up lag (~0.5 ms here) is not charged to the server.
				time.Sleep(d)
				t0 = time.Now()
			} else {
				// Behind schedule because the server held us up: count from
				// when the request should have been sent.
				t0 = next
			}
			next = next.Add(w.interval)
		}
		if !t0.Before(w.end) {
			return s
		}
		err := w.hc.DoTimeout(req, resp, w.timeout)
		if t0.Before(w.measureFrom) {
			continue
		}
		switch {
		case err != nil:
			s.errors++
			if s.firstErr == nil {
				s.firstErr = err
			}
		default:
			s.requests++
			s.hist.record(time.Since(t0))
			if c := resp.StatusCode(); c < 200 || c > 299 {
				s.non2xx++
			}
		}
	}
}

type stats struct {
	requests, errors, non2xx int64
	firstErr                 error
	hist                     histogram
}

func (s *stats) merge(o *stats) {
	s.requests += o.requests
	s.errors += o.errors
	s.non2xx += o.non2xx
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
	for i, n := range o.hist.counts {
		s.hist.counts[i] += n
	}
}

// histogram is a log-linear (HDR-like) histogram of nanoseconds: values
// below 2·subCount are exact; above, each power of two is split into
// subCount linear buckets, so a bucket is at most 1/subCount of its value.
type histogram struct{ counts [64 * subCount]int64 }

const (
	subBits  = 7
	subCount = 1 << subBits
)

func bucketOf(v uint64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return subCount*shift + int(v>>shift)
}

// bucketMid returns the middle of bucket i's value range.
func bucketMid(i int) float64 {
	if i < 2*subCount {
		return float64(i)
	}
	shift := i/subCount - 1
	m := uint64(i - subCount*shift)
	return float64(m<<shift) + float64(uint64(1)<<shift-1)/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := bucketOf(uint64(d))
	if i >= len(h.counts) {
		i = len(h.counts) - 1
	}
	h.counts[i]++
}

// quantileUS returns the q-quantile in microseconds (0 if empty).
func (h *histogram) quantileUS(q float64) float64 {
	var n int64
	for _, c := range h.counts {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var cum int64
	for i, c := range h.counts {
		if cum += c; cum >= rank {
			return bucketMid(i) / 1e3
		}
	}
	return 0
}
