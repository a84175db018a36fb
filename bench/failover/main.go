// Command failover is the monitor of bench/failover.sh: every -every it reads
// edge's GET /pools and the /__stats of each origin (at the same moment, in
// parallel) and appends one tab-separated line to -out:
//
//	t_ms  states  requests  reason
//
//	t_ms      Unix time in milliseconds when the poll started
//	states    the -nodes' states in -pool, comma-separated ("up,down,up");
//	          "?" for a node missing from the answer, "err" if /pools failed
//	requests  each origin's request counter from /__stats, comma-separated;
//	          "-" for an origin that did not answer (killed)
//	reason    the -watch node's "reason" from /pools as compact JSON ("-" if none)
//
// It stops after -d or on SIGTERM/SIGINT. Only loopback addresses are accepted.
//
//	go run ./bench/failover -admin 127.0.0.1:19911 -pool bench -nodes o1,o2,o3 \
//	    -watch o2 -origins 127.0.0.1:19101,127.0.0.1:19102,127.0.0.1:19103 -out mon.tsv
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	admin := flag.String("admin", "127.0.0.1:19911", "edge admin address (host:port)")
	pool := flag.String("pool", "bench", "pool name")
	nodes := flag.String("nodes", "o1,o2,o3", "node names, comma-separated, in output order")
	watch := flag.String("watch", "o2", "node whose reason is logged")
	origins := flag.String("origins", "", "origin addresses for /__stats, comma-separated")
	every := flag.Duration("every", 100*time.Millisecond, "poll period")
	dur := flag.Duration("d", time.Minute, "stop after this long")
	out := flag.String("out", "", "output file (appended); default stdout")
	flag.Parse()

	addrs := []string{*admin}
	var originList []string
	if *origins != "" {
		originList = strings.Split(*origins, ",")
		addrs = append(addrs, originList...)
	}
	for _, a := range addrs {
		if err := loopback(a); err != nil {
			fail(err)
		}
	}
	if *every <= 0 || *dur <= 0 {
		fail(errors.New("need -every > 0 and -d > 0"))
	}
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		w = f
	}

	m := &monitor{
		client: &http.Client{
			Timeout:   *every * 4,
			Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true},
		},
		admin: *admin, pool: *pool, nodes: strings.Split(*nodes, ","), watch: *watch,
		origins: originList,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()

	tick := time.NewTicker(*every) // a slow poll makes the ticker drop ticks, not queue them
	defer tick.Stop()
	for {
		line := m.poll(ctx)
		if ctx.Err() != nil { // stopped mid-poll: the line may be partial
			return
		}
		// Unbuffered: each line reaches the file at once.
		fmt.Fprintln(w, line)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type monitor struct {
	client  *http.Client
	admin   string
	pool    string
	nodes   []string
	watch   string
	origins []string
}

// poll returns one output line.
func (m *monitor) poll(ctx context.Context) string {
	t := time.Now()
	var wg sync.WaitGroup
	stats := make([]string, len(m.origins))
	for i, o := range m.origins {
		wg.Go(func() { stats[i] = m.originRequests(ctx, o) })
	}
	states, reason := m.pools(ctx)
	wg.Wait()
	if len(stats) == 0 {
		stats = []string{"-"}
	}
	return fmt.Sprintf("%d\t%s\t%s\t%s", t.UnixMilli(), strings.Join(states, ","), strings.Join(stats, ","), reason)
}

func (m *monitor) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return body, err
}

// originRequests returns the first field of the origin's "/__stats" answer
// ("<requests> <new_conns>"), or "-".
func (m *monitor) originRequests(ctx context.Context, addr string) string {
	body, err := m.get(ctx, "http://"+addr+"/__stats")
	if err != nil {
		return "-"
	}
	f := strings.Fields(string(body))
	if len(f) == 0 {
		return "-"
	}
	return f[0]
}

// pools returns the states of m.nodes in m.pool and the watched node's reason.
func (m *monitor) pools(ctx context.Context) ([]string, string) {
	states := make([]string, len(m.nodes))
	for i := range states {
		states[i] = "err"
	}
	body, err := m.get(ctx, "http://"+m.admin+"/pools")
	if err != nil {
		return states, "-"
	}
	var pools []struct {
		Name  string                       `json:"name"`
		Nodes []map[string]json.RawMessage `json:"nodes"`
	}
	if err := json.Unmarshal(body, &pools); err != nil {
		return states, "-"
	}
	for i := range states {
		states[i] = "?"
	}
	reason := "-"
	for _, p := range pools {
		if p.Name != m.pool {
			continue
		}
		for _, n := range p.Nodes {
			name, state := str(n["name"]), str(n["state"])
			if state == "" {
				state = "?"
			}
			for i, want := range m.nodes {
				if name == want {
					states[i] = state
				}
			}
			if name == m.watch {
				if r, ok := n["reason"]; ok {
					var buf bytes.Buffer
					if json.Compact(&buf, r) == nil && buf.Len() > 0 {
						reason = strings.NewReplacer("\t", " ", "\n", " ").Replace(buf.String())
					}
				}
			}
		}
	}
	return states, reason
}

func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %v", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q: only loopback addresses are allowed", addr)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "failover:", err)
	os.Exit(2)
}
