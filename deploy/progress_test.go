package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// ansiRe matches the escape sequences the live table writes.
var ansiRe = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// stripANSI removes escape sequences and carriage returns.
func stripANSI(s string) string { return strings.ReplaceAll(ansiRe.ReplaceAllString(s, ""), "\r", "") }

// finalFrame returns what follows the last redraw (the final frame and
// whatever was written after it), without escape sequences.
func finalFrame(t *testing.T, out string) string {
	t.Helper()
	i := strings.LastIndex(out, "\x1b[J")
	if i < 0 {
		t.Fatalf("no redraw in the output:\n%q", out)
	}
	return stripANSI(out[i+len("\x1b[J"):])
}

// progressCluster is the fake edge (pool app: nodes a and b) in front of
// two real application servers, each serving a real deploy root on v1.
type progressCluster struct {
	edge  string
	nodes []*Node
	apps  []*rolloutApp
}

func newProgressCluster(t *testing.T) *progressCluster {
	t.Helper()
	_, edgeSrv := newRolloutFakeEdge(t)
	c := &progressCluster{edge: edgeSrv.URL}
	v1 := rolloutRelease(t, "v1")
	for _, name := range []string{"a", "b"} {
		n, err := Open(Config{Root: filepath.Join(t.TempDir(), name)})
		if err != nil {
			t.Fatal(err)
		}
		tg := LocalTarget(name, n, Options{})
		if err := tg.Prepare(t.Context(), "v1", Source{Dir: v1}); err != nil {
			t.Fatal(err)
		}
		if err := tg.Activate(t.Context(), "v1"); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
		c.apps = append(c.apps, startRolloutApp(t, name, n.Root()))
	}
	return c
}

func (c *progressCluster) options(t *testing.T, out *rolloutBuffer) RolloutOptions {
	var nodes []RolloutNode
	for i, a := range c.apps {
		nodes = append(nodes, RolloutNode{Target: LocalTarget(a.name, c.nodes[i], Options{}), HealthURL: a.healthURL()})
	}
	return RolloutOptions{
		Edge: c.edge, EdgeToken: "tok", Pool: "app", Nodes: nodes,
		ReleaseID: "v2", Source: Source{Dir: rolloutRelease(t, "v2")},
		DrainTimeout: 5 * time.Second, VerifyTimeout: 5 * time.Second, HealthyTimeout: 5 * time.Second,
		Out: out,
	}
}

// The live table of a real rollout: every node's row ends with all steps
// ok, the summary follows the final frame, and the per-step ok lines are
// not printed.
func TestProgressLiveRollout(t *testing.T) {
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "")
	c := newProgressCluster(t)
	var out rolloutBuffer
	o := c.options(t, &out)
	o.Progress = ProgressTTY
	if _, err := Rollout(context.Background(), o); err != nil {
		t.Fatalf("rollout: %v\n%s", err, out.String())
	}
	raw := out.String()
	final := finalFrame(t, raw)
	t.Logf("final frame:\n%s", final)
	if !strings.Contains(raw, "\x1b[32m✓\x1b[0m") {
		t.Errorf("no green ✓ in the live output")
	}
	if !regexp.MustCompile(`\x1b\[\d+A`).MatchString(raw) {
		t.Errorf("the table was never redrawn in place")
	}
	if !regexp.MustCompile(`(?m)^rollout v2 · pool app · one node at a time · 2/2 nodes done · \d+\.\ds · ok$`).MatchString(final) {
		t.Errorf("final frame has no finished header")
	}
	for _, n := range []string{"a", "b"} {
		re := regexp.MustCompile(`(?m)^  ` + n + `\s+done\s+preflight ✓ prepare ✓ drain ✓ wait ✓ activate ✓ verify ✓ ready ✓ healthy ✓\s+\d+\.\ds  up in edge \(health up\)$`)
		if !re.MatchString(final) {
			t.Errorf("final frame has no finished row for %s", n)
		}
	}
	if i, j := strings.Index(final, "  b "), strings.Index(final, "summary: release v2, pool app: ok"); i < 0 || j < i {
		t.Errorf("the summary does not follow the final frame")
	}
	if !strings.Contains(stripANSI(raw), "rollout of release v2 to 2 node(s) of pool app") {
		t.Errorf("the announcement line is missing")
	}
	if regexp.MustCompile(`(?m)^\[\s*\d+\.\ds\] a\s+drain\s+ok`).MatchString(stripANSI(raw)) {
		t.Errorf("the live table also printed the plain ok lines")
	}
}

// A failing node: its row shows the failed step, the skipped ones and its
// recovery; NO_COLOR keeps the layout without colours.
func TestProgressLiveRolloutFailure(t *testing.T) {
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "1")
	c := newProgressCluster(t)
	stale := "v1"
	c.apps[1].stale.Store(&stale) // b's health never reports v2
	var out rolloutBuffer
	o := c.options(t, &out)
	o.Progress = ProgressTTY
	o.VerifyTimeout = 400 * time.Millisecond
	_, err := Rollout(context.Background(), o)
	var re *RolloutError
	if !errors.As(err, &re) || re.Node != "b" || re.Step != StepVerify {
		t.Fatalf("error %v, want b failing at verify", err)
	}
	raw := out.String()
	final := finalFrame(t, raw)
	t.Logf("final frame:\n%s", final)
	if regexp.MustCompile(`\x1b\[[0-9;]*m`).MatchString(raw) {
		t.Errorf("colours despite NO_COLOR")
	}
	if !regexp.MustCompile(`(?m)^rollout v2 · pool app · one node at a time · 1/2 nodes done · \d+\.\ds · FAILED$`).MatchString(final) {
		t.Errorf("final frame header does not say FAILED with 1/2 done")
	}
	if !regexp.MustCompile(`(?m)^  a\s+done\s+preflight ✓ prepare ✓ drain ✓ wait ✓ activate ✓ verify ✓ ready ✓ healthy ✓ `).MatchString(final) {
		t.Errorf("a's row is not all ok")
	}
	if !regexp.MustCompile(`(?m)^  b\s+failed\s+preflight ✓ prepare ✓ drain ✓ wait ✓ activate ✓ verify ✗ ready - healthy - rollback ✓ restore ✓\s+\d+\.\ds  ready and up in edge`).MatchString(final) {
		t.Errorf("b's row does not show the failed verify and the recovery")
	}
	// The failure itself is printed in full above the table.
	if !regexp.MustCompile(`(?m)^\[\s*\d+\.\ds\] b\s+verify\s+FAILED after .*did not report release v2`).MatchString(stripANSI(raw)) {
		t.Errorf("the failure line is missing")
	}
	if !strings.Contains(final, "FAILED at verify, rolled back to v1, back in service") {
		t.Errorf("the summary after the final frame does not report b's rollback")
	}
}

// plainStepLine is the whole of one plain progress line of a step that
// ended well, in the format the rollout printed before the live table.
var plainStepLine = regexp.MustCompile(`^\[\s*\d+\.\ds\] (a|b)  (preflight|prepare  |drain    |wait     |activate |verify   |ready    |healthy  ) ok  \S+(  \S.*)?$`)

// Off a terminal (a buffer, a file) auto mode writes the plain lines,
// exactly as before.
func TestProgressPlainWhenNotATerminal(t *testing.T) {
	c := newProgressCluster(t)
	var out rolloutBuffer
	o := c.options(t, &out)
	f, err := os.Create(filepath.Join(t.TempDir(), "rollout.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o.Out = f // Progress "" is auto
	if _, err := Rollout(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	t.Logf("output:\n%s", text)
	if strings.Contains(text, "\x1b") {
		t.Errorf("escape sequences in plain output")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	steps := 0
	for _, l := range lines {
		switch {
		case plainStepLine.MatchString(l):
			steps++
		case strings.HasPrefix(l, "["):
			if !regexp.MustCompile(`^\[\s*\d+\.\ds\] (rollout of |preparing |warning: )`).MatchString(l) {
				t.Errorf("unexpected progress line %q", l)
			}
		}
	}
	if want := 2 * len(progressBarSteps); steps != want {
		t.Errorf("%d step lines, want %d", steps, want)
	}
	for _, n := range []string{"a", "b"} {
		for _, step := range progressBarSteps {
			re := regexp.MustCompile(`(?m)^\[\s*\d+\.\ds\] ` + n + `\s+` + step + `\s+ok\b`)
			if !re.MatchString(text) {
				t.Errorf("output has no %q line for %s", step+" ok", n)
			}
		}
	}
	if !strings.Contains(text, "\nsummary: release v2, pool app: ok\n") {
		t.Errorf("output has no summary")
	}
}

// Redraws are throttled to one per progressMinRedraw, but the final frame
// always shows the last state.
func TestProgressThrottleKeepsFinalState(t *testing.T) {
	var buf bytes.Buffer
	p := newLiveProgress(&buf, progressSetup{color: false})
	clock := time.Unix(1000, 0)
	p.now = func() time.Time { return clock }
	p.begin("r9", "web", []string{"n1", "n2"}, 0)
	if p.frames != 1 {
		t.Fatalf("frames after begin = %d, want 1", p.frames)
	}
	// A burst at one instant: no redraw, but every event is recorded.
	for i := range 200 {
		for _, step := range progressBarSteps {
			p.step(i%2, step, stateRunning, 0, "")
			p.step(i%2, step, stateOK, time.Millisecond, fmt.Sprintf("event %d", i))
		}
	}
	fmt.Fprintf(p, "hook says hi\nand no newline yet")
	if p.frames != 1 {
		t.Errorf("frames after a burst within %v = %d, want 1", progressMinRedraw, p.frames)
	}
	if strings.Contains(buf.String(), "hook says hi") {
		t.Errorf("a log line was written outside a redraw")
	}
	clock = clock.Add(progressMinRedraw)
	p.step(1, StepHealthy, stateOK, 2*time.Second, "up at last")
	if p.frames != 2 {
		t.Errorf("frames after %v = %d, want 2", progressMinRedraw, p.frames)
	}
	p.step(0, StepHealthy, stateFailed, time.Second, "n1 went down")
	p.finish(false)
	if p.frames != 3 {
		t.Errorf("frames after finish = %d, want 3", p.frames)
	}
	fmt.Fprintf(p, "summary follows\n")
	final := finalFrame(t, buf.String())
	t.Logf("final frame:\n%s", final)
	for _, want := range []string{
		"rollout r9 · pool web · one node at a time · 1/2 nodes done · 0.1s · FAILED\n",
		"  n1    failed     preflight ✓ prepare ✓ drain ✓ wait ✓ activate ✓ verify ✓ ready ✓ healthy ✗     1.0s  n1 went down\n",
		"  n2    done       preflight ✓ prepare ✓ drain ✓ wait ✓ activate ✓ verify ✓ ready ✓ healthy ✓     2.0s  up at last\n",
		"summary follows\n",
	} {
		if !strings.Contains(final, want) {
			t.Errorf("final frame lacks %q", want)
		}
	}
	if !strings.Contains(buf.String(), "hook says hi\n") || !strings.Contains(buf.String(), "and no newline yet\n") {
		t.Errorf("log lines lost:\n%q", buf.String())
	}
	if i, j := strings.Index(buf.String(), "hook says hi"), strings.LastIndex(buf.String(), "rollout r9"); i > j {
		t.Errorf("log lines printed below the final frame")
	}
}

// On a narrow terminal the bar turns into columns of glyphs under short
// step names, and every line is cut to the width; a wide one gets the
// full bar.
func TestProgressWidth(t *testing.T) {
	frame := func(width int) string {
		second := "web2"
		if width == 40 {
			second = "a-rather-long-node-name"
		}
		var buf bytes.Buffer
		p := newLiveProgress(&buf, progressSetup{color: true, width: func() int { return width }})
		p.begin("r1", "web", []string{"web1", second}, 0)
		for _, step := range progressBarSteps {
			p.step(0, step, stateOK, time.Millisecond, "")
		}
		p.step(1, StepPreflight, stateOK, time.Second, strings.Repeat("x", 100))
		p.step(1, StepPrepare, stateFailed, time.Second, "disk full")
		p.step(1, StepRestore, stateOK, time.Second, "")
		p.finish(false)
		return finalFrame(t, buf.String())
	}
	for _, width := range []int{40, 80, 250} {
		f := frame(width)
		t.Logf("%d columns:\n%s", width, f)
		lines := strings.Split(strings.TrimSuffix(f, "\n"), "\n")
		for _, l := range lines {
			if n := visibleLen(l); n > width-1 {
				t.Errorf("%d columns: a line of %d runes: %q", width, n, l)
			}
		}
		switch width {
		case 80:
			// header, column names, two rows
			if len(lines) != 4 || !strings.HasSuffix(lines[1], "pre prep drain wait act vrfy ready up rb rest") {
				t.Fatalf("80 columns: no compact layout:\n%s", f)
			}
			head := []rune(lines[1])
			for row, want := range map[int]string{2: "✓✓✓✓✓✓✓✓  ", 3: "✓✗------ ✓"} {
				r := []rune(lines[row])
				var got []rune
				for i := 0; i < len(head); i++ {
					if head[i] != ' ' && (i == 0 || head[i-1] == ' ') {
						got = append(got, r[i])
					}
				}
				if string(got) != want {
					t.Errorf("80 columns: row %d has %q under the step names, want %q", row, string(got), want)
				}
			}
		case 250:
			if !strings.Contains(f, "  web1  done       preflight ✓ prepare ✓ drain ✓ wait ✓ activate ✓ verify ✓ ready ✓ healthy ✓") ||
				!strings.Contains(f, "failed     preflight ✓ prepare ✗ drain - wait - activate - verify - ready - healthy - restore ✓") {
				t.Errorf("250 columns: no full bars:\n%s", f)
			}
		}
	}
	if got := cutLine("\x1b[32mabcdef\x1b[0m", 5, true); got != "\x1b[32mabc…\x1b[0m" {
		t.Errorf("cutLine = %q", got)
	}
	if got := cutLine("abc", 0, false); got != "abc" {
		t.Errorf("cutLine without a width = %q", got)
	}
}

// openPTY opens a pseudo-terminal pair with the given columns, or skips.
func openPTY(t *testing.T, cols uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	ioctl := func(req uintptr, arg unsafe.Pointer) error {
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), req, uintptr(arg)); errno != 0 {
			return errno
		}
		return nil
	}
	var unlock int32
	var num uint32
	ws := winsize{row: 50, col: cols}
	if err := ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		m.Close()
		t.Skipf("unlocking the pty: %v", err)
	}
	if err := ioctl(syscall.TIOCGPTN, unsafe.Pointer(&num)); err != nil {
		m.Close()
		t.Skipf("pty number: %v", err)
	}
	if err := ioctl(syscall.TIOCSWINSZ, unsafe.Pointer(&ws)); err != nil {
		m.Close()
		t.Skipf("pty size: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", num), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("opening the pty's terminal: %v", err)
	}
	return m, s
}

func TestResolveProgress(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	var buf bytes.Buffer
	for _, tt := range []struct {
		name      string
		mode      string
		w         io.Writer
		env       func(string) string
		live, col bool
	}{
		{"buffer auto", "", &buf, env("TERM", "xterm"), false, true},
		{"buffer tty", ProgressTTY, &buf, env("TERM", "xterm"), true, true},
		{"file auto", ProgressAuto, file, env("TERM", "xterm"), false, true},
		{"dev null auto", ProgressAuto, devNull, env("TERM", "xterm"), false, true},
		{"buffer tty no color", ProgressTTY, &buf, env("TERM", "xterm", "NO_COLOR", "1"), true, false},
		{"buffer tty dumb", ProgressTTY, &buf, env("TERM", "dumb"), true, false},
		{"plain", ProgressPlain, &buf, env("TERM", "xterm"), false, false},
	} {
		s := resolveProgress(tt.mode, tt.w, tt.env)
		if s.live != tt.live || s.color != tt.col {
			t.Errorf("%s: live %v color %v, want %v %v", tt.name, s.live, s.color, tt.live, tt.col)
		}
	}
	if isTerminal(devNull) || isTerminal(file) {
		t.Errorf("/dev/null or a file taken for a terminal")
	}

	m, s := openPTY(t, 123)
	defer m.Close()
	defer s.Close()
	if !isTerminal(s) {
		t.Fatal("a pty is not taken for a terminal")
	}
	got := resolveProgress(ProgressAuto, s, env("TERM", "xterm"))
	if !got.live || !got.color || got.width == nil || got.width() != 123 {
		t.Errorf("pty auto: %+v", got)
	}
	if got := resolveProgress(ProgressAuto, s, env("TERM", "dumb")); got.live {
		t.Errorf("pty with TERM=dumb is live")
	}
	if got := resolveProgress(ProgressPlain, s, env("TERM", "xterm")); got.live {
		t.Errorf("pty with -progress plain is live")
	}
}

// `edge-deploy rollout` on a real terminal (a pty) draws the live table by
// itself, with the hook output of dir= nodes above it; -progress plain
// and a bad -progress behave.
func TestRunRolloutProgressOnTerminal(t *testing.T) {
	t.Setenv("TERM", "xterm")
	c := newProgressCluster(t)
	cfgFile := filepath.Join(t.TempDir(), "deploy.yaml")
	if err := os.WriteFile(cfgFile, []byte("activate_hooks:\n  - {name: announce, run: 'echo hello from $RELEASE_ID'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := func(id string, extra ...string) []string {
		a := []string{"-config", cfgFile, "-edge", c.edge, "-edge-token", "tok", "-pool", "app", "-dir", rolloutRelease(t, id), "-id", id,
			"-drain-timeout", "5s", "-verify-timeout", "5s", "-healthy-timeout", "5s"}
		for i, app := range c.apps {
			a = append(a, "-node", fmt.Sprintf("name=%s,dir=%s,health=%s", app.name, c.nodes[i].Root(), app.healthURL()))
		}
		return append(a, extra...)
	}

	var stderr rolloutBuffer
	if code := RunRollout(context.Background(), args("v2", "-progress", "sideways"), &rolloutBuffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), "-progress must be auto, tty or plain") {
		t.Errorf("bad -progress: exit %d, %q", code, stderr.String())
	}

	m, s := openPTY(t, 200)
	var (
		mu   sync.Mutex
		got  bytes.Buffer
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			mu.Lock()
			got.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { s.Close(); m.Close(); <-done })
	code := RunRollout(context.Background(), args("v2"), s, &stderr)
	fmt.Fprintln(s, "END OF TEST")
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		text := strings.ReplaceAll(got.String(), "\r", "")
		mu.Unlock()
		if strings.Contains(text, "END OF TEST") {
			if code != 0 {
				t.Fatalf("exit %d: %s\n%s", code, stderr.String(), text)
			}
			final := finalFrame(t, text)
			t.Logf("final frame:\n%s", final)
			for _, n := range []string{"a", "b"} {
				if !regexp.MustCompile(`(?m)^  ` + n + `\s+done\s+preflight ✓ prepare ✓ drain ✓ wait ✓ activate ✓ verify ✓ ready ✓ healthy ✓`).MatchString(final) {
					t.Errorf("final frame has no finished row for %s", n)
				}
				if !strings.Contains(text, "    "+n+" | hello from v2\n") {
					t.Errorf("%s's hook output is missing", n)
				}
			}
			if !strings.Contains(final, "summary: release v2, pool app: ok") {
				t.Errorf("no summary after the final frame")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pty never showed the end of the output:\n%q", text)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// -progress plain: the plain lines.
	var out rolloutBuffer
	if code := RunRollout(context.Background(), args("v3", "-progress", "plain"), &out, &stderr); code != 0 {
		t.Fatalf("plain: exit %d: %s", code, stderr.String())
	}
	if strings.Contains(out.String(), "\x1b") || !regexp.MustCompile(`(?m)^\[\s*\d+\.\ds\] b  healthy   ok  `).MatchString(out.String()) {
		t.Errorf("-progress plain output:\n%s", out.String())
	}
}
