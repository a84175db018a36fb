package main

import (
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/edge-router/edge/internal/completion"
)

// deployCommands are edge-deploy's commands, in the order of the usage,
// with the line completion shows for each. Their flags are read from the
// commands' own flag sets (completionSpec).
var deployCommands = []completion.Command{
	{Name: "prepare", Help: "build a release from --dir, --tarball or --git"},
	{Name: "activate", Help: "point current at a release"},
	{Name: "rollback", Help: "return to the previous good release"},
	{Name: "cleanup", Help: "remove old releases"},
	{Name: "status", Help: "show releases, lock holder, free disk and journal"},
	{Name: "recover", Help: "remove leftovers of an interrupted operation"},
	{Name: "agent", Help: "serve this node over HTTP for rollouts"},
	{Name: "rollout", Help: "deploy a release across an edge pool"},
	{Name: "version", Help: "print the version and build revision"},
	{Name: "completion", Help: "print a shell completion script"},
	{Name: "help", Help: "print the usage"},
}

const completionUsage = `usage: edge-deploy completion bash|zsh|fish

Prints a completion script for edge-deploy's commands and flags:
  bash   source <(edge-deploy completion bash), or save it in /etc/bash_completion.d/edge-deploy
  zsh    source <(edge-deploy completion zsh), or save it as _edge-deploy in a directory of $fpath
  fish   edge-deploy completion fish > ~/.config/fish/completions/edge-deploy.fish
`

// cmdCompletion prints a completion script: edge-deploy completion bash|zsh|fish.
func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && slices.Contains([]string{"-h", "-help", "--help", "help"}, args[0]) {
		fmt.Fprint(stdout, completionUsage)
		return exitOK
	}
	if len(args) != 1 || !slices.Contains(completion.Shells, args[0]) {
		fmt.Fprint(stderr, completionUsage)
		return exitUsage
	}
	if err := completion.Write(stdout, args[0], completionSpec()); err != nil {
		fmt.Fprintln(stderr, "edge-deploy completion:", err)
		return exitFail
	}
	return exitOK
}

// completionSpec describes edge-deploy's command line. The global flags
// come from globalFlags.register, and each command's flags from what its
// flag set prints for -h, so they cannot drift from the code.
func completionSpec() completion.Spec {
	s := completion.Spec{
		Prog:  "edge-deploy",
		Files: map[string]bool{"config": true, "tarball": true},
		Dirs:  map[string]bool{"root": true, "dir": true, "git": true},
	}
	g := flag.NewFlagSet("edge-deploy", flag.ContinueOnError)
	new(globalFlags).register(g)
	s.Global = completion.FlagSetFlags(g)
	s.Commands = completion.WithFlags(deployCommands, run)
	return s
}
