// Command soak is edge's soak test (issue #8, `make bench-soak`): edge runs
// as a separate process for -dur under mixed load — well-behaved keep-alive
// clients, slow clients, aborting clients, connection churn — in front of a
// pool of three origins run here, one of which misbehaves; every -every, the
// memory, goroutines and file descriptors of edge are sampled. The run
// passes when, after the warm-up (the first 20 % of the run), none of them
// grew beyond its bound (directly or as a trend) and no request that edge
// guarantees (keep-alive GETs and HEADs, GETs on new connections) failed.
//
//	go build -o bin/edge ./cmd/edge && go run ./bench/soak -dur 10m
//	bench/soak.sh -dur 2m                    # builds bin/edge first
//
// # Setup
//
// edge (-edge, `edge run -config FILE`) gets a generated configuration: one
// pool "soak" of node1–node3 (round_robin; retries on reset, timeout, 502
// and 503, 2 attempts; passive ejection after 5 failures; active check of
// /health every second; response_header_timeout 1s), a route with
// `cache: {}` for /cache/, a route for POST /upload with
// retry_non_idempotent, and a plain proxy route for the rest; access log
// off. Its stdout and stderr go to edge.log in a temporary run directory,
// kept in -out on failure (with a goroutine dump of edge).
//
// node1 and node2 always answer: /small/<k> (64–511 bytes), /b64/<k>
// (64 KiB), /cache/<k> (2–4 KiB, Cache-Control: public, max-age=2),
// /big/<k> (256 KiB–1 MiB), POST /upload (reads the body, answers its
// length and CRC). Bodies depend on the path only, so a client checks them
// byte for byte. node3 misbehaves on a -bad share of its requests, at random
// among -misbehave: reset (RST, no answer), hang (no answer for
// -hang-min..-hang-max, longer than response_header_timeout), garbage (a
// garbage status line), truncate (half the announced body, then close), 503.
// With -down it is also fully down (listener and connections closed) for
// 10–20 s, first 10–30 s into the run, then every 40–90 s.
//
// # Clients (counted separately)
//
//	get         -conns keep-alive connections, -rate req/s in all: GET small (40 %),
//	            64 KiB (25 %), /cache/ (25 %), HEAD small (10 %)     must succeed
//	churn       -churn-rate GET small, one new connection each            must succeed
//	post        -post-rate POST /upload of 256 B–4 KiB, keep-alive  (must succeed with -post-must-succeed)
//	loris       -slow connections sending the header 1 byte / -loris-every
//	slowread    -slow/2 clients reading /big/ at -slow-read-rate through an 8 KiB receive buffer
//	slowupload  -slow/2 clients sending 256 KiB to /upload at -slow-upload-rate
//	abort       -abort-rate connections dropped mid-header, mid-upload or mid-download (FIN or RST)
//
// A "must succeed" request passes only with status 200 and the exact body
// (for HEAD: the exact Content-Length); every failure is printed with its
// time, error and what the origins did with it (by X-Request-ID), and fails
// the run. The clients speak HTTP/1.1 on raw connections and never resend a
// request on their own.
//
// # Verdict
//
// After the warm-up, for VmRSS (from /proc/<pid>/status), go_goroutines and
// process_open_fds (edge's /metrics): max − value at the end of the warm-up
// ≤ bound (-max-rss-growth percent, -max-goroutine-growth,
// -max-fd-growth), and the least-squares slope of the post-warm-up samples
// × the run's duration ≤ the same bound; and no must-succeed failure; and
// edge still running. Exit status 1 otherwise (130 when interrupted).
//
// Output: a live line per sample; at the end Markdown on stdout (samples,
// classes, checks, verdict), also written to -out/soak-<stamp>.md, and the
// samples as -out/soak-<stamp>.csv.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	dur, every       time.Duration
	warmup           float64
	edge, out        string
	rate             float64
	conns            int
	churnRate        float64
	postRate         float64
	abortRate        float64
	slow             int
	slowReadRate     float64
	slowUploadRate   float64
	lorisEvery       time.Duration
	seed             uint64
	reqTimeout       time.Duration
	maxRSSGrowth     float64
	maxGoroutineGrow float64
	maxFDGrowth      float64
	postMustSucceed  bool
	printFailures    int

	policy                string
	responseHeaderTimeout time.Duration
	readHeaderTimeout     time.Duration
	retryBudget           float64
	retryBudgetMin        int

	badRate        float64
	misbehave      string
	acts           []string
	hangMin        time.Duration
	hangMax        time.Duration
	down           bool
	firstDownMin   time.Duration
	firstDownMax   time.Duration
	downMin        time.Duration
	downMax        time.Duration
	gapMin, gapMax time.Duration
}

func main() {
	os.Exit(run())
}

func parseFlags() (*options, error) {
	o := &options{}
	flag.DurationVar(&o.dur, "dur", 10*time.Minute, "duration of the load")
	flag.DurationVar(&o.every, "every", 10*time.Second, "sampling period")
	flag.Float64Var(&o.warmup, "warmup", 0.2, "warm-up share of the run, excluded from the growth checks")
	flag.StringVar(&o.edge, "edge", "bin/edge", "edge binary (go build -o bin/edge ./cmd/edge)")
	flag.StringVar(&o.out, "out", "bench/results", "results directory (CSV, Markdown; edge's log on failure)")
	flag.Float64Var(&o.rate, "rate", 200, "well-behaved keep-alive GET/HEAD requests per second, in all")
	flag.IntVar(&o.conns, "conns", 16, "well-behaved keep-alive connections")
	flag.Float64Var(&o.churnRate, "churn-rate", 10, "GETs per second on a new connection each")
	flag.Float64Var(&o.postRate, "post-rate", 20, "small POSTs per second")
	flag.Float64Var(&o.abortRate, "abort-rate", 5, "aborted requests per second")
	flag.IntVar(&o.slow, "slow", 4, "slow-loris clients (and half as many slow readers and slow uploaders)")
	flag.Float64Var(&o.slowReadRate, "slow-read-rate", 64<<10, "bytes per second read by a slow reader")
	flag.Float64Var(&o.slowUploadRate, "slow-upload-rate", 32<<10, "bytes per second sent by a slow uploader")
	flag.DurationVar(&o.lorisEvery, "loris-every", 200*time.Millisecond, "time between two bytes of a slow-loris header")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed (bodies, request mix, misbehaviours, down times)")
	flag.DurationVar(&o.reqTimeout, "req-timeout", 10*time.Second, "timeout of a well-behaved request")
	flag.Float64Var(&o.maxRSSGrowth, "max-rss-growth", 25, "bound on VmRSS growth after the warm-up, percent")
	flag.Float64Var(&o.maxGoroutineGrow, "max-goroutine-growth", 100, "bound on goroutine growth after the warm-up")
	flag.Float64Var(&o.maxFDGrowth, "max-fd-growth", 100, "bound on open-fd growth after the warm-up")
	flag.BoolVar(&o.postMustSucceed, "post-must-succeed", false, "count POST failures as must-succeed failures")
	flag.IntVar(&o.printFailures, "print-failures", 50, "failures printed as they happen (all are counted)")
	flag.StringVar(&o.policy, "policy", "round_robin", "pool policy: round_robin or random_two")
	flag.DurationVar(&o.responseHeaderTimeout, "response-header-timeout", time.Second, "the pool's response_header_timeout")
	flag.DurationVar(&o.readHeaderTimeout, "read-header-timeout", 10*time.Second, "server.read_header_timeout (cuts slow-loris headers)")
	flag.Float64Var(&o.retryBudget, "retry-budget", 100, "retries.budget_percent (this test checks robustness, not the budget)")
	flag.IntVar(&o.retryBudgetMin, "retry-budget-min", 100, "retries.budget_min_per_second")
	flag.Float64Var(&o.badRate, "bad", 0.5, "share of node3's requests that misbehave")
	flag.StringVar(&o.misbehave, "misbehave", strings.Join(allActs, ","), "node3's misbehaviours, comma-separated (empty: none)")
	flag.DurationVar(&o.hangMin, "hang-min", 1500*time.Millisecond, "shortest hang of node3")
	flag.DurationVar(&o.hangMax, "hang-max", 3*time.Second, "longest hang of node3")
	flag.BoolVar(&o.down, "down", true, "take node3 fully down for 10–20 s now and then")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/soak [flags]   (edge's soak test; see the package doc)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	o.firstDownMin, o.firstDownMax = 10*time.Second, 30*time.Second
	o.downMin, o.downMax = 10*time.Second, 20*time.Second
	o.gapMin, o.gapMax = 40*time.Second, 90*time.Second
	switch {
	case o.dur < 10*time.Second:
		return nil, errors.New("-dur must be at least 10s")
	case o.every <= 0 || o.every > o.dur:
		return nil, errors.New("-every must be > 0 and at most -dur")
	case o.warmup < 0 || o.warmup >= 1:
		return nil, errors.New("-warmup must be in [0, 1)")
	case o.rate <= 0 || o.conns <= 0 || o.churnRate <= 0 || o.postRate <= 0 || o.abortRate <= 0 || o.slow <= 0:
		return nil, errors.New("-rate, -conns, -churn-rate, -post-rate, -abort-rate and -slow must be > 0")
	case o.slowReadRate <= 0 || o.slowUploadRate <= 0 || o.lorisEvery <= 0:
		return nil, errors.New("-slow-read-rate, -slow-upload-rate and -loris-every must be > 0")
	case o.badRate < 0 || o.badRate > 1:
		return nil, errors.New("-bad must be in [0, 1]")
	case o.hangMin <= o.responseHeaderTimeout || o.hangMax < o.hangMin:
		return nil, errors.New("need -response-header-timeout < -hang-min <= -hang-max")
	case o.policy != "round_robin" && o.policy != "random_two":
		return nil, errors.New("-policy must be round_robin or random_two")
	}
	for _, a := range strings.Split(o.misbehave, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		found := false
		for _, k := range allActs {
			found = found || k == a
		}
		if !found {
			return nil, fmt.Errorf("-misbehave: unknown %q (want some of %s)", a, strings.Join(allActs, ","))
		}
		o.acts = append(o.acts, a)
	}
	return o, nil
}

type runner struct {
	opts    *options
	t0      time.Time // start of the load
	logMu   sync.Mutex
	stamp   string
	rundir  string
	edge    *edgeProc
	admin   string
	listen  string
	hc      *http.Client
	origins []*origin
	load    *load
	samples []sample
	prevAt  time.Duration
	prev    map[string]int64
}

func (r *runner) logf(format string, args ...any) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	t := ""
	if !r.t0.IsZero() {
		t = fmt.Sprintf(" t=%5.1fs", time.Since(r.t0).Seconds())
	}
	fmt.Fprintf(os.Stderr, "[soak %s%s] %s\n", time.Now().Format("15:04:05"), t, fmt.Sprintf(format, args...))
}

func run() int {
	opts, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	// No gzip: the scrapes stay cheap, and edge keeps no compressor for them.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 2}}
	r := &runner{opts: opts, stamp: time.Now().Format("20060102-150405"), hc: hc}
	code, err := r.main()
	if err != nil {
		r.logf("error: %v", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func (r *runner) main() (int, error) {
	o := r.opts
	bin, err := filepath.Abs(o.edge)
	if err != nil {
		return 1, err
	}
	if _, err := os.Stat(bin); err != nil {
		return 1, fmt.Errorf("edge binary: %w (build it: go build -o bin/edge ./cmd/edge)", err)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return 1, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	r.rundir, err = os.MkdirTemp("", "edge-soak-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(r.rundir)

	// Origins.
	c := newContent(o.seed)
	rec := newRecorder()
	for i := range 3 {
		org := newOrigin(fmt.Sprintf("node%d", i+1), i == 2, o, c, rec, o.seed+uint64(i))
		if err := org.start(); err != nil {
			return 1, err
		}
		r.origins = append(r.origins, org)
		defer org.stop()
	}

	// edge.
	if r.listen, err = freePort(); err != nil {
		return 1, err
	}
	if r.admin, err = freePort(); err != nil {
		return 1, err
	}
	cfgPath := filepath.Join(r.rundir, "edge.yaml")
	cfg := edgeConfig(o, r.listen, r.admin, []string{r.origins[0].addr, r.origins[1].addr, r.origins[2].addr})
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return 1, err
	}
	if err := checkConfig(bin, cfgPath); err != nil {
		return 1, err
	}
	logPath := filepath.Join(r.rundir, "edge.log")
	r.edge, err = startEdge(bin, cfgPath, logPath)
	if err != nil {
		return 1, err
	}
	edgeStopped := ""
	defer func() {
		if edgeStopped == "" {
			r.edge.stop()
		}
	}()
	r.logf("edge pid %d on %s (admin %s); origins %s, %s, %s (node3 misbehaves: %s at %.0f %%, down periods: %v); run dir %s",
		r.edge.pid(), r.listen, r.admin, r.origins[0].addr, r.origins[1].addr, r.origins[2].addr,
		strings.Join(o.acts, ","), 100*o.badRate, o.down, r.rundir)
	if err := waitReady(ctx, r.edge, r.admin, r.listen, 15*time.Second); err != nil {
		r.keepLogs()
		return 1, err
	}

	// Load.
	r.load = newLoad(o, r.listen, c, rec, r.logf)
	r.t0 = time.Now()
	r.load.start = r.t0
	r.prev = map[string]int64{}
	r.takeSample("start")
	loadCtx, cancelLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.load.run(loadCtx) })
	if o.down {
		wg.Go(func() { chaos(loadCtx, r.origins[2], o, o.seed, r.logf) })
	}
	r.logf("load started for %s: get %.0f/s on %d conns, churn %.0f/s, post %.0f/s, %d loris, %d slow readers, %d slow uploaders, aborts %.0f/s; warm-up %s",
		o.dur, o.rate, o.conns, o.churnRate, o.postRate, o.slow, max(1, o.slow/2), max(1, o.slow/2), o.abortRate, r.warmEnd())

	interrupted, edgeDied := r.sampleLoop(ctx)
	if !interrupted && !edgeDied {
		r.takeSample("end")
	}
	cancelLoad()
	// Everything left of edge at the end, for a failure's evidence.
	goroutineDump := filepath.Join(r.rundir, "goroutines.txt")
	if r.edge.alive() {
		_ = fetchTo(r.hc, "http://"+r.admin+"/debug/pprof/goroutine?debug=1", goroutineDump)
	}
	finalMetrics, _ := scrape(r.hc, r.admin)
	wg.Wait()
	if !interrupted && !edgeDied && r.edge.alive() {
		// Informational: edge with no client at all for a while.
		if sleepCtx(ctx, 12*time.Second) {
			r.takeSample("idle")
		}
	}
	edgeStopped = r.edge.stop()
	r.logf("edge %s", edgeStopped)

	pass, reasons := r.report(os.Stdout, finalMetrics, edgeDied, interrupted, logPath)
	if !pass {
		r.keepLogs()
		kept := 0
		for _, f := range []string{"goroutines.txt", "heap-warm.pb.gz", "heap-end.pb.gz"} {
			dst := filepath.Join(o.out, "soak-"+r.stamp+"."+f)
			if copyFile(filepath.Join(r.rundir, f), dst) == nil {
				r.logf("kept %s", dst)
				if strings.HasPrefix(f, "heap-") {
					kept++
				}
			}
		}
		if kept == 2 {
			r.logf("heap growth after the warm-up: go tool pprof -sample_index=inuse_space -top -base %s %s %s",
				filepath.Join(o.out, "soak-"+r.stamp+".heap-warm.pb.gz"), o.edge, filepath.Join(o.out, "soak-"+r.stamp+".heap-end.pb.gz"))
		}
	}
	switch {
	case interrupted:
		r.logf("interrupted")
		return 130, nil
	case !pass:
		r.logf("FAIL: %s", strings.Join(reasons, "; "))
		return 1, nil
	}
	r.logf("PASS")
	return 0, nil
}

func (r *runner) warmEnd() time.Duration {
	return time.Duration(float64(r.opts.dur) * r.opts.warmup).Round(time.Second)
}

// sampleLoop samples every -every (and at the end of the warm-up) until the
// run's end; it reports an interruption or edge's death.
func (r *runner) sampleLoop(ctx context.Context) (interrupted, edgeDied bool) {
	end := r.t0.Add(r.opts.dur)
	warm := r.t0.Add(r.warmEnd())
	warmTaken := r.warmEnd() == 0
	next := r.t0.Add(r.opts.every)
	for {
		at := next
		label := ""
		if !warmTaken && !warm.After(at) {
			at, label = warm, "warm-up end"
		}
		if !at.Before(end) {
			at, label = end, "end"
		}
		select {
		case <-ctx.Done():
			return true, false
		case <-r.edge.exited:
			r.logf("edge exited during the run: %s", exitText(r.edge.waitErr))
			return false, true
		case <-time.After(time.Until(at)):
		}
		if label == "end" {
			return false, false
		}
		if label == "warm-up end" {
			warmTaken = true
			if at.Equal(next) {
				next = next.Add(r.opts.every)
			}
		} else {
			next = next.Add(r.opts.every)
		}
		r.takeSample(label)
	}
}

func (r *runner) takeSample(label string) {
	s := sample{t: time.Since(r.t0), label: label, rss: -1, hwm: -1, promRSS: -1, heap: -1, goroutines: -1, fds: -1, procFDs: -1, inflight: -1, edgeCPU: -1, edgePct: -1, selfPct: -1, heapObjects: -1, goSys: -1}
	if label == "start" {
		s.t = 0
	}
	var errs []string
	if rss, hwm, err := procMem(r.edge.pid()); err == nil {
		s.rss, s.hwm = float64(rss), float64(hwm)
	} else {
		errs = append(errs, "proc: "+err.Error())
	}
	s.procFDs = float64(countFDs(r.edge.pid()))
	if m, err := scrape(r.hc, r.admin); err == nil {
		s.promRSS = m.get("process_resident_memory_bytes")
		s.heap = m.get("go_memstats_heap_inuse_bytes")
		s.goroutines = m.get("go_goroutines")
		s.fds = m.get("process_open_fds")
		s.inflight = m.get("edge_http_requests_in_flight")
		s.edgeCPU = m.get("process_cpu_seconds_total")
		s.heapObjects = m.get("go_memstats_heap_objects")
		s.goSys = m.get("go_memstats_sys_bytes")
	} else {
		errs = append(errs, "metrics: "+err.Error())
	}
	for _, o := range r.origins {
		s.originConns += float64(o.conns.Load())
	}
	here := "up"
	if r.origins[2].isDown.Load() {
		here = "down"
	}
	view := "?"
	if st, err := nodeStates(r.hc, r.admin); err == nil {
		view = st["node3"]
	}
	s.node3 = here + "/" + view
	s.done = map[string]int64{}
	s.rates = map[string]float64{}
	dt := (s.t - r.prevAt).Seconds()
	for _, c := range classOrder {
		st := r.load.stats[c]
		s.done[c] = st.done.Load()
		if st.must {
			s.mustFail += st.failed.Load()
		}
		if dt > 0 {
			s.rates[c] = float64(s.done[c]-r.prev[c]) / dt
		}
	}
	s.selfCPU = selfCPU()
	if n := len(r.samples); n > 0 && dt > 0 {
		p := r.samples[n-1]
		if s.edgeCPU >= 0 && p.edgeCPU >= 0 {
			s.edgePct = 100 * (s.edgeCPU - p.edgeCPU) / dt
		}
		s.selfPct = 100 * (s.selfCPU - p.selfCPU) / dt
	}
	r.prev, r.prevAt = s.done, s.t
	switch label {
	case "warm-up end", "end":
		name := "heap-warm.pb.gz"
		if label == "end" {
			name = "heap-end.pb.gz"
		}
		if err := fetchTo(r.hc, "http://"+r.admin+"/debug/pprof/heap", filepath.Join(r.rundir, name)); err != nil {
			errs = append(errs, "heap profile: "+err.Error())
		}
	}
	s.err = strings.Join(errs, "; ")
	r.samples = append(r.samples, s)
	extra := ""
	if label != "" {
		extra = " [" + label + "]"
	}
	if s.err != "" {
		extra += " ERR " + s.err
	}
	r.logf("rss %s hwm %s heap %s goroutines %s fds %s origin-conns %s cpu edge %s soak %s | get %.0f/s churn %.0f/s post %.0f/s slow %.1f/s abort %.1f/s | must-succeed failures %d | node3 %s%s",
		mib(s.rss), mib(s.hwm), mib(s.heap), num(s.goroutines), num(s.fds), num(s.originConns), pct(s.edgePct), pct(s.selfPct),
		s.rates[clsGet], s.rates[clsChurn], s.rates[clsPost], s.rates[clsLoris]+s.rates[clsSlowRead]+s.rates[clsSlowUpload], s.rates[clsAbort],
		s.mustFail, s.node3, extra)
}

// report writes the Markdown report (and the files) and returns the verdict.
func (r *runner) report(stdout io.Writer, m metrics, edgeDied, interrupted bool, logPath string) (bool, []string) {
	o := r.opts
	var b strings.Builder
	w := &b
	fmt.Fprintf(w, "### bench/soak %s\n\n", r.stamp)
	fmt.Fprintf(w, "edge %s under mixed load for %s (warm-up %s, sample every %s, seed %d) · get %.0f/s on %d keep-alive conns, churn %.0f/s, post %.0f/s, %d slow-loris, %d slow readers (%.0f KiB/s), %d slow uploaders (%.0f KiB/s), aborts %.0f/s · pool %s of 3 origins, node3 misbehaves on %.0f %% of requests (%s)%s · %d CPUs, %s.\n\n",
		o.edge, o.dur, r.warmEnd(), o.every, o.seed, o.rate, o.conns, o.churnRate, o.postRate, o.slow,
		max(1, o.slow/2), o.slowReadRate/1024, max(1, o.slow/2), o.slowUploadRate/1024, o.abortRate,
		o.policy, 100*o.badRate, strings.Join(o.acts, ", "), map[bool]string{true: " and is down 10–20 s now and then", false: ""}[o.down],
		runtime.NumCPU(), runtime.Version())

	fmt.Fprintln(w, "#### Samples")
	fmt.Fprintln(w)
	sampleTable(w, r.samples)
	fmt.Fprintln(w)

	fmt.Fprintln(w, "#### Requests by class")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| class | must succeed | finished | ok | failed | outcomes |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---|")
	var mustFailed int64
	for _, c := range classOrder {
		st := r.load.stats[c]
		failed := "–"
		if st.must {
			failed = fmt.Sprint(st.failed.Load())
			mustFailed += st.failed.Load()
		}
		fmt.Fprintf(w, "| %s | %v | %d | %d | %s | %s |\n", c, map[bool]string{true: "yes", false: "no"}[st.must],
			st.done.Load(), st.ok.Load(), failed, strings.ReplaceAll(st.topOutcomes(10), "|", "/"))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Cache hits among GET /cache/: %d. Slow-loris headers cut by edge: %s; completed after read_header_timeout (%s) and still answered: %s.\n",
		r.load.cacheHits.Load(), r.load.lorisCut.String(), o.readHeaderTimeout, r.load.lorisLate.String())
	var acts []string
	for _, org := range r.origins {
		a := org.actions()
		var parts []string
		for _, k := range append([]string{actOK}, allActs...) {
			if a[k] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", k, a[k]))
			}
		}
		acts = append(acts, fmt.Sprintf("%s: %s", org.name, strings.Join(parts, ", ")))
	}
	fmt.Fprintf(w, "Origins (requests, /health excluded): %s.\n", strings.Join(acts, "; "))
	if m != nil {
		fmt.Fprintf(w, "edge counters at the end: retries %s; upstream errors %s; answers %s; client errors %s; retry budget exhausted %s.\n",
			fmtBy(m.by("edge_upstream_retries_total", "reason")), fmtBy(m.by("edge_upstream_errors_total", "kind")),
			fmtBy(m.by("edge_http_requests_total", "code_class")), fmtBy(m.by("edge_http_client_errors_total", "reason")),
			fmtBy(m.by("edge_upstream_retry_budget_exhausted_total", "pool")))
	}
	counts, first := logSummary(logPath, 10)
	fmt.Fprintf(w, "edge's log: %s.\n", fmtCounts(counts))
	if len(first) > 0 {
		fmt.Fprintln(w, "\n```")
		for _, l := range first {
			fmt.Fprintln(w, l)
		}
		fmt.Fprintln(w, "```")
	}
	fmt.Fprintln(w)

	r.load.mu.Lock()
	fails, postFails := r.load.failures, r.load.postFails
	failCauses, postCauses := r.load.causeN.String(), r.load.postCause.String()
	r.load.mu.Unlock()
	if len(fails) > 0 {
		fmt.Fprintf(w, "#### Must-succeed failures (%d; first %d)\n\nBy what the origins did with them (X-Request-ID): %s.\n\n```\n", mustFailed, min(len(fails), 100), failCauses)
		for i, f := range fails {
			if i == 100 {
				break
			}
			fmt.Fprintln(w, f)
		}
		fmt.Fprintln(w, "```")
		fmt.Fprintln(w)
	}
	if len(postFails) > 0 {
		fmt.Fprintf(w, "POST failures (not must-succeed; first %d). By what the origins did: %s.\n\n```\n", min(len(postFails), 20), postCauses)
		for i, f := range postFails {
			if i == 20 {
				break
			}
			fmt.Fprintln(w, f)
		}
		fmt.Fprintln(w, "```")
		fmt.Fprintln(w)
	}

	fmt.Fprintf(w, "#### Checks (after the warm-up, %s; trend = least-squares slope × %s)\n\n", r.warmEnd(), o.dur)
	fmt.Fprintln(w, "| series | at warm-up end | max | growth | bound | trend | bound | |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	checks := []check{
		evaluate(r.samples, r.warmEnd(), o.dur, series{name: "RSS (VmRSS)", unit: "MiB", get: func(s sample) float64 { return s.rss }, bound: o.maxRSSGrowth, relative: true}),
		evaluate(r.samples, r.warmEnd(), o.dur, series{name: "goroutines", get: func(s sample) float64 { return s.goroutines }, bound: o.maxGoroutineGrow}),
		evaluate(r.samples, r.warmEnd(), o.dur, series{name: "open fds", get: func(s sample) float64 { return s.fds }, bound: o.maxFDGrowth}),
	}
	var reasons []string
	for _, c := range checks {
		c.row(w)
		if !c.ok() {
			reasons = append(reasons, c.reason())
		}
	}
	fmt.Fprintln(w)
	if mustFailed > 0 {
		reasons = append(reasons, fmt.Sprintf("%d must-succeed requests failed (by what the origins did: %s; first: %s)", mustFailed, failCauses, fails[0]))
	}
	if edgeDied {
		reasons = append(reasons, "edge exited during the run: "+exitText(r.edge.waitErr))
	}
	if counts["PANIC"] > 0 {
		reasons = append(reasons, fmt.Sprintf("edge logged %d panic lines", counts["PANIC"]))
	}
	if interrupted {
		reasons = append([]string{"interrupted before the end"}, reasons...)
	}
	if n := r.load.lorisLate.count(); n > 0 {
		fmt.Fprintf(w, "Warning (not in the verdict): %d slow-loris request headers took longer than read_header_timeout (%s) to arrive and were answered anyway — edge did not cut them.\n\n", n, o.readHeaderTimeout)
	}
	fmt.Fprintf(w, "CPU used: edge %.1f s, this program (clients and origins) %.1f s, over %s.\n\n", lastEdgeCPU(r.samples), selfCPU(), time.Since(r.t0).Round(time.Second))
	pass := len(reasons) == 0
	if pass {
		fmt.Fprintln(w, "Result: PASS")
	} else {
		fmt.Fprintf(w, "Result: FAIL — %s\n", strings.Join(reasons, "; "))
	}

	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, b.String())
	md := filepath.Join(o.out, "soak-"+r.stamp+".md")
	csvPath := filepath.Join(o.out, "soak-"+r.stamp+".csv")
	if err := os.WriteFile(md, []byte(b.String()), 0o644); err != nil {
		r.logf("writing %s: %v", md, err)
	}
	if f, err := os.Create(csvPath); err == nil {
		writeCSV(f, r.samples)
		f.Close()
	} else {
		r.logf("writing %s: %v", csvPath, err)
	}
	r.logf("results: %s, %s", md, csvPath)
	return pass, reasons
}

func fmtBy(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %s", k, num(math.Round(m[k]))))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func fmtCounts(m map[string]int) string {
	if len(m) == 0 {
		return "empty"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d lines", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// keepLogs copies edge's log to -out (on failure).
func (r *runner) keepLogs() {
	src := filepath.Join(r.rundir, "edge.log")
	dst := filepath.Join(r.opts.out, "soak-"+r.stamp+".edge.log")
	if err := copyFile(src, dst); err == nil {
		r.logf("edge's log kept: %s", dst)
	}
	cfg := filepath.Join(r.rundir, "edge.yaml")
	_ = copyFile(cfg, filepath.Join(r.opts.out, "soak-"+r.stamp+".edge.yaml"))
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// selfCPU is this process's user+system CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func lastEdgeCPU(samples []sample) float64 {
	for i := len(samples) - 1; i >= 0; i-- {
		if samples[i].edgeCPU >= 0 {
			return samples[i].edgeCPU
		}
	}
	return 0
}
