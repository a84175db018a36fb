package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in the configuration file as a Go
// duration string with a unit, such as "2s", "150ms" or "1m30s". A bare
// number and a negative duration are refused.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does, e.g. "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText formats d like String, so that d encodes as "2s" in YAML and
// JSON rather than as a number of nanoseconds.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration string such as "2s" into d.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := parseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalYAML decodes a duration string. Its errors are *yaml.TypeError
// values carrying the line number, so that decoding goes on and every bad
// value in a file is reported.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected a duration such as \"2s\", got %s", describeNode(n))
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return typeError(n, "%v", err)
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty duration; write a value such as \"2s\"")
	}
	if isNumber(t) {
		return 0, fmt.Errorf("invalid duration %q: duration needs a unit, e.g. \"2s\"", s)
	}
	v, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use a number with a unit (ns, us, ms, s, m, h), e.g. \"2s\" or \"1m30s\"", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return Duration(v), nil
}

// isNumber reports whether s is a number without a unit, such as "2",
// "-1" or "1.5".
func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// Size is a number of bytes. In the configuration file it is an integer
// (bytes) or a string with an optional unit: "512", "512B", "16KiB",
// "64MiB", "1GiB", "1TiB" (powers of 1024) or "10KB", "10MB", "1GB", "1TB"
// (powers of 1000). Units are case-insensitive ("kib" = "KiB").
type Size int64

// Bytes returns s as a number of bytes.
func (s Size) Bytes() int64 { return int64(s) }

var binaryUnits = []struct {
	name  string
	shift uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}}

// String formats s with the largest binary unit that divides it exactly,
// e.g. "64MiB", or as bytes with a "B" suffix, e.g. "1000B". The result
// parses back to s.
func (s Size) String() string {
	if s > 0 {
		for _, u := range binaryUnits {
			if s%(1<<u.shift) == 0 {
				return strconv.FormatInt(int64(s>>u.shift), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// MarshalText formats s like String.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a size string such as "64MiB" into s.
func (s *Size) UnmarshalText(text []byte) error {
	v, err := parseSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalYAML decodes an integer number of bytes or a size string. Its
// errors are *yaml.TypeError values carrying the line number.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected a size such as \"64MiB\" or a number of bytes, got %s", describeNode(n))
	}
	switch n.ShortTag() {
	case "!!int":
		var v int64
		if err := n.Decode(&v); err != nil {
			return typeError(n, "invalid size %q: out of range", n.Value)
		}
		if v < 0 {
			return typeError(n, "invalid size %q: must not be negative", n.Value)
		}
		*s = Size(v)
		return nil
	case "!!str":
		v, err := parseSize(n.Value)
		if err != nil {
			return typeError(n, "%v", err)
		}
		*s = v
		return nil
	default:
		return typeError(n, "invalid size %q: use a whole number of bytes or a unit, e.g. \"16KiB\" or \"64MiB\"", n.Value)
	}
}

var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

func parseSize(str string) (Size, error) {
	t := strings.TrimSpace(str)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("invalid size %q: must not be negative", str)
		}
		return 0, fmt.Errorf("invalid size %q: use a whole number of bytes or a unit, e.g. \"16KiB\" or \"64MiB\"", str)
	}
	if i < len(t) && (t[i] == '.' || t[i] == ',') {
		return 0, fmt.Errorf("invalid size %q: must be a whole number, e.g. \"1536KiB\" rather than \"1.5MiB\"", str)
	}
	unit := strings.TrimSpace(t[i:])
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", str, unit)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", str)
	}
	return Size(n * mult), nil
}

// typeError returns a *yaml.TypeError for n: yaml.v3 collects those and
// goes on decoding, where any other error would stop it.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}

// describeNode names what n is, for error messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "a document"
}
