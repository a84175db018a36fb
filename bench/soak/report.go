package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sample is one measurement of edge and of the load.
type sample struct {
	t     time.Duration // since the start of the load
	label string        // "start", "warm-up end", "end", "idle" or ""

	rss, hwm    float64 // VmRSS, VmHWM (bytes)
	promRSS     float64 // process_resident_memory_bytes
	heap        float64 // go_memstats_heap_inuse_bytes
	heapObjects float64 // go_memstats_heap_objects
	goSys       float64 // go_memstats_sys_bytes
	goroutines  float64 // go_goroutines
	fds         float64 // process_open_fds
	procFDs     float64 // entries of /proc/<pid>/fd
	inflight    float64 // edge_http_requests_in_flight
	originConns float64 // open connections at the three origins (edge's, health checks)
	edgeCPU     float64 // process_cpu_seconds_total (cumulative)
	selfCPU     float64 // this program's CPU seconds (cumulative)
	edgePct     float64 // edge's CPU use since the previous sample, percent of one core
	selfPct     float64
	node3       string // "up"/"down" as run here, then edge's view

	done     map[string]int64 // requests finished per class (cumulative)
	rates    map[string]float64
	mustFail int64 // cumulative
	err      string
}

// series is one quantity whose growth is bounded.
type series struct {
	name     string
	unit     string
	get      func(sample) float64
	bound    float64
	relative bool // bound in percent of the value at the end of the warm-up
}

// check is the verdict on one series.
type check struct {
	s              series
	base, max      float64
	maxAt          time.Duration
	growth         float64 // max - base (or percent of base)
	slope          float64 // per second, least squares over the post-warm-up samples
	trend          float64 // slope × run duration (or percent of base)
	n              int     // post-warm-up samples
	growthOK       bool
	trendOK        bool
	trendSkipped   bool
	missingSamples bool
}

// evaluate applies the growth and trend bounds to the samples taken at or
// after warmEnd (idle samples, after the load, are left out). The trend is
// the least-squares slope of those samples extrapolated over the whole run
// (dur): a slow leak that has not reached the bound by the end still fails.
func evaluate(samples []sample, warmEnd, dur time.Duration, s series) check {
	c := check{s: s}
	var xs, ys []float64
	for _, sm := range samples {
		if sm.label == "idle" || sm.t < warmEnd {
			continue
		}
		v := s.get(sm)
		if v < 0 || math.IsNaN(v) {
			continue // not measured
		}
		if len(xs) == 0 {
			c.base = v
			c.max = v
			c.maxAt = sm.t
		}
		if v > c.max {
			c.max, c.maxAt = v, sm.t
		}
		xs = append(xs, sm.t.Seconds())
		ys = append(ys, v)
	}
	c.n = len(xs)
	if c.n == 0 {
		c.missingSamples = true
		return c
	}
	c.growth = c.max - c.base
	if c.n >= 3 {
		c.slope = slope(xs, ys)
		c.trend = c.slope * dur.Seconds()
	} else {
		c.trendSkipped = true
	}
	if s.relative {
		if c.base > 0 {
			c.growth = 100 * c.growth / c.base
			c.trend = 100 * c.trend / c.base
		} else {
			c.missingSamples = true
			return c
		}
	}
	c.growthOK = c.growth <= s.bound
	c.trendOK = c.trendSkipped || c.trend <= s.bound
	return c
}

func (c check) ok() bool { return !c.missingSamples && c.growthOK && c.trendOK }

// slope is the least-squares slope of y over x.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

func (c check) row(w io.Writer) {
	unit := c.s.unit
	val := func(v float64) string {
		if unit == "MiB" {
			return fmt.Sprintf("%.1f MiB", v/(1<<20))
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	grow := func(v float64) string {
		if c.s.relative {
			return fmt.Sprintf("%+.1f %%", v)
		}
		return fmt.Sprintf("%+.0f", v)
	}
	bound := "≤ " + strconv.FormatFloat(c.s.bound, 'f', -1, 64)
	if c.s.relative {
		bound += " %"
	}
	if c.missingSamples {
		fmt.Fprintf(w, "| %s | – | – | – | %s | – | %s | FAIL (no samples) |\n", c.s.name, bound, bound)
		return
	}
	trend := grow(c.trend)
	if c.trendSkipped {
		trend = "n/a (< 3 samples)"
	}
	verdict := "ok"
	if !c.ok() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "| %s | %s | %s (t=%.0fs) | %s | %s | %s | %s | %s |\n",
		c.s.name, val(c.base), val(c.max), c.maxAt.Seconds(), grow(c.growth), bound, trend, bound, verdict)
}

func (c check) reason() string {
	switch {
	case c.missingSamples:
		return c.s.name + ": no usable samples after the warm-up"
	case !c.growthOK:
		return fmt.Sprintf("%s grew by %s after the warm-up (bound %g%s)", c.s.name, c.fmtGrowth(c.growth), c.s.bound, c.pct())
	case !c.trendOK:
		return fmt.Sprintf("%s trends up by %s over the run (slope %.3g/s; bound %g%s)", c.s.name, c.fmtGrowth(c.trend), c.slope, c.s.bound, c.pct())
	}
	return ""
}

func (c check) pct() string {
	if c.s.relative {
		return " %"
	}
	return ""
}

func (c check) fmtGrowth(v float64) string {
	if c.s.relative {
		return fmt.Sprintf("%.1f %%", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// sampleTable writes the samples as a Markdown table.
func sampleTable(w io.Writer, samples []sample) {
	fmt.Fprintln(w, "| t | RSS | HWM | heap | goroutines | fds | edge→origin conns | in flight | edge CPU | soak CPU | get/s | churn/s | post/s | slow/s | abort/s | must-succeed failures | node3 (here/edge) | |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, s := range samples {
		slow := s.rates[clsLoris] + s.rates[clsSlowRead] + s.rates[clsSlowUpload]
		note := s.label
		if s.err != "" {
			note = strings.TrimSpace(note + " " + s.err)
		}
		fmt.Fprintf(w, "| %.0fs | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %.1f | %.1f | %.2f | %.1f | %d | %s | %s |\n",
			s.t.Seconds(), mib(s.rss), mib(s.hwm), mib(s.heap), num(s.goroutines), num(s.fds), num(s.originConns), num(s.inflight), pct(s.edgePct), pct(s.selfPct),
			s.rates[clsGet], s.rates[clsChurn], s.rates[clsPost], slow, s.rates[clsAbort], s.mustFail, s.node3, note)
	}
}

// writeCSV writes the samples as CSV.
func writeCSV(w io.Writer, samples []sample) {
	cols := []string{"t_s", "label", "rss_bytes", "hwm_bytes", "prom_rss_bytes", "heap_inuse_bytes", "goroutines", "open_fds", "proc_fds", "origin_conns", "in_flight", "edge_cpu_pct", "soak_cpu_pct", "heap_objects", "go_sys_bytes"}
	for _, c := range classOrder {
		cols = append(cols, c+"_per_s")
	}
	for _, c := range classOrder {
		cols = append(cols, c+"_total")
	}
	cols = append(cols, "must_succeed_failures", "node3", "error")
	fmt.Fprintln(w, strings.Join(cols, ","))
	for _, s := range samples {
		row := []string{
			fmt.Sprintf("%.1f", s.t.Seconds()), s.label,
			csvNum(s.rss), csvNum(s.hwm), csvNum(s.promRSS), csvNum(s.heap), csvNum(s.goroutines), csvNum(s.fds), csvNum(s.procFDs), csvNum(s.originConns), csvNum(s.inflight),
			fmt.Sprintf("%.1f", s.edgePct), fmt.Sprintf("%.1f", s.selfPct), csvNum(s.heapObjects), csvNum(s.goSys),
		}
		for _, c := range classOrder {
			row = append(row, fmt.Sprintf("%.2f", s.rates[c]))
		}
		for _, c := range classOrder {
			row = append(row, strconv.FormatInt(s.done[c], 10))
		}
		row = append(row, strconv.FormatInt(s.mustFail, 10), s.node3, strconv.Quote(s.err))
		fmt.Fprintln(w, strings.Join(row, ","))
	}
}

func mib(v float64) string {
	if v < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", v/(1<<20))
}

func num(v float64) string {
	if v < 0 {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func csvNum(v float64) string {
	if v < 0 {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func pct(v float64) string {
	if v < 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f %%", v)
}

// failureCause says what the origins did with a failed request: its
// misbehaving attempts ("node3:garbage"), or that every attempt was answered
// well, or that none reached an origin.
func failureCause(origins string) string {
	if origins == "" {
		return "reached no origin"
	}
	var bad []string
	for _, a := range strings.Split(origins, ", ") {
		if a != "" && !strings.HasSuffix(a, ":"+actOK) {
			bad = append(bad, a)
		}
	}
	if len(bad) == 0 {
		return "origins answered ok"
	}
	return strings.Join(bad, ", ")
}

// causeCount counts failures by failureCause.
type causeCount map[string]int

func (c *causeCount) add(origins string) {
	if *c == nil {
		*c = causeCount{}
	}
	(*c)[failureCause(origins)]++
}

// String lists the causes, most frequent first.
func (c causeCount) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return c[keys[i]] > c[keys[j]] || c[keys[i]] == c[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, c[k])
	}
	return strings.Join(parts, ", ")
}
