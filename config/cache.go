package config

import (
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Cache configures the shared HTTP cache (RFC 9111) that routes with a
// cache section use. One store serves every route and outlives reloads;
// its size is fixed when edge starts.
type Cache struct {
	// Size bounds the bytes held (bodies, headers and keys). Default: 256MiB.
	Size Size `yaml:"size"`
	// MaxObjectSize is the largest response stored; larger ones pass
	// through. Default: 8MiB.
	MaxObjectSize Size `yaml:"max_object_size"`
	// ControlHeaders are the targeted cache-control fields (RFC 9213)
	// consulted before Cache-Control, first present wins. They are removed
	// before the response reaches the client. Default: [CDN-Cache-Control,
	// Surrogate-Control].
	ControlHeaders []string `yaml:"control_headers"`
	// TagHeaders are the response fields whose values tag a stored
	// response for purging. Surrogate-Key is space-separated, the others
	// comma-separated. Default: [Surrogate-Key, Cache-Tag, X-Magento-Tags].
	TagHeaders []string `yaml:"tag_headers"`
	// KeepTagHeaders passes the tag fields on to clients. Default: false.
	KeepTagHeaders bool `yaml:"keep_tag_headers"`
	// HeuristicFraction of the time since Last-Modified is the freshness
	// lifetime of a response without an explicit one (RFC 9111 §4.2.2).
	// 0 turns heuristic freshness off. Default: 0.1.
	HeuristicFraction float64 `yaml:"heuristic_fraction"`
	// HeuristicMax caps a heuristic freshness lifetime. Default: 24h.
	HeuristicMax Duration `yaml:"heuristic_max"`
	// Purge says who may purge with the PURGE method.
	Purge CachePurge `yaml:"purge"`
}

// CachePurge says who may send the PURGE method: a client from one of
// Allow, or one that presents Token; others get 403. With neither set, a
// cached route answers PURGE with 405; the admin API purges regardless.
type CachePurge struct {
	// Allow lists the CIDRs (or addresses) whose clients may purge.
	Allow []string `yaml:"allow"`
	// Token, when set, lets any client purge that sends it as
	// "Authorization: Bearer <token>" or "X-Purge-Token: <token>".
	Token string `yaml:"token"`
	// AllowNets is Allow, parsed by Validate.
	AllowNets []netip.Prefix `yaml:"-"`
}

// RouteCache turns the cache on for a proxy route and sets its policy.
// `cache: {}` takes every default.
type RouteCache struct {
	// Key says what, besides method, scheme, host, path and query, tells
	// stored responses apart.
	Key CacheKey `yaml:"key"`
	// DefaultTTL is the freshness lifetime of a response that gives none
	// (no max-age, s-maxage or Expires) and is cacheable by default
	// (RFC 9111 §4.2.2). 0 leaves it to the Last-Modified heuristic.
	// Default: 0.
	DefaultTTL Duration `yaml:"default_ttl"`
	// StaleWhileRevalidate serves a stale response this long past its
	// lifetime while one background request refreshes it, when the
	// response has no stale-while-revalidate directive (RFC 5861).
	// Default: 0.
	StaleWhileRevalidate Duration `yaml:"stale_while_revalidate"`
	// StaleIfError serves a stale response this long past its lifetime
	// when the node answers 5xx or cannot be reached, when the response
	// has no stale-if-error directive (RFC 5861). Default: 0.
	StaleIfError Duration `yaml:"stale_if_error"`
	// Grace serves a stale response this long past its lifetime when no
	// node of the pool is available or every node tried answered 5xx or
	// failed, whatever the response's directives (except no-cache and
	// must-revalidate). Default: 0.
	Grace Duration `yaml:"grace"`
	// Keep holds a stale response with a validator (ETag or
	// Last-Modified) this long past its lifetime, for conditional
	// revalidation. Default: 1h.
	Keep Duration `yaml:"keep"`
	// StripSetCookie stores a response that sets cookies without its
	// Set-Cookie fields (the client that caused the store still gets
	// them). Without it such responses are not stored. Default: false.
	StripSetCookie bool `yaml:"strip_set_cookie"`
	// HitForPass is how long a key whose response was not storable is
	// fetched without request coalescing. Default: 2m.
	HitForPass Duration `yaml:"hit_for_pass"`
	// CoalesceTimeout bounds how long a request waits for another's
	// fetch of the same key before going to a node itself. 0 turns
	// coalescing off. Default: 5s.
	CoalesceTimeout Duration `yaml:"coalesce_timeout"`
}

// CacheKey shapes a route's cache key.
type CacheKey struct {
	// Query is "keep" (as sent), "sort" (parameters sorted) or "ignore"
	// (left out of the key). Default: "keep".
	Query string `yaml:"query"`
	// IgnoreParams are query parameters left out of the key; a trailing
	// "*" matches a prefix ("utm_*"). Default: none.
	IgnoreParams []string `yaml:"ignore_params"`
	// Headers are request fields whose values join the key.
	Headers []string `yaml:"headers"`
	// Cookies are cookie names whose values join the key (Magento's
	// X-Magento-Vary).
	Cookies []string `yaml:"cookies"`
}

// Values of CacheKey.Query.
const (
	QueryKeep   = "keep"
	QuerySort   = "sort"
	QueryIgnore = "ignore"
)

// MarketingParams is a list for CacheKey.IgnoreParams: the tracking
// parameters that Magento's VCL strips. A list item "@marketing" expands
// to it.
var MarketingParams = []string{
	"utm_*", "gclid", "gclsrc", "gbraid", "wbraid", "gad_*", "fbclid", "msclkid",
	"dclid", "yclid", "mc_*", "_ga", "_gl", "_ke", "_kx", "srsltid", "epik",
	"igshid", "ttclid", "twclid", "li_fat_id", "trk_*",
}

const (
	defaultCacheSize          = Size(256 << 20)
	defaultCacheMaxObject     = Size(8 << 20)
	defaultHeuristicFraction  = 0.1
	defaultHeuristicMax       = Duration(24 * time.Hour)
	defaultCacheKeep          = Duration(time.Hour)
	defaultHitForPass         = Duration(2 * time.Minute)
	defaultCoalesceTimeout    = Duration(5 * time.Second)
	marketingParamsPlaceholer = "@marketing"
	minCacheSize              = Size(4 << 20)
)

var (
	defaultControlHeaders = []string{"CDN-Cache-Control", "Surrogate-Control"}
	defaultTagHeaders     = []string{"Surrogate-Key", "Cache-Tag", "X-Magento-Tags"}
)

func (c *Cache) applyDefaults(set func(string) bool) {
	defaultSize(&c.Size, defaultCacheSize, set, "cache.size")
	defaultSize(&c.MaxObjectSize, defaultCacheMaxObject, set, "cache.max_object_size")
	defaultList(&c.ControlHeaders, defaultControlHeaders, set, "cache.control_headers")
	defaultList(&c.TagHeaders, defaultTagHeaders, set, "cache.tag_headers")
	defaultFloat(&c.HeuristicFraction, defaultHeuristicFraction, set, "cache.heuristic_fraction")
	defaultDuration(&c.HeuristicMax, defaultHeuristicMax, set, "cache.heuristic_max")
}

func (rc *RouteCache) applyDefaults(p string, set func(string) bool) {
	defaultString(&rc.Key.Query, QueryKeep, set, p+".key.query")
	defaultDuration(&rc.Keep, defaultCacheKeep, set, p+".keep")
	defaultDuration(&rc.HitForPass, defaultHitForPass, set, p+".hit_for_pass")
	defaultDuration(&rc.CoalesceTimeout, defaultCoalesceTimeout, set, p+".coalesce_timeout")
	var params []string
	for _, name := range rc.Key.IgnoreParams {
		if name == marketingParamsPlaceholer {
			params = append(params, MarketingParams...)
		} else {
			params = append(params, name)
		}
	}
	rc.Key.IgnoreParams = params
}

func (c *Cache) validate(v *validator) {
	if c.Size < minCacheSize {
		v.add("cache.size", "must be at least %s (the store's own structures need room), got %s", minCacheSize, c.Size)
	}
	switch {
	case c.MaxObjectSize <= 0:
		v.add("cache.max_object_size", "must be positive")
	case c.Size > 0 && c.MaxObjectSize > c.Size/4:
		v.add("cache.max_object_size", "must be at most a quarter of cache.size (%s), got %s", c.Size/4, c.MaxObjectSize)
	}
	seen := map[string]string{}
	checkNames := func(field string, names []string) {
		for j, name := range names {
			p := joinIndex("cache."+field, j)
			if !checkHeaderName(v, p, name) {
				continue
			}
			canon := http.CanonicalHeaderKey(name)
			if other, dup := seen[canon]; dup {
				v.add(p, "%s is also listed in %s", name, other)
				continue
			}
			seen[canon] = p
			if hopByHop[canon] || canon == "Cache-Control" {
				v.add(p, "%s cannot be used here", name)
			}
		}
	}
	checkNames("control_headers", c.ControlHeaders)
	checkNames("tag_headers", c.TagHeaders)
	if c.HeuristicFraction < 0 || c.HeuristicFraction > 1 {
		v.add("cache.heuristic_fraction", "must be between 0 and 1, got %v", c.HeuristicFraction)
	}
	if c.HeuristicMax < 0 {
		v.add("cache.heuristic_max", "must not be negative")
	}
	c.Purge.AllowNets = parseNets(v, "cache.purge.allow", c.Purge.Allow)
	if badHeaderValue(c.Purge.Token) {
		v.add("cache.purge.token", "must not contain control characters")
	}
}

// hopByHop are the connection-specific fields (RFC 9110 §7.6.1) that can
// be neither cache tags nor control fields.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Date": true, "Age": true,
}

func validateRouteCache(v *validator, p string, r *Route) {
	rc := r.Cache
	if r.Proxy == "" {
		v.add(p, "applies only to routes with proxy")
	}
	switch rc.Key.Query {
	case QueryKeep, QuerySort, QueryIgnore:
	default:
		v.add(p+".key.query", "must be %q, %q or %q, got %q", QueryKeep, QuerySort, QueryIgnore, rc.Key.Query)
	}
	for j, name := range rc.Key.IgnoreParams {
		base := strings.TrimSuffix(name, "*")
		if base == "" || strings.ContainsAny(base, "*&=# \t") || hasControl(base) {
			v.add(joinIndex(p+".key.ignore_params", j), "invalid parameter name %q: a name, or a prefix followed by \"*\"", name)
		}
	}
	if rc.Key.Query == QueryIgnore && len(rc.Key.IgnoreParams) > 0 {
		v.add(p+".key.ignore_params", "has no effect with key.query %q", QueryIgnore)
	}
	for j, name := range rc.Key.Headers {
		checkHeaderName(v, joinIndex(p+".key.headers", j), name)
	}
	for j, name := range rc.Key.Cookies {
		if !isToken(name) {
			v.add(joinIndex(p+".key.cookies", j), "invalid cookie name %q", name)
		}
	}
	for _, d := range []struct {
		field string
		val   Duration
	}{
		{"default_ttl", rc.DefaultTTL}, {"stale_while_revalidate", rc.StaleWhileRevalidate},
		{"stale_if_error", rc.StaleIfError}, {"grace", rc.Grace}, {"keep", rc.Keep},
		{"hit_for_pass", rc.HitForPass}, {"coalesce_timeout", rc.CoalesceTimeout},
	} {
		if d.val < 0 {
			v.add(p+"."+d.field, "must not be negative")
		}
	}
}
