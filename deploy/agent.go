package deploy

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// agentOutputKeep is how much of an operation's output (its end) an agent
// answer carries in "output".
const agentOutputKeep = 64 << 10

// NewAgent returns an HTTP handler exposing n to a remote orchestrator:
//
//	POST /v1/prepare?id=ID[&sha256=HEX]  body: a tar.gz stream → 200 {"id"}
//	POST /v1/activate?id=ID              → 200 Status
//	POST /v1/rollback[?to=ID]            → 200 {"from","to"}
//	POST /v1/cleanup[?keep=N]            → 200 {"removed":[...]}
//	GET  /v1/status                      → 200 Status
//
// Every POST accepts dry_run=true, and its answer carries the operation's
// plan, progress and hook output (its end) in "output". Errors are
// {"error": text, "code": word}: 409 for a busy node (code "busy") or no
// rollback target ("no_rollback_target"), 400 for bad parameters or an
// upload that is not a readable tar.gz, 404 for
// an unknown release, 422 for an existing or bad release, a sha256
// mismatch or an unsafe archive, 507 below the disk floor, 500 otherwise.
// When token is not empty every request needs "Authorization: Bearer
// <token>" (compared in constant time), else 401.
func NewAgent(n *Node, token string) http.Handler {
	a := &agentServer{n: n}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/prepare", a.prepare)
	mux.HandleFunc("POST /v1/activate", a.activate)
	mux.HandleFunc("POST /v1/rollback", a.rollback)
	mux.HandleFunc("POST /v1/cleanup", a.cleanup)
	mux.HandleFunc("GET /v1/status", a.status)
	if token == "" {
		return mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edge-deploy"`)
			agentJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token", "code": "unauthorized"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// agentServer serves one Node.
type agentServer struct {
	n *Node
}

// options builds the operation's Options from the query.
func (a *agentServer) options(r *http.Request) (Options, *tailBuffer, error) {
	out := &tailBuffer{max: agentOutputKeep}
	o := Options{Out: out}
	if v := r.URL.Query().Get("dry_run"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, out, errBadParam("dry_run must be true or false")
		}
		o.DryRun = b
	}
	return o, out, nil
}

func (a *agentServer) prepare(w http.ResponseWriter, r *http.Request) {
	o, out, err := a.options(r)
	if err != nil {
		agentError(w, err, out)
		return
	}
	q := r.URL.Query()
	id := q.Get("id")
	src := Source{Reader: r.Body, SHA256: q.Get("sha256")}
	if err := a.n.Prepare(r.Context(), id, src, o); err != nil {
		agentError(w, err, out)
		return
	}
	agentJSON(w, http.StatusOK, map[string]any{"id": id, "dry_run": o.DryRun, "output": out.String()})
}

func (a *agentServer) activate(w http.ResponseWriter, r *http.Request) {
	o, out, err := a.options(r)
	if err != nil {
		agentError(w, err, out)
		return
	}
	if err := a.n.Activate(r.Context(), r.URL.Query().Get("id"), o); err != nil {
		agentError(w, err, out)
		return
	}
	a.statusAnswer(w, out.String())
}

func (a *agentServer) rollback(w http.ResponseWriter, r *http.Request) {
	o, out, err := a.options(r)
	if err != nil {
		agentError(w, err, out)
		return
	}
	from, to, err := a.n.Rollback(r.Context(), r.URL.Query().Get("to"), o)
	if err != nil {
		agentError(w, err, out)
		return
	}
	agentJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "dry_run": o.DryRun, "output": out.String()})
}

func (a *agentServer) cleanup(w http.ResponseWriter, r *http.Request) {
	o, out, err := a.options(r)
	if err != nil {
		agentError(w, err, out)
		return
	}
	keep := 0
	if v := r.URL.Query().Get("keep"); v != "" {
		keep, err = strconv.Atoi(v)
		if err != nil || keep < 1 {
			agentError(w, errBadParam("keep must be a positive integer"), out)
			return
		}
	}
	removed, err := a.n.Cleanup(r.Context(), keep, o)
	if err != nil {
		agentError(w, err, out)
		return
	}
	if removed == nil {
		removed = []string{}
	}
	agentJSON(w, http.StatusOK, map[string]any{"removed": removed, "dry_run": o.DryRun, "output": out.String()})
}

func (a *agentServer) status(w http.ResponseWriter, r *http.Request) {
	a.statusAnswer(w, "")
}

func (a *agentServer) statusAnswer(w http.ResponseWriter, output string) {
	st, err := a.n.Status()
	if err != nil {
		agentError(w, err, nil)
		return
	}
	agentJSON(w, http.StatusOK, struct {
		Status
		Output string `json:"output,omitempty"`
	}{st, output})
}

// errBadParam marks a request parameter error.
type errBadParam string

func (e errBadParam) Error() string { return string(e) }

// agentErrorCode maps an operation error to an HTTP status and a code.
func agentErrorCode(err error) (int, string) {
	var bp errBadParam
	switch {
	case errors.Is(err, ErrBusy):
		return http.StatusConflict, "busy"
	case errors.Is(err, ErrNoRollbackTarget):
		return http.StatusConflict, "no_rollback_target"
	case errors.As(err, &bp), errors.Is(err, ErrInvalidID), errors.Is(err, ErrInvalidSource):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, ErrReleaseNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ErrReleaseExists):
		return http.StatusUnprocessableEntity, "exists"
	case errors.Is(err, ErrBadRelease):
		return http.StatusUnprocessableEntity, "bad_release"
	case errors.Is(err, ErrChecksum):
		return http.StatusUnprocessableEntity, "checksum"
	case errors.Is(err, ErrUnsafeArchive):
		return http.StatusUnprocessableEntity, "unsafe_archive"
	case errors.Is(err, ErrCurrentNotSymlink):
		return http.StatusUnprocessableEntity, "current_not_symlink"
	case errors.Is(err, ErrDiskSpace):
		return http.StatusInsufficientStorage, "disk_space"
	}
	return http.StatusInternalServerError, "failed"
}

func agentError(w http.ResponseWriter, err error, out *tailBuffer) {
	code, word := agentErrorCode(err)
	body := map[string]string{"error": err.Error(), "code": word}
	if out != nil {
		if s := out.String(); s != "" {
			body["output"] = s
		}
	}
	agentJSON(w, code, body)
}

func agentJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
