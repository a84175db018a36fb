package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelperProcess is not a test: the signal tests re-run the test binary
// with EDGE_HELPER_PROCESS=1 so that it behaves as the edge command.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("EDGE_HELPER_PROCESS") != "1" {
		t.Skip("helper process for the signal tests")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

// slowNode answers after the duration in its ?ms= query (default 0).
func slowNode(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ms int
		fmt.Sscan(r.URL.Query().Get("ms"), &ms)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprint(w, "done")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type edgeProcess struct {
	cmd    *exec.Cmd
	addr   string
	config string
	logs   chan string
	exited chan error
}

var listeningRe = regexp.MustCompile(`msg=listening listener=http address=(\S+)`)

func startEdgeProcess(t *testing.T, node, header string) *edgeProcess {
	t.Helper()
	dir := t.TempDir()
	p := &edgeProcess{config: filepath.Join(dir, "edge.yaml"), logs: make(chan string, 100), exited: make(chan error, 1)}
	writeEdgeConfig(t, p.config, node, header)
	p.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "--", "run", "-config", p.config)
	p.cmd.Env = append(os.Environ(), "EDGE_HELPER_PROCESS=1")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := listeningRe.FindStringSubmatch(line); m != nil {
				addrCh <- m[1]
			}
			select {
			case p.logs <- line:
			default:
			}
		}
		p.exited <- p.cmd.Wait()
	}()
	select {
	case p.addr = <-addrCh:
	case <-time.After(10 * time.Second):
		t.Fatal("edge did not start listening")
	}
	return p
}

func writeEdgeConfig(t *testing.T, path, node, header string) {
	t.Helper()
	cfg := fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
server: {grace_period: 5s}
upstreams:
  app:
    nodes: [{address: %q}]
routes:
  - proxy: app
    response_headers: {set: {X-Config: %q}}
`, node, header)
	if err := os.WriteFile(path+".tmp", []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func (p *edgeProcess) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case err := <-p.exited:
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatal(err)
	case <-time.After(within):
		t.Fatalf("edge did not exit within %v", within)
	}
	return -1
}

func get(url string) (string, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.Header.Get("X-Config"), string(b), err
}

func TestSIGHUPReloadsAndSIGTERMStopsGracefully(t *testing.T) {
	node := slowNode(t)
	p := startEdgeProcess(t, node, "one")
	if got, _, err := get("http://" + p.addr + "/"); err != nil || got != "one" {
		t.Fatalf("before reload: %q %v", got, err)
	}

	writeEdgeConfig(t, p.config, node, "two")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _, err := get("http://" + p.addr + "/")
		if err == nil && got == "two" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not apply the new file: %q %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A request in flight when SIGTERM arrives still completes.
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_, body, err := get("http://" + p.addr + "/?ms=800")
		done <- result{body, err}
	}()
	time.Sleep(200 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.body != "done" {
		t.Fatalf("request in flight during SIGTERM: %q %v", r.body, r.err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM: %d, want 0", code)
	}
}

func TestSecondStopSignalStopsAtOnce(t *testing.T) {
	node := slowNode(t)
	p := startEdgeProcess(t, node, "x")
	go get("http://" + p.addr + "/?ms=10000") // keeps the graceful stop waiting
	time.Sleep(200 * time.Millisecond)
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 3*time.Second); code != 1 {
		t.Fatalf("exit code after a second signal: %d, want 1 (forced stop)", code)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("forced stop took %v", d)
	}
	var sawWarning bool
	for len(p.logs) > 0 {
		if strings.Contains(<-p.logs, "second stop signal") {
			sawWarning = true
		}
	}
	if !sawWarning {
		t.Fatal("the forced stop was not logged")
	}
}
