package cache

import (
	"slices"
	"strings"
	"testing"
)

func TestNewKeyer(t *testing.T) {
	tests := []struct {
		name    string
		opts    KeyOptions
		wantErr string
	}{
		{name: "zero value keeps the query", opts: KeyOptions{}},
		{name: "keep", opts: KeyOptions{Query: "keep", IgnoreParams: []string{"utm_*", "gclid"}}},
		{name: "sort", opts: KeyOptions{Query: "sort"}},
		{name: "ignore", opts: KeyOptions{Query: "ignore"}},
		{name: "unknown mode", opts: KeyOptions{Query: "Sort"}, wantErr: `cache key: unknown query mode "Sort"`},
		{name: "empty parameter", opts: KeyOptions{IgnoreParams: []string{""}}, wantErr: "cache key: empty ignored parameter name"},
		{name: "bare star", opts: KeyOptions{IgnoreParams: []string{"*"}}, wantErr: `cache key: ignored parameter "*" matches every parameter: use query "ignore"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKeyer(tc.opts)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			case tc.wantErr == "" && k == nil:
				t.Fatal("nil Keyer")
			}
		})
	}
}

func TestKeyerAppend(t *testing.T) {
	marketing := []string{"utm_*", "gclid", "fbclid"}
	tests := []struct {
		name                 string
		opts                 KeyOptions
		method, scheme, host string
		target               string
		want                 string
	}{
		{name: "example", method: "GET", scheme: "https", host: "shop.example", target: "/p?a=1&b=2", want: "GET https://shop.example/p?a=1&b=2"},
		{name: "HEAD keys as GET", method: "HEAD", scheme: "https", host: "shop.example", target: "/p", want: "GET https://shop.example/p"},
		{name: "other methods as sent", method: "POST", scheme: "https", host: "shop.example", target: "/p", want: "POST https://shop.example/p"},
		{name: "host and scheme lower-cased", method: "GET", scheme: "HTTPS", host: "Shop.EXAMPLE", target: "/P", want: "GET https://shop.example/P"},
		{name: "default https port removed", method: "GET", scheme: "https", host: "shop.example:443", target: "/", want: "GET https://shop.example/"},
		{name: "default http port removed", method: "GET", scheme: "http", host: "shop.example:80", target: "/", want: "GET http://shop.example/"},
		{name: "other port kept", method: "GET", scheme: "https", host: "shop.example:80", target: "/", want: "GET https://shop.example:80/"},
		{name: "empty port removed", method: "GET", scheme: "http", host: "shop.example:", target: "/", want: "GET http://shop.example/"},
		{name: "trailing dot removed", method: "GET", scheme: "https", host: "shop.example.", target: "/", want: "GET https://shop.example/"},
		{name: "trailing dot before port", method: "GET", scheme: "https", host: "Shop.Example.:8443", target: "/", want: "GET https://shop.example:8443/"},
		{name: "IPv6 with default port", method: "GET", scheme: "https", host: "[::1]:443", target: "/", want: "GET https://[::1]/"},
		{name: "IPv6 without port", method: "GET", scheme: "https", host: "[::1]", target: "/", want: "GET https://[::1]/"},
		{name: "IPv6 with port", method: "GET", scheme: "http", host: "[::1]:8080", target: "/", want: "GET http://[::1]:8080/"},
		{name: "empty path is /", method: "GET", scheme: "http", host: "a", target: "", want: "GET http://a/"},
		{name: "empty path with query", method: "GET", scheme: "http", host: "a", target: "?x=1", want: "GET http://a/?x=1"},
		{name: "path not decoded", method: "GET", scheme: "http", host: "a", target: "/a%2Fb/%7E?q=%20", want: "GET http://a/a%2Fb/%7E?q=%20"},
		{name: "empty query: no ?", method: "GET", scheme: "http", host: "a", target: "/p?", want: "GET http://a/p"},
		{name: "query kept as sent", method: "GET", scheme: "http", host: "a", target: "/p?b=2&a=1&a=0&&c", want: "GET http://a/p?b=2&a=1&a=0&&c"},
		{name: "query sorted stably by name", opts: KeyOptions{Query: "sort"}, method: "GET", scheme: "http", host: "a", target: "/p?b=2&a=1&c&a=0&&ab=3", want: "GET http://a/p?a=1&a=0&ab=3&b=2&c"},
		{name: "sorted empty query", opts: KeyOptions{Query: "sort"}, method: "GET", scheme: "http", host: "a", target: "/p?&&", want: "GET http://a/p"},
		{name: "query ignored", opts: KeyOptions{Query: "ignore"}, method: "GET", scheme: "http", host: "a", target: "/p?b=2", want: "GET http://a/p"},
		{name: "ignored params removed, order kept", opts: KeyOptions{IgnoreParams: marketing}, method: "GET", scheme: "http", host: "a", target: "/p?utm_source=x&b=2&gclid=9&a=1&utm_medium=y", want: "GET http://a/p?b=2&a=1"},
		{name: "empty params dropped when filtering", opts: KeyOptions{IgnoreParams: marketing}, method: "GET", scheme: "http", host: "a", target: "/p?&a=1&&utm_x=2&b&", want: "GET http://a/p?a=1&b"},
		{name: "only ignored params: no ?", opts: KeyOptions{IgnoreParams: marketing}, method: "GET", scheme: "http", host: "a", target: "/p?utm_source=x&fbclid=1", want: "GET http://a/p"},
		{name: "exact name is not a prefix", opts: KeyOptions{IgnoreParams: marketing}, method: "GET", scheme: "http", host: "a", target: "/p?gclid2=1&gclid", want: "GET http://a/p?gclid2=1"},
		{name: "names compared as sent", opts: KeyOptions{IgnoreParams: marketing}, method: "GET", scheme: "http", host: "a", target: "/p?UTM_source=1&utm%5Fsource=2", want: "GET http://a/p?UTM_source=1&utm%5Fsource=2"},
		{name: "sorted and ignored", opts: KeyOptions{Query: "sort", IgnoreParams: marketing}, method: "GET", scheme: "http", host: "a", target: "/p?z=1&utm_x=2&a=3", want: "GET http://a/p?a=3&z=1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKeyer(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := k.Append([]byte("prefix|"), []byte(tc.method), []byte(tc.scheme), []byte(tc.host), []byte(tc.target))
			if string(got) != "prefix|"+tc.want {
				t.Errorf("Append = %q, want %q", got, "prefix|"+tc.want)
			}
		})
	}
}

func TestKeyerSortsManyParams(t *testing.T) {
	k, _ := NewKeyer(KeyOptions{Query: "sort"})
	var q, want []string
	for i := 199; i >= 0; i-- {
		q = append(q, "p"+strings.Repeat("x", i%7)+"="+string(rune('a'+i%26)))
	}
	want = slices.Clone(q)
	slices.SortStableFunc(want, func(a, b string) int {
		return strings.Compare(a[:strings.IndexByte(a, '=')], b[:strings.IndexByte(b, '=')])
	})
	got := k.Append(nil, []byte("GET"), []byte("http"), []byte("a"), []byte("/?"+strings.Join(q, "&")))
	if string(got) != "GET http://a/?"+strings.Join(want, "&") {
		t.Errorf("got %s", got)
	}
}

func TestKeyerAppendAllocatesNothing(t *testing.T) {
	for _, mode := range []string{"keep", "sort", "ignore"} {
		t.Run(mode, func(t *testing.T) {
			k, _ := NewKeyer(KeyOptions{Query: mode, IgnoreParams: []string{"utm_*", "gclid"}})
			dst := make([]byte, 0, 256)
			method, scheme, host := []byte("HEAD"), []byte("https"), []byte("Shop.Example:443")
			target := []byte("/catalog/item.html?z=1&utm_source=a&b=2&gclid=3&a=4")
			if n := testing.AllocsPerRun(1000, func() {
				dst = k.Append(dst[:0], method, scheme, host, target)
			}); n != 0 {
				t.Errorf("%v allocations per call", n)
			}
		})
	}
}

// refKey is a plain restatement of Keyer.Append, to compare against.
func refKey(o KeyOptions, method, scheme, host, target string) string {
	asciiLower := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	if method == "HEAD" {
		method = "GET"
	}
	scheme = asciiLower(scheme)
	name, port, hasPort := host, "", false
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.Contains(host[i:], "]") {
		name, port, hasPort = host[:i], host[i+1:], true
	}
	name = asciiLower(strings.TrimSuffix(name, "."))
	if hasPort && port != "" && !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443") {
		name += ":" + port
	}
	path, query, _ := strings.Cut(target, "?")
	if path == "" {
		path = "/"
	}
	key := method + " " + scheme + "://" + name + path
	if query == "" || o.Query == "ignore" {
		return key
	}
	ignored := func(p string) bool {
		n, _, _ := strings.Cut(p, "=")
		for _, ig := range o.IgnoreParams {
			if base, ok := strings.CutSuffix(ig, "*"); ok && strings.HasPrefix(n, base) || n == ig {
				return true
			}
		}
		return false
	}
	if len(o.IgnoreParams) == 0 && o.Query != "sort" {
		return key + "?" + query
	}
	var kept []string
	for _, p := range strings.Split(query, "&") {
		if !ignored(p) {
			kept = append(kept, p)
		}
	}
	kept = slices.DeleteFunc(kept, func(p string) bool { return p == "" })
	if o.Query == "sort" {
		slices.SortStableFunc(kept, func(a, b string) int {
			na, _, _ := strings.Cut(a, "=")
			nb, _, _ := strings.Cut(b, "=")
			return strings.Compare(na, nb)
		})
	}
	if len(kept) == 0 {
		return key
	}
	return key + "?" + strings.Join(kept, "&")
}

func FuzzKeyerAppend(f *testing.F) {
	f.Add("GET", "https", "Shop.Example.:443", "/p?b=2&a=1&utm_x=3", uint8(0))
	f.Add("HEAD", "http", "[::1]:80", "?&&a", uint8(1))
	f.Add("POST", "HTTP", "a:", "/%2F?x", uint8(2))
	f.Add("GET", "http", "a", "/p?&a&&utm_b&", uint8(3))
	f.Fuzz(func(t *testing.T, method, scheme, host, target string, mode uint8) {
		opts := []KeyOptions{{Query: "keep"}, {Query: "sort"}, {Query: "ignore"}, {Query: "keep", IgnoreParams: []string{"utm_*", "gclid"}}, {Query: "sort", IgnoreParams: []string{"utm_*", "gclid"}}}
		o := opts[int(mode)%len(opts)]
		k, err := NewKeyer(o)
		if err != nil {
			t.Fatal(err)
		}
		in := [][]byte{[]byte(method), []byte(scheme), []byte(host), []byte(target)}
		key := k.Append(nil, in[0], in[1], in[2], in[3])
		if string(in[0]) != method || string(in[1]) != scheme || string(in[2]) != host || string(in[3]) != target {
			t.Fatal("inputs modified")
		}
		if want := refKey(o, method, scheme, host, target); string(key) != want {
			t.Fatalf("Append = %q, reference %q", key, want)
		}
		again := k.Append([]byte("xyz"), in[0], in[1], in[2], in[3])
		if string(again) != "xyz"+string(key) {
			t.Fatalf("Append depends on dst: %q vs %q", again, key)
		}
	})
}
