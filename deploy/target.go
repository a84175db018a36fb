package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// Target is one node's deploy agent, local or remote.
type Target interface {
	// Name names the node in progress lines, results and errors.
	Name() string
	// Prepare unpacks and builds release id from src, without activating it.
	Prepare(ctx context.Context, id string, src Source) error
	// Activate makes release id the current one.
	Activate(ctx context.Context, id string) error
	// Rollback makes release to current ("" means the previous release) and
	// returns the release it replaced and the one now current.
	Rollback(ctx context.Context, to string) (from, target string, err error)
	// Status reports the node's releases.
	Status(ctx context.Context) (Status, error)
}

// LocalTarget is a Target over a deploy root on this machine. o is passed
// to every call (o.Out receives hook output, o.DryRun changes nothing).
func LocalTarget(name string, n *Node, o Options) Target {
	return &localTarget{name: name, n: n, o: o}
}

type localTarget struct {
	name string
	n    *Node
	o    Options
}

func (t *localTarget) Name() string { return t.name }

func (t *localTarget) Prepare(ctx context.Context, id string, src Source) error {
	return t.n.Prepare(ctx, id, src, t.o)
}

func (t *localTarget) Activate(ctx context.Context, id string) error {
	return t.n.Activate(ctx, id, t.o)
}

func (t *localTarget) Rollback(ctx context.Context, to string) (string, string, error) {
	return t.n.Rollback(ctx, to, t.o)
}

func (t *localTarget) Status(ctx context.Context) (Status, error) {
	if err := ctx.Err(); err != nil {
		return Status{}, err
	}
	return t.n.Status()
}

// HTTPTarget is a Target over a remote deploy agent's HTTP API at baseURL
// (e.g. "http://10.0.0.7:9902"; a bare host:port gets "http://"). token,
// when not empty, is sent as "Authorization: Bearer <token>". client nil
// means a client without an overall timeout: uploads take as long as they
// keep moving, and every call is bounded by its context.
//
// Prepare uploads the source as one tar.gz stream: a Dir is tarred and
// gzipped on the fly (nothing is staged on disk), a Tarball is streamed as
// is with its SHA256 for the agent to check, a git source is produced by
// `git archive --format=tar.gz` (from a local repository directly, from a
// remote one through a temporary bare clone), and a Reader is streamed as
// is (it must hold a tar.gz). An agent's error answer {"error": "..."}
// becomes the error's text, and its "code" the error's identity: the
// error is an *AgentError that unwraps to ErrBusy, ErrNoRollbackTarget,
// ErrReleaseNotFound and the like.
func HTTPTarget(name, baseURL, token string, client *http.Client) Target {
	if client == nil {
		client = &http.Client{}
	}
	return &httpTarget{name: name, base: baseURLOf(baseURL), token: token, c: client}
}

type httpTarget struct {
	name, base, token string
	c                 *http.Client
}

func (t *httpTarget) Name() string { return t.name }

func (t *httpTarget) Prepare(ctx context.Context, id string, src Source) error {
	q := url.Values{"id": {id}}
	body, sum, wait, err := uploadStream(ctx, src)
	if err != nil {
		return fmt.Errorf("%s: prepare %s: %w", t.name, id, err)
	}
	if sum != "" {
		q.Set("sha256", sum)
	}
	_, callErr := t.call(ctx, http.MethodPost, "/v1/prepare", q, body, "application/gzip", nil)
	// The transport closes the body when the call ends, which stops a
	// producer still writing; wait for it so no goroutine or process
	// outlives the call, and prefer its error (the real cause) over the
	// upload's broken pipe.
	_ = body.Close()
	prodErr := wait()
	switch {
	case prodErr != nil && callErr != nil:
		return fmt.Errorf("%s: prepare %s: reading the source: %w (upload: %v)", t.name, id, prodErr, callErr)
	case prodErr != nil:
		return fmt.Errorf("%s: prepare %s: reading the source: %w", t.name, id, prodErr)
	case callErr != nil:
		return fmt.Errorf("%s: prepare %s: %w", t.name, id, callErr)
	}
	return nil
}

func (t *httpTarget) Activate(ctx context.Context, id string) error {
	if _, err := t.call(ctx, http.MethodPost, "/v1/activate", url.Values{"id": {id}}, nil, "", nil); err != nil {
		return fmt.Errorf("%s: activate %s: %w", t.name, id, err)
	}
	return nil
}

func (t *httpTarget) Rollback(ctx context.Context, to string) (string, string, error) {
	q := url.Values{}
	if to != "" {
		q.Set("to", to)
	}
	var out struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	if _, err := t.call(ctx, http.MethodPost, "/v1/rollback", q, nil, "", &out); err != nil {
		return "", "", fmt.Errorf("%s: rollback: %w", t.name, err)
	}
	return out.From, out.To, nil
}

func (t *httpTarget) Status(ctx context.Context) (Status, error) {
	var st Status
	if _, err := t.call(ctx, http.MethodGet, "/v1/status", nil, nil, "", &st); err != nil {
		return Status{}, fmt.Errorf("%s: status: %w", t.name, err)
	}
	return st, nil
}

// call sends one request to the agent and decodes a 2xx JSON answer into
// out (when not nil). Other answers become errors carrying the agent's
// {"error"} text (or the start of its body).
func (t *httpTarget) call(ctx context.Context, method, path string, q url.Values, body io.Reader, ctype string, out any) (int, error) {
	u := t.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := t.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer (status %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, newAgentError(resp.StatusCode, resp.Status, data)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding the answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// AgentError is a non-2xx answer of a deploy agent. It unwraps to the
// package's error for its code (ErrBusy, ErrNoRollbackTarget,
// ErrReleaseNotFound, ErrChecksum, …), so errors.Is works across HTTP as
// it does for a local Node.
type AgentError struct {
	Status  int    // HTTP status
	Code    string // the agent's "code": "busy", "no_rollback_target", "not_found", …
	Message string // the agent's "error" text
	Output  string // the end of the operation's output (hook output), if any
}

func (e *AgentError) Error() string {
	s := fmt.Sprintf("agent answered %d: %s", e.Status, e.Message)
	if last := agentOutputLastLine(e.Output); last != "" && !strings.Contains(e.Message, last) {
		s += " (output ends: " + last + ")"
	}
	return s
}

// Unwrap returns the sentinel error of the agent's code, or nil.
func (e *AgentError) Unwrap() error {
	switch e.Code {
	case "busy":
		return ErrBusy
	case "no_rollback_target":
		return ErrNoRollbackTarget
	case "not_found":
		return ErrReleaseNotFound
	case "exists":
		return ErrReleaseExists
	case "bad_release":
		return ErrBadRelease
	case "checksum":
		return ErrChecksum
	case "unsafe_archive":
		return ErrUnsafeArchive
	case "current_not_symlink":
		return ErrCurrentNotSymlink
	case "disk_space":
		return ErrDiskSpace
	case "":
		if e.Status == http.StatusConflict {
			return ErrBusy // an agent that sends no code
		}
	}
	return nil
}

func newAgentError(status int, statusLine string, body []byte) *AgentError {
	var e struct {
		Error  string `json:"error"`
		Code   string `json:"code"`
		Output string `json:"output"`
	}
	_ = json.Unmarshal(body, &e)
	msg := e.Error
	if msg == "" {
		msg = agentErrorText(body, statusLine)
	}
	return &AgentError{Status: status, Code: e.Code, Message: msg, Output: e.Output}
}

// agentOutputLastLine returns the last non-empty line of s, at most 200 bytes.
func agentOutputLastLine(s string) string {
	s = strings.TrimRight(s, "\n\r\t ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// agentErrorText returns the "error" field of a JSON error body, else the
// body's first line, else the status line.
func agentErrorText(body []byte, status string) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(body))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return status
	}
	return s
}

// baseURLOf adds "http://" to a bare host:port and drops trailing
// slashes.
func baseURLOf(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/")
}

// uploadStream returns src as a tar.gz stream, the SHA-256 to send along
// (only for a Tarball), and wait, which returns the producer's error once
// the stream was consumed or closed.
func uploadStream(ctx context.Context, src Source) (body io.ReadCloser, sum string, wait func() error, err error) {
	n := 0
	for _, set := range []bool{src.Dir != "", src.Tarball != "", src.GitRepo != "", src.Reader != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, "", nil, errors.New("the source must be exactly one of a directory, a tarball, a git repository or a reader")
	}
	none := func() error { return nil }
	switch {
	case src.Tarball != "":
		f, err := os.Open(src.Tarball)
		if err != nil {
			return nil, "", nil, err
		}
		return f, strings.ToLower(src.SHA256), none, nil
	case src.Reader != nil:
		return io.NopCloser(src.Reader), strings.ToLower(src.SHA256), none, nil
	case src.Dir != "":
		fi, err := os.Stat(src.Dir)
		if err != nil {
			return nil, "", nil, err
		}
		if !fi.IsDir() {
			return nil, "", nil, fmt.Errorf("%s is not a directory", src.Dir)
		}
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := tarGzDir(pw, src.Dir)
			pw.CloseWithError(err) // nil closes with EOF
			done <- err
		}()
		return pr, "", func() error {
			err := <-done
			if errors.Is(err, io.ErrClosedPipe) {
				return nil // the upload ended first; the call's error says why
			}
			return err
		}, nil
	default:
		return gitArchiveStream(ctx, src.GitRepo, src.GitRev)
	}
}

// tarGzDir writes dir's tree as a gzipped tar to w: regular files,
// directories and symbolic links (kept as links), with names relative to
// dir and their permission bits.
func tarGzDir(w io.Writer, dir string) error {
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		case fi.Mode().IsRegular(), fi.IsDir():
		default:
			return nil // sockets, devices, pipes: not part of a release
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid = "", "", 0, 0
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// gitArchiveStream streams `git archive --format=tar.gz REV` of repo. A repo that
// is not a local directory is first cloned (bare) into a temporary
// directory, removed when the stream ends.
func gitArchiveStream(ctx context.Context, repo, rev string) (io.ReadCloser, string, func() error, error) {
	if rev == "" {
		rev = "HEAD"
	}
	dir := repo
	cleanup := func() {}
	if fi, err := os.Stat(repo); err != nil || !fi.IsDir() {
		tmp, err := os.MkdirTemp("", "edge-deploy-git-*")
		if err != nil {
			return nil, "", nil, err
		}
		cleanup = func() { _ = os.RemoveAll(tmp) }
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "git", "clone", "--quiet", "--bare", repo, tmp)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			cleanup()
			return nil, "", nil, fmt.Errorf("git clone %s: %w: %s", repo, err, strings.TrimSpace(stderr.String()))
		}
		dir = tmp
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "archive", "--format=tar.gz", rev)
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		cleanup()
		return nil, "", nil, err
	}
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, "", nil, fmt.Errorf("git archive: %w", err)
	}
	// The caller reads the pipe to its end (or closes it) before wait. When
	// it stopped early (the upload failed), git's broken pipe is only a
	// consequence: the upload's error says why.
	r := &eofTrackingReader{r: out}
	return r, "", func() error {
		defer cleanup()
		if err := cmd.Wait(); err != nil && r.eof.Load() {
			return fmt.Errorf("git archive %s %s: %w: %s", repo, rev, err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}, nil
}

// eofTrackingReader records whether its reader reached the end.
type eofTrackingReader struct {
	r   io.ReadCloser
	eof atomic.Bool
}

func (e *eofTrackingReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof.Store(true)
	}
	return n, err
}

func (e *eofTrackingReader) Close() error { return e.r.Close() }
