package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Default values applied by Open to a Config's zero fields.
const (
	DefaultHookTimeout = 10 * time.Minute
	DefaultKeep        = 5
)

// Config describes one node's deploy root and what a release needs.
type Config struct {
	Root          string        // deploy root (made absolute by Open)
	Shared        []string      // paths relative to a release, linked to Root/shared/<path>; a trailing "/" marks a directory
	BuildHooks    []Hook        // run in the staging dir, in order, before the release is complete
	ActivateHooks []Hook        // run after the switch, in the release dir, in order
	HookTimeout   time.Duration // per hook; 0 means DefaultHookTimeout
	MinFreeBytes  int64         // Prepare refuses when the root's file system has less free space; 0 = no check
	Keep          int           // default for Cleanup; 0 means DefaultKeep
}

// Hook is one shell command run by the deploy agent. Run is executed with
// /bin/sh -c in its own process group, with RELEASE_ID, RELEASE_DIR and
// DEPLOY_ROOT added to the environment.
type Hook struct {
	Name string `yaml:"name" json:"name"`
	Run  string `yaml:"run" json:"run"`
}

// withDefaults returns c with its zero fields defaulted.
func (c Config) withDefaults() Config {
	if c.HookTimeout <= 0 {
		c.HookTimeout = DefaultHookTimeout
	}
	if c.Keep <= 0 {
		c.Keep = DefaultKeep
	}
	return c
}

// validate reports every problem of c (the root excepted) in one error.
func (c Config) validate() error {
	var errs []error
	seen := map[string]string{}
	for _, s := range c.Shared {
		p, err := cleanSharedPath(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("shared path %q: %w", s, err))
			continue
		}
		for q, orig := range seen {
			if q == p || strings.HasPrefix(q, p+"/") || strings.HasPrefix(p, q+"/") {
				errs = append(errs, fmt.Errorf("shared paths %q and %q overlap", orig, s))
			}
		}
		seen[p] = s
	}
	for _, hk := range []struct {
		kind  string
		hooks []Hook
	}{{"build_hooks", c.BuildHooks}, {"activate_hooks", c.ActivateHooks}} {
		kind := hk.kind
		for i, h := range hk.hooks {
			if strings.TrimSpace(h.Run) == "" {
				errs = append(errs, fmt.Errorf("%s[%d] (%s): run is empty", kind, i, h.Name))
			}
		}
	}
	if c.HookTimeout < 0 {
		errs = append(errs, errors.New("hook_timeout is negative"))
	}
	if c.MinFreeBytes < 0 {
		errs = append(errs, errors.New("min_free_bytes is negative"))
	}
	if c.Keep < 0 {
		errs = append(errs, errors.New("keep is negative"))
	}
	return errors.Join(errs...)
}

// cleanSharedPath checks a shared path and returns it clean, without its
// trailing slash.
func cleanSharedPath(s string) (string, error) {
	t := strings.TrimSuffix(s, "/")
	if t == "" {
		return "", errors.New("empty")
	}
	if strings.HasPrefix(t, "/") {
		return "", errors.New("must be relative to the release")
	}
	c := path.Clean(t)
	if c != t {
		return "", fmt.Errorf("not clean (use %q)", c)
	}
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("must stay inside the release")
	}
	return c, nil
}

// hookName is the hook's name, or a name made from its position.
func hookName(h Hook, kind string, i int) string {
	if h.Name != "" {
		return h.Name
	}
	return fmt.Sprintf("%s #%d", kind, i+1)
}

// fileConfig is the YAML form of Config.
type fileConfig struct {
	Root          string     `yaml:"root"`
	Shared        []string   `yaml:"shared"`
	BuildHooks    []Hook     `yaml:"build_hooks"`
	ActivateHooks []Hook     `yaml:"activate_hooks"`
	HookTimeout   string     `yaml:"hook_timeout"`
	MinFreeBytes  byteAmount `yaml:"min_free_bytes"`
	Keep          *int       `yaml:"keep"`
}

// byteAmount is a byte count written as a number or as a string with a
// unit ("1GiB", "500MB", "2G").
type byteAmount int64

func (b *byteAmount) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: min_free_bytes must be a number or a size like \"1GiB\"", v.Line)
	}
	n, err := parseByteSize(v.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", v.Line, err)
	}
	*b = byteAmount(n)
	return nil
}

// parseByteSize parses a byte count: a plain number, or a number followed by
// a unit. B; K, KiB, M, MiB, G, GiB, T, TiB are powers of 1024; KB, MB,
// GB, TB are powers of 1000. Units are case-insensitive.
func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("invalid byte size %q", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
		"g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("invalid byte size %q: unknown unit %q", s, unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid byte size %q", s)
	}
	v := f * mult
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("byte size %q is too large", s)
	}
	return int64(v), nil
}

// LoadConfig reads a YAML deploy configuration. Unknown keys are errors.
// Keys: root (relative to the file's directory), shared, build_hooks and
// activate_hooks (lists of {name, run}), hook_timeout (a Go duration such
// as "10m"), min_free_bytes (a number or a size such as "1GiB") and keep.
// Defaults are applied by Open, not here; a missing root is left empty.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("loading deploy config: %w", err)
	}
	cfg, err := parseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("loading deploy config %s: %w", path, err)
	}
	if cfg.Root != "" && !filepath.IsAbs(cfg.Root) {
		cfg.Root = filepath.Join(filepath.Dir(path), cfg.Root)
	}
	return cfg, nil
}

// parseConfig decodes and validates one YAML document.
func parseConfig(data []byte) (Config, error) {
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	cfg := Config{
		Root:          fc.Root,
		Shared:        fc.Shared,
		BuildHooks:    fc.BuildHooks,
		ActivateHooks: fc.ActivateHooks,
		MinFreeBytes:  int64(fc.MinFreeBytes),
	}
	if fc.HookTimeout != "" {
		d, err := time.ParseDuration(fc.HookTimeout)
		if err != nil {
			return Config{}, fmt.Errorf("hook_timeout: %w", err)
		}
		cfg.HookTimeout = d
	}
	if fc.Keep != nil {
		cfg.Keep = *fc.Keep
		if cfg.Keep == 0 {
			return Config{}, errors.New("keep: must be at least 1 (current and the previous good release are always kept)")
		}
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
