package deploy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deploy.yaml")
	os.WriteFile(path, []byte(`
root: srv/app
shared: [storage/, .env]
build_hooks:
  - name: composer
    run: composer install --no-dev --optimize-autoloader
activate_hooks:
  - name: opcache
    run: cachetool opcache:reset --fcgi=/run/php/fpm.sock
hook_timeout: 90s
min_free_bytes: 1GiB
keep: 3
`), 0o644)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Root:          filepath.Join(dir, "srv/app"),
		Shared:        []string{"storage/", ".env"},
		BuildHooks:    []Hook{{Name: "composer", Run: "composer install --no-dev --optimize-autoloader"}},
		ActivateHooks: []Hook{{Name: "opcache", Run: "cachetool opcache:reset --fcgi=/run/php/fpm.sock"}},
		HookTimeout:   90 * time.Second,
		MinFreeBytes:  1 << 30,
		Keep:          3,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
	// An empty file is a valid (all defaults) configuration.
	os.WriteFile(path, nil, 0o644)
	if cfg, err := LoadConfig(path); err != nil || !reflect.DeepEqual(cfg, Config{}) {
		t.Errorf("empty file: %+v %v", cfg, err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "root: /x\nkeep_releases: 3\n", "keep_releases"},
		{"unknown hook key", "build_hooks: [{name: a, run: b, timeout: 1s}]\n", "timeout"},
		{"bad duration", "hook_timeout: ten\n", "hook_timeout"},
		{"bad size", "min_free_bytes: 1XB\n", "unknown unit"},
		{"negative size", "min_free_bytes: -5\n", "invalid byte size"},
		{"escaping shared", "shared: [../etc]\n", "inside the release"},
		{"absolute shared", "shared: [/etc/passwd]\n", "relative"},
		{"unclean shared", "shared: [a//b]\n", "not clean"},
		{"overlapping shared", "shared: [storage/, storage/logs/]\n", "overlap"},
		{"hook without run", "activate_hooks: [{name: reload}]\n", "run is empty"},
		{"keep zero", "keep: 0\n", "at least 1"},
		{"keep negative", "keep: -1\n", "negative"},
		{"not a map", "- a\n- b\n", "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "deploy.yaml")
			os.WriteFile(path, []byte(tt.yaml), 0o644)
			_, err := LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1024", 1024, true},
		{"1GiB", 1 << 30, true},
		{"1 GiB", 1 << 30, true},
		{"2g", 2 << 30, true},
		{"512MiB", 512 << 20, true},
		{"1.5K", 1536, true},
		{"1GB", 1e9, true},
		{"10mb", 1e7, true},
		{"3TiB", 3 << 40, true},
		{"100B", 100, true},
		{"", 0, false},
		{"GiB", 0, false},
		{"1PiB", 0, false},
		{"1e30", 0, false},
		{"99999999999999999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseByteSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
