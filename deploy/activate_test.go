package deploy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestActivateSwitchesCurrent(t *testing.T) {
	n := fxNode(t, Config{})
	fxPrepare(t, n, "r1")
	fxPrepare(t, n, "r2")
	if cur := fxCurrent(t, n); cur != "" {
		t.Fatalf("current before any activation: %q", cur)
	}
	for _, id := range []string{"r1", "r2"} {
		if err := n.Activate(context.Background(), id, Options{}); err != nil {
			t.Fatal(err)
		}
		if cur := fxCurrent(t, n); cur != id {
			t.Fatalf("current = %q, want %s", cur, id)
		}
		link, _ := os.Readlink(n.currentPath())
		if link != filepath.Join("releases", id) {
			t.Errorf("current -> %q, want the relative releases/%s", link, id)
		}
	}
	fxAssertClean(t, n)
	st := fxAssertConsistent(t, n)
	if fxStatusOf(st, "r2") != StatusActive || fxStatusOf(st, "r1") != StatusGood || st.Previous != "r1" {
		t.Errorf("status %+v previous %q", st.Releases, st.Previous)
	}
	if st.Releases[0].ID != "r2" || st.Releases[0].ActivatedAt.IsZero() {
		t.Errorf("newest first: %+v", st.Releases)
	}
	var activations int
	for _, e := range st.Journal {
		if e.Op == "activate" && e.Result == "ok" {
			activations++
		}
	}
	if activations != 2 {
		t.Errorf("journal: %+v", st.Journal)
	}
	// Activating the current release again is a no-op.
	if err := n.Activate(context.Background(), "r2", Options{}); err != nil {
		t.Errorf("re-activating: %v", err)
	}
	// Going back to a good release by activate is allowed.
	if err := n.Activate(context.Background(), "r1", Options{}); err != nil || fxCurrent(t, n) != "r1" {
		t.Errorf("activate r1 again: %v", err)
	}
}

func TestRelativeLinksSurviveMovingTheDeployRoot(t *testing.T) {
	base := t.TempDir()
	n := fxNode(t, Config{Root: filepath.Join(base, "app"), Shared: []string{".env"}})
	os.WriteFile(filepath.Join(n.sharedDir(), ".env"), []byte("SHARED"), 0o644)
	fxDeploy(t, n, "r1", "r2")
	moved := filepath.Join(base, "elsewhere", "app")
	os.MkdirAll(filepath.Dir(moved), 0o755)
	if err := os.Rename(n.root, moved); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(moved, "current", "index.html")); err != nil || string(b) != "release r2" {
		t.Fatalf("current after the move: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(moved, "current", ".env")); err != nil || string(b) != "SHARED" {
		t.Fatalf("shared link after the move: %q, %v", b, err)
	}
	m := fxNode(t, Config{Root: moved, Shared: []string{".env"}})
	st := fxAssertConsistent(t, m)
	if st.Current != "r2" || st.Previous != "r1" {
		t.Errorf("status after the move: %+v", st)
	}
	if err := m.Activate(context.Background(), "r1", Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestActivateRefusals(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1", "r2")
	if _, _, err := n.Rollback(context.Background(), "", Options{}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(n.releasesDir(), stagingPrefix+"r9"), 0o755)
	tests := []struct {
		id   string
		want error
	}{
		{"r2", ErrBadRelease},
		{"nope", ErrReleaseNotFound},
		{"../r1", ErrInvalidID},
		{".staging-r9", ErrInvalidID},
	}
	for _, tt := range tests {
		err := n.Activate(context.Background(), tt.id, Options{})
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), "activating release") {
			t.Errorf("Activate(%q) = %v, want %v", tt.id, err, tt.want)
		}
	}
	if cur := fxCurrent(t, n); cur != "r1" {
		t.Errorf("current %q", cur)
	}
}

func TestActivateRefusesRealDirectoryCurrent(t *testing.T) {
	n := fxNode(t, Config{})
	fxPrepare(t, n, "r1")
	os.MkdirAll(filepath.Join(n.currentPath(), "public"), 0o755)
	os.WriteFile(filepath.Join(n.currentPath(), "index.html"), []byte("old rsync deploy"), 0o644)
	err := n.Activate(context.Background(), "r1", Options{})
	if !errors.Is(err, ErrCurrentNotSymlink) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(n.currentPath(), "index.html")); string(b) != "old rsync deploy" {
		t.Error("the real current directory was touched")
	}
	fxAssertClean(t, n)
	st, _ := n.Status()
	if len(st.Warnings) == 0 {
		t.Error("status does not warn about the directory")
	}
}

func TestActivateHooks(t *testing.T) {
	n := fxNode(t, Config{})
	fxPrepare(t, n, "r1")
	fxPrepare(t, n, "r2")
	marker := filepath.Join(t.TempDir(), "reloaded")
	n.cfg.ActivateHooks = []Hook{{Name: "reload php-fpm", Run: `echo "$RELEASE_ID $(pwd)" >> ` + marker}}
	if err := n.Activate(context.Background(), "r1", Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(marker); string(b) != "r1 "+n.releaseDir("r1")+"\n" {
		t.Errorf("hook saw %q", b)
	}
	n.cfg.ActivateHooks = []Hook{{Name: "opcache reset", Run: "echo cannot reach fpm; exit 1"}}
	err := n.Activate(context.Background(), "r2", Options{})
	if err == nil || !strings.Contains(err.Error(), `"opcache reset" failed`) || !strings.Contains(err.Error(), "is current") {
		t.Fatalf("err = %v", err)
	}
	// The switch happened; the caller decides whether to roll back.
	if cur := fxCurrent(t, n); cur != "r2" {
		t.Errorf("current %q", cur)
	}
	st := fxAssertConsistent(t, n)
	found := false
	for _, e := range st.Journal {
		if e.Op == "hook" && e.Result == "failed" && strings.Contains(e.Output, "cannot reach fpm") {
			found = true
		}
	}
	if !found {
		t.Errorf("journal lacks the failed hook: %+v", st.Journal)
	}
}

func TestActivateDryRun(t *testing.T) {
	n := fxNode(t, Config{})
	fxDeploy(t, n, "r1")
	n.cfg.ActivateHooks = []Hook{{Name: "reload", Run: "systemctl reload php-fpm"}}
	fxPrepare(t, n, "r2")
	var out bytes.Buffer
	if err := n.Activate(context.Background(), "r2", Options{DryRun: true, Out: &out}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"symlink .current.<random> -> releases/r2", "rename .current.<random> -> current", "systemctl reload php-fpm"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out.String())
		}
	}
	if cur := fxCurrent(t, n); cur != "r1" {
		t.Errorf("dry run switched current to %q", cur)
	}
	fxAssertClean(t, n)
}
