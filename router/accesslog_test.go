package router

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const accessLogConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
access_log: {format: {{.Format}}, path: "{{.Path}}"}
upstreams:
  app:
    nodes: [{address: "{{index .Nodes 0}}", name: web1}]
routes:
  - name: moved
    match: {path: /old}
    redirect: {to: /new}
  - name: app
    proxy: app
`

// readLogLines waits until the log file has n lines (the writer is
// asynchronous) and returns them.
func readLogLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(data) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d lines, want %d:\n%s", len(lines), n, data)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAccessLogJSON(t *testing.T) {
	node := startNode(t, "web1")
	path := filepath.Join(t.TempDir(), "access.log")
	d := nodesData(node)
	d["Format"], d["Path"] = "json", path
	e := startEdge(t, accessLogConfig, d)
	c := testClient()
	do(t, c, "GET", e.url+"/hello?x=1", map[string]string{"X-Request-Id": "rid-1", "User-Agent": `evil" \"forged\":1}`}, nil)
	do(t, c, "GET", e.url+"/old", nil, nil)

	lines := readLogLines(t, path, 2)
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("line 1 is not JSON (%v): %s", err, lines[0])
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatalf("line 2 is not JSON (%v): %s", err, lines[1])
	}
	want := map[string]any{
		"method": "GET", "uri": "/hello?x=1", "status": float64(200), "request_id": "rid-1",
		"route": "app", "node": "web1", "client": "127.0.0.1", "user_agent": `evil" \"forged\":1}`,
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("line 1 %s = %#v, want %#v", k, first[k], v)
		}
	}
	for _, k := range []string{"time", "duration", "upstream_duration", "bytes", "host"} {
		if _, ok := first[k]; !ok {
			t.Errorf("line 1 lacks %q: %s", k, lines[0])
		}
	}
	if second["route"] != "moved" || second["status"] != float64(301) || second["node"] != "-" {
		t.Errorf("redirect line: route %v status %v node %v", second["route"], second["status"], second["node"])
	}
	if len(lines) != 2 {
		t.Fatalf("a client header forged extra log lines: %d lines", len(lines))
	}
}

func TestAccessLogCombined(t *testing.T) {
	node := startNode(t, "web1")
	path := filepath.Join(t.TempDir(), "access.log")
	d := nodesData(node)
	d["Format"], d["Path"] = "combined", path
	e := startEdge(t, accessLogConfig, d)
	do(t, testClient(), "GET", e.url+"/a?b=c", map[string]string{"Referer": "http://ref/", "User-Agent": "ua\"x"}, nil)
	line := readLogLines(t, path, 1)[0]
	for _, want := range []string{
		`127.0.0.1 - - [`, `] "GET /a?b=c HTTP/1.1" 200 `, `"http://ref/" "ua\x22x"`, " route=app node=web1 dur=", " up=", " rid=",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("combined line lacks %q:\n%s", want, line)
		}
	}
}

// FuzzChunkedBody checks the chunked decoder against the standard
// library's: whatever edge accepts as a complete body, net/http must read
// as the same bytes (so a node cannot make edge see a different message
// boundary than a standard client would).
func FuzzChunkedBody(f *testing.F) {
	for _, seed := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
		"A\r\n0123456789\r\n0\r\n\r\n",
		"zz\r\nhello\r\n0\r\n\r\n",
		"5\r\nhelloXX0\r\n\r\n",
		"5\nhello\n0\n\n",
		"0\r\n\r\n",
		"ffffffffffffffffff\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := &upstreamBody[pooledConn]{br: bufio.NewReader(bytes.NewReader(data)), mode: bodyChunked}
		ours, err := io.ReadAll(b)
		if err != nil {
			return // refused: fine whatever the standard library thinks
		}
		theirs, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("edge accepted %q as %q, net/http refuses it: %v", data, ours, err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("edge read %q as %q, net/http as %q", data, ours, theirs)
		}
	})
}
