package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edge-router/edge/config"
)

// tailDefaultAdmin is where edge's admin API listens unless the
// configuration says otherwise.
const tailDefaultAdmin = "127.0.0.1:9901"

// cmdTail follows the access log of a running edge live, through its
// admin API (GET /logs): edge tail [-admin ADDR | -config FILE] [filters].
// It prints each line as it comes and stops on SIGINT/SIGTERM (exit 0),
// after -n lines (exit 0), or when the stream ends or is refused (exit 1).
func cmdTail(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", tailDefaultAdmin, "admin address of the running edge (with -config: its admin.address)")
	cfgPath := fs.String("config", "", "configuration file to read the admin address and token from")
	token := fs.String("token", "", "admin bearer token (default $EDGE_ADMIN_TOKEN, else admin.token of -config)")
	route := fs.String("route", "", "only these routes (comma-separated; - for requests that matched none)")
	node := fs.String("node", "", "only requests answered by these nodes (comma-separated)")
	status := fs.String("status", "", "only these statuses or classes, like 5xx or 404,429")
	cacheStatus := fs.String("cache", "", "only these cache results: hit, stale, revalidated, miss, bypass, none (comma-separated)")
	slow := fs.Duration("slow", 0, "only requests that took at least this long, like 500ms")
	method := fs.String("method", "", "only these methods (comma-separated)")
	path := fs.String("path", "", "only paths that start with this prefix")
	asJSON := fs.Bool("json", false, "print JSON lines instead of the combined format")
	count := fs.Int("n", 0, "stop after this many lines (0: follow until interrupted)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edge tail: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *count < 0 || *slow < 0 {
		fmt.Fprintln(stderr, "edge tail: -n and -slow must not be negative")
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["token"] {
		*token = os.Getenv("EDGE_ADMIN_TOKEN")
	}
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if !set["admin"] {
			if cfg.Admin.Address == config.AdminOff {
				fmt.Fprintf(stderr, "edge tail: the admin API is off in %s (admin.address); nothing to connect to\n", *cfgPath)
				return 1
			}
			*admin = tailDialAddress(cfg.Admin.Address)
		}
		if *token == "" {
			*token = cfg.Admin.Token
		}
	}

	q := url.Values{}
	for k, v := range map[string]string{"route": *route, "node": *node, "status": *status, "cache": *cacheStatus, "method": *method, "path_prefix": *path} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *slow > 0 {
		q.Set("slow", slow.String())
	}
	if *asJSON {
		q.Set("format", "json")
	}
	base := *admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	target := strings.TrimRight(base, "/") + "/logs"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintln(stderr, "edge tail:", err)
		return 2
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
	}}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		fmt.Fprintf(stderr, "edge tail: connecting to the admin API at %s: %v\n", *admin, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		fmt.Fprintln(stderr, "edge tail:", tailRefusal(resp.StatusCode, *admin, strings.TrimRight(string(body), "\n")))
		return 1
	}
	return printTailStream(ctx, resp.Body, *count, stdout, stderr)
}

// printTailStream copies log lines from the stream to stdout until count lines
// were printed (0: no limit), ctx is cancelled or the stream ends. Empty
// lines (heartbeats) are skipped; notices of dropped lines go to stderr.
func printTailStream(ctx context.Context, body io.Reader, count int, stdout, stderr io.Writer) int {
	r := bufio.NewReaderSize(body, 64<<10)
	printed := 0
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			switch n, ok := tailDroppedNotice(line); {
			case ok:
				fmt.Fprintf(stderr, "edge tail: %d lines dropped: this follower fell behind (narrow the filter)\n", n)
			case len(line) == 1: // heartbeat
			default:
				if _, werr := stdout.Write(line); werr != nil {
					return 1
				}
				if printed++; count > 0 && printed >= count {
					return 0
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			if errors.Is(err, io.EOF) {
				fmt.Fprintln(stderr, "edge tail: the stream ended (edge stopped?)")
			} else {
				fmt.Fprintln(stderr, "edge tail: reading the stream:", err)
			}
			return 1
		}
	}
}

// tailDroppedNotice reads the admin API's notice of lost lines: "# dropped N
// lines" (combined format) or {"dropped_lines":N} (JSON).
func tailDroppedNotice(line []byte) (int64, bool) {
	line = bytes.TrimSpace(line)
	var num []byte
	switch {
	case bytes.HasPrefix(line, []byte("# dropped ")):
		num, _ = bytes.CutSuffix(line[len("# dropped "):], []byte(" lines"))
	case bytes.HasPrefix(line, []byte(`{"dropped_lines":`)):
		num, _ = bytes.CutSuffix(line[len(`{"dropped_lines":`):], []byte("}"))
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	return n, err == nil
}

// tailRefusal explains an answer of the admin API other than 200.
func tailRefusal(status int, admin, body string) string {
	switch status {
	case http.StatusUnauthorized:
		return "admin token required or wrong (give it with -token, $EDGE_ADMIN_TOKEN or admin.token in -config)"
	case http.StatusNotFound:
		return fmt.Sprintf("the admin API at %s has no /logs endpoint (an older edge?)", admin)
	case http.StatusBadRequest:
		return body
	}
	return fmt.Sprintf("the admin API answered %d %s: %s", status, http.StatusText(status), body)
}

// tailDialAddress turns a listen address into one to connect to: an empty
// or unspecified host becomes the loopback address.
func tailDialAddress(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
