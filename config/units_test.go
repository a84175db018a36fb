package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDurationUnmarshalYAML(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		err  string
	}{
		{"seconds", "2s", 2 * time.Second, ""},
		{"milliseconds", "150ms", 150 * time.Millisecond, ""},
		{"compound", "1m30s", 90 * time.Second, ""},
		{"quoted", `"1h"`, time.Hour, ""},
		{"zero with unit", "0s", 0, ""},
		{"bare integer", "2", 0, `invalid duration "2": duration needs a unit, e.g. "2s"`},
		{"quoted bare integer", `"30"`, 0, "duration needs a unit"},
		{"bare zero", "0", 0, "duration needs a unit"},
		{"bare float", "1.5", 0, "duration needs a unit"},
		{"negative", "-5s", 0, `invalid duration "-5s": must not be negative`},
		{"bad unit", "5 parsecs", 0, `invalid duration "5 parsecs"`},
		{"empty", `""`, 0, "empty duration"},
		{"list", "[1s]", 0, "expected a duration"},
		{"mapping", "{a: 1}", 0, "expected a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v struct {
				D Duration `yaml:"d"`
			}
			err := yaml.Unmarshal([]byte("d: "+tt.in), &v)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v (%v), want error containing %q", err, v.D, tt.err)
				}
				if !strings.Contains(err.Error(), "line 1: ") {
					t.Errorf("error %q has no line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.D.D() != tt.want {
				t.Errorf("got %v, want %v", v.D.D(), tt.want)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	d := Duration(90 * time.Second)
	if d.String() != "1m30s" {
		t.Errorf("String() = %q", d.String())
	}
	b, err := json.Marshal(struct{ D Duration }{d})
	if err != nil || string(b) != `{"D":"1m30s"}` {
		t.Errorf("json = %s, %v", b, err)
	}
	var back struct{ D Duration }
	if err := json.Unmarshal(b, &back); err != nil || back.D != d {
		t.Errorf("json round trip = %v, %v", back.D, err)
	}
	if err := back.D.UnmarshalText([]byte("5")); err == nil {
		t.Error("UnmarshalText accepted a bare number")
	}
	out, err := yaml.Marshal(struct{ D Duration }{d})
	if err != nil || strings.TrimSpace(string(out)) != "d: 1m30s" {
		t.Errorf("yaml = %q, %v", out, err)
	}
}

func TestSizeUnmarshalYAML(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		err  string
	}{
		{"integer", "512", 512, ""},
		{"zero", "0", 0, ""},
		{"hex integer", "0x400", 1024, ""},
		{"quoted bytes", `"512"`, 512, ""},
		{"bytes suffix", "512B", 512, ""},
		{"KiB", "16KiB", 16 << 10, ""},
		{"kib lower case", "16kib", 16 << 10, ""},
		{"MiB", "64MiB", 64 << 20, ""},
		{"GiB", "1GiB", 1 << 30, ""},
		{"TiB", "2TiB", 2 << 40, ""},
		{"KB", "10KB", 10_000, ""},
		{"MB", "10MB", 10_000_000, ""},
		{"GB", "1GB", 1_000_000_000, ""},
		{"space before unit", "16 KiB", 16 << 10, ""},
		{"negative integer", "-1", 0, `invalid size "-1": must not be negative`},
		{"negative string", "-1KiB", 0, "must not be negative"},
		{"unknown unit", "12XB", 0, `invalid size "12XB": unknown unit "XB"`},
		{"ambiguous unit", "12K", 0, `unknown unit "K"`},
		{"fraction", "1.5MiB", 0, `invalid size "1.5MiB": must be a whole number`},
		{"float", "1.5", 0, `invalid size "1.5"`},
		{"no number", "MiB", 0, `invalid size "MiB"`},
		{"overflow", "9999999999TiB", 0, "too large"},
		{"integer overflow", "99999999999999999999", 0, "invalid size"},
		{"bool", "true", 0, `invalid size "true"`},
		{"list", "[1]", 0, "expected a size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v struct {
				S Size `yaml:"s"`
			}
			err := yaml.Unmarshal([]byte("s: "+tt.in), &v)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v (%v), want error containing %q", err, v.S, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.S.Bytes() != tt.want {
				t.Errorf("got %d, want %d", v.S.Bytes(), tt.want)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{16 << 10, "16KiB"},
		{64 << 20, "64MiB"},
		{3 << 30, "3GiB"},
		{1 << 40, "1TiB"},
		{1025 << 20, "1025MiB"},
		{-5, "-5B"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if tt.in < 0 {
				return
			}
			var back Size
			if err := back.UnmarshalText([]byte(tt.in.String())); err != nil || back != tt.in {
				t.Errorf("round trip = %v, %v", back, err)
			}
		})
	}
}
