package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Rollback makes an earlier release current again and marks the release
// it leaves as bad, so no later rollback or activation lands on it. The
// target is to when set (a complete release that is not bad), else the
// most recently activated good release other than current; failed,
// partial (staging) and bad releases are never targets. With no target
// (for example a single release) it returns an error wrapping
// ErrNoRollbackTarget and changes nothing. It returns the release left
// (from) and the one now current (target).
func (n *Node) Rollback(ctx context.Context, to string, o Options) (from, target string, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("rolling back: %w", err)
		}
	}()
	if to != "" {
		if err := checkReleaseID(to); err != nil {
			return "", "", err
		}
	}
	l, st, err := n.beginOperation("rollback "+to, o)
	if err != nil {
		return "", "", err
	}
	defer l.release()
	ci, err := n.readCurrent()
	if err != nil {
		return "", "", err
	}
	if ci.exists && !ci.isLink {
		return "", "", fmt.Errorf("%w: %s", ErrCurrentNotSymlink, n.currentPath())
	}
	from = ci.id
	if from == "" {
		return "", "", fmt.Errorf("%w: no release is current", ErrNoRollbackTarget)
	}
	switch {
	case to == from:
		return "", "", fmt.Errorf("%w: %s is already current", ErrNoRollbackTarget, to)
	case to != "":
		if err := n.checkActivatable(st, to); err != nil {
			return "", "", err
		}
		target = to
	default:
		target = n.lastGood(st, from)
		if target == "" {
			return "", "", fmt.Errorf("%w: no good release other than the current %s (releases that were never activated, failed or were rolled back from do not count)", ErrNoRollbackTarget, from)
		}
	}
	if o.DryRun {
		o.printf("mark %s as bad in %s", from, n.relRoot(n.statePath()))
	} else {
		st.rec(from).Status = StatusBad
		if err := n.saveState(st); err != nil {
			return "", "", err
		}
		n.journal(o, JournalEntry{Op: "rollback", Release: from, Result: "info", Message: "marked bad; rolling back to " + target})
		o.printf("marked %s as bad", from)
	}
	injectFault("rollback:marked-bad")
	if err := n.switchTo(ctx, o, "rollback", st, target, from); err != nil {
		return from, target, err
	}
	return from, target, nil
}

// Cleanup removes old releases, keeping current, the previous good release
// (the rollback target) and the keep most recent good or prepared releases
// (keep <= 0 means Config.Keep). Bad releases do not count toward keep and
// are removed; records of failed prepares are forgotten. A release is
// removed by renaming it to releases/.trash-<id> (so it is never seen half
// deleted), forgetting it in state.json, then deleting the trash; a
// failure to remove one is a warning (on o.Out and in the journal), not an
// error. Recover finishes leftover trash. It returns the removed ids.
func (n *Node) Cleanup(ctx context.Context, keep int, o Options) (removed []string, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("cleaning up: %w", err)
		}
	}()
	if keep <= 0 {
		keep = n.cfg.Keep
	}
	l, st, err := n.beginOperation(fmt.Sprintf("cleanup --keep %d", keep), o)
	if err != nil {
		return nil, err
	}
	defer l.release()
	ci, err := n.readCurrent()
	if err != nil {
		return nil, err
	}
	cur := ci.id
	prev := n.lastGood(st, cur)
	ids, err := n.releaseDirs()
	if err != nil {
		return nil, err
	}
	byRecency(ids, func(id string) int64 { return recencyKey(st, id) })
	var doomed []string
	count := 0
	for _, id := range ids {
		status := StatusPrepared
		if r := st.Releases[id]; r != nil {
			status = r.Status
		}
		switch {
		case id == cur || id == prev:
			if status != StatusBad {
				count++
			}
		case status == StatusBad || status == StatusFailed:
			doomed = append(doomed, id)
		case count < keep:
			count++
		default:
			doomed = append(doomed, id)
		}
	}
	var failed []string
	for id, r := range st.Releases {
		if r.Status == StatusFailed && !n.releaseExists(id) {
			failed = append(failed, id)
		}
	}
	sort.Strings(failed)
	if len(failed) > 0 {
		if o.DryRun {
			o.printf("forget failed prepares in %s: %s", n.relRoot(n.statePath()), strings.Join(failed, ", "))
		} else {
			for _, id := range failed {
				delete(st.Releases, id)
			}
			if err := n.saveState(st); err != nil {
				return nil, err
			}
			n.journal(o, JournalEntry{Op: "cleanup", Result: "ok", Message: "forgot failed prepares: " + strings.Join(failed, ", ")})
		}
	}
	// Oldest first.
	for i, j := 0, len(doomed)-1; i < j; i, j = i+1, j-1 {
		doomed[i], doomed[j] = doomed[j], doomed[i]
	}
	for _, id := range doomed {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		dir, trash := n.releaseDir(id), n.trashDir(id)
		if o.DryRun {
			o.printf("rename %s -> %s", n.relRoot(dir), n.relRoot(trash))
			o.printf("forget %s in %s", id, n.relRoot(n.statePath()))
			o.printf("remove %s", n.relRoot(trash))
			removed = append(removed, id)
			continue
		}
		if err := os.Rename(dir, trash); err != nil {
			n.cleanupWarning(o, id, fmt.Sprintf("renaming to %s: %v", filepath.Base(trash), err))
			continue
		}
		injectFault("cleanup:renamed-to-trash")
		delete(st.Releases, id)
		if err := n.saveState(st); err != nil {
			n.cleanupWarning(o, id, err.Error())
		}
		injectFault("cleanup:state-saved")
		removed = append(removed, id)
		if err := os.RemoveAll(trash); err != nil {
			n.cleanupWarning(o, id, fmt.Sprintf("deleting %s (recover retries): %v", n.relRoot(trash), err))
			continue
		}
		injectFault("cleanup:removed")
		n.journal(o, JournalEntry{Op: "cleanup", Release: id, Result: "ok", Message: "removed"})
		o.printf("removed %s", id)
	}
	if len(doomed) > 0 && !o.DryRun {
		if err := syncDir(n.releasesDir()); err != nil {
			fmt.Fprintf(o.out(), "warning: %v\n", err)
		}
	}
	if len(removed) == 0 {
		o.printf("nothing to remove (keep %d)", keep)
	}
	return removed, nil
}

func (n *Node) cleanupWarning(o Options, id, msg string) {
	fmt.Fprintf(o.out(), "warning: cleanup of %s: %s\n", id, msg)
	n.journal(o, JournalEntry{Op: "cleanup", Release: id, Result: "warning", Message: msg})
}

// recencyKey orders releases: the later of their preparation and last
// activation in state.json's sequence.
func recencyKey(st *stateDoc, id string) int64 {
	r := st.Releases[id]
	if r == nil {
		return 0
	}
	return max(r.PreparedSeq, r.ActivatedSeq)
}

// Recover takes the lock and brings the node back to a clean state after
// a crash (every operation also does this first): it removes stale
// temporary links (.current.*), staging directories (.staging-*) and
// .deploy/tmp files, finishes interrupted deletions (.trash-*), records
// complete releases state.json does not know, forgets records whose
// directory is gone, makes state.json agree with current, and repoints a
// dangling current to the last good release. While the lock is held
// nothing can be in progress, so everything stale is ours to remove. It
// returns what it did (or, with DryRun, would do).
func (n *Node) Recover(o Options) (actions []string, err error) {
	l, err := n.acquireLock("recover")
	if err != nil {
		return nil, fmt.Errorf("recovering: %w", err)
	}
	defer l.release()
	actions, err = n.recoverLocked(o)
	if err != nil {
		return actions, fmt.Errorf("recovering: %w", err)
	}
	if len(actions) == 0 {
		o.printf("recover: nothing to do")
	}
	return actions, nil
}

// recoverLocked is Recover with the lock already held.
func (n *Node) recoverLocked(o Options) (actions []string, err error) {
	act := func(format string, a ...any) {
		s := fmt.Sprintf(format, a...)
		actions = append(actions, s)
		o.printf("recover: %s", s)
	}
	verb := func(done, would string) string {
		if o.DryRun {
			return would
		}
		return done
	}
	// Temporary links next to current.
	ents, err := os.ReadDir(n.root)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempLinkPrefix) {
			p := filepath.Join(n.root, e.Name())
			if !o.DryRun {
				if err := os.Remove(p); err != nil {
					act("cannot remove stale temporary link %s: %v", e.Name(), err)
					continue
				}
			}
			act("%s stale temporary link %s", verb("removed", "would remove"), e.Name())
		}
	}
	// Leftover temporary files.
	if ents, err := os.ReadDir(n.tmpDir()); err == nil {
		for _, e := range ents {
			if !o.DryRun {
				if err := os.RemoveAll(filepath.Join(n.tmpDir(), e.Name())); err != nil {
					act("cannot remove .deploy/tmp/%s: %v", e.Name(), err)
					continue
				}
			}
			act("%s stale temporary file .deploy/tmp/%s", verb("removed", "would remove"), e.Name())
		}
	}
	// Staging and trash directories.
	ents, err = os.ReadDir(n.releasesDir())
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		var what string
		switch {
		case strings.HasPrefix(name, stagingPrefix):
			what = "removed interrupted staging"
		case strings.HasPrefix(name, trashPrefix):
			what = "finished deleting"
		default:
			continue
		}
		p := filepath.Join(n.releasesDir(), name)
		if o.DryRun {
			act("would remove %s/%s", releasesDirName, name)
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			act("cannot remove %s/%s (will retry): %v", releasesDirName, name, err)
			continue
		}
		act("%s %s/%s", what, releasesDirName, name)
	}

	st, err := n.loadState()
	if err != nil {
		return actions, err
	}
	changed := false
	ids, err := n.releaseDirs()
	if err != nil {
		return actions, err
	}
	onDisk := map[string]bool{}
	sort.Strings(ids)
	for _, id := range ids {
		onDisk[id] = true
		if r := st.Releases[id]; r == nil || r.Status == StatusFailed {
			st.Releases[id] = &releaseRec{Status: StatusPrepared, PreparedAt: time.Now().UTC(), PreparedSeq: st.next(), Source: "adopted by recover"}
			changed = true
			act("%s complete but unrecorded release %s as prepared", verb("recorded", "would record"), id)
		}
	}
	var gone []string
	for id, r := range st.Releases {
		if r.Status != StatusFailed && !onDisk[id] {
			gone = append(gone, id)
		}
	}
	sort.Strings(gone)
	for _, id := range gone {
		delete(st.Releases, id)
		if st.Current == id {
			st.Current = ""
		}
		changed = true
		act("%s release %s: its directory is gone", verb("forgot", "would forget"), id)
	}

	ci, err := n.readCurrent()
	if err != nil {
		return actions, err
	}
	everActivated := st.Current != ""
	for _, r := range st.Releases {
		if r.ActivatedSeq > 0 {
			everActivated = true
		}
	}
	switch {
	case ci.exists && !ci.isLink:
		act("warning: %s is not a symbolic link; leaving it (activate refuses until it is moved away)", currentName)
	case ci.isLink && !ci.dangling:
		if st.Current != ci.id {
			r := st.rec(ci.id)
			if r.Status != StatusBad {
				r.Status = StatusGood
			}
			r.ActivatedAt = time.Now().UTC()
			r.ActivatedSeq = st.next()
			act("%s state.json with current (state said %q, current points to %s)", verb("reconciled", "would reconcile"), st.Current, ci.id)
			st.Current = ci.id
			changed = true
		}
	case ci.dangling || (!ci.exists && everActivated):
		target := ""
		if r := st.Releases[st.Current]; r != nil && r.Status == StatusGood && onDisk[st.Current] {
			target = st.Current
		} else {
			target = n.lastGood(st, "")
		}
		was := "missing"
		if ci.dangling {
			was = fmt.Sprintf("dangling (-> %s)", ci.target)
		}
		if target == "" {
			act("warning: %s is %s and no good release exists to point it at", currentName, was)
			break
		}
		if !o.DryRun {
			if err := n.replaceCurrent(filepath.Join(releasesDirName, target), "recover"); err != nil {
				return actions, err
			}
			if err := syncDir(n.root); err != nil {
				return actions, err
			}
			r := st.rec(target)
			r.ActivatedAt = time.Now().UTC()
			r.ActivatedSeq = st.next()
		}
		st.Current = target
		changed = true
		act("%s %s (was %s) to the last good release %s", verb("repointed", "would repoint"), currentName, was, target)
	}
	if changed && !o.DryRun {
		if err := n.saveState(st); err != nil {
			return actions, err
		}
	}
	if len(actions) > 0 && !o.DryRun {
		n.journal(o, JournalEntry{Op: "recover", Result: "ok", Message: strings.Join(actions, "; ")})
	}
	return actions, nil
}

// Status is a node's state: what current is, the releases and the lock.
type Status struct {
	Root       string         `json:"root"`
	Current    string         `json:"current"`                // release current resolves to ("" if none)
	Previous   string         `json:"previous"`               // the release a rollback would return to ("" if none)
	Releases   []ReleaseInfo  `json:"releases"`               // newest first
	LockHolder string         `json:"lock_holder"`            // "" when no live process holds the lock
	FreeBytes  int64          `json:"free_bytes"`             // free space on the root's file system
	Journal    []JournalEntry `json:"journal"`                // the last entries, oldest first
	Warnings   []string       `json:"warnings,omitempty"`     // problems Recover would fix or report
	CurrentRaw string         `json:"current_link,omitempty"` // the text of the current link
}

// ReleaseInfo describes one release.
type ReleaseInfo struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"` // prepared, active, good, bad or failed
	PreparedAt  time.Time `json:"prepared_at,omitzero"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	SHA256      string    `json:"sha256,omitempty"`
	Source      string    `json:"source,omitempty"`
	Error       string    `json:"error,omitempty"` // why a failed prepare failed
}

// statusJournalEntries is how many journal entries Status returns.
const statusJournalEntries = 20

// Status reads the node's state without taking the lock (state.json is
// always replaced atomically, so it is never seen half written).
func (n *Node) Status() (Status, error) {
	s := Status{Root: n.root, Releases: []ReleaseInfo{}, Journal: []JournalEntry{}}
	st, err := n.loadState()
	if err != nil {
		return s, fmt.Errorf("reading status: %w", err)
	}
	ci, err := n.readCurrent()
	if err != nil {
		return s, fmt.Errorf("reading status: %w", err)
	}
	s.Current, s.CurrentRaw = ci.id, ci.target
	switch {
	case ci.exists && !ci.isLink:
		s.Warnings = append(s.Warnings, "current is not a symbolic link")
	case ci.dangling:
		s.Warnings = append(s.Warnings, fmt.Sprintf("current is dangling (-> %s)", ci.target))
	case ci.isLink && st.Current != ci.id:
		s.Warnings = append(s.Warnings, fmt.Sprintf("state.json says current is %q but the link points to %s", st.Current, ci.id))
	}
	s.Previous = n.lastGood(st, s.Current)
	ids, err := n.releaseDirs()
	if err != nil {
		return s, fmt.Errorf("reading status: %w", err)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	for id, r := range st.Releases {
		if r.Status == StatusFailed && !seen[id] {
			ids = append(ids, id)
		}
	}
	byRecency(ids, func(id string) int64 { return recencyKey(st, id) })
	for _, id := range ids {
		info := ReleaseInfo{ID: id, Status: StatusPrepared}
		if r := st.Releases[id]; r != nil {
			info.Status = r.Status
			info.PreparedAt, info.ActivatedAt = r.PreparedAt, r.ActivatedAt
			info.SHA256, info.Source, info.Error = r.SHA256, r.Source, r.Error
		} else {
			s.Warnings = append(s.Warnings, fmt.Sprintf("release %s is not recorded in state.json", id))
		}
		if id == s.Current && info.Status != StatusBad {
			info.Status = StatusActive
		}
		s.Releases = append(s.Releases, info)
	}
	s.LockHolder = n.lockHolderText()
	if free, err := FreeBytes(n.root); err == nil {
		s.FreeBytes = free
	}
	if j, err := n.readJournal(statusJournalEntries); err == nil && j != nil {
		s.Journal = j
	}
	return s, nil
}

// humanBytes formats a byte count with a binary unit.
func humanBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for v := b / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
