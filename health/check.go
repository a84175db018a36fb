package health

// Active health checks: one goroutine per checked node sends an HTTP/1.1
// request over a fresh connection (Connection: close) every interval,
// jittered by ±10%, and feeds the result to the node's rise/fall state
// machine. The request is written and the response parsed with fasthttp;
// the connection's deadline bounds the whole exchange, dial included.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// Defaults for zero fields of config.HealthCheck.
const (
	defaultCheckInterval = 2 * time.Second
	defaultCheckTimeout  = time.Second
	defaultCheckRise     = 2
	defaultCheckFall     = 3
)

// checkBodyLimit bounds the body read when looking for ExpectBody.
const checkBodyLimit = 64 << 10

// checkReadBuffer is the read buffer of a check's connection; it bounds the
// response header.
const checkReadBuffer = 16 << 10

// checkUserAgent is sent with every check.
const checkUserAgent = "edge-health-check"

// CheckResult is the outcome of one active check. In JSON, Latency is
// "latency_ms", a float number of milliseconds.
type CheckResult struct {
	// Time is when the check started.
	Time time.Time `json:"time"`
	// Status is the response status; 0 when no response was read.
	Status int `json:"status"`
	// Latency is the check's duration, dial to last byte read.
	Latency time.Duration `json:"-"`
	// Error says why the check failed, e.g. "status 503", "timeout after
	// 1s" or a connection error; empty when it passed.
	Error string `json:"error,omitempty"`
	// Passed reports whether the check passed.
	Passed bool `json:"passed"`
}

// MarshalJSON encodes the result with its latency as "latency_ms".
func (c CheckResult) MarshalJSON() ([]byte, error) {
	type plain CheckResult
	return json.Marshal(struct {
		plain
		LatencyMS float64 `json:"latency_ms"`
	}{plain(c), float64(c.Latency) / float64(time.Millisecond)})
}

// checkSpec is a pool's active check with defaults applied; immutable.
type checkSpec struct {
	probe    *probeDef // shared by successive specs while it is unchanged
	interval time.Duration
	rise     int
	fall     int
}

// probeDef is what a check sends and what makes it pass; immutable.
type probeDef struct {
	method   string
	path     string
	host     string // "" means the node's address
	port     int    // 0 means the node's port
	timeout  time.Duration
	expect   []string // ExpectStatus as configured, for comparison
	statuses []statusRange
	body     []byte
	tls      *tls.Config // nil: plain HTTP
	tlsID    string      // identifies tls for comparison
}

// statusRange is an inclusive range of passing statuses.
type statusRange struct{ lo, hi int }

// newCheckSpec applies defaults to hc. The error reports invalid
// expect_status entries, which are left out (the spec is still usable).
func newCheckSpec(hc *config.HealthCheck, tlsCfg *tls.Config, tlsID string) (*checkSpec, error) {
	cs := &checkSpec{
		interval: hc.Interval.D(),
		rise:     hc.Rise,
		fall:     hc.Fall,
	}
	if cs.interval <= 0 {
		cs.interval = defaultCheckInterval
	}
	if cs.rise <= 0 {
		cs.rise = defaultCheckRise
	}
	if cs.fall <= 0 {
		cs.fall = defaultCheckFall
	}
	pd := &probeDef{
		method:  strings.ToUpper(hc.Method),
		path:    hc.Path,
		host:    hc.Host,
		port:    hc.Port,
		timeout: hc.Timeout.D(),
		expect:  slices.Clone(hc.ExpectStatus),
		body:    []byte(hc.ExpectBody),
		tls:     tlsCfg,
		tlsID:   tlsID,
	}
	if pd.method == "" {
		pd.method = fasthttp.MethodGet
	}
	if pd.timeout <= 0 {
		pd.timeout = defaultCheckTimeout
	}
	var err error
	pd.statuses, err = parseExpectStatus(hc.ExpectStatus)
	cs.probe = pd
	return cs, err
}

// equal reports whether two probe definitions send the same request and
// pass on the same responses.
func (d *probeDef) equal(o *probeDef) bool {
	return d.method == o.method && d.path == o.path && d.host == o.host && d.port == o.port &&
		d.timeout == o.timeout && slices.Equal(d.expect, o.expect) && bytes.Equal(d.body, o.body) &&
		(d.tls == nil) == (o.tls == nil) && d.tlsID == o.tlsID
}

// parseExpectStatus parses codes ("200"), classes ("2xx") and ranges
// ("200-399"); an empty list means 2xx and 3xx. Invalid entries are left
// out and reported together.
func parseExpectStatus(list []string) ([]statusRange, error) {
	if len(list) == 0 {
		return []statusRange{{200, 399}}, nil
	}
	var out []statusRange
	var bad []string
	for _, e := range list {
		r, ok := parseStatusEntry(strings.TrimSpace(e))
		if !ok {
			bad = append(bad, strconv.Quote(e))
			continue
		}
		out = append(out, r)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("invalid expect_status %s (want a code like 200, a class like 2xx, or a range like 200-399; they never match)", strings.Join(bad, ", "))
	}
	return out, nil
}

func parseStatusEntry(e string) (statusRange, bool) {
	valid := func(r statusRange) bool { return r.lo >= 100 && r.hi <= 599 && r.lo <= r.hi }
	if len(e) == 3 && (e[1] == 'x' || e[1] == 'X') && (e[2] == 'x' || e[2] == 'X') && e[0] >= '1' && e[0] <= '5' {
		c := int(e[0]-'0') * 100
		return statusRange{c, c + 99}, true
	}
	if lo, hi, ok := strings.Cut(e, "-"); ok {
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		r := statusRange{a, b}
		return r, err1 == nil && err2 == nil && valid(r)
	}
	c, err := strconv.Atoi(e)
	r := statusRange{c, c}
	return r, err == nil && valid(r)
}

// passes reports whether status is expected.
func (d *probeDef) passes(status int) bool {
	for _, r := range d.statuses {
		if status >= r.lo && status <= r.hi {
			return true
		}
	}
	return false
}

// probeTarget is a probeDef applied to one node.
type probeTarget struct {
	def     *probeDef
	addr    string // dial address
	request []byte // the whole request
}

// target builds the dial address and request of d for the node at addr.
func (d *probeDef) target(addr string) probeTarget {
	t := probeTarget{def: d, addr: addr}
	if d.port > 0 {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		t.addr = net.JoinHostPort(host, strconv.Itoa(d.port))
	}
	host := d.host
	if host == "" {
		host = addr
	}
	var req fasthttp.Request
	req.Header.SetMethod(d.method)
	req.Header.SetRequestURI(d.path)
	req.Header.SetHost(host)
	req.Header.SetUserAgent(checkUserAgent)
	req.SetConnectionClose()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := req.Write(bw); err == nil && bw.Flush() == nil {
		t.request = buf.Bytes()
	}
	return t
}

// run performs one check. ctx cancels it (the result is then meaningless).
func (t *probeTarget) run(ctx context.Context) (res CheckResult) {
	start := time.Now()
	res.Time = start.Round(0)
	defer func() { res.Latency = time.Since(start) }()
	if t.request == nil {
		res.Error = "cannot build the check request"
		return res
	}
	timeout := t.def.timeout
	deadline := start.Add(timeout)
	describe := func(what string, err error) string {
		var ne net.Error
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) ||
			(errors.As(err, &ne) && ne.Timeout()) {
			return fmt.Sprintf("timeout after %v (%s)", timeout, what)
		}
		return what + ": " + err.Error()
	}

	dialer := net.Dialer{Deadline: deadline}
	conn, err := dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		res.Error = describe("connect", err)
		return res
	}
	defer conn.Close()
	// Unblock reads and writes at once when the checker stops.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetDeadline(deadline); err != nil {
		res.Error = describe("connect", err)
		return res
	}
	if t.def.tls != nil {
		cfg := t.def.tls.Clone()
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(t.addr)
			if err != nil {
				host = t.addr
			}
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			res.Error = describe("TLS handshake", err)
			return res
		}
		conn = tc
	}
	if _, err := conn.Write(t.request); err != nil {
		res.Error = describe("send request", err)
		return res
	}

	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.StreamBody = true
	resp.SkipBody = t.def.method == fasthttp.MethodHead
	if err := resp.Read(bufio.NewReaderSize(conn, checkReadBuffer)); err != nil {
		res.Error = describe("read response", err)
		return res
	}
	defer resp.CloseBodyStream() //nolint:errcheck // the connection is closed anyway
	res.Status = resp.StatusCode()
	if !t.def.passes(res.Status) {
		res.Error = "status " + strconv.Itoa(res.Status)
		return res
	}
	if len(t.def.body) > 0 {
		var body []byte
		var rerr error
		if s := resp.BodyStream(); s != nil {
			body, rerr = io.ReadAll(io.LimitReader(s, checkBodyLimit))
		}
		if !bytes.Contains(body, t.def.body) {
			if rerr != nil {
				res.Error = describe("read body", rerr)
			} else {
				res.Error = fmt.Sprintf("body does not contain %q", t.def.body)
			}
			return res
		}
	}
	res.Passed = true
	return res
}

// checkersRunning counts running checker goroutines (for tests).
var checkersRunning atomic.Int64

// nodeChecker is the handle of a node's checker goroutine.
type nodeChecker struct {
	cancel context.CancelFunc
	kick   chan struct{}
}

// poke asks the checker to check now (without waiting for its interval).
func (c *nodeChecker) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// startChecker starts the node's checker. Called with r.mu and n.mu held.
func (n *Node) startChecker() {
	ctx, cancel := context.WithCancel(context.Background())
	c := &nodeChecker{cancel: cancel, kick: make(chan struct{}, 1)}
	n.checker = c
	n.p.r.wg.Add(1)
	checkersRunning.Add(1)
	go n.runChecker(ctx, c)
}

// runChecker checks the node at once, then every jittered interval, until
// ctx is cancelled. It skips checks while the node is in maintenance; the
// first check after maintenance decides health at once.
func (n *Node) runChecker(ctx context.Context, c *nodeChecker) {
	defer n.p.r.wg.Done()
	defer checkersRunning.Add(-1)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var target probeTarget
	paused := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-c.kick:
		}
		spec := n.p.cfg.Load().check
		if spec == nil { // being stopped by Sync
			timer.Reset(defaultCheckInterval)
			continue
		}
		if n.AdminState() == Maint {
			paused = true
			timer.Reset(checkJitter(spec.interval))
			continue
		}
		if paused {
			paused = false
			n.mu.Lock()
			n.fresh, n.checkOK, n.checkFail = true, 0, 0
			n.mu.Unlock()
		}
		if target.def != spec.probe {
			target = spec.probe.target(n.key.Address)
		}
		res := target.run(ctx)
		if ctx.Err() != nil {
			return
		}
		n.applyCheck(target.def, res)
		timer.Reset(checkJitter(spec.interval))
	}
}

// checkJitter spreads d uniformly over ±10%.
func checkJitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// applyCheck feeds one result to the rise/fall state machine. A result of
// a probe definition that is no longer the pool's is dropped.
func (n *Node) applyCheck(def *probeDef, res CheckResult) {
	n.mu.Lock()
	defer n.mu.Unlock()
	spec := n.p.cfg.Load().check
	if n.gone || spec == nil || spec.probe != def {
		return
	}
	n.p.r.m.checked(n.key.Pool, n.Name(), res)
	n.last = &res
	if res.Passed {
		n.checkOK++
		n.checkFail = 0
	} else {
		n.checkFail++
		n.checkOK = 0
	}
	now := monoNow()
	if n.fresh {
		n.fresh = false
		if res.Passed {
			n.markUp(now, "first check passed")
		} else {
			n.markDown("first check failed: " + res.Error)
		}
		return
	}
	down := n.healthDown.Load()
	switch {
	case !down && n.checkFail >= spec.fall:
		n.markDown(countNoun(n.checkFail, "failed check") + ": " + res.Error)
	case down && n.checkOK >= spec.rise:
		// Rise passing checks also end a passive ejection: with active
		// checks configured, they decide when the node returns.
		n.endEjection(now)
		n.markUp(now, countNoun(n.checkOK, "passed check"))
	case down && !res.Passed:
		n.downReason = countNoun(n.checkFail, "failed check") + ": " + res.Error
	}
}

// countNoun formats n and a noun, adding "s" unless n is 1.
func countNoun(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
