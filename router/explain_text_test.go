package router

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// textCases are explanations that between them take every branch of
// WriteText, and their text (as `edge explain` printed them before the
// rendering moved to this package).
var textCases = []struct {
	name string
	e    Explanation
	want string
}{
	{"served by a node", Explanation{
		Mode:    "live",
		Request: ExplainedRequest{Method: "POST", Scheme: "https", HostHeader: "WWW.Example.com:8443", Host: "www.example.com", Target: "/a/../b?x=1", Path: "/b", Forwarded: "/b?x=1", Peer: "10.0.0.1", Client: "203.0.113.7"},
		Outcome: OutcomeRoute,
		Route: &ExplainedRoute{
			Name: "app", Index: 2, Match: "hosts=www.example.com", Action: "proxy", Pool: "app",
			Access:          &ExplainedAccess{Allow: []string{"203.0.113.0/24"}, Deny: []string{"203.0.113.8/32", "198.51.100.0/24"}, Client: "203.0.113.7", Allowed: true},
			RequestHeaders:  []string{"remove Cookie", "set X-Api"},
			ResponseHeaders: []string{"add X-Served-By"},
		},
		NotMatched: []RouteMiss{{Name: "old-blog", Index: 0, Reason: `path "/b" does not start with "/blog/"`}, {Name: "internal-service", Index: 1, Reason: "host is not internal.example.com"}},
		RateLimits: []ExplainedRateLimit{{Scope: "server", RequestsPerSecond: 100, Burst: 200, Key: "client_ip"}, {Scope: "route", RequestsPerSecond: 2.5, Burst: 5, Key: "route"}},
		Pool: &ExplainedPool{
			Name: "app", Policy: "consistent_hash", AllDown: "fail", Hash: `header X-User = "bob"`, Chosen: "n2", ChosenAddress: "127.0.0.1:9002", Choice: "consistent_hash: the key's node",
			Nodes: []ExplainedNode{
				{Name: "n1", Address: "127.0.0.1:9001", State: "down", Health: "down", Reason: "health check failed", Weight: 1, InFlight: 0},
				{Name: "n2", Address: "127.0.0.1:9002", State: "up", Health: "up", Weight: 3, InFlight: 12, Available: true},
				{Name: "backup-node", Address: "10.1.1.1:80", State: "up", Health: "unchecked", Backup: true, Weight: 1, Available: true},
			},
		},
		Cache: &ExplainedCache{
			Key: "https://www.example.com/b?x=1", VaryOn: []string{"accept-encoding", "cookie:lang"}, Cached: true, Variants: 2, Answer: "hit",
			Entry: &ExplainedEntry{Status: 200, AgeSeconds: 12, TTLSeconds: 48, SoftPurged: true, Vary: []string{"Accept-Language"}, Bytes: 5120},
		},
		Notes: []string{"first note", "second note"},
	}, `request
  POST              https://WWW.Example.com:8443/a/../b?x=1
  host              www.example.com  (routes match this: lower case, no port)
  path              /b  (normalised, as routed); sent to nodes as /b?x=1
  client            203.0.113.7  (from X-Forwarded-For of trusted proxy 10.0.0.1)
  rate limit        server: 100/s, burst 200, per client_ip (not evaluated: explaining takes no token)
route
  #2 app            hosts=www.example.com
  action            proxy to pool app
  access            allow 203.0.113.0/24; deny 203.0.113.8/32, 198.51.100.0/24: client 203.0.113.7 allowed
  rate limit        route: 2.5/s, burst 5, per route (not evaluated: explaining takes no token)
  request headers   remove Cookie, set X-Api
  response headers  add X-Served-By
routes not matched
  #0  old-blog          path "/b" does not start with "/blog/"
  #1  internal-service  host is not internal.example.com
pool app  (consistent_hash, all_down: fail)
  hash key          header X-User = "bob"
  chosen            n2 127.0.0.1:9002
  why               consistent_hash: the key's node
  NODE         ADDRESS         STATE  HEALTH     WEIGHT  IN FLIGHT  NOTE
  n1           127.0.0.1:9001  down   down       1       0          not available; health check failed
  n2           127.0.0.1:9002  up     up         3       12
  backup-node  10.1.1.1:80     up     unchecked  1       0          backup
cache
  key               https://www.example.com/b?x=1
  key varies on     accept-encoding, cookie:lang
  stored            yes: status 200, age 12s, fresh for 48s more, 5120 bytes, soft-purged, variant for Accept-Language
  answer            hit
result
  route
notes
  first note
  second note
`},
	{"stale entry, answered by the cache", Explanation{
		Mode:    "live",
		Request: ExplainedRequest{Method: "GET", Scheme: "http", HostHeader: "x", Host: "x", Target: "/c", Path: "/c", Peer: "192.0.2.1", Client: "192.0.2.1"},
		Outcome: OutcomeRoute,
		Route:   &ExplainedRoute{Name: "c", Index: 0, Match: "any request", Action: "proxy", Pool: "p"},
		Pool:    &ExplainedPool{Name: "p", Policy: "round_robin", AllDown: "try_all", Choice: "no node is available", Nodes: []ExplainedNode{{Name: "a", Address: "127.0.0.1:1", State: "maint", Health: "unchecked", Weight: 1}}},
		Cache:   &ExplainedCache{Key: "http://x/c", Cached: true, Variants: 1, Answer: "stale-while-revalidate", Detail: "served stale while one request revalidates", Entry: &ExplainedEntry{Status: 404, AgeSeconds: 100, TTLSeconds: -40, Stale: true, Bytes: 9}},
	}, `request
  GET               http://x/c
  host              x  (routes match this: lower case, no port)
  path              /c  (normalised, as routed)
  client            192.0.2.1
route
  #0 c              any request
  action            proxy to pool p
pool p  (round_robin, all_down: try_all)
  chosen            none
  why               no node is available
  NODE  ADDRESS      STATE  HEALTH     WEIGHT  IN FLIGHT  NOTE
  a     127.0.0.1:1  maint  unchecked  1       0          not available
cache
  key               http://x/c
  stored            yes: status 404, age 100s, stale for 40s, 9 bytes
  answer            stale-while-revalidate: served stale while one request revalidates
result
  route
`},
	{"another variant stored", Explanation{
		Mode:    "offline",
		Request: ExplainedRequest{Method: "GET", Scheme: "http", HostHeader: "x", Host: "x", Target: "/v", Path: "/v", Peer: "192.0.2.1", Client: "192.0.2.1"},
		Outcome: OutcomeRoute,
		Route:   &ExplainedRoute{Name: "v", Index: 3, Match: "path=/v", Action: "proxy", Pool: "p"},
		Cache:   &ExplainedCache{Key: "http://x/v", Variants: 2, Answer: "vary-miss"},
	}, `request
  GET               http://x/v
  host              x  (routes match this: lower case, no port)
  path              /v  (normalised, as routed)
  client            192.0.2.1
route
  #3 v              path=/v
  action            proxy to pool p
cache
  key               http://x/v
  stored            no (2 other variant(s) under the key)
  answer            vary-miss
result
  route
`},
	{"nothing stored, bypassed", Explanation{
		Mode:    "offline",
		Request: ExplainedRequest{Method: "DELETE", Scheme: "http", HostHeader: "x", Host: "x", Target: "/v", Path: "/v", Peer: "192.0.2.1", Client: "192.0.2.1"},
		Outcome: OutcomeRoute,
		Route:   &ExplainedRoute{Name: "v", Index: 3, Match: "path=/v", Action: "proxy", Pool: "p"},
		Cache:   &ExplainedCache{Key: "http://x/v", Answer: "miss"},
	}, `request
  DELETE            http://x/v
  host              x  (routes match this: lower case, no port)
  path              /v  (normalised, as routed)
  client            192.0.2.1
route
  #3 v              path=/v
  action            proxy to pool p
cache
  key               http://x/v
  stored            no
  answer            miss
result
  route
`},
	{"cache without key", Explanation{
		Mode:    "offline",
		Request: ExplainedRequest{Method: "PATCH", Target: "/v"},
		Outcome: OutcomeRoute,
		Cache:   &ExplainedCache{Answer: "bypass", Detail: "PATCH is not answered from the cache"},
	}, `request
  PATCH             /v
cache
  answer            bypass: PATCH is not answered from the cache
result
  route
`},
	{"built-in HTTPS redirect", Explanation{
		Mode:    "offline",
		Request: ExplainedRequest{Method: "GET", Scheme: "http", HostHeader: "a.example.com", Host: "a.example.com", Target: "/", Path: "/", Peer: "192.0.2.1", Client: "192.0.2.1"},
		Outcome: OutcomeRoute, Status: 301, Detail: "edge redirects to https://a.example.com/",
		Route: &ExplainedRoute{Name: "redirect_http", Index: -1, Match: "tls.redirect_http: every plain-HTTP request", Action: "redirect", Location: "https://a.example.com/"},
	}, `request
  GET               http://a.example.com/
  host              a.example.com  (routes match this: lower case, no port)
  path              /  (normalised, as routed)
  client            192.0.2.1
route
  redirect_http     tls.redirect_http: every plain-HTTP request
  action            redirect 301 to https://a.example.com/
result
  edge redirects to https://a.example.com/
`},
	{"fixed response", Explanation{
		Mode:    "offline",
		Request: ExplainedRequest{Method: "GET", Scheme: "http", HostHeader: "x", Host: "x", Target: "/healthz", Path: "/healthz", Peer: "192.0.2.1", Client: "192.0.2.1"},
		Outcome: OutcomeRoute, Status: 200,
		Route:      &ExplainedRoute{Name: "health", Index: 1, Match: "path=/healthz", Action: "respond", BodyBytes: 3},
		NotMatched: []RouteMiss{{Name: "z", Index: 0, Reason: "r"}},
	}, `request
  GET               http://x/healthz
  host              x  (routes match this: lower case, no port)
  path              /healthz  (normalised, as routed)
  client            192.0.2.1
route
  #1 health         path=/healthz
  action            respond 200 (3 bytes)
routes not matched
  #0  z  r
result
  route
`},
	{"access denied", Explanation{
		Mode:    "offline",
		Request: ExplainedRequest{Method: "GET", Scheme: "http", HostHeader: "x", Host: "x", Target: "/admin", Path: "/admin", Peer: "192.168.1.1", Client: "192.168.1.1"},
		Outcome: OutcomeRoute, Status: 403, Error: "access_denied", Detail: "the route's access list denies the client",
		Route: &ExplainedRoute{Name: "admin", Index: 0, Match: "path_prefix=/admin", Action: "proxy", Pool: "app", Access: &ExplainedAccess{Allow: []string{"10.0.0.0/8"}, Client: "192.168.1.1"}},
	}, `request
  GET               http://x/admin
  host              x  (routes match this: lower case, no port)
  path              /admin  (normalised, as routed)
  client            192.168.1.1
route
  #0 admin          path_prefix=/admin
  action            proxy to pool app
  access            allow 10.0.0.0/8: client 192.168.1.1 denied
result
  403 access_denied: the route's access list denies the client
`},
	{"refused before routing", Explanation{
		Mode:    "offline",
		Request: ExplainedRequest{Method: "GET", Target: "/a%2Fb"},
		Outcome: OutcomeError, Status: 400, Error: "bad_path", Detail: "the path holds an encoded slash",
	}, `request
  GET               /a%2Fb
result
  400 bad_path: the path holds an encoded slash
`},
	{"outcome only", Explanation{
		Mode:    "live",
		Request: ExplainedRequest{Method: "GET", Scheme: "http", HostHeader: "x", Host: "x", Target: "/.well-known/acme-challenge/t", Path: "/.well-known/acme-challenge/t", Peer: "192.0.2.1", Client: "192.0.2.1"},
		Outcome: OutcomeACME,
	}, `request
  GET               http://x/.well-known/acme-challenge/t
  host              x  (routes match this: lower case, no port)
  path              /.well-known/acme-challenge/t  (normalised, as routed)
  client            192.0.2.1
result
  acme_challenge
`},
}

func TestExplanationWriteText(t *testing.T) {
	for _, tc := range textCases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.e.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tc.want {
				t.Errorf("text:\n%s\nwant:\n%s", got, tc.want)
			}
			for i, line := range strings.Split(b.String(), "\n") {
				if strings.TrimRight(line, " ") != line {
					t.Errorf("line %d has trailing blanks: %q", i+1, line)
				}
			}
		})
	}
}

// An explanation of a real configuration, from ExplainOffline to text.
func TestExplainOfflineWriteText(t *testing.T) {
	cfg := explainLoad(t, explainRoutes, nil)
	e, err := ExplainOffline(cfg, ExplainInput{Method: "GET", URL: "http://www.example.com/blog/post?x=1"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	const want = `request
  GET               http://www.example.com/blog/post?x=1
  host              www.example.com  (routes match this: lower case, no port)
  path              /blog/post  (normalised, as routed)
  client            192.0.2.1
route
  #0 old-blog       hosts=www.example.com path_prefix=/blog/
  action            redirect 301 to /news/post?x=1
routes not matched
  #1  health      not tried: route old-blog (#0) matched first (nor would this one: path "/blog/post" is not "/healthz")
  #2  api-write   not considered: other host ("www.example.com" is not one of api.example.com)
  #3  beta        not considered: other host ("www.example.com" is not one of api.example.com)
  #4  sticky      not considered: other host ("www.example.com" is not one of sticky.example.com)
  #5  admin-only  not tried: route old-blog (#0) matched first (nor would this one: path "/blog/post" does not start with "/admin")
  #6  secure      not considered: other host ("www.example.com" is not one of secure.example.com)
  #7  item        not tried: route old-blog (#0) matched first (nor would this one: path "/blog/post" does not match regex "^/item/[0-9]+$")
  #8  www         not tried: route old-blog (#0) matched first (this route would match too)
result
  edge redirects with 301 to /news/post?x=1
notes
  offline: node health is not known, all nodes are assumed up; the cache is empty
  no client address given: assumed 192.0.2.1
`
	if got := b.String(); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestExplanationWriteTextReturnsWriteError(t *testing.T) {
	e := textCases[0].e
	if err := e.WriteText(failingWriter{}); err == nil || err.Error() != "disk full" {
		t.Fatalf("WriteText to a failing writer: %v, want its error", err)
	}
}
