package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// lockHolder is what .deploy/lock.holder records about the lock's owner.
type lockHolder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
	Host    string    `json:"host,omitempty"`
}

func (h lockHolder) String() string {
	s := fmt.Sprintf("pid %d running %q since %s", h.PID, h.Command, h.Started.UTC().Format(time.RFC3339))
	if h.Host != "" {
		s += " on " + h.Host
	}
	return s
}

// nodeLock is a held flock on .deploy/lock. The kernel releases it when
// the process dies, so a crash never leaves a stale lock.
type nodeLock struct {
	n *Node
	f *os.File
}

// acquireLock takes the node's lock without waiting. When another
// operation holds it, the error wraps ErrBusy and names the holder.
func (n *Node) acquireLock(command string) (*nodeLock, error) {
	f, err := os.OpenFile(n.lockPath(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := n.lockHolderText()
			if holder == "" {
				holder = "an unknown holder"
			}
			return nil, fmt.Errorf("%w: %s holds %s", ErrBusy, holder, n.lockPath())
		}
		return nil, fmt.Errorf("locking %s: %w", n.lockPath(), err)
	}
	host, _ := os.Hostname()
	h := lockHolder{PID: os.Getpid(), Command: command, Started: time.Now().UTC(), Host: host}
	data, _ := json.Marshal(h)
	// The holder file is advisory (for messages); a failure to write it
	// does not stop the operation.
	_ = writeFileAtomicNoSync(n.holderPath(), n.tmpDir(), append(data, '\n'))
	return &nodeLock{n: n, f: f}, nil
}

// release forgets the holder and drops the lock.
func (l *nodeLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = os.Remove(l.n.holderPath())
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// readLockHolder returns the recorded holder, if any.
func (n *Node) readLockHolder() (lockHolder, bool) {
	data, err := os.ReadFile(n.holderPath())
	if err != nil {
		return lockHolder{}, false
	}
	var h lockHolder
	if json.Unmarshal(data, &h) != nil || h.PID <= 0 {
		return lockHolder{}, false
	}
	return h, true
}

// lockHolderText describes the recorded holder when its process is still
// alive; a holder file left by a killed process reads as "".
func (n *Node) lockHolderText() string {
	h, ok := n.readLockHolder()
	if !ok || !processAlive(h.PID) {
		return ""
	}
	return h.String()
}

// processAlive reports whether pid is a running (not zombie) process.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// writeFileAtomicNoSync replaces path through a temporary file and a
// rename, without fsync (for advisory files).
func writeFileAtomicNoSync(path, tmpDir string, data []byte) error {
	f, err := os.CreateTemp(tmpDir, ".holder.*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// beginOperation starts a changing operation: it takes the node's lock
// (naming the command for anyone who finds it busy), recovers what an
// interrupted operation left behind, and loads the state. The caller must
// release the lock.
func (n *Node) beginOperation(command string, o Options) (*nodeLock, *stateDoc, error) {
	l, err := n.acquireLock(command)
	if err != nil {
		return nil, nil, err
	}
	if _, err := n.recoverLocked(o); err != nil {
		l.release()
		return nil, nil, err
	}
	st, err := n.loadState()
	if err != nil {
		l.release()
		return nil, nil, err
	}
	return l, st, nil
}
