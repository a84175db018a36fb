package config

import (
	"fmt"
	"strings"
)

// Placeholder is a variable of a redirect target template.
type Placeholder uint8

// Placeholders of a redirect target template. See Redirect.To for their
// meaning.
const (
	// PlaceholderNone marks a literal TemplatePart.
	PlaceholderNone Placeholder = iota
	// PlaceholderScheme is {scheme}: "http" or "https".
	PlaceholderScheme
	// PlaceholderHost is {host}: the requested host, with the port if the
	// client sent one.
	PlaceholderHost
	// PlaceholderHostname is {hostname}: the requested host without port.
	PlaceholderHostname
	// PlaceholderPath is {path}: the request path.
	PlaceholderPath
	// PlaceholderQuery is {query}: the query string without "?".
	PlaceholderQuery
	// PlaceholderURI is {uri}: the path and query, as requested.
	PlaceholderURI
	// PlaceholderRest is {rest}: the path after the route's path_prefix.
	PlaceholderRest
)

var placeholderNames = [...]string{
	PlaceholderNone:     "",
	PlaceholderScheme:   "scheme",
	PlaceholderHost:     "host",
	PlaceholderHostname: "hostname",
	PlaceholderPath:     "path",
	PlaceholderQuery:    "query",
	PlaceholderURI:      "uri",
	PlaceholderRest:     "rest",
}

// String returns the placeholder as written in a template, e.g. "{path}",
// or "" for PlaceholderNone.
func (p Placeholder) String() string {
	if p == PlaceholderNone {
		return ""
	}
	if int(p) < len(placeholderNames) {
		return "{" + placeholderNames[p] + "}"
	}
	return fmt.Sprintf("Placeholder(%d)", uint8(p))
}

// TemplatePart is one piece of a Template: either a Literal (Var is
// PlaceholderNone) or a placeholder Var (Literal is empty).
type TemplatePart struct {
	Literal string
	Var     Placeholder
}

// Template is a parsed redirect target: literals and placeholders in order.
// Adjacent literals are merged, so two literal parts are never next to
// each other.
type Template []TemplatePart

// ParseTemplate parses a redirect target template such as
// "https://{host}/new{rest}". Placeholders are {scheme}, {host},
// {hostname}, {path}, {query}, {uri} and {rest}; "{{" is a literal "{" and
// "}}" a literal "}". An unknown placeholder, an unclosed "{" and a lone
// "}" are errors.
func ParseTemplate(s string) (Template, error) {
	var t Template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, TemplatePart{Literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i += 2
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i += 2
		case c == '}':
			return nil, fmt.Errorf("lone \"}\" at offset %d; write \"}}\" for a literal \"}\"", i)
		case c == '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed \"{\" at offset %d in %q; write \"{{\" for a literal \"{\"", i, s[i:])
			}
			name := s[i+1 : i+1+end]
			p := lookupPlaceholder(name)
			if p == PlaceholderNone {
				return nil, fmt.Errorf("unknown placeholder {%s}; use {scheme}, {host}, {hostname}, {path}, {query}, {uri} or {rest}", name)
			}
			flush()
			t = append(t, TemplatePart{Var: p})
			i += end + 2
		default:
			j := i + 1
			for j < len(s) && s[j] != '{' && s[j] != '}' {
				j++
			}
			lit.WriteString(s[i:j])
			i = j
		}
	}
	flush()
	return t, nil
}

func lookupPlaceholder(name string) Placeholder {
	for p, n := range placeholderNames {
		if p != int(PlaceholderNone) && n == name {
			return Placeholder(p)
		}
	}
	return PlaceholderNone
}

// Uses reports whether t contains placeholder p.
func (t Template) Uses(p Placeholder) bool {
	for _, part := range t {
		if part.Var == p && p != PlaceholderNone {
			return true
		}
	}
	return false
}

// String writes t back in template syntax, escaping literal braces, so
// that ParseTemplate(t.String()) is equal to t.
func (t Template) String() string {
	var b strings.Builder
	for _, part := range t {
		if part.Var != PlaceholderNone {
			b.WriteString(part.Var.String())
			continue
		}
		r := strings.NewReplacer("{", "{{", "}", "}}")
		b.WriteString(r.Replace(part.Literal))
	}
	return b.String()
}
