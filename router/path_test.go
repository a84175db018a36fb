package router

import (
	"bytes"
	"errors"
	"testing"

	"github.com/edge-router/edge/config"
)

func TestNormalizePath(t *testing.T) {
	merge := pathPolicy{mergeSlashes: true, encodedSlashes: config.EncodedSlashesReject}
	keepSlashes := pathPolicy{mergeSlashes: false, encodedSlashes: config.EncodedSlashesReject}
	keepEncoded := pathPolicy{mergeSlashes: true, encodedSlashes: config.EncodedSlashesKeep}
	decode := pathPolicy{mergeSlashes: true, encodedSlashes: config.EncodedSlashesDecode}
	tests := []struct {
		name   string
		policy pathPolicy
		in     string
		want   string
		err    error
	}{
		{"root", merge, "/", "/", nil},
		{"plain", merge, "/a/b/c", "/a/b/c", nil},
		{"trailing slash kept", merge, "/a/b/", "/a/b/", nil},
		{"unreserved letter decoded", merge, "/%61dmin", "/admin", nil},
		{"unreserved upper hex decoded", merge, "/%41DMIN", "/ADMIN", nil},
		{"tilde and dash decoded", merge, "/%7Euser/%2D", "/~user/-", nil},
		{"reserved kept upper-cased", merge, "/a%3fb%3Ac", "/a%3Fb%3Ac", nil},
		{"percent kept", merge, "/100%25", "/100%25", nil},
		{"non-ascii kept upper-cased", merge, "/caf%c3%a9", "/caf%C3%A9", nil},
		{"NUL stays encoded", merge, "/a%00b", "/a%00b", nil},
		{"dot segment", merge, "/a/./b", "/a/b", nil},
		{"dot-dot segment", merge, "/x/../admin", "/admin", nil},
		{"dot-dot above root", merge, "/../../admin", "/admin", nil},
		{"encoded dot-dot", merge, "/x/%2e%2e/admin", "/admin", nil},
		{"encoded dot-dot mixed case", merge, "/x/%2E./admin", "/admin", nil},
		{"trailing dot", merge, "/a/b/.", "/a/b/", nil},
		{"trailing dot-dot", merge, "/a/b/..", "/a/", nil},
		{"only dot-dot", merge, "/..", "/", nil},
		{"dots inside a name kept", merge, "/a/..b/c.d/...", "/a/..b/c.d/...", nil},
		{"double slash merged", merge, "//admin", "/admin", nil},
		{"many slashes merged", merge, "/a///b//", "/a/b/", nil},
		{"double slash kept when not merging", keepSlashes, "//admin//x", "//admin//x", nil},
		{"dot-dot over empty segment", keepSlashes, "/a//../b", "/a/b", nil},
		{"encoded slash rejected", merge, "/a%2Fb", "", errEncodedSlash},
		{"encoded slash lower rejected", merge, "/a%2fb", "", errEncodedSlash},
		{"encoded slash kept", keepEncoded, "/a%2fb", "/a%2Fb", nil},
		{"encoded slash kept is not a segment", keepEncoded, "/a/..%2f..%2fb", "/a/..%2F..%2Fb", nil},
		{"encoded slash decoded", decode, "/a%2Fb", "/a/b", nil},
		{"encoded slash decoded then dots removed", decode, "/admin%2F..%2Fpublic", "/public", nil},
		{"bad percent: not hex", merge, "/a%zz", "", errBadPercent},
		{"bad percent: truncated", merge, "/a%4", "", errBadPercent},
		{"bad percent: at end", merge, "/a%", "", errBadPercent},
		{"double encoding not decoded twice", merge, "/%252e%252e/admin", "/%252e%252e/admin", nil},
		{"backslash kept", merge, "/a\\..\\b", "/a\\..\\b", nil},
		{"semicolon segment kept", merge, "/public/..;/admin", "/public/..;/admin", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			got, err := tt.policy.normalize(prefix, []byte(tt.in))
			if !errors.Is(err, tt.err) {
				t.Fatalf("normalize(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if err != nil {
				if string(got) != "keep" {
					t.Fatalf("on error dst = %q, want the prefix alone", got)
				}
				return
			}
			if string(got) != "keep"+tt.want {
				t.Fatalf("normalize(%q) = %q, want %q", tt.in, got[4:], tt.want)
			}
			again, err := tt.policy.normalize(nil, got[4:])
			if err != nil || !bytes.Equal(again, got[4:]) {
				t.Fatalf("not idempotent: normalize(%q) = %q, %v", got[4:], again, err)
			}
		})
	}
}

func TestCanonicalConfigPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/admin", "/admin"},
		{"/café", "/caf%C3%A9"},
		{"/a b", "/a%20b"},
		{"/a%3fb", "/a%3Fb"},
		{"/%7Euser", "/~user"},
		{"/a{b}", "/a%7Bb%7D"},
	}
	policy := pathPolicy{mergeSlashes: true, encodedSlashes: config.EncodedSlashesKeep}
	for _, tt := range tests {
		got := canonicalConfigPath(tt.in)
		if string(got) != tt.want {
			t.Errorf("canonicalConfigPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// A request for the same path, as a browser encodes it, normalises to it.
		if n, err := policy.normalize(nil, got); err != nil || !bytes.Equal(n, got) {
			t.Errorf("normalize(%q) = %q, %v; want it unchanged", got, n, err)
		}
	}
}

func TestNormalizePathAllocatesNothing(t *testing.T) {
	p := pathPolicy{mergeSlashes: true, encodedSlashes: config.EncodedSlashesReject}
	in := []byte("/x/%2e%2e/catalog//product/%41bc.html")
	dst := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		dst, _ = p.normalize(dst[:0], in)
	})
	if allocs != 0 {
		t.Fatalf("normalize allocates %v times per call", allocs)
	}
}

// FuzzNormalizePath checks what must hold for any input: the result is a
// fixed point, starts with "/" when the input did, has no dot-segments,
// and (when merging) no empty segment; no percent-encoding of an
// unreserved character survives.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2e/%2f", "//a//b/", "/a%zz", "/..", "/a/.", "/%41%7e%2D", "/x/%252e"} {
		f.Add(s, true, uint8(0))
	}
	policies := []string{config.EncodedSlashesReject, config.EncodedSlashesKeep, config.EncodedSlashesDecode}
	f.Fuzz(func(t *testing.T, in string, merge bool, pol uint8) {
		p := pathPolicy{mergeSlashes: merge, encodedSlashes: policies[int(pol)%len(policies)]}
		out, err := p.normalize(nil, []byte(in))
		if err != nil {
			return
		}
		again, err := p.normalize(nil, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("normalize(%q) = %q, then %q, %v: not a fixed point", in, out, again, err)
		}
		if len(in) > 0 && in[0] == '/' {
			if len(out) == 0 || out[0] != '/' {
				t.Fatalf("normalize(%q) = %q: lost the leading slash", in, out)
			}
			for _, seg := range bytes.Split(out[1:], []byte("/")) {
				if string(seg) == "." || string(seg) == ".." {
					t.Fatalf("normalize(%q) = %q: dot-segment left", in, out)
				}
			}
			if merge && bytes.Contains(out, []byte("//")) {
				t.Fatalf("normalize(%q) = %q: empty segment left", in, out)
			}
		}
		for i := 0; i+2 < len(out); i++ {
			if out[i] == '%' {
				hi, _ := hexValue(out[i+1])
				lo, _ := hexValue(out[i+2])
				if isUnreserved(hi<<4 | lo) {
					t.Fatalf("normalize(%q) = %q: encoded unreserved character left", in, out)
				}
			}
		}
	})
}
