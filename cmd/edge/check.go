package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/router"
)

// cmdCheck is `edge check`: validate the file, print every problem or a
// summary of what the configuration does, and with -admin what reloading
// it would change in a running edge.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "edge.yaml", "configuration file")
	admin := fs.String("admin", "", "admin `address` of a running edge: also print how the file differs from its configuration")
	token := fs.String("token", os.Getenv("EDGE_ADMIN_TOKEN"), "admin bearer token (default $EDGE_ADMIN_TOKEN)")
	quiet := fs.Bool("q", false, "print only the verdict, not the summary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edge check: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: configuration ok (%d listeners, %d upstreams, %d routes)\n",
		*path, len(cfg.Listeners), len(cfg.Upstreams), len(cfg.Routes))
	if !*quiet {
		fmt.Fprintln(stdout)
		writeSummary(stdout, cfg)
	}
	if *admin == "" {
		return 0
	}
	lines, err := diffRunning(cfg, *admin, *token)
	if err != nil {
		fmt.Fprintln(stderr, "edge check:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\ndifferences from the running configuration (%s → %s)\n", *admin, *path)
	if len(lines) == 0 {
		fmt.Fprintln(stdout, "  no differences")
	}
	for _, l := range lines {
		fmt.Fprintln(stdout, "  "+l)
	}
	return 0
}

// writeSummary prints what a configuration does: listeners, routes in
// order, upstreams, cache, TLS and admin, in aligned columns.
func writeSummary(w io.Writer, cfg *config.Config) {
	table := func(title string, header string, rows [][]string) {
		fmt.Fprintln(w, title)
		lines := []string{header}
		for _, r := range rows {
			lines = append(lines, strings.Join(r, "\t"))
		}
		writeTable(w, lines)
	}

	var rows [][]string
	for _, l := range cfg.Listeners {
		kind := "http"
		if l.TLS {
			kind = "https"
		}
		if l.ProxyProtocol != nil {
			kind += ", PROXY protocol from " + strings.Join(l.ProxyProtocol.From, ", ")
		}
		rows = append(rows, []string{l.Name, l.Address, kind})
	}
	table("listeners", "NAME\tADDRESS\tKIND", rows)

	rows = nil
	for i, r := range cfg.Routes {
		rows = append(rows, []string{"#" + strconv.Itoa(i), r.Name, router.DescribeMatch(&r.Match), "→ " + describeAction(r)})
	}
	table("routes (the first that matches takes the request)", "#\tNAME\tMATCH\tACTION", rows)

	rows = nil
	for _, name := range sortedNames(cfg.Upstreams) {
		up := cfg.Upstreams[name]
		var nodes []string
		for _, n := range up.Nodes {
			s := n.Name
			if n.Name != n.Address {
				s += " " + n.Address
			}
			if n.Weight != 1 {
				s += " w" + strconv.Itoa(n.Weight)
			}
			if n.Backup {
				s += " (backup)"
			}
			nodes = append(nodes, s)
		}
		if d := up.Discovery.DNS; d != nil {
			nodes = append(nodes, fmt.Sprintf("DNS %s %s", d.Type, d.Name))
		}
		policy := up.Policy
		if up.Policy == config.PolicyConsistentHash {
			policy += " on " + up.Hash.Source
			if up.Hash.Name != "" {
				policy += " " + up.Hash.Name
			}
		}
		check := "none"
		if hc := up.HealthCheck; hc.Path != "" {
			check = fmt.Sprintf("%s %s every %s", hc.Method, hc.Path, hc.Interval)
		}
		rows = append(rows, []string{name, policy, check, strings.Join(nodes, ", ")})
	}
	table("upstreams", "NAME\tPOLICY\tHEALTH CHECK\tNODES", rows)

	fmt.Fprintln(w, "cache")
	var cached []string
	for _, r := range cfg.Routes {
		if r.Cache != nil {
			s := r.Name
			if r.Cache.DefaultTTL > 0 {
				s += " (default ttl " + r.Cache.DefaultTTL.String() + ")"
			}
			cached = append(cached, s)
		}
	}
	if len(cached) == 0 {
		fmt.Fprintln(w, "  no route caches")
	} else {
		fmt.Fprintf(w, "  %s shared, objects up to %s; cached routes: %s\n", cfg.Cache.Size, cfg.Cache.MaxObjectSize, strings.Join(cached, ", "))
	}

	fmt.Fprintln(w, "tls")
	t := cfg.TLS
	if len(t.Certificates) == 0 && t.ACME == nil {
		fmt.Fprintln(w, "  no certificates")
	}
	for _, c := range t.Certificates {
		fmt.Fprintf(w, "  certificate %s: %s\n", c.Cert, strings.Join(c.Names, ", "))
	}
	if a := t.ACME; a != nil {
		fmt.Fprintf(w, "  acme %s (%s): %s\n", a.CA, strings.Join(a.Challenges, ", "), strings.Join(cfg.ManagedNames(), ", "))
		if a.OnDemand {
			fmt.Fprintln(w, "  acme on demand for names under route wildcards")
		}
	}
	if t.RedirectHTTP {
		fmt.Fprintln(w, "  plain-HTTP requests are redirected to HTTPS before any route")
	}
	if t.HSTS.MaxAge > 0 {
		fmt.Fprintf(w, "  HSTS max-age %s\n", t.HSTS.MaxAge)
	}

	fmt.Fprintln(w, "admin")
	if cfg.Admin.Address == "off" {
		fmt.Fprintln(w, "  off")
	} else {
		auth := "no token (loopback and IP addresses only)"
		if cfg.Admin.Token != "" {
			auth = "token required"
		}
		fmt.Fprintf(w, "  %s, %s\n", cfg.Admin.Address, auth)
	}
}

// describeAction says what a route does, with its extras.
func describeAction(r *config.Route) string {
	var s string
	switch {
	case r.Proxy != "":
		s = "proxy " + r.Proxy
	case r.Redirect != nil:
		rd := r.Redirect
		switch {
		case rd.HTTPS:
			s = "redirect to https"
		case rd.WWW != "":
			s = "redirect: " + rd.WWW + " www."
		case rd.TrailingSlash != "":
			s = "redirect: " + rd.TrailingSlash + " trailing slash"
		case rd.Prefix != "":
			s = "redirect prefix to " + rd.Prefix
		default:
			s = "redirect to " + rd.To
		}
		if rd.Status != 0 {
			s += " (" + strconv.Itoa(rd.Status) + ")"
		}
	case r.Respond != nil:
		s = fmt.Sprintf("respond %d", r.Respond.Status)
	}
	var extras []string
	if r.Cache != nil {
		extras = append(extras, "cache")
	}
	if r.Access != nil {
		extras = append(extras, "access list")
	}
	if r.RateLimit != nil {
		extras = append(extras, fmt.Sprintf("rate limit %g/s", r.RateLimit.RequestsPerSecond))
	}
	if len(extras) > 0 {
		s += "  [" + strings.Join(extras, ", ") + "]"
	}
	return s
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// diffRunning compares cfg with the configuration a running edge serves
// (GET /config), both redacted the same way, and returns the differences
// (running → file) by field path.
func diffRunning(cfg *config.Config, admin, token string) ([]string, error) {
	body, err := adminGet(admin, token, "/config")
	if err != nil {
		return nil, fmt.Errorf("fetching the running configuration: %w", err)
	}
	var running map[string]any
	if err := json.Unmarshal(body, &running); err != nil {
		return nil, fmt.Errorf("reading the running configuration: %w", err)
	}
	file, err := router.RedactedConfig(cfg)
	if err != nil {
		return nil, err
	}
	var out []string
	diffValue(&out, "", running, file)
	return out, nil
}

// diffValue appends the differences between old and new (generic JSON
// values) under path: "~ path: old → new" for a changed value, "+ path:
// new" for one only in new, "- path" for one only in old. Lists of
// objects that all carry distinct names (routes, nodes, listeners) are
// compared by name, so that inserting one does not show every later one
// as changed; a change of their order is reported on its own.
func diffValue(out *[]string, path string, old, new any) {
	switch {
	case old == nil && new == nil:
		return
	case old == nil:
		*out = append(*out, fmt.Sprintf("+ %s: %s", path, compact(prune(new))))
		return
	case new == nil:
		*out = append(*out, "- "+path)
		return
	}
	switch o := old.(type) {
	case map[string]any:
		n, ok := new.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range o {
			keys[k] = true
		}
		for k := range n {
			keys[k] = true
		}
		for _, k := range sortedNames(keys) {
			diffValue(out, joinPath(path, k), o[k], n[k])
		}
		return
	case []any:
		n, ok := new.([]any)
		if !ok {
			break
		}
		diffList(out, path, o, n)
		return
	}
	if !reflect.DeepEqual(old, new) {
		*out = append(*out, fmt.Sprintf("~ %s: %s → %s", path, compact(old), compact(new)))
	}
}

// diffList compares two lists, by name when every element of both is an
// object with a distinct non-empty name, else by position. Paths use
// positions: the file's for changes and additions, the running one's for
// removals.
func diffList(out *[]string, path string, old, new []any) {
	on, okOld := listNames(old)
	nn, okNew := listNames(new)
	if !okOld || !okNew {
		for i := range max(len(old), len(new)) {
			var o, n any
			if i < len(old) {
				o = old[i]
			}
			if i < len(new) {
				n = new[i]
			}
			diffValue(out, fmt.Sprintf("%s[%d]", path, i), o, n)
		}
		return
	}
	oldAt := map[string]int{}
	for i, name := range on {
		oldAt[name] = i
	}
	newAt := map[string]int{}
	for i, name := range nn {
		newAt[name] = i
	}
	var keptOld, keptNew []string
	for _, name := range on {
		if _, ok := newAt[name]; ok {
			keptOld = append(keptOld, name)
		}
	}
	for j, name := range nn {
		p := fmt.Sprintf("%s[%d]", path, j)
		i, ok := oldAt[name]
		if !ok {
			*out = append(*out, fmt.Sprintf("+ %s (%s): %s", p, name, compact(prune(new[j]))))
			continue
		}
		keptNew = append(keptNew, name)
		diffValue(out, p, old[i], new[j])
	}
	for i, name := range on {
		if _, ok := newAt[name]; !ok {
			*out = append(*out, fmt.Sprintf("- %s[%d] (%s)", path, i, name))
		}
	}
	if !slices.Equal(keptOld, keptNew) {
		*out = append(*out, fmt.Sprintf("~ %s order: %s → %s", path, strings.Join(keptOld, ", "), strings.Join(keptNew, ", ")))
	}
}

// listNames returns the "name" of every element of l, and whether they
// are all objects with distinct non-empty names.
func listNames(l []any) ([]string, bool) {
	names := make([]string, len(l))
	seen := map[string]bool{}
	for i, x := range l {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, false
		}
		name, _ := m["name"].(string)
		if name == "" || seen[name] {
			return nil, false
		}
		seen[name] = true
		names[i] = name
	}
	return names, len(l) > 0
}

// joinPath appends a map key to a field path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// prune leaves out of an added value what says nothing: null, empty
// strings, lists and objects, and false.
func prune(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if x = prune(x); x != nil {
				out[k] = x
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(v) == 0 {
			return nil
		}
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = prune(x)
		}
		return out
	case string:
		if v == "" {
			return nil
		}
	case bool:
		if !v {
			return nil
		}
	}
	return v
}

// compact is v as one line of JSON.
func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
