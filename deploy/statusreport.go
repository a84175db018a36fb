package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// StatusReport is what status prints: the node's Status (the
// fields of the agent's /v1/status, unchanged) plus the releases
// directory and each release's role and size.
type StatusReport struct {
	Status
	// ReleasesDir is the directory of the complete releases.
	ReleasesDir string `json:"releases_dir"`
	// Releases, newest first, replace Status.Releases (same fields, and
	// more).
	Releases []StatusRelease `json:"releases"`
}

// StatusRelease is one release of StatusReport.
type StatusRelease struct {
	ReleaseInfo
	// Role is "current" (what current points to), "previous" (what a
	// rollback returns to) or empty.
	Role string `json:"role,omitempty"`
	// SizeBytes is the size of the release's files (links not followed);
	// absent for a failed release, which has no directory, or when it
	// could not be measured within the time budget.
	SizeBytes *int64 `json:"size_bytes,omitempty"`
}

// ReadStatusReport reads n's status and measures its releases, newest first,
// for up to budget in all.
func ReadStatusReport(n *Node, budget time.Duration) (StatusReport, error) {
	st, err := n.Status()
	if err != nil {
		return StatusReport{}, err
	}
	rep := StatusReport{Status: st, ReleasesDir: n.ReleasesDir(), Releases: []StatusRelease{}}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	for _, r := range st.Releases {
		sr := StatusRelease{ReleaseInfo: r}
		switch r.ID {
		case st.Current:
			sr.Role = "current"
		case st.Previous:
			sr.Role = "previous"
		}
		if r.Status != StatusFailed && ctx.Err() == nil {
			if size, err := n.ReleaseSize(ctx, r.ID); err == nil {
				sr.SizeBytes = &size
			}
		}
		rep.Releases = append(rep.Releases, sr)
	}
	return rep, nil
}

// WriteTable prints the report for people: the root, the releases
// directory, where current points, the previous release, the lock and
// the free disk; then a table of the releases (RELEASE, STATE, CREATED
// as an age and a time, ACTIVATED, SIZE, SOURCE) and the last journal
// entries. Ages are relative to now.
func (r StatusReport) WriteTable(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	orNone := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	}
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return ageString(now.Sub(t))
	}
	fmt.Fprintf(tw, "root:\t%s\n", r.Root)
	fmt.Fprintf(tw, "releases:\t%s (%s)\n", r.ReleasesDir, plural(len(r.Releases), "release"))
	switch {
	case r.Current != "":
		fmt.Fprintf(tw, "current:\t%s (current -> %s)\n", r.Current, r.CurrentRaw)
	case r.CurrentRaw != "":
		fmt.Fprintf(tw, "current:\t- (current -> %s, not a release)\n", r.CurrentRaw)
	default:
		fmt.Fprintf(tw, "current:\t- (no current link)\n")
	}
	if r.Previous != "" {
		fmt.Fprintf(tw, "previous:\t%s (what rollback returns to)\n", r.Previous)
	} else {
		fmt.Fprintf(tw, "previous:\t- (nothing to roll back to)\n")
	}
	lock := "free"
	if r.LockHolder != "" {
		lock = "held by " + r.LockHolder
	}
	fmt.Fprintf(tw, "lock:\t%s\n", lock)
	fmt.Fprintf(tw, "free disk:\t%s\n", humanBytes(r.FreeBytes))
	for _, w := range r.Warnings {
		fmt.Fprintf(tw, "warning:\t%s\n", w)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "RELEASE\tSTATE\tCREATED\t\tACTIVATED\tSIZE\tSOURCE")
	for _, rel := range r.Releases {
		state := rel.Status
		if rel.Role != "" {
			state += " (" + rel.Role + ")"
		}
		size := "?"
		switch {
		case rel.SizeBytes != nil:
			size = humanBytes(*rel.SizeBytes)
		case rel.Status == StatusFailed:
			size = "-"
		}
		src := rel.Source
		if rel.Status == StatusFailed && rel.Error != "" {
			src = rel.Error
		}
		src = strings.Join(strings.Fields(src), " ")
		if len(src) > 80 {
			src = src[:80] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rel.ID, state, ago(rel.PreparedAt), ts(rel.PreparedAt), ago(rel.ActivatedAt), size, orNone(src))
	}
	if len(r.Releases) == 0 {
		fmt.Fprintln(tw, "(no releases)")
	}
	if len(r.Journal) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "TIME\tOP\tRELEASE\tRESULT\tMESSAGE")
		for _, e := range r.Journal {
			msg := strings.Join(strings.Fields(e.Message), " ")
			if len(msg) > 120 {
				msg = msg[:120] + "…"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ts(e.Time), e.Op, orNone(e.Release), e.Result, msg)
		}
	}
	return tw.Flush()
}

// ageString formats how long ago something happened: "42s ago", "5m
// ago", "3h ago" (up to two days), "12d ago".
func ageString(d time.Duration) string {
	switch {
	case d < -time.Minute:
		return "in the future" // the clocks disagree
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(int(d/time.Second), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// plural returns "1 release", "3 releases".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
