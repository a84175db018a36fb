package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/router"
)

// startRunningEdge starts an edge in-process on loopback ports from a
// configuration written to a file, and returns its admin address.
func startRunningEdge(t *testing.T, cfgYAML string) string {
	t.Helper()
	path := writeFile(t, "running.yaml", cfgYAML)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := router.New(cfg, router.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
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
	return srv.AdminAddr().String()
}

// explainConfig has a host route, a redirect and an access list.
const explainConfig = `listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0", token: s3cret-admin}
upstreams:
  app:
    policy: round_robin
    nodes:
      - {address: "127.0.0.1:9001", name: n1}
      - {address: "127.0.0.1:9002", name: n2}
routes:
  - name: old-blog
    match: {hosts: [www.example.com], path_prefix: /blog/}
    redirect: {prefix: /news/}
  - name: internal
    match: {hosts: [www.example.com], path_prefix: /internal}
    access: {allow: [10.0.0.0/8]}
    proxy: app
  - name: app
    match: {hosts: [www.example.com]}
    proxy: app
`

func TestExplainCLIOfflineText(t *testing.T) {
	path := writeFile(t, "edge.yaml", explainConfig)
	code, stdout, stderr := runCLI("explain", "-config", path, "http://www.example.com/blog/post?x=1")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	for _, want := range []string{
		"request\n", "route\n", "routes not matched\n", "result\n", "notes\n",
		"#0 old-blog", "redirect 301 to /news/post?x=1",
		"#1  internal  not tried: route old-blog (#0) matched first (nor would this one: path \"/blog/post\" does not start with \"/internal\")",
		"#2  app       not tried: route old-blog (#0) matched first (this route would match too)",
		"offline: node health is not known",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, stdout)
		}
	}

	// A proxied request names the pool, the chosen node and the nodes.
	code, stdout, _ = runCLI("explain", "-config", path, "-X", "POST", "-H", "X-Test: 1", "http://www.example.com/shop")
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, stdout)
	}
	for _, want := range []string{"pool app  (round_robin", "chosen", "n1    127.0.0.1:9001  up", "n2    127.0.0.1:9002  up", "edge proxies the request to node"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, stdout)
		}
	}
}

func TestExplainCLIOfflineJSON(t *testing.T) {
	path := writeFile(t, "edge.yaml", explainConfig)
	// Flags may follow the URL.
	code, stdout, stderr := runCLI("explain", "-config", path, "http://www.example.com/internal/x", "-client", "10.9.8.7", "-json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var e router.Explanation
	if err := json.Unmarshal([]byte(stdout), &e); err != nil {
		t.Fatalf("stdout is not an explanation: %v\n%s", err, stdout)
	}
	if e.Mode != "offline" || e.Route == nil || e.Route.Name != "internal" || e.Route.Access == nil || !e.Route.Access.Allowed ||
		e.Request.Client != "10.9.8.7" || e.Pool == nil || e.Pool.Chosen == "" {
		t.Fatalf("explanation %s", stdout)
	}
}

func TestExplainCLIExitCodes(t *testing.T) {
	path := writeFile(t, "edge.yaml", explainConfig)
	cases := []struct {
		name string
		args []string
		code int
		out  string // in stdout (1) or stderr (2)
	}{
		{"served", []string{"http://www.example.com/"}, 0, "edge proxies the request"},
		{"no route", []string{"http://other.example.com/"}, 1, "404 no_route"},
		{"bad path", []string{"http://www.example.com/a%2Fb"}, 1, "400 bad_path"},
		{"access denied", []string{"http://www.example.com/internal", "-client", "192.168.1.1"}, 1, "403 access_denied"},
		{"no URL", nil, 2, "want one URL"},
		{"two URLs", []string{"http://a/", "http://b/"}, 2, "want one URL"},
		{"relative URL", []string{"/path"}, 2, "must be absolute"},
		{"bad client", []string{"-client", "nope", "http://a/"}, 2, "not an IP address"},
		{"bad header", []string{"-H", "nocolon", "http://a/"}, 2, "Name: value"},
		{"unknown flag", []string{"-nope", "http://a/"}, 2, "usage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(append([]string{"explain", "-config", path}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, stdout, stderr)
			}
			out := stdout
			if tc.code == 2 {
				out = stderr
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("output does not contain %q: stdout %q stderr %q", tc.out, stdout, stderr)
			}
		})
	}
	// An invalid file is a configuration error.
	bad := writeFile(t, "bad.yaml", threeMistakes)
	if code, _, stderr := runCLI("explain", "-config", bad, "http://a/"); code != 2 || !strings.Contains(stderr, "routes[0].proxy") {
		t.Errorf("invalid file: exit %d, stderr %q; want 2 and the problems", code, stderr)
	}
	if code, _, _ := runCLI("explain", "-config", filepath.Join(t.TempDir(), "nope.yaml"), "http://a/"); code != 2 {
		t.Errorf("missing file: exit %d, want 2", code)
	}
}

// With -admin, the running edge explains: live mode, real health.
func TestExplainCLIAdmin(t *testing.T) {
	admin := startRunningEdge(t, explainConfig)
	code, stdout, stderr := runCLI("explain", "-admin", admin, "-token", "s3cret-admin", "-json", "http://www.example.com/x")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var e router.Explanation
	if err := json.Unmarshal([]byte(stdout), &e); err != nil {
		t.Fatal(err)
	}
	if e.Mode != "live" || e.Route == nil || e.Route.Name != "app" {
		t.Fatalf("explanation %s", stdout)
	}
	code, stdout, _ = runCLI("explain", "-admin", admin, "-token", "s3cret-admin", "http://other.example.com/")
	if code != 1 || !strings.Contains(stdout, "404 no_route") {
		t.Fatalf("no route through the admin API: exit %d\n%s", code, stdout)
	}
	code, _, stderr = runCLI("explain", "-admin", admin, "-token", "wrong", "http://www.example.com/")
	if code != 2 || !strings.Contains(stderr, "401") {
		t.Fatalf("wrong token: exit %d, stderr %q; want 2 and the refusal", code, stderr)
	}
}

func TestCheckSummary(t *testing.T) {
	path := writeFile(t, "edge.yaml", validConfig)
	code, stdout, stderr := runCLI("check", "-config", path)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"listeners\n", "routes (the first that matches takes the request)\n", "upstreams\n", "cache\n", "tls\n", "admin\n",
		"#0  old-blog  path_prefix=/blog/  → redirect prefix to /news/",
		"#1  app       any request         → proxy app",
		"app   round_robin  none          n1 127.0.0.1:9001, n2 127.0.0.1:9002",
		"no route caches",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary does not contain %q:\n%s", want, stdout)
		}
	}
	for i, line := range strings.Split(stdout, "\n") {
		if strings.TrimRight(line, " ") != line {
			t.Errorf("line %d has trailing blanks: %q", i+1, line)
		}
	}
}

// check -admin prints how the file differs from what the edge runs, by
// field path; secrets are never printed.
func TestCheckDiffAgainstRunningEdge(t *testing.T) {
	admin := startRunningEdge(t, explainConfig)

	same := writeFile(t, "same.yaml", explainConfig)
	code, stdout, stderr := runCLI("check", "-q", "-config", same, "-admin", admin, "-token", "s3cret-admin")
	if code != 0 || !strings.Contains(stdout, "no differences") {
		t.Fatalf("same file: exit %d, stderr %q\n%s", code, stderr, stdout)
	}

	changed := strings.NewReplacer(
		"path_prefix: /blog/}", "path_prefix: /articles/}",
		`      - {address: "127.0.0.1:9002", name: n2}`, `      - {address: "127.0.0.1:9002", name: n2}
      - {address: "127.0.0.1:9003", name: n3, weight: 2}`,
		"s3cret-admin", "an0ther-token",
	).Replace(explainConfig)
	changed += `  - name: extra
    respond: {status: 204}
`
	file := writeFile(t, "changed.yaml", changed)
	code, stdout, stderr = runCLI("check", "-config", file, "-admin", admin, "-token", "s3cret-admin")
	if code != 0 {
		t.Fatalf("exit %d, want 0 (differences are information); stderr %q", code, stderr)
	}
	for _, want := range []string{
		"differences from the running configuration (" + admin + " → " + file + ")",
		`~ routes[0].match.path_prefix: "/blog/" → "/articles/"`,
		`+ upstreams.app.nodes[2] (n3): {"address":"127.0.0.1:9003","name":"n3","weight":2}`,
		`+ routes[3] (extra): {"name":"extra","respond":{"status":204}}`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("diff does not contain %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "s3cret") || strings.Contains(stdout, "an0ther") || strings.Contains(stdout, "admin.token") {
		t.Errorf("the diff shows the admin token:\n%s", stdout)
	}

	// /config itself never holds the token.
	req, _ := http.NewRequest("GET", "http://"+admin+"/config", nil)
	req.Header.Set("Authorization", "Bearer s3cret-admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(body), "s3cret") || !strings.Contains(string(body), router.Redacted) {
		t.Errorf("GET /config: %d\n%s", resp.StatusCode, body)
	}

	// An invalid file is still an error; an unreachable edge is one too.
	bad := writeFile(t, "bad.yaml", threeMistakes)
	if code, _, _ := runCLI("check", "-config", bad, "-admin", admin, "-token", "s3cret-admin"); code != 1 {
		t.Errorf("invalid file: exit %d, want 1", code)
	}
	if code, _, stderr := runCLI("check", "-config", same, "-admin", freeAddr(t)); code != 1 || !strings.Contains(stderr, "running configuration") {
		t.Errorf("unreachable admin: exit %d, stderr %q", code, stderr)
	}
}
