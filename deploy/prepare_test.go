package deploy

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrepareSources(t *testing.T) {
	files := []fxEntry{
		{Name: "./", Type: tar.TypeDir},
		{Name: "index.html", Body: "release r1"},
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/run", Body: "#!/bin/sh\n", Mode: 0o755},
		{Name: "latest", Type: tar.TypeSymlink, Link: "bin/run"},
		{Name: "bin/run-again", Type: tar.TypeLink, Link: "bin/run"},
	}
	archive := fxTarGz(t, files)
	tarball := filepath.Join(t.TempDir(), "r1.tar.gz")
	if err := os.WriteFile(tarball, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	srcDir := fxSrcDir(t, map[string]string{"index.html": "release r1", "bin/run": "#!/bin/sh\n", "latest": "symlink:bin/run", ".git/HEAD": "ref"})
	os.Chmod(filepath.Join(srcDir, "bin/run"), 0o755)
	repo := fxSrcDir(t, map[string]string{"index.html": "release r1", "bin/run": "#!/bin/sh\n", "latest": "symlink:bin/run"})
	os.Chmod(filepath.Join(repo, "bin/run"), 0o755)
	fxGit(t, repo, "init", "-q")
	fxGit(t, repo, "add", "-A")
	fxGit(t, repo, "commit", "-q", "-m", "one")

	tests := []struct {
		name    string
		src     func() Source
		wantSum string
	}{
		{"dir", func() Source { return Source{Dir: srcDir} }, ""},
		{"tarball with sha256", func() Source { return Source{Tarball: tarball, SHA256: strings.ToUpper(fxSHA(archive))} }, fxSHA(archive)},
		{"tarball without sha256", func() Source { return Source{Tarball: tarball} }, fxSHA(archive)},
		{"git", func() Source { return Source{GitRepo: repo, GitRev: "main"} }, ""},
		{"git default HEAD", func() Source { return Source{GitRepo: repo} }, ""},
		{"stream", func() Source { return Source{Reader: bytes.NewReader(archive), SHA256: fxSHA(archive)} }, fxSHA(archive)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := fxNode(t, Config{})
			var out bytes.Buffer
			if err := n.Prepare(context.Background(), "r1", tt.src(), Options{Out: &out}); err != nil {
				t.Fatalf("Prepare: %v\n%s", err, out.String())
			}
			dir := n.releaseDir("r1")
			if b, err := os.ReadFile(filepath.Join(dir, "index.html")); err != nil || string(b) != "release r1" {
				t.Fatalf("index.html = %q, %v", b, err)
			}
			fi, err := os.Stat(filepath.Join(dir, "bin/run"))
			if err != nil || fi.Mode().Perm()&0o100 == 0 {
				t.Errorf("bin/run: %v, mode %v", err, fi)
			}
			if l, err := os.Readlink(filepath.Join(dir, "latest")); err != nil || l != "bin/run" {
				t.Errorf("latest -> %q, %v", l, err)
			}
			if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
				t.Error(".git copied into the release")
			}
			fxAssertClean(t, n)
			st := fxAssertConsistent(t, n)
			if len(st.Releases) != 1 || st.Releases[0].Status != StatusPrepared || st.Releases[0].SHA256 != tt.wantSum {
				t.Errorf("status releases = %+v (want sha %q)", st.Releases, tt.wantSum)
			}
			if st.Current != "" {
				t.Errorf("prepare activated %q", st.Current)
			}
		})
	}
}

func TestPrepareChecksumMismatchRefused(t *testing.T) {
	archive := fxTarGz(t, []fxEntry{{Name: "index.html", Body: "x"}})
	tarball := filepath.Join(t.TempDir(), "a.tar.gz")
	os.WriteFile(tarball, archive, 0o644)
	wrong := strings.Repeat("ab", 32)
	for name, src := range map[string]Source{
		"tarball": {Tarball: tarball, SHA256: wrong},
		"stream":  {Reader: bytes.NewReader(archive), SHA256: wrong},
	} {
		t.Run(name, func(t *testing.T) {
			n := fxNode(t, Config{})
			fxDeploy(t, n, "r0")
			err := n.Prepare(context.Background(), "r1", src, Options{})
			if !errors.Is(err, ErrChecksum) {
				t.Fatalf("err = %v, want ErrChecksum", err)
			}
			if n.releaseExists("r1") {
				t.Error("release created despite the mismatch")
			}
			fxAssertClean(t, n)
			st := fxAssertConsistent(t, n)
			if fxStatusOf(st, "r1") != StatusFailed || st.Current != "r0" {
				t.Errorf("status: %+v", st)
			}
		})
	}
}

func TestPrepareGitRevision(t *testing.T) {
	repo := t.TempDir()
	fxWriteTree(t, repo, map[string]string{"index.html": "release old"})
	fxGit(t, repo, "init", "-q")
	fxGit(t, repo, "add", "-A")
	fxGit(t, repo, "commit", "-q", "-m", "one")
	first := fxGit(t, repo, "rev-parse", "HEAD")
	fxWriteTree(t, repo, map[string]string{"index.html": "release new", "added.txt": "x"})
	fxGit(t, repo, "add", "-A")
	fxGit(t, repo, "commit", "-q", "-m", "two")

	n := fxNode(t, Config{})
	if err := n.Prepare(context.Background(), "old", Source{GitRepo: repo, GitRev: "HEAD~1"}, Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(n.releaseDir("old"), "index.html")); string(b) != "release old" {
		t.Errorf("HEAD~1 index.html = %q", b)
	}
	if _, err := os.Stat(filepath.Join(n.releaseDir("old"), "added.txt")); err == nil {
		t.Error("file of a later commit extracted")
	}
	st, _ := n.Status()
	if !strings.Contains(st.Releases[0].Source, first) {
		t.Errorf("source %q does not name commit %s", st.Releases[0].Source, first)
	}
	for _, rev := range []string{"no-such-branch", "--output=/tmp/x"} {
		if err := n.Prepare(context.Background(), "bad", Source{GitRepo: repo, GitRev: rev}, Options{}); err == nil {
			t.Errorf("rev %q accepted", rev)
		}
	}
	fxAssertClean(t, n)
}

func TestPrepareSharedLinks(t *testing.T) {
	n := fxNode(t, Config{Shared: []string{"storage/", ".env", "var/log/", "config/local.php"}})
	os.WriteFile(filepath.Join(n.sharedDir(), ".env"), []byte("SECRET=1"), 0o600)
	src := fxSrcDir(t, map[string]string{
		"index.html":            "release r1",
		".env":                  "SECRET=from-release",
		"storage/app/seed.txt":  "seeded",
		"config/app.php":        "app",
		"config/local.php":      "local default",
		"var/":                  "",
		"public/uploads/keep":   "",
		"storage/framework/x/y": "z",
	})
	if err := n.Prepare(context.Background(), "r1", Source{Dir: src}, Options{}); err != nil {
		t.Fatal(err)
	}
	rel := n.releaseDir("r1")
	wantLinks := map[string]string{
		"storage":          "../../shared/storage",
		".env":             "../../shared/.env",
		"var/log":          "../../../shared/var/log",
		"config/local.php": "../../../shared/config/local.php",
	}
	for p, want := range wantLinks {
		got, err := os.Readlink(filepath.Join(rel, p))
		if err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", p, got, err, want)
		}
	}
	// An existing shared file wins over the release's copy.
	if b, _ := os.ReadFile(filepath.Join(rel, ".env")); string(b) != "SECRET=1" {
		t.Errorf(".env through the link = %q", b)
	}
	// A missing shared directory is seeded from the release's copy.
	if b, _ := os.ReadFile(filepath.Join(rel, "storage/app/seed.txt")); string(b) != "seeded" {
		t.Errorf("seeded storage = %q", b)
	}
	if !isDir(filepath.Join(n.sharedDir(), "var/log")) {
		t.Error("shared/var/log not created as a directory")
	}
	if b, _ := os.ReadFile(filepath.Join(n.sharedDir(), "config/local.php")); string(b) != "local default" {
		t.Errorf("shared/config/local.php = %q", b)
	}

	// Data written through one release is seen by the next one.
	os.WriteFile(filepath.Join(rel, "storage/app/upload.txt"), []byte("user data"), 0o644)
	src2 := fxSrcDir(t, map[string]string{"index.html": "release r2", "storage/app/seed.txt": "new seed"})
	if err := n.Prepare(context.Background(), "r2", Source{Dir: src2}, Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(n.releaseDir("r2"), "storage/app/upload.txt")); string(b) != "user data" {
		t.Errorf("shared data through r2 = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(n.sharedDir(), "storage/app/seed.txt")); string(b) != "seeded" {
		t.Errorf("the second release overwrote shared data: %q", b)
	}
	// The links resolve through current too.
	if err := n.Activate(context.Background(), "r2", Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(n.currentPath(), "storage/app/upload.txt")); string(b) != "user data" {
		t.Errorf("through current: %q", b)
	}
}

func TestPrepareFailingHookLeavesEverythingAsItWas(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1")
	before := fxAssertConsistent(t, n)
	n.cfg.BuildHooks = []Hook{{Name: "ok", Run: "echo fine"}, {Name: "composer", Run: "echo boom-output; echo oops >&2; exit 3"}}
	var out bytes.Buffer
	err := n.Prepare(context.Background(), "r2", Source{Dir: fxSrcDir(t, map[string]string{"index.html": "release r2"})}, Options{Out: &out})
	if err == nil || !strings.Contains(err.Error(), `"composer" failed`) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "boom-output") {
		t.Errorf("hook output not shown: %q", out.String())
	}
	if n.releaseExists("r2") {
		t.Error("failed release exists")
	}
	fxAssertClean(t, n)
	st := fxAssertConsistent(t, n)
	if st.Current != "r1" || fxStatusOf(st, "r1") != StatusActive || fxStatusOf(st, "r2") != StatusFailed {
		t.Errorf("status: %+v", st.Releases)
	}
	if len(st.Releases) != len(before.Releases)+1 {
		t.Errorf("releases %v", st.Releases)
	}
	var sawOutput, sawFailed bool
	for _, e := range st.Journal {
		if e.Op == "hook" && e.Result == "failed" && strings.Contains(e.Output, "boom-output") && strings.Contains(e.Output, "oops") {
			sawOutput = true
		}
		if e.Op == "prepare" && e.Release == "r2" && e.Result == "failed" {
			sawFailed = true
		}
	}
	if !sawOutput || !sawFailed {
		t.Errorf("journal lacks the hook output or the failure: %+v", st.Journal)
	}
	// A failed id can be prepared again once fixed.
	n.cfg.BuildHooks = nil
	fxPrepare(t, n, "r2")
}

func TestPrepareHookEnvironment(t *testing.T) {
	n := fxNode(t, Config{})
	n.cfg.BuildHooks = []Hook{
		{Name: "env", Run: `printf '%s\n%s\n%s\n%s\n' "$RELEASE_ID" "$RELEASE_DIR" "$DEPLOY_ROOT" "$(pwd)" > built.txt`},
		{Run: `echo second >> built.txt`},
	}
	fxPrepare(t, n, "r1")
	b, err := os.ReadFile(filepath.Join(n.releaseDir("r1"), "built.txt"))
	if err != nil {
		t.Fatal(err)
	}
	staging := n.stagingDir("r1")
	want := strings.Join([]string{"r1", staging, n.root, staging, "second", ""}, "\n")
	if string(b) != want {
		t.Errorf("built.txt = %q, want %q", b, want)
	}
}

func TestPrepareDiskFloorRefused(t *testing.T) {
	n := fxNode(t, Config{MinFreeBytes: 1 << 62})
	src := fxSrcDir(t, map[string]string{"index.html": "x"})
	err := n.Prepare(context.Background(), "r1", Source{Dir: src}, Options{})
	if !errors.Is(err, ErrDiskSpace) || !strings.Contains(err.Error(), "bytes free") {
		t.Fatalf("err = %v, want ErrDiskSpace", err)
	}
	fxAssertClean(t, n)
	if ids, _ := n.releaseDirs(); len(ids) != 0 {
		t.Errorf("releases %v", ids)
	}
	n.cfg.MinFreeBytes = 1
	if err := n.Prepare(context.Background(), "r1", Source{Dir: src}, Options{}); err != nil {
		t.Errorf("with a low floor: %v", err)
	}
}

func TestPrepareRefusesUnsafeArchives(t *testing.T) {
	tests := []struct {
		name    string
		entries []fxEntry
	}{
		{"dot-dot", []fxEntry{{Name: "../x", Body: "evil"}}},
		{"nested dot-dot", []fxEntry{{Name: "a/../../x", Body: "evil"}}},
		{"absolute", []fxEntry{{Name: "/tmp/edge-deploy-evil", Body: "evil"}}},
		{"symlink to /etc", []fxEntry{{Name: "etc", Type: tar.TypeSymlink, Link: "/etc"}}},
		{"symlink escaping", []fxEntry{{Name: "a/up", Type: tar.TypeSymlink, Link: "../../x"}}},
		{"symlink chain", []fxEntry{{Name: "y", Type: tar.TypeSymlink, Link: "."}, {Name: "x", Type: tar.TypeSymlink, Link: "y/.."}}},
		{"write through an outside link", []fxEntry{{Name: "etc", Type: tar.TypeSymlink, Link: "/etc"}, {Name: "etc/evil", Body: "evil"}}},
		{"hard link outside", []fxEntry{{Name: "h", Type: tar.TypeLink, Link: "../x"}}},
		{"hard link to /etc/passwd", []fxEntry{{Name: "h", Type: tar.TypeLink, Link: "/etc/passwd"}}},
		{"char device", []fxEntry{{Name: "null", Type: tar.TypeChar}}},
		{"block device", []fxEntry{{Name: "sda", Type: tar.TypeBlock}}},
		{"fifo", []fxEntry{{Name: "p", Type: tar.TypeFifo}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := fxNode(t, Config{})
			fxDeploy(t, n, "r0")
			entries := append([]fxEntry{{Name: "index.html", Body: "release r1"}}, tt.entries...)
			err := n.Prepare(context.Background(), "r1", Source{Reader: bytes.NewReader(fxTarGz(t, entries))}, Options{})
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("err = %v, want ErrUnsafeArchive", err)
			}
			if n.releaseExists("r1") {
				t.Error("release created")
			}
			for _, p := range []string{filepath.Join(n.releasesDir(), "x"), filepath.Join(n.root, "x"), "/tmp/edge-deploy-evil", "/etc/evil"} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s written outside the release", p)
				}
			}
			fxAssertClean(t, n)
			if st := fxAssertConsistent(t, n); st.Current != "r0" {
				t.Errorf("current %q", st.Current)
			}
		})
	}
}

func TestPrepareDirSourceRefusesOutsideLinks(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"absolute": {"index.html": "x", "etc": "symlink:/etc"},
		"escaping": {"index.html": "x", "a/up": "symlink:../../.."},
	} {
		t.Run(name, func(t *testing.T) {
			n := fxNode(t, Config{})
			err := n.Prepare(context.Background(), "r1", Source{Dir: fxSrcDir(t, files)}, Options{})
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("err = %v", err)
			}
			fxAssertClean(t, n)
		})
	}
}

func TestPrepareExistingID(t *testing.T) {
	archive := fxTarGz(t, []fxEntry{{Name: "index.html", Body: "release r1"}})
	other := fxTarGz(t, []fxEntry{{Name: "index.html", Body: "release other"}})
	tarball := filepath.Join(t.TempDir(), "r1.tar.gz")
	os.WriteFile(tarball, archive, 0o644)
	n := fxNode(t, Config{})
	if err := n.Prepare(context.Background(), "r1", Source{Tarball: tarball}, Options{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		src     Source
		wantErr error
	}{
		{"same tarball (sha256 computed)", Source{Tarball: tarball}, nil},
		{"same stream sha256", Source{Reader: bytes.NewReader(archive), SHA256: fxSHA(archive)}, nil},
		{"other sha256", Source{Reader: bytes.NewReader(other), SHA256: fxSHA(other)}, ErrReleaseExists},
		{"stream without sha256", Source{Reader: bytes.NewReader(archive)}, ErrReleaseExists},
		{"directory", Source{Dir: t.TempDir()}, ErrReleaseExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := n.Prepare(context.Background(), "r1", tt.src, Options{})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if b, _ := os.ReadFile(filepath.Join(n.releaseDir("r1"), "index.html")); string(b) != "release r1" {
				t.Errorf("release changed: %q", b)
			}
			if st := fxAssertConsistent(t, n); fxStatusOf(st, "r1") != StatusPrepared {
				t.Errorf("status %v", st.Releases)
			}
		})
	}
}

func TestPrepareInvalidArguments(t *testing.T) {
	n := fxNode(t, Config{})
	dir := fxSrcDir(t, map[string]string{"index.html": "x"})
	tests := []struct {
		name string
		id   string
		src  Source
		want error
	}{
		{"bad id", "../x", Source{Dir: dir}, ErrInvalidID},
		{"staging-like id", ".staging-x", Source{Dir: dir}, ErrInvalidID},
		{"no source", "r1", Source{}, ErrInvalidSource},
		{"two sources", "r1", Source{Dir: dir, Tarball: "x.tar.gz"}, ErrInvalidSource},
		{"bad sha256", "r1", Source{Tarball: "x.tar.gz", SHA256: "xyz"}, ErrInvalidSource},
		{"sha256 for a dir", "r1", Source{Dir: dir, SHA256: strings.Repeat("0", 64)}, ErrInvalidSource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := n.Prepare(context.Background(), tt.id, tt.src, Options{}); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if err := n.Prepare(context.Background(), "r1", Source{Dir: filepath.Join(dir, "missing")}, Options{}); err == nil {
		t.Error("missing directory accepted")
	}
	fxAssertClean(t, n)
}

func TestPrepareDryRunChangesNothing(t *testing.T) {
	n := fxNode(t, Config{Shared: []string{"storage/"}, BuildHooks: []Hook{{Name: "build", Run: "touch built"}}})
	var out bytes.Buffer
	err := n.Prepare(context.Background(), "r1", Source{Dir: fxSrcDir(t, map[string]string{"index.html": "x"})}, Options{DryRun: true, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	plan := out.String()
	for _, want := range []string{"extract directory", "releases/.staging-r1", "symlink releases/.staging-r1/storage -> ../../shared/storage", `"build"`, "touch built", "rename releases/.staging-r1 -> releases/r1", "fsync releases"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	if ids, _ := n.releaseDirs(); len(ids) != 0 {
		t.Errorf("dry run created %v", ids)
	}
	fxAssertClean(t, n)
	if _, err := os.Stat(n.journalPath()); err == nil {
		t.Error("dry run wrote the journal")
	}
	if _, err := os.Stat(n.statePath()); err == nil {
		t.Error("dry run wrote state.json")
	}
	if _, err := os.Stat(filepath.Join(n.sharedDir(), "storage")); err == nil {
		t.Error("dry run created a shared directory")
	}
}

func TestPrepareCancelled(t *testing.T) {
	n := fxNode(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := n.Prepare(ctx, "r1", Source{Reader: bytes.NewReader(fxTarGz(t, []fxEntry{{Name: "index.html", Body: "x"}}))}, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	fxAssertClean(t, n)
}

// TestPrepareRefusesLinkAtSharedPath: a release that holds a symbolic link
// where a shared path goes is refused, because the link check would follow
// a link that linkShared then replaces, letting another link escape (found
// by FuzzExtract: root -> d/…/d/logs/../…/.. resolved to /).
func TestPrepareRefusesLinkAtSharedPath(t *testing.T) {
	for _, shared := range []string{"logs/", "var/logs/"} {
		t.Run(shared, func(t *testing.T) {
			root := t.TempDir()
			n := fxNode(t, Config{Root: root, Shared: []string{shared}})
			linkAt := strings.TrimSuffix(shared, "/")
			if strings.Contains(linkAt, "/") {
				linkAt = "var" // a link in place of the shared path's directory
			}
			data := fxTarGz(t, []fxEntry{
				{Name: "index.html", Body: "hi"},
				{Name: "a/b/c", Type: tar.TypeDir},
				{Name: linkAt, Type: tar.TypeSymlink, Link: "a/b/c"},
			})
			err := n.Prepare(context.Background(), "r1", Source{Reader: bytes.NewReader(data)}, Options{})
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("got %v, want ErrUnsafeArchive", err)
			}
			if _, err := os.Lstat(filepath.Join(root, "releases", "r1")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("refused release exists: %v", err)
			}
		})
	}
}
