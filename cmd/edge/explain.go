package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/router"
)

// headerList collects repeated -H flags.
type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

const explainUsage = `usage: edge explain [-config FILE | -admin ADDR [-token T]] [-X METHOD] [-H 'Name: value']... [-client IP] [-json] URL

Says what edge does with a request to URL: the request as routed, the route
that takes it and why every other route does not, the pool and the node it
goes to, the cache entry that may answer it, or the error edge answers with.
Without -admin it evaluates FILE alone (node health unknown, cache empty);
with -admin it asks a running edge (real health and cache). Nothing is sent
to any node. Exit status: 0 when the request is served, 1 when edge answers
it with its own error (no route, bad path, access denied…), 2 on usage or
configuration errors.

`

// cmdExplain is `edge explain`.
func cmdExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "edge.yaml", "configuration file, evaluated offline when -admin is not given")
	admin := fs.String("admin", "", "admin `address` of a running edge to ask instead of reading -config")
	token := fs.String("token", os.Getenv("EDGE_ADMIN_TOKEN"), "admin bearer token (default $EDGE_ADMIN_TOKEN)")
	method := fs.String("X", "GET", "request `method`")
	var headers headerList
	fs.Var(&headers, "H", "request `field` as 'Name: value' (repeatable)")
	client := fs.String("client", "", "client `IP` address (default 192.0.2.1, a client on the internet)")
	asJSON := fs.Bool("json", false, "print the explanation as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), explainUsage)
		fs.PrintDefaults()
	}
	// Flags may come before or after the URL.
	var urls []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		urls = append(urls, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(urls) != 1 {
		fmt.Fprintf(stderr, "edge explain: want one URL, got %d\n", len(urls))
		fs.Usage()
		return 2
	}
	in := router.ExplainInput{Method: strings.ToUpper(*method), URL: urls[0], Headers: headers}
	if *client != "" {
		a, err := netip.ParseAddr(*client)
		if err != nil {
			fmt.Fprintf(stderr, "edge explain: -client %q is not an IP address\n", *client)
			return 2
		}
		in.Client = a
	}

	var e router.Explanation
	var err error
	if *admin != "" {
		e, err = explainRemote(*admin, *token, in)
	} else {
		var cfg *config.Config
		if cfg, err = config.Load(*path); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		e, err = router.ExplainOffline(cfg, in)
	}
	if err != nil {
		fmt.Fprintln(stderr, "edge explain:", err)
		return 2
	}
	if *asJSON {
		b, _ := json.MarshalIndent(e, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		writeExplanation(stdout, &e)
	}
	if e.Error != "" {
		return 1
	}
	return 0
}

// explainRemote asks a running edge's admin API for the explanation.
func explainRemote(admin, token string, in router.ExplainInput) (router.Explanation, error) {
	q := url.Values{"url": {in.URL}, "method": {in.Method}}
	for _, h := range in.Headers {
		q.Add("header", h)
	}
	if in.Client.IsValid() {
		q.Set("client", in.Client.String())
	}
	var e router.Explanation
	body, err := adminGet(admin, token, "/explain?"+q.Encode())
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("reading the admin API's answer: %w", err)
	}
	return e, nil
}

// adminGet GETs path from a running edge's admin API and returns the
// body of a 200 answer; any other answer is an error carrying its body.
func adminGet(admin, token, path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the admin API's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var je struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &je) == nil && je.Error != "" {
			msg = je.Error
		}
		return nil, fmt.Errorf("admin API answered %s: %s", resp.Status, msg)
	}
	return body, nil
}

// writeExplanation prints an explanation for people: one section per
// step, keys aligned.
func writeExplanation(w io.Writer, e *router.Explanation) {
	row := func(k, v string) { fmt.Fprintf(w, "  %-17s %s\n", k, v) }
	rq := e.Request

	fmt.Fprintln(w, "request")
	if rq.Scheme != "" {
		row(rq.Method, rq.Scheme+"://"+rq.HostHeader+rq.Target)
	} else {
		row(rq.Method, rq.Target)
	}
	if rq.Host != "" {
		row("host", rq.Host+"  (routes match this: lower case, no port)")
	}
	if rq.Path != "" {
		p := rq.Path + "  (normalised, as routed)"
		if rq.Forwarded != "" {
			p += "; sent to nodes as " + rq.Forwarded
		}
		row("path", p)
	}
	if rq.Peer != "" {
		c := rq.Peer
		if rq.Client != "" && rq.Client != rq.Peer {
			c = rq.Client + "  (from X-Forwarded-For of trusted proxy " + rq.Peer + ")"
		}
		row("client", c)
	}
	for _, rl := range e.RateLimits {
		if rl.Scope == "server" {
			row("rate limit", describeRate(rl))
		}
	}

	if r := e.Route; r != nil {
		fmt.Fprintln(w, "route")
		if r.Index < 0 {
			row(r.Name, r.Match)
		} else {
			row(fmt.Sprintf("#%d %s", r.Index, r.Name), r.Match)
		}
		switch r.Action {
		case "proxy":
			row("action", "proxy to pool "+r.Pool)
		case "redirect":
			row("action", fmt.Sprintf("redirect %d to %s", e.Status, r.Location))
		case "respond":
			row("action", fmt.Sprintf("respond %d (%d bytes)", e.Status, r.BodyBytes))
		}
		if a := r.Access; a != nil {
			verdict := "allowed"
			if !a.Allowed {
				verdict = "denied"
			}
			var rules []string
			if len(a.Allow) > 0 {
				rules = append(rules, "allow "+strings.Join(a.Allow, ", "))
			}
			if len(a.Deny) > 0 {
				rules = append(rules, "deny "+strings.Join(a.Deny, ", "))
			}
			row("access", strings.Join(rules, "; ")+": client "+a.Client+" "+verdict)
		}
		for _, rl := range e.RateLimits {
			if rl.Scope == "route" {
				row("rate limit", describeRate(rl))
			}
		}
		if len(r.RequestHeaders) > 0 {
			row("request headers", strings.Join(r.RequestHeaders, ", "))
		}
		if len(r.ResponseHeaders) > 0 {
			row("response headers", strings.Join(r.ResponseHeaders, ", "))
		}
	}

	if len(e.NotMatched) > 0 {
		fmt.Fprintln(w, "routes not matched")
		var rows []string
		for _, m := range e.NotMatched {
			rows = append(rows, fmt.Sprintf("#%d\t%s\t%s", m.Index, m.Name, m.Reason))
		}
		writeTable(w, rows)
	}

	if p := e.Pool; p != nil {
		fmt.Fprintf(w, "pool %s  (%s, all_down: %s)\n", p.Name, p.Policy, p.AllDown)
		if p.Hash != "" {
			row("hash key", p.Hash)
		}
		if p.Chosen != "" {
			row("chosen", p.Chosen+" "+p.ChosenAddress)
		} else {
			row("chosen", "none")
		}
		row("why", p.Choice)
		rows := []string{"NODE\tADDRESS\tSTATE\tHEALTH\tWEIGHT\tIN FLIGHT\tNOTE"}
		for _, n := range p.Nodes {
			var note []string
			if n.Backup {
				note = append(note, "backup")
			}
			if !n.Available {
				note = append(note, "not available")
			}
			if n.Reason != "" {
				note = append(note, n.Reason)
			}
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%d\t%s", n.Name, n.Address, n.State, n.Health, n.Weight, n.InFlight, strings.Join(note, "; ")))
		}
		writeTable(w, rows)
	}

	if c := e.Cache; c != nil {
		fmt.Fprintln(w, "cache")
		if c.Key != "" {
			row("key", c.Key)
		}
		if len(c.VaryOn) > 0 {
			row("key varies on", strings.Join(c.VaryOn, ", "))
		}
		if c.Key != "" {
			stored := "no"
			if en := c.Entry; en != nil {
				fresh := fmt.Sprintf("fresh for %ds more", en.TTLSeconds)
				if en.Stale {
					fresh = fmt.Sprintf("stale for %ds", -en.TTLSeconds)
				}
				stored = fmt.Sprintf("yes: status %d, age %ds, %s, %d bytes", en.Status, en.AgeSeconds, fresh, en.Bytes)
				if en.SoftPurged {
					stored += ", soft-purged"
				}
				if len(en.Vary) > 0 {
					stored += ", variant for " + strings.Join(en.Vary, ", ")
				}
			} else if c.Variants > 0 {
				stored = fmt.Sprintf("no (%d other variant(s) under the key)", c.Variants)
			}
			row("stored", stored)
		}
		a := c.Answer
		if c.Detail != "" {
			a += ": " + c.Detail
		}
		row("answer", a)
	}

	fmt.Fprintln(w, "result")
	res := e.Detail
	switch {
	case e.Error != "":
		res = fmt.Sprintf("%d %s: %s", e.Status, e.Error, e.Detail)
	case res == "":
		res = e.Outcome
	}
	fmt.Fprintln(w, "  "+res)
	if len(e.Notes) > 0 {
		fmt.Fprintln(w, "notes")
		for _, n := range e.Notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
}

// writeTable writes tab-separated rows in aligned columns, indented by
// two spaces, without trailing blanks.
func writeTable(w io.Writer, rows []string) {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, r)
	}
	tw.Flush()
	for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		fmt.Fprintln(w, "  "+strings.TrimRight(line, " "))
	}
}

func describeRate(rl router.ExplainedRateLimit) string {
	return fmt.Sprintf("%s: %g/s, burst %d, per %s (not evaluated: explaining takes no token)", rl.Scope, rl.RequestsPerSecond, rl.Burst, rl.Key)
}
