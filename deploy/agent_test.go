package deploy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const fxToken = "s3cret-token"

// fxAgent starts an agent over a fresh node.
func fxAgent(t *testing.T, cfg Config) (*Node, *httptest.Server) {
	t.Helper()
	n := fxNode(t, cfg)
	srv := httptest.NewServer(NewAgent(n, fxToken))
	t.Cleanup(srv.Close)
	return n, srv
}

// fxCall sends one request and decodes the JSON answer.
func fxCall(t *testing.T, srv *httptest.Server, method, path string, q url.Values, body []byte, token string) (int, map[string]any) {
	t.Helper()
	u := srv.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(data) > 0 && resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, m
}

func TestAgentRequiresToken(t *testing.T) {
	_, srv := fxAgent(t, Config{})
	for _, tok := range []string{"", "wrong", fxToken + "x", "s3cret"} {
		code, m := fxCall(t, srv, "GET", "/v1/status", nil, nil, tok)
		if code != http.StatusUnauthorized || m["error"] == nil {
			t.Errorf("token %q: %d %v", tok, code, m)
		}
	}
	if code, _ := fxCall(t, srv, "GET", "/v1/status", nil, nil, fxToken); code != http.StatusOK {
		t.Errorf("right token: %d", code)
	}
	// Without a configured token the agent is open (for loopback use).
	open := httptest.NewServer(NewAgent(fxNode(t, Config{}), ""))
	defer open.Close()
	if code, _ := fxCall(t, open, "GET", "/v1/status", nil, nil, ""); code != http.StatusOK {
		t.Errorf("open agent: %d", code)
	}
}

func TestAgentDeployFlow(t *testing.T) {
	n, srv := fxAgent(t, Config{Shared: []string{"storage/"}})
	r1 := fxTarGz(t, []fxEntry{{Name: "index.html", Body: "release r1"}})
	r2 := fxTarGz(t, []fxEntry{{Name: "index.html", Body: "release r2"}})

	code, m := fxCall(t, srv, "POST", "/v1/prepare", url.Values{"id": {"r1"}, "sha256": {fxSHA(r1)}}, r1, fxToken)
	if code != 200 || m["id"] != "r1" {
		t.Fatalf("prepare r1: %d %v", code, m)
	}
	code, m = fxCall(t, srv, "POST", "/v1/activate", url.Values{"id": {"r1"}}, nil, fxToken)
	if code != 200 || m["current"] != "r1" {
		t.Fatalf("activate r1: %d %v", code, m)
	}
	if code, m := fxCall(t, srv, "POST", "/v1/prepare", url.Values{"id": {"r2"}}, r2, fxToken); code != 200 {
		t.Fatalf("prepare r2: %d %v", code, m)
	}
	// A retried upload with the same sha256 is idempotent.
	if code, m := fxCall(t, srv, "POST", "/v1/prepare", url.Values{"id": {"r1"}, "sha256": {fxSHA(r1)}}, r1, fxToken); code != 200 {
		t.Fatalf("re-prepare r1: %d %v", code, m)
	}
	if code, m := fxCall(t, srv, "POST", "/v1/activate", url.Values{"id": {"r2"}}, nil, fxToken); code != 200 || m["current"] != "r2" {
		t.Fatalf("activate r2: %d %v", code, m)
	}
	code, m = fxCall(t, srv, "GET", "/v1/status", nil, nil, fxToken)
	if code != 200 || m["current"] != "r2" || m["previous"] != "r1" || len(m["releases"].([]any)) != 2 {
		t.Fatalf("status: %d %v", code, m)
	}
	var st Status
	data, _ := json.Marshal(m)
	if err := json.Unmarshal(data, &st); err != nil || st.Releases[0].SHA256 != fxSHA(r2) {
		t.Errorf("status does not decode into Status: %+v %v", st, err)
	}

	// Dry runs change nothing and return the plan.
	code, m = fxCall(t, srv, "POST", "/v1/rollback", url.Values{"dry_run": {"true"}}, nil, fxToken)
	if code != 200 || m["to"] != "r1" || !strings.Contains(m["output"].(string), "mark r2 as bad") {
		t.Fatalf("dry-run rollback: %d %v", code, m)
	}
	if code, m := fxCall(t, srv, "POST", "/v1/prepare", url.Values{"id": {"r3"}, "dry_run": {"1"}}, r1, fxToken); code != 200 || n.releaseExists("r3") {
		t.Fatalf("dry-run prepare: %d %v", code, m)
	}
	if cur := fxCurrent(t, n); cur != "r2" {
		t.Fatalf("dry runs changed current to %q", cur)
	}

	code, m = fxCall(t, srv, "POST", "/v1/rollback", nil, nil, fxToken)
	if code != 200 || m["from"] != "r2" || m["to"] != "r1" {
		t.Fatalf("rollback: %d %v", code, m)
	}
	code, m = fxCall(t, srv, "POST", "/v1/rollback", nil, nil, fxToken)
	if code != http.StatusConflict || m["code"] != "no_rollback_target" || !strings.Contains(m["error"].(string), "no good release") {
		t.Fatalf("second rollback: %d %v", code, m)
	}
	code, m = fxCall(t, srv, "POST", "/v1/cleanup", url.Values{"keep": {"1"}}, nil, fxToken)
	if code != 200 || len(m["removed"].([]any)) != 1 || m["removed"].([]any)[0] != "r2" {
		t.Fatalf("cleanup: %d %v", code, m)
	}
	code, m = fxCall(t, srv, "POST", "/v1/cleanup", nil, nil, fxToken)
	if code != 200 || m["removed"] == nil || len(m["removed"].([]any)) != 0 {
		t.Fatalf("second cleanup: %d %v", code, m)
	}
	fxAssertClean(t, n)
	fxAssertConsistent(t, n)
}

func TestAgentErrors(t *testing.T) {
	n, srv := fxAgent(t, Config{})
	good := fxTarGz(t, []fxEntry{{Name: "index.html", Body: "release r1"}})
	evil := fxTarGz(t, []fxEntry{{Name: "../evil", Body: "x"}})
	tests := []struct {
		name, method, path string
		q                  url.Values
		body               []byte
		code               int
		word               string
	}{
		{"bad id", "POST", "/v1/prepare", url.Values{"id": {"../x"}}, good, 400, "bad_request"},
		{"bad sha256", "POST", "/v1/prepare", url.Values{"id": {"r1"}, "sha256": {"zz"}}, good, 400, "bad_request"},
		{"sha256 mismatch", "POST", "/v1/prepare", url.Values{"id": {"r1"}, "sha256": {strings.Repeat("0", 64)}}, good, 422, "checksum"},
		{"unsafe archive", "POST", "/v1/prepare", url.Values{"id": {"r1"}}, evil, 422, "unsafe_archive"},
		{"not gzip", "POST", "/v1/prepare", url.Values{"id": {"r1"}}, []byte("plain text"), 400, "bad_request"},
		{"unknown release", "POST", "/v1/activate", url.Values{"id": {"nope"}}, nil, 404, "not_found"},
		{"bad keep", "POST", "/v1/cleanup", url.Values{"keep": {"-1"}}, nil, 400, "bad_request"},
		{"bad dry_run", "POST", "/v1/activate", url.Values{"id": {"r1"}, "dry_run": {"maybe"}}, nil, 400, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, m := fxCall(t, srv, tt.method, tt.path, tt.q, tt.body, fxToken)
			if code != tt.code || m["code"] != tt.word || m["error"] == "" {
				t.Fatalf("%d %v, want %d %s", code, m, tt.code, tt.word)
			}
		})
	}
	if code, _ := fxCall(t, srv, "GET", "/v1/prepare", nil, nil, fxToken); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/prepare: %d", code)
	}
	if code, _ := fxCall(t, srv, "POST", "/v1/status", nil, nil, fxToken); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/status: %d", code)
	}
	fxAssertClean(t, n)
}

func TestAgentBusy(t *testing.T) {
	n, srv := fxAgent(t, Config{})
	fxDeploy(t, n, "r1", "r2")
	l, err := n.acquireLock("activate r9 (test)")
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	for _, path := range []string{"/v1/activate?id=r1", "/v1/rollback", "/v1/cleanup", "/v1/prepare?id=r3"} {
		u, _ := url.Parse(path)
		code, m := fxCall(t, srv, "POST", u.Path, u.Query(), fxTarGz(t, []fxEntry{{Name: "index.html", Body: "x"}}), fxToken)
		if code != http.StatusConflict || m["code"] != "busy" || !strings.Contains(m["error"].(string), "activate r9 (test)") {
			t.Errorf("%s while busy: %d %v", path, code, m)
		}
	}
	code, m := fxCall(t, srv, "GET", "/v1/status", nil, nil, fxToken)
	if code != 200 || !strings.Contains(m["lock_holder"].(string), "activate r9 (test)") {
		t.Errorf("status while busy: %d %v", code, m)
	}
}
