package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Template
	}{
		{"empty", "", nil},
		{"literal", "https://example.com/", Template{{Literal: "https://example.com/"}}},
		{"all placeholders", "{scheme}{host}{hostname}{path}{query}{uri}{rest}", Template{
			{Var: PlaceholderScheme}, {Var: PlaceholderHost}, {Var: PlaceholderHostname}, {Var: PlaceholderPath},
			{Var: PlaceholderQuery}, {Var: PlaceholderURI}, {Var: PlaceholderRest},
		}},
		{"mixed", "https://{hostname}:8443/new{rest}?{query}", Template{
			{Literal: "https://"}, {Var: PlaceholderHostname}, {Literal: ":8443/new"},
			{Var: PlaceholderRest}, {Literal: "?"}, {Var: PlaceholderQuery},
		}},
		{"escaped braces merge", "/a{{b}}c", Template{{Literal: "/a{b}c"}}},
		{"escape next to placeholder", "{{{path}}}", Template{{Literal: "{"}, {Var: PlaceholderPath}, {Literal: "}"}}},
		{"only escapes", "{{}}", Template{{Literal: "{}"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTemplate(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseTemplate(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in && tt.name != "escaped braces merge" {
				t.Errorf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestParseTemplateErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		msg  string
	}{
		{"unknown", "/{nope}/", "unknown placeholder {nope}"},
		{"case matters", "{Path}", "unknown placeholder {Path}"},
		{"empty placeholder", "/{}", "unknown placeholder {}"},
		{"unclosed", "https://{host/x", `unclosed "{" at offset 8 in "{host/x"`},
		{"unclosed at end", "/a{", `unclosed "{"`},
		{"lone close", "/a}b", `lone "}" at offset 2`},
		{"close after placeholder", "{path}}", `lone "}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTemplate(tt.in)
			if err == nil {
				t.Fatalf("ParseTemplate(%q) = %+v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestTemplateUses(t *testing.T) {
	tmpl, err := ParseTemplate("https://{host}{uri}")
	if err != nil {
		t.Fatal(err)
	}
	for p := PlaceholderNone; p <= PlaceholderRest; p++ {
		want := p == PlaceholderHost || p == PlaceholderURI
		if got := tmpl.Uses(p); got != want {
			t.Errorf("Uses(%v) = %v, want %v", p, got, want)
		}
	}
}

func TestPlaceholderString(t *testing.T) {
	for p, want := range map[Placeholder]string{
		PlaceholderNone: "", PlaceholderScheme: "{scheme}", PlaceholderRest: "{rest}", 99: "Placeholder(99)",
	} {
		if got := p.String(); got != want {
			t.Errorf("Placeholder(%d).String() = %q, want %q", uint8(p), got, want)
		}
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"", "/a", "{path}", "https://{host}/{rest}?{query}", "{{x}}", "{", "}", "{nope}", "{{{uri}}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := ParseTemplate(s)
		if err != nil {
			return
		}
		for i, part := range tmpl {
			if (part.Literal == "") == (part.Var == PlaceholderNone) {
				t.Fatalf("part %d %+v: want exactly one of Literal and Var", i, part)
			}
			if part.Var > PlaceholderRest {
				t.Fatalf("part %d: unknown placeholder %d", i, part.Var)
			}
			if i > 0 && part.Var == PlaceholderNone && tmpl[i-1].Var == PlaceholderNone {
				t.Fatalf("parts %d and %d are adjacent literals", i-1, i)
			}
		}
		again, err := ParseTemplate(tmpl.String())
		if err != nil {
			t.Fatalf("String() %q does not parse: %v", tmpl.String(), err)
		}
		if !reflect.DeepEqual(again, tmpl) {
			t.Fatalf("round trip: %+v, want %+v", again, tmpl)
		}
	})
}
