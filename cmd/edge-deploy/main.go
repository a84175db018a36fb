// Command edge-deploy is edge's deploy agent: it manages the releases of a
// node (prepare, activate, rollback, cleanup, status, recover), serves them
// over HTTP (agent) and rolls a release out across the nodes of an edge
// pool (rollout).
//
//	edge-deploy [-config FILE | -root DIR] prepare ID (--dir D | --tarball F [--sha256 H] | --git REPO [--rev REV]) [--dry-run]
//	edge-deploy [-config FILE | -root DIR] activate ID [--dry-run]
//	edge-deploy [-config FILE | -root DIR] rollback [--to ID] [--dry-run]
//	edge-deploy [-config FILE | -root DIR] cleanup [--keep N] [--dry-run]
//	edge-deploy [-config FILE | -root DIR] status [--json]
//	edge-deploy [-config FILE | -root DIR] recover [--dry-run]
//	edge-deploy [-config FILE | -root DIR] agent [--listen 127.0.0.1:9902] [--token T]
//	edge-deploy rollout ...
//	edge-deploy version
//	edge-deploy completion bash|zsh|fish
//
// Exit codes: 0 success, 1 failure, 2 bad usage, 3 busy (another
// operation holds the node's lock).
package main

import (
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

	"github.com/edge-router/edge/deploy"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
	exitBusy  = 3
)

// agentListening, when set (by tests), is called with the agent's address
// once it listens; stopAgent, when closed, stops the agent.
var (
	agentListening func(addr string)
	stopAgent      chan struct{}
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usageText = `usage: edge-deploy [-config FILE | -root DIR] COMMAND [ARGS]

node commands (each takes the node's lock, runs recover first, and
--dry-run prints the plan without changing anything):
  prepare ID (--dir D | --tarball F [--sha256 H] | --git REPO [--rev REV])
                        build release ID in releases/.staging-ID, then make it complete
  activate ID           point current at release ID (atomic rename of a temporary link)
  rollback [--to ID]    return to the previous good release and mark the left one bad
  cleanup [--keep N]    remove old releases (current and the previous good one always stay)
  status [--json]       where current points, the previous release, a table of the
                        releases (state, age, size, source), lock holder, free disk, journal
  recover               remove leftovers of an interrupted operation
  agent [--listen ADDR] [--token T]
                        serve the node over HTTP (token default $EDGE_DEPLOY_TOKEN)

other commands:
  rollout ...           deploy a release across an edge pool (edge-deploy rollout -h)
  version               print the version
  completion SHELL      print a completion script for bash, zsh or fish

global flags (also accepted after the command):
  -config FILE          deploy configuration (YAML)
  -root DIR             deploy root (overrides the configuration's root)
`

func run(args []string, stdout, stderr io.Writer) int {
	g := flag.NewFlagSet("edge-deploy", flag.ContinueOnError)
	g.SetOutput(stderr)
	g.Usage = func() { fmt.Fprint(stderr, usageText) }
	var gf globalFlags
	gf.register(g)
	if err := g.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if g.NArg() == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	cmd, rest := g.Arg(0), g.Args()[1:]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{stdout: stdout, stderr: stderr, global: gf, cmd: cmd}
	switch cmd {
	case "prepare":
		return c.prepare(ctx, rest)
	case "activate":
		return c.activate(ctx, rest)
	case "rollback":
		return c.rollback(ctx, rest)
	case "cleanup":
		return c.cleanup(ctx, rest)
	case "status":
		return c.status(rest)
	case "recover":
		return c.recover(rest)
	case "agent":
		return c.agent(ctx, rest)
	case "rollout":
		return deploy.RunRollout(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "completion":
		return cmdCompletion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	fmt.Fprintf(stderr, "edge-deploy: unknown command %q\n", cmd)
	fmt.Fprint(stderr, usageText)
	return exitUsage
}

// globalFlags select the node.
type globalFlags struct {
	config, root string
}

func (gf *globalFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&gf.config, "config", gf.config, "deploy configuration file (YAML)")
	fs.StringVar(&gf.root, "root", gf.root, "deploy root (overrides the configuration's root)")
}

// cli runs one command.
type cli struct {
	stdout, stderr io.Writer
	global         globalFlags
	cmd            string
}

// flags returns the command's flag set, with the global flags registered
// again so they may follow the command.
func (c *cli) flags(usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("edge-deploy "+c.cmd, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	c.global.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: edge-deploy [-config FILE | -root DIR] %s %s\n\nflags:\n", c.cmd, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and positional arguments in any order and checks
// the number of positional arguments.
func (c *cli) parse(fs *flag.FlagSet, args []string, minPos, maxPos int) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) < minPos || len(pos) > maxPos {
		if len(pos) > maxPos {
			fmt.Fprintf(c.stderr, "edge-deploy %s: unexpected argument %q\n", c.cmd, pos[maxPos])
		} else {
			fmt.Fprintf(c.stderr, "edge-deploy %s: missing argument\n", c.cmd)
		}
		fs.Usage()
		return nil, exitUsage, false
	}
	return pos, exitOK, true
}

func (c *cli) usageErr(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "edge-deploy %s: %s\n", c.cmd, fmt.Sprintf(format, a...))
	return exitUsage
}

// fail prints err and returns its exit code.
func (c *cli) fail(err error) int {
	fmt.Fprintf(c.stderr, "edge-deploy %s: %v\n", c.cmd, err)
	if errors.Is(err, deploy.ErrBusy) {
		return exitBusy
	}
	return exitFail
}

// node loads the configuration and opens the deploy root.
func (c *cli) node() (*deploy.Node, int, bool) {
	var cfg deploy.Config
	if c.global.config == "" && c.global.root == "" {
		return nil, c.usageErr("give -config FILE or -root DIR"), false
	}
	if c.global.config != "" {
		var err error
		if cfg, err = deploy.LoadConfig(c.global.config); err != nil {
			return nil, c.fail(err), false
		}
	}
	if c.global.root != "" {
		cfg.Root = c.global.root
	}
	if cfg.Root == "" {
		return nil, c.usageErr("%s has no root; give -root DIR", c.global.config), false
	}
	n, err := deploy.Open(cfg)
	if err != nil {
		return nil, c.fail(err), false
	}
	return n, exitOK, true
}

func (c *cli) prepare(ctx context.Context, args []string) int {
	fs := c.flags("ID (--dir D | --tarball F [--sha256 H] | --git REPO [--rev REV]) [--dry-run]")
	var src deploy.Source
	fs.StringVar(&src.Dir, "dir", "", "source: a directory")
	fs.StringVar(&src.Tarball, "tarball", "", "source: a .tar.gz file")
	fs.StringVar(&src.SHA256, "sha256", "", "expected sha256 of --tarball (hex)")
	fs.StringVar(&src.GitRepo, "git", "", "source: a local git repository")
	fs.StringVar(&src.GitRev, "rev", "", "revision of --git (default HEAD)")
	dry := fs.Bool("dry-run", false, "print the plan, change nothing")
	pos, code, ok := c.parse(fs, args, 1, 1)
	if !ok {
		return code
	}
	set := 0
	for _, s := range []string{src.Dir, src.Tarball, src.GitRepo} {
		if s != "" {
			set++
		}
	}
	switch {
	case set != 1:
		return c.usageErr("give exactly one source: --dir, --tarball or --git")
	case src.SHA256 != "" && src.Tarball == "":
		return c.usageErr("--sha256 goes with --tarball")
	case src.GitRev != "" && src.GitRepo == "":
		return c.usageErr("--rev goes with --git")
	}
	n, code, ok := c.node()
	if !ok {
		return code
	}
	if err := n.Prepare(ctx, pos[0], src, deploy.Options{DryRun: *dry, Out: c.stdout}); err != nil {
		return c.fail(err)
	}
	return exitOK
}

func (c *cli) activate(ctx context.Context, args []string) int {
	fs := c.flags("ID [--dry-run]")
	dry := fs.Bool("dry-run", false, "print the plan, change nothing")
	pos, code, ok := c.parse(fs, args, 1, 1)
	if !ok {
		return code
	}
	n, code, ok := c.node()
	if !ok {
		return code
	}
	if err := n.Activate(ctx, pos[0], deploy.Options{DryRun: *dry, Out: c.stdout}); err != nil {
		return c.fail(err)
	}
	return exitOK
}

func (c *cli) rollback(ctx context.Context, args []string) int {
	fs := c.flags("[--to ID] [--dry-run]")
	to := fs.String("to", "", "release to return to (default: the previous good release)")
	dry := fs.Bool("dry-run", false, "print the plan, change nothing")
	if _, code, ok := c.parse(fs, args, 0, 0); !ok {
		return code
	}
	n, code, ok := c.node()
	if !ok {
		return code
	}
	from, target, err := n.Rollback(ctx, *to, deploy.Options{DryRun: *dry, Out: c.stdout})
	if err != nil {
		return c.fail(err)
	}
	verb := "rolled back"
	if *dry {
		verb = "would roll back"
	}
	fmt.Fprintf(c.stdout, "%s from %s to %s (%s is marked bad)\n", verb, from, target, from)
	return exitOK
}

func (c *cli) cleanup(ctx context.Context, args []string) int {
	fs := c.flags("[--keep N] [--dry-run]")
	keep := fs.Int("keep", 0, "good releases to keep (default: the configuration's keep, 5)")
	dry := fs.Bool("dry-run", false, "print the plan, change nothing")
	if _, code, ok := c.parse(fs, args, 0, 0); !ok {
		return code
	}
	if *keep < 0 {
		return c.usageErr("--keep must be positive")
	}
	n, code, ok := c.node()
	if !ok {
		return code
	}
	removed, err := n.Cleanup(ctx, *keep, deploy.Options{DryRun: *dry, Out: c.stdout})
	if err != nil {
		return c.fail(err)
	}
	if len(removed) > 0 {
		verb := "removed"
		if *dry {
			verb = "would remove"
		}
		fmt.Fprintf(c.stdout, "%s: %s\n", verb, strings.Join(removed, " "))
	}
	return exitOK
}

func (c *cli) status(args []string) int {
	fs := c.flags("[--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, code, ok := c.parse(fs, args, 0, 0); !ok {
		return code
	}
	n, code, ok := c.node()
	if !ok {
		return code
	}
	rep, err := deploy.ReadStatusReport(n, statusSizeBudget)
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return c.fail(err)
		}
		return exitOK
	}
	if err := rep.WriteTable(c.stdout, time.Now()); err != nil {
		return c.fail(err)
	}
	return exitOK
}

// statusSizeBudget bounds the time status spends measuring releases; a
// release not measured by then has no size ("?" in the table).
const statusSizeBudget = 2 * time.Second

func (c *cli) recover(args []string) int {
	fs := c.flags("[--dry-run]")
	dry := fs.Bool("dry-run", false, "print what would be done, change nothing")
	if _, code, ok := c.parse(fs, args, 0, 0); !ok {
		return code
	}
	n, code, ok := c.node()
	if !ok {
		return code
	}
	if _, err := n.Recover(deploy.Options{DryRun: *dry, Out: c.stdout}); err != nil {
		return c.fail(err)
	}
	return exitOK
}

func (c *cli) agent(ctx context.Context, args []string) int {
	fs := c.flags("[--listen ADDR] [--token T]")
	listen := fs.String("listen", "127.0.0.1:9902", "address to listen on")
	token := fs.String("token", os.Getenv("EDGE_DEPLOY_TOKEN"), "bearer token required from clients (default $EDGE_DEPLOY_TOKEN)")
	if _, code, ok := c.parse(fs, args, 0, 0); !ok {
		return code
	}
	if *token == "" && !loopback(*listen) {
		return c.usageErr("refusing to serve %s without a token: set --token or $EDGE_DEPLOY_TOKEN, or listen on a loopback address", *listen)
	}
	n, code, ok := c.node()
	if !ok {
		return code
	}
	if _, err := n.Recover(deploy.Options{Out: c.stdout}); err != nil {
		fmt.Fprintf(c.stderr, "edge-deploy agent: warning: %v\n", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return c.fail(err)
	}
	srv := &http.Server{Handler: accessLog(deploy.NewAgent(n, *token), c.stdout), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(c.stdout, "edge-deploy agent serving %s on http://%s\n", n.Root(), ln.Addr())
	if agentListening != nil {
		agentListening(ln.Addr().String())
	}
	select {
	case err := <-done:
		return c.fail(err)
	case <-ctx.Done():
	case <-stopAgent:
	}
	// Operations in progress finish (their lock and staging stay
	// consistent); give them a while.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(c.stdout, "edge-deploy agent stopped")
	return exitOK
}

// loopback reports whether addr's host is a loopback address or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// accessLog prints one line per request: method, path and query, status
// and duration.
func accessLog(h http.Handler, w io.Writer) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sr := &statusRecorder{ResponseWriter: rw, status: http.StatusOK}
		h.ServeHTTP(sr, r)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s %s %s %s %d %s\n", time.Now().UTC().Format(time.RFC3339), r.RemoteAddr, r.Method, r.URL.RequestURI(), sr.status, time.Since(start).Round(time.Millisecond))
	})
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
