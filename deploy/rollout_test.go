package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// A real edge process, real application nodes, real deploy roots.

// rolloutEdgeBuild builds cmd/edge once per test binary.
var rolloutEdgeBuild struct {
	once sync.Once
	path string
	err  error
}

// rolloutEdgeBinary returns the path of a freshly built edge binary. It lives in
// a fixed per-user directory (overwritten by every run, so runs leave one
// file behind, not one per run).
func rolloutEdgeBinary(t *testing.T) string {
	t.Helper()
	rolloutEdgeBuild.once.Do(func() {
		root, err := rolloutModuleRoot()
		if err != nil {
			rolloutEdgeBuild.err = err
			return
		}
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("edge-deploy-rollout-test-%d", os.Getuid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			rolloutEdgeBuild.err = err
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf("edge.%d.tmp", os.Getpid()))
		cmd := exec.Command("go", "build", "-o", tmp, "./cmd/edge")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			rolloutEdgeBuild.err = fmt.Errorf("go build ./cmd/edge: %v\n%s", err, out)
			return
		}
		// A private name per process: a concurrent run cannot swap it.
		final := filepath.Join(dir, fmt.Sprintf("edge.%d", os.Getpid()))
		if err := os.Rename(tmp, final); err != nil {
			rolloutEdgeBuild.err = err
			return
		}
		// Remove what earlier (finished) runs left.
		old, _ := filepath.Glob(filepath.Join(dir, "edge.*"))
		for _, p := range old {
			if p != final && !strings.HasSuffix(p, ".tmp") {
				_ = os.Remove(p) // a running binary is unaffected on Linux
			}
		}
		rolloutEdgeBuild.path = final
	})
	if rolloutEdgeBuild.err != nil {
		t.Fatal(rolloutEdgeBuild.err)
	}
	return rolloutEdgeBuild.path
}

// rolloutModuleRoot walks up from the working directory to go.mod.
func rolloutModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func rolloutFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// rolloutApp is an application node: it serves its deploy root's current
// release, resolving the current symlink on every request (like nginx's
// $realpath_root), and /health answers 200 with the release id read from
// current/RELEASE.
//
// Every other request takes rolloutAppDelay, and counts as straddling when the
// release changed while it was being served: a drained node must be idle
// when it is switched, so a rollout must never cause one.
type rolloutApp struct {
	name, root, addr string
	// stale, when set, is what /health reports instead of the real id:
	// a node whose new release never comes up right.
	stale     atomic.Pointer[string]
	straddled atomic.Int64
}

// rolloutAppDelay keeps requests in flight long enough for a drain to have to
// wait for them.
const rolloutAppDelay = 20 * time.Millisecond

func startRolloutApp(t *testing.T, name, root string) *rolloutApp {
	t.Helper()
	a := &rolloutApp{name: name, root: root}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return a
}

func (a *rolloutApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dir, err := filepath.EvalSymlinks(filepath.Join(a.root, "current"))
	if err != nil {
		http.Error(w, "no current release: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("X-Node", a.name)
	if r.URL.Path == "/health" {
		if s := a.stale.Load(); s != nil {
			fmt.Fprintln(w, *s)
			return
		}
		id, err := os.ReadFile(filepath.Join(dir, "RELEASE"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, strings.TrimSpace(string(id)))
		return
	}
	time.Sleep(rolloutAppDelay)
	http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	if end, _ := filepath.EvalSymlinks(filepath.Join(a.root, "current")); end != dir {
		a.straddled.Add(1)
	}
}

// checkNoStraddle fails the test if a request was in flight on a node
// while its release changed.
func (c *rolloutCluster) checkNoStraddle(t *testing.T) {
	t.Helper()
	for _, a := range c.apps {
		if n := a.straddled.Load(); n > 0 {
			t.Errorf("%s: %d request(s) were in flight while the node's release changed", a.name, n)
		}
	}
}

func (a *rolloutApp) healthURL() string { return "http://" + a.addr + "/health" }

// rolloutRelease writes a release directory: RELEASE and index.html.
func rolloutRelease(t *testing.T, id string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	if err := os.MkdirAll(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"RELEASE":         id + "\n",
		"index.html":      "<h1>release " + id + "</h1>\n",
		"static/app.css":  "body { color: black }\n",
		"static/app.js":   "console.log(" + fmt.Sprintf("%q", id) + ")\n",
		"static/logo.svg": "<svg/>\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// rolloutBuffer is a goroutine-safe bytes.Buffer (edge's log, rollout output).
type rolloutBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *rolloutBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *rolloutBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const rolloutAdminToken = "rollout-test-token"

// rolloutCluster is three application nodes n1..n3, each with its deploy root on
// release v1, behind a real edge process.
type rolloutCluster struct {
	t         *testing.T
	apps      []*rolloutApp
	nodes     []*Node
	edgeAdmin string // http://host:port
	edgeHTTP  string // http://host:port
	edgeLog   *rolloutBuffer
	edge      *EdgeClient
}

func newRolloutCluster(t *testing.T) *rolloutCluster {
	t.Helper()
	bin := rolloutEdgeBinary(t)
	c := &rolloutCluster{t: t, edgeLog: &rolloutBuffer{}}
	v1 := rolloutRelease(t, "v1")
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		root := filepath.Join(t.TempDir(), name)
		n, err := Open(Config{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		tg := LocalTarget(name, n, Options{})
		if err := tg.Prepare(ctx, "v1", Source{Dir: v1}); err != nil {
			t.Fatalf("%s: prepare v1: %v", name, err)
		}
		if err := tg.Activate(ctx, "v1"); err != nil {
			t.Fatalf("%s: activate v1: %v", name, err)
		}
		c.nodes = append(c.nodes, n)
		c.apps = append(c.apps, startRolloutApp(t, name, n.Root()))
	}

	listen, admin := rolloutFreeAddr(t), rolloutFreeAddr(t)
	c.edgeHTTP, c.edgeAdmin = "http://"+listen, "http://"+admin
	var nodes strings.Builder
	for _, a := range c.apps {
		fmt.Fprintf(&nodes, "      - {name: %s, address: %q}\n", a.name, a.addr)
	}
	cfg := fmt.Sprintf(`listeners:
  - address: %q
admin:
  address: %q
  token: %q
server:
  grace_period: 2s
upstreams:
  app:
    policy: round_robin
    nodes:
%s    health_check: {path: /health, interval: 100ms, timeout: 100ms, rise: 2, fall: 3}
routes:
  - name: app
    proxy: app
`, listen, admin, rolloutAdminToken, nodes.String())
	cfgPath := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = c.edgeLog, c.edgeLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("edge log:\n%s", c.edgeLog.String())
		}
	})

	c.edge = NewEdgeClient(c.edgeAdmin, rolloutAdminToken, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("edge exited at start:\n%s", c.edgeLog.String())
		default:
		}
		if resp, err := http.Get(c.edgeAdmin + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if p, err := c.edge.Pool(ctx, "app"); err == nil && rolloutUpCount(p) == 3 && rolloutAllChecked(p) {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge did not report the three nodes up in 10s:\n%s", c.edgeLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

func rolloutUpCount(p EdgePool) int {
	n := 0
	for _, nd := range p.Nodes {
		if nd.State == EdgeStateUp {
			n++
		}
	}
	return n
}

// rolloutAllChecked reports whether every node passed at least one active check.
func rolloutAllChecked(p EdgePool) bool {
	for _, nd := range p.Nodes {
		if nd.Health != "up" {
			return false
		}
	}
	return true
}

func (c *rolloutCluster) rolloutNodes() []RolloutNode {
	var out []RolloutNode
	for i, a := range c.apps {
		out = append(out, RolloutNode{Target: LocalTarget(a.name, c.nodes[i], Options{}), HealthURL: a.healthURL()})
	}
	return out
}

const rolloutAgentToken = "agent-test-token"

// agent starts the deploy agent of node i and returns its URL.
func (c *rolloutCluster) agent(i int) string {
	srv := httptest.NewServer(NewAgent(c.nodes[i], rolloutAgentToken))
	c.t.Cleanup(srv.Close)
	return srv.URL
}

// remoteNodes are the nodes with HTTP targets over their deploy agents.
func (c *rolloutCluster) remoteNodes() []RolloutNode {
	var out []RolloutNode
	for i, a := range c.apps {
		out = append(out, RolloutNode{Target: HTTPTarget(a.name, c.agent(i), rolloutAgentToken, nil), HealthURL: a.healthURL()})
	}
	return out
}

func (c *rolloutCluster) current(i int) string {
	c.t.Helper()
	st, err := c.nodes[i].Status()
	if err != nil {
		c.t.Fatalf("%s: status: %v", c.apps[i].name, err)
	}
	return st.Current
}

// servedRelease is the release id the node's current symlink points to,
// as the application sees it.
func (c *rolloutCluster) servedRelease(i int) string {
	c.t.Helper()
	dir, err := filepath.EvalSymlinks(filepath.Join(c.nodes[i].Root(), "current"))
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "RELEASE"))
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// rolloutLoad GETs a page through edge from several goroutines until stopped, and
// counts answers that are not 200 with the page (or transport errors).
type rolloutLoad struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	ok     atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	errs   []string
}

func startRolloutLoad(url string, workers int) *rolloutLoad {
	l := &rolloutLoad{stop: make(chan struct{})}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true},
	}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					l.fail("reading: " + err.Error())
				case resp.StatusCode != http.StatusOK:
					l.fail(fmt.Sprintf("status %d from %s: %s", resp.StatusCode, resp.Header.Get("X-Node"), bytes.TrimSpace(body)))
				case !bytes.Contains(body, []byte("<h1>release ")):
					l.fail(fmt.Sprintf("unexpected body from %s: %q", resp.Header.Get("X-Node"), body))
				default:
					l.ok.Add(1)
				}
			}
		})
	}
	return l
}

func (l *rolloutLoad) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
	l.mu.Unlock()
}

// finish stops the load and checks that nothing failed and enough ran.
func (l *rolloutLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d request(s) failed under the rollout (ok: %d); first: %q", n, l.ok.Load(), l.errs)
	}
	if l.ok.Load() < 20 {
		t.Errorf("only %d requests succeeded: the load did not run", l.ok.Load())
	}
	t.Logf("load: %d requests ok, %d failed", l.ok.Load(), l.failed.Load())
}

// watchUp polls edge during a rollout and records the fewest nodes up.
type rolloutUpWatch struct {
	stop chan struct{}
	done chan struct{}
	min  atomic.Int64
}

func (c *rolloutCluster) watchUp() *rolloutUpWatch {
	w := &rolloutUpWatch{stop: make(chan struct{}), done: make(chan struct{})}
	w.min.Store(99)
	go func() {
		defer close(w.done)
		for {
			if p, err := c.edge.Pool(context.Background(), "app"); err == nil {
				if n := int64(rolloutUpCount(p)); n < w.min.Load() {
					w.min.Store(n)
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *rolloutUpWatch) finish() int64 {
	close(w.stop)
	<-w.done
	return w.min.Load()
}

// ---------------------------------------------------------------------------
// End-to-end tests.

func TestRolloutUnderLoad(t *testing.T) {
	c := newRolloutCluster(t)
	v2 := rolloutRelease(t, "v2")
	l := startRolloutLoad(c.edgeHTTP+"/index.html", 4)
	w := c.watchUp()
	time.Sleep(300 * time.Millisecond) // traffic on every node first

	// n1 and n2 are local deploy roots (with -config: an activate hook),
	// n3 is deployed through its agent.
	cfgFile := filepath.Join(t.TempDir(), "deploy.yaml")
	if err := os.WriteFile(cfgFile, []byte("activate_hooks:\n  - {name: announce, run: 'echo hello from $RELEASE_ID'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-config", cfgFile,
		"-edge", c.edgeAdmin, "-edge-token", rolloutAdminToken, "-pool", "app", "-agent-token", rolloutAgentToken,
		"-dir", v2, "-id", "v2", "-drain-timeout", "5s", "-verify-timeout", "5s",
	}
	for i, a := range c.apps[:2] {
		args = append(args, "-node", fmt.Sprintf("name=%s,dir=%s,health=%s", a.name, c.nodes[i].Root(), a.healthURL()))
	}
	args = append(args, "-node", fmt.Sprintf("name=n3,agent=%s,health=%s", c.agent(2), c.apps[2].healthURL()))
	var stdout, stderr rolloutBuffer
	t0 := time.Now()
	code := RunRollout(context.Background(), args, &stdout, &stderr)
	took := time.Since(t0)
	time.Sleep(300 * time.Millisecond) // traffic on every node after
	minUp := w.finish()
	l.finish(t)
	c.checkNoStraddle(t)
	t.Logf("rollout took %v; output:\n%s", took, stdout.String())
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}

	for i, a := range c.apps {
		if cur := c.current(i); cur != "v2" {
			t.Errorf("%s: current = %q, want v2", a.name, cur)
		}
		if got := c.servedRelease(i); got != "v2" {
			t.Errorf("%s: serves %q, want v2", a.name, got)
		}
	}
	p, err := c.edge.Pool(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range p.Nodes {
		if n.State != EdgeStateUp || n.AdminState != EdgeReady {
			t.Errorf("edge: %s is %s/%s after the rollout, want up/ready", n.Name, n.State, n.AdminState)
		}
	}
	if minUp < 2 {
		t.Errorf("at one point only %d node(s) were up in edge, want ≥2 at all times", minUp)
	}
	out := stdout.String()
	for _, a := range c.apps {
		for _, step := range append([]string{StepPreflight, StepPrepare}, rolloutNodeSteps...) {
			re := regexp.MustCompile(`(?m)^\[\s*\d+\.\ds\] ` + a.name + `\s+` + step + `\s+ok\b`)
			if !re.MatchString(out) {
				t.Errorf("output has no %q line for %s", step+" ok", a.name)
			}
		}
	}
	// Nodes are done one at a time, in order.
	if i1, i2 := strings.Index(out, "n1  healthy"), strings.Index(out, "n2  drain"); i1 < 0 || i2 < 0 || i1 > i2 {
		t.Errorf("n2 was drained before n1 was back (n1 healthy at %d, n2 drain at %d)", i1, i2)
	}
	for _, name := range []string{"n1", "n2"} {
		if !strings.Contains(out, name+" | hello from v2") {
			t.Errorf("output lacks %s's activate hook output", name)
		}
	}
	if !strings.Contains(out, "summary: release v2, pool app: ok") {
		t.Errorf("output has no summary")
	}
	// Through edge, every node now serves v2.
	for range 6 {
		resp, err := http.Get(c.edgeHTTP + "/index.html")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "release v2") {
			t.Errorf("%s served %q after the rollout", resp.Header.Get("X-Node"), body)
		}
	}
}

func TestRolloutVerifyFailureRollsBackAndStops(t *testing.T) {
	c := newRolloutCluster(t)
	v2 := rolloutRelease(t, "v2")
	stale := "v1"
	c.apps[1].stale.Store(&stale) // n2's health never reports the new release

	l := startRolloutLoad(c.edgeHTTP+"/index.html", 4)
	w := c.watchUp()
	time.Sleep(200 * time.Millisecond)
	var out rolloutBuffer
	t0 := time.Now()
	res, err := Rollout(context.Background(), RolloutOptions{
		Edge: c.edgeAdmin, EdgeToken: rolloutAdminToken, Pool: "app",
		Nodes:     c.remoteNodes(), // rollback through the agents' HTTP API
		ReleaseID: "v2", Source: Source{Dir: v2},
		DrainTimeout: 5 * time.Second, VerifyTimeout: time.Second, HealthyTimeout: 5 * time.Second,
		Out: &out,
	})
	took := time.Since(t0)
	time.Sleep(200 * time.Millisecond)
	minUp := w.finish()
	l.finish(t)
	c.checkNoStraddle(t)
	t.Logf("rollout took %v; output:\n%s", took, out.String())

	if err == nil {
		t.Fatal("rollout succeeded; want a verify failure at n2")
	}
	var re *RolloutError
	if !errors.As(err, &re) || re.Node != "n2" || re.Step != StepVerify {
		t.Fatalf("error %v (%T), want a *RolloutError at n2, verify", err, err)
	}
	if !strings.Contains(err.Error(), "n2") || !strings.Contains(err.Error(), "verify") {
		t.Errorf("error %q does not name n2 and verify", err)
	}
	if res.Err != err || res.ReleaseID != "v2" {
		t.Errorf("result: Err %v, ReleaseID %q", res.Err, res.ReleaseID)
	}
	for i, want := range []string{"v2", "v1", "v1"} {
		if cur := c.current(i); cur != want {
			t.Errorf("%s: current = %q, want %q", c.apps[i].name, cur, want)
		}
		if got := c.servedRelease(i); got != want {
			t.Errorf("%s: serves %q, want %q", c.apps[i].name, got, want)
		}
	}
	if !res.Nodes[1].RolledBack || res.Nodes[0].RolledBack || res.Nodes[2].RolledBack {
		t.Errorf("RolledBack = %v %v %v, want false true false", res.Nodes[0].RolledBack, res.Nodes[1].RolledBack, res.Nodes[2].RolledBack)
	}
	if st, ok := res.Nodes[1].Step(StepRestore); !ok || st.Err != nil {
		t.Errorf("n2 was not returned to service: %+v", st)
	}
	for _, s := range res.Nodes[2].Steps {
		if s.Step != StepPreflight && s.Step != StepPrepare {
			t.Errorf("n3 went through step %s; it must not be touched", s.Step)
		}
	}
	p, err := c.edge.Pool(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range p.Nodes {
		if n.State != EdgeStateUp || n.AdminState != EdgeReady {
			t.Errorf("edge: %s is %s/%s after the failed rollout, want up/ready", n.Name, n.State, n.AdminState)
		}
	}
	if minUp < 2 {
		t.Errorf("at one point only %d node(s) were up in edge, want ≥2", minUp)
	}
	if !strings.Contains(out.String(), "FAILED at verify, rolled back to v1, back in service") {
		t.Errorf("summary does not report n2's rollback")
	}
}

func TestRolloutPreflightRefusesNodeNotUp(t *testing.T) {
	c := newRolloutCluster(t)
	ctx := context.Background()
	if _, err := c.edge.SetNodeState(ctx, "app", "n2", EdgeDrain, time.Minute, false); err != nil {
		t.Fatal(err)
	}
	v2 := rolloutRelease(t, "v2")
	var out rolloutBuffer
	res, err := Rollout(ctx, RolloutOptions{
		Edge: c.edgeAdmin, EdgeToken: rolloutAdminToken, Pool: "app",
		Nodes: c.rolloutNodes(), ReleaseID: "v2", Source: Source{Dir: v2}, Out: &out,
	})
	t.Logf("output:\n%s", out.String())
	var re *RolloutError
	if !errors.As(err, &re) || re.Step != StepPreflight || re.Node != "n2" {
		t.Fatalf("error %v, want a preflight refusal naming n2", err)
	}
	if !strings.Contains(err.Error(), "draining") {
		t.Errorf("error %q does not say n2 is draining", err)
	}
	for i := range c.apps {
		if cur := c.current(i); cur != "v1" {
			t.Errorf("%s: current = %q, want v1", c.apps[i].name, cur)
		}
		if _, err := os.Stat(filepath.Join(c.nodes[i].Root(), "releases", "v2")); !os.IsNotExist(err) {
			t.Errorf("%s: release v2 was prepared (stat: %v)", c.apps[i].name, err)
		}
		if _, ok := res.Nodes[i].Step(StepPrepare); ok {
			t.Errorf("%s: prepared despite the refusal", c.apps[i].name)
		}
	}
	p, err := c.edge.Pool(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range p.Nodes {
		if want := map[bool]string{true: EdgeDrain, false: EdgeReady}[n.Name == "n2"]; n.AdminState != want {
			t.Errorf("edge: %s admin state %s, want %s", n.Name, n.AdminState, want)
		}
	}

	// Once n2 is back, a dry run checks, prints the plan and changes nothing.
	if _, err := c.edge.SetNodeState(ctx, "app", "n2", EdgeReady, 0, false); err != nil {
		t.Fatal(err)
	}
	args := []string{"-edge", c.edgeAdmin, "-edge-token", rolloutAdminToken, "-pool", "app", "-dir", v2, "-id", "v2", "-dry-run"}
	for i, a := range c.apps {
		args = append(args, "-node", fmt.Sprintf("name=%s,dir=%s,health=%s", a.name, c.nodes[i].Root(), a.healthURL()))
	}
	var stdout, stderr rolloutBuffer
	if code := RunRollout(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	t.Logf("dry run:\n%s", stdout.String())
	for _, want := range []string{"plan for release v2", "n1", "n2", "n3", "DRAIN", "VERIFY", c.apps[1].healthURL()} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
	for i := range c.apps {
		if cur := c.current(i); cur != "v1" {
			t.Errorf("dry run: %s: current = %q, want v1", c.apps[i].name, cur)
		}
		if _, err := os.Stat(filepath.Join(c.nodes[i].Root(), "releases", "v2")); !os.IsNotExist(err) {
			t.Errorf("dry run: %s: release v2 exists (stat: %v)", c.apps[i].name, err)
		}
	}
	if p, err := c.edge.Pool(ctx, "app"); err != nil || rolloutUpCount(p) != 3 {
		t.Errorf("dry run: edge pool after: %+v, %v", p, err)
	}
}

// ---------------------------------------------------------------------------
// Unit tests: flags, validation, the edge client and the HTTP target
// against fakes.

func TestRolloutNodeFlag(t *testing.T) {
	ns, err := parseRolloutNode("name=n1,agent=http://10.0.0.1:9902,health=http://10.0.0.1:8080/health,edge=web1")
	if err != nil || ns != (rolloutNodeSpec{name: "n1", agent: "http://10.0.0.1:9902", health: "http://10.0.0.1:8080/health", edge: "web1"}) {
		t.Errorf("got %+v, %v", ns, err)
	}
	for _, bad := range []string{
		"agent=http://x,health=http://y",        // no name
		"name=a,health=http://y",                // no agent or dir
		"name=a,agent=http://x,dir=/d,health=h", // both
		"name=a,dir=/d",                         // no health
		"name=a,dir=/d,health=h,color=blue",     // unknown key
		"name=a,name=b,dir=/d,health=h",         // twice
		"name=a,dir,health=h",                   // not key=value
	} {
		if _, err := parseRolloutNode(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	var stderr bytes.Buffer
	if code := RunRollout(context.Background(), []string{"-pool", "app", "-node", "name=a,dir=/d,health=h"}, io.Discard, &stderr); code != 2 {
		t.Errorf("no source: exit %d, want 2 (%s)", code, stderr.String())
	}
}

func TestRolloutValidation(t *testing.T) {
	tg := HTTPTarget("a", "http://127.0.0.1:1", "", nil)
	_, err := Rollout(context.Background(), RolloutOptions{
		Edge: "http://127.0.0.1:1", Pool: "app", ReleaseID: "../x",
		Nodes:  []RolloutNode{{Target: tg}, {Target: tg, HealthURL: "h"}},
		Source: Source{Reader: strings.NewReader("")},
	})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"invalid release id", "no health URL", "listed twice", "Reader"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	id := NewReleaseID(time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600)))
	if !regexp.MustCompile(`^20260304T040607Z-[0-9a-f]{7}$`).MatchString(id) || !ValidReleaseID(id) {
		t.Errorf("NewReleaseID = %q", id)
	}
	for s, want := range map[string]bool{"v1": true, "v1\n": true, `{"release":"v1"}`: true, "v10": false, "v1.2": false, "xv1": false, "": false} {
		if got := containsReleaseID(s, "v1"); got != want {
			t.Errorf("containsReleaseID(%q, v1) = %v", s, got)
		}
	}
}

// rolloutFakeEdge mimics edge's pools admin API for one pool.
type rolloutFakeEdge struct {
	mu       sync.Mutex
	nodes    map[string]*EdgeNode
	inflight int64
	calls    []string
}

func newRolloutFakeEdge(t *testing.T) (*rolloutFakeEdge, *httptest.Server) {
	f := &rolloutFakeEdge{nodes: map[string]*EdgeNode{}}
	for _, n := range []string{"a", "b"} {
		f.nodes[n] = &EdgeNode{Name: n, Address: "127.0.0.1:1", State: "up", Health: "up", AdminState: "ready",
			LastCheck: &EdgeCheck{Status: 200, Passed: true}}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, r.Method+" "+r.URL.RequestURI())
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		writeJSON := func(status int, v any) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(v)
		}
		if len(parts) == 2 && parts[0] == "pools" && parts[1] == "app" {
			p := EdgePool{Name: "app", Policy: "round_robin"}
			for _, n := range []string{"a", "b"} {
				p.Nodes = append(p.Nodes, *f.nodes[n])
			}
			writeJSON(200, p)
			return
		}
		if len(parts) != 5 || parts[1] != "app" || f.nodes[parts[3]] == nil {
			writeJSON(404, map[string]string{"error": "not found"})
			return
		}
		n := f.nodes[parts[3]]
		switch parts[4] {
		case "state":
			switch st := r.URL.Query().Get("state"); st {
			case "drain":
				others := 0
				for _, o := range f.nodes {
					if o != n && o.State == "up" {
						others++
					}
				}
				if others == 0 && r.URL.Query().Get("force") != "true" {
					writeJSON(409, map[string]string{"error": "it is the last available node of its pool (use force to override): add force=true to take it out anyway"})
					return
				}
				n.State, n.AdminState = "draining", "drain"
			case "ready":
				n.State, n.AdminState = "up", "ready"
			default:
				writeJSON(400, map[string]string{"error": "state must be ready, drain or maint"})
				return
			}
			writeJSON(200, n)
		case "wait":
			if f.inflight > 0 {
				writeJSON(504, map[string]any{"idle": false, "in_flight": f.inflight})
				return
			}
			writeJSON(200, map[string]any{"idle": true, "in_flight": 0})
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func TestEdgeClient(t *testing.T) {
	f, srv := newRolloutFakeEdge(t)
	ctx := context.Background()
	c := NewEdgeClient(strings.TrimPrefix(srv.URL, "http://")+"/", "tok", nil) // bare host:port works

	p, err := c.Pool(ctx, "app")
	if err != nil || len(p.Nodes) != 2 || p.Nodes[0].State != "up" {
		t.Fatalf("Pool: %+v, %v", p, err)
	}
	n, err := c.SetNodeState(ctx, "app", "a", EdgeDrain, 5*time.Minute, false)
	if err != nil || n.State != "draining" {
		t.Fatalf("drain a: %+v, %v", n, err)
	}
	if got := f.calls[len(f.calls)-1]; got != "POST /pools/app/nodes/a/state?state=drain&ttl=5m0s" {
		t.Errorf("request %q", got)
	}
	_, err = c.SetNodeState(ctx, "app", "b", EdgeDrain, time.Minute, false)
	if !errors.Is(err, ErrLastAvailable) || !strings.Contains(err.Error(), "force=true") {
		t.Errorf("drain of the last node: %v, want ErrLastAvailable with edge's text", err)
	}
	if _, err := c.SetNodeState(ctx, "app", "a", "sideways", 0, false); err == nil || !strings.Contains(err.Error(), "state must be") {
		t.Errorf("bad state: %v", err)
	}
	if _, err := c.SetNodeState(ctx, "app", "zz", EdgeReady, 0, false); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown node: %v", err)
	}

	idle, in, err := c.WaitIdle(ctx, "app", "a", time.Second)
	if err != nil || !idle || in != 0 {
		t.Errorf("WaitIdle idle: %v %d %v", idle, in, err)
	}
	f.mu.Lock()
	f.inflight = 3
	f.mu.Unlock()
	idle, in, err = c.WaitIdle(ctx, "app", "a", 0)
	if err != nil || idle || in != 3 {
		t.Errorf("WaitIdle busy: %v %d %v", idle, in, err)
	}

	if _, err := c.WaitState(ctx, "app", "a", EdgeStateUp, 150*time.Millisecond); err == nil || !strings.Contains(err.Error(), "draining") {
		t.Errorf("WaitState of a drained node: %v", err)
	}
	if _, err := c.SetNodeState(ctx, "app", "a", EdgeReady, 0, false); err != nil {
		t.Fatal(err)
	}
	if n, err := c.WaitState(ctx, "app", "a", EdgeStateUp, time.Second); err != nil || n.State != "up" {
		t.Errorf("WaitState: %+v %v", n, err)
	}

	bad := NewEdgeClient(srv.URL, "wrong", nil)
	var ee *EdgeError
	if _, err := bad.Pool(ctx, "app"); !errors.As(err, &ee) || ee.Status != 401 || ee.Message != "unauthorized" {
		t.Errorf("wrong token: %v", err)
	}
}

// rolloutFakeAgent mimics a deploy agent's HTTP API.
type rolloutFakeAgent struct {
	mu      sync.Mutex
	files   map[string]string // last prepare's archive: name -> content (links: "-> target")
	query   string            // last prepare's query
	auth    string
	prepErr int // status to answer prepare with
}

func newRolloutFakeAgent(t *testing.T) (*rolloutFakeAgent, *httptest.Server) {
	f := &rolloutFakeAgent{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.auth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/prepare":
			f.query = r.URL.RawQuery
			if f.prepErr != 0 {
				w.WriteHeader(f.prepErr)
				fmt.Fprintf(w, `{"error":"refused with %d"}`, f.prepErr)
				return
			}
			files, err := rolloutReadTarGz(r.Body)
			if err != nil {
				w.WriteHeader(400)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
				return
			}
			f.files = files
			fmt.Fprintf(w, `{"id":%q}`, r.URL.Query().Get("id"))
		case "/v1/activate":
			w.WriteHeader(404)
			fmt.Fprintf(w, `{"error":"deploy: release not found: %s"}`, r.URL.Query().Get("id"))
		case "/v1/rollback":
			fmt.Fprintf(w, `{"from":"v2","to":%q}`, r.URL.Query().Get("to"))
		case "/v1/status":
			_ = json.NewEncoder(w).Encode(Status{Current: "v2", Previous: "v1"})
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func rolloutReadTarGz(r io.Reader) (map[string]string, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			files[h.Name] = string(b)
		case tar.TypeSymlink:
			files[h.Name] = "-> " + h.Linkname
		case tar.TypeDir:
			files[h.Name] = "<dir>"
		}
	}
}

func TestTargetHTTP(t *testing.T) {
	f, srv := newRolloutFakeAgent(t)
	ctx := context.Background()
	tg := HTTPTarget("web1", srv.URL, "agent-tok", nil)

	// A directory is tarred on the fly, links kept.
	dir := rolloutRelease(t, "v2")
	if err := os.Symlink("static/app.css", filepath.Join(dir, "style.css")); err != nil {
		t.Fatal(err)
	}
	if err := tg.Prepare(ctx, "v2", Source{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if f.files["RELEASE"] != "v2\n" || f.files["static/app.css"] == "" || f.files["style.css"] != "-> static/app.css" || f.files["static/"] != "<dir>" {
		t.Errorf("archive: %v", f.files)
	}
	if f.query != "id=v2" || f.auth != "Bearer agent-tok" {
		t.Errorf("query %q, auth %q", f.query, f.auth)
	}

	// A tarball is streamed as is, with its checksum.
	var tgz bytes.Buffer
	if err := tarGzDir(&tgz, dir); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "r.tar.gz")
	if err := os.WriteFile(tarball, tgz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tgz.Bytes())
	if err := tg.Prepare(ctx, "v3", Source{Tarball: tarball, SHA256: strings.ToUpper(hex.EncodeToString(sum[:]))}); err != nil {
		t.Fatal(err)
	}
	if f.query != "id=v3&sha256="+hex.EncodeToString(sum[:]) || f.files["index.html"] == "" {
		t.Errorf("tarball: query %q, files %v", f.query, f.files)
	}

	// A git source goes through git archive.
	if _, err := exec.LookPath("git"); err == nil {
		repo := t.TempDir()
		git := func(args ...string) {
			cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
		git("init", "-q")
		if err := os.WriteFile(filepath.Join(repo, "RELEASE"), []byte("g1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "RELEASE")
		git("commit", "-q", "-m", "g1")
		if err := tg.Prepare(ctx, "g1", Source{GitRepo: repo, GitRev: "HEAD"}); err != nil {
			t.Fatal(err)
		}
		if f.files["RELEASE"] != "g1\n" {
			t.Errorf("git archive: %v", f.files)
		}
		if err := tg.Prepare(ctx, "g2", Source{GitRepo: repo, GitRev: "no-such-rev"}); err == nil || !strings.Contains(err.Error(), "git archive") {
			t.Errorf("bad rev: %v", err)
		}
	}

	// Errors carry the agent's text; 409 is ErrBusy.
	f.mu.Lock()
	f.prepErr = 409
	f.mu.Unlock()
	if err := tg.Prepare(ctx, "v4", Source{Dir: dir}); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "refused with 409") {
		t.Errorf("busy: %v", err)
	}
	f.mu.Lock()
	f.prepErr = 507
	f.mu.Unlock()
	var ae *AgentError
	if err := tg.Prepare(ctx, "v4", Source{Dir: dir}); !errors.As(err, &ae) || ae.Status != 507 || !strings.Contains(err.Error(), "web1") {
		t.Errorf("507: %v", err)
	}
	if err := tg.Prepare(ctx, "v4", Source{Dir: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing dir accepted")
	}
	if err := tg.Activate(ctx, "v9"); err == nil || !strings.Contains(err.Error(), "release not found: v9") {
		t.Errorf("activate: %v", err)
	}
	from, to, err := tg.Rollback(ctx, "v1")
	if err != nil || from != "v2" || to != "v1" {
		t.Errorf("rollback: %q %q %v", from, to, err)
	}
	st, err := tg.Status(ctx)
	if err != nil || st.Current != "v2" || st.Previous != "v1" {
		t.Errorf("status: %+v %v", st, err)
	}
}

// TestRolloutWithFakes drives Rollout against a fake edge and fake agents,
// down to a failed activation that never switched the release.
func TestRolloutActivateFailureWithFakes(t *testing.T) {
	_, edgeSrv := newRolloutFakeEdge(t)
	_, agentSrv := newRolloutFakeAgent(t)
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "v2") }))
	t.Cleanup(health.Close)
	var out bytes.Buffer
	_, err := Rollout(context.Background(), RolloutOptions{
		Edge: edgeSrv.URL, EdgeToken: "tok", Pool: "app",
		Nodes: []RolloutNode{
			{Target: HTTPTarget("a", agentSrv.URL, "", nil), HealthURL: health.URL},
			{Target: HTTPTarget("b", agentSrv.URL, "", nil), HealthURL: health.URL},
		},
		ReleaseID: "v9", Source: Source{Dir: rolloutRelease(t, "v9")},
		HealthyTimeout: time.Second, Out: &out,
	})
	t.Logf("output:\n%s", out.String())
	var re *RolloutError
	if !errors.As(err, &re) || re.Node != "a" || re.Step != StepActivate {
		t.Fatalf("error %v, want a at activate", err)
	}
	if !strings.Contains(err.Error(), "release not found: v9") || !strings.Contains(err.Error(), "not touched: b") {
		t.Errorf("error %q", err)
	}
}

// TestTargetArchiveAcceptedByPrepare checks that the stream HTTPTarget
// uploads for a directory is what Prepare unpacks: files, modes, nested
// directories and relative links.
func TestTargetArchiveAcceptedByPrepare(t *testing.T) {
	dir := rolloutRelease(t, "v7")
	if err := os.Symlink("static/app.css", filepath.Join(dir, "style.css")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "static", "run.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var tgz bytes.Buffer
	if err := tarGzDir(&tgz, dir); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "v7.tar.gz")
	if err := os.WriteFile(tarball, tgz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tgz.Bytes())
	n, err := Open(Config{Root: filepath.Join(t.TempDir(), "root")})
	if err != nil {
		t.Fatal(err)
	}
	tg := LocalTarget("local", n, Options{})
	ctx := context.Background()
	if err := tg.Prepare(ctx, "v7", Source{Tarball: tarball, SHA256: hex.EncodeToString(sum[:])}); err != nil {
		t.Fatal(err)
	}
	if err := tg.Activate(ctx, "v7"); err != nil {
		t.Fatal(err)
	}
	cur := filepath.Join(n.Root(), "current")
	for name, want := range map[string]string{"RELEASE": "v7\n", "style.css": "body { color: black }\n", "static/run.sh": "#!/bin/sh\n"} {
		if b, err := os.ReadFile(filepath.Join(cur, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(cur, "static", "run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh lost its mode: %v %v", fi.Mode(), err)
	}
	if st, err := tg.Status(ctx); err != nil || st.Current != "v7" {
		t.Errorf("status: %+v %v", st.Current, err)
	}
}

// TestTargetHTTPWithAgent runs HTTPTarget against the real deploy agent.
func TestTargetHTTPWithAgent(t *testing.T) {
	n, err := Open(Config{Root: filepath.Join(t.TempDir(), "root")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewAgent(n, "tok"))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	tg := HTTPTarget("web1", srv.URL, "tok", nil)

	if _, _, err := tg.Rollback(ctx, ""); !errors.Is(err, ErrNoRollbackTarget) || errors.Is(err, ErrBusy) {
		t.Errorf("rollback of an empty node: %v, want ErrNoRollbackTarget", err)
	}
	for _, id := range []string{"v1", "v2"} {
		dir := rolloutRelease(t, id)
		if err := os.Symlink("static/app.css", filepath.Join(dir, "style.css")); err != nil {
			t.Fatal(err)
		}
		if err := tg.Prepare(ctx, id, Source{Dir: dir}); err != nil {
			t.Fatalf("prepare %s: %v", id, err)
		}
		if err := tg.Activate(ctx, id); err != nil {
			t.Fatalf("activate %s: %v", id, err)
		}
	}
	st, err := tg.Status(ctx)
	if err != nil || st.Current != "v2" || st.Previous != "v1" || len(st.Releases) != 2 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	if b, err := os.ReadFile(filepath.Join(n.Root(), "current", "style.css")); err != nil || !strings.Contains(string(b), "color") {
		t.Errorf("link in the release: %q %v", b, err)
	}
	from, to, err := tg.Rollback(ctx, "")
	if err != nil || from != "v2" || to != "v1" {
		t.Errorf("rollback: %q -> %q, %v", from, to, err)
	}
	if err := tg.Activate(ctx, "v9"); !errors.Is(err, ErrReleaseNotFound) || !strings.Contains(err.Error(), "v9") {
		t.Errorf("activate of an unknown release: %v", err)
	}
	tgz := filepath.Join(t.TempDir(), "v3.tar.gz")
	var buf bytes.Buffer
	if err := tarGzDir(&buf, rolloutRelease(t, "v3")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tgz, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tg.Prepare(ctx, "v3", Source{Tarball: tgz, SHA256: strings.Repeat("0", 64)}); !errors.Is(err, ErrChecksum) {
		t.Errorf("wrong sha256: %v, want ErrChecksum", err)
	}
	var ae *AgentError
	if err := HTTPTarget("web1", srv.URL, "wrong", nil).Activate(ctx, "v1"); !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("wrong token: %v", err)
	}
}
