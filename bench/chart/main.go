// Command chart draws bench/peers.sh's table as an SVG: one group of
// horizontal bars per scenario, one bar per proxy, for one figure of the
// table CSV (by default CPU µs per request), with the min–max spread over
// runs as a whisker and the ratio to HAProxy as a label. Standard library
// only.
//
// Each group has its own scale (its longest bar fills the width): the
// scenarios differ by orders of magnitude (a 1 KiB cache hit against a whole
// 1 GiB stream), and what a group shows is how the proxies compare within
// it. A dashed line marks HAProxy's value in each group. Rows without the
// figure (skipped, failed) are listed with their status.
//
//	go run ./bench/chart -in bench/results/peers-X.csv -out peers.svg
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// row is one proxy in one scenario.
type row struct {
	proxy, status string
	val, lo, hi   float64 // NaN when absent
	ratio         string
}

type group struct {
	scenario string
	rows     []row
}

func main() {
	in := flag.String("in", "", "table CSV written by bench/peers.sh")
	out := flag.String("out", "", "SVG file to write (default: stdout)")
	metric := flag.String("metric", "cpu_us_per_req", "column to draw")
	unit := flag.String("unit", "µs", "unit of the column, for the labels")
	title := flag.String("title", "CPU per request by scenario and proxy", "chart title")
	note := flag.String("note", "", "second line under the title")
	flag.Parse()
	if *in == "" {
		fatal(fmt.Errorf("-in is required"))
	}
	f, err := os.Open(*in)
	if err != nil {
		fatal(err)
	}
	groups, err := read(f, *metric)
	f.Close()
	if err != nil {
		fatal(err)
	}
	if len(groups) == 0 {
		fatal(fmt.Errorf("%s: no rows", *in))
	}
	var w io.Writer = os.Stdout
	if *out != "" {
		o, err := os.Create(*out)
		if err != nil {
			fatal(err)
		}
		defer o.Close()
		w = o
	}
	if err := draw(w, groups, *title, *note, *unit); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "chart:", err)
	os.Exit(1)
}

// read groups the CSV's rows by scenario, in the order they come.
func read(r io.Reader, metric string) ([]group, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) < 2 {
		return nil, nil
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	for _, need := range []string{"scenario", "proxy", "status", metric} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("no column %q", need)
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var groups []group
	for _, rec := range recs[1:] {
		sc := get(rec, "scenario")
		if len(groups) == 0 || groups[len(groups)-1].scenario != sc {
			groups = append(groups, group{scenario: sc})
		}
		g := &groups[len(groups)-1]
		g.rows = append(g.rows, row{
			proxy:  get(rec, "proxy"),
			status: get(rec, "status"),
			val:    num(get(rec, metric)),
			lo:     num(get(rec, metric+"_min")),
			hi:     num(get(rec, metric+"_max")),
			ratio:  get(rec, metric+"_vs_haproxy"),
		})
	}
	return groups, nil
}

func num(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

var colors = map[string]string{
	"direct": "#9e9e9e", "haproxy": "#1f77b4", "nginx": "#2ca02c",
	"varnish": "#9467bd", "caddy": "#ff7f0e", "edge": "#d62728",
}

const (
	width   = 900
	left    = 170 // scenario / proxy labels
	right   = 230 // value labels
	barH    = 14
	barGap  = 5
	groupGp = 16
	top     = 64
)

func draw(w io.Writer, groups []group, title, note, unit string) error {
	height := top + 30
	for _, g := range groups {
		height += 20 + len(g.rows)*(barH+barGap) + groupGp
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="12" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", esc(title))
	if note != "" {
		fmt.Fprintf(&b, `<text x="12" y="44" fill="#555">%s</text>`+"\n", esc(note))
	}
	span := float64(width - left - right)
	y := top
	for _, g := range groups {
		gmax, base := 0.0, math.NaN()
		for _, r := range g.rows {
			for _, v := range []float64{r.val, r.hi} {
				if !math.IsNaN(v) && v > gmax {
					gmax = v
				}
			}
			if r.proxy == "haproxy" {
				base = r.val
			}
		}
		fmt.Fprintf(&b, `<text x="12" y="%d" font-weight="bold">%s</text>`+"\n", y+12, esc(g.scenario))
		y += 20
		if !math.IsNaN(base) && gmax > 0 { // under the bars and labels
			x := float64(left) + span*base/gmax
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#1f77b4" stroke-dasharray="3 3"/>`+"\n",
				x, y-3, x, y+len(g.rows)*(barH+barGap)-barGap+3)
		}
		secs := unit == "µs" && gmax >= 1e6 // a whole stream: every label of the group in seconds
		for _, r := range g.rows {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end"%s>%s</text>`+"\n",
				left-8, y+barH-3, bold(r.proxy), esc(r.proxy))
			if math.IsNaN(r.val) || gmax <= 0 {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#888" font-style="italic">%s</text>`+"\n",
					left+4, y+barH-3, esc(short(r.status)))
				y += barH + barGap
				continue
			}
			bw := span * r.val / gmax
			color := colors[r.proxy]
			if color == "" {
				color = "#555"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				left, y, bw, barH, color, esc(g.scenario), esc(r.proxy), esc(withUnit(r.val, unit, secs)))
			end := bw
			if !math.IsNaN(r.lo) && !math.IsNaN(r.hi) && r.hi > r.lo {
				x1, x2 := float64(left)+span*r.lo/gmax, float64(left)+span*r.hi/gmax
				my := float64(y) + barH/2.0
				fmt.Fprintf(&b, `<path d="M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f" stroke="#222" stroke-width="1"/>`+"\n",
					x1, my, x2, x1, my-4, my+4, x2, my-4, my+4)
				end = math.Max(end, x2-float64(left))
			}
			label := withUnit(r.val, unit, secs)
			if r.ratio != "" {
				label += " (" + r.ratio + "× HAProxy)"
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d"%s>%s</text>`+"\n", float64(left)+end+6, y+barH-3, bold(r.proxy), esc(label))
			y += barH + barGap
		}
		y += groupGp
	}
	fmt.Fprintf(&b, `<text x="12" y="%d" fill="#555">Bars are scaled within each scenario; whiskers: min–max over runs; dashed line: HAProxy. stream-1g: CPU for the whole body.</text>`+"\n", y+8)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func bold(proxy string) string {
	if proxy == "edge" {
		return ` font-weight="bold"`
	}
	return ""
}

func short(status string) string {
	if r := []rune(status); len(r) > 90 {
		return string(r[:87]) + "…"
	}
	return status
}

func esc(s string) string { return html.EscapeString(s) }

// withUnit prints v with its unit, or µs in seconds.
func withUnit(v float64, unit string, secs bool) string {
	if secs {
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + " s"
	}
	return fmtNum(v) + " " + unit
}

// fmtNum prints 3 significant digits below 1000, thousands separators above.
func fmtNum(v float64) string {
	switch {
	case v >= 1000:
		s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
		var out []byte
		for i := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[i])
		}
		return string(out)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
