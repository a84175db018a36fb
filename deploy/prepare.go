package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Source is where Prepare takes a release from: exactly one of Dir,
// Tarball, GitRepo (with GitRev, default HEAD) or Reader.
type Source struct {
	Dir     string    // a directory, copied (a top-level .git is skipped)
	Tarball string    // a .tar.gz file
	SHA256  string    // hex sha256 of Tarball or Reader; checked when set
	GitRepo string    // a local git repository; `git archive <GitRev>` is extracted
	GitRev  string    // a revision of GitRepo (default HEAD)
	Reader  io.Reader // a tar.gz stream (an upload), spooled to .deploy/tmp and checked before extraction
}

// kind validates s and names its form.
func (s Source) kind() (string, error) {
	var kinds []string
	if s.Dir != "" {
		kinds = append(kinds, "dir")
	}
	if s.Tarball != "" {
		kinds = append(kinds, "tarball")
	}
	if s.GitRepo != "" {
		kinds = append(kinds, "git")
	}
	if s.Reader != nil {
		kinds = append(kinds, "reader")
	}
	if len(kinds) != 1 {
		return "", fmt.Errorf("the source must be exactly one of a directory, a tarball, a git repository or a stream (got %d)", len(kinds))
	}
	if s.SHA256 != "" {
		if kinds[0] != "tarball" && kinds[0] != "reader" {
			return "", errors.New("sha256 applies only to a tarball or a stream")
		}
		if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != sha256.Size {
			return "", fmt.Errorf("sha256 %q is not 64 hex digits", s.SHA256)
		}
	}
	if s.GitRev != "" && kinds[0] != "git" {
		return "", errors.New("a git revision needs a git repository")
	}
	if strings.HasPrefix(s.GitRev, "-") {
		return "", fmt.Errorf("invalid git revision %q", s.GitRev)
	}
	return kinds[0], nil
}

// String describes the source for plans and the journal.
func (s Source) String() string {
	switch {
	case s.Dir != "":
		return "directory " + s.Dir
	case s.Tarball != "":
		return "tarball " + s.Tarball
	case s.GitRepo != "":
		rev := s.GitRev
		if rev == "" {
			rev = "HEAD"
		}
		return "git " + s.GitRepo + " " + rev
	case s.Reader != nil:
		return "uploaded tar.gz stream"
	}
	return "no source"
}

// FreeBytes returns the space available to unprivileged users on the file
// system holding dir.
func FreeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Prepare builds release id from src without touching traffic: it unpacks
// into releases/.staging-<id>, links the shared paths, runs the build
// hooks there and, only when all of that succeeded, renames the staging
// directory to releases/<id> and fsyncs releases/. On any failure the
// staging directory is removed, the failure is journaled and recorded as
// status "failed"; current and every release stay untouched.
//
// An id that already exists is an error wrapping ErrReleaseExists, except
// when the source's sha256 (given, or computed from a Tarball) equals the
// one recorded for that release: then Prepare succeeds without doing
// anything (a retried upload is idempotent).
func (n *Node) Prepare(ctx context.Context, id string, src Source, o Options) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("preparing release %s: %w", id, err)
		}
	}()
	if err := checkReleaseID(id); err != nil {
		return err
	}
	kind, err := src.kind()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSource, err)
	}
	l, st, err := n.beginOperation("prepare "+id, o)
	if err != nil {
		return err
	}
	defer l.release()
	if n.releaseExists(id) {
		return n.preparedAlready(o, st, id, src, kind)
	}
	if n.cfg.MinFreeBytes > 0 {
		free, err := FreeBytes(n.root)
		if err != nil {
			return err
		}
		o.printf("free space: %d bytes (floor %d)", free, n.cfg.MinFreeBytes)
		if free < n.cfg.MinFreeBytes {
			err := fmt.Errorf("%w: %d bytes free on %s, need at least %d", ErrDiskSpace, free, n.root, n.cfg.MinFreeBytes)
			n.journal(o, JournalEntry{Op: "prepare", Release: id, Result: "failed", Message: err.Error()})
			return err
		}
	}
	staging := n.stagingDir(id)
	if o.DryRun {
		n.planPrepare(o, id, src)
		return nil
	}
	n.journal(o, JournalEntry{Op: "prepare", Release: id, Result: "info", Message: "started from " + src.String()})
	o.printf("preparing %s from %s", id, src)
	if err := os.Mkdir(staging, 0o755); err != nil {
		return err
	}
	complete := false
	defer func() {
		if complete {
			return
		}
		if rerr := os.RemoveAll(staging); rerr != nil {
			fmt.Fprintf(o.out(), "warning: removing %s: %v\n", staging, rerr)
		}
		msg := fmt.Sprintf("preparing release %s: %v", id, err)
		if st2, lerr := n.loadState(); lerr == nil {
			st2.Releases[id] = &releaseRec{Status: StatusFailed, PreparedAt: time.Now().UTC(), PreparedSeq: st2.next(), Source: src.String(), Error: err.Error()}
			if serr := n.saveState(st2); serr != nil {
				fmt.Fprintf(o.out(), "warning: recording the failure: %v\n", serr)
			}
		}
		n.journal(o, JournalEntry{Op: "prepare", Release: id, Result: "failed", Message: msg})
	}()

	sum, desc, err := n.unpack(ctx, id, src, kind, staging)
	if err != nil {
		return err
	}
	injectFault("prepare:extracted")
	if err := n.checkSharedPathsNotLinks(staging); err != nil {
		return err
	}
	if err := checkTreeLinks(staging); err != nil {
		return err
	}
	if err := n.linkShared(o, id, staging); err != nil {
		return err
	}
	injectFault("prepare:linked")
	if err := n.runHooks(ctx, o, "build", n.cfg.BuildHooks, staging, id, n.releaseDir(id)); err != nil {
		return err
	}
	injectFault("prepare:built")
	if err := ctx.Err(); err != nil {
		return err
	}
	// Make the release's contents durable before the rename that marks
	// it complete.
	if err := syncFS(staging); err != nil {
		return err
	}
	injectFault("prepare:before-rename")
	if err := os.Rename(staging, n.releaseDir(id)); err != nil {
		return err
	}
	complete = true
	if err := syncDir(n.releasesDir()); err != nil {
		return err
	}
	injectFault("prepare:renamed")
	rec := &releaseRec{Status: StatusPrepared, PreparedAt: time.Now().UTC(), SHA256: sum, Source: desc, PreparedSeq: st.next()}
	st.Releases[id] = rec
	if err := n.saveState(st); err != nil {
		return err
	}
	injectFault("prepare:state-saved")
	msg := "prepared from " + desc
	if sum != "" {
		msg += " (sha256 " + sum + ")"
	}
	n.journal(o, JournalEntry{Op: "prepare", Release: id, Result: "ok", Message: msg})
	o.printf("prepared %s", id)
	return nil
}

// preparedAlready handles Prepare for an id whose directory exists.
func (n *Node) preparedAlready(o Options, st *stateDoc, id string, src Source, kind string) error {
	want := strings.ToLower(src.SHA256)
	if want == "" && kind == "tarball" {
		if sum, err := fileSHA256(src.Tarball); err == nil {
			want = sum
		}
	}
	rec := st.Releases[id]
	if want != "" && rec != nil && rec.SHA256 == want && rec.Status != StatusBad {
		o.printf("release %s already prepared from the same sha256; nothing to do", id)
		n.journal(o, JournalEntry{Op: "prepare", Release: id, Result: "ok", Message: "already prepared from sha256 " + want})
		return nil
	}
	return fmt.Errorf("%w: %s (remove it with cleanup or choose another id)", ErrReleaseExists, n.relRoot(n.releaseDir(id)))
}

// planPrepare prints what Prepare would do.
func (n *Node) planPrepare(o Options, id string, src Source) {
	staging := n.relRoot(n.stagingDir(id))
	if src.SHA256 != "" {
		o.printf("verify sha256 %s of the %s", strings.ToLower(src.SHA256), src)
	}
	o.printf("mkdir %s", staging)
	o.printf("extract %s into %s (refusing entries that escape, absolute paths, outside links and devices)", src, staging)
	for _, s := range n.cfg.Shared {
		p, _ := cleanSharedPath(s)
		rel, _ := filepath.Rel(filepath.Dir(filepath.Join(n.releaseDir(id), p)), filepath.Join(n.sharedDir(), p))
		o.printf("symlink %s/%s -> %s (shared/%s, created if missing)", staging, p, rel, p)
	}
	for i, h := range n.cfg.BuildHooks {
		_ = n.runHook(context.Background(), o, hookRun{kind: "build", hook: h, index: i, dir: n.stagingDir(id), id: id, finalDir: n.releaseDir(id)})
	}
	o.printf("rename %s -> %s", staging, n.relRoot(n.releaseDir(id)))
	o.printf("fsync %s", n.relRoot(n.releasesDir()))
	o.printf("record %s as prepared in %s", id, n.relRoot(n.statePath()))
}

// unpack fills staging from src and returns the artifact's sha256 (for a
// tarball or stream) and a description of the source.
func (n *Node) unpack(ctx context.Context, id string, src Source, kind, staging string) (sum, desc string, err error) {
	root, err := os.OpenRoot(staging)
	if err != nil {
		return "", "", err
	}
	defer root.Close()
	want := strings.ToLower(src.SHA256)
	switch kind {
	case "dir":
		fi, err := os.Stat(src.Dir)
		if err != nil {
			return "", "", fmt.Errorf("source directory: %w", err)
		}
		if !fi.IsDir() {
			return "", "", fmt.Errorf("source %s is not a directory", src.Dir)
		}
		abs, _ := filepath.Abs(src.Dir)
		return "", "directory " + abs, copyTreeInto(ctx, src.Dir, root)
	case "tarball":
		sum, err := fileSHA256(src.Tarball)
		if err != nil {
			return "", "", fmt.Errorf("reading tarball: %w", err)
		}
		if want != "" && sum != want {
			return "", "", fmt.Errorf("%w: tarball %s has sha256 %s, expected %s", ErrChecksum, src.Tarball, sum, want)
		}
		f, err := os.Open(src.Tarball)
		if err != nil {
			return "", "", err
		}
		defer f.Close()
		abs, _ := filepath.Abs(src.Tarball)
		return sum, "tarball " + abs, extractTarGz(ctx, f, root)
	case "reader":
		spool, err := os.CreateTemp(n.tmpDir(), "upload-"+id+"-*.tar.gz")
		if err != nil {
			return "", "", err
		}
		defer func() {
			spool.Close()
			os.Remove(spool.Name())
		}()
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(spool, h), readerWithContext(ctx, src.Reader)); err != nil {
			return "", "", fmt.Errorf("receiving the stream: %w", err)
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if want != "" && sum != want {
			return "", "", fmt.Errorf("%w: stream has sha256 %s, expected %s", ErrChecksum, sum, want)
		}
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return "", "", err
		}
		return sum, "upload", extractTarGz(ctx, spool, root)
	case "git":
		desc, err := extractGit(ctx, src.GitRepo, src.GitRev, root)
		return "", desc, err
	}
	return "", "", fmt.Errorf("unknown source kind %q", kind)
}

// readerWithContext stops reading r once ctx is done.
func readerWithContext(ctx context.Context, r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return r.Read(p)
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// fileSHA256 returns the hex sha256 of a file.
func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// extractGit extracts `git archive` of rev from the local repository
// repo and returns a description naming the commit.
func extractGit(ctx context.Context, repo, rev string, root *os.Root) (string, error) {
	if rev == "" {
		rev = "HEAD"
	}
	if fi, err := os.Stat(repo); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("git repository %s is not a local directory", repo)
	}
	var stderr bytes.Buffer
	rp := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	rp.Stderr = &stderr
	out, err := rp.Output()
	if err != nil {
		return "", fmt.Errorf("git revision %q not found in %s: %v %s", rev, repo, err, strings.TrimSpace(stderr.String()))
	}
	commit := strings.TrimSpace(string(out))
	stderr.Reset()
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "archive", "--format=tar", commit)
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("git archive: %w", err)
	}
	xerr := extractTar(ctx, pipe, root)
	if xerr != nil {
		_ = cmd.Process.Kill()
	} else {
		_, _ = io.Copy(io.Discard, pipe)
	}
	werr := cmd.Wait()
	if xerr != nil {
		return "", xerr
	}
	if werr != nil {
		return "", fmt.Errorf("git archive %s: %w: %s", commit, werr, strings.TrimSpace(stderr.String()))
	}
	abs, _ := filepath.Abs(repo)
	return fmt.Sprintf("git %s %s (%s)", abs, rev, commit), nil
}

// extractTarGz extracts a gzipped tar stream into root.
func extractTarGz(ctx context.Context, r io.Reader, root *os.Root) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: reading gzip: %v", ErrInvalidSource, err)
	}
	defer zr.Close()
	return extractTar(ctx, zr, root)
}

func unsafeEntry(name, why string) error {
	return fmt.Errorf("%w: %q: %s", ErrUnsafeArchive, name, why)
}

// safeEntryName checks a tar entry or relative path name and returns it
// clean ("." for the root itself).
func safeEntryName(name string) (string, error) {
	if name == "" {
		return "", unsafeEntry(name, "empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", unsafeEntry(name, "absolute path")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", unsafeEntry(name, "path escapes the release")
		}
	}
	return path.Clean(name), nil
}

// checkLinkTarget refuses a symbolic link at name (slash-separated,
// relative to the release) whose target is absolute or leaves the release.
func checkLinkTarget(name, target string) error {
	if target == "" {
		return unsafeEntry(name, "symbolic link with an empty target")
	}
	if path.IsAbs(target) {
		return unsafeEntry(name, fmt.Sprintf("symbolic link to absolute path %q", target))
	}
	j := path.Join(path.Dir(name), target)
	if j == ".." || strings.HasPrefix(j, "../") {
		return unsafeEntry(name, fmt.Sprintf("symbolic link %q points outside the release", target))
	}
	return nil
}

// extractTar extracts a tar stream into root, refusing unsafe entries.
func extractTar(ctx context.Context, r io.Reader, root *os.Root) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: reading tar: %v", ErrInvalidSource, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := safeEntryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		perm := fs.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := mkdirIn(root, name, perm); err != nil {
				return err
			}
		case tar.TypeReg, '\x00':
			if err := prepareEntryPath(root, name); err != nil {
				return err
			}
			if err := writeFileIn(root, name, tr, perm, hdr.ModTime); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := checkLinkTarget(name, hdr.Linkname); err != nil {
				return err
			}
			if err := prepareEntryPath(root, name); err != nil {
				return err
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("extracting %q: %w", name, err)
			}
		case tar.TypeLink:
			target, err := safeEntryName(hdr.Linkname)
			if err != nil || target == "." {
				return unsafeEntry(name, fmt.Sprintf("hard link to %q", hdr.Linkname))
			}
			if fi, err := root.Lstat(target); err != nil || !fi.Mode().IsRegular() {
				return unsafeEntry(name, fmt.Sprintf("hard link to %q, which is not an extracted regular file", hdr.Linkname))
			}
			if err := prepareEntryPath(root, name); err != nil {
				return err
			}
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("extracting %q: %w", name, err)
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return unsafeEntry(name, "device or fifo")
		default:
			return unsafeEntry(name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
		}
	}
}

// mkdirIn creates directory name (and parents) in root, with perm plus
// owner rwx so the tree can always be removed.
func mkdirIn(root *os.Root, name string, perm fs.FileMode) error {
	if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
		if err := root.Remove(name); err != nil {
			return fmt.Errorf("extracting %q: %w", name, err)
		}
	}
	if err := root.MkdirAll(name, 0o755); err != nil {
		return fmt.Errorf("extracting %q: %w", name, err)
	}
	if err := root.Chmod(name, perm|0o700); err != nil {
		return fmt.Errorf("extracting %q: %w", name, err)
	}
	return nil
}

// prepareEntryPath creates name's parent directories and removes a
// non-directory already at name (a later tar entry replaces an earlier one).
func prepareEntryPath(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("extracting %q: %w", name, err)
		}
	}
	fi, err := root.Lstat(name)
	if err == nil {
		if fi.IsDir() {
			return unsafeEntry(name, "replaces a directory")
		}
		if err := root.Remove(name); err != nil {
			return fmt.Errorf("extracting %q: %w", name, err)
		}
	}
	return nil
}

// writeFileIn creates a new regular file in root from r.
func writeFileIn(root *os.Root, name string, r io.Reader, perm fs.FileMode, mtime time.Time) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("extracting %q: %w", name, err)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extracting %q: %w", name, err)
	}
	if !mtime.IsZero() {
		_ = root.Chtimes(name, mtime, mtime)
	}
	return nil
}

// copyTreeInto copies the directory src into root: directories, regular
// files and symbolic links (checked like tar entries). A top-level .git is
// skipped; devices, fifos and sockets are refused.
func copyTreeInto(ctx context.Context, src string, root *os.Root) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name := filepath.ToSlash(rel)
		if name == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			return mkdirIn(root, name, fi.Mode().Perm())
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return writeFileIn(root, name, f, fi.Mode().Perm(), fi.ModTime())
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := checkLinkTarget(name, target); err != nil {
				return err
			}
			return root.Symlink(target, name)
		default:
			return unsafeEntry(name, "device, fifo or socket")
		}
	})
}

// checkTreeLinks resolves every symbolic link of the tree at dir, link by
// link, and refuses one that leads outside dir (for example through a
// chain of links that are each harmless on their own).
func checkTreeLinks(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if escapesDir(dir, filepath.ToSlash(rel)) {
			target, _ := os.Readlink(p)
			return unsafeEntry(filepath.ToSlash(rel), fmt.Sprintf("symbolic link %q resolves outside the release", target))
		}
		return nil
	})
}

// escapesDir reports whether resolving rel (slash-separated) inside base,
// following symbolic links one component at a time, leaves base.
// Components that do not exist are resolved lexically.
func escapesDir(base, rel string) bool {
	var cur []string
	pending := strings.Split(rel, "/")
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return true
			}
			cur = cur[:len(cur)-1]
			continue
		}
		p := filepath.Join(append([]string{base}, append(cur, c)...)...)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		hops++
		if hops > 255 {
			return true // a loop: refuse
		}
		t, err := os.Readlink(p)
		if err != nil || path.IsAbs(t) {
			return true
		}
		pending = append(strings.Split(t, "/"), pending...)
	}
	return false
}

// checkSharedPathsNotLinks refuses a release whose copy of a shared path,
// or of a directory above one, is a symbolic link. checkTreeLinks resolves
// the release's links as they are before linkShared replaces the shared
// paths; a link planted at a shared path would be followed by that check
// but not exist afterwards, so another link could resolve through it to
// anywhere once the shared link is in place. With shared paths real
// directories, files or absent at check time, a link through one reaches
// at most into shared/.
func (n *Node) checkSharedPathsNotLinks(staging string) error {
	for _, s := range n.cfg.Shared {
		p, err := cleanSharedPath(s)
		if err != nil {
			return err
		}
		for q := p; q != "."; q = path.Dir(q) {
			fi, err := os.Lstat(filepath.Join(staging, filepath.FromSlash(q)))
			if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
				return unsafeEntry(q, "the release holds a symbolic link where a shared path (or its directory) goes")
			}
		}
	}
	return nil
}

// linkShared replaces each shared path of the staging release with a
// relative symbolic link to Root/shared/<path>. A missing shared target is
// created: seeded from the release's copy when it has one, else a
// directory for a path written with a trailing "/" and an empty file
// otherwise. The link text is computed from the final release location
// (releases/<id>/...), which has the same depth as the staging one.
func (n *Node) linkShared(o Options, id, staging string) error {
	if len(n.cfg.Shared) == 0 {
		return nil
	}
	root, err := os.OpenRoot(staging)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, s := range n.cfg.Shared {
		p, err := cleanSharedPath(s)
		if err != nil {
			return err
		}
		wantDir := strings.HasSuffix(s, "/")
		sharedAbs := filepath.Join(n.sharedDir(), filepath.FromSlash(p))
		linkText, err := filepath.Rel(filepath.Dir(filepath.Join(n.releaseDir(id), filepath.FromSlash(p))), sharedAbs)
		if err != nil {
			return err
		}
		// Parents inside the release must be real directories, so the
		// link lands inside the release.
		if dir := path.Dir(p); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("shared path %s: %w", p, err)
			}
			for q := dir; q != "."; q = path.Dir(q) {
				fi, err := root.Lstat(q)
				if err != nil {
					return fmt.Errorf("shared path %s: %w", p, err)
				}
				if !fi.IsDir() {
					return fmt.Errorf("shared path %s: %s is not a directory in the release", p, q)
				}
			}
		}
		relFi, relErr := root.Lstat(p)
		if _, err := os.Lstat(sharedAbs); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(sharedAbs), 0o755); err != nil {
				return fmt.Errorf("shared path %s: %w", p, err)
			}
			switch {
			case relErr == nil && (relFi.IsDir() || relFi.Mode().IsRegular()):
				if err := os.Rename(filepath.Join(staging, filepath.FromSlash(p)), sharedAbs); err != nil {
					return fmt.Errorf("shared path %s: seeding from the release: %w", p, err)
				}
				o.printf("seeded shared/%s from the release", p)
			case wantDir:
				if err := os.Mkdir(sharedAbs, 0o755); err != nil {
					return fmt.Errorf("shared path %s: %w", p, err)
				}
				o.printf("created directory shared/%s", p)
			default:
				f, err := os.OpenFile(sharedAbs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
				if err != nil {
					return fmt.Errorf("shared path %s: %w", p, err)
				}
				f.Close()
				o.printf("created empty file shared/%s", p)
			}
		} else if err != nil {
			return fmt.Errorf("shared path %s: %w", p, err)
		}
		if err := root.RemoveAll(p); err != nil {
			return fmt.Errorf("shared path %s: removing the release's copy: %w", p, err)
		}
		if err := root.Symlink(linkText, p); err != nil {
			return fmt.Errorf("shared path %s: %w", p, err)
		}
		o.printf("linked %s -> %s", p, linkText)
	}
	return nil
}

// syncFS makes the release's files durable before the rename that marks
// it complete. It uses sync(2), which flushes every file system: releases
// are rare, and a release that is current after a power loss must not
// have lost its contents.
func syncFS(dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}
