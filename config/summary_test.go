package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// summaryRich uses every part of the summary: PROXY protocol and TLS
// listeners, every kind of action and extra, hashing pools with weights,
// backups and health checks, caches, certificates, ACME, HSTS and an
// admin token. %s is the certificate file, %s its key.
const summaryRich = `listeners:
  - {address: "127.0.0.1:18080", proxy_protocol: {from: ["10.0.0.0/8", "192.168.0.1"]}}
  - {name: secure, address: "127.0.0.1:18443", tls: true}
admin: {address: "127.0.0.1:19901", token: t0ken}
server:
  trusted_proxies: ["127.0.0.0/8"]
  rate_limit: {requests_per_second: 100, burst: 200}
cache: {size: 64MiB, max_object_size: 2MiB, purge: {token: purge-s3cret}}
tls:
  certificates: [{cert: "CERT", key: "KEY"}]
  acme: {email: a@b.c, agreed: true, on_demand: true, names: [c.example.com], eab: {key_id: k, mac_key: bWFjLWtleQ}}
  redirect_http: true
  hsts: {max_age: 24h}
upstreams:
  app:
    policy: consistent_hash
    hash: {source: header, name: X-User}
    nodes:
      - {address: "127.0.0.1:9001", name: n1, weight: 2}
      - {address: "127.0.0.1:9002", name: n2, backup: true}
    health_check: {path: /hz, interval: 3s}
  other:
    policy: consistent_hash
    hash: {source: client_ip}
    nodes: [{address: "127.0.0.1:9003"}]
routes:
  - name: api
    match: {hosts: [a.example.com], methods: [GET], headers: [{name: Authorization, value: Bearer-xyz}, {name: X-B}]}
    proxy: app
    cache: {default_ttl: 1m}
    access: {allow: [10.0.0.0/8], deny: [10.1.0.0/16]}
    rate_limit: {requests_per_second: 2.5, burst: 5}
  - name: o
    match: {path: /o}
    proxy: other
  - name: slash
    match: {path_prefix: /s}
    redirect: {trailing_slash: add}
  - name: to
    match: {path_prefix: /t}
    redirect: {to: "https://x.example.com/", status: 302}
  - name: resp
    respond: {status: 204}
`

// summaryRichText is what WriteSummary writes for summaryRich (as
// `edge check` printed it before the summary moved to this package).
const summaryRichText = `listeners
  NAME    ADDRESS          KIND
  http    127.0.0.1:18080  http, PROXY protocol from 10.0.0.0/8, 192.168.0.1
  secure  127.0.0.1:18443  https
routes (the first that matches takes the request)
  #   NAME   MATCH                                                                       ACTION
  #0  api    hosts=a.example.com methods=GET header=Authorization:Bearer-xyz header=X-B  → proxy app  [cache, access list, rate limit 2.5/s]
  #1  o      path=/o                                                                     → proxy other
  #2  slash  path_prefix=/s                                                              → redirect: add trailing slash
  #3  to     path_prefix=/t                                                              → redirect to https://x.example.com/ (302)
  #4  resp   any request                                                                 → respond 204
upstreams
  NAME   POLICY                            HEALTH CHECK      NODES
  app    consistent_hash on header X-User  GET /hz every 3s  n1 127.0.0.1:9001 w2, n2 127.0.0.1:9002 (backup)
  other  consistent_hash on client_ip      none              127.0.0.1:9003
cache
  64MiB shared, objects up to 2MiB; cached routes: api (default ttl 1m0s)
tls
  certificate CERT: a.example.com, *.b.example.com
  acme https://acme-v02.api.letsencrypt.org/directory (http-01, tls-alpn-01): a.example.com, c.example.com
  acme on demand for names under route wildcards
  plain-HTTP requests are redirected to HTTPS before any route
  HSTS max-age 24h0m0s
admin
  127.0.0.1:19901, token required
`

// summaryPlain has defaults, DNS discovery, no cache, no TLS and admin
// off.
const summaryPlain = `listeners: [{address: "127.0.0.1:0"}]
admin: {address: "off"}
upstreams:
  app:
    nodes:
      - {address: "127.0.0.1:9001"}
  dns:
    discovery: {dns: {name: _http._tcp.app.internal.}}
routes:
  - name: www
    match: {hosts: [example.com]}
    redirect: {www: add, status: 308}
  - name: https
    redirect: {https: true}
`

const summaryPlainText = `listeners
  NAME  ADDRESS      KIND
  http  127.0.0.1:0  http
routes (the first that matches takes the request)
  #   NAME   MATCH              ACTION
  #0  www    hosts=example.com  → redirect: add www. (308)
  #1  https  any request        → redirect to https
upstreams
  NAME  POLICY      HEALTH CHECK  NODES
  app   random_two  none          127.0.0.1:9001
  dns   random_two  none          DNS SRV _http._tcp.app.internal.
cache
  no route caches
tls
  no certificates
admin
  off
`

func TestWriteSummary(t *testing.T) {
	pair := writePair(t, t.TempDir(), "site", certSpec{cn: "a.example.com", dns: []string{"a.example.com", "*.b.example.com"}})
	cert := strings.NewReplacer("CERT", pair.cert, "KEY", pair.key)
	cases := []struct {
		name, src, want string
	}{
		{"rich", cert.Replace(summaryRich), cert.Replace(summaryRichText)},
		{"plain", summaryPlain, summaryPlainText},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, tc.src, nil)
			var b bytes.Buffer
			if err := cfg.WriteSummary(&b); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tc.want {
				t.Errorf("summary:\n%s\nwant:\n%s", got, tc.want)
			}
			for i, line := range strings.Split(b.String(), "\n") {
				if strings.TrimRight(line, " ") != line {
					t.Errorf("line %d has trailing blanks: %q", i+1, line)
				}
			}
		})
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteSummaryReturnsWriteError(t *testing.T) {
	cfg := mustParse(t, summaryPlain, nil)
	if err := cfg.WriteSummary(failingWriter{}); err == nil || err.Error() != "disk full" {
		t.Fatalf("WriteSummary to a failing writer: %v, want its error", err)
	}
}

func TestMatchDescribe(t *testing.T) {
	cases := []struct {
		m    Match
		want string
	}{
		{Match{}, "any request"},
		{Match{Hosts: []string{"example.com", "*.example.org"}}, "hosts=example.com,*.example.org"},
		{Match{Path: "/x"}, "path=/x"},
		{Match{PathPrefix: "/api"}, "path_prefix=/api"},
		{Match{PathRegex: `^/a/\d+$`}, `path_regex=^/a/\d+$`},
		{Match{Methods: []string{"GET", "HEAD"}}, "methods=GET,HEAD"},
		{Match{Headers: []HeaderMatch{{Name: "X-Beta", Value: "1"}, {Name: "X-Debug"}}}, "header=X-Beta:1 header=X-Debug"},
		{
			Match{Hosts: []string{"example.com"}, PathPrefix: "/api", Methods: []string{"GET"}, Headers: []HeaderMatch{{Name: "X-Beta", Value: "1"}}},
			"hosts=example.com path_prefix=/api methods=GET header=X-Beta:1",
		},
	}
	for _, tc := range cases {
		if got := tc.m.Describe(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.m, got, tc.want)
		}
	}
}

func TestDescribeAction(t *testing.T) {
	cases := []struct {
		r    Route
		want string
	}{
		{Route{Proxy: "app"}, "proxy app"},
		{Route{Redirect: &Redirect{HTTPS: true}}, "redirect to https"},
		{Route{Redirect: &Redirect{WWW: "remove"}}, "redirect: remove www."},
		{Route{Redirect: &Redirect{TrailingSlash: "add"}}, "redirect: add trailing slash"},
		{Route{Redirect: &Redirect{Prefix: "/news/", Status: 308}}, "redirect prefix to /news/ (308)"},
		{Route{Redirect: &Redirect{To: "https://example.com/"}}, "redirect to https://example.com/"},
		{Route{Respond: &Respond{Status: 503}}, "respond 503"},
		{Route{Proxy: "app", Cache: &RouteCache{}}, "proxy app  [cache]"},
		{
			Route{Proxy: "app", Cache: &RouteCache{}, Access: &Access{}, RateLimit: &RateLimit{RequestsPerSecond: 0.5}},
			"proxy app  [cache, access list, rate limit 0.5/s]",
		},
	}
	for _, tc := range cases {
		if got := tc.r.describeAction(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}
