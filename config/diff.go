package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Diff returns the differences between two configurations as generic
// JSON values (what encoding/json decodes into an any: map[string]any,
// []any, float64, string, bool, nil), by field path, one line each,
// map keys in sorted order:
//
//	~ path: old → new      a value that changed
//	+ path: new            a value only in new (empty parts left out)
//	- path                 a value only in old
//
// Lists of objects that all carry distinct non-empty names (routes,
// nodes, listeners) are compared by name, so that inserting one does not
// show every later one as changed: "+ path[i] (name): …" and
// "- path[i] (name)", and a change of their order is reported on its
// own line ("~ path order: a, b → b, a"). Other lists are compared by
// position. Values are shown as compact JSON.
//
// `edge check -admin` compares a running edge's GET /config with
// (*Config).RedactedJSON of the file, so both sides are redacted alike
// and the lines never hold a secret. Diff only reads its arguments.
func Diff(old, new any) []string {
	var out []string
	diffValue(&out, "", old, new)
	return out
}

// diffValue appends the differences between old and new under path (see
// Diff).
func diffValue(out *[]string, path string, old, new any) {
	switch {
	case old == nil && new == nil:
		return
	case old == nil:
		*out = append(*out, fmt.Sprintf("+ %s: %s", path, compact(prune(new))))
		return
	case new == nil:
		*out = append(*out, "- "+path)
		return
	}
	switch o := old.(type) {
	case map[string]any:
		n, ok := new.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range o {
			keys[k] = true
		}
		for k := range n {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			diffValue(out, joinPath(path, k), o[k], n[k])
		}
		return
	case []any:
		n, ok := new.([]any)
		if !ok {
			break
		}
		diffList(out, path, o, n)
		return
	}
	if !reflect.DeepEqual(old, new) {
		*out = append(*out, fmt.Sprintf("~ %s: %s → %s", path, compact(old), compact(new)))
	}
}

// diffList compares two lists, by name when every element of both is an
// object with a distinct non-empty name, else by position. Paths use
// positions: new's for changes and additions, old's for removals.
func diffList(out *[]string, path string, old, new []any) {
	on, okOld := listNames(old)
	nn, okNew := listNames(new)
	if !okOld || !okNew {
		for i := range max(len(old), len(new)) {
			var o, n any
			if i < len(old) {
				o = old[i]
			}
			if i < len(new) {
				n = new[i]
			}
			diffValue(out, fmt.Sprintf("%s[%d]", path, i), o, n)
		}
		return
	}
	oldAt := map[string]int{}
	for i, name := range on {
		oldAt[name] = i
	}
	newAt := map[string]int{}
	for i, name := range nn {
		newAt[name] = i
	}
	var keptOld, keptNew []string
	for _, name := range on {
		if _, ok := newAt[name]; ok {
			keptOld = append(keptOld, name)
		}
	}
	for j, name := range nn {
		p := fmt.Sprintf("%s[%d]", path, j)
		i, ok := oldAt[name]
		if !ok {
			*out = append(*out, fmt.Sprintf("+ %s (%s): %s", p, name, compact(prune(new[j]))))
			continue
		}
		keptNew = append(keptNew, name)
		diffValue(out, p, old[i], new[j])
	}
	for i, name := range on {
		if _, ok := newAt[name]; !ok {
			*out = append(*out, fmt.Sprintf("- %s[%d] (%s)", path, i, name))
		}
	}
	if !slices.Equal(keptOld, keptNew) {
		*out = append(*out, fmt.Sprintf("~ %s order: %s → %s", path, strings.Join(keptOld, ", "), strings.Join(keptNew, ", ")))
	}
}

// listNames returns the "name" of every element of l, and whether they
// are all objects with distinct non-empty names (false for an empty list).
func listNames(l []any) ([]string, bool) {
	names := make([]string, len(l))
	seen := map[string]bool{}
	for i, x := range l {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, false
		}
		name, _ := m["name"].(string)
		if name == "" || seen[name] {
			return nil, false
		}
		seen[name] = true
		names[i] = name
	}
	return names, len(l) > 0
}

// joinPath appends a map key to a field path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// prune leaves out of an added value what says nothing: null, empty
// strings, lists and objects, and false.
func prune(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if x = prune(x); x != nil {
				out[k] = x
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(v) == 0 {
			return nil
		}
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = prune(x)
		}
		return out
	case string:
		if v == "" {
			return nil
		}
	case bool:
		if !v {
			return nil
		}
	}
	return v
}

// compact is v as one line of JSON.
func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// Redacted replaces a secret value in RedactedJSON.
const Redacted = "[redacted]"

// RedactedJSON returns c as generic JSON values (objects are
// map[string]any, numbers float64), with the configuration file's field
// names and defaults applied, as the admin API's GET /config serves it
// and `edge check -admin` compares it with Diff. Secrets are replaced by
// Redacted: fields whose name says token, secret, password, mac_key or
// credential (admin.token, cache.purge.token, tls.acme.eab.mac_key), and
// the values of header rules, fixed-response headers and header match
// conditions whose field name looks like a credential (Authorization,
// Cookie, *-Token, *-Key, …). Empty values stay empty, so that whether
// one is set still shows.
//
// It only reads c (the result shares nothing with it), so it may run
// concurrently with other readers of c.
func (c *Config) RedactedJSON() (map[string]any, error) {
	y, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding the configuration: %w", err)
	}
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		return nil, fmt.Errorf("decoding the encoded configuration: %w", err)
	}
	j, err := json.Marshal(jsonable(v))
	if err != nil {
		return nil, fmt.Errorf("encoding the configuration as JSON: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("decoding the configuration's JSON: %w", err)
	}
	redact(m, "")
	return m, nil
}

// jsonable turns YAML-decoded values into values encoding/json accepts
// (maps with non-string keys get string keys).
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = jsonable(x)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = jsonable(x)
		}
		return out
	case []any:
		for i, x := range v {
			v[i] = jsonable(x)
		}
		return v
	}
	return v
}

// redact replaces secrets in a decoded configuration in place; parent is
// the key v sits under.
func redact(v any, parent string) {
	switch v := v.(type) {
	case map[string]any:
		// A header condition: {name: Authorization, value: …}.
		if name, ok := v["name"].(string); ok && parent == "headers" && sensitiveHeader(name) {
			if val, ok := v["value"].(string); ok && val != "" {
				v["value"] = Redacted
			}
		}
		headerMap := parent == "set" || parent == "add" || parent == "headers"
		for k, x := range v {
			if s, ok := x.(string); ok {
				if s != "" && (secretField(k) || (headerMap && sensitiveHeader(k))) {
					v[k] = Redacted
				}
				continue
			}
			redact(x, k)
		}
	case []any:
		for _, x := range v {
			redact(x, parent)
		}
	}
}

// secretField reports configuration field names that hold secrets.
func secretField(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"token", "secret", "password", "passwd", "mac_key", "private_key", "api_key", "credential"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// sensitiveHeader reports header names whose values are likely
// credentials.
func sensitiveHeader(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"auth", "cookie", "token", "secret", "password", "key", "session", "signature"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
