package router

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// redirectKind is the way a redirect builds its target.
type redirectKind uint8

const (
	redirectTemplate redirectKind = iota
	redirectHTTPS
	redirectAddWWW
	redirectRemoveWWW
	redirectAddSlash
	redirectRemoveSlash
	redirectPrefix
)

// redirect is a compiled config.Redirect.
type redirect struct {
	kind      redirectKind
	template  config.Template
	status    int // 0: 301 for GET/HEAD, 308 otherwise
	dropQuery bool
	// appendQuery: the template does not place the query itself, so the
	// request's query string is appended unless dropQuery is set.
	appendQuery bool
	oldPrefix   []byte // the route's path_prefix
	newPrefix   []byte
}

func compileRedirect(c *config.Redirect, pathPrefix string) *redirect {
	r := &redirect{status: c.Status, dropQuery: c.DropQuery, oldPrefix: []byte(pathPrefix)}
	switch {
	case c.HTTPS:
		r.kind = redirectHTTPS
	case c.WWW == "add":
		r.kind = redirectAddWWW
	case c.WWW == "remove":
		r.kind = redirectRemoveWWW
	case c.TrailingSlash == "add":
		r.kind = redirectAddSlash
	case c.TrailingSlash == "remove":
		r.kind = redirectRemoveSlash
	case c.Prefix != "":
		r.kind = redirectPrefix
		r.newPrefix = []byte(c.Prefix)
	default:
		r.kind = redirectTemplate
		r.template = c.Template
		r.appendQuery = !c.Template.Uses(config.PlaceholderQuery) && !c.Template.Uses(config.PlaceholderURI)
	}
	return r
}

var wwwPrefix = []byte("www.")

// applies reports whether the redirect would change the URL; a shorthand
// that would redirect a request to itself does not match, so the route is
// skipped (for example, add-www on a host that already starts with www.).
func (r *redirect) applies(ctx *fasthttp.RequestCtx, path []byte) bool {
	switch r.kind {
	case redirectHTTPS:
		return !ctx.IsTLS()
	case redirectAddWWW:
		return !bytes.HasPrefix(ctx.Host(), wwwPrefix)
	case redirectRemoveWWW:
		return bytes.HasPrefix(ctx.Host(), wwwPrefix)
	case redirectAddSlash:
		return len(path) > 0 && path[len(path)-1] != '/'
	case redirectRemoveSlash:
		return len(path) > 1 && path[len(path)-1] == '/'
	}
	return true
}

// status returns the status code for a request's method.
func (r *redirect) statusFor(method []byte) int {
	if r.status != 0 {
		return r.status
	}
	if bytes.Equal(method, []byte(fasthttp.MethodGet)) || bytes.Equal(method, []byte(fasthttp.MethodHead)) {
		return fasthttp.StatusMovedPermanently
	}
	return fasthttp.StatusPermanentRedirect
}

// location appends the redirect target for the request to dst.
func (r *redirect) location(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	// The normalised path (the one the route matched), percent-encoded
	// again: never the raw one, where "//evil.example" would become a
	// redirect to another host.
	uri := ctx.URI()
	requestURI := uri.RequestURI()
	path := requestURI
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	query := uri.QueryString()
	host := ctx.Host()
	scheme := schemeOf(ctx)
	appendQuery := !r.dropQuery

	switch r.kind {
	case redirectHTTPS:
		dst = append(dst, "https://"...)
		dst = append(dst, hostWithoutPort(host)...)
		dst = append(dst, path...)
	case redirectAddWWW:
		dst = append(dst, scheme...)
		dst = append(dst, "://www."...)
		dst = append(dst, host...)
		dst = append(dst, path...)
	case redirectRemoveWWW:
		dst = append(dst, scheme...)
		dst = append(dst, "://"...)
		dst = append(dst, host[len(wwwPrefix):]...)
		dst = append(dst, path...)
	case redirectAddSlash:
		dst = append(dst, path...)
		dst = append(dst, '/')
	case redirectRemoveSlash:
		dst = append(dst, bytes.TrimRight(path, "/")...)
		if len(dst) == 0 {
			dst = append(dst, '/')
		}
	case redirectPrefix:
		dst = append(dst, r.newPrefix...)
		dst = append(dst, bytes.TrimPrefix(path, r.oldPrefix)...)
	default:
		start := len(dst)
		for _, part := range r.template {
			switch part.Var {
			case config.PlaceholderNone:
				dst = append(dst, part.Literal...)
			case config.PlaceholderScheme:
				dst = append(dst, scheme...)
			case config.PlaceholderHost:
				dst = append(dst, host...)
			case config.PlaceholderHostname:
				dst = append(dst, hostWithoutPort(host)...)
			case config.PlaceholderPath:
				dst = append(dst, path...)
			case config.PlaceholderQuery:
				dst = append(dst, query...)
			case config.PlaceholderURI:
				dst = append(dst, requestURI...)
			case config.PlaceholderRest:
				dst = append(dst, bytes.TrimPrefix(path, r.oldPrefix)...)
			}
		}
		if !r.appendQuery {
			return dst
		}
		if appendQuery && len(query) > 0 {
			if bytes.IndexByte(dst[start:], '?') >= 0 {
				dst = append(dst, '&')
			} else {
				dst = append(dst, '?')
			}
			dst = append(dst, query...)
		}
		return dst
	}
	if appendQuery && len(query) > 0 {
		dst = append(dst, '?')
		dst = append(dst, query...)
	}
	return dst
}

func hostWithoutPort(host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.IndexByte(host, ']'); i > 0 {
			return host[:i+1]
		}
		return host
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		return host[:i]
	}
	return host
}

func schemeOf(ctx *fasthttp.RequestCtx) string {
	if ctx.IsTLS() {
		return "https"
	}
	return "http"
}
