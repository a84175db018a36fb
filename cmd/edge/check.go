package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/edge-router/edge/config"
)

// cmdCheck is `edge check`: validate the file, print every problem or a
// summary of what the configuration does, and with -admin what reloading
// it would change in a running edge.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "edge.yaml", "configuration file")
	admin := fs.String("admin", "", "admin `address` of a running edge: also print how the file differs from its configuration")
	token := fs.String("token", os.Getenv("EDGE_ADMIN_TOKEN"), "admin bearer token (default $EDGE_ADMIN_TOKEN)")
	quiet := fs.Bool("q", false, "print only the verdict, not the summary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edge check: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: configuration ok (%d listeners, %d upstreams, %d routes)\n",
		*path, len(cfg.Listeners), len(cfg.Upstreams), len(cfg.Routes))
	if !*quiet {
		fmt.Fprintln(stdout)
		_ = cfg.WriteSummary(stdout)
	}
	if *admin == "" {
		return 0
	}
	lines, err := diffRunning(cfg, *admin, *token)
	if err != nil {
		fmt.Fprintln(stderr, "edge check:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\ndifferences from the running configuration (%s → %s)\n", *admin, *path)
	if len(lines) == 0 {
		fmt.Fprintln(stdout, "  no differences")
	}
	for _, l := range lines {
		fmt.Fprintln(stdout, "  "+l)
	}
	return 0
}

// diffRunning compares cfg with the configuration a running edge serves
// (GET /config, redacted by the same config.RedactedJSON), and returns
// the differences (running → file) by field path.
func diffRunning(cfg *config.Config, admin, token string) ([]string, error) {
	body, err := adminGet(admin, token, "/config")
	if err != nil {
		return nil, fmt.Errorf("fetching the running configuration: %w", err)
	}
	var running map[string]any
	if err := json.Unmarshal(body, &running); err != nil {
		return nil, fmt.Errorf("reading the running configuration: %w", err)
	}
	file, err := cfg.RedactedJSON()
	if err != nil {
		return nil, err
	}
	return config.Diff(running, file), nil
}
