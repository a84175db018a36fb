package router

import (
	"bytes"
	"crypto/subtle"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/edge-router/edge/cache"
	"github.com/valyala/fasthttp"
)

// purgeACL says who may send the PURGE method.
type purgeACL struct {
	nets  []netip.Prefix
	token []byte // nil: no token accepted
}

// on reports whether anyone may purge; without an ACL a cached route
// answers PURGE with 405 and other routes pass it on.
func (a *purgeACL) on() bool { return len(a.nets) > 0 || a.token != nil }

var (
	hdrPurgeToken   = []byte("X-Purge-Token")
	hdrTagsPattern  = []byte("X-Magento-Tags-Pattern")
	hdrSurrogateKey = []byte("Surrogate-Key")
	hdrCacheTags    = []byte("Cache-Tag")
	hdrPurgeSoft    = []byte("X-Purge-Soft")
	hdrFastlySoft   = []byte("Fastly-Soft-Purge")
	bearerPrefix    = []byte("Bearer ")
)

func (a *purgeACL) allows(ctx *fasthttp.RequestCtx) bool {
	peer := peerAddr(ctx)
	for _, n := range a.nets {
		if n.Contains(peer) {
			return true
		}
	}
	if a.token == nil {
		return false
	}
	tok := ctx.Request.Header.PeekBytes(hdrPurgeToken)
	if len(tok) == 0 {
		if auth := ctx.Request.Header.PeekBytes(hdrAuthorization); bytes.HasPrefix(auth, bearerPrefix) {
			tok = auth[len(bearerPrefix):]
		}
	}
	return len(tok) > 0 && subtle.ConstantTimeCompare(tok, a.token) == 1
}

// purgeRequest answers the PURGE method (Varnish's and Magento's way):
// X-Magento-Tags-Pattern purges by tag pattern, Surrogate-Key or Cache-Tag
// by tags, otherwise the request's URL is purged. X-Purge-Soft: 1 (or
// Fastly-Soft-Purge: 1) marks entries stale instead of removing them.
func (s *Server) purgeRequest(ctx *fasthttp.RequestCtx, snap *snapshot) {
	if !snap.purge.allows(ctx) {
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.Response.SetStatusCode(fasthttp.StatusForbidden)
		ctx.Response.SetBodyString("purge not allowed\n")
		return
	}
	h := &ctx.Request.Header
	soft := string(h.PeekBytes(hdrPurgeSoft)) == "1" || string(h.PeekBytes(hdrFastlySoft)) == "1"
	var sel purgeSelector
	switch {
	case len(h.PeekBytes(hdrTagsPattern)) > 0:
		sel.pattern = string(h.PeekBytes(hdrTagsPattern))
	case len(h.PeekBytes(hdrSurrogateKey)) > 0:
		sel.tags = strings.Fields(string(h.PeekBytes(hdrSurrogateKey)))
	case len(h.PeekBytes(hdrCacheTags)) > 0:
		sel.tags = splitTags(string(h.PeekBytes(hdrCacheTags)))
	default:
		scheme := "http"
		if ctx.IsTLS() {
			scheme = "https"
		}
		sel.urls = []string{scheme + "://" + string(ctx.Host()) + string(originForm(h.RequestURI()))}
	}
	n, kind, err := s.purge(snap, sel, soft, "method")
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	if err != nil {
		ctx.Response.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.Response.SetBodyString("invalid " + kind + "\n")
		return
	}
	ctx.Response.SetBodyString("purged " + strconv.Itoa(n) + "\n")
}

// purgeSelector says what a purge removes: everything, URLs, tags or a tag
// pattern (the first set of these).
type purgeSelector struct {
	all     bool
	urls    []string
	tags    []string
	pattern string
}

// purge removes (or, soft, marks stale) what sel selects, returning the
// number of entries and the selector's kind for metrics.
func (s *Server) purge(snap *snapshot, sel purgeSelector, soft bool, source string) (int, string, error) {
	store := s.cache.store
	var n int
	var kind string
	var err error
	switch {
	case sel.all:
		kind = "all"
		n = store.PurgeAll(soft)
	case sel.pattern != "":
		kind = "pattern"
		if re, cerr := regexp.Compile(sel.pattern); cerr == nil && re.MatchString("") {
			// Matches an entry without tags too (Magento's flush is
			// ".*"): everything goes.
			n = store.PurgeAll(soft)
			break
		}
		n, err = store.PurgePattern(sel.pattern, soft)
	case len(sel.tags) > 0:
		kind = "tag"
		n = store.PurgeTags(sel.tags, soft)
	default:
		kind = "url"
		for _, u := range sel.urls {
			n += s.purgeURL(snap, u, soft)
		}
	}
	if err != nil {
		return 0, kind, err
	}
	s.cache.metrics.purges.WithLabelValues(source, kind).Inc()
	s.cache.metrics.purged.Add(float64(n))
	return n, kind, nil
}

// purgeURL purges an absolute URL under the key of every cached route (a
// route's key options may shape the query differently).
func (s *Server) purgeURL(snap *snapshot, raw string, soft bool) int {
	var u fasthttp.URI
	if err := u.Parse(nil, []byte(raw)); err != nil || len(u.Host()) == 0 {
		return 0
	}
	target := originForm([]byte(raw))
	seen := map[string]bool{}
	n := 0
	for _, r := range snap.routes {
		if r.cache == nil {
			continue
		}
		key := string(r.cache.keyer.Append(nil, methodGET, u.Scheme(), u.Host(), target))
		if !seen[key] {
			seen[key] = true
			n += s.cache.store.PurgeKey([]byte(key), soft)
		}
	}
	return n
}

// splitTags splits a comma-separated tag list, dropping empty items.
func splitTags(v string) []string {
	var tags []string
	for t := range strings.SplitSeq(v, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// handleCacheAdmin serves the admin API's /cache (GET: the store's levels
// and counters) and /cache/purge (POST with url, tag, pattern or all=1
// query parameters, and soft=1).
func (s *Server) handleCacheAdmin(ctx *fasthttp.RequestCtx, path string) {
	switch path {
	case "/cache":
		st := s.cache.store.Stats()
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{
			"objects": st.Objects, "bytes": st.Bytes, "max_bytes": st.MaxBytes,
			"stores": st.Stores, "rejections": st.Rejections, "evictions": st.Evictions,
			"coalesced_waiters": s.cache.coal.Waiters(),
		})
	case "/cache/purge":
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			writeJSONError(ctx, fasthttp.StatusMethodNotAllowed, "use POST")
			return
		}
		args := ctx.QueryArgs()
		var sel purgeSelector
		sel.all = string(args.Peek("all")) == "1"
		for _, v := range args.PeekMulti("url") {
			sel.urls = append(sel.urls, string(v))
		}
		for _, v := range args.PeekMulti("tag") {
			sel.tags = append(sel.tags, splitTags(string(v))...)
		}
		sel.pattern = string(args.Peek("pattern"))
		if !sel.all && len(sel.urls) == 0 && len(sel.tags) == 0 && sel.pattern == "" {
			writeJSONError(ctx, fasthttp.StatusBadRequest, "give url, tag, pattern or all=1")
			return
		}
		for _, u := range sel.urls {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				writeJSONError(ctx, fasthttp.StatusBadRequest, "url %q: must be absolute (http:// or https://)", u)
				return
			}
		}
		n, kind, err := s.purge(s.snap.Load(), sel, string(args.Peek("soft")) == "1", "admin")
		if err != nil {
			writeJSONError(ctx, fasthttp.StatusBadRequest, "invalid %s: %v", kind, err)
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"purged": n, "kind": kind})
	default:
		writeJSONError(ctx, fasthttp.StatusNotFound, "not found")
	}
}

// cacheState is what outlives reloads: the store and the coalescer.
type cacheState struct {
	store   *cache.Store
	coal    *cache.Coalescer
	metrics *cacheMetrics
	// hits writes stored responses for the public listeners, whose
	// servers all have the same settings (newPublicServer).
	hits cache.HitWriter
}
