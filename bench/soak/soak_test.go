package main

import (
	"math"
	"testing"
	"time"
)

// Fast tests of the soak program's own helpers; the soak itself runs only
// through bench/soak.sh.

func TestSlope(t *testing.T) {
	xs := []float64{0, 10, 20, 30}
	ys := []float64{5, 25, 45, 65}
	if got := slope(xs, ys); math.Abs(got-2) > 1e-9 {
		t.Errorf("slope = %v, want 2", got)
	}
	if got := slope([]float64{1, 1}, []float64{3, 4}); got != 0 {
		t.Errorf("slope of a vertical set = %v, want 0", got)
	}
}

func samplesOf(vals ...float64) []sample {
	var s []sample
	for i, v := range vals {
		s = append(s, sample{t: time.Duration(i) * 10 * time.Second, goroutines: v, rss: v})
	}
	return s
}

func TestEvaluate(t *testing.T) {
	gor := series{name: "goroutines", get: func(s sample) float64 { return s.goroutines }, bound: 100}
	// Warm-up ramp, then flat with noise: passes.
	flat := samplesOf(10, 200, 250, 240, 260, 245, 250)
	c := evaluate(flat, 20*time.Second, 60*time.Second, gor)
	if !c.ok() || c.base != 250 || c.max != 260 {
		t.Errorf("flat: ok=%v base=%v max=%v growth=%v trend=%v", c.ok(), c.base, c.max, c.growth, c.trend)
	}
	// A jump above the bound fails the growth check.
	jump := samplesOf(10, 200, 250, 250, 400, 250, 250)
	if c := evaluate(jump, 20*time.Second, 60*time.Second, gor); c.ok() || c.growthOK {
		t.Errorf("jump: ok=%v growth=%v", c.ok(), c.growth)
	}
	// A steady leak within the growth bound fails the trend check:
	// +20 per 10 s after the warm-up is +80 by the end, but 2/s × 600 s
	// over a 10-minute run.
	leak := samplesOf(10, 200, 250, 270, 290, 310, 330)
	c = evaluate(leak, 20*time.Second, 600*time.Second, gor)
	if !c.growthOK || c.trendOK || c.ok() {
		t.Errorf("leak: growthOK=%v trendOK=%v trend=%v", c.growthOK, c.trendOK, c.trend)
	}
	// Idle samples are left out.
	idle := append(samplesOf(10, 200, 250, 250, 250), sample{t: 70 * time.Second, label: "idle", goroutines: 900})
	if c := evaluate(idle, 20*time.Second, 60*time.Second, gor); !c.ok() {
		t.Errorf("idle sample counted: max=%v", c.max)
	}
	// Relative bound.
	rss := series{name: "rss", get: func(s sample) float64 { return s.rss }, bound: 25, relative: true}
	if c := evaluate(samplesOf(10, 100, 100, 110, 120, 100), 20*time.Second, 50*time.Second, rss); !c.ok() || math.Abs(c.growth-20) > 1e-9 {
		t.Errorf("rss +20 %%: ok=%v growth=%v trend=%v", c.ok(), c.growth, c.trend)
	}
	if c := evaluate(samplesOf(10, 100, 100, 110, 130, 100), 20*time.Second, 50*time.Second, rss); c.ok() {
		t.Errorf("rss +30 %%: ok, want a failure")
	}
	// No samples after the warm-up.
	if c := evaluate(samplesOf(1, 2), 60*time.Second, 60*time.Second, gor); c.ok() || !c.missingSamples {
		t.Errorf("no samples: ok=%v", c.ok())
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics([]byte(`# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
process_resident_memory_bytes 2.3456e+07
edge_upstream_retries_total{pool="soak",reason="reset"} 3
edge_upstream_retries_total{pool="soak",reason="timeout"} 4
edge_upstream_retries_total{pool="other",reason="reset"} 1
weird{a="x y} z",b="2"} 7
`))
	if m.get("go_goroutines") != 42 || m.get("process_resident_memory_bytes") != 23456000 || m.get("absent") != -1 {
		t.Errorf("unlabelled: %v", m)
	}
	by := m.by("edge_upstream_retries_total", "reason")
	if by["reset"] != 4 || by["timeout"] != 4 || len(by) != 2 {
		t.Errorf("by reason: %v", by)
	}
	if got := m.by("weird", "b"); got["2"] != 7 {
		t.Errorf("quoted label: %v", got)
	}
}

func TestParseProcStatus(t *testing.T) {
	rss, hwm, err := parseProcStatus([]byte("Name:\tedge\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n"))
	if err != nil || rss != 10<<20 || hwm != 20<<20 {
		t.Errorf("got %d %d %v", rss, hwm, err)
	}
	if _, _, err := parseProcStatus([]byte("Name:\tedge\n")); err == nil {
		t.Error("missing fields: no error")
	}
}

func TestContent(t *testing.T) {
	c := newContent(7)
	for _, kind := range []string{kindSmall, kindB64, kindCache, kindBig} {
		for _, k := range []int{0, 1, 999} {
			b := c.body(kind, k)
			if len(b) != bodySize(kind, k) {
				t.Errorf("%s/%d: %d bytes, want %d", kind, k, len(b), bodySize(kind, k))
			}
		}
	}
	if len(c.body(kindB64, 3)) != 64<<10 {
		t.Error("b64 is not 64 KiB")
	}
	if string(c.body(kindSmall, 5)) != string(newContent(7).body(kindSmall, 5)) {
		t.Error("bodies depend on more than the seed and the path")
	}
	if kind, k, ok := parsePath("/cache/17"); !ok || kind != kindCache || k != 17 {
		t.Errorf("parsePath: %q %d %v", kind, k, ok)
	}
	for _, p := range []string{"/nope/1", "/small/x", "/small", "small/1", "/small/-1"} {
		if _, _, ok := parsePath(p); ok {
			t.Errorf("parsePath(%q) ok", p)
		}
	}
}

func TestRecorderAndCauses(t *testing.T) {
	r := newRecorder()
	r.add("a", "node3:garbage")
	r.add("a", "node1:ok")
	r.add("b", "node2:ok")
	if got := r.get("a"); got != "node3:garbage, node1:ok" {
		t.Errorf("get(a) = %q", got)
	}
	var c causeCount
	for _, o := range []string{r.get("a"), r.get("b"), "", "node3:garbage"} {
		c.add(o)
	}
	if got := c.String(); got != "node3:garbage ×2, origins answered ok ×1, reached no origin ×1" {
		t.Errorf("causes = %q", got)
	}
	// The ring forgets the oldest IDs.
	small := &recorder{m: map[string]string{}, ring: make([]string, 2)}
	small.add("x", "1")
	small.add("y", "2")
	small.add("z", "3")
	if small.get("x") != "" || small.get("z") != "3" {
		t.Errorf("ring: x=%q z=%q", small.get("x"), small.get("z"))
	}
}
