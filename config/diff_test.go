package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeJSON decodes s as encoding/json decodes GET /config.
func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("test JSON %s: %v", s, err)
	}
	return v
}

func TestDiff(t *testing.T) {
	cases := []struct {
		name     string
		old, new string
		want     []string
	}{
		{"equal", `{"a":1,"b":{"c":[1,2]},"d":[{"name":"x"}]}`, `{"a":1,"b":{"c":[1,2]},"d":[{"name":"x"}]}`, nil},
		{"changed scalar", `{"a":1,"s":"x","b":true}`, `{"a":2,"s":"y","b":true}`, []string{`~ a: 1 → 2`, `~ s: "x" → "y"`}},
		{"changed type", `{"a":{"b":1}}`, `{"a":"x"}`, []string{`~ a: {"b":1} → "x"`}},
		{"added key", `{"a":1}`, `{"a":1,"b":"x"}`, []string{`+ b: "x"`}},
		{
			"added object is pruned",
			`{}`, `{"b":{"c":1,"d":"","e":false,"f":[],"g":null,"h":{"i":""},"j":true}}`,
			[]string{`+ b: {"c":1,"j":true}`},
		},
		{"removed key", `{"a":1,"b":{"c":2}}`, `{"a":1}`, []string{`- b`}},
		{"keys in sorted order", `{"z":1,"a":1,"m":1}`, `{"z":2,"a":2,"m":2}`, []string{`~ a: 1 → 2`, `~ m: 1 → 2`, `~ z: 1 → 2`}},
		{"nested", `{"a":{"b":{"c":1,"d":"x"}}}`, `{"a":{"b":{"c":2,"e":3}}}`, []string{`~ a.b.c: 1 → 2`, `- a.b.d`, `+ a.b.e: 3`}},
		{
			"named list: added",
			`{"r":[{"name":"a","x":1},{"name":"b","x":2}]}`,
			`{"r":[{"name":"a","x":1},{"name":"n","x":0,"y":""},{"name":"b","x":2}]}`,
			[]string{`+ r[1] (n): {"name":"n","x":0}`},
		},
		{
			"named list: removed",
			`{"r":[{"name":"a"},{"name":"b"},{"name":"c"}]}`,
			`{"r":[{"name":"a"},{"name":"c"}]}`,
			[]string{`- r[1] (b)`},
		},
		{
			"named list: reordered and changed",
			`{"r":[{"name":"a","x":1},{"name":"b","x":2}]}`,
			`{"r":[{"name":"b","x":3},{"name":"a","x":1}]}`,
			[]string{`~ r[0].x: 2 → 3`, `~ r order: a, b → b, a`},
		},
		{
			"named list: added, removed and reordered",
			`{"r":[{"name":"a"},{"name":"b"},{"name":"c"}]}`,
			`{"r":[{"name":"c"},{"name":"d"},{"name":"a"}]}`,
			[]string{`+ r[1] (d): {"name":"d"}`, `- r[1] (b)`, `~ r order: a, c → c, a`},
		},
		{
			"list without names: by index",
			`{"l":[1,2,3],"m":["a"]}`,
			`{"l":[1,3],"m":["a","b"]}`,
			[]string{`~ l[1]: 2 → 3`, `- l[2]`, `+ m[1]: "b"`},
		},
		{
			"objects without names: by index",
			`{"l":[{"x":1},{"x":2}]}`,
			`{"l":[{"x":2},{"x":2}]}`,
			[]string{`~ l[0].x: 1 → 2`},
		},
		{
			"duplicate names: by index",
			`{"l":[{"name":"a","x":1},{"name":"a","x":2}]}`,
			`{"l":[{"name":"a","x":2},{"name":"a","x":2}]}`,
			[]string{`~ l[0].x: 1 → 2`},
		},
		{
			"a name missing on one side: by index",
			`{"l":[{"name":"a"},{"name":"b"}]}`,
			`{"l":[{"name":"b"},{"x":1}]}`,
			[]string{`~ l[0].name: "a" → "b"`, `- l[1].name`, `+ l[1].x: 1`},
		},
		{
			"named list emptied: by index",
			`{"l":[{"name":"a"}]}`,
			`{"l":[]}`,
			[]string{`- l[0]`},
		},
		{
			"nested named lists",
			`{"upstreams":{"app":{"nodes":[{"name":"n1","weight":1},{"name":"n2","weight":1}]}}}`,
			`{"upstreams":{"app":{"nodes":[{"name":"n1","weight":3},{"name":"n3","weight":1}]}}}`,
			[]string{
				`~ upstreams.app.nodes[0].weight: 1 → 3`,
				`+ upstreams.app.nodes[1] (n3): {"name":"n3","weight":1}`,
				`- upstreams.app.nodes[1] (n2)`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(decodeJSON(t, tc.old), decodeJSON(t, tc.new))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Diff:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// Diff does not change what it compares.
func TestDiffLeavesItsArgumentsAlone(t *testing.T) {
	const oldJSON, newJSON = `{"r":[{"name":"a","x":""}],"k":{"y":false}}`, `{"r":[{"name":"b","x":""}],"n":{"y":false,"z":""}}`
	old, cur := decodeJSON(t, oldJSON), decodeJSON(t, newJSON)
	if len(Diff(old, cur)) == 0 {
		t.Fatal("no differences")
	}
	if !reflect.DeepEqual(old, decodeJSON(t, oldJSON)) || !reflect.DeepEqual(cur, decodeJSON(t, newJSON)) {
		t.Errorf("Diff changed its arguments: %v, %v", old, cur)
	}
}

// redactedBase sets every kind of secret RedactedJSON hides.
const redactedBase = `listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:9901", token: ADMIN}
cache: {purge: {token: PURGE}}
upstreams:
  app:
    nodes: [{address: "127.0.0.1:9001", name: n1}]
routes:
  - name: api
    match: {headers: [{name: Authorization, value: MATCH}, {name: X-Env, value: prod}]}
    proxy: app
    request_headers: {set: {X-Api-Key: SETKEY, X-Plain: plain}, add: {Cookie: ADDCOOKIE}}
    response_headers: {set: {X-Served-By: edge}}
  - name: fixed
    respond: {status: 200, headers: {X-Session: RESPOND, Content-Type: text/plain}}
`

func TestRedactedJSON(t *testing.T) {
	cfg := mustParse(t, redactedBase, nil)
	m, err := cfg.RedactedJSON()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"ADMIN", "PURGE", "MATCH", "SETKEY", "ADDCOOKIE", "RESPOND"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("RedactedJSON shows %s:\n%s", secret, b)
		}
	}
	// Every secret becomes Redacted; what is not a secret stays.
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{
		"admin.token":                               Redacted,
		"cache.purge.token":                         Redacted,
		"routes.0.match.headers.0.value":            Redacted,
		"routes.0.match.headers.1.value":            "prod",
		"routes.0.request_headers.set.X-Api-Key":    Redacted,
		"routes.0.request_headers.set.X-Plain":      "plain",
		"routes.0.request_headers.add.Cookie":       Redacted,
		"routes.0.response_headers.set.X-Served-By": "edge",
		"routes.1.respond.headers.X-Session":        Redacted,
		"routes.1.respond.headers.Content-Type":     "text/plain",
		// Defaults applied, numbers as float64.
		"upstreams.app.policy":          PolicyRandomTwo,
		"upstreams.app.nodes.0.weight":  float64(1),
		"upstreams.app.nodes.0.address": "127.0.0.1:9001",
	} {
		if got := lookupPath(doc, path); got != want {
			t.Errorf("%s: %#v, want %#v", path, got, want)
		}
	}

	// An empty secret stays empty, so that whether one is set shows.
	cfg = mustParse(t, strings.Replace(redactedBase, "token: ADMIN", `token: ""`, 1), nil)
	if m, err = cfg.RedactedJSON(); err != nil {
		t.Fatal(err)
	}
	if got := lookupPath(m, "admin.token"); got != "" {
		t.Errorf("empty admin.token: %#v, want \"\"", got)
	}
}

// lookupPath follows a dotted path of keys and list positions in v.
func lookupPath(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i := 0
			for _, c := range k {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// Both sides of `edge check -admin` are redacted alike, so a changed
// secret is no difference, one set or cleared shows without its value,
// and other changes show as usual.
func TestDiffOfRedactedConfigs(t *testing.T) {
	redacted := func(src string) map[string]any {
		t.Helper()
		m, err := mustParse(t, src, nil).RedactedJSON()
		if err != nil {
			t.Fatal(err)
		}
		// Through JSON, as `edge check` reads GET /config.
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back map[string]any
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		return back
	}
	running := redacted(redactedBase)
	if d := Diff(running, redacted(redactedBase)); len(d) != 0 {
		t.Fatalf("a configuration differs from itself: %q", d)
	}
	changedSecrets := strings.NewReplacer("ADMIN", "ADMIN2", "PURGE", "PURGE2", "MATCH", "MATCH2", "SETKEY", "SETKEY2", "RESPOND", "RESPOND2").Replace(redactedBase)
	if d := Diff(running, redacted(changedSecrets)); len(d) != 0 {
		t.Errorf("changed secrets show: %q", d)
	}
	cleared := strings.Replace(redactedBase, "token: ADMIN", `token: ""`, 1)
	cleared = strings.Replace(cleared, "name: n1}", "name: n1, weight: 2}", 1)
	got := Diff(running, redacted(cleared))
	want := []string{`~ admin.token: "[redacted]" → ""`, `~ upstreams.app.nodes[0].weight: 1 → 2`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Diff: %q, want %q", got, want)
	}
}
