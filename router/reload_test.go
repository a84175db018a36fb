package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edge-router/edge/config"
)

const reloadConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app:
    policy: round_robin
    nodes:
{{- range $i, $a := .Nodes}}
      - {address: "{{$a}}", name: "n{{$i}}"}
{{- end}}
routes:
  - name: app
    proxy: {{.Pool}}
    response_headers: {set: {X-Generation: "{{.Generation}}"}}
`

// TestReloadUnderLoadDropsNothing runs 200 reloads, valid and invalid in
// turn, while clients keep sending requests: no request may fail, the
// invalid files must be refused and counted, and the valid ones applied.
func TestReloadUnderLoadDropsNothing(t *testing.T) {
	nodes := startNodes(t, 3)
	data := func(gen int, valid bool) map[string]any {
		d := nodesData(nodes...)
		d["Generation"] = gen
		d["Pool"] = "app"
		if !valid {
			d["Pool"] = "missing" // unknown upstream: refused by validation
		}
		return d
	}
	e := startEdge(t, reloadConfig, data(0, true))

	var (
		stop     atomic.Bool
		ok, fail atomic.Int64
		lastErr  atomic.Value
		wg       sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			c := testClient()
			for !stop.Load() {
				resp, err := c.Get(e.url + "/")
				if err != nil {
					fail.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail.Add(1)
					lastErr.Store(resp.Status)
					continue
				}
				ok.Add(1)
			}
		})
	}

	refused := 0
	for i := 1; i <= 200; i++ {
		valid := i%2 == 0
		writeConfig(t, e.path, reloadConfig, data(i, valid))
		err := e.srv.Reload()
		switch {
		case valid && err != nil:
			t.Fatalf("reload %d of a valid file: %v", i, err)
		case !valid:
			var ve *config.ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), `unknown upstream "missing"`) {
				t.Fatalf("reload %d of an invalid file: got %v, want a validation error naming the upstream", i, err)
			}
			refused++
		}
		time.Sleep(2 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	if fail.Load() != 0 {
		t.Fatalf("%d of %d requests failed during reloads; last: %v", fail.Load(), ok.Load()+fail.Load(), lastErr.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests ran during the reloads; the test proves nothing", ok.Load())
	}
	resp, _ := do(t, testClient(), "GET", e.url+"/", nil, nil)
	if got := resp.Header.Get("X-Generation"); got != "200" {
		t.Fatalf("after the last valid reload the route answers generation %q, want 200", got)
	}
	metrics := scrape(t, e)
	for _, want := range []string{
		`edge_config_reloads_total{result="failure"} 100`,
		`edge_config_reloads_total{result="success"} 100`,
		`edge_config_last_reload_successful 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(metrics, "edge_config"))
		}
	}
	if refused != 100 {
		t.Fatalf("refused %d reloads, want 100", refused)
	}
	t.Logf("%d requests, 0 failed, across 200 reloads", ok.Load())
}

func TestReloadKeepsConnectionsToUnchangedNodes(t *testing.T) {
	nodes := startNodes(t, 1)
	d := nodesData(nodes...)
	d["Generation"], d["Pool"] = 1, "app"
	e := startEdge(t, reloadConfig, d)
	c := testClient()
	do(t, c, "GET", e.url+"/", nil, nil)
	before := e.srv.snap.Load().pools["app"].nodes[0].link
	d["Generation"] = 2
	writeConfig(t, e.path, reloadConfig, d)
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	after := e.srv.snap.Load().pools["app"].nodes[0].link
	if before != after {
		t.Fatal("a reload that did not change the node replaced its connection pool")
	}
	if after.client.ConnsCount() != 1 {
		t.Fatalf("the node's pool has %d connections after reload, want the 1 it had", after.client.ConnsCount())
	}
}

func TestReloadThroughAdminAPI(t *testing.T) {
	nodes := startNodes(t, 1)
	d := nodesData(nodes...)
	d["Generation"], d["Pool"] = 1, "app"
	e := startEdge(t, reloadConfig, d)
	c := testClient()

	d["Pool"] = "missing"
	writeConfig(t, e.path, reloadConfig, d)
	resp, body := do(t, c, "POST", e.admin+"/reload", nil, nil)
	if resp.StatusCode != 422 || !strings.Contains(body, `routes[0].proxy`) {
		t.Fatalf("invalid reload: got %d %q, want 422 naming routes[0].proxy", resp.StatusCode, body)
	}
	if resp, _ := do(t, c, "GET", e.url+"/", nil, nil); resp.StatusCode != 200 || resp.Header.Get("X-Generation") != "1" {
		t.Fatalf("after a refused reload: %d, generation %q; the old config must keep serving", resp.StatusCode, resp.Header.Get("X-Generation"))
	}

	d["Pool"], d["Generation"] = "app", 2
	writeConfig(t, e.path, reloadConfig, d)
	if resp, body := do(t, c, "GET", e.admin+"/reload", nil, nil); resp.StatusCode != 405 {
		t.Fatalf("GET /reload: %d %q, want 405", resp.StatusCode, body)
	}
	if resp, body := do(t, c, "POST", e.admin+"/reload", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("valid reload: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, c, "GET", e.url+"/", nil, nil); resp.Header.Get("X-Generation") != "2" {
		t.Fatalf("after reload: generation %q, want 2", resp.Header.Get("X-Generation"))
	}
}

func TestAdminTokenIsRequired(t *testing.T) {
	nodes := startNodes(t, 1)
	cfg := strings.Replace(reloadConfig, `admin: {address: "127.0.0.1:0"}`, `admin: {address: "127.0.0.1:0", token: s3cret}`, 1)
	d := nodesData(nodes...)
	d["Generation"], d["Pool"] = 1, "app"
	e := startEdge(t, cfg, d)
	c := testClient()
	cases := []struct {
		name, path, auth string
		want             int
	}{
		{"healthz needs no token", "/healthz", "", 200},
		{"metrics without token", "/metrics", "", 401},
		{"metrics with wrong token", "/metrics", "Bearer nope", 401},
		{"metrics with token", "/metrics", "Bearer s3cret", 200},
		{"reload with token", "/reload", "Bearer s3cret", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := "GET"
			if tc.path == "/reload" {
				method = "POST"
			}
			hdr := map[string]string{}
			if tc.auth != "" {
				hdr["Authorization"] = tc.auth
			}
			if resp, _ := do(t, c, method, e.admin+tc.path, hdr, nil); resp.StatusCode != tc.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestReloadOnFileChangeWhenWatching(t *testing.T) {
	nodes := startNodes(t, 1)
	cfg := "watch: true\n" + reloadConfig
	d := nodesData(nodes...)
	d["Generation"], d["Pool"] = 1, "app"
	e := startEdge(t, cfg, d)
	d["Generation"] = 2
	writeConfig(t, e.path, cfg, d)
	c := testClient()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := do(t, c, "GET", e.url+"/", nil, nil)
		if resp.Header.Get("X-Generation") == "2" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the changed file was not applied within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGracefulShutdownFinishesRequestsInFlight(t *testing.T) {
	nodes := startNodes(t, 1)
	e := startEdge(t, poolConfig, poolData("round_robin", nodes...))
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(e.url + "/slow?ms=700")
		if err != nil {
			done <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	for nodes[0].inflight.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	r := <-done
	if r.err != nil || r.status != 200 {
		t.Fatalf("request in flight during shutdown: %d %v, want 200", r.status, r.err)
	}
	if _, err := http.Get(e.url + "/"); err == nil {
		t.Fatal("a new request was accepted after shutdown")
	}
}
