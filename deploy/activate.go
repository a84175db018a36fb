package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Activate makes release id current. It requires a complete release that
// is not marked bad, refuses when current exists and is not a symbolic
// link, then switches atomically: a symbolic link with a random name
// (.current.<random>) is created next to current and renamed over it
// (rename(2) replaces current in one step, so at no moment is current
// missing or pointing at a partial release), and the root is fsynced.
// state.json is then replaced atomically, the switch is journaled and the
// activate hooks run in the release directory. A failing activate hook is
// returned as an error, but the release stays active (roll back to undo).
// Activating the current release again does nothing.
func (n *Node) Activate(ctx context.Context, id string, o Options) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("activating release %s: %w", id, err)
		}
	}()
	if err := checkReleaseID(id); err != nil {
		return err
	}
	l, st, err := n.beginOperation("activate "+id, o)
	if err != nil {
		return err
	}
	defer l.release()
	if err := n.checkActivatable(st, id); err != nil {
		return err
	}
	ci, err := n.readCurrent()
	if err != nil {
		return err
	}
	if ci.exists && !ci.isLink {
		return fmt.Errorf("%w: %s (move it away by hand; it cannot be replaced atomically)", ErrCurrentNotSymlink, n.currentPath())
	}
	if ci.id == id {
		o.printf("release %s is already current; nothing to do", id)
		return nil
	}
	if err := n.switchTo(ctx, o, "activate", st, id, ci.id); err != nil {
		return err
	}
	return nil
}

// checkActivatable refuses an id without a complete release or marked bad.
func (n *Node) checkActivatable(st *stateDoc, id string) error {
	if !n.releaseExists(id) {
		return fmt.Errorf("%w: %s", ErrReleaseNotFound, n.relRoot(n.releaseDir(id)))
	}
	if r := st.Releases[id]; r != nil && r.Status == StatusBad {
		return fmt.Errorf("%w: %s was rolled back from; prepare a new release instead", ErrBadRelease, id)
	}
	return nil
}

// switchTo points current at id (from is the release current resolves to
// now, "" if none), records it in state.json, journals it and runs the
// activate hooks. op ("activate" or "rollback") names the fault steps.
func (n *Node) switchTo(ctx context.Context, o Options, op string, st *stateDoc, id, from string) error {
	linkText := filepath.Join(releasesDirName, id)
	if o.DryRun {
		o.printf("symlink %s<random> -> %s", tempLinkPrefix, linkText)
		o.printf("rename %s<random> -> %s (atomic replace)", tempLinkPrefix, currentName)
		o.printf("fsync %s", n.root)
		o.printf("record %s as current in %s", id, n.relRoot(n.statePath()))
		for i, h := range n.cfg.ActivateHooks {
			_ = n.runHook(ctx, o, hookRun{kind: "activate", hook: h, index: i, dir: n.releaseDir(id), id: id, finalDir: n.releaseDir(id)})
		}
		return nil
	}
	if err := n.replaceCurrent(linkText, op); err != nil {
		return err
	}
	injectFault(op + ":renamed")
	if err := syncDir(n.root); err != nil {
		return err
	}
	now := time.Now().UTC()
	rec := st.rec(id)
	rec.Status = StatusGood
	rec.ActivatedAt = now
	rec.ActivatedSeq = st.next()
	rec.Error = ""
	st.Current = id
	if err := n.saveState(st); err != nil {
		return err
	}
	injectFault(op + ":state-saved")
	msg := "current -> " + linkText
	if from != "" {
		msg += " (was " + from + ")"
	}
	n.journal(o, JournalEntry{Op: op, Release: id, Result: "ok", Message: msg})
	o.printf("%s: current -> %s", op, linkText)
	if err := n.runHooks(ctx, o, "activate", n.cfg.ActivateHooks, n.releaseDir(id), id, n.releaseDir(id)); err != nil {
		n.journal(o, JournalEntry{Op: op, Release: id, Result: "failed", Message: "release is current but an activate hook failed: " + err.Error()})
		return fmt.Errorf("release %s is current but %w", id, err)
	}
	return nil
}

// replaceCurrent atomically points current at linkText (relative to the
// root): symlink to a fresh random name, then rename over current.
func (n *Node) replaceCurrent(linkText, op string) error {
	var tmp string
	for attempt := 0; ; attempt++ {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		tmp = filepath.Join(n.root, tempLinkPrefix+hex.EncodeToString(b[:]))
		err := os.Symlink(linkText, tmp)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 10 {
			return fmt.Errorf("creating the temporary link: %w", err)
		}
	}
	injectFault(op + ":temp-link")
	if err := os.Rename(tmp, n.currentPath()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("renaming %s over %s: %w", filepath.Base(tmp), currentName, err)
	}
	return nil
}
