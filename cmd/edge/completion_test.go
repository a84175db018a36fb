package main

import (
	"bytes"
	"github.com/edge-router/edge/internal/completion"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	for _, shell := range completion.Shells {
		t.Run(shell, func(t *testing.T) {
			code, stdout, stderr := runCLI("completion", shell)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			// Every command, and the flags of the real flag sets.
			for _, want := range []string{"run", "check", "reload", "version", "completion", "config", "admin", "token", "bash zsh fish"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("the %s script does not mention %q", shell, want)
				}
			}
		})
	}
}

func TestCompletionUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"completion"}, 2},
		{[]string{"completion", "tcsh"}, 2},
		{[]string{"completion", "bash", "zsh"}, 2},
		{[]string{"completion", "-h"}, 0},
	} {
		code, stdout, stderr := runCLI(tc.args...)
		if code != tc.want || !strings.Contains(stdout+stderr, "usage: edge completion bash|zsh|fish") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d and the usage", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

// The flags come from the commands' flag sets, so a flag added to a
// command appears in completion without touching completion.go.
func TestCompletionFlagsFromFlagSets(t *testing.T) {
	want := map[string][]string{
		"run":     {"config"},
		"check":   {"admin", "config", "q", "token"},
		"explain": {"H", "X", "admin", "client", "config", "json", "token"},
		"tail":    {"admin", "cache", "config", "json", "method", "n", "node", "path", "route", "slow", "status", "token"},
		"reload":  {"admin", "token"},
	}
	// Only these take no value; any other flag read as boolean would
	// make completion skip the value the user types next.
	boolean := map[string]bool{"check -q": true, "explain -json": true, "tail -json": true}
	spec := completionSpec()
	for _, c := range spec.Commands {
		var got []string
		for _, f := range c.Flags {
			got = append(got, f.Name)
			if (f.Type == "") != boolean[c.Name+" -"+f.Name] {
				t.Errorf("%s -%s: boolean is %v, want %v", c.Name, f.Name, f.Type == "", boolean[c.Name+" -"+f.Name])
			}
		}
		if !slices.Equal(got, want[c.Name]) {
			t.Errorf("%s: flags %q, want %q", c.Name, got, want[c.Name])
		}
	}
}

// A default taken from the environment (the admin token) must not be
// written into a completion script.
func TestCompletionLeavesOutDefaults(t *testing.T) {
	t.Setenv("EDGE_ADMIN_TOKEN", "s3cret-admin-token")
	for _, shell := range completion.Shells {
		_, stdout, _ := runCLI("completion", shell)
		if strings.Contains(stdout, "s3cret") || strings.Contains(stdout, "edge.yaml") {
			t.Errorf("the %s script holds a flag default", shell)
		}
	}
}

// edgeCommands must name exactly the commands of the usage (plus help),
// and run must know each of them.
func TestCompletionCommandsMatchUsage(t *testing.T) {
	var b bytes.Buffer
	usage(&b)
	var listed []string
	for _, m := range regexp.MustCompile(`(?m)^  edge ([a-z]+)`).FindAllStringSubmatch(b.String(), -1) {
		listed = append(listed, m[1])
	}
	var names []string
	for _, c := range edgeCommands {
		names = append(names, c.Name)
		if _, _, stderr := runCLI(c.Name, "-h"); strings.Contains(stderr, "unknown command") {
			t.Errorf("completion offers %q, which run does not know", c.Name)
		}
	}
	if want := append(listed, "help"); !slices.Equal(names, want) {
		t.Errorf("completion offers %q; the usage lists %q (and help)", names, listed)
	}
}

// bashComplete loads script in bash, sets COMP_WORDS to words (the last
// one is the word being completed) and returns what the function offers.
func bashComplete(t *testing.T, script, fn, dir string, words ...string) []string {
	t.Helper()
	prog := `source "$1" || exit 1; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); ` +
		fn + `; printf '%s\n' "${COMPREPLY[@]}"`
	cmd := exec.Command("bash", append([]string{"--norc", "--noprofile", "-c", prog, "bash", script}, words...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	slices.Sort(got)
	return got
}

func TestCompletionBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "edge.bash")
	_, stdout, _ := runCLI("completion", "bash")
	if err := os.WriteFile(script, []byte(stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "edge.yaml"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"edge", ""}, []string{"check", "completion", "explain", "help", "reload", "run", "tail", "version"}},
		{[]string{"edge", "re"}, []string{"reload"}},
		{[]string{"edge", "reload", "-"}, []string{"-admin", "-token"}},
		{[]string{"edge", "reload", "--t"}, []string{"--token"}},
		{[]string{"edge", "reload", "-admin", ""}, nil},
		{[]string{"edge", "check", "-config", "ed"}, []string{"edge.yaml"}},
		{[]string{"edge", "completion", ""}, []string{"bash", "fish", "zsh"}},
	} {
		got := bashComplete(t, script, "_edge_complete", work, tc.words...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

// The zsh and fish scripts are checked for syntax where those shells are
// installed (the README's Packaging section shows them at work).
func TestCompletionSyntax(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Skipf("%s is not installed", shell)
			}
			_, script, _ := runCLI("completion", shell)
			cmd := exec.Command(shell, "-n")
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
}
