package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// hookOutputKeep is how much of a hook's output (its end) the journal keeps.
const hookOutputKeep = 16 << 10

// hookRun describes one hook execution.
type hookRun struct {
	kind     string // "build" or "activate"
	hook     Hook
	index    int
	dir      string // working directory, also RELEASE_DIR
	id       string
	finalDir string // where the release lives once complete
}

// runHooks runs hooks in order and stops at the first failure.
func (n *Node) runHooks(ctx context.Context, o Options, kind string, hooks []Hook, dir, id, finalDir string) error {
	for i, h := range hooks {
		hr := hookRun{kind: kind, hook: h, index: i, dir: dir, id: id, finalDir: finalDir}
		if err := n.runHook(ctx, o, hr); err != nil {
			return err
		}
	}
	return nil
}

// runHook runs one hook with /bin/sh -c in its own process group. On
// timeout or cancellation the whole group is killed. The output goes to
// o.Out and its end to the journal.
func (n *Node) runHook(ctx context.Context, o Options, hr hookRun) error {
	name := hookName(hr.hook, hr.kind+" hook", hr.index)
	if o.DryRun {
		o.printf("run %s hook %q in %s (timeout %s): /bin/sh -c %q", hr.kind, name, n.relRoot(hr.dir), n.cfg.HookTimeout, hr.hook.Run)
		return nil
	}
	o.printf("running %s hook %q", hr.kind, name)
	hctx, cancel := context.WithTimeout(ctx, n.cfg.HookTimeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, "/bin/sh", "-c", hr.hook.Run)
	cmd.Dir = hr.dir
	cmd.Env = append(os.Environ(),
		"RELEASE_ID="+hr.id,
		"RELEASE_DIR="+hr.dir,
		"RELEASE_FINAL_DIR="+hr.finalDir,
		"DEPLOY_ROOT="+n.root,
	)
	cmd.Stdin = nil
	// Its own process group, so a timeout kills everything it started;
	// Pdeathsig kills the shell if the agent itself dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		// Kill the whole group: the shell and everything it started.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	tail := &tailBuffer{max: hookOutputKeep}
	w := io.Writer(tail)
	if o.Out != nil {
		w = &lockedWriter{w: io.MultiWriter(tail, o.Out)}
	}
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	if errors.Is(err, exec.ErrWaitDelay) {
		// The shell succeeded; something it left in the background kept
		// the output open. Not a failure.
		err = nil
	}
	e := JournalEntry{Op: "hook", Release: hr.id, Output: tail.String()}
	switch {
	case err == nil:
		e.Result = "ok"
		e.Message = fmt.Sprintf("%s hook %q succeeded in %s", hr.kind, name, took)
	case hctx.Err() == context.DeadlineExceeded && ctx.Err() == nil:
		err = fmt.Errorf("%s hook %q timed out after %s (process group killed)", hr.kind, name, n.cfg.HookTimeout)
		e.Result, e.Message = "failed", err.Error()
	case ctx.Err() != nil:
		err = fmt.Errorf("%s hook %q cancelled (process group killed): %w", hr.kind, name, ctx.Err())
		e.Result, e.Message = "failed", err.Error()
	default:
		err = fmt.Errorf("%s hook %q failed: %w%s", hr.kind, name, err, lastLineSuffix(tail.String()))
		e.Result, e.Message = "failed", err.Error()
	}
	n.journal(o, e)
	return err
}

// lastLineSuffix returns ": <last non-empty line>" of out, for errors.
func lastLineSuffix(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return ""
	}
	if len(last) > 200 {
		last = last[:200] + "…"
	}
	return ": " + last
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	lost bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
		t.lost = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost {
		return "…" + string(t.buf)
	}
	return string(t.buf)
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
