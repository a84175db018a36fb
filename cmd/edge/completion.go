package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/edge-router/edge/internal/completion"
)

// edgeCommands are edge's commands, in the order of the usage, with the
// line completion shows for each. Their flags are read from the commands'
// own flag sets (completionSpec).
var edgeCommands = []completion.Command{
	{Name: "run", Help: "serve in the foreground"},
	{Name: "check", Help: "validate a configuration file and summarise it"},
	{Name: "explain", Help: "say what edge does with a request"},
	{Name: "tail", Help: "follow the access log live, filtered"},
	{Name: "reload", Help: "reload a running edge through its admin API"},
	{Name: "version", Help: "print the version and build revision"},
	{Name: "completion", Help: "print a shell completion script"},
	{Name: "help", Help: "print the usage"},
}

const completionUsage = `usage: edge completion bash|zsh|fish

Prints a completion script for edge's commands and flags:
  bash   source <(edge completion bash), or save it in /etc/bash_completion.d/edge
  zsh    source <(edge completion zsh), or save it as _edge in a directory of $fpath
  fish   edge completion fish > ~/.config/fish/completions/edge.fish
`

// cmdCompletion prints a completion script: edge completion bash|zsh|fish.
func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && slices.Contains([]string{"-h", "-help", "--help", "help"}, args[0]) {
		fmt.Fprint(stdout, completionUsage)
		return 0
	}
	if len(args) != 1 || !slices.Contains(completion.Shells, args[0]) {
		fmt.Fprint(stderr, completionUsage)
		return 2
	}
	if err := completion.Write(stdout, args[0], completionSpec()); err != nil {
		fmt.Fprintln(stderr, "edge completion:", err)
		return 1
	}
	return 0
}

// completionSpec describes edge's command line. Each command's flags are
// what its flag set prints for -h, so they cannot drift from the code.
func completionSpec() completion.Spec {
	s := completion.Spec{Prog: "edge", Files: map[string]bool{"config": true}}
	s.Commands = completion.WithFlags(edgeCommands, run)
	return s
}
