package router

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// Magento 2 as the origin, as its Varnish VCL expects it: public pages
// tagged with X-Magento-Tags, variants keyed by the X-Magento-Vary cookie,
// and invalidation by PURGE with X-Magento-Tags-Pattern from an allowed
// address.

// magentoPages are the shop's pages and their tags.
var magentoPages = []struct{ path, tags string }{
	{"/product-1.html", "cat_p_1,cat_c_2"},
	{"/product-10.html", "cat_p_10,cat_c_2"},
	{"/product-11.html", "cat_p_11,cat_c_3"},
	{"/category-2.html", "cat_c_2,cat_p_1,cat_p_10"},
	{"/about.html", "cms_p_2,cms_b_5"},
	{"/contact.html", "cms_p_4"},
	{"/cms-block-5-only.html", "cms_b_5"},
}

const magentoConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
cache:
  purge: {allow: ["127.0.0.0/8", "::1"]}
upstreams:
  magento:
    nodes: [{address: "{{.Origin}}", name: web1}]
routes:
  - name: magento
    proxy: magento
    cache:
      strip_set_cookie: true
      key:
        query: sort
        ignore_params: ["@marketing"]
        cookies: [X-Magento-Vary]
`

// magentoOrigin answers like Magento's full-page cache with Varnish as
// the caching application.
func magentoOrigin(r *http.Request, n int) originAnswer {
	vary := "guest"
	if c, err := r.Cookie("X-Magento-Vary"); err == nil {
		vary = c.Value
	}
	body := fmt.Sprintf("%s for %s, render %d", r.URL.Path, vary, n)
	switch {
	case strings.HasPrefix(r.URL.Path, "/checkout"), strings.HasPrefix(r.URL.Path, "/customer"):
		return originAnswer{Header: map[string]string{
			"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
			"Pragma":        "no-cache",
			"Expires":       "Thu, 19 Nov 1981 08:52:00 GMT",
			"Set-Cookie":    "PHPSESSID=s" + strconv.Itoa(n) + "; path=/; HttpOnly",
		}, Body: body}
	case strings.HasPrefix(r.URL.Path, "/wishlist"):
		return originAnswer{Header: map[string]string{"Cache-Control": "private, max-age=86400"}, Body: body}
	}
	for _, p := range magentoPages {
		if p.path == r.URL.Path {
			return originAnswer{Header: map[string]string{
				"Cache-Control":  "public, max-age=86400, s-maxage=86400",
				"Pragma":         "cache",
				"Expires":        httpDate(86400e9),
				"X-Magento-Tags": p.tags,
				"Set-Cookie":     "PHPSESSID=s" + strconv.Itoa(n) + "; path=/; HttpOnly",
			}, Body: body}
		}
	}
	return originAnswer{Status: 404, Header: map[string]string{"Cache-Control": "no-store"}, Body: "not found"}
}

// magentoVariants are the X-Magento-Vary values a page is fetched with
// ("" sends no cookie: a guest).
var magentoVariants = []string{"", "a1b2c3", "d4e5f6"}

func TestMagentoFullPageCache(t *testing.T) {
	o := startOrigin(t, magentoOrigin)
	e := startEdge(t, magentoConfig, map[string]any{"Origin": o.addr})
	env := &cacheEnv{o: o, e: e, c: testClient()}

	// fetch requests a page as a variant and checks what no client may
	// see; it returns the Cache-Status and the body.
	fetch := func(t *testing.T, path, vary string) (string, string) {
		t.Helper()
		hdr := map[string]string{}
		if vary != "" {
			hdr["Cookie"] = "X-Magento-Vary=" + vary + "; PHPSESSID=abc"
		}
		resp, body := env.send(t, "GET", path, hdr)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s (%q): status %d", path, vary, resp.StatusCode)
		}
		if v := resp.Header.Values("X-Magento-Tags"); len(v) > 0 {
			t.Errorf("GET %s (%q): X-Magento-Tags %q reached the client", path, vary, v)
		}
		want := vary
		if want == "" {
			want = "guest"
		}
		if p, _, _ := strings.Cut(path, "?"); !strings.HasPrefix(body, p+" for "+want+",") {
			t.Errorf("GET %s (%q): body %q is another variant's", path, vary, body)
		}
		return resp.Header.Get("Cache-Status"), body
	}
	// expect fetches every page as every variant: a hit for the paths in
	// hits, a miss for the others.
	expect := func(t *testing.T, what string, hits ...string) {
		t.Helper()
		isHit := map[string]bool{}
		for _, h := range hits {
			isHit[h] = true
		}
		for _, p := range magentoPages {
			for _, v := range magentoVariants {
				before := o.count()
				cs, _ := fetch(t, p.path, v)
				hit := strings.HasPrefix(cs, csHit)
				if hit != isHit[p.path] || (o.count() != before) == hit {
					t.Errorf("%s: GET %s (%q): Cache-Status %q, origin requests %d→%d, want hit=%v", what, p.path, v, cs, before, o.count(), isHit[p.path])
				}
			}
		}
	}
	purge := func(t *testing.T, pattern string) {
		t.Helper()
		resp, body := rawExchange(t, e.addr, "PURGE / HTTP/1.1\r\nHost: "+e.addr+"\r\nX-Magento-Tags-Pattern: "+pattern+"\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("PURGE %s: %d %q", pattern, resp.StatusCode, body)
		}
	}
	all := make([]string, len(magentoPages))
	for i, p := range magentoPages {
		all[i] = p.path
	}

	// Every page, as every variant, is rendered once and then cached.
	expect(t, "first visit")
	expect(t, "second visit", all...)
	if got, want := o.count(), len(magentoPages)*len(magentoVariants); got != want {
		t.Fatalf("origin renders after two visits: %d, want %d", got, want)
	}

	// Marketing parameters and parameter order do not make new keys.
	before := o.count()
	if cs, _ := fetch(t, "/product-1.html?utm_source=news&gclid=x1", "a1b2c3"); !strings.HasPrefix(cs, csHit) || o.count() != before {
		t.Errorf("a page with marketing parameters: Cache-Status %q, want the stored page", cs)
	}

	// Saving product 1 and CMS block 5: Magento sends one PURGE with a
	// pattern of their tags. Product 10 and 11 share a prefix, not a tag.
	purge(t, "((^|,)cat_p_1(,|$))|((^|,)cms_b_5(,|$))")
	expect(t, "after purging cat_p_1 and cms_b_5", "/product-10.html", "/product-11.html", "/contact.html")
	expect(t, "after the purge, again", all...)

	// A pattern that is not a list of tags is a regular expression over
	// the stored tags.
	purge(t, "(^|,)cat_p_1[01](,|$)")
	expect(t, "after purging cat_p_1[01]", "/product-1.html", "/about.html", "/contact.html", "/cms-block-5-only.html")
	expect(t, "after the regex purge, again", all...)

	// The admin API purges a URL: every variant of it.
	if status, body := adminDo(t, e, "POST", "/cache/purge?url="+url.QueryEscape("http://"+e.addr+"/product-10.html")); status != 200 {
		t.Fatalf("admin purge: %d %s", status, body)
	}
	var others []string
	for _, p := range all {
		if p != "/product-10.html" {
			others = append(others, p)
		}
	}
	expect(t, "after purging the URL /product-10.html", others...)

	// A full flush.
	purge(t, ".*")
	expect(t, "after the flush")

	// A PURGE from an address outside the allow list, without a token,
	// is refused by the ACL and not routed to Magento: see
	// TestCachePurgeMethod. Here: pages Magento marks uncacheable.
	for _, path := range []string{"/checkout/cart", "/customer/account", "/wishlist"} {
		before := o.count()
		cs1, _ := fetch(t, path, "a1b2c3")
		cs2, _ := fetch(t, path, "a1b2c3")
		if strings.HasPrefix(cs1, csHit) || strings.HasPrefix(cs2, csHit) || o.count() != before+2 {
			t.Errorf("%s is not cacheable: Cache-Status %q, %q, origin requests %d→%d", path, cs1, cs2, before, o.count())
		}
	}

	// Cacheable pages set a session cookie: the visitor whose request
	// rendered the page gets it, visitors served from the cache do not.
	purge(t, "((^|,)cms_p_4(,|$))")
	resp, _ := env.send(t, "GET", "/contact.html", nil)
	if resp.Header.Get("Set-Cookie") == "" {
		t.Errorf("the rendering request lost its Set-Cookie")
	}
	resp, _ = env.send(t, "GET", "/contact.html", nil)
	if !strings.HasPrefix(resp.Header.Get("Cache-Status"), csHit) || len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("a cached page: Cache-Status %q, Set-Cookie %q: want a hit without another visitor's cookie",
			resp.Header.Get("Cache-Status"), resp.Header.Values("Set-Cookie"))
	}
}

func TestMagentoPurgeFromAnotherAddressIsRefused(t *testing.T) {
	o := startOrigin(t, magentoOrigin)
	cfg := strings.Replace(magentoConfig, `["127.0.0.0/8", "::1"]`, `["10.20.30.0/24"]`, 1)
	e := startEdge(t, cfg, map[string]any{"Origin": o.addr})
	env := &cacheEnv{o: o, e: e, c: testClient()}
	runSteps(t, env, []step{
		{path: "/product-1.html", status: 200, origin: 1, cs: csMiss, headers: map[string]string{"X-Magento-Tags": absent}},
		{path: "/product-1.html", status: 200, origin: 1, cs: csHit, headers: map[string]string{"X-Magento-Tags": absent}},
	})
	resp, body := rawExchange(t, e.addr, "PURGE / HTTP/1.1\r\nHost: "+e.addr+"\r\nX-Magento-Tags-Pattern: .*\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 403 {
		t.Errorf("PURGE from outside the allow list: %d %q, want 403", resp.StatusCode, body)
	}
	runSteps(t, env, []step{{path: "/product-1.html", status: 200, origin: 1, cs: csHit}})
}
