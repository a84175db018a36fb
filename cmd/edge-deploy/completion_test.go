package main

import (
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
			code, stdout, stderr := runCLI(t, "completion", shell)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			for _, want := range []string{"prepare", "rollout", "agent", "completion", "dry-run", "tarball", "drain-lease", "node", "root", "config"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("the %s script does not mention %q", shell, want)
				}
			}
			if shell != "fish" && !strings.Contains(stdout, "edge-deploy") {
				t.Errorf("the %s script does not name the program", shell)
			}
			if _, err := exec.LookPath(shell); err == nil {
				cmd := exec.Command(shell, "-n")
				cmd.Stdin = strings.NewReader(stdout)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s -n: %v\n%s", shell, err, out)
				}
			}
		})
	}
	if code, _, stderr := runCLI(t, "completion", "csh"); code != exitUsage || !strings.Contains(stderr, "usage: edge-deploy completion") {
		t.Errorf("completion csh: exit %d, stderr %q; want 2 and the usage", code, stderr)
	}
}

// Flags come from the real flag sets: the global ones from
// globalFlags.register, the others from each command's -h (rollout's
// from package deploy).
func TestCompletionFlagsFromFlagSets(t *testing.T) {
	t.Setenv("EDGE_DEPLOY_TOKEN", "s3cret-deploy-token")
	t.Setenv("EDGE_ADMIN_TOKEN", "s3cret-admin-token")
	spec := completionSpec()
	flagsOf := func(fs []completion.Flag) []string {
		var names []string
		for _, f := range fs {
			names = append(names, f.Name)
		}
		return names
	}
	if got := flagsOf(spec.Global); !slices.Equal(got, []string{"config", "root"}) {
		t.Errorf("global flags %q", got)
	}
	want := map[string][]string{
		"prepare":  {"config", "dir", "dry-run", "git", "rev", "root", "sha256", "tarball"},
		"activate": {"config", "dry-run", "root"},
		"status":   {"config", "json", "root"},
		"agent":    {"config", "listen", "root", "token"},
	}
	for _, c := range spec.Commands {
		got := flagsOf(c.Flags)
		if w, ok := want[c.Name]; ok && !slices.Equal(got, w) {
			t.Errorf("%s: flags %q, want %q", c.Name, got, w)
		}
		if c.Name == "rollout" {
			for _, f := range []string{"pool", "node", "edge", "edge-token", "agent-token", "drain-lease", "dry-run", "tarball"} {
				if !slices.Contains(got, f) {
					t.Errorf("rollout: no -%s in %q", f, got)
				}
			}
		}
		for _, f := range c.Flags {
			if strings.Contains(f.Usage, "s3cret") {
				t.Errorf("%s -%s: the usage holds a default from the environment", c.Name, f.Name)
			}
		}
	}
	// Every flag completed as a file or directory exists somewhere.
	all := flagsOf(spec.Global)
	for _, c := range spec.Commands {
		all = append(all, flagsOf(c.Flags)...)
	}
	for name := range spec.Files {
		if !slices.Contains(all, name) {
			t.Errorf("files hint for -%s, which no command has", name)
		}
	}
	for name := range spec.Dirs {
		if !slices.Contains(all, name) {
			t.Errorf("dirs hint for -%s, which no command has", name)
		}
	}
}

// deployCommands must name exactly the commands of the usage (plus help),
// and run must know each of them.
func TestCompletionCommandsMatchUsage(t *testing.T) {
	var listed []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z]+)\b`).FindAllStringSubmatch(usageText, -1) {
		listed = append(listed, m[1])
	}
	var names []string
	for _, c := range deployCommands {
		names = append(names, c.Name)
		if _, _, stderr := runCLI(t, c.Name, "-h"); strings.Contains(stderr, "unknown command") {
			t.Errorf("completion offers %q, which run does not know", c.Name)
		}
	}
	if want := append(listed, "help"); !slices.Equal(names, want) {
		t.Errorf("completion offers %q; the usage lists %q (and help)", names, listed)
	}
}

func TestCompletionBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	_, stdout, _ := runCLI(t, "completion", "bash")
	script := filepath.Join(t.TempDir(), "edge-deploy.bash")
	if err := os.WriteFile(script, []byte(stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.Mkdir(filepath.Join(work, "srv"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "deploy.yaml"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"edge-deploy", "-"}, []string{"-config", "-root"}},
		{[]string{"edge-deploy", "-config", "deploy.yaml", "pre"}, []string{"prepare"}},
		{[]string{"edge-deploy", "-root", ""}, []string{"srv"}},
		{[]string{"edge-deploy", "prepare", "r1", "--ta"}, []string{"--tarball"}},
		{[]string{"edge-deploy", "prepare", "-dir", ""}, []string{"srv"}},
		{[]string{"edge-deploy", "rollout", "-dr"}, []string{"-drain-lease", "-drain-timeout", "-dry-run"}},
		{[]string{"edge-deploy", "rollout", "-pool", ""}, nil},
	} {
		prog := `source "$1" || exit 1; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); ` +
			`_edge_deploy_complete; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", append([]string{"--norc", "--noprofile", "-c", prog, "bash", script}, tc.words...)...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.words, err, out)
		}
		got := strings.Fields(string(out))
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}
