// Command edge is the HTTP edge router and load balancer.
//
//	edge run    -config FILE   serve in the foreground (SIGHUP reloads, SIGTERM/SIGINT stop gracefully)
//	edge check  -config FILE [-admin ADDR]   validate the file, print every problem (exit 1) or a summary, and the differences from a running edge
//	edge explain [-config FILE | -admin ADDR] [-X M] [-H 'N: v'] URL   say what edge does with a request
//	edge reload [-admin ADDR] [-token T]   ask a running edge to reload its file
//	edge version               print the version and build revision
//	edge completion bash|zsh|fish   print a shell completion script
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/router"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "explain":
		return cmdExplain(args[1:], stdout, stderr)
	case "tail":
		return cmdTail(args[1:], stdout, stderr)
	case "reload":
		return cmdReload(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "completion":
		return cmdCompletion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "edge: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  edge run    -config FILE              serve (SIGHUP reloads, SIGTERM/SIGINT stop gracefully)
  edge check  -config FILE [-admin ADDR] [-q]
                                        validate FILE, print every problem or a summary,
                                        and with -admin how it differs from the running edge
  edge explain [-config FILE | -admin ADDR] [-X METHOD] [-H 'Name: value']... [-client IP] [-json] URL
                                        say what edge does with a request to URL
  edge tail [-admin ADDR | -config FILE] [-route R] [-node N] [-status 5xx] [-cache miss] [-slow D] [-json] [-n N]
                                        follow the access log of a running edge live, filtered
  edge reload [-admin ADDR] [-token T]  reload a running edge through its admin API
  edge version                          print the version
  edge completion bash|zsh|fish         print a shell completion script
`)
}

func configFlag(name string, args []string, stderr io.Writer) (string, bool) {
	fs := flag.NewFlagSet("edge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "edge.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	return *path, true
}

func cmdRun(args []string, stderr io.Writer) int {
	path, ok := configFlag("run", args, stderr)
	if !ok {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv, err := router.New(cfg, router.Options{ConfigPath: path, Logger: log, Version: version})
	if err != nil {
		log.Error("starting", "error", err)
		return 1
	}
	if err := srv.Start(); err != nil {
		log.Error("starting", "error", err)
		return 1
	}
	log.Info("edge started", "version", version, "config", path)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			_ = srv.Reload() // a refused file is logged and counted by Reload
			continue
		}
		break
	}
	grace := cfg.Server.GracePeriod.D()
	log.Info("stopping: waiting for requests in flight (send the signal again to stop at once)", "grace_period", grace.String())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Warn("grace period over; closed remaining connections", "error", err)
			}
			log.Info("edge stopped")
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				continue // no reloads while stopping
			}
			log.Warn("second stop signal: stopping at once, requests in flight are cut", "signal", sig.String())
			return 1
		}
	}
}

func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "127.0.0.1:9901", "admin address of the running edge")
	token := fs.String("token", os.Getenv("EDGE_ADMIN_TOKEN"), "admin bearer token (default $EDGE_ADMIN_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+*admin+"/reload", nil)
	if err != nil {
		fmt.Fprintln(stderr, "edge reload:", err)
		return 1
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "edge reload:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprint(stderr, strings.TrimRight(string(body), "\n")+"\n")
		return 1
	}
	fmt.Fprint(stdout, string(body))
	return 0
}
