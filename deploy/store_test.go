package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Test fixtures. Names start with fx so they never collide with helpers of
// other test files of the package.

// fxNode opens a node on a fresh deploy root (cfg.Root, when empty, is a
// new temporary directory).
func fxNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = filepath.Join(t.TempDir(), "app")
	}
	n, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return n
}

// fxWriteTree writes files under dir; a value "symlink:T" makes a
// symbolic link to T, a key ending in "/" a directory.
func fxWriteTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(body, "symlink:"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fxSrcDir returns a new source directory holding files.
func fxSrcDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	fxWriteTree(t, dir, files)
	return dir
}

// fxEntry is one tar entry for fxTarGz.
type fxEntry struct {
	Name, Body, Link string
	Type             byte
	Mode             int64
}

// fxTarGz builds a tar.gz archive in memory.
func fxTarGz(t *testing.T, entries []fxEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.Name, Typeflag: typ, Mode: mode, Linkname: e.Link, ModTime: time.Unix(1700000000, 0)}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fxSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fxPrepare prepares release id from a directory whose index.html holds id.
func fxPrepare(t *testing.T, n *Node, id string) {
	t.Helper()
	src := fxSrcDir(t, map[string]string{"index.html": "release " + id, "public/app.php": "<?php echo '" + id + "';"})
	if err := n.Prepare(context.Background(), id, Source{Dir: src}, Options{}); err != nil {
		t.Fatalf("Prepare %s: %v", id, err)
	}
}

// fxDeploy prepares and activates each id in order.
func fxDeploy(t *testing.T, n *Node, ids ...string) {
	t.Helper()
	for _, id := range ids {
		fxPrepare(t, n, id)
		if err := n.Activate(context.Background(), id, Options{}); err != nil {
			t.Fatalf("Activate %s: %v", id, err)
		}
	}
}

// fxCurrent returns the release current points to, "" when absent. It
// fails the test when current exists but does not resolve to a complete
// release with its index.html.
func fxCurrent(t *testing.T, n *Node) string {
	t.Helper()
	target, err := os.Readlink(n.currentPath())
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatalf("current: %v", err)
	}
	if filepath.IsAbs(target) {
		t.Fatalf("current -> %s is absolute", target)
	}
	dir, id := filepath.Split(target)
	if filepath.Clean(dir) != releasesDirName || !ValidReleaseID(id) {
		t.Fatalf("current -> %s: not releases/<id>", target)
	}
	data, err := os.ReadFile(filepath.Join(n.currentPath(), "index.html"))
	if err != nil {
		t.Fatalf("current -> %s does not resolve to a complete release: %v", target, err)
	}
	if string(data) != "release "+id {
		t.Fatalf("current/index.html = %q, want release %s", data, id)
	}
	return id
}

// fxAssertClean fails when staging, trash, temporary links or temporary
// files are left.
func fxAssertClean(t *testing.T, n *Node) {
	t.Helper()
	for _, dir := range []string{n.root, n.releasesDir(), n.tmpDir()} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			name := e.Name()
			if dir == n.tmpDir() || strings.HasPrefix(name, stagingPrefix) || strings.HasPrefix(name, trashPrefix) || strings.HasPrefix(name, tempLinkPrefix) {
				t.Errorf("left behind: %s", filepath.Join(dir, name))
			}
		}
	}
}

// fxAssertConsistent checks that Status agrees with the disk.
func fxAssertConsistent(t *testing.T, n *Node) Status {
	t.Helper()
	st, err := n.Status()
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if len(st.Warnings) > 0 {
		t.Errorf("status warnings: %v", st.Warnings)
	}
	if cur := fxCurrent(t, n); st.Current != cur {
		t.Errorf("status current %q, link %q", st.Current, cur)
	}
	doc, err := n.loadState()
	if err != nil {
		t.Fatal(err)
	}
	if doc.Current != st.Current {
		t.Errorf("state.json current %q, link %q", doc.Current, st.Current)
	}
	active := 0
	for _, r := range st.Releases {
		if r.Status == StatusActive {
			active++
			if r.ID != st.Current {
				t.Errorf("release %s is active but current is %q", r.ID, st.Current)
			}
		}
		if r.Status != StatusFailed && !n.releaseExists(r.ID) {
			t.Errorf("release %s (%s) has no directory", r.ID, r.Status)
		}
	}
	if active > 1 {
		t.Errorf("%d active releases", active)
	}
	if st.LockHolder != "" {
		t.Errorf("lock holder %q after the operation", st.LockHolder)
	}
	return st
}

// fxStatusOf returns the status of release id in st ("" when not listed).
func fxStatusOf(st Status, id string) string {
	for _, r := range st.Releases {
		if r.ID == id {
			return r.Status
		}
	}
	return ""
}

// fxGit runs git in dir with a neutral configuration.
func fxGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestValidReleaseID(t *testing.T) {
	for id, want := range map[string]bool{
		"20260422T101500Z-3f9c2ab": true,
		"v1.2.3":                   true,
		"a":                        true,
		"A_b-c.d":                  true,
		strings.Repeat("a", 128):   true,
		strings.Repeat("a", 129):   false,
		"":                         false,
		".staging-x":               false,
		"-x":                       false,
		"a/b":                      false,
		"..":                       false,
		"a b":                      false,
		"é":                        false,
	} {
		if got := ValidReleaseID(id); got != want {
			t.Errorf("ValidReleaseID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestOpenCreatesLayoutAndDefaults(t *testing.T) {
	root := filepath.Join(t.TempDir(), "deep", "app")
	n, err := Open(Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"releases", "shared", ".deploy", ".deploy/tmp"} {
		if !isDir(filepath.Join(root, d)) {
			t.Errorf("%s not created", d)
		}
	}
	if _, err := os.Stat(filepath.Join(root, ".deploy/lock")); err != nil {
		t.Errorf("lock file: %v", err)
	}
	if c := n.Config(); c.Keep != DefaultKeep || c.HookTimeout != DefaultHookTimeout {
		t.Errorf("defaults not applied: %+v", c)
	}
	if _, err := Open(Config{}); err == nil {
		t.Error("Open without a root succeeded")
	}
	if _, err := Open(Config{Root: root, Shared: []string{"../x"}}); err == nil {
		t.Error("Open with a shared path escaping the release succeeded")
	}
	st, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != "" || len(st.Releases) != 0 {
		t.Errorf("fresh status: %+v", st)
	}
}

func TestJournalTail(t *testing.T) {
	n := fxNode(t, Config{})
	for i := 0; i < 30; i++ {
		n.journal(Options{}, JournalEntry{Op: "test", Result: "ok", Message: strings.Repeat("x", i)})
	}
	// A torn last line is skipped.
	f, err := os.OpenFile(n.journalPath(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"torn`)
	f.Close()
	j, err := n.readJournal(5)
	if err != nil {
		t.Fatal(err)
	}
	if len(j) != 5 || len(j[4].Message) != 29 || j[0].PID != os.Getpid() {
		t.Fatalf("journal tail: %+v", j)
	}
}
