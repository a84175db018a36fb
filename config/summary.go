package config

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/edge-router/edge/internal/texttable"
)

// WriteSummary writes what the configuration does, for people, as
// `edge check` prints it: listeners, routes in the order they are tried,
// upstreams, cache, TLS and admin, each a titled section of aligned
// columns indented by two spaces, no line with trailing blanks.
//
// c must be a validated configuration (from Load, or after Validate):
// WriteSummary reads the defaults and derived fields validation sets. It
// only reads c, so it may run concurrently with other readers of c, but
// not with code that modifies it. The text is built in memory and written
// to w in one Write, whose error WriteSummary returns.
func (c *Config) WriteSummary(w io.Writer) error {
	var b bytes.Buffer
	c.writeSummary(&b)
	_, err := w.Write(b.Bytes())
	return err
}

// writeSummary is WriteSummary into a buffer.
func (c *Config) writeSummary(w *bytes.Buffer) {
	table := func(title string, header string, rows [][]string) {
		fmt.Fprintln(w, title)
		lines := []string{header}
		for _, r := range rows {
			lines = append(lines, strings.Join(r, "\t"))
		}
		texttable.Write(w, lines)
	}

	var rows [][]string
	for _, l := range c.Listeners {
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
	for i, r := range c.Routes {
		rows = append(rows, []string{"#" + strconv.Itoa(i), r.Name, r.Match.Describe(), "→ " + r.describeAction()})
	}
	table("routes (the first that matches takes the request)", "#\tNAME\tMATCH\tACTION", rows)

	rows = nil
	for _, name := range slices.Sorted(maps.Keys(c.Upstreams)) {
		up := c.Upstreams[name]
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
		if up.Policy == PolicyConsistentHash {
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
	for _, r := range c.Routes {
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
		fmt.Fprintf(w, "  %s shared, objects up to %s; cached routes: %s\n", c.Cache.Size, c.Cache.MaxObjectSize, strings.Join(cached, ", "))
	}

	fmt.Fprintln(w, "tls")
	t := c.TLS
	if len(t.Certificates) == 0 && t.ACME == nil {
		fmt.Fprintln(w, "  no certificates")
	}
	for _, cf := range t.Certificates {
		fmt.Fprintf(w, "  certificate %s: %s\n", cf.Cert, strings.Join(cf.Names, ", "))
	}
	if a := t.ACME; a != nil {
		fmt.Fprintf(w, "  acme %s (%s): %s\n", a.CA, strings.Join(a.Challenges, ", "), strings.Join(c.ManagedNames(), ", "))
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
	if c.Admin.Address == "off" {
		fmt.Fprintln(w, "  off")
	} else {
		auth := "no token (loopback and IP addresses only)"
		if c.Admin.Token != "" {
			auth = "token required"
		}
		fmt.Fprintf(w, "  %s, %s\n", c.Admin.Address, auth)
	}
}

// Describe summarises a route's conditions in one line, such as
// `hosts=example.com,*.example.org path_prefix=/api methods=GET,HEAD
// header=X-Beta:1`; "any request" when there are none. It is the MATCH
// column of `edge check` and the match an explanation shows. Read-only.
func (m *Match) Describe() string {
	var parts []string
	if len(m.Hosts) > 0 {
		parts = append(parts, "hosts="+strings.Join(m.Hosts, ","))
	}
	switch {
	case m.Path != "":
		parts = append(parts, "path="+m.Path)
	case m.PathPrefix != "":
		parts = append(parts, "path_prefix="+m.PathPrefix)
	case m.PathRegex != "":
		parts = append(parts, "path_regex="+m.PathRegex)
	}
	if len(m.Methods) > 0 {
		parts = append(parts, "methods="+strings.Join(m.Methods, ","))
	}
	for _, h := range m.Headers {
		if h.Value != "" {
			parts = append(parts, "header="+h.Name+":"+h.Value)
		} else {
			parts = append(parts, "header="+h.Name)
		}
	}
	if len(parts) == 0 {
		return "any request"
	}
	return strings.Join(parts, " ")
}

// describeAction says what a route does (proxy, redirect or respond),
// followed by its extras (cache, access list, rate limit) in brackets.
func (r *Route) describeAction() string {
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
