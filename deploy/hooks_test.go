package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fxDead reports whether pid has exited (or is a zombie nobody reaped yet).
func fxDead(pid int) bool { return !processAlive(pid) }

func TestHookTimeoutKillsTheProcessGroup(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1")
	n.cfg.HookTimeout = 300 * time.Millisecond
	pidFile := filepath.Join(t.TempDir(), "pids")
	// The shell starts a background sleeper and a foreground one: both are
	// in the hook's process group and must die on the timeout.
	n.cfg.BuildHooks = []Hook{{Name: "slow", Run: fmt.Sprintf(`sleep 30 & echo $! > %s; echo $$ >> %s; sleep 30`, pidFile, pidFile)}}
	start := time.Now()
	err := n.Prepare(context.Background(), "r2", Source{Dir: fxSrcDir(t, map[string]string{"index.html": "release r2"})}, Options{})
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("prepare took %s after the timeout", took)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(data)) {
		pid, _ := strconv.Atoi(f)
		deadline := time.Now().Add(5 * time.Second)
		for !fxDead(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !fxDead(pid) {
			t.Errorf("hook process %d survived the timeout", pid)
		}
	}
	if n.releaseExists("r2") {
		t.Error("timed-out release exists")
	}
	fxAssertClean(t, n)
	if st := fxAssertConsistent(t, n); st.Current != "r1" || fxStatusOf(st, "r2") != StatusFailed {
		t.Errorf("status %+v", st.Releases)
	}
}

func TestHookBackgroundChildDoesNotHang(t *testing.T) {
	n := fxNode(t, Config{})
	// A daemon-like child keeps stdout open; the hook still finishes.
	n.cfg.ActivateHooks = []Hook{{Name: "spawn", Run: "sleep 5 & echo started"}}
	fxPrepare(t, n, "r1")
	start := time.Now()
	if err := n.Activate(context.Background(), "r1", Options{}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 4500*time.Millisecond {
		t.Errorf("activate waited %s for a background child", took)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	b.Write([]byte("hello"))
	if b.String() != "hello" {
		t.Fatalf("%q", b.String())
	}
	b.Write([]byte(" world!"))
	if got := b.String(); got != "…o world!" {
		t.Fatalf("%q", got)
	}
	if got := lastLineSuffix("a\nb\n\n"); got != ": b" {
		t.Errorf("lastLineSuffix = %q", got)
	}
	if got := lastLineSuffix(""); got != "" {
		t.Errorf("lastLineSuffix empty = %q", got)
	}
}
