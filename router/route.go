package router

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// actionKind is what a route does with a matched request.
type actionKind uint8

const (
	actionProxy actionKind = iota
	actionRedirect
	actionRespond
)

// route is a compiled config.Route. Immutable once its snapshot is built.
type route struct {
	name  string
	index int

	// Conditions; the host is handled by the snapshot's host index.
	exactPath  []byte
	pathPrefix []byte
	pathRegex  *regexp.Regexp
	methods    [][]byte
	headers    []headerCond

	kind     actionKind
	pool     *pool
	redirect *redirect
	respond  *respond

	requestRules  headerRules
	responseRules headerRules

	retryNonIdempotent bool
	cache              *routeCache // nil: the route does not cache

	access       *accessList // nil: every client may use the route
	accessDenied prometheus.Counter
	rate         *rateRule // nil: no rate limit

	metrics *routeMetrics
}

type headerCond struct {
	name     []byte
	value    []byte
	hasValue bool
}

type respond struct {
	status  int
	headers [][2][]byte
	body    []byte
}

// matches reports whether every non-host condition holds for the request.
func (r *route) matches(ctx *fasthttp.RequestCtx, path []byte) bool {
	switch {
	case r.exactPath != nil:
		if !bytes.Equal(path, r.exactPath) {
			return false
		}
	case r.pathPrefix != nil:
		if !bytes.HasPrefix(path, r.pathPrefix) {
			return false
		}
	case r.pathRegex != nil:
		if !r.pathRegex.Match(path) {
			return false
		}
	}
	if len(r.methods) > 0 {
		m := ctx.Method()
		found := false
		for _, want := range r.methods {
			if bytes.Equal(m, want) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for i := range r.headers {
		h := &r.headers[i]
		v := ctx.Request.Header.PeekBytes(h.name)
		if v == nil || (h.hasValue && !bytes.Equal(v, h.value)) {
			return false
		}
	}
	if r.redirect != nil && !r.redirect.applies(ctx, path) {
		return false
	}
	return true
}

// whyNot appends to dst why each non-host condition of the route fails
// for the request, in the order matches checks them; it appends nothing
// exactly when matches returns true. It is edge explain's view of
// matches, off the request path; the two must change together
// (TestExplainWhyNotAgreesWithMatches holds them to it).
func (r *route) whyNot(dst []string, ctx *fasthttp.RequestCtx, path []byte) []string {
	switch {
	case r.exactPath != nil:
		if !bytes.Equal(path, r.exactPath) {
			dst = append(dst, fmt.Sprintf("path %q is not %q", path, r.exactPath))
		}
	case r.pathPrefix != nil:
		if !bytes.HasPrefix(path, r.pathPrefix) {
			dst = append(dst, fmt.Sprintf("path %q does not start with %q", path, r.pathPrefix))
		}
	case r.pathRegex != nil:
		if !r.pathRegex.Match(path) {
			dst = append(dst, fmt.Sprintf("path %q does not match regex %q", path, r.pathRegex.String()))
		}
	}
	if len(r.methods) > 0 {
		m := ctx.Method()
		if !slices.ContainsFunc(r.methods, func(want []byte) bool { return bytes.Equal(m, want) }) {
			dst = append(dst, fmt.Sprintf("method %s is not one of %s", m, bytes.Join(r.methods, []byte(", "))))
		}
	}
	for i := range r.headers {
		h := &r.headers[i]
		v := ctx.Request.Header.PeekBytes(h.name)
		switch {
		case v == nil:
			dst = append(dst, fmt.Sprintf("header %s is missing", h.name))
		case h.hasValue && !bytes.Equal(v, h.value):
			dst = append(dst, fmt.Sprintf("header %s is %q, not %q", h.name, v, h.value))
		}
	}
	if r.redirect != nil && !r.redirect.applies(ctx, path) {
		dst = append(dst, "redirect would not change the URL: "+redirectNoChange(r.redirect))
	}
	return dst
}

// hostIndex finds the routes that can match a host, in config order, without
// looking at routes for other hosts: exact names by map, "*.example.com" by
// looking up each suffix of the host, routes without hosts everywhere.
type hostIndex struct {
	exact    map[string]routeList // host → candidates (exact, matching wildcards, hostless)
	wildcard map[string]routeList // ".example.com" → candidates (wildcards that are suffixes, hostless)
	any      routeList            // routes without a host condition
}

func buildHostIndex(routes []*route, cfgRoutes []*config.Route) *hostIndex {
	idx := &hostIndex{exact: map[string]routeList{}, wildcard: map[string]routeList{}}
	// Collect every host name and wildcard suffix named anywhere.
	var hostless []*route
	for i, cr := range cfgRoutes {
		if len(cr.Match.Hosts) == 0 {
			hostless = append(hostless, routes[i])
			continue
		}
		for _, h := range cr.Match.Hosts {
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				idx.wildcard[suffix] = routeList{}
			} else {
				idx.exact[h] = routeList{}
			}
		}
	}
	idx.any = newRouteList(hostless)
	matchesHost := func(cr *config.Route, host string, isSuffix bool) bool {
		if len(cr.Match.Hosts) == 0 {
			return true
		}
		for _, h := range cr.Match.Hosts {
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				// A wildcard serves a host, or a longer suffix, ending in it.
				if strings.HasSuffix(host, suffix) && (isSuffix || len(host) > len(suffix)) {
					return true
				}
			} else if !isSuffix && h == host {
				return true
			}
		}
		return false
	}
	collect := func(host string, isSuffix bool) routeList {
		var rs []*route
		for i, cr := range cfgRoutes {
			if matchesHost(cr, host, isSuffix) {
				rs = append(rs, routes[i])
			}
		}
		return newRouteList(rs)
	}
	for host := range idx.exact {
		idx.exact[host] = collect(host, false)
	}
	for suffix := range idx.wildcard {
		idx.wildcard[suffix] = collect(suffix, true)
	}
	return idx
}

// candidates returns the routes to try for a lower-case host without port.
func (idx *hostIndex) candidates(host []byte) routeList {
	if len(idx.exact) > 0 {
		if rs, ok := idx.exact[string(host)]; ok {
			return rs
		}
	}
	if len(idx.wildcard) > 0 {
		// Longest suffix first: its list includes the shorter wildcards.
		for i := 0; i < len(host); i++ {
			if host[i] == '.' && i > 0 {
				if rs, ok := idx.wildcard[string(host[i:])]; ok {
					return rs
				}
			}
		}
	}
	return idx.any
}

// normalizeHost writes the Host header's name without port, lower-cased,
// into dst and returns it.
func normalizeHost(dst, host []byte) []byte {
	dst = dst[:0]
	if len(host) > 0 && host[0] == '[' { // IPv6 literal
		if i := bytes.IndexByte(host, ']'); i > 0 {
			host = host[:i+1]
		}
	} else if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = bytes.TrimSuffix(host, []byte{'.'})
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
