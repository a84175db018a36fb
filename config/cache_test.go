package config

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
)

const cacheApp = "upstreams:\n  app: {nodes: [{address: 'a:1'}]}\n"

func TestCacheDefaults(t *testing.T) {
	cfg := mustParse(t, cacheApp+"routes:\n  - proxy: app\n    cache: {}\n  - proxy: app\n", nil)
	want := Cache{
		Size:              256 << 20,
		MaxObjectSize:     8 << 20,
		ControlHeaders:    []string{"CDN-Cache-Control", "Surrogate-Control"},
		TagHeaders:        []string{"Surrogate-Key", "Cache-Tag", "X-Magento-Tags"},
		HeuristicFraction: 0.1,
		HeuristicMax:      Duration(24 * time.Hour),
	}
	if !reflect.DeepEqual(cfg.Cache, want) {
		t.Errorf("Cache = %+v\nwant %+v", cfg.Cache, want)
	}
	wantRoute := &RouteCache{
		Key:             CacheKey{Query: "keep"},
		Keep:            Duration(time.Hour),
		HitForPass:      Duration(2 * time.Minute),
		CoalesceTimeout: Duration(5 * time.Second),
	}
	if !reflect.DeepEqual(cfg.Routes[0].Cache, wantRoute) {
		t.Errorf("routes[0].cache = %+v\nwant %+v", cfg.Routes[0].Cache, wantRoute)
	}
	if cfg.Routes[1].Cache != nil {
		t.Error("a route without a cache section got one")
	}
}

func TestCacheExplicitValues(t *testing.T) {
	cfg := mustParse(t, `cache:
  size: 64MiB
  max_object_size: 1MiB
  control_headers: [Surrogate-Control]
  tag_headers: []
  keep_tag_headers: true
  heuristic_fraction: 0
  purge:
    allow: [10.0.0.0/8, 192.168.1.7]
    token: s3cret
`+cacheApp+`routes:
  - proxy: app
    cache:
      key:
        query: sort
        ignore_params: ["@marketing", "sid"]
        headers: [X-Forwarded-Proto]
        cookies: [X-Magento-Vary]
      default_ttl: 0s
      coalesce_timeout: 0s
      hit_for_pass: 0s
      grace: 72h
`, nil)
	c := cfg.Cache
	if c.Size != 64<<20 || c.MaxObjectSize != 1<<20 || !c.KeepTagHeaders || c.HeuristicFraction != 0 {
		t.Errorf("cache = %+v", c)
	}
	if !reflect.DeepEqual(c.ControlHeaders, []string{"Surrogate-Control"}) || len(c.TagHeaders) != 0 {
		t.Errorf("control/tag headers = %q / %q; an explicit empty list must stay empty", c.ControlHeaders, c.TagHeaders)
	}
	wantNets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")}
	if !reflect.DeepEqual(c.Purge.AllowNets, wantNets) {
		t.Errorf("AllowNets = %v, want %v", c.Purge.AllowNets, wantNets)
	}
	rc := cfg.Routes[0].Cache
	if rc.CoalesceTimeout != 0 || rc.HitForPass != 0 || rc.Grace != Duration(72*time.Hour) {
		t.Errorf("explicit zeros or values lost: %+v", rc)
	}
	if !slices.Contains(rc.Key.IgnoreParams, "utm_*") || !slices.Contains(rc.Key.IgnoreParams, "gclid") ||
		!slices.Contains(rc.Key.IgnoreParams, "sid") || slices.Contains(rc.Key.IgnoreParams, "@marketing") {
		t.Errorf("ignore_params = %q: @marketing must expand and the others stay", rc.Key.IgnoreParams)
	}
}

func TestCacheValidationRules(t *testing.T) {
	tests := []struct {
		name string
		src  string
		path string
		msg  string
	}{
		{"size zero", "cache: {size: 0}\n", "cache.size", "must be at least 4MiB"},
		{"size too small", "cache: {size: 1MiB, max_object_size: 64KiB}\n", "cache.size", "must be at least 4MiB (the store's own structures need room), got 1MiB"},
		{"object larger than a quarter", "cache: {size: 4MiB, max_object_size: 2MiB}\n", "cache.max_object_size", "at most a quarter of cache.size"},
		{"object size zero", "cache: {max_object_size: 0}\n", "cache.max_object_size", "must be positive"},
		{"control header name", "cache: {control_headers: ['a b']}\n", "cache.control_headers[0]", "invalid header name"},
		{"control header Cache-Control", "cache: {control_headers: [cache-control]}\n", "cache.control_headers[0]", "cannot be used here"},
		{"tag header hop-by-hop", "cache: {tag_headers: [Connection]}\n", "cache.tag_headers[0]", "cannot be used here"},
		{"header in both lists", "cache: {control_headers: [X-A], tag_headers: [x-a]}\n", "cache.tag_headers[0]", "also listed in cache.control_headers[0]"},
		{"heuristic fraction", "cache: {heuristic_fraction: 1.5}\n", "cache.heuristic_fraction", "between 0 and 1"},
		{"heuristic max", "cache: {heuristic_max: -1s}\n", "cache.heuristic_max", "must not be negative"},
		{"purge allow", "cache: {purge: {allow: [nope]}}\n", "cache.purge.allow[0]", "invalid address \"nope\""},
		{"purge token", "cache: {purge: {token: \"a\\nb\"}}\n", "cache.purge.token", "control characters"},
		{"cache on a redirect", "routes:\n  - redirect: {https: true}\n    cache: {}\n", "routes[0].cache", "applies only to routes with proxy"},
		{"key query", cacheApp + "routes:\n  - proxy: app\n    cache: {key: {query: drop}}\n", "routes[0].cache.key.query", "must be \"keep\", \"sort\" or \"ignore\""},
		{"ignore param star inside", cacheApp + "routes:\n  - proxy: app\n    cache: {key: {ignore_params: ['a*b']}}\n", "routes[0].cache.key.ignore_params[0]", "invalid parameter name"},
		{"ignore param empty", cacheApp + "routes:\n  - proxy: app\n    cache: {key: {ignore_params: ['*']}}\n", "routes[0].cache.key.ignore_params[0]", "invalid parameter name"},
		{"ignore params with query ignore", cacheApp + "routes:\n  - proxy: app\n    cache: {key: {query: ignore, ignore_params: [a]}}\n", "routes[0].cache.key.ignore_params", "has no effect"},
		{"key header", cacheApp + "routes:\n  - proxy: app\n    cache: {key: {headers: ['a:b']}}\n", "routes[0].cache.key.headers[0]", "invalid header name"},
		{"key cookie", cacheApp + "routes:\n  - proxy: app\n    cache: {key: {cookies: ['a b']}}\n", "routes[0].cache.key.cookies[0]", "invalid cookie name"},
		{"negative grace", cacheApp + "routes:\n  - proxy: app\n    cache: {grace: -1s}\n", "routes[0].cache.grace", "must not be negative"},
		{"negative coalesce", cacheApp + "routes:\n  - proxy: app\n    cache: {coalesce_timeout: -1s}\n", "routes[0].cache.coalesce_timeout", "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.src), "test.yaml", envOf(nil))
			if cfg != nil {
				t.Fatal("got a config, want problems")
			}
			ps := problemsOf(t, err)
			if _, ok := findProblem(ps, tt.path, tt.msg); !ok {
				t.Fatalf("no problem at %q containing %q; got:\n%v", tt.path, tt.msg, err)
			}
			if len(ps) != 1 {
				t.Errorf("got %d problems, want 1:\n%v", len(ps), err)
			}
		})
	}
}
