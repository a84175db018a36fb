package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeFile writes content to a new file in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCLI runs the command line and returns its exit code and output.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// lineOf returns the 1-based number of the first line of content that
// contains substr.
func lineOf(t *testing.T, content, substr string) int {
	t.Helper()
	for i, line := range strings.Split(content, "\n") {
		if strings.Contains(line, substr) {
			return i + 1
		}
	}
	t.Fatalf("%q not in the test file", substr)
	return 0
}

const validConfig = `listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
upstreams:
  app:
    policy: round_robin
    nodes:
      - {address: "127.0.0.1:9001", name: n1}
      - {address: "127.0.0.1:9002", name: n2}
routes:
  - name: old-blog
    match: {path_prefix: /blog/}
    redirect: {prefix: /news/}
  - name: app
    proxy: app
`

func TestCheckValidFile(t *testing.T) {
	path := writeFile(t, "edge.yaml", validConfig)
	code, stdout, stderr := runCLI("check", "-config", path)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	// The verdict comes first, alone on its line, then the summary.
	want := path + ": configuration ok (1 listeners, 1 upstreams, 2 routes)\n"
	if !strings.HasPrefix(stdout, want) {
		t.Fatalf("stdout %q, want it to start with %q", stdout, want)
	}
	if stderr != "" {
		t.Fatalf("stderr %q, want nothing", stderr)
	}
	// With -q, the verdict is all.
	code, stdout, stderr = runCLI("check", "-q", "-config", path)
	if code != 0 || stdout != want || stderr != "" {
		t.Fatalf("check -q: exit %d, stdout %q, stderr %q; want 0, %q and nothing", code, stdout, stderr, want)
	}
}

// threeMistakes has three unrelated problems on three lines.
const threeMistakes = `listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
upstreams:
  app:
    nodes:
      - {address: "127.0.0.1:9001", name: n1}
      - {address: "10.0.0.2", name: n2}
routes:
  - name: app
    proxy: ap
  - name: old-blog
    match: {path_prefix: /blog/}
    redirect: {prefix: /news/, status: 399}
`

func TestCheckReportsEveryProblem(t *testing.T) {
	path := writeFile(t, "edge.yaml", threeMistakes)
	code, stdout, stderr := runCLI("check", "-config", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, stdout, stderr)
	}
	if strings.Contains(stdout, "configuration ok") {
		t.Fatalf("stdout claims the file is fine: %q", stdout)
	}
	wants := []string{
		fmt.Sprintf("%s:%d: upstreams.app.nodes[1].address: ", path, lineOf(t, threeMistakes, "10.0.0.2")),
		fmt.Sprintf("%s:%d: routes[0].proxy: ", path, lineOf(t, threeMistakes, "proxy: ap")),
		fmt.Sprintf("%s:%d: routes[1].redirect.status: ", path, lineOf(t, threeMistakes, "status: 399")),
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	for _, want := range wants {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("stderr has no line starting with %q:\n%s", want, stderr)
		}
	}
	if len(lines) != 3 {
		t.Errorf("stderr has %d lines, want one per problem (3):\n%s", len(lines), stderr)
	}
}

func TestCheckMissingFile(t *testing.T) {
	code, _, stderr := runCLI("check", "-config", filepath.Join(t.TempDir(), "nope.yaml"))
	if code != 1 || stderr == "" {
		t.Fatalf("exit %d, stderr %q; want 1 and a message", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		t.Run(arg, func(t *testing.T) {
			code, stdout, _ := runCLI(arg)
			if code != 0 || !strings.HasPrefix(stdout, "edge ") {
				t.Fatalf("exit %d, stdout %q; want 0 and \"edge …\"", code, stdout)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"unknown command", []string{"frobnicate"}, 2},
		{"no command", nil, 2},
		{"unknown flag", []string{"check", "-nope"}, 2},
		{"help", []string{"help"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tc.args...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.want, stdout, stderr)
			}
			if tc.want == 2 && !strings.Contains(strings.ToLower(stderr), "usage") {
				t.Errorf("stderr %q, want the usage", stderr)
			}
		})
	}
	if _, _, stderr := runCLI("frobnicate"); !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("stderr %q does not name the unknown command", stderr)
	}
}

// freeAddr returns a loopback address that nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRunInvalidConfigExitsWithoutListening(t *testing.T) {
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`listeners: [{address: %q}]
admin: {address: "off"}
upstreams:
  app:
    nodes: [{address: "127.0.0.1:9001"}]
routes:
  - name: app
    proxy: missing
`, addr)
	path := writeFile(t, "edge.yaml", cfg)

	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		var out, errOut bytes.Buffer
		code := run([]string{"run", "-config", path}, &out, &errOut)
		done <- result{code, errOut.String()}
	}()
	select {
	case r := <-done:
		if r.code != 1 {
			t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "routes[0].proxy") {
			t.Fatalf("stderr does not name the problem:\n%s", r.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("edge run with an invalid file did not exit within 10s")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("something listens on %s after edge run refused its file", addr)
	}
}

func TestRunMissingFile(t *testing.T) {
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"run", "-config", filepath.Join(t.TempDir(), "nope.yaml")}, io.Discard, io.Discard)
	}()
	select {
	case code := <-done:
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("edge run with a missing file did not exit within 10s")
	}
}

// fakeAdmin is an admin API that answers POST /reload with status and body
// and records the requests it got.
type fakeAdmin struct {
	srv    *httptest.Server
	addr   string
	method chan string
	path   chan string
	auth   chan string
}

func startFakeAdmin(t *testing.T, status int, body string) *fakeAdmin {
	t.Helper()
	f := &fakeAdmin{method: make(chan string, 1), path: make(chan string, 1), auth: make(chan string, 1)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.method <- r.Method
		f.path <- r.URL.Path
		f.auth <- r.Header.Get("Authorization")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(f.srv.Close)
	f.addr = strings.TrimPrefix(f.srv.URL, "http://")
	return f
}

func TestReloadRefused(t *testing.T) {
	problems := "edge.yaml:10: routes[0].proxy: unknown upstream \"ap\"\nedge.yaml:13: routes[1].redirect.status: must be 301, 302, 303, 307 or 308, got 399\n"
	f := startFakeAdmin(t, http.StatusUnprocessableEntity, problems)
	t.Setenv("EDGE_ADMIN_TOKEN", "")
	code, stdout, stderr := runCLI("reload", "-admin", f.addr)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, stdout, stderr)
	}
	if stderr != problems {
		t.Fatalf("stderr %q, want the admin's answer %q", stderr, problems)
	}
	if m, p := <-f.method, <-f.path; m != "POST" || p != "/reload" {
		t.Fatalf("admin got %s %s, want POST /reload", m, p)
	}
	if a := <-f.auth; a != "" {
		t.Fatalf("Authorization %q sent without a token", a)
	}
}

func TestReloadAccepted(t *testing.T) {
	f := startFakeAdmin(t, http.StatusOK, "reloaded\n")
	t.Setenv("EDGE_ADMIN_TOKEN", "")
	code, stdout, stderr := runCLI("reload", "-admin", f.addr, "-token", "s3cret")
	if code != 0 {
		t.Fatalf("exit %d, want 0; stdout %q stderr %q", code, stdout, stderr)
	}
	if stdout != "reloaded\n" {
		t.Fatalf("stdout %q, want %q", stdout, "reloaded\n")
	}
	if m, p := <-f.method, <-f.path; m != "POST" || p != "/reload" {
		t.Fatalf("admin got %s %s, want POST /reload", m, p)
	}
	if a := <-f.auth; a != "Bearer s3cret" {
		t.Fatalf("Authorization %q, want %q", a, "Bearer s3cret")
	}
}

func TestReloadTokenFromEnvironment(t *testing.T) {
	f := startFakeAdmin(t, http.StatusOK, "reloaded\n")
	t.Setenv("EDGE_ADMIN_TOKEN", "from-env")
	if code, stdout, stderr := runCLI("reload", "-admin", f.addr); code != 0 {
		t.Fatalf("exit %d, want 0; stdout %q stderr %q", code, stdout, stderr)
	}
	<-f.method
	<-f.path
	if a := <-f.auth; a != "Bearer from-env" {
		t.Fatalf("Authorization %q, want %q", a, "Bearer from-env")
	}
}

func TestReloadUnreachableAdmin(t *testing.T) {
	code, _, stderr := runCLI("reload", "-admin", freeAddr(t))
	if code != 1 || !strings.Contains(stderr, "edge reload:") {
		t.Fatalf("exit %d, stderr %q; want 1 and an error", code, stderr)
	}
}
