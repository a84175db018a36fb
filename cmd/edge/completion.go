package main

import (
	"bytes"
	"fmt"
	"github.com/edge-router/edge/internal/completion"
	"io"
	"slices"
)

// edgeCommands are edge's commands, in the order of the usage, with the
// line completion shows for each. Their flags are read from the commands'
// own flag sets (completionSpec).
var edgeCommands = []struct{ name, help string }{
	{"run", "serve in the foreground"},
	{"check", "validate a configuration file and summarise it"},
	{"explain", "say what edge does with a request"},
	{"tail", "follow the access log live, filtered"},
	{"reload", "reload a running edge through its admin API"},
	{"version", "print the version and build revision"},
	{"completion", "print a shell completion script"},
	{"help", "print the usage"},
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
	for _, c := range edgeCommands {
		cc := completion.Command{Name: c.name, Help: c.help}
		if c.name == "completion" {
			cc.Words = completion.Shells
		} else {
			cc.Flags = commandFlags(c.name)
		}
		s.Commands = append(s.Commands, cc)
	}
	return s
}

// commandFlags runs "edge CMD -h" in-process and reads the flags that the
// command's flag set printed. Every command stops at -h before doing
// anything.
func commandFlags(cmd string) []completion.Flag {
	var usage bytes.Buffer
	run([]string{cmd, "-h"}, io.Discard, &usage)
	return completion.ParseFlagDefaults(usage.String())
}
