package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envOf returns a lookup function over env.
func envOf(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// problemsOf returns the problems of err, failing the test if err is not
// a *ValidationError.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want problems")
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if len(ve.Problems) == 0 {
		t.Fatalf("*ValidationError without problems: %v", err)
	}
	return ve.Problems
}

// findProblem returns the problem at path whose message contains msg.
func findProblem(ps []Problem, path, msg string) (Problem, bool) {
	for _, p := range ps {
		if p.Path == path && strings.Contains(p.Msg, msg) {
			return p, true
		}
	}
	return Problem{}, false
}

func mustParse(t *testing.T, src string, env map[string]string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(src), "test.yaml", envOf(env))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"HOST": "db.internal", "EMPTY": "", "PORT": "5432", "_X1": "x"}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"set", "a: ${HOST}", "a: db.internal"},
		{"underscore and digits", "a: ${_X1}", "a: x"},
		{"set with default", "a: ${HOST:-other}", "a: db.internal"},
		{"unset with default", "a: ${NOPE:-fallback}", "a: fallback"},
		{"empty with default", "a: ${EMPTY:-fallback}", "a: fallback"},
		{"empty default", "a: '${NOPE:-}'", "a: ''"},
		{"default with colon", "a: ${NOPE:-127.0.0.1:80}", "a: 127.0.0.1:80"},
		{"empty without default", "a: '${EMPTY}'", "a: ''"},
		{"several on a line", "a: ${HOST}:${PORT}", "a: db.internal:5432"},
		{"dollar dollar", "a: $$HOST $${HOST}", "a: $HOST ${HOST}"},
		{"lone dollar", "a: $HOST costs $5 $", "a: $HOST costs $5 $"},
		{"no dollar", "a: b\n", "a: b\n"},
		{"value not re-expanded", "a: ${DOLLAR}", "a: ${HOST}"},
	}
	env["DOLLAR"] = "${HOST}"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, probs := expandEnv([]byte(tt.in), envOf(env))
			if len(probs) != 0 {
				t.Fatalf("problems: %v", probs)
			}
			if string(got) != tt.want {
				t.Errorf("expandEnv(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestExpandEnvProblems(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Problem // Path is empty for all
	}{
		{"missing", "a: 1\nb: ${MISSING}\n", []Problem{{Line: 2, Msg: "environment variable MISSING is not set"}}},
		{"all missing ones", "a: ${A}\n\nb: ${B} ${C}\n", []Problem{
			{Line: 1, Msg: "environment variable A is not set"},
			{Line: 3, Msg: "environment variable B is not set"},
			{Line: 3, Msg: "environment variable C is not set"},
		}},
		{"in a comment", "# ${COMMENTED}\na: 1\n", []Problem{{Line: 1, Msg: "COMMENTED is not set"}}},
		{"empty name", "a: ${}\n", []Problem{{Line: 1, Msg: "invalid variable reference \"${}\""}}},
		{"bad name", "a: 1\na: ${1X}\n", []Problem{{Line: 2, Msg: "invalid variable reference \"${1X}\""}}},
		{"other operator", "a: ${X-def}\n", []Problem{{Line: 1, Msg: "invalid variable reference \"${X-def}\""}}},
		{"unclosed", "a: ${X\nb: }\n", []Problem{{Line: 1, Msg: "unclosed variable reference \"${X\""}}},
		{"unclosed default", "a: ${X:-y\n", []Problem{{Line: 1, Msg: "unclosed variable reference"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, probs := expandEnv([]byte(tt.in), envOf(nil))
			if len(probs) != len(tt.want) {
				t.Fatalf("got %d problems %v, want %d", len(probs), probs, len(tt.want))
			}
			for i, p := range probs {
				if p.Line != tt.want[i].Line || p.Path != "" || !strings.Contains(p.Msg, tt.want[i].Msg) {
					t.Errorf("problem %d = %+v, want line %d and message containing %q", i, p, tt.want[i].Line, tt.want[i].Msg)
				}
			}
		})
	}
}

func TestParseEnv(t *testing.T) {
	const src = "admin:\n  address: ${ADMIN:-127.0.0.1:7000}\n  token: ${TOKEN}\naccess_log:\n  path: $$HOME/${LOG:-edge.log}\n"
	tests := []struct {
		name      string
		env       map[string]string
		wantAdmin string
		wantToken string
		wantPath  string
	}{
		{"set", map[string]string{"ADMIN": ":9000", "TOKEN": "s3cret", "LOG": "x.log"}, ":9000", "s3cret", "$HOME/x.log"},
		{"unset with default", map[string]string{"TOKEN": "t"}, "127.0.0.1:7000", "t", "$HOME/edge.log"},
		{"empty with default", map[string]string{"ADMIN": "", "TOKEN": "t", "LOG": ""}, "127.0.0.1:7000", "t", "$HOME/edge.log"},
		{"set but empty without default", map[string]string{"TOKEN": ""}, "127.0.0.1:7000", "", "$HOME/edge.log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, src, tt.env)
			if cfg.Admin.Address != tt.wantAdmin || cfg.Admin.Token != tt.wantToken || cfg.AccessLog.Path != tt.wantPath {
				t.Errorf("got admin %q token %q path %q, want %q %q %q",
					cfg.Admin.Address, cfg.Admin.Token, cfg.AccessLog.Path, tt.wantAdmin, tt.wantToken, tt.wantPath)
			}
		})
	}

	t.Run("missing is a problem with its line", func(t *testing.T) {
		src := "listeners:\n  - address: ${LISTEN}\nadmin:\n  token: ${TOKEN}\nserver:\n  idle_timeout: 0s\n"
		_, err := Parse([]byte(src), "test.yaml", envOf(nil))
		ps := problemsOf(t, err)
		want := []Problem{
			{Line: 2, Msg: "environment variable LISTEN is not set (write ${LISTEN:-default} to give a default)"},
			{Line: 4, Msg: "environment variable TOKEN is not set (write ${TOKEN:-default} to give a default)"},
			{Path: "server.idle_timeout", Line: 6, Msg: "must be greater than 0, got 0s"},
		}
		// The empty listener address on line 2 is not reported: the
		// missing variable explains it.
		if !reflect.DeepEqual(ps, want) {
			t.Errorf("problems:\n%v\nwant:\n%v", ps, want)
		}
	})

	t.Run("lines of a multi-line value", func(t *testing.T) {
		src := "server:\n  idle_timeout: ${X}\n  max_connections: 0\n  read_header_timeout: 0s\n  read_header_timeout: 1s\n"
		_, err := Parse([]byte(src), "test.yaml", envOf(map[string]string{"X": "5s\n  grace_period: 1s"}))
		ps := problemsOf(t, err)
		want := []Problem{{Path: "server.read_header_timeout", Line: 5, Msg: `duplicate key "read_header_timeout" (first defined on line 4)`}}
		if !reflect.DeepEqual(ps, want) {
			t.Errorf("problems:\n%v\nwant:\n%v", ps, want)
		}
		src = "server:\n  idle_timeout: ${X}\n  max_connections: 0\n"
		_, err = Parse([]byte(src), "test.yaml", envOf(map[string]string{"X": "5s\n  grace_period: 1s"}))
		if _, ok := findProblem(problemsOf(t, err), "server.max_connections", "at least 1"); !ok || problemsOf(t, err)[0].Line != 3 {
			t.Errorf("got %v, want server.max_connections on line 3", err)
		}
	})

	t.Run("nil lookup sets nothing", func(t *testing.T) {
		_, err := Parse([]byte("admin: {token: '${T}'}\n"), "", nil)
		if _, ok := findProblem(problemsOf(t, err), "", "T is not set"); !ok {
			t.Errorf("got %v", err)
		}
	})
}

func TestParseStrict(t *testing.T) {
	tests := []struct {
		name string
		src  string
		path string
		line int
		msg  string
	}{
		{"empty file", "", "", 0, "configuration is empty"},
		{"only comments", "# nothing\n\n# here\n", "", 0, "configuration is empty"},
		{"only a document marker", "---\n", "", 0, "configuration is empty"},
		{"null document", "~\n", "", 0, "configuration is empty"},
		{"two documents", "watch: true\n---\nwatch: false\n", "", 2, "more than one YAML document"},
		{"not a mapping", "- a\n- b\n", "", 1, "must be a mapping"},
		{"scalar document", "hello\n", "", 1, "must be a mapping"},
		{"syntax error", "server:\n  idle_timeout: 1s\n bad: [\n", "", 2, "did not find expected key"},
		{"unknown top-level key", "watch: true\nlisteners: [{address: ':80'}]\nroutez: []\n", "routez", 3, `unknown field "routez"; did you mean "routes"?`},
		{"unknown nested key", "listeners:\n  - address: ':80'\n    nmae: a\n", "listeners[0].nmae", 3, `unknown field "nmae"; did you mean "name"?`},
		{"unknown key without suggestion", "server:\n  frobnicate: 1\n", "server.frobnicate", 2, "known fields: read_header_timeout,"},
		{"unknown key in an upstream", "upstreams:\n  app:\n    nodes: [{address: 'a:1'}]\n    polcy: round_robin\n", "upstreams.app.polcy", 4, `did you mean "policy"?`},
		{"duplicate key", "admin:\n  address: ':1'\n  token: a\n  token: b\n", "admin.token", 4, `duplicate key "token" (first defined on line 3)`},
		{"duplicate top-level key", "watch: true\nwatch: false\n", "watch", 2, `duplicate key "watch"`},
		{"wrong type", "server:\n  max_connections: many\n", "server.max_connections", 2, `expected an integer, got "many"`},
		{"list for a mapping", "server: [1, 2]\n", "server", 1, "expected a mapping, got a list"},
		{"mapping for a list", "listeners: {address: ':80'}\n", "listeners", 1, "expected a list, got a mapping"},
		{"bool", "watch: maybe\n", "watch", 1, `expected true or false, got "maybe"`},
		{"wrong type in flow", "upstreams: {app: {nodes: [{address: 'a:1', weight: {}}]}}\n", "upstreams.app.nodes[0].weight", 1, "expected an integer, got a mapping"},
		{"bad duration", "server:\n  idle_timeout: 90\n", "server.idle_timeout", 2, `duration needs a unit, e.g. "2s"`},
		{"bad size", "server:\n  max_body_bytes: 1 potato\n", "server.max_body_bytes", 2, `unknown unit "potato"`},
		{"bad dns duration", "upstreams:\n  app:\n    discovery:\n      dns: {name: _a._tcp.x, min_ttl: 5}\n", "upstreams.app.discovery.dns.min_ttl", 4, "duration needs a unit"},
		{"unknown health check field", app + "    health_check: {path: /h, intervl: 1s}\n", "upstreams.app.health_check.intervl", 4, `did you mean "interval"?`},
		{"retries on a mapping", app + "    retries:\n      on: {a: 1}\n", "upstreams.app.retries.on", 5, "expected a list, got a mapping"},
		{"attempts not a number", app + "    retries: {attempts: two}\n", "upstreams.app.retries.attempts", 4, `expected an integer, got "two"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.src), "test.yaml", envOf(nil))
			if cfg != nil {
				t.Errorf("got a config with error %v", err)
			}
			ps := problemsOf(t, err)
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(ps), err)
			}
			p := ps[0]
			if p.Path != tt.path || p.Line != tt.line || !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("got %+v, want path %q line %d message containing %q", p, tt.path, tt.line, tt.msg)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	const src = `
upstreams:
  app:
    hash: {load_factor: 0}
    nodes:
      - address: "10.0.0.1:80"
      - address: "10.0.0.2:80"
        name: two
routes:
  - match:
      hosts: [Example.COM, "*.Example.org"]
      methods: [get, Post]
    proxy: app
  - name: maint
    respond: {body: down}
  - redirect: {https: true}
`
	cfg := mustParse(t, src, nil)
	if cfg.File != "test.yaml" {
		t.Errorf("File = %q", cfg.File)
	}
	if want := []Listener{{Name: "http", Address: ":8080"}}; !reflect.DeepEqual(cfg.Listeners, want) {
		t.Errorf("Listeners = %+v, want %+v", cfg.Listeners, want)
	}
	if cfg.Admin.Address != "127.0.0.1:9901" || cfg.Admin.Token != "" {
		t.Errorf("Admin = %+v", cfg.Admin)
	}
	yes := true
	wantServer := Server{
		ReadHeaderTimeout:        Duration(10 * time.Second),
		BodyTimeout:              Duration(60 * time.Second),
		SendTimeout:              Duration(60 * time.Second),
		IdleTimeout:              Duration(75 * time.Second),
		GracePeriod:              Duration(30 * time.Second),
		MaxHeaderBytes:           16 << 10,
		MaxURIBytes:              8 << 10,
		MaxBodyBytes:             64 << 20,
		MaxConnections:           10000,
		MaxHeaderCount:           100,
		MaxRequestsPerConnection: 10000,
		MergeSlashes:             &yes,
		EncodedSlashes:           EncodedSlashesReject,
		HTTP2:                    HTTP2{Enabled: &yes, MaxConcurrentStreams: 100, MaxResetStreams: 200},
		Tunnels:                  Tunnels{MaxOpen: 10000, IdleTimeout: Duration(time.Hour)},
	}
	if !reflect.DeepEqual(cfg.Server, wantServer) {
		t.Errorf("Server = %+v\nwant %+v", cfg.Server, wantServer)
	}
	if cfg.AccessLog != (AccessLog{Format: "off"}) {
		t.Errorf("AccessLog = %+v", cfg.AccessLog)
	}
	if cfg.Watch {
		t.Error("Watch = true")
	}
	wantUp := &Upstream{
		Policy: "random_two",
		Hash:   Hash{Source: "client_ip", LoadFactor: 1.25},
		Nodes: []Node{
			{Name: "10.0.0.1:80", Address: "10.0.0.1:80", Weight: 1},
			{Name: "two", Address: "10.0.0.2:80", Weight: 1},
		},
		ConnectTimeout:        Duration(2 * time.Second),
		ResponseHeaderTimeout: Duration(60 * time.Second),
		IdleTimeout:           Duration(60 * time.Second),
		MaxConnsPerNode:       512,
		ConnWaitTimeout:       Duration(time.Second),
		// No health_check path: active checks are off and not defaulted.
		Passive: Passive{
			ConsecutiveFailures: 5,
			EjectionTime:        Duration(10 * time.Second),
			MaxEjectionTime:     Duration(5 * time.Minute),
		},
		Retries: Retries{
			Attempts:           2,
			On:                 []string{"reset", "timeout", "502", "503", "504"},
			BudgetPercent:      20,
			BudgetMinPerSecond: 3,
		},
		AllDown: "fail",
	}
	if got := cfg.Upstreams["app"]; !reflect.DeepEqual(got, wantUp) {
		t.Errorf("upstream app = %+v\nwant %+v", got, wantUp)
	}
	r := cfg.Routes
	if r[0].Name != "route0" || r[1].Name != "maint" || r[2].Name != "route2" {
		t.Errorf("route names = %q %q %q", r[0].Name, r[1].Name, r[2].Name)
	}
	if want := []string{"example.com", "*.example.org"}; !reflect.DeepEqual(r[0].Match.Hosts, want) {
		t.Errorf("hosts = %q, want %q", r[0].Match.Hosts, want)
	}
	if want := []string{"GET", "POST"}; !reflect.DeepEqual(r[0].Match.Methods, want) {
		t.Errorf("methods = %q, want %q", r[0].Match.Methods, want)
	}
	if r[1].Respond.Status != 200 || r[1].Respond.Body != "down" {
		t.Errorf("respond = %+v", r[1].Respond)
	}
	if r[2].Redirect.Status != 0 || r[2].Redirect.Template != nil {
		t.Errorf("redirect = %+v, want status 0 (by method) and no template", r[2].Redirect)
	}
}

func TestDefaultsExplicit(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(*Config) bool
	}{
		{"max_body_bytes 0 is no limit", "server: {max_body_bytes: 0}\n",
			func(c *Config) bool { return c.Server.MaxBodyBytes == 0 }},
		{"max_body_bytes null is the default", "server: {max_body_bytes: ~}\n",
			func(c *Config) bool { return c.Server.MaxBodyBytes == 64<<20 }},
		{"max_body_bytes absent is the default", "server: {idle_timeout: 1s}\n",
			func(c *Config) bool {
				return c.Server.MaxBodyBytes == 64<<20 && c.Server.IdleTimeout == Duration(time.Second)
			}},
		{"listener names by position", "listeners: [{address: ':1'}, {address: ':2', name: x}, {address: ':3'}]\n",
			func(c *Config) bool {
				return c.Listeners[0].Name == "http" && c.Listeners[1].Name == "x" && c.Listeners[2].Name == "http3"
			}},
		{"admin off", "admin: {address: 'off'}\n",
			func(c *Config) bool { return c.Admin.Address == "off" }},
		{"hash source defaults only when absent", "upstreams: {a: {hash: {source: cookie, name: sid}, nodes: [{address: 'a:1'}]}}\n",
			func(c *Config) bool { return c.Upstreams["a"].Hash.Source == "cookie" }},
		{"values kept", "upstreams: {a: {nodes: [{address: 'a:1', weight: 7}], max_conns_per_node: 3}}\n",
			func(c *Config) bool {
				u := c.Upstreams["a"]
				return u.Nodes[0].Weight == 7 && u.MaxConnsPerNode == 3
			}},
		{"consecutive_failures 0 disables passive checks", app + "    passive: {consecutive_failures: 0}\n",
			func(c *Config) bool { return c.Upstreams["app"].Passive.ConsecutiveFailures == 0 }},
		{"consecutive_failures null is the default", app + "    passive: {consecutive_failures: ~}\n",
			func(c *Config) bool { return c.Upstreams["app"].Passive.ConsecutiveFailures == 5 }},
		{"consecutive_failures kept", app + "    passive: {consecutive_failures: 9}\n",
			func(c *Config) bool { return c.Upstreams["app"].Passive.ConsecutiveFailures == 9 }},
		{"attempts 0 is no retries", app + "    retries: {attempts: 0}\n",
			func(c *Config) bool { return c.Upstreams["app"].Retries.Attempts == 0 }},
		{"budget_min_per_second 0 kept", app + "    retries: {budget_min_per_second: 0}\n",
			func(c *Config) bool { return c.Upstreams["app"].Retries.BudgetMinPerSecond == 0 }},
		{"retries on unquoted numbers", app + "    retries:\n      on: [502, reset, 503]\n",
			func(c *Config) bool {
				return reflect.DeepEqual(c.Upstreams["app"].Retries.On, []string{"502", "reset", "503"})
			}},
		{"retries on lower-cased", app + "    retries: {on: [Reset, TIMEOUT]}\n",
			func(c *Config) bool {
				return reflect.DeepEqual(c.Upstreams["app"].Retries.On, []string{"reset", "timeout"})
			}},
		{"health check without path is not defaulted", app + "    health_check: {path: ''}\n",
			func(c *Config) bool { return reflect.DeepEqual(c.Upstreams["app"].HealthCheck, HealthCheck{}) }},
		{"health check values kept", app + "    health_check: {path: /h, method: head, interval: 10s, timeout: 10s, expect_status: [204], rise: 1, fall: 1, port: 9000}\n",
			func(c *Config) bool {
				h := c.Upstreams["app"].HealthCheck
				return h.Method == "HEAD" && h.Interval == Duration(10*time.Second) && h.Timeout == h.Interval &&
					reflect.DeepEqual(h.ExpectStatus, []string{"204"}) && h.Rise == 1 && h.Fall == 1 && h.Port == 9000
			}},
		{"expect_status null is the default", app + "    health_check: {path: /h, expect_status: ~}\n",
			func(c *Config) bool {
				return reflect.DeepEqual(c.Upstreams["app"].HealthCheck.ExpectStatus, []string{"2xx", "3xx"})
			}},
		{"all_down kept", app + "    all_down: try_all\n",
			func(c *Config) bool { return c.Upstreams["app"].AllDown == AllDownTryAll }},
		{"slow_start kept", app + "    slow_start: 30s\n",
			func(c *Config) bool { return c.Upstreams["app"].SlowStart == Duration(30*time.Second) }},
		{"merged values are not defaulted", "upstreams:\n  a: &a {connect_timeout: 5s, nodes: [{address: 'a:1'}]}\n  b:\n    <<: *a\n    policy: least_conn\n",
			func(c *Config) bool {
				b := c.Upstreams["b"]
				return b.ConnectTimeout == Duration(5*time.Second) && b.Policy == "least_conn" && len(b.Nodes) == 1
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if cfg := mustParse(t, tt.src, nil); !tt.check(cfg) {
				t.Errorf("unexpected config: %+v", cfg)
			}
		})
	}
}

func TestUpstreamFeatureDefaults(t *testing.T) {
	cfg := mustParse(t, app+"    health_check: {path: /healthz}\n    discovery:\n      dns: {name: app.internal, port: 8080}\nroutes: [{proxy: app}]\n", nil)
	u := cfg.Upstreams["app"]
	wantHC := HealthCheck{
		Path:         "/healthz",
		Method:       "GET",
		Interval:     Duration(2 * time.Second),
		Timeout:      Duration(time.Second),
		ExpectStatus: []string{"2xx", "3xx"},
		Rise:         2,
		Fall:         3,
	}
	if !reflect.DeepEqual(u.HealthCheck, wantHC) {
		t.Errorf("HealthCheck = %+v\nwant %+v", u.HealthCheck, wantHC)
	}
	wantPassive := Passive{ConsecutiveFailures: 5, EjectionTime: Duration(10 * time.Second), MaxEjectionTime: Duration(5 * time.Minute)}
	if u.Passive != wantPassive {
		t.Errorf("Passive = %+v, want %+v", u.Passive, wantPassive)
	}
	wantRetries := Retries{Attempts: 2, On: []string{"reset", "timeout", "502", "503", "504"}, BudgetPercent: 20, BudgetMinPerSecond: 3}
	if !reflect.DeepEqual(u.Retries, wantRetries) {
		t.Errorf("Retries = %+v, want %+v", u.Retries, wantRetries)
	}
	if u.SlowStart != 0 || u.AllDown != AllDownFail {
		t.Errorf("SlowStart = %v, AllDown = %q", u.SlowStart, u.AllDown)
	}
	wantDNS := &DNSDiscovery{
		Name:    "app.internal",
		Type:    "A",
		Port:    8080,
		MinTTL:  Duration(time.Second),
		MaxTTL:  Duration(5 * time.Minute),
		Timeout: Duration(2 * time.Second),
	}
	if !reflect.DeepEqual(u.Discovery.DNS, wantDNS) {
		t.Errorf("DNS = %+v, want %+v", u.Discovery.DNS, wantDNS)
	}
	if cfg.Routes[0].RetryNonIdempotent {
		t.Error("RetryNonIdempotent defaults to true")
	}
	if set, err := ParseStatusSet(u.HealthCheck.ExpectStatus); err != nil || !set.Contains(200) || !set.Contains(399) || set.Contains(404) {
		t.Errorf("default expect_status: %v, %v", set, err)
	}

	t.Run("default lists are not shared", func(t *testing.T) {
		a := mustParse(t, app+"    health_check: {path: /h}\n", nil)
		a.Upstreams["app"].Retries.On[0] = "x"
		a.Upstreams["app"].HealthCheck.ExpectStatus[0] = "x"
		b := mustParse(t, app+"    health_check: {path: /h}\n", nil)
		if b.Upstreams["app"].Retries.On[0] != "reset" || b.Upstreams["app"].HealthCheck.ExpectStatus[0] != "2xx" {
			t.Error("a change to one configuration's defaulted list shows in another")
		}
	})

	dnsTypes := []struct {
		name, dns, want string
	}{
		{"underscore name is SRV", "{name: _http._tcp.app.internal}", "SRV"},
		{"plain name is A", "{name: app.internal, port: 80}", "A"},
		{"lower case normalised", "{name: app.internal, type: aaaa, port: 80}", "AAAA"},
		{"explicit SRV without underscore", "{name: app.internal, type: srv}", "SRV"},
		{"explicit A with underscore", "{name: _x.internal, type: A, port: 80}", "A"},
	}
	for _, tt := range dnsTypes {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, "upstreams:\n  app:\n    discovery:\n      dns: "+tt.dns+"\n", nil)
			if got := cfg.Upstreams["app"].Discovery.DNS.Type; got != tt.want {
				t.Errorf("Type = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseStatusSet(t *testing.T) {
	valid := []struct {
		items []string
		in    []int
		out   []int
	}{
		{[]string{"200"}, []int{200}, []int{201, 199, 0}},
		{[]string{"2xx"}, []int{200, 250, 299}, []int{199, 300}},
		{[]string{"2XX", "4xx"}, []int{200, 404, 499}, []int{300, 500}},
		{[]string{"200-399"}, []int{200, 302, 399}, []int{199, 400}},
		{[]string{"404-404"}, []int{404}, []int{403, 405}},
		{[]string{"100-599"}, []int{100, 599}, []int{99, 600}},
		{[]string{" 204 ", "5xx", "300 - 301"}, []int{204, 500, 599, 300, 301}, []int{200, 302, 499}},
		{[]string{"1xx"}, []int{100, 199}, []int{200}},
	}
	for _, tt := range valid {
		t.Run(strings.Join(tt.items, ","), func(t *testing.T) {
			s, err := ParseStatusSet(tt.items)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.in {
				if !s.Contains(c) {
					t.Errorf("Contains(%d) = false", c)
				}
			}
			for _, c := range tt.out {
				if s.Contains(c) {
					t.Errorf("Contains(%d) = true", c)
				}
			}
		})
	}

	t.Run("exact membership", func(t *testing.T) {
		s, err := ParseStatusSet([]string{"101", "2xx", "404-410", "599"})
		if err != nil {
			t.Fatal(err)
		}
		for c := -1; c <= 1000; c++ {
			want := c == 101 || c >= 200 && c <= 299 || c >= 404 && c <= 410 || c == 599
			if s.Contains(c) != want {
				t.Errorf("Contains(%d) = %v, want %v", c, !want, want)
			}
		}
		var zero StatusSet
		if zero.Contains(200) {
			t.Error("the zero StatusSet contains 200")
		}
	})

	invalid := []struct {
		items []string
		msg   string
	}{
		{[]string{"6xx"}, `invalid status class "6xx"`},
		{[]string{"0xx"}, `invalid status class "0xx"`},
		{[]string{"2xx", "300-200"}, `invalid status range "300-200": 300 is greater than 200`},
		{[]string{"abc"}, `invalid status "abc"`},
		{[]string{"99"}, `invalid status "99": a status code is from 100 to 599`},
		{[]string{"600"}, `invalid status "600"`},
		{[]string{"1000"}, `invalid status "1000"`},
		{[]string{"200-600"}, `invalid status range "200-600"`},
		{[]string{"-200"}, `invalid status range "-200"`},
		{[]string{"2x"}, `invalid status "2x"`},
		{[]string{"20x"}, `invalid status "20x"`},
		{[]string{""}, `invalid status ""`},
		{nil, "no statuses"},
		{[]string{}, "no statuses"},
	}
	for _, tt := range invalid {
		t.Run(strings.Join(tt.items, ","), func(t *testing.T) {
			s, err := ParseStatusSet(tt.items)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got error %v, want one containing %q", err, tt.msg)
			}
			if s != (StatusSet{}) {
				t.Error("a set returned with an error")
			}
		})
	}
}

func TestFullExample(t *testing.T) {
	t.Setenv("EDGE_ADMIN_TOKEN", "")
	cfg, err := Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != filepath.Join("testdata", "full.yaml") {
		t.Errorf("File = %q", cfg.File)
	}
	if cfg.Admin.Token != "changeme" {
		t.Errorf("token = %q, want the default", cfg.Admin.Token)
	}
	wantNets := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	if !reflect.DeepEqual(cfg.Server.TrustedNets, wantNets) {
		t.Errorf("TrustedNets = %v, want %v", cfg.Server.TrustedNets, wantNets)
	}
	if cfg.Server.MaxBodyBytes != 10_000_000 || cfg.Server.MaxHeaderBytes != 32<<10 {
		t.Errorf("sizes = %v %v", cfg.Server.MaxBodyBytes, cfg.Server.MaxHeaderBytes)
	}
	if cfg.Listeners[0].Name != "http" || cfg.Listeners[1].Name != "internal" {
		t.Errorf("listeners = %+v", cfg.Listeners)
	}
	if re := cfg.Routes[1].Match.PathRegexp; re == nil || !re.MatchString("/static/a.css") {
		t.Errorf("PathRegexp = %v", re)
	}
	want := Template{
		{Literal: "https://docs.example.com/"}, {Var: PlaceholderRest},
		{Literal: "?"}, {Var: PlaceholderQuery},
	}
	if got := cfg.Routes[3].Redirect.Template; !reflect.DeepEqual(got, want) {
		t.Errorf("Template = %+v, want %+v", got, want)
	}
	if h := cfg.Upstreams["static.v2"].Hash; h != (Hash{Source: "header", Name: "X-User", LoadFactor: 1.5}) {
		t.Errorf("hash = %+v", h)
	}
	app := cfg.Upstreams["app"]
	wantHC := HealthCheck{
		Path:         "/healthz?deep=1",
		Method:       "HEAD",
		Host:         "app.internal:8000",
		Port:         8001,
		Interval:     Duration(5 * time.Second),
		Timeout:      Duration(2 * time.Second),
		ExpectStatus: []string{"200", "3xx", "401-403"},
		ExpectBody:   "ok",
		Rise:         1,
		Fall:         2,
	}
	if !reflect.DeepEqual(app.HealthCheck, wantHC) {
		t.Errorf("health check = %+v\nwant %+v", app.HealthCheck, wantHC)
	}
	if want := (Passive{ConsecutiveFailures: 3, EjectionTime: Duration(30 * time.Second), MaxEjectionTime: Duration(10 * time.Minute)}); app.Passive != want {
		t.Errorf("passive = %+v, want %+v", app.Passive, want)
	}
	if want := (Retries{Attempts: 3, On: []string{"reset", "timeout", "500", "503"}, BudgetPercent: 10.5}); !reflect.DeepEqual(app.Retries, want) {
		t.Errorf("retries = %+v, want %+v", app.Retries, want)
	}
	if app.SlowStart != Duration(30*time.Second) || app.AllDown != AllDownTryAll {
		t.Errorf("slow start %v, all down %q", app.SlowStart, app.AllDown)
	}
	if s := cfg.Upstreams["static.v2"]; s.Passive.ConsecutiveFailures != 0 || s.Retries.Attempts != 0 || s.HealthCheck.Path != "" {
		t.Errorf("static.v2 = %+v", s)
	}
	wantDNS := &DNSDiscovery{
		Name:     "_http._tcp.app.internal.",
		Type:     "SRV",
		Resolver: "10.0.0.2:53",
		MinTTL:   Duration(5 * time.Second),
		MaxTTL:   Duration(time.Minute),
		Timeout:  Duration(500 * time.Millisecond),
	}
	if d := cfg.Upstreams["discovered"]; len(d.Nodes) != 0 || !reflect.DeepEqual(d.Discovery.DNS, wantDNS) {
		t.Errorf("discovered = %+v, DNS %+v", d, d.Discovery.DNS)
	}
	if d := cfg.Upstreams["discovered-a"].Discovery.DNS; d.Type != "AAAA" || d.Port != 8080 {
		t.Errorf("discovered-a DNS = %+v", d)
	}
	if !cfg.Routes[0].RetryNonIdempotent || cfg.Routes[1].RetryNonIdempotent {
		t.Error("retry_non_idempotent not as written")
	}
	// Validate again: it is idempotent on a loaded configuration.
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate after Load: %v", err)
	}
	if len(cfg.Server.TrustedNets) != 3 {
		t.Errorf("TrustedNets grew on Validate: %v", cfg.Server.TrustedNets)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want fs.ErrNotExist", err)
		}
		var ve *ValidationError
		if errors.As(err, &ve) {
			t.Error("a read error is a *ValidationError")
		}
	})
	t.Run("content problem names the file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "edge.yaml")
		if err := os.WriteFile(path, []byte("watch: true\nlisteners: [{address: 'x'}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("UNUSED", "")
		_, err := Load(path)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.File != path {
			t.Fatalf("got %v", err)
		}
		if want := path + ":2: listeners[0].address: invalid address \"x\""; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q does not start with %q", err, want)
		}
	})
}

// app is an upstream section for validation cases that need one.
const app = "upstreams:\n  app:\n    nodes: [{address: '10.0.0.1:80'}]\n"

func TestValidationRules(t *testing.T) {
	tests := []struct {
		name string
		src  string
		path string
		line int // 0: do not check
		msg  string
	}{
		// Listeners and admin.
		{"listener address without port", "listeners: [{address: 'localhost'}]\n", "listeners[0].address", 1, "must be host:port"},
		{"node port zero", "upstreams: {app: {nodes: [{address: '127.0.0.1:0'}]}}\nroutes: [{proxy: app}]\n", "upstreams.app.nodes[0].address", 1, "port must be a number from 1 to 65535"},
		{"listener port too big", "listeners: [{address: ':65536'}]\n", "listeners[0].address", 1, "port must be a number"},
		{"listener port by name", "listeners: [{address: ':http'}]\n", "listeners[0].address", 1, "port must be a number"},
		{"listener bad host", "listeners: [{address: 'a b:80'}]\n", "listeners[0].address", 1, "neither an IP address nor a host name"},
		{"listener address missing", "listeners:\n  - name: x\n", "listeners[0].address", 2, "address is required"},
		{"no listeners", "listeners: []\n", "listeners", 1, "at least one listener is required"},
		{"duplicate listener address", "listeners:\n  - address: ':80'\n  - address: ':80'\n", "listeners[1].address", 3, "duplicate address \":80\" (also listeners[0].address)"},
		{"wildcard clash", "listeners:\n  - address: '127.0.0.1:80'\n  - address: '0.0.0.0:80'\n", "listeners[1].address", 3, "conflicts with listeners[0].address"},
		{"duplicate listener name", "listeners:\n  - {address: ':80', name: web}\n  - {address: ':81', name: web}\n", "listeners[1].name", 3, "duplicate listener name \"web\""},
		{"listener name chars", "listeners: [{address: ':80', name: 'a b'}]\n", "listeners[0].name", 1, "invalid name"},
		{"admin bad address", "admin: {address: '127.0.0.1'}\n", "admin.address", 1, "must be host:port"},
		{"admin empty address", "admin: {address: ''}\n", "admin.address", 1, "address is required"},
		{"admin clashes with a listener", "listeners: [{address: ':9901'}]\n", "admin.address", 1, "conflicts with listeners[0].address"},
		{"admin token", "admin: {token: 'a b'}\n", "admin.token", 1, "printable ASCII"},

		// Server.
		{"trusted proxy", "server:\n  trusted_proxies: ['10.0.0.0/8', 'nope']\n", "server.trusted_proxies[1]", 2, "invalid trusted proxy \"nope\""},
		{"zero timeout", "server: {read_header_timeout: 0s}\n", "server.read_header_timeout", 1, "must be greater than 0"},
		{"zero body timeout", "server: {body_timeout: 0s}\n", "server.body_timeout", 1, "must be greater than 0"},
		{"zero send timeout", "server: {send_timeout: 0s}\n", "server.send_timeout", 1, "must be greater than 0"},
		{"zero idle timeout", "server: {idle_timeout: 0s}\n", "server.idle_timeout", 1, "must be greater than 0"},
		{"zero grace period", "server: {grace_period: 0s}\n", "server.grace_period", 1, "must be greater than 0"},
		{"header limit too small", "server: {max_header_bytes: 512, max_uri_bytes: 256}\n", "server.max_header_bytes", 1, "between 1KiB and 1MiB, got 512B"},
		{"header limit too big", "server: {max_header_bytes: 2MiB}\n", "server.max_header_bytes", 1, "between 1KiB and 1MiB, got 2MiB"},
		{"uri limit too small", "server: {max_uri_bytes: 100}\n", "server.max_uri_bytes", 1, "at least 256B"},
		{"uri limit above header limit", "server: {max_header_bytes: 4KiB, max_uri_bytes: 8KiB}\n", "server.max_uri_bytes", 1, "must not exceed max_header_bytes (4KiB)"},
		{"max connections", "server: {max_connections: 0}\n", "server.max_connections", 1, "at least 1"},
		{"empty set value", "routes:\n  - respond: {}\n    response_headers: {set: {X-Powered-By: ''}}\n", "routes[0].response_headers.set.X-Powered-By", 3, "empty value: use remove"},
		{"proxy protocol without sources", "listeners: [{address: ':80', proxy_protocol: {}}]\n", "listeners[0].proxy_protocol.from", 1, "list the load balancers"},
		{"proxy protocol bad source", "listeners: [{address: ':80', proxy_protocol: {from: [10.0.0.0/8, x]}}]\n", "listeners[0].proxy_protocol.from[1]", 1, "invalid address \"x\""},
		{"max header count zero", "server: {max_header_count: 0}\n", "server.max_header_count", 1, "between 1 and 10000, got 0"},
		{"max header count huge", "server: {max_header_count: 20000}\n", "server.max_header_count", 1, "between 1 and 10000"},
		{"negative requests per connection", "server: {max_requests_per_connection: -1}\n", "server.max_requests_per_connection", 1, "must not be negative"},
		{"negative connections per ip", "server: {max_connections_per_ip: -2}\n", "server.max_connections_per_ip", 1, "must not be negative"},
		{"http2 streams zero", "server:\n  http2: {max_concurrent_streams: 0}\n", "server.http2.max_concurrent_streams", 2, "between 1 and 10000, got 0"},
		{"http2 resets zero", "server:\n  http2: {max_reset_streams: -1}\n", "server.http2.max_reset_streams", 2, "at least 1"},
		{"tunnels negative", "server:\n  tunnels: {max_open: -1}\n", "server.tunnels.max_open", 2, "must not be negative"},
		{"tunnel idle negative", "server:\n  tunnels: {idle_timeout: 0s}\n", "server.tunnels.idle_timeout", 2, "greater than 0"},
		{"encoded slashes", "server: {encoded_slashes: allow}\n", "server.encoded_slashes", 1, "must be \"reject\", \"decode\" or \"keep\", got \"allow\""},
		{"server rate zero", "server:\n  rate_limit: {requests_per_second: 0}\n", "server.rate_limit.requests_per_second", 2, "must be greater than 0"},
		{"server rate by route", "server:\n  rate_limit: {requests_per_second: 5, key: route}\n", "server.rate_limit.key", 2, "must be \"client_ip\" here"},
		{"server rate burst", "server:\n  rate_limit: {requests_per_second: 5, burst: -1}\n", "server.rate_limit.burst", 2, "at least 1"},
		{"server rate clients", "server:\n  rate_limit: {requests_per_second: 5, max_clients: -1}\n", "server.rate_limit.max_clients", 2, "at least 1"},
		{"route rate key", "routes:\n  - respond: {}\n    rate_limit: {requests_per_second: 1, key: host}\n", "routes[0].rate_limit.key", 3, "must be \"client_ip\" or \"route\", got \"host\""},
		{"route rate negative", "routes:\n  - respond: {}\n    rate_limit: {requests_per_second: -1}\n", "routes[0].rate_limit.requests_per_second", 3, "must be greater than 0"},
		{"access bad cidr", "routes:\n  - respond: {}\n    access: {allow: [10.0.0.0/8, nope]}\n", "routes[0].access.allow[1]", 3, "invalid address \"nope\""},
		{"access bad deny", "routes:\n  - respond: {}\n    access: {deny: ['1.2.3.4/40']}\n", "routes[0].access.deny[0]", 3, "invalid address"},
		{"access empty", "routes:\n  - respond: {}\n    access: {}\n", "routes[0].access", 3, "set allow, deny or both"},
		{"path with dot-segment", "routes:\n  - match: {path_prefix: /a/../admin}\n    respond: {}\n", "routes[0].match.path_prefix", 2, "must not contain dot-segments"},
		{"path with dot segment at end", "routes:\n  - match: {path: /a/.}\n    respond: {}\n", "routes[0].match.path", 2, "must not contain dot-segments"},
		{"path with double slash", "routes:\n  - match: {path_prefix: //admin}\n    respond: {}\n", "routes[0].match.path_prefix", 2, "must not contain \"//\""},
		{"path with encoded unreserved", "routes:\n  - match: {path_prefix: /%61dmin}\n    respond: {}\n", "routes[0].match.path_prefix", 2, "must not percent-encode the unreserved character 'a'"},
		{"path with bad percent", "routes:\n  - match: {path: /a%zz}\n    respond: {}\n", "routes[0].match.path", 2, "invalid percent-encoding at byte 2"},
		{"access log format", "access_log: {format: text}\n", "access_log.format", 1, "must be \"off\", \"combined\" or \"json\""},

		// Upstreams.
		{"upstream name", "upstreams:\n  'bad name': {nodes: [{address: 'a:1'}]}\n", `upstreams["bad name"]`, 2, "invalid upstream name \"bad name\""},
		{"empty upstream name", "upstreams:\n  '': {nodes: [{address: 'a:1'}]}\n", `upstreams[""]`, 2, "invalid upstream name \"\""},
		{"null upstream", "upstreams:\n  app:\n", "upstreams.app.nodes", 2, "at least one node is required"},
		{"no nodes", "upstreams:\n  app: {nodes: []}\n", "upstreams.app.nodes", 2, "at least one node is required"},
		{"too many nodes", "upstreams:\n  app:\n    nodes: [" + strings.Repeat("{address: 'a:1'},", 1) + nodesList(257) + "]\n", "upstreams.app.nodes", 3, "at most 256 nodes"},
		{"policy", "upstreams:\n  app:\n    policy: fastest\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.policy", 3, "unknown policy \"fastest\""},
		{"node address required", "upstreams:\n  app:\n    nodes:\n      - weight: 2\n", "upstreams.app.nodes[0].address", 4, "address is required"},
		{"node host required", "upstreams:\n  app: {nodes: [{address: ':80'}]}\n", "upstreams.app.nodes[0].address", 2, "the host is missing"},
		{"node port", "upstreams:\n  app: {nodes: [{address: 'a:99999'}]}\n", "upstreams.app.nodes[0].address", 2, "port must be a number"},
		{"duplicate node address", "upstreams:\n  app:\n    nodes:\n      - address: 'a:1'\n      - address: 'A:1'\n", "upstreams.app.nodes[1].address", 5, "duplicate node address \"A:1\" (also nodes[0])"},
		{"duplicate node name", "upstreams:\n  app:\n    nodes:\n      - {address: 'a:1', name: n}\n      - {address: 'b:1', name: n}\n", "upstreams.app.nodes[1].name", 5, "duplicate node name \"n\""},
		{"weight zero", "upstreams:\n  app:\n    nodes:\n      - address: 'a:1'\n        weight: 0\n", "upstreams.app.nodes[0].weight", 5, "must be from 1 to 1000, got 0"},
		{"weight too big", "upstreams:\n  app: {nodes: [{address: 'a:1', weight: 1001}]}\n", "upstreams.app.nodes[0].weight", 2, "must be from 1 to 1000"},
		{"only backups", "upstreams:\n  app:\n    nodes: [{address: 'a:1', backup: true}]\n", "upstreams.app.nodes", 3, "at least one node must not be a backup"},
		{"hash source", "upstreams:\n  app:\n    hash: {source: url}\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.hash.source", 3, "unknown hash source \"url\""},
		{"hash header name required", "upstreams:\n  app:\n    hash:\n      source: header\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.hash.name", 3, "a header name is required"},
		{"hash cookie name token", "upstreams:\n  app:\n    hash: {source: cookie, name: 'a b'}\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.hash.name", 3, "invalid cookie name \"a b\""},
		{"load factor", "upstreams:\n  app:\n    hash: {load_factor: 0.5}\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.hash.load_factor", 3, "at least 1, got 0.5"},
		{"load factor inf", "upstreams:\n  app:\n    hash: {load_factor: .inf}\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.hash.load_factor", 3, "finite"},
		{"connect timeout", "upstreams:\n  app:\n    connect_timeout: 0s\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.connect_timeout", 3, "must be greater than 0"},
		{"response header timeout", "upstreams:\n  app:\n    response_header_timeout: 0s\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.response_header_timeout", 3, "must be greater than 0"},
		{"upstream idle timeout", "upstreams:\n  app:\n    idle_timeout: 0ms\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.idle_timeout", 3, "must be greater than 0"},
		{"conn wait timeout", "upstreams:\n  app:\n    conn_wait_timeout: 0s\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.conn_wait_timeout", 3, "must be greater than 0"},
		{"max conns per node", "upstreams:\n  app:\n    max_conns_per_node: 0\n    nodes: [{address: 'a:1'}]\n", "upstreams.app.max_conns_per_node", 3, "at least 1"},

		// Active health checks.
		{"health check path without slash", app + "    health_check: {path: health}\n", "upstreams.app.health_check.path", 4, "must start with \"/\", got \"health\""},
		{"health check path with space", app + "    health_check: {path: '/a b'}\n", "upstreams.app.health_check.path", 4, "spaces or control characters"},
		{"health check path with fragment", app + "    health_check: {path: '/a#b'}\n", "upstreams.app.health_check.path", 4, "fragment"},
		{"health check settings without path", app + "    health_check:\n      interval: 5s\n      rise: 3\n", "upstreams.app.health_check.path", 4, "health_check.path is required to enable health checks (interval, rise given without it)"},
		{"health check empty path", app + "    health_check:\n      path: ''\n      method: HEAD\n", "upstreams.app.health_check.path", 5, "health_check.path is required to enable health checks (method given"},
		{"health check method", app + "    health_check: {path: /h, method: 'G T'}\n", "upstreams.app.health_check.method", 4, "invalid method \"G T\""},
		{"health check empty method", app + "    health_check: {path: /h, method: ''}\n", "upstreams.app.health_check.method", 4, "invalid method \"\""},
		{"health check host", app + "    health_check: {path: /h, host: 'a b'}\n", "upstreams.app.health_check.host", 4, "invalid host \"a b\""},
		{"health check host port", app + "    health_check: {path: /h, host: 'a:0'}\n", "upstreams.app.health_check.host", 4, "port must be a number from 1 to 65535"},
		{"health check host bare ipv6", app + "    health_check: {path: /h, host: '::1'}\n", "upstreams.app.health_check.host", 4, "invalid host \"::1\""},
		{"health check host url", app + "    health_check: {path: /h, host: 'http://a'}\n", "upstreams.app.health_check.host", 4, "invalid host"},
		{"health check port", app + "    health_check: {path: /h, port: 70000}\n", "upstreams.app.health_check.port", 4, "must be from 1 to 65535 (or 0 for the node's own port), got 70000"},
		{"health check negative port", app + "    health_check: {path: /h, port: -1}\n", "upstreams.app.health_check.port", 4, "got -1"},
		{"health check interval", app + "    health_check:\n      path: /h\n      interval: 0s\n", "upstreams.app.health_check.interval", 6, "must be greater than 0"},
		{"health check timeout", app + "    health_check: {path: /h, timeout: 0s}\n", "upstreams.app.health_check.timeout", 4, "must be greater than 0"},
		{"health check timeout above interval", app + "    health_check:\n      path: /h\n      interval: 1s\n      timeout: 2s\n", "upstreams.app.health_check.timeout", 7, "must not exceed interval (1s), got 2s"},
		{"health check no statuses", app + "    health_check: {path: /h, expect_status: []}\n", "upstreams.app.health_check.expect_status", 4, "at least one status is required"},
		{"health check status class", app + "    health_check:\n      path: /h\n      expect_status: [2xx, 6xx]\n", "upstreams.app.health_check.expect_status[1]", 6, "invalid status class \"6xx\""},
		{"health check status range", app + "    health_check: {path: /h, expect_status: ['300-200']}\n", "upstreams.app.health_check.expect_status[0]", 4, "300 is greater than 200"},
		{"health check status code", app + "    health_check: {path: /h, expect_status: [99]}\n", "upstreams.app.health_check.expect_status[0]", 4, "from 100 to 599"},
		{"health check rise", app + "    health_check: {path: /h, rise: 0}\n", "upstreams.app.health_check.rise", 4, "must be at least 1, got 0"},
		{"health check fall", app + "    health_check: {path: /h, fall: -2}\n", "upstreams.app.health_check.fall", 4, "must be at least 1, got -2"},

		// Passive checks.
		{"consecutive failures negative", app + "    passive: {consecutive_failures: -1}\n", "upstreams.app.passive.consecutive_failures", 4, "must not be negative (0 disables passive checks), got -1"},
		{"ejection time zero", app + "    passive: {ejection_time: 0s}\n", "upstreams.app.passive.ejection_time", 4, "must be greater than 0"},
		{"max ejection time zero", app + "    passive: {max_ejection_time: 0s}\n", "upstreams.app.passive.max_ejection_time", 4, "must be greater than 0"},
		{"max ejection time below base", app + "    passive:\n      ejection_time: 1m\n      max_ejection_time: 30s\n", "upstreams.app.passive.max_ejection_time", 6, "must not be less than ejection_time (1m0s), got 30s"},
		{"max ejection time below default base", app + "    passive: {max_ejection_time: 5s}\n", "upstreams.app.passive.max_ejection_time", 4, "must not be less than ejection_time (10s)"},

		// Retries.
		{"retry attempts too many", app + "    retries: {attempts: 11}\n", "upstreams.app.retries.attempts", 4, "must be from 0 to 10, got 11"},
		{"retry attempts negative", app + "    retries: {attempts: -1}\n", "upstreams.app.retries.attempts", 4, "must be from 0 to 10, got -1"},
		{"retry on empty", app + "    retries: {on: []}\n", "upstreams.app.retries.on", 4, "at least one failure to retry is required"},
		{"retry on unknown", app + "    retries:\n      on: [reset, 501]\n", "upstreams.app.retries.on[1]", 5, "unknown failure \"501\": use reset, timeout, 500, 502, 503 or 504"},
		{"retry on unknown word", app + "    retries: {on: [connect]}\n", "upstreams.app.retries.on[0]", 4, "unknown failure \"connect\""},
		{"retry on duplicate", app + "    retries: {on: [502, '502']}\n", "upstreams.app.retries.on[1]", 4, "duplicate \"502\" (also on[0])"},
		{"retry budget zero", app + "    retries: {budget_percent: 0}\n", "upstreams.app.retries.budget_percent", 4, "must be greater than 0 and at most 100, got 0"},
		{"retry budget too big", app + "    retries: {budget_percent: 100.5}\n", "upstreams.app.retries.budget_percent", 4, "got 100.5"},
		{"retry budget nan", app + "    retries: {budget_percent: .nan}\n", "upstreams.app.retries.budget_percent", 4, "got NaN"},
		{"retry budget minimum", app + "    retries: {budget_min_per_second: -1}\n", "upstreams.app.retries.budget_min_per_second", 4, "must not be negative, got -1"},

		// All down.
		{"all_down", app + "    all_down: sometimes\n", "upstreams.app.all_down", 4, "must be \"fail\" or \"try_all\", got \"sometimes\""},
		{"all_down empty", app + "    all_down: ''\n", "upstreams.app.all_down", 4, "got \"\""},

		// DNS discovery.
		{"dns name required", "upstreams:\n  app:\n    discovery:\n      dns: {}\n", "upstreams.app.discovery.dns.name", 4, "name is required"},
		{"dns name invalid", "upstreams:\n  app:\n    discovery:\n      dns: {name: 'bad..name', port: 80}\n", "upstreams.app.discovery.dns.name", 4, "invalid DNS name \"bad..name\""},
		{"dns name is an ip", "upstreams:\n  app:\n    discovery:\n      dns: {name: 10.0.0.1, port: 80}\n", "upstreams.app.discovery.dns.name", 4, "is an IP address"},
		{"dns type", "upstreams:\n  app:\n    discovery:\n      dns:\n        name: app.internal\n        type: MX\n", "upstreams.app.discovery.dns.type", 6, "unknown record type \"MX\": use \"SRV\", \"A\" or \"AAAA\""},
		{"dns type empty", "upstreams:\n  app:\n    discovery:\n      dns: {name: app.internal, type: ''}\n", "upstreams.app.discovery.dns.type", 4, "unknown record type \"\""},
		{"dns A needs a port", "upstreams:\n  app:\n    discovery:\n      dns: {name: app.internal}\n", "upstreams.app.discovery.dns.port", 4, "a port is required for A records"},
		{"dns AAAA port range", "upstreams:\n  app:\n    discovery:\n      dns: {name: app.internal, type: aaaa, port: 70000}\n", "upstreams.app.discovery.dns.port", 4, "must be from 1 to 65535, got 70000"},
		{"dns SRV with a port", "upstreams:\n  app:\n    discovery:\n      dns: {name: _http._tcp.app.internal, port: 80}\n", "upstreams.app.discovery.dns.port", 4, "must not be set for SRV records"},
		{"dns resolver name", "upstreams:\n  app:\n    discovery:\n      dns: {name: _h._tcp.a, resolver: 'dns.internal:53'}\n", "upstreams.app.discovery.dns.resolver", 4, "must be an IP address and port"},
		{"dns resolver without port", "upstreams:\n  app:\n    discovery:\n      dns: {name: _h._tcp.a, resolver: '10.0.0.2'}\n", "upstreams.app.discovery.dns.resolver", 4, "invalid resolver \"10.0.0.2\""},
		{"dns resolver port zero", "upstreams:\n  app:\n    discovery:\n      dns: {name: _h._tcp.a, resolver: '10.0.0.2:0'}\n", "upstreams.app.discovery.dns.resolver", 4, "invalid resolver"},
		{"dns min ttl zero", "upstreams:\n  app:\n    discovery:\n      dns: {name: _h._tcp.a, min_ttl: 0s}\n", "upstreams.app.discovery.dns.min_ttl", 4, "must be greater than 0"},
		{"dns max ttl below min", "upstreams:\n  app:\n    discovery:\n      dns: {name: _h._tcp.a, min_ttl: 10m}\n", "upstreams.app.discovery.dns.max_ttl", 4, "must not be less than min_ttl (10m0s), got 5m0s"},
		{"dns timeout zero", "upstreams:\n  app:\n    discovery:\n      dns: {name: _h._tcp.a, timeout: 0s}\n", "upstreams.app.discovery.dns.timeout", 4, "must be greater than 0"},
		{"null dns is no discovery", "upstreams:\n  app:\n    discovery: {dns: ~}\n", "upstreams.app.nodes", 2, "at least one node is required, or discovery.dns"},

		// Routes.
		{"retry_non_idempotent without proxy", "routes:\n  - respond: {}\n    retry_non_idempotent: true\n", "routes[0].retry_non_idempotent", 3, "applies only to routes with proxy"},
		{"no action", "routes:\n  - match: {path: /}\n", "routes[0]", 2, "exactly one of proxy, redirect or respond is required"},
		{"null route", "routes:\n  - ~\n", "routes[0]", 2, "exactly one of proxy, redirect or respond is required"},
		{"two actions", app + "routes:\n  - proxy: app\n    respond: {}\n", "routes[0]", 5, "got proxy and respond"},
		{"unknown upstream", app + "routes:\n  - proxy: nope\n", "routes[0].proxy", 5, "unknown upstream \"nope\""},
		{"route name chars", "routes:\n  - name: 'a/b'\n    respond: {}\n", "routes[0].name", 2, "invalid route name \"a/b\""},
		{"duplicate route name", "routes:\n  - {name: x, respond: {}}\n  - {name: x, respond: {}}\n", "routes[1].name", 3, "duplicate route name \"x\" (also routes[0])"},
		{"default name taken", "routes:\n  - {name: route1, respond: {}}\n  - {respond: {}}\n", "routes[1].name", 3, "duplicate route name \"route1\""},
		{"host with port", "routes:\n  - match: {hosts: ['example.com:80']}\n    respond: {}\n", "routes[0].match.hosts[0]", 2, "must not include a port"},
		{"host with scheme", "routes:\n  - match: {hosts: ['https://example.com']}\n    respond: {}\n", "routes[0].match.hosts[0]", 2, "not a URL"},
		{"host invalid", "routes:\n  - match: {hosts: [ok.com, 'bad..com']}\n    respond: {}\n", "routes[0].match.hosts[1]", 2, "invalid host name \"bad..com\""},
		{"host wildcard in the middle", "routes:\n  - match: {hosts: ['a.*.com']}\n    respond: {}\n", "routes[0].match.hosts[0]", 2, "leading \"*.\""},
		{"host wildcard alone", "routes:\n  - match: {hosts: ['*']}\n    respond: {}\n", "routes[0].match.hosts[0]", 2, "leave hosts empty"},
		{"host wildcard bad", "routes:\n  - match: {hosts: ['*.-a.com']}\n    respond: {}\n", "routes[0].match.hosts[0]", 2, "invalid wildcard host"},
		{"host empty", "routes:\n  - match: {hosts: ['']}\n    respond: {}\n", "routes[0].match.hosts[0]", 2, "host is empty"},
		{"path without slash", "routes:\n  - match:\n      path: api\n    respond: {}\n", "routes[0].match.path", 3, "must start with \"/\""},
		{"path prefix without slash", "routes:\n  - match: {path_prefix: api/}\n    respond: {}\n", "routes[0].match.path_prefix", 2, "must start with \"/\""},
		{"path with query", "routes:\n  - match: {path: '/a?b'}\n    respond: {}\n", "routes[0].match.path", 2, "without a query string"},
		{"two path conditions", "routes:\n  - match:\n      path: /a\n      path_regex: ^/b\n    respond: {}\n", "routes[0].match", 2, "at most one of path, path_prefix or path_regex"},
		{"bad regex", "routes:\n  - match:\n      path_regex: '^/(a'\n    respond: {}\n", "routes[0].match.path_regex", 3, "invalid regular expression: missing closing )"},
		{"bad method", "routes:\n  - match: {methods: [GET, 'B@D']}\n    respond: {}\n", "routes[0].match.methods[1]", 2, "invalid method \"B@D\""},
		{"header match without name", "routes:\n  - match:\n      headers:\n        - value: x\n    respond: {}\n", "routes[0].match.headers[0].name", 4, "header name is required"},
		{"header match bad name", "routes:\n  - match: {headers: [{name: 'X Y'}]}\n    respond: {}\n", "routes[0].match.headers[0].name", 2, "invalid header name \"X Y\""},

		// Redirects.
		{"redirect without mode", "routes:\n  - redirect: {status: 302}\n", "routes[0].redirect", 2, "exactly one of to, https, www, trailing_slash or prefix is required"},
		{"redirect two modes", "routes:\n  - redirect: {https: true, www: add}\n", "routes[0].redirect", 2, "got https and www"},
		{"redirect status", "routes:\n  - redirect:\n      to: /x\n      status: 200\n", "routes[0].redirect.status", 4, "must be 301, 302, 303, 307 or 308, got 200"},
		{"redirect www", "routes:\n  - redirect: {www: yes}\n", "routes[0].redirect.www", 2, "must be \"add\" or \"remove\", got \"yes\""},
		{"redirect trailing slash", "routes:\n  - redirect: {trailing_slash: strip}\n", "routes[0].redirect.trailing_slash", 2, "must be \"add\" or \"remove\""},
		{"redirect prefix needs path_prefix", "routes:\n  - redirect: {prefix: /new/}\n", "routes[0].redirect.prefix", 2, "requires match.path_prefix"},
		{"redirect prefix slash", "routes:\n  - match: {path_prefix: /old/}\n    redirect: {prefix: new/}\n", "routes[0].redirect.prefix", 3, "must start with \"/\""},
		{"redirect template", "routes:\n  - redirect:\n      to: 'https://{hots}/'\n", "routes[0].redirect.to", 3, "unknown placeholder {hots}"},
		{"redirect unclosed", "routes:\n  - redirect: {to: 'https://{host/'}\n", "routes[0].redirect.to", 2, "unclosed \"{\""},
		{"redirect rest needs path_prefix", "routes:\n  - match: {path: /a}\n    redirect: {to: '/b{rest}'}\n", "routes[0].redirect.to", 3, "{rest} requires match.path_prefix"},
		{"redirect control characters", "routes:\n  - redirect: {to: \"/a\\r\\nSet-Cookie: x\"}\n", "routes[0].redirect.to", 2, "control characters"},

		// Respond.
		{"respond status", "routes:\n  - respond:\n      status: 600\n", "routes[0].respond.status", 3, "from 100 to 599, got 600"},
		{"respond status zero", "routes:\n  - respond: {status: 0}\n", "routes[0].respond.status", 2, "got 0"},
		{"respond header name", "routes:\n  - respond:\n      headers: {'Bad Name': x}\n", `routes[0].respond.headers["Bad Name"]`, 3, "invalid header name"},
		{"respond header value", "routes:\n  - respond:\n      headers:\n        X-A: \"a\\nb\"\n", "routes[0].respond.headers.X-A", 4, "must not contain CR, LF or NUL"},
		{"respond framing header", "routes:\n  - respond:\n      headers:\n        Content-Length: '5'\n", "routes[0].respond.headers.Content-Length", 4, "message framing"},

		// Header rules.
		{"request header name", app + "routes:\n  - proxy: app\n    request_headers:\n      set: {'X:Y': a}\n", `routes[0].request_headers.set["X:Y"]`, 7, "invalid header name \"X:Y\""},
		{"request header value", app + "routes:\n  - proxy: app\n    request_headers:\n      add: {X-A: \"a\\rb\"}\n", "routes[0].request_headers.add.X-A", 7, "must not contain CR, LF or NUL"},
		{"request header NUL", app + "routes:\n  - proxy: app\n    request_headers:\n      set: {X-A: \"a\\0b\"}\n", "routes[0].request_headers.set.X-A", 7, "must not contain CR, LF or NUL"},
		{"request hop-by-hop set", app + "routes:\n  - proxy: app\n    request_headers:\n      set: {Connection: close}\n", "routes[0].request_headers.set.Connection", 7, "hop-by-hop"},
		{"request transfer-encoding", app + "routes:\n  - proxy: app\n    request_headers:\n      remove: [transfer-encoding]\n", "routes[0].request_headers.remove[0]", 7, "message framing"},
		{"request te add", app + "routes:\n  - proxy: app\n    request_headers:\n      add: {TE: trailers}\n", "routes[0].request_headers.add.TE", 7, "hop-by-hop"},
		{"request upgrade", app + "routes:\n  - proxy: app\n    request_headers:\n      set: {Upgrade: h2c}\n", "routes[0].request_headers.set.Upgrade", 7, "hop-by-hop"},
		{"request keep-alive", app + "routes:\n  - proxy: app\n    request_headers:\n      remove: [Keep-Alive]\n", "routes[0].request_headers.remove[0]", 7, "hop-by-hop"},
		{"request trailer", app + "routes:\n  - proxy: app\n    request_headers:\n      remove: [Trailer]\n", "routes[0].request_headers.remove[0]", 7, "hop-by-hop"},
		{"request proxy-connection", app + "routes:\n  - proxy: app\n    request_headers:\n      remove: [Proxy-Connection]\n", "routes[0].request_headers.remove[0]", 7, "hop-by-hop"},
		{"request content-length", app + "routes:\n  - proxy: app\n    request_headers:\n      set: {Content-Length: '0'}\n", "routes[0].request_headers.set.Content-Length", 7, "message framing"},
		{"request host add", app + "routes:\n  - proxy: app\n    request_headers:\n      add: {Host: a}\n", "routes[0].request_headers.add.Host", 7, "exactly one Host header; use set"},
		{"request host remove", app + "routes:\n  - proxy: app\n    request_headers:\n      remove: [host]\n", "routes[0].request_headers.remove[0]", 7, "cannot be removed"},
		{"request remove empty", app + "routes:\n  - proxy: app\n    request_headers:\n      remove: ['']\n", "routes[0].request_headers.remove[0]", 7, "header name is empty"},
		{"header set twice", app + "routes:\n  - proxy: app\n    request_headers:\n      set: {X-A: a, x-a: b}\n", "routes[0].request_headers.set.x-a", 7, "also given as \"X-A\""},
		{"response hop-by-hop", "routes:\n  - respond: {}\n    response_headers:\n      set: {Transfer-Encoding: chunked}\n", "routes[0].response_headers.set.Transfer-Encoding", 4, "message framing"},
		{"response header value", "routes:\n  - respond: {}\n    response_headers:\n      add: {X-A: \"\\n\"}\n", "routes[0].response_headers.add.X-A", 4, "must not contain CR, LF or NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.src), "test.yaml", envOf(nil))
			if cfg != nil {
				t.Fatal("got a config, want problems")
			}
			ps := problemsOf(t, err)
			p, ok := findProblem(ps, tt.path, tt.msg)
			if !ok {
				t.Fatalf("no problem at %q containing %q; got:\n%v", tt.path, tt.msg, err)
			}
			if len(ps) != 1 {
				t.Errorf("got %d problems, want 1:\n%v", len(ps), err)
			}
			if tt.line != 0 && p.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", p.Line, tt.line, p)
			}
		})
	}
}

// nodesList returns n distinct node entries for a flow list.
func nodesList(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("{address: '10.0.")
		b.WriteString(strconv.Itoa(i / 256))
		b.WriteString(".")
		b.WriteString(strconv.Itoa(i % 256))
		b.WriteString(":80'}")
	}
	return b.String()
}

func TestValidAccepted(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{"admin off", "admin: {address: 'off'}\nlisteners: [{address: ':9901'}]\n"},
		{"ipv6 listener", "listeners: [{address: '[::1]:80'}]\n"},
		{"hosts", "routes:\n  - match: {hosts: [a.example.com, '*.b.example.com', localhost, 10.0.0.1, x_y.internal]}\n    respond: {}\n"},
		{"host may be set", app + "routes:\n  - proxy: app\n    request_headers: {set: {Host: x}}\n"},
		{"template braces", "routes:\n  - redirect: {to: '/a{{b}}/{path}'}\n"},
		{"prefix redirect", "routes:\n  - match: {path_prefix: /a/}\n    redirect: {prefix: /b/}\n"},
		{"rest with path_prefix", "routes:\n  - match: {path_prefix: /a/}\n    redirect: {to: '/b/{rest}'}\n"},
		{"all redirect statuses", "routes:\n  - {redirect: {https: true, status: 301}}\n  - {redirect: {https: true, status: 302}}\n  - {redirect: {https: true, status: 303}}\n  - {redirect: {https: true, status: 307}}\n  - {redirect: {https: true, status: 308}}\n"},
		{"response host header", "routes:\n  - respond: {headers: {Host: x}}\n    response_headers: {add: {Host: y}}\n"},
		{"unused upstream", app},
		{"no routes", "watch: true\n"},
		{"256 nodes", "upstreams:\n  app:\n    nodes: [" + nodesList(256) + "]\n"},
		{"trailing dot node", "upstreams: {app: {nodes: [{address: 'app.internal.:80'}]}}\n"},
		{"different listener hosts", "listeners: [{address: '127.0.0.1:80'}, {address: '127.0.0.2:80'}]\n"},
		{"discovery only", "upstreams:\n  app:\n    discovery:\n      dns: {name: _http._tcp.app.internal}\nroutes: [{proxy: app}]\n"},
		{"discovery with static nodes", "upstreams:\n  app:\n    discovery: {dns: {name: app.internal., type: A, port: 8080, resolver: '[fd00::53]:53', min_ttl: 5s, max_ttl: 5s}}\n    nodes: [{address: 'a:1'}, {address: 'b:1', backup: true}]\n"},
		{"dns resolver ipv4", "upstreams:\n  app:\n    discovery: {dns: {name: _h._tcp.a, resolver: '10.0.0.2:53'}}\n"},
		{"empty health check", app + "    health_check: {}\n"},
		{"health check hosts", "upstreams:\n" +
			"  a: {nodes: [{address: 'a:1'}], health_check: {path: /h, host: app.internal}}\n" +
			"  b: {nodes: [{address: 'a:1'}], health_check: {path: /h, host: 'app.internal:8080'}}\n" +
			"  c: {nodes: [{address: 'a:1'}], health_check: {path: /h, host: '10.0.0.1:80'}}\n" +
			"  d: {nodes: [{address: 'a:1'}], health_check: {path: /h, host: '[::1]'}}\n" +
			"  e: {nodes: [{address: 'a:1'}], health_check: {path: /h, host: '[::1]:8080'}}\n" +
			"  f: {nodes: [{address: 'a:1'}], health_check: {path: /h, host: '10.0.0.1'}}\n"},
		{"health check full", app + "    health_check: {path: '/health?deep=1', method: HEAD, port: 0, interval: 1s, timeout: 1s, expect_status: [200, 3xx, '401-403'], expect_body: ok, rise: 1, fall: 1}\n"},
		{"passive off", app + "    passive: {consecutive_failures: 0, ejection_time: 1s, max_ejection_time: 1s}\n"},
		{"retries edge values", app + "    retries: {attempts: 10, on: [500, timeout], budget_percent: 100, budget_min_per_second: 0}\n"},
		{"no retries", app + "    retries: {attempts: 0}\n"},
		{"slow start and try_all", app + "    slow_start: 1m\n    all_down: try_all\n"},
		{"retry_non_idempotent", app + "routes:\n  - proxy: app\n    retry_non_idempotent: true\n"},
		{"limits", "server:\n  max_header_count: 1\n  max_requests_per_connection: 0\n  max_connections_per_ip: 5\n  encoded_slashes: keep\n  merge_slashes: false\n  rate_limit: {requests_per_second: 0.5}\n"},
		{"double slash kept when not merged", "server: {merge_slashes: false}\nroutes:\n  - match: {path_prefix: //admin}\n    respond: {}\n"},
		{"route access and rate", "routes:\n  - respond: {}\n    access: {allow: [10.0.0.0/8, '::1'], deny: [10.1.0.0/16]}\n    rate_limit: {requests_per_second: 100, burst: 10, key: route}\n"},
		{"encoded reserved characters in paths", "routes:\n  - match: {path_prefix: /a%2Fb%3f}\n    respond: {}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustParse(t, tt.src, nil)
		})
	}
}

func TestManyProblems(t *testing.T) {
	const src = `listeners:
  - address: ":80"
  - address: ":80"
server:
  idle_timeout: 10
  max_connections: 0
  trusted_proxies: [bogus]
upstreams:
  app:
    policy: fastest
    nodes:
      - address: "10.0.0.1"
        weight: 0
  zzz:
    nodes: []
routes:
  - proxy: missing
    match:
      path_regex: "("
      hosts: ["a:1"]
  - redirect: {to: "/{nope}", status: 200}
  - respond: {status: 42}
    colour: red
`
	_, err := Parse([]byte(src), "edge.yaml", envOf(nil))
	ps := problemsOf(t, err)
	want := []struct {
		line int
		path string
		msg  string
	}{
		{3, "listeners[1].address", "duplicate address"},
		{5, "server.idle_timeout", "duration needs a unit"},
		{6, "server.max_connections", "at least 1"},
		{7, "server.trusted_proxies[0]", "invalid trusted proxy"},
		{10, "upstreams.app.policy", "unknown policy"},
		{12, "upstreams.app.nodes[0].address", "must be host:port"},
		{13, "upstreams.app.nodes[0].weight", "must be from 1 to 1000"},
		{15, "upstreams.zzz.nodes", "at least one node is required"},
		{17, "routes[0].proxy", "unknown upstream \"missing\""},
		{19, "routes[0].match.path_regex", "invalid regular expression"},
		{20, "routes[0].match.hosts[0]", "must not include a port"},
		{21, "routes[1].redirect.status", "got 200"},
		{21, "routes[1].redirect.to", "unknown placeholder {nope}"},
		{22, "routes[2].respond.status", "got 42"},
		{23, "routes[2].colour", "unknown field \"colour\""},
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if i >= len(ps) {
			break
		}
		if p := ps[i]; p.Line != w.line || p.Path != w.path || !strings.Contains(p.Msg, w.msg) {
			t.Errorf("problem %d = %+v, want line %d path %q message containing %q", i, p, w.line, w.path, w.msg)
		}
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(ps) {
		t.Fatalf("Error() has %d lines, want %d", len(lines), len(ps))
	}
	if want := "edge.yaml:3: listeners[1].address: duplicate address"; !strings.HasPrefix(lines[0], want) {
		t.Errorf("first line %q does not start with %q", lines[0], want)
	}
}

func TestValidationErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  *ValidationError
		want string
	}{
		{"all parts", &ValidationError{File: "f.yaml", Problems: []Problem{{Path: "a.b", Line: 3, Msg: "bad"}}}, "f.yaml:3: a.b: bad"},
		{"no line", &ValidationError{File: "f.yaml", Problems: []Problem{{Path: "a", Msg: "bad"}}}, "f.yaml: a: bad"},
		{"no path", &ValidationError{File: "f.yaml", Problems: []Problem{{Line: 2, Msg: "bad"}}}, "f.yaml:2: bad"},
		{"no file", &ValidationError{Problems: []Problem{{Path: "a", Line: 2, Msg: "bad"}}}, "line 2: a: bad"},
		{"sorted by line then path", &ValidationError{File: "f", Problems: []Problem{
			{Path: "b", Line: 2, Msg: "x"}, {Path: "a", Line: 2, Msg: "y"}, {Path: "z", Line: 1, Msg: "z"},
		}}, "f:1: z: z\nf:2: a: y\nf:2: b: x"},
		{"no problems", &ValidationError{File: "f"}, "f: invalid configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidateInCode(t *testing.T) {
	t.Run("zero config", func(t *testing.T) {
		var c Config
		ps := problemsOf(t, c.Validate())
		if _, ok := findProblem(ps, "listeners", "at least one listener"); !ok {
			t.Errorf("got %v", ps)
		}
		for _, p := range ps {
			if p.Line != 0 {
				t.Errorf("problem %+v has a line", p)
			}
		}
	})
	t.Run("defaults make a zero config valid", func(t *testing.T) {
		var c Config
		c.applyDefaults(nil)
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.Server.MaxBodyBytes != 64<<20 {
			t.Errorf("MaxBodyBytes = %v", c.Server.MaxBodyBytes)
		}
	})
	t.Run("upstream defaults in code", func(t *testing.T) {
		c := Config{Upstreams: map[string]*Upstream{"a": {Nodes: []Node{{Address: "a:1"}}}}}
		c.applyDefaults(nil)
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		u := c.Upstreams["a"]
		if !reflect.DeepEqual(u.HealthCheck, HealthCheck{}) || u.Discovery.DNS != nil || u.Passive.ConsecutiveFailures != 5 || u.Retries.Attempts != 2 {
			t.Errorf("upstream = %+v", u)
		}
		u.HealthCheck.Path = "/h"
		ps := problemsOf(t, c.Validate())
		if _, ok := findProblem(ps, "upstreams.a.health_check.interval", "greater than 0"); !ok {
			t.Errorf("an undefaulted health check passed: %v", ps)
		}
	})
	t.Run("nil entries", func(t *testing.T) {
		c := Config{
			Upstreams: map[string]*Upstream{"b": nil, "a": nil},
			Routes:    []*Route{nil},
		}
		c.applyDefaults(nil)
		c.Upstreams["c"] = nil
		ps := problemsOf(t, c.Validate())
		var paths []string
		for _, p := range ps {
			paths = append(paths, p.Path)
		}
		want := []string{"routes[0]", "upstreams.a.nodes", "upstreams.b.nodes", "upstreams.c"}
		if !reflect.DeepEqual(paths, want) {
			t.Errorf("paths = %q, want %q", paths, want)
		}
	})
	t.Run("derived fields are replaced", func(t *testing.T) {
		cfg := mustParse(t, "server: {trusted_proxies: ['::1', '10.1.2.3/8']}\nroutes:\n  - match: {path_regex: a}\n    redirect: {to: /x}\n", nil)
		cfg.Server.TrustedProxies = []string{"fe80::1%eth0"}
		cfg.Routes[0].Match.PathRegex = ""
		cfg.Routes[0].Redirect.To = ""
		cfg.Routes[0].Redirect.HTTPS = true
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if want := []netip.Prefix{netip.MustParsePrefix("fe80::1/128")}; !reflect.DeepEqual(cfg.Server.TrustedNets, want) {
			t.Errorf("TrustedNets = %v, want %v", cfg.Server.TrustedNets, want)
		}
		if cfg.Routes[0].Match.PathRegexp != nil || cfg.Routes[0].Redirect.Template != nil {
			t.Error("derived fields kept after their source was removed")
		}
	})
	t.Run("masked prefix", func(t *testing.T) {
		cfg := mustParse(t, "server: {trusted_proxies: ['10.1.2.3/8']}\n", nil)
		if got := cfg.Server.TrustedNets[0].String(); got != "10.0.0.0/8" {
			t.Errorf("got %s", got)
		}
	})
}

func TestPathHelpers(t *testing.T) {
	tests := []struct {
		path string
		want string // Go type, "" for none
	}{
		{"listeners[0].address", "string"},
		{"server.max_body_bytes", "config.Size"},
		{"upstreams.app.nodes[1].weight", "int"},
		{`upstreams["a b"].connect_timeout`, "config.Duration"},
		{"routes[2].redirect", "config.Redirect"},
		{"routes[0].respond.headers.X-A", "string"},
		{"upstreams.app.discovery.dns.min_ttl", "config.Duration"},
		{"upstreams.app.health_check.expect_status[1]", "string"},
		{"upstreams.app.retries.budget_percent", "float64"},
		{"routes[0].nope", ""},
		{`upstreams["a`, ""},
		{"listeners[0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got := ""
			if ty := goTypeAt(tt.path); ty != nil {
				got = ty.String()
			}
			if got != tt.want {
				t.Errorf("goTypeAt(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

var fuzzSeeds = []string{
	"",
	"watch: true\n",
	app + "routes:\n  - proxy: app\n",
	"listeners: [{address: ':80'}, {address: ':80'}]\n",
	"server: {max_body_bytes: 0, idle_timeout: 5s, trusted_proxies: ['10.0.0.0/8']}\n",
	"routes:\n  - match: {path_prefix: /a/, hosts: ['*.x.com']}\n    redirect: {to: 'https://{host}/{rest}?{query}'}\n",
	"upstreams:\n  a: &a {nodes: [{address: 'a:1'}]}\n  b: {<<: *a, policy: consistent_hash, hash: {source: cookie, name: s}}\n",
	"admin: {token: '${TOKEN:-x}', address: '$$'}\n",
	"a: &x [*x]\n",
	"routes: [~, {respond: {status: 0}}]\n",
	"- a\n",
	"x: 1\n---\ny: 2\n",
	"upstreams:\n  a:\n    discovery: {dns: {name: _h._tcp.a}}\n    health_check: {path: /h, expect_status: [2xx, '200-204']}\n    retries: {on: [502, reset], attempts: 0}\n    passive: {consecutive_failures: 0}\n",
	"listeners: [{address: ':8443', tls: true}]\ntls: {certificates: [{cert: /dev/zero, key: /dev/stdin}, {cert: testdata, key: testdata/full.yaml}]}\n",
	"listeners: [{address: ':80'}, {address: ':443', tls: true}]\ntls:\n  acme: {agreed: true, names: [A.example.com], eab: {key_id: k, mac_key: 'YQ=='}, trusted_roots: testdata/full.yaml}\n  hsts: {max_age: 1h, preload: true}\n  redirect_http: true\n",
	app + "    tls: {ca: /dev/null, server_name: app.internal, cert: /nonexistent, key: '', insecure_skip_verify: true}\n",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	if full, err := os.ReadFile(filepath.Join("testdata", "full.yaml")); err == nil {
		f.Add(full)
	}
	lookup := envOf(map[string]string{"TOKEN": "t", "EMPTY": "", "PORT": "8080"})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yaml", lookup)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error %v (%T) is not a *ValidationError with problems", err, err)
			}
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config without error")
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate refuses: %v", err)
		}
	})
}

func TestListenerPortZeroLetsTheKernelChoose(t *testing.T) {
	cases := []struct {
		name, listen, admin, wantPath string
	}{
		{"both on port 0", "127.0.0.1:0", "127.0.0.1:0", ""},
		{"non-numeric port", "127.0.0.1:x", "127.0.0.1:0", "listeners[0].address"},
		{"admin non-numeric", "127.0.0.1:0", "127.0.0.1:abc", "admin.address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "listeners: [{address: \"" + tc.listen + "\"}]\nadmin: {address: \"" + tc.admin + "\"}\n" +
				"upstreams: {app: {nodes: [{address: \"127.0.0.1:9001\"}]}}\nroutes: [{proxy: app}]\n"
			_, err := Parse([]byte(src), "t.yaml", nil)
			if tc.wantPath == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantPath) {
				t.Fatalf("got %v, want a problem at %s", err, tc.wantPath)
			}
		})
	}
	src := "upstreams: {app: {nodes: [{address: \"127.0.0.1:0\"}]}}\nroutes: [{proxy: app}]\n"
	if _, err := Parse([]byte(src), "t.yaml", nil); err == nil || !strings.Contains(err.Error(), "upstreams.app.nodes[0].address") {
		t.Fatalf("a node on port 0 must be refused, got %v", err)
	}
}

func TestHealthCheckTimeoutDefaultFollowsShortInterval(t *testing.T) {
	src := "upstreams: {app: {health_check: {path: /health, interval: 500ms}, nodes: [{address: \"127.0.0.1:9001\"}]}}\nroutes: [{proxy: app}]\n"
	cfg, err := Parse([]byte(src), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Upstreams["app"].HealthCheck.Timeout.D(); got != 500*time.Millisecond {
		t.Fatalf("timeout defaulted to %v, want the interval, 500ms", got)
	}
}

func TestStaticBackupsBehindDiscoveredNodes(t *testing.T) {
	src := "upstreams: {app: {discovery: {dns: {name: _http._tcp.app.internal, resolver: \"127.0.0.1:53\"}}, nodes: [{address: \"127.0.0.1:9001\", backup: true}]}}\nroutes: [{proxy: app}]\n"
	if _, err := Parse([]byte(src), "t.yaml", nil); err != nil {
		t.Fatalf("static backups behind DNS-discovered primaries must be valid: %v", err)
	}
}

func TestRateLimitDefaults(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want RateLimit
	}{
		{"fractional rate gets a burst of one", "server: {rate_limit: {requests_per_second: 0.5}}\n",
			RateLimit{RequestsPerSecond: 0.5, Burst: 1, Key: RateKeyClientIP, MaxClients: 100000}},
		{"burst follows the rate, rounded up", "server: {rate_limit: {requests_per_second: 10.2}}\n",
			RateLimit{RequestsPerSecond: 10.2, Burst: 11, Key: RateKeyClientIP, MaxClients: 100000}},
		{"explicit values kept", "server: {rate_limit: {requests_per_second: 10, burst: 3, max_clients: 7}}\n",
			RateLimit{RequestsPerSecond: 10, Burst: 3, Key: RateKeyClientIP, MaxClients: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, tt.src, nil)
			if got := *cfg.Server.RateLimit; got != tt.want {
				t.Fatalf("rate_limit = %+v, want %+v", got, tt.want)
			}
		})
	}
	cfg := mustParse(t, "routes:\n  - respond: {}\n    rate_limit: {requests_per_second: 2, key: route}\n", nil)
	if got, want := *cfg.Routes[0].RateLimit, (RateLimit{RequestsPerSecond: 2, Burst: 2, Key: RateKeyRoute, MaxClients: 100000}); got != want {
		t.Fatalf("route rate_limit = %+v, want %+v", got, want)
	}
}
