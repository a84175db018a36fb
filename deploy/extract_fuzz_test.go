package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FuzzExtract feeds arbitrary bytes, as an uploaded tar.gz, to the
// extraction code twice per input:
//
//  1. extractTarGz straight into a fresh directory opened with os.OpenRoot;
//  2. Node.Prepare with a Reader source on a fresh node that has shared
//     paths (so checkTreeLinks and linkShared run after the extraction).
//
// Invariants: no panic; nothing outside the destination (respectively the
// release, its staging directory, the node's shared paths and .deploy)
// appears or changes, and no file outside gains a hard link; when Prepare
// succeeds every path of the release resolves inside the release or inside
// shared/; when it fails there is no releases/<id> and nothing left behind.
//
// Prepare fsyncs its state and journal and calls sync(2) on success, so
// iterations are several times faster with TMPDIR on a tmpfs:
//
//	TMPDIR=/dev/shm go test -run='^$' -fuzz='^FuzzExtract$' -fuzztime=60s ./deploy
func FuzzExtract(f *testing.F) {
	for _, s := range fzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 || fzTooBig(data) {
			t.Skip("input too large")
		}
		base := t.TempDir()
		canary := fzCanary(t, base)

		// 1. The bare extraction.
		dest := filepath.Join(base, "x", "dest")
		if err := os.MkdirAll(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		before := fzSnapshot(t, base)
		root, err := os.OpenRoot(dest)
		if err != nil {
			t.Fatal(err)
		}
		xerr := extractTarGz(context.Background(), bytes.NewReader(data), root)
		root.Close()
		after := fzSnapshot(t, base)
		fzAssertOnlyUnder(t, "extractTarGz", base, before, after, []string{"x/dest"})
		fzAssertCanary(t, canary)
		fzAssertNoForeignLinks(t, dest, before, "x/dest")
		if xerr == nil {
			// Whatever checkTreeLinks accepts must really stay inside.
			if cerr := checkTreeLinks(dest); cerr == nil {
				fzAssertResolvesInside(t, dest, dest)
			}
		}

		// 2. The whole Prepare of an upload.
		n, err := Open(Config{Root: filepath.Join(base, "app"), Shared: []string{"logs/", "conf/app.yml"}})
		if err != nil {
			t.Fatal(err)
		}
		before = fzSnapshot(t, base)
		var out bytes.Buffer
		perr := n.Prepare(context.Background(), "r1", Source{Reader: bytes.NewReader(data)}, Options{Out: &out})
		after = fzSnapshot(t, base)
		allowed := []string{"app/releases/r1", "app/shared/logs", "app/shared/conf", "app/.deploy"}
		fzAssertOnlyUnder(t, "Prepare", base, before, after, allowed)
		fzAssertCanary(t, canary)
		fzAssertNoForeignLinks(t, n.releaseDir("r1"), before, allowed...)
		fzAssertClean(t, n)
		if perr != nil {
			if n.releaseExists("r1") {
				t.Errorf("Prepare failed (%v) but releases/r1 exists", perr)
			}
			if _, err := os.Lstat(n.releaseDir("r1")); err == nil {
				t.Errorf("Prepare failed (%v) but releases/r1 exists (not a directory)", perr)
			}
			return
		}
		if !n.releaseExists("r1") {
			t.Fatalf("Prepare succeeded but releases/r1 is missing\n%s", out.String())
		}
		fzAssertResolvesInside(t, n.releaseDir("r1"), n.releaseDir("r1"), n.sharedDir())
	})
}

// fzEvilAbs is the absolute path the seeds try to write to.
const fzEvilAbs = "/tmp/edge-deploy-fuzz-evil"

// fzSeeds returns valid and malicious archives.
func fzSeeds(t testing.TB) [][]byte {
	reg := func(name, body string) fxEntry { return fxEntry{Name: name, Body: body} }
	dir := func(name string) fxEntry { return fxEntry{Name: name, Type: tar.TypeDir} }
	sym := func(name, target string) fxEntry { return fxEntry{Name: name, Type: tar.TypeSymlink, Link: target} }
	hard := func(name, target string) fxEntry { return fxEntry{Name: name, Type: tar.TypeLink, Link: target} }
	index := reg("index.html", "release r1")
	sets := [][]fxEntry{
		// Valid releases.
		{dir("./"), index, dir("bin/"), {Name: "bin/run", Body: "#!/bin/sh\n", Mode: 0o755}, sym("latest", "bin/run"), hard("bin/run-again", "bin/run")},
		{index, reg("a/b/c.txt", "deep"), sym("a/b/up", "../../index.html"), sym("a/self", "."), sym("a/dangling", "missing/file")},
		{index, dir("logs/"), reg("logs/app.log", "log"), sym("logs/up", ".."), reg("conf/app.yml", "k: v")},
		{index, dir("emptymode/"), {Name: "zero", Body: "z"}, {Name: "dir0/", Type: tar.TypeDir}, reg("dir0/f", "f")},
		// Path escapes.
		{index, reg("../x", "evil")},
		{index, reg("a/../../x", "evil")},
		{index, reg("./../x", "evil")},
		{index, reg(fzEvilAbs, "evil")},
		{index, dir("/"), dir("/tmp/edge-deploy-fuzz-evil-dir/")},
		// Symbolic links leaving the release.
		{index, sym("etc", "/etc")},
		{index, sym("etc", "/etc"), reg("etc/edge-deploy-fuzz-evil", "evil")},
		{index, sym("a/up", "../../x")},
		{index, sym("a/up", ".."), sym("a/up2", "up/.."), reg("a/up2/x", "evil")},
		{index, sym("y", "."), sym("x", "y/..")},
		{index, sym("y", "."), sym("x", "y/.."), reg("x/escaped", "evil")},
		{index, sym("loop", "loop"), sym("l1", "l2"), sym("l2", "l1")},
		{index, dir("sub/"), sym("d", "sub"), reg("d/f", "through a link inside")},
		{index, sym("e", ""), sym("tmp", fzEvilAbs)},
		// Hard links.
		{index, hard("h", "index.html")},
		{index, hard("h", "missing")},
		{index, hard("h", "../x")},
		{index, hard("h", "/etc/passwd")},
		{index, hard("h", ".")},
		{index, sym("s", "index.html"), hard("h", "s")},
		{index, dir("d/"), hard("h", "d")},
		{index, sym("up", ".."), hard("h", "up/x")},
		// Devices and fifos.
		{index, {Name: "null", Type: tar.TypeChar}},
		{index, {Name: "sda", Type: tar.TypeBlock}},
		{index, {Name: "p", Type: tar.TypeFifo}},
		// Duplicate names.
		{index, reg("index.html", "second")},
		{index, dir("index.html/")},
		{dir("d/"), reg("d/f", "x"), reg("d", "file over a directory")},
		{index, sym("l", "index.html"), reg("l", "replaces the link")},
		{index, reg("l", "file"), sym("l", "index.html")},
		{index, sym("l", "/etc"), sym("l", "index.html")},
		{index, hard("h", "index.html"), reg("index.html", "rewritten")},
		// Shared paths that are links in the release.
		{index, sym("logs", "elsewhere"), sym("conf", ".")},
	}
	var seeds [][]byte
	for _, s := range sets {
		seeds = append(seeds, fzTarGz(t, s))
	}
	good := seeds[0]
	seeds = append(seeds,
		good[:len(good)/2], // truncated gzip
		good[:5],           // truncated header
		nil,
		[]byte("not gzip at all"),
		fzGzip(t, []byte("not a tar stream, but gzipped")),
		fzRawTar(t, []*tar.Header{{Name: strings.Repeat("long/", 40) + "name", Typeflag: tar.TypeReg, Mode: 0o644}}),
		fzRawTar(t, []*tar.Header{{Name: "g", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"path": "../evil"}}, {Name: "ok", Typeflag: tar.TypeReg, Mode: 0o644}}),
		fzRawTar(t, []*tar.Header{{Name: "gnu", Typeflag: tar.TypeGNULongName}}),
		fzRawTar(t, []*tar.Header{{Name: "cont", Typeflag: tar.TypeCont}}),
	)
	return seeds
}

// fzTarGz is fxTarGz for any testing.TB (the fuzz seeds are built with a
// *testing.F).
func fzTarGz(t testing.TB, entries []fxEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 && e.Name != "zero" && e.Name != "dir0/" {
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
			t.Fatalf("%s: %v", e.Name, err)
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
	return fzGzip(t, buf.Bytes())
}

// fzGzip gzips b.
func fzGzip(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fzRawTar writes hdrs (errors on individual headers ignored) as a tar.gz.
func fzRawTar(t testing.TB, hdrs []*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		_ = tw.WriteHeader(h)
	}
	_ = tw.Close()
	return fzGzip(t, buf.Bytes())
}

// fzTooBig reports whether data decompresses to more than the per-input
// budget, or declares files (sparse ones included) adding up to more.
func fzTooBig(data []byte) bool {
	const limit = 8 << 20
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return false
	}
	raw, _ := io.ReadAll(io.LimitReader(zr, limit+1))
	if len(raw) > limit {
		return true
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	var total int64
	for {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if h.Size < 0 || h.Size > limit {
			return true
		}
		if total += h.Size; total > limit {
			return true
		}
	}
}

// fzCanaryFiles is what lives outside every destination.
type fzCanaryFiles struct {
	secret string
	body   []byte
}

// fzCanary creates base/outside with a file and a directory, and a file
// right in base.
func fzCanary(t *testing.T, base string) fzCanaryFiles {
	t.Helper()
	secret := filepath.Join(base, "outside", "secret")
	if err := os.MkdirAll(filepath.Join(base, "outside", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := []byte("outside the release " + base)
	for _, p := range []string{secret, filepath.Join(base, "index.html")} {
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fzCanaryFiles{secret: secret, body: body}
}

func fzAssertCanary(t *testing.T, c fzCanaryFiles) {
	t.Helper()
	b, err := os.ReadFile(c.secret)
	if err != nil || !bytes.Equal(b, c.body) {
		t.Errorf("canary %s changed: %q, %v", c.secret, b, err)
	}
	if _, err := os.Lstat(fzEvilAbs); err == nil {
		t.Errorf("%s was created", fzEvilAbs)
	}
	if _, err := os.Lstat("/etc/edge-deploy-fuzz-evil"); err == nil {
		t.Errorf("/etc/edge-deploy-fuzz-evil was created")
	}
}

// fzEntry is what a snapshot records of one path.
type fzEntry struct {
	mode  fs.FileMode
	size  int64
	mtime time.Time
	ino   uint64
	nlink uint64
	link  string
}

func (e fzEntry) String() string {
	return fmt.Sprintf("%v size=%d ino=%d nlink=%d link=%q", e.mode, e.size, e.ino, e.nlink, e.link)
}

// fzSnapshot records every path under base (slash-separated, relative),
// without following symbolic links.
func fzSnapshot(t *testing.T, base string) map[string]fzEntry {
	t.Helper()
	snap := map[string]fzEntry{}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		e := fzEntry{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			e.ino, e.nlink = st.Ino, uint64(st.Nlink)
		}
		if fi.IsDir() {
			// Directory sizes and times change with their entries; the
			// entries themselves are compared.
			e.size, e.mtime, e.nlink = 0, time.Time{}, 0
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			e.link, _ = os.Readlink(p)
		}
		snap[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot of %s: %v", base, err)
	}
	return snap
}

// fzUnder reports whether rel is one of prefixes or below one.
func fzUnder(rel string, prefixes []string) bool {
	for _, p := range prefixes {
		if rel == p || strings.HasPrefix(rel, p+"/") {
			return true
		}
	}
	return false
}

// fzAssertOnlyUnder fails when a path outside the allowed prefixes
// appeared, disappeared or changed between the snapshots.
func fzAssertOnlyUnder(t *testing.T, op, base string, before, after map[string]fzEntry, allowed []string) {
	t.Helper()
	for rel, b := range before {
		if fzUnder(rel, allowed) {
			continue
		}
		a, ok := after[rel]
		if !ok {
			t.Errorf("%s: %s disappeared (outside the destination)", op, filepath.Join(base, rel))
		} else if a != b {
			t.Errorf("%s: %s changed (outside the destination): %v -> %v", op, filepath.Join(base, rel), b, a)
		}
	}
	for rel, a := range after {
		if _, ok := before[rel]; !ok && !fzUnder(rel, allowed) {
			t.Errorf("%s: %s created outside the destination (%v)", op, filepath.Join(base, rel), a)
		}
	}
}

// fzAssertNoForeignLinks fails when a regular file under dir shares its
// inode with a file of the before snapshot that lies outside the allowed
// prefixes (a hard link to something outside).
func fzAssertNoForeignLinks(t *testing.T, dir string, before map[string]fzEntry, allowed ...string) {
	t.Helper()
	outside := map[uint64]string{}
	for rel, e := range before {
		if e.mode.IsRegular() && !fzUnder(rel, allowed) {
			outside[e.ino] = rel
		}
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if rel, found := outside[st.Ino]; found {
				t.Errorf("%s is a hard link to %s, outside the destination", p, rel)
			}
		}
		return nil
	})
}

// fzAssertClean is fxAssertClean plus a look for any staging directory.
func fzAssertClean(t *testing.T, n *Node) {
	t.Helper()
	fxAssertClean(t, n)
	if _, err := os.Lstat(n.stagingDir("r1")); err == nil {
		t.Errorf("staging directory %s left behind", n.stagingDir("r1"))
	}
}

// fzAssertResolvesInside walks dir (without following links) and fails
// when a path resolves, following every symbolic link the way the kernel
// does, outside all of the roots. Dangling links are resolved lexically
// past the missing component; loops are harmless.
func fzAssertResolvesInside(t *testing.T, dir string, roots ...string) {
	t.Helper()
	var real []string
	for _, r := range roots {
		rr, err := filepath.EvalSymlinks(r)
		if err != nil {
			t.Fatalf("resolving %s: %v", r, err)
		}
		real = append(real, rr)
	}
	inside := func(p string) bool {
		for _, r := range real {
			if p == r || strings.HasPrefix(p, r+string(filepath.Separator)) {
				return true
			}
		}
		return false
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		res, ok := fzResolve(p)
		if ok && !inside(res) {
			target, _ := os.Readlink(p)
			t.Errorf("%s (-> %q) resolves to %s, outside %v", p, target, res, real)
		}
		if ev, err := filepath.EvalSymlinks(p); err == nil && !inside(ev) {
			t.Errorf("%s: EvalSymlinks gives %s, outside %v", p, ev, real)
		}
		return nil
	})
}

// fzResolve resolves the absolute path p component by component on the
// real file system, like the kernel; a missing component is taken
// lexically. ok is false for a symbolic link loop.
func fzResolve(p string) (string, bool) {
	pending := strings.Split(filepath.ToSlash(p), "/")
	cur := "/"
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 255 {
			return "", false
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", false
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	return cur, true
}
