package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/router"
)

// tailEdge is a running edge with one node, for the edge tail tests.
type tailEdge struct {
	url, admin string
}

func startTailEdge(t *testing.T, token string) tailEdge {
	t.Helper()
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "hello")
	}))
	t.Cleanup(node.Close)
	path := writeFile(t, "edge.yaml", fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0", token: %q}
access_log: {format: "off"}
upstreams:
  app:
    nodes: [{address: %q, name: n1}]
routes:
  - name: app
    proxy: app
`, token, strings.TrimPrefix(node.URL, "http://")))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := router.New(cfg, router.Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return tailEdge{url: "http://" + srv.Addrs()[0].String(), admin: srv.AdminAddr().String()}
}

// followers reads edge_tail_followers from the admin API (-1: not there).
func (e tailEdge) followers(t *testing.T, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+e.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "edge_tail_followers "); ok {
			return v
		}
	}
	return "-1"
}

// runTail runs cmdTail in the background, sends GET paths to the edge
// once it is attached, and returns its exit code and output.
func runTail(t *testing.T, e tailEdge, token string, paths []string, args ...string) (int, string, string) {
	t.Helper()
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		var out, errOut bytes.Buffer
		code := cmdTail(args, &out, &errOut)
		done <- result{code, out.String(), errOut.String()}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.followers(t, token) != "1" {
		select {
		case r := <-done:
			return r.code, r.stdout, r.stderr
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("edge tail did not attach")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range paths {
		resp, err := http.Get(e.url + p)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	select {
	case r := <-done:
		return r.code, r.stdout, r.stderr
	case <-time.After(10 * time.Second):
		t.Fatal("edge tail did not stop")
	}
	return 0, "", ""
}

func TestTailPrintsLines(t *testing.T) {
	e := startTailEdge(t, "tok")
	code, stdout, stderr := runTail(t, e, "tok", []string{"/a", "/missing", "/b", "/c"},
		"-admin", e.admin, "-token", "tok", "-n", "2")
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"GET /a HTTP/1.1" 200 `) || !strings.Contains(lines[1], `"GET /missing HTTP/1.1" 404 `) {
		t.Errorf("stdout, want the lines of /a and /missing:\n%s", stdout)
	}
	for _, l := range lines {
		if !strings.Contains(l, " route=app node=n1 ") {
			t.Errorf("line lacks route and node: %s", l)
		}
	}
}

func TestTailFiltersAndJSON(t *testing.T) {
	e := startTailEdge(t, "tok")
	// The token and address come from a configuration file.
	cfg := writeFile(t, "cli.yaml", fmt.Sprintf("admin: {address: %q, token: tok}\n", e.admin))
	code, stdout, stderr := runTail(t, e, "tok", []string{"/a", "/missing", "/b", "/missing"},
		"-config", cfg, "-status", "4xx", "-method", "GET", "-path", "/mis", "-json", "-n", "2")
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout has %d lines, want 2:\n%s", len(lines), stdout)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["uri"] != "/missing" || m["status"] != float64(404) {
			t.Errorf("line %s (%v), want the JSON line of a 404 for /missing", l, err)
		}
	}
}

func TestTailRefusals(t *testing.T) {
	e := startTailEdge(t, "tok")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no token", []string{"-admin", e.admin}, "admin token required or wrong"},
		{"wrong token", []string{"-admin", e.admin, "-token", "nope"}, "admin token required or wrong"},
		{"bad filter", []string{"-admin", e.admin, "-token", "tok", "-status", "6xx", "-route", "nope"}, `status: "6xx"`},
		{"admin off", []string{"-config", writeFile(t, "off.yaml", "admin: {address: \"off\"}\n")}, "the admin API is off"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("EDGE_ADMIN_TOKEN", "")
			var out, errOut bytes.Buffer
			code := cmdTail(tt.args, &out, &errOut)
			if code != 1 || !strings.Contains(errOut.String(), tt.want) || out.Len() != 0 {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out.String(), errOut.String(), tt.want)
			}
		})
	}
	if out := e.followers(t, "tok"); out != "0" && out != "-1" {
		t.Errorf("edge_tail_followers = %s after refused followers, want 0", out)
	}
}

func TestTailDroppedNotice(t *testing.T) {
	for line, want := range map[string]int64{"# dropped 12 lines\n": 12, `{"dropped_lines":3}` + "\n": 3, "# dropped x lines\n": -1, `{"status":200}` + "\n": -1} {
		n, ok := tailDroppedNotice([]byte(line))
		if (want < 0) == ok || (ok && n != want) {
			t.Errorf("tailDroppedNotice(%q) = %d, %v; want %d", line, n, ok, want)
		}
	}
}
