package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRollbackRefusedWithoutTarget(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, n *Node)
		want  string
	}{
		{"no release", func(t *testing.T, n *Node) {}, "no release is current"},
		{"prepared only", func(t *testing.T, n *Node) { fxPrepare(t, n, "r1") }, "no release is current"},
		{"single release", func(t *testing.T, n *Node) { fxDeploy(t, n, "r1") }, "no good release other than the current r1"},
		{"newer release never activated", func(t *testing.T, n *Node) { fxDeploy(t, n, "r1"); fxPrepare(t, n, "r2") }, "no good release other than the current r1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := fxNode(t, Config{})
			tt.setup(t, n)
			before, _ := os.ReadFile(n.statePath())
			from, to, err := n.Rollback(context.Background(), "", Options{})
			if !errors.Is(err, ErrNoRollbackTarget) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Rollback = %q %q %v, want ErrNoRollbackTarget (%s)", from, to, err, tt.want)
			}
			after, _ := os.ReadFile(n.statePath())
			if !bytes.Equal(before, after) {
				t.Errorf("a refused rollback changed state.json:\n%s\n%s", before, after)
			}
		})
	}
}

func TestRollbackMarksBadAndNeverLandsOnBad(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1", "r2", "r3")
	steps := []struct{ from, to string }{{"r3", "r2"}, {"r2", "r1"}}
	for _, s := range steps {
		from, to, err := n.Rollback(context.Background(), "", Options{})
		if err != nil || from != s.from || to != s.to {
			t.Fatalf("Rollback = %s -> %s, %v; want %s -> %s", from, to, err, s.from, s.to)
		}
		if cur := fxCurrent(t, n); cur != s.to {
			t.Fatalf("current %q", cur)
		}
		st := fxAssertConsistent(t, n)
		if fxStatusOf(st, s.from) != StatusBad {
			t.Errorf("%s not marked bad: %+v", s.from, st.Releases)
		}
	}
	// Only bad releases are left besides current: refused.
	if _, _, err := n.Rollback(context.Background(), "", Options{}); !errors.Is(err, ErrNoRollbackTarget) {
		t.Fatalf("third rollback: %v", err)
	}
	if err := n.Activate(context.Background(), "r3", Options{}); !errors.Is(err, ErrBadRelease) {
		t.Errorf("activating a bad release: %v", err)
	}
	// A new release deploys normally; rolling back from it goes to r1,
	// skipping the bad r2 and r3.
	fxDeploy(t, n, "r4")
	if from, to, err := n.Rollback(context.Background(), "", Options{}); err != nil || from != "r4" || to != "r1" {
		t.Errorf("Rollback = %s -> %s, %v", from, to, err)
	}
}

func TestRollbackTo(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1", "r2", "r3")
	fxPrepare(t, n, "r4")
	tests := []struct {
		to       string
		want     error
		wantFrom string
	}{
		{"r3", ErrNoRollbackTarget, ""}, // already current
		{"missing", ErrReleaseNotFound, ""},
		{"bad/id", ErrInvalidID, ""},
		{"r1", nil, "r3"},
		{"r3", ErrBadRelease, ""}, // left by the rollback above
		{"r2", nil, "r1"},
	}
	for _, tt := range tests {
		from, to, err := n.Rollback(context.Background(), tt.to, Options{})
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Fatalf("Rollback(--to %s) = %v, want %v", tt.to, err, tt.want)
		}
		if err == nil && (from != tt.wantFrom || to != tt.to || fxCurrent(t, n) != tt.to) {
			t.Fatalf("Rollback(--to %s) = %s -> %s", tt.to, from, to)
		}
	}
	st := fxAssertConsistent(t, n)
	want := map[string]string{"r1": StatusBad, "r2": StatusActive, "r3": StatusBad, "r4": StatusPrepared}
	for id, s := range want {
		if got := fxStatusOf(st, id); got != s {
			t.Errorf("%s is %s, want %s", id, got, s)
		}
	}
}

func TestRollbackDryRun(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1", "r2")
	var out bytes.Buffer
	from, to, err := n.Rollback(context.Background(), "", Options{DryRun: true, Out: &out})
	if err != nil || from != "r2" || to != "r1" {
		t.Fatalf("%s -> %s, %v", from, to, err)
	}
	if !strings.Contains(out.String(), "mark r2 as bad") || !strings.Contains(out.String(), "-> releases/r1") {
		t.Errorf("plan:\n%s", out.String())
	}
	st := fxAssertConsistent(t, n)
	if st.Current != "r2" || fxStatusOf(st, "r2") != StatusActive {
		t.Errorf("dry run changed things: %+v", st.Releases)
	}
}

// fxCleanupScenario builds r1..r6 activated, a rollback from r6 to r5, a
// failed r7 and a prepared (never activated) r8.
func fxCleanupScenario(t *testing.T) *Node {
	t.Helper()
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1", "r2", "r3", "r4", "r5", "r6")
	if _, _, err := n.Rollback(context.Background(), "", Options{}); err != nil {
		t.Fatal(err)
	}
	n.cfg.BuildHooks = []Hook{{Run: "exit 1"}}
	if err := n.Prepare(context.Background(), "r7", Source{Dir: fxSrcDir(t, map[string]string{"index.html": "x"})}, Options{}); err == nil {
		t.Fatal("r7 prepared")
	}
	n.cfg.BuildHooks = nil
	fxPrepare(t, n, "r8")
	return n
}

func TestCleanupKeepsTheRightReleases(t *testing.T) {
	tests := []struct {
		keep        int
		wantRemoved []string
		wantLeft    []string
	}{
		// current r5 and previous good r4 are always kept; r8 (newest,
		// prepared) takes a slot; bad r6 and failed r7 never count.
		{1, []string{"r1", "r2", "r3", "r6"}, []string{"r4", "r5", "r8"}},
		{3, []string{"r1", "r2", "r3", "r6"}, []string{"r4", "r5", "r8"}},
		{4, []string{"r1", "r2", "r6"}, []string{"r3", "r4", "r5", "r8"}},
		{10, []string{"r6"}, []string{"r1", "r2", "r3", "r4", "r5", "r8"}},
	}
	for _, tt := range tests {
		n := fxCleanupScenario(t)
		var trashSeen []string
		faultHook = func(step string) {
			if step != "cleanup:renamed-to-trash" {
				return
			}
			ents, _ := os.ReadDir(n.releasesDir())
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), trashPrefix) {
					trashSeen = append(trashSeen, e.Name())
				}
			}
		}
		removed, err := n.Cleanup(context.Background(), tt.keep, Options{})
		faultHook = nil
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(removed, tt.wantRemoved) {
			t.Errorf("keep %d: removed %v, want %v", tt.keep, removed, tt.wantRemoved)
		}
		left, _ := n.releaseDirs()
		slices.Sort(left)
		if !reflect.DeepEqual(left, tt.wantLeft) {
			t.Errorf("keep %d: left %v, want %v", tt.keep, left, tt.wantLeft)
		}
		var wantTrash []string
		for _, id := range tt.wantRemoved {
			wantTrash = append(wantTrash, trashPrefix+id)
		}
		if !reflect.DeepEqual(trashSeen, wantTrash) {
			t.Errorf("keep %d: trash renames seen %v, want %v", tt.keep, trashSeen, wantTrash)
		}
		fxAssertClean(t, n)
		st := fxAssertConsistent(t, n)
		if fxStatusOf(st, "r7") != "" {
			t.Errorf("failed r7 not forgotten")
		}
		if st.Current != "r5" || st.Previous != "r4" {
			t.Errorf("current %s previous %s", st.Current, st.Previous)
		}
	}
}

func TestCleanupDefaultKeepAndDryRun(t *testing.T) {
	n := fxNode(t, Config{Keep: 2})
	fxDeploy(t, n, "r1", "r2", "r3", "r4")
	var out bytes.Buffer
	removed, err := n.Cleanup(context.Background(), 0, Options{DryRun: true, Out: &out})
	if err != nil || !reflect.DeepEqual(removed, []string{"r1", "r2"}) {
		t.Fatalf("dry run removed %v, %v", removed, err)
	}
	if !strings.Contains(out.String(), "rename releases/r1 -> releases/.trash-r1") {
		t.Errorf("plan:\n%s", out.String())
	}
	if ids, _ := n.releaseDirs(); len(ids) != 4 {
		t.Errorf("dry run removed releases: %v", ids)
	}
	removed, err = n.Cleanup(context.Background(), 0, Options{})
	if err != nil || !reflect.DeepEqual(removed, []string{"r1", "r2"}) {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if removed, _ := n.Cleanup(context.Background(), 0, Options{}); len(removed) != 0 {
		t.Errorf("second cleanup removed %v", removed)
	}
}

func TestCleanupErrorIsAWarning(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1", "r2", "r3", "r4")
	// While r1 is being removed, an obstacle makes r2's rename to trash
	// fail (a non-empty directory at its trash name).
	faultHook = func(step string) {
		if step == "cleanup:renamed-to-trash" {
			os.MkdirAll(filepath.Join(n.trashDir("r2"), "obstacle"), 0o755)
		}
	}
	var out bytes.Buffer
	removed, err := n.Cleanup(context.Background(), 1, Options{Out: &out})
	faultHook = nil
	if err != nil {
		t.Fatalf("a cleanup warning became an error: %v", err)
	}
	if !reflect.DeepEqual(removed, []string{"r1"}) {
		t.Errorf("removed %v", removed)
	}
	if !strings.Contains(out.String(), "warning: cleanup of r2") {
		t.Errorf("no warning shown:\n%s", out.String())
	}
	st, _ := n.Status()
	warned := false
	for _, e := range st.Journal {
		if e.Op == "cleanup" && e.Result == "warning" && e.Release == "r2" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("journal lacks the warning: %+v", st.Journal)
	}
	// Recover removes the leftover; the next cleanup finishes the job.
	if removed, err := n.Cleanup(context.Background(), 1, Options{}); err != nil || !reflect.DeepEqual(removed, []string{"r2"}) {
		t.Errorf("second cleanup: %v, %v", removed, err)
	}
	fxAssertClean(t, n)
	fxAssertConsistent(t, n)
}

func TestRecoverCleansLeftovers(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1")
	os.Symlink("releases/r1", filepath.Join(n.root, ".current.deadbeef"))
	fxWriteTree(t, n.releasesDir(), map[string]string{
		".staging-r2/index.html":  "partial",
		".trash-r0/index.html":    "half deleted",
		"r9/index.html":           "release r9",
		"not an id!/index.html":   "ignored",
		"README":                  "ignored",
		".staging-r3/deep/a/b/c/": "",
	})
	os.WriteFile(filepath.Join(n.tmpDir(), "upload-r2-123.tar.gz"), []byte("partial"), 0o644)

	var out bytes.Buffer
	actions, err := n.Recover(Options{DryRun: true, Out: &out})
	if err != nil || len(actions) != 6 {
		t.Fatalf("dry run: %v %v", actions, err)
	}
	if _, err := os.Lstat(filepath.Join(n.root, ".current.deadbeef")); err != nil {
		t.Fatal("dry run removed things")
	}
	actions, err = n.Recover(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(actions) != 6 {
		t.Errorf("actions: %q", actions)
	}
	fxAssertClean(t, n)
	st := fxAssertConsistent(t, n)
	if fxStatusOf(st, "r9") != StatusPrepared || st.Current != "r1" {
		t.Errorf("status %+v", st.Releases)
	}
	for _, p := range []string{"not an id!/index.html", "README"} {
		if _, err := os.Stat(filepath.Join(n.releasesDir(), p)); err != nil {
			t.Errorf("recover touched %s: %v", p, err)
		}
	}
	if actions, _ := n.Recover(Options{}); len(actions) != 0 {
		t.Errorf("second recover: %q", actions)
	}
}

func TestRecoverRepointsDanglingCurrent(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1", "r2")
	os.RemoveAll(n.releaseDir("r2")) // someone deleted the current release
	if st, _ := n.Status(); len(st.Warnings) == 0 {
		t.Error("status does not warn about the dangling current")
	}
	actions, err := n.Recover(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cur := fxCurrent(t, n); cur != "r1" {
		t.Fatalf("current %q after recover (%q)", cur, actions)
	}
	st := fxAssertConsistent(t, n)
	found := false
	for _, e := range st.Journal {
		if e.Op == "recover" && strings.Contains(e.Message, "repointed current") && strings.Contains(e.Message, "r1") {
			found = true
		}
	}
	if !found {
		t.Errorf("journal: %+v", st.Journal)
	}

	// With nothing good left, recover reports and leaves it.
	os.RemoveAll(n.releaseDir("r1"))
	actions, err = n.Recover(Options{})
	if err != nil || !strings.Contains(strings.Join(actions, ";"), "no good release") {
		t.Errorf("recover with nothing to repoint to: %q %v", actions, err)
	}
}

func TestRecoverReconcilesStateWithCurrent(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1", "r2")
	// Simulate a crash between the rename and the state update.
	os.Symlink("releases/r1", filepath.Join(n.root, ".current.x"))
	os.Rename(filepath.Join(n.root, ".current.x"), n.currentPath())
	if _, err := n.Recover(Options{}); err != nil {
		t.Fatal(err)
	}
	st := fxAssertConsistent(t, n)
	if st.Current != "r1" || st.Previous != "r2" {
		t.Errorf("current %s previous %s", st.Current, st.Previous)
	}
}

func TestStatusJSONAndTable(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1", "r2")
	st := fxAssertConsistent(t, n)
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(data, &m)
	for _, k := range []string{"root", "current", "previous", "releases", "lock_holder", "free_bytes", "journal"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status JSON lacks %q: %s", k, data)
		}
	}
	rel := m["releases"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "status", "prepared_at", "activated_at"} {
		if _, ok := rel[k]; !ok {
			t.Errorf("release JSON lacks %q: %v", k, rel)
		}
	}
	if st.FreeBytes <= 0 {
		t.Errorf("free bytes %d", st.FreeBytes)
	}
	var back Status
	if err := json.Unmarshal(data, &back); err != nil || back.Current != "r2" || len(back.Releases) != 2 {
		t.Errorf("round trip: %+v %v", back, err)
	}
	rep, err := ReadStatusReport(n, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"current:", "r2", "previous:", "r1", "RELEASE", "active", "good", "lock:", "free", "activate"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}
