package main

import (
	"bytes"
	"flag"
	"fmt"
	"github.com/edge-router/edge/internal/completion"
	"io"
	"slices"
)

// deployCommands are edge-deploy's commands, in the order of the usage,
// with the line completion shows for each. Their flags are read from the
// commands' own flag sets (completionSpec).
var deployCommands = []struct{ name, help string }{
	{"prepare", "build a release from --dir, --tarball or --git"},
	{"activate", "point current at a release"},
	{"rollback", "return to the previous good release"},
	{"cleanup", "remove old releases"},
	{"status", "show releases, lock holder, free disk and journal"},
	{"recover", "remove leftovers of an interrupted operation"},
	{"agent", "serve this node over HTTP for rollouts"},
	{"rollout", "deploy a release across an edge pool"},
	{"version", "print the version and build revision"},
	{"completion", "print a shell completion script"},
	{"help", "print the usage"},
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
	for _, c := range deployCommands {
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

// commandFlags runs "edge-deploy CMD -h" in-process and reads the flags
// that the command's flag set printed. Every command stops at -h before
// doing anything.
func commandFlags(cmd string) []completion.Flag {
	var usage bytes.Buffer
	run([]string{cmd, "-h"}, io.Discard, &usage)
	return completion.ParseFlagDefaults(usage.String())
}
