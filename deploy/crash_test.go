package deploy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Crash safety: every fault step of prepare, activate, rollback and
// cleanup is hit (a) by a panic in this process and (b) by a real SIGKILL
// of a child process; after each, current must resolve to a complete
// release (or be absent when nothing was ever activated), the lock must be
// free and Recover must bring the node back to a clean, consistent state.

// fxCrashScenario is one operation to interrupt.
type fxCrashScenario struct {
	name string
	// activated reports whether a release is current before the operation.
	activated bool
	setup     func(t *testing.T, n *Node)
	run       func(n *Node) error
}

// fxCrashConfig is the configuration of the crash scenarios (shared with
// the child process).
func fxCrashConfig(root string) Config {
	return Config{
		Root:          root,
		Shared:        []string{"storage/"},
		BuildHooks:    []Hook{{Name: "build", Run: "echo built > built.txt"}},
		ActivateHooks: []Hook{{Name: "reload", Run: "true"}},
	}
}

// fxCrashSrc is the source directory of the scenarios' new release.
func fxCrashSrc(n *Node, id string) string {
	return filepath.Join(filepath.Dir(n.root), "src-"+id)
}

func fxMakeCrashSrc(t *testing.T, n *Node, id string) {
	fxWriteTree(t, fxCrashSrc(n, id), map[string]string{"index.html": "release " + id, "storage/cache/x": "x"})
}

var fxCrashScenarios = []fxCrashScenario{
	{
		name:  "prepare-first",
		setup: func(t *testing.T, n *Node) { fxMakeCrashSrc(t, n, "r1") },
		run: func(n *Node) error {
			return n.Prepare(context.Background(), "r1", Source{Dir: fxCrashSrc(n, "r1")}, Options{})
		},
	},
	{
		name:      "prepare",
		activated: true,
		setup:     func(t *testing.T, n *Node) { fxDeploy(t, n, "r1", "r2"); fxMakeCrashSrc(t, n, "r3") },
		run: func(n *Node) error {
			return n.Prepare(context.Background(), "r3", Source{Dir: fxCrashSrc(n, "r3")}, Options{})
		},
	},
	{
		name:      "prepare-stream",
		activated: true,
		setup: func(t *testing.T, n *Node) {
			fxDeploy(t, n, "r1")
			os.WriteFile(fxCrashSrc(n, "r2")+".tar.gz", fxTarGz(t, []fxEntry{{Name: "index.html", Body: "release r2"}}), 0o644)
		},
		run: func(n *Node) error {
			f, err := os.Open(fxCrashSrc(n, "r2") + ".tar.gz")
			if err != nil {
				return err
			}
			defer f.Close()
			return n.Prepare(context.Background(), "r2", Source{Reader: f}, Options{})
		},
	},
	{
		name:  "activate-first",
		setup: func(t *testing.T, n *Node) { fxPrepare(t, n, "r1") },
		run:   func(n *Node) error { return n.Activate(context.Background(), "r1", Options{}) },
	},
	{
		name:      "activate",
		activated: true,
		setup:     func(t *testing.T, n *Node) { fxDeploy(t, n, "r1"); fxPrepare(t, n, "r2") },
		run:       func(n *Node) error { return n.Activate(context.Background(), "r2", Options{}) },
	},
	{
		name:      "rollback",
		activated: true,
		setup:     func(t *testing.T, n *Node) { fxDeploy(t, n, "r1", "r2") },
		run: func(n *Node) error {
			_, _, err := n.Rollback(context.Background(), "", Options{})
			return err
		},
	},
	{
		name:      "cleanup",
		activated: true,
		setup:     func(t *testing.T, n *Node) { fxDeploy(t, n, "r1", "r2", "r3", "r4") },
		run: func(n *Node) error {
			_, err := n.Cleanup(context.Background(), 1, Options{})
			return err
		},
	},
}

// fxScenarioNode sets up a scenario on a fresh root.
func fxScenarioNode(t *testing.T, sc fxCrashScenario) *Node {
	t.Helper()
	n := fxNode(t, fxCrashConfig(filepath.Join(t.TempDir(), "app")))
	sc.setup(t, n)
	return n
}

// fxSteps runs a scenario to completion and returns the fault steps hit,
// a step hit again (cleanup removes several releases) as "step@N".
func fxSteps(t *testing.T, sc fxCrashScenario) []string {
	t.Helper()
	n := fxScenarioNode(t, sc)
	var steps []string
	seen := map[string]int{}
	faultHook = func(step string) {
		seen[step]++
		if seen[step] > 1 {
			step = fmt.Sprintf("%s@%d", step, seen[step])
		}
		steps = append(steps, step)
	}
	err := sc.run(n)
	faultHook = nil
	if err != nil {
		t.Fatalf("%s: %v", sc.name, err)
	}
	return steps
}

// fxFaultAt returns a fault hook calling fire when the step named by at
// ("step" or "step@N" for its N-th hit) is reached.
func fxFaultAt(at string, fire func(string)) func(string) {
	step, nth := at, 1
	if i := strings.LastIndexByte(at, '@'); i >= 0 {
		step = at[:i]
		fmt.Sscan(at[i+1:], &nth)
	}
	hits := 0
	return func(s string) {
		if s != step {
			return
		}
		if hits++; hits == nth {
			fire(s)
		}
	}
}

// fxCheckAfterCrash asserts the invariants after an interrupted operation,
// then recovers and checks the node is clean and usable.
func fxCheckAfterCrash(t *testing.T, n *Node, sc fxCrashScenario) {
	t.Helper()
	cur := fxCurrent(t, n) // fails unless current resolves to a complete release
	if cur == "" && sc.activated {
		t.Fatalf("current vanished")
	}
	ids, _ := n.releaseDirs()
	for _, id := range ids {
		if b, err := os.ReadFile(filepath.Join(n.releaseDir(id), "index.html")); err != nil || string(b) != "release "+id {
			t.Errorf("release %s is not complete: %q %v", id, b, err)
		}
	}
	l, err := n.acquireLock("test")
	if err != nil {
		t.Fatalf("the lock is not free after the crash: %v", err)
	}
	l.release()
	if _, err := n.Recover(Options{}); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	fxAssertClean(t, n)
	fxAssertConsistent(t, n)
	if again, _ := n.Recover(Options{}); len(again) != 0 {
		t.Errorf("second Recover still acts: %q", again)
	}
	// The node works again.
	fxDeploy(t, n, "z9")
	if fxCurrent(t, n) != "z9" {
		t.Error("deploy after recovery failed")
	}
}

func TestCrashSafetyFaultInjectionPanics(t *testing.T) {
	total := 0
	for _, sc := range fxCrashScenarios {
		steps := fxSteps(t, sc)
		if len(steps) == 0 {
			t.Fatalf("%s: no fault steps", sc.name)
		}
		for _, step := range steps {
			t.Run(sc.name+"/"+step, func(t *testing.T) {
				n := fxScenarioNode(t, sc)
				panicked := func() (p bool) {
					defer func() {
						if r := recover(); r != nil {
							p = true
						}
					}()
					faultHook = fxFaultAt(step, func(s string) { panic("fault injected at " + s) })
					defer func() { faultHook = nil }()
					_ = sc.run(n)
					return false
				}()
				if !panicked {
					t.Fatalf("step %s not reached", step)
				}
				fxCheckAfterCrash(t, n, sc)
			})
			total++
		}
	}
	// Every step named in the package's documentation is covered.
	seen := map[string]bool{}
	for _, sc := range fxCrashScenarios {
		for _, s := range fxSteps(t, sc) {
			seen[strings.Split(s, "@")[0]] = true
		}
	}
	for _, want := range []string{"prepare:extracted", "prepare:linked", "prepare:built", "prepare:before-rename", "prepare:renamed", "prepare:state-saved",
		"activate:temp-link", "activate:renamed", "activate:state-saved",
		"rollback:marked-bad", "rollback:temp-link", "rollback:renamed", "rollback:state-saved",
		"cleanup:renamed-to-trash", "cleanup:state-saved", "cleanup:removed"} {
		if !seen[want] {
			t.Errorf("step %s never hit", want)
		}
	}
	t.Logf("%d crash points", total)
}

const (
	fxEnvMode     = "EDGE_DEPLOY_TEST_HELPER"
	fxEnvRoot     = "EDGE_DEPLOY_TEST_ROOT"
	fxEnvScenario = "EDGE_DEPLOY_TEST_SCENARIO"
	fxEnvStep     = "EDGE_DEPLOY_TEST_STEP"
)

// TestHelperProcess is the child process of the kill -9 and lock tests;
// it does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(fxEnvMode)
	if mode == "" {
		return
	}
	n, err := Open(fxCrashConfig(os.Getenv(fxEnvRoot)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch mode {
	case "hold":
		l, err := n.acquireLock("prepare held-by-child")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("locked")
		time.Sleep(2 * time.Minute)
		l.release()
		os.Exit(0)
	case "crash":
		step := os.Getenv(fxEnvStep)
		faultHook = fxFaultAt(step, func(string) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute) // never returns
		})
		i := slices.IndexFunc(fxCrashScenarios, func(sc fxCrashScenario) bool { return sc.name == os.Getenv(fxEnvScenario) })
		if i < 0 {
			os.Exit(2)
		}
		if err := fxCrashScenarios[i].run(n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0) // the step was not reached
	}
	os.Exit(2)
}

// fxChild starts this test binary as a helper process.
func fxChild(env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

func TestCrashSafetyKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process per crash point")
	}
	for _, sc := range fxCrashScenarios {
		for _, step := range fxSteps(t, sc) {
			t.Run(sc.name+"/"+step, func(t *testing.T) {
				n := fxScenarioNode(t, sc)
				cmd := fxChild(fxEnvMode+"=crash", fxEnvRoot+"="+n.root, fxEnvScenario+"="+sc.name, fxEnvStep+"="+step)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("child: %v\n%s", err, out)
				}
				ws, ok := ee.Sys().(syscall.WaitStatus)
				if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("child was not killed at %s: %v\n%s", step, err, out)
				}
				if st, _ := n.Status(); st.LockHolder != "" {
					t.Errorf("lock holder %q reported for a dead process", st.LockHolder)
				}
				fxCheckAfterCrash(t, n, sc)
			})
		}
	}
}

func TestConcurrentOperationsRefused(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1", "r2")
	gate := filepath.Join(t.TempDir(), "gate")
	started := filepath.Join(t.TempDir(), "started")
	n.cfg.BuildHooks = []Hook{{Name: "wait", Run: fmt.Sprintf("touch %s; while [ ! -e %s ]; do sleep 0.02; done", started, gate)}}
	done := make(chan error, 1)
	src := fxSrcDir(t, map[string]string{"index.html": "release r3"})
	go func() { done <- n.Prepare(context.Background(), "r3", Source{Dir: src}, Options{}) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first prepare never started its hook")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ops := map[string]func() error{
		"prepare":  func() error { return n.Prepare(context.Background(), "r4", Source{Dir: src}, Options{}) },
		"activate": func() error { return n.Activate(context.Background(), "r1", Options{}) },
		"rollback": func() error { _, _, err := n.Rollback(context.Background(), "", Options{}); return err },
		"cleanup":  func() error { _, err := n.Cleanup(context.Background(), 1, Options{}); return err },
		"recover":  func() error { _, err := n.Recover(Options{}); return err },
		"dry-run":  func() error { return n.Activate(context.Background(), "r1", Options{DryRun: true}) },
	}
	for name, op := range ops {
		err := op()
		if !errors.Is(err, ErrBusy) {
			t.Errorf("%s while busy: %v", name, err)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) || !strings.Contains(err.Error(), `"prepare r3"`) {
			t.Errorf("%s: busy error does not name the holder: %v", name, err)
		}
	}
	if st, err := n.Status(); err != nil || !strings.Contains(st.LockHolder, "prepare r3") {
		t.Errorf("status while busy: holder %q, %v", st.LockHolder, err)
	}
	os.WriteFile(gate, nil, 0o644)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := n.Activate(context.Background(), "r3", Options{}); err != nil {
		t.Errorf("after the first operation: %v", err)
	}
	fxAssertConsistent(t, n)
}

func TestLockHeldByAnotherProcess(t *testing.T) {
	n := fxNode(t, fxCrashConfig(filepath.Join(t.TempDir(), "app")))
	fxDeploy(t, n, "r1")
	cmd := fxChild(fxEnvMode+"=hold", fxEnvRoot+"="+n.root)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("child said %q", line)
	}
	_, _, err = n.Rollback(context.Background(), "", Options{})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) || !strings.Contains(err.Error(), "held-by-child") {
		t.Fatalf("err = %v, want ErrBusy naming pid %d", err, cmd.Process.Pid)
	}
	// Killing the holder releases the lock: no stale lock.
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if st, _ := n.Status(); st.LockHolder != "" {
		t.Errorf("holder %q after its death", st.LockHolder)
	}
	if _, err := n.Recover(Options{}); err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
}
