package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"
	"time"
)

// Names inside the deploy root.
const (
	releasesDirName = "releases"
	sharedDirName   = "shared"
	currentName     = "current"
	stateDirName    = ".deploy"
	stagingPrefix   = ".staging-"
	trashPrefix     = ".trash-"
	tempLinkPrefix  = ".current."
)

// Release statuses as reported by Status and stored in state.json
// ("active" is never stored: it is the release current points to).
const (
	StatusPrepared = "prepared" // complete, never activated
	StatusActive   = "active"   // what current points to
	StatusGood     = "good"     // activated before and not marked bad
	StatusBad      = "bad"      // left by a rollback; never activated again
	StatusFailed   = "failed"   // prepare failed; no directory exists
)

// Errors returned (wrapped) by the operations; test with errors.Is.
var (
	// ErrBusy means another operation holds the node's lock; the error
	// text names the holder.
	ErrBusy = errors.New("deploy: node busy")
	// ErrNoRollbackTarget means no release qualifies as a rollback target.
	ErrNoRollbackTarget = errors.New("deploy: no release to roll back to")
	// ErrInvalidID means a release id does not match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$.
	ErrInvalidID = errors.New("deploy: invalid release id")
	// ErrInvalidSource means a Source is not exactly one well-formed
	// source (or its sha256 is not 64 hex digits).
	ErrInvalidSource = errors.New("deploy: invalid source")
	// ErrReleaseExists means Prepare was given an id that already exists
	// with a different (or unknown) source checksum.
	ErrReleaseExists = errors.New("deploy: release already exists")
	// ErrReleaseNotFound means no complete release has that id.
	ErrReleaseNotFound = errors.New("deploy: release not found")
	// ErrBadRelease means the release was marked bad by a rollback.
	ErrBadRelease = errors.New("deploy: release is marked bad")
	// ErrChecksum means the source's sha256 differs from the expected one.
	ErrChecksum = errors.New("deploy: sha256 mismatch")
	// ErrDiskSpace means the free space is below Config.MinFreeBytes.
	ErrDiskSpace = errors.New("deploy: not enough free disk space")
	// ErrUnsafeArchive means the source holds an entry that escapes the
	// release, an absolute path, a link pointing outside or a device file.
	ErrUnsafeArchive = errors.New("deploy: unsafe entry in source")
	// ErrCurrentNotSymlink means the root's current exists and is not a
	// symbolic link, so it cannot be switched atomically.
	ErrCurrentNotSymlink = errors.New("deploy: current is not a symbolic link")
)

var releaseIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidReleaseID reports whether id is a valid release id.
func ValidReleaseID(id string) bool { return releaseIDRe.MatchString(id) }

func checkReleaseID(id string) error {
	if !ValidReleaseID(id) {
		return fmt.Errorf("%w: %q (want ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$)", ErrInvalidID, id)
	}
	return nil
}

// faultHook, when set (by tests), is called at named steps of every
// mutating operation so a test can crash the process there. The steps are
// "<op>:<point>" such as "prepare:extracted" or "activate:renamed".
var faultHook func(step string)

func injectFault(step string) {
	if faultHook != nil {
		faultHook(step)
	}
}

// Options tunes one operation.
type Options struct {
	// DryRun prints the plan (renames, links, hook commands) and changes
	// nothing.
	DryRun bool
	// Out receives the plan, progress lines and hook output; nil discards.
	Out io.Writer
}

func (o Options) out() io.Writer {
	if o.Out == nil {
		return io.Discard
	}
	return o.Out
}

// printf writes one progress or plan line.
func (o Options) printf(format string, a ...any) {
	if o.DryRun {
		format = "[dry-run] " + format
	}
	fmt.Fprintf(o.out(), format+"\n", a...)
}

// Node is one deploy root. Its methods are safe to call from several
// goroutines and processes: mutating operations exclude each other with
// an flock on .deploy/lock.
type Node struct {
	cfg  Config
	root string
}

// Open checks cfg, applies defaults and creates the layout (releases/,
// shared/, .deploy/ with its lock and tmp/) when missing. It takes no lock
// and repairs nothing: every operation runs Recover first.
func Open(cfg Config) (*Node, error) {
	if cfg.Root == "" {
		return nil, errors.New("opening deploy root: root is not set")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("opening deploy root %s: %w", cfg.Root, err)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("opening deploy root %s: %w", cfg.Root, err)
	}
	cfg = cfg.withDefaults()
	cfg.Root = root
	n := &Node{cfg: cfg, root: root}
	for _, d := range []string{root, n.releasesDir(), n.sharedDir(), n.stateDir(), n.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("opening deploy root %s: %w", root, err)
		}
	}
	f, err := os.OpenFile(n.lockPath(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening deploy root %s: %w", root, err)
	}
	f.Close()
	return n, nil
}

// Root returns the node's absolute deploy root.
func (n *Node) Root() string { return n.root }

// Config returns the node's configuration with defaults applied.
func (n *Node) Config() Config { return n.cfg }

// ReleasesDir returns the absolute directory of the node's complete
// releases (releases/ under the root).
func (n *Node) ReleasesDir() string { return n.releasesDir() }

// ReleaseSize returns the apparent size of complete release id: the
// bytes of its regular files. Links are not followed, so shared/ is not
// counted. It takes no lock (a release being deleted meanwhile gives an
// error) and returns ctx's error once ctx is done, which bounds it on
// huge trees.
func (n *Node) ReleaseSize(ctx context.Context, id string) (int64, error) {
	if err := checkReleaseID(id); err != nil {
		return 0, err
	}
	var size int64
	entries := 0
	err := filepath.WalkDir(n.releaseDir(id), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if entries++; entries%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			size += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring release %s: %w", id, err)
	}
	return size, nil
}

func (n *Node) releasesDir() string         { return filepath.Join(n.root, releasesDirName) }
func (n *Node) releaseDir(id string) string { return filepath.Join(n.root, releasesDirName, id) }
func (n *Node) stagingDir(id string) string {
	return filepath.Join(n.root, releasesDirName, stagingPrefix+id)
}
func (n *Node) trashDir(id string) string {
	return filepath.Join(n.root, releasesDirName, trashPrefix+id)
}
func (n *Node) sharedDir() string            { return filepath.Join(n.root, sharedDirName) }
func (n *Node) currentPath() string          { return filepath.Join(n.root, currentName) }
func (n *Node) stateDir() string             { return filepath.Join(n.root, stateDirName) }
func (n *Node) tmpDir() string               { return filepath.Join(n.root, stateDirName, "tmp") }
func (n *Node) lockPath() string             { return filepath.Join(n.root, stateDirName, "lock") }
func (n *Node) holderPath() string           { return filepath.Join(n.root, stateDirName, "lock.holder") }
func (n *Node) statePath() string            { return filepath.Join(n.root, stateDirName, "state.json") }
func (n *Node) journalPath() string          { return filepath.Join(n.root, stateDirName, "journal.jsonl") }
func (n *Node) relRoot(p string) string      { return relOrSelf(n.root, p) }
func (n *Node) releaseExists(id string) bool { return isDir(n.releaseDir(id)) }

func relOrSelf(base, p string) string {
	if r, err := filepath.Rel(base, p); err == nil {
		return r
	}
	return p
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// releaseRec is one release in state.json.
type releaseRec struct {
	Status       string    `json:"status"` // prepared, good, bad or failed
	PreparedAt   time.Time `json:"prepared_at,omitzero"`
	ActivatedAt  time.Time `json:"activated_at,omitzero"`
	SHA256       string    `json:"sha256,omitempty"`
	Source       string    `json:"source,omitempty"`
	PreparedSeq  int64     `json:"prepared_seq,omitempty"`
	ActivatedSeq int64     `json:"activated_seq,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// stateDoc is .deploy/state.json. Seq increases with every prepare and
// activation and orders releases; modification times are never used.
type stateDoc struct {
	Version  int                    `json:"version"`
	Current  string                 `json:"current,omitempty"`
	Seq      int64                  `json:"seq"`
	Releases map[string]*releaseRec `json:"releases"`
}

func (s *stateDoc) next() int64 { s.Seq++; return s.Seq }

func (s *stateDoc) rec(id string) *releaseRec {
	r := s.Releases[id]
	if r == nil {
		r = &releaseRec{}
		s.Releases[id] = r
	}
	return r
}

// loadState reads state.json; a missing file is an empty state.
func (n *Node) loadState() (*stateDoc, error) {
	s := &stateDoc{Version: 1, Releases: map[string]*releaseRec{}}
	data, err := os.ReadFile(n.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("reading state %s: %w", n.statePath(), err)
	}
	if s.Releases == nil {
		s.Releases = map[string]*releaseRec{}
	}
	for id, r := range s.Releases {
		if r == nil || !ValidReleaseID(id) {
			delete(s.Releases, id)
		}
	}
	return s, nil
}

// saveState replaces state.json atomically and durably.
func (n *Node) saveState(s *stateDoc) error {
	s.Version = 1
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(n.statePath(), n.tmpDir(), append(data, '\n')); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in tmpDir (same file
// system), fsyncs it, renames it over path and fsyncs path's directory.
func writeFileAtomic(path, tmpDir string, data []byte) error {
	f, err := os.CreateTemp(tmpDir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory so renames and creations in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// JournalEntry is one line of .deploy/journal.jsonl.
type JournalEntry struct {
	Time    time.Time `json:"time"`
	Op      string    `json:"op"` // prepare, activate, rollback, cleanup, recover, hook
	Release string    `json:"release,omitempty"`
	Result  string    `json:"result"` // ok, failed, warning, info
	Message string    `json:"message,omitempty"`
	Output  string    `json:"output,omitempty"` // the end of a hook's output
	PID     int       `json:"pid,omitempty"`
}

// journal appends one entry (fsynced). Journal errors never fail an
// operation: they are reported on o.Out.
func (n *Node) journal(o Options, e JournalEntry) {
	if o.DryRun {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	e.PID = os.Getpid()
	data, err := json.Marshal(e)
	if err == nil {
		var f *os.File
		f, err = os.OpenFile(n.journalPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			_, err = f.Write(append(data, '\n'))
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		fmt.Fprintf(o.out(), "warning: writing the journal: %v\n", err)
	}
}

// readJournal returns the last max entries (oldest first), reading only
// the file's tail. Lines that do not parse (a torn last write) are skipped.
func (n *Node) readJournal(max int) ([]JournalEntry, error) {
	f, err := os.Open(n.journalPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	const window = 1 << 20
	off := fi.Size() - window
	if off < 0 {
		off = 0
	}
	data := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if off > 0 {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	var out []JournalEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), window)
	for sc.Scan() {
		var e JournalEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Op != "" {
			out = append(out, e)
		}
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out, nil
}

// releaseDirs lists the complete releases on disk: directories of
// releases/ whose name is a valid id (staging, trash and anything else are
// ignored).
func (n *Node) releaseDirs() ([]string, error) {
	ents, err := os.ReadDir(n.releasesDir())
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && ValidReleaseID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// currentInfo describes the current link.
type currentInfo struct {
	exists   bool   // something named current exists
	isLink   bool   // it is a symbolic link
	target   string // the link's text
	id       string // the release it resolves to, when it resolves to a complete one
	dangling bool   // a link that does not resolve to a complete release
}

// readCurrent inspects current without following it blindly: it must be a
// link to releases/<valid id>, an existing directory.
func (n *Node) readCurrent() (currentInfo, error) {
	var ci currentInfo
	fi, err := os.Lstat(n.currentPath())
	if errors.Is(err, fs.ErrNotExist) {
		return ci, nil
	}
	if err != nil {
		return ci, err
	}
	ci.exists = true
	if fi.Mode()&fs.ModeSymlink == 0 {
		return ci, nil
	}
	ci.isLink = true
	if ci.target, err = os.Readlink(n.currentPath()); err != nil {
		return ci, err
	}
	t := ci.target
	if !filepath.IsAbs(t) {
		t = filepath.Join(n.root, t)
	}
	t = filepath.Clean(t)
	id := filepath.Base(t)
	if filepath.Dir(t) == n.releasesDir() && ValidReleaseID(id) && n.releaseExists(id) {
		ci.id = id
	} else {
		ci.dangling = true
	}
	return ci, nil
}

// byRecency sorts ids newest first by key (descending), then id
// (descending) as the tiebreak.
func byRecency(ids []string, key func(string) int64) {
	sort.SliceStable(ids, func(i, j int) bool {
		ki, kj := key(ids[i]), key(ids[j])
		if ki != kj {
			return ki > kj
		}
		return ids[i] > ids[j]
	})
}

// lastGood returns the most recently activated good release with a
// directory, other than except ("" when there is none).
func (n *Node) lastGood(s *stateDoc, except string) string {
	var ids []string
	for id, r := range s.Releases {
		if r.Status == StatusGood && id != except && n.releaseExists(id) {
			ids = append(ids, id)
		}
	}
	byRecency(ids, func(id string) int64 { return s.Releases[id].ActivatedSeq })
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}
