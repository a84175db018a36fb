package router

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/edge-router/edge/internal/texttable"
)

// WriteText writes the explanation for people, as `edge explain` prints
// it without -json: one section per step (request, route, routes not
// matched, pool, cache, result, notes), keys and table columns aligned,
// indented by two spaces, no line with trailing blanks. Sections with
// nothing to say are left out.
//
// The text is built in memory and written to w in one Write, whose error
// WriteText returns. It only reads e, so it may run concurrently with
// other readers of e.
func (e *Explanation) WriteText(w io.Writer) error {
	var b bytes.Buffer
	e.writeText(&b)
	_, err := w.Write(b.Bytes())
	return err
}

// writeText is WriteText into a buffer.
func (e *Explanation) writeText(w *bytes.Buffer) {
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
		texttable.Write(w, rows)
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
		texttable.Write(w, rows)
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

// describeRate is a rate limit as an explanation's text shows it; an
// explanation never evaluates one.
func describeRate(rl ExplainedRateLimit) string {
	return fmt.Sprintf("%s: %g/s, burst %d, per %s (not evaluated: explaining takes no token)", rl.Scope, rl.RequestsPerSecond, rl.Burst, rl.Key)
}
