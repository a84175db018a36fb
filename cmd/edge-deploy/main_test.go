package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edge-router/edge/deploy"
)

// runCLI runs the command line and returns its exit code and outputs.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// mkSrc writes a release source directory.
func mkSrc(t *testing.T, id string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("release "+id), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func currentOf(t *testing.T, root string) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

func TestLocalCommands(t *testing.T) {
	root := filepath.Join(t.TempDir(), "app")
	cfgPath := filepath.Join(t.TempDir(), "deploy.yaml")
	os.WriteFile(cfgPath, []byte("root: "+root+"\nshared: [storage/]\nbuild_hooks:\n  - {name: build, run: echo building $RELEASE_ID}\nkeep: 1\n"), 0o644)

	code, out, errOut := runCLI(t, "-config", cfgPath, "prepare", "r1", "--dir", mkSrc(t, "r1"))
	if code != 0 || !strings.Contains(out, "building r1") {
		t.Fatalf("prepare: %d %q %q", code, out, errOut)
	}
	// Flags before the id, and the global flag after the command.
	if code, _, errOut := runCLI(t, "prepare", "--dir", mkSrc(t, "r2"), "r2", "-config", cfgPath); code != 0 {
		t.Fatalf("prepare r2: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "-root", root, "activate", "r1"); code != 0 || currentOf(t, root) != "r1" {
		t.Fatalf("activate r1: %d %s", code, errOut)
	}
	// Dry run: plan printed, nothing changed.
	code, out, _ = runCLI(t, "-root", root, "activate", "r2", "--dry-run")
	if code != 0 || !strings.Contains(out, "[dry-run]") || currentOf(t, root) != "r1" {
		t.Fatalf("activate --dry-run: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, "-config", cfgPath, "activate", "r2"); code != 0 || currentOf(t, root) != "r2" {
		t.Fatalf("activate r2: %d %s", code, errOut)
	}

	code, out, _ = runCLI(t, "-root", root, "status")
	for _, want := range []string{"current:", "r2", "previous:", "r1", "RELEASE", "active", "good"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status lacks %q: %d\n%s", want, code, out)
		}
	}
	code, out, _ = runCLI(t, "-root", root, "status", "--json")
	var st deploy.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Current != "r2" || st.Previous != "r1" {
		t.Fatalf("status --json: %d %s", code, out)
	}

	code, out, _ = runCLI(t, "-root", root, "rollback")
	if code != 0 || !strings.Contains(out, "rolled back from r2 to r1") || currentOf(t, root) != "r1" {
		t.Fatalf("rollback: %d %q", code, out)
	}
	code, _, errOut = runCLI(t, "-root", root, "rollback")
	if code != 1 || !strings.Contains(errOut, "no good release") {
		t.Fatalf("second rollback: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "-root", root, "rollback", "--to", "r2"); code != 1 || !strings.Contains(errOut, "marked bad") {
		t.Fatalf("rollback --to a bad release: %d %q", code, errOut)
	}

	code, out, _ = runCLI(t, "-config", cfgPath, "cleanup", "--dry-run")
	if code != 0 || !strings.Contains(out, "would remove: r2") {
		t.Fatalf("cleanup --dry-run: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "-config", cfgPath, "cleanup")
	if code != 0 || !strings.Contains(out, "removed: r2") {
		t.Fatalf("cleanup: %d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(root, "releases", "r2")); err == nil {
		t.Error("r2 not removed")
	}

	os.MkdirAll(filepath.Join(root, "releases", ".staging-r9"), 0o755)
	code, out, _ = runCLI(t, "-root", root, "recover", "--dry-run")
	if code != 0 || !strings.Contains(out, "would remove releases/.staging-r9") {
		t.Fatalf("recover --dry-run: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "-root", root, "recover")
	if code != 0 || !strings.Contains(out, ".staging-r9") {
		t.Fatalf("recover: %d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(root, "releases", ".staging-r9")); err == nil {
		t.Error("staging not removed")
	}

	// A tarball with a checksum.
	tarball := filepath.Join(t.TempDir(), "r3.tar.gz")
	os.WriteFile(tarball, []byte("not really gzip"), 0o644)
	code, _, errOut = runCLI(t, "-root", root, "prepare", "r3", "--tarball", tarball, "--sha256", strings.Repeat("0", 64))
	if code != 1 || !strings.Contains(errOut, "sha256 mismatch") {
		t.Fatalf("prepare with a bad sha256: %d %q", code, errOut)
	}
}

func TestPrepareFromGit(t *testing.T) {
	repo := mkSrc(t, "g1")
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-q", "-m", "one"}} {
		cmdArgs := append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"}, args...)
		if out, err := execGit(cmdArgs...); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	root := filepath.Join(t.TempDir(), "app")
	if code, _, errOut := runCLI(t, "-root", root, "prepare", "g1", "--git", repo, "--rev", "HEAD"); code != 0 {
		t.Fatalf("prepare --git: %d %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "releases", "g1", "index.html")); string(b) != "release g1" {
		t.Errorf("index.html = %q", b)
	}
}

func TestUsageErrors(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage:"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"status"}, 2, "give -config FILE or -root DIR"},
		{[]string{"-root", root, "prepare", "r1"}, 2, "exactly one source"},
		{[]string{"-root", root, "prepare", "--dir", root}, 2, "missing argument"},
		{[]string{"-root", root, "prepare", "r1", "--dir", root, "--sha256", "ab"}, 2, "--sha256 goes with --tarball"},
		{[]string{"-root", root, "activate"}, 2, "missing argument"},
		{[]string{"-root", root, "activate", "a", "b"}, 2, "unexpected argument"},
		{[]string{"-root", root, "activate", "--bogus", "a"}, 2, "flag provided but not defined"},
		{[]string{"-root", root, "activate", "../x"}, 1, "invalid release id"},
		{[]string{"-root", root, "cleanup", "--keep", "-2"}, 2, "--keep"},
		{[]string{"-config", filepath.Join(root, "missing.yaml"), "status"}, 1, "missing.yaml"},
		{[]string{"-root", root, "agent", "--listen", "0.0.0.0:0", "--token", ""}, 2, "without a token"},
	}
	t.Setenv("EDGE_DEPLOY_TOKEN", "")
	for _, tt := range tests {
		code, out, errOut := runCLI(t, tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("%v: %d %q %q, want %d and %q", tt.args, code, out, errOut, tt.code, tt.want)
		}
	}
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "edge-deploy ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "help"); code != 0 || !strings.Contains(out, "rollback [--to ID]") {
		t.Errorf("help: %d %q", code, out)
	}
}

func TestBusyExitCode(t *testing.T) {
	root := filepath.Join(t.TempDir(), "app")
	n, err := deploy.Open(deploy.Config{Root: root, BuildHooks: []deploy.Hook{{Run: "sleep 0.5"}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	src := mkSrc(t, "r1")
	go func() { done <- n.Prepare(t.Context(), "r1", deploy.Source{Dir: src}, deploy.Options{}) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := n.Status()
		if st.LockHolder != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the prepare never took the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, _, errOut := runCLI(t, "-root", root, "activate", "r1")
	if code != exitBusy || !strings.Contains(errOut, "node busy") || !strings.Contains(errOut, "prepare r1") {
		t.Errorf("activate while busy: %d %q", code, errOut)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestAgentCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "app")
	addrc := make(chan string, 1)
	agentListening = func(addr string) { addrc <- addr }
	stopAgent = make(chan struct{})
	defer func() { agentListening, stopAgent = nil, nil }()
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() {
		done <- run([]string{"-root", root, "agent", "--listen", "127.0.0.1:0", "--token", "tok"}, &out, io.Discard)
	}()
	var addr string
	select {
	case addr = <-addrc:
	case code := <-done:
		t.Fatalf("agent exited %d", code)
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not start")
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var st deploy.Status
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != 200 || st.Root != root {
		t.Errorf("status through the agent: %d %+v", resp.StatusCode, st)
	}
	resp, err = http.Get("http://" + addr + "/v1/status")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("without the token: %d", resp.StatusCode)
		}
	}
	close(stopAgent)
	if code := <-done; code != 0 {
		t.Errorf("agent exit code %d", code)
	}
}

// execGit runs git with a neutral configuration.
func execGit(args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	return cmd.CombinedOutput()
}

// status on a real deploy root: where current points, the previous
// release, and a table with each release's state, age, size and source;
// -json carries the same and still decodes as a deploy.Status.
func TestStatusTable(t *testing.T) {
	root := filepath.Join(t.TempDir(), "app")
	cfgPath := filepath.Join(t.TempDir(), "deploy.yaml")
	os.WriteFile(cfgPath, []byte("root: "+root+"\nshared: [storage/]\n"), 0o644)
	badCfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badCfg, []byte("root: "+root+"\nbuild_hooks:\n  - {name: build, run: 'exit 3'}\n"), 0o644)
	for _, step := range [][]string{
		{"-config", cfgPath, "prepare", "r1", "--dir", mkSrc(t, "r1")},
		{"-config", cfgPath, "prepare", "r2", "--dir", mkSrc(t, "r2")},
		{"-config", cfgPath, "activate", "r1"},
		{"-config", cfgPath, "activate", "r2"},
		{"-config", cfgPath, "prepare", "r3", "--dir", mkSrc(t, "r3")},
	} {
		if code, _, errOut := runCLI(t, step...); code != 0 {
			t.Fatalf("%v: %d %s", step, code, errOut)
		}
	}
	if code, _, _ := runCLI(t, "-config", badCfg, "prepare", "r4", "--dir", mkSrc(t, "r4")); code != 1 {
		t.Fatalf("prepare with a failing hook: exit %d", code)
	}
	// Each release holds index.html ("release rN", 10 bytes) and a link to
	// shared/storage, which is not counted.
	if l, err := os.Readlink(filepath.Join(root, "releases", "r1", "storage")); err != nil || !strings.Contains(l, "shared") {
		t.Fatalf("r1/storage is not a link to shared/: %q %v", l, err)
	}

	code, out, errOut := runCLI(t, "-root", root, "status")
	if code != 0 {
		t.Fatalf("status: %d %s", code, errOut)
	}
	t.Logf("status:\n%s", out)
	ts := `\d+s ago\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ`
	for _, re := range []string{
		`(?m)^releases:\s+` + regexp.QuoteMeta(filepath.Join(root, "releases")) + ` \(4 releases\)$`,
		`(?m)^current:\s+r2 \(current -> releases/r2\)$`,
		`(?m)^previous:\s+r1 \(what rollback returns to\)$`,
		`(?m)^RELEASE\s+STATE\s+CREATED\s+ACTIVATED\s+SIZE\s+SOURCE$`,
		`(?m)^r2\s+active \(current\)\s+` + ts + `\s+\d+s ago\s+10 B\s+directory /`,
		`(?m)^r1\s+good \(previous\)\s+` + ts + `\s+\d+s ago\s+10 B\s+directory /`,
		`(?m)^r3\s+prepared\s+` + ts + `\s+-\s+10 B\s+directory /`,
		`(?m)^r4\s+failed\s+` + ts + `\s+-\s+-\s+build hook "build" failed: exit status 3$`,
		`(?m)^TIME\s+OP\s+RELEASE\s+RESULT\s+MESSAGE$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status output does not match %s", re)
		}
	}
	// The columns are aligned: STATE starts at the same place in every row.
	col := -1
	for _, line := range strings.Split(out, "\n") {
		var at int
		switch {
		case strings.HasPrefix(line, "RELEASE"):
			at = strings.Index(line, "STATE")
		case regexp.MustCompile(`^r\d `).MatchString(line):
			at = strings.IndexFunc(line[2:], func(r rune) bool { return r != ' ' }) + 2
		default:
			continue
		}
		if col == -1 {
			col = at
		} else if at != col {
			t.Errorf("STATE column at %d in %q, want %d", at, line, col)
		}
	}

	code, out, _ = runCLI(t, "-root", root, "status", "-json")
	var st deploy.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Current != "r2" || st.Previous != "r1" || len(st.Releases) != 4 {
		t.Fatalf("status -json as a deploy.Status: %d %+v\n%s", code, st, out)
	}
	var rep struct {
		ReleasesDir string `json:"releases_dir"`
		Releases    []struct {
			ID        string `json:"id"`
			Status    string `json:"status"`
			Role      string `json:"role"`
			SizeBytes *int64 `json:"size_bytes"`
		} `json:"releases"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ReleasesDir != filepath.Join(root, "releases") {
		t.Errorf("releases_dir %q", rep.ReleasesDir)
	}
	want := map[string]struct {
		status, role string
		size         int64 // -1: none
	}{
		"r1": {"good", "previous", 10}, "r2": {"active", "current", 10}, "r3": {"prepared", "", 10}, "r4": {"failed", "", -1},
	}
	for _, r := range rep.Releases {
		w, ok := want[r.ID]
		size := int64(-1)
		if r.SizeBytes != nil {
			size = *r.SizeBytes
		}
		if !ok || r.Status != w.status || r.Role != w.role || size != w.size {
			t.Errorf("release %s: status %q role %q size %d, want %+v", r.ID, r.Status, r.Role, size, w)
		}
		delete(want, r.ID)
	}
	if len(want) > 0 {
		t.Errorf("releases missing from -json: %v", want)
	}
}

// Sizes are measured within a time budget: what is not measured shows
// "?", and ReleaseSize stops when its context is done.
func TestStatusSizeBudget(t *testing.T) {
	root := filepath.Join(t.TempDir(), "app")
	src := mkSrc(t, "big")
	for i := range 600 {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("f%03d.txt", i)), []byte("x"), 0o644)
	}
	if code, _, errOut := runCLI(t, "-root", root, "prepare", "big", "--dir", src); code != 0 {
		t.Fatalf("prepare: %d %s", code, errOut)
	}
	n, err := deploy.Open(deploy.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if size, err := n.ReleaseSize(t.Context(), "big"); err != nil || size != 600+int64(len("release big")) {
		t.Errorf("ReleaseSize = %d, %v", size, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := n.ReleaseSize(ctx, "big"); !errors.Is(err, context.Canceled) {
		t.Errorf("ReleaseSize with a cancelled context: %v", err)
	}
	if _, err := n.ReleaseSize(t.Context(), "../x"); err == nil {
		t.Error("ReleaseSize accepted an invalid id")
	}
	rep, err := deploy.ReadStatusReport(n, 0)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(rep.Releases) != 1 || rep.Releases[0].SizeBytes != nil || !regexp.MustCompile(`(?m)^big\s+prepared\s+.*\s\?\s+directory `).MatchString(buf.String()) {
		t.Errorf("without a budget, the size is not \"?\":\n%s", buf.String())
	}
}
