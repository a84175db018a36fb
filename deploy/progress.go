package deploy

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Progress display modes of RolloutOptions.Progress and of
// `edge-deploy rollout -progress`.
const (
	// ProgressAuto shows the live table when Out is a terminal and TERM is
	// not "dumb", and plain lines otherwise. The empty string means the
	// same.
	ProgressAuto = "auto"
	// ProgressTTY always shows the live table, redrawn in place with ANSI
	// cursor movement.
	ProgressTTY = "tty"
	// ProgressPlain writes one line per step as it ends (for logs, CI and
	// pipes).
	ProgressPlain = "plain"
)

// validProgress reports whether mode is a known progress mode.
func validProgress(mode string) bool {
	switch mode {
	case "", ProgressAuto, ProgressTTY, ProgressPlain:
		return true
	}
	return false
}

// stepState is the state of one step of one node in the live display.
type stepState uint8

const (
	statePending stepState = iota // not started
	stateRunning                  // started, not ended
	stateOK                       // ended without error
	stateFailed                   // ended with an error
	stateSkipped                  // will not run
)

// progressSetup is how a rollout shows its progress on a writer.
type progressSetup struct {
	live  bool
	color bool
	// width returns the terminal's columns (0: unknown, lines are not
	// cut). Nil means unknown.
	width func() int
}

// resolveProgress decides how progress is shown on w in mode: the live
// table (on a terminal in auto mode, always in tty mode) or plain lines.
// NO_COLOR (set and not empty, see no-color.org) turns colours off and
// keeps the layout; TERM=dumb means plain lines in auto mode and no
// colours in tty mode. getenv reads the environment.
func resolveProgress(mode string, w io.Writer, getenv func(string) string) progressSetup {
	dumb := getenv("TERM") == "dumb"
	s := progressSetup{color: getenv("NO_COLOR") == "" && !dumb}
	f, isFile := w.(*os.File)
	term := isFile && isTerminal(f)
	if term {
		fd := f.Fd()
		s.width = func() int { return terminalWidth(fd) }
	}
	switch mode {
	case ProgressPlain:
		return progressSetup{}
	case ProgressTTY:
		s.live = true
	default:
		s.live = term && !dumb
	}
	return s
}

// isTerminal reports whether f is a terminal: a character device that
// answers the terminal ioctl (/dev/null is a character device, not a
// terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

// winsize is struct winsize of ioctl TIOCGWINSZ.
type winsize struct{ row, col, xpixel, ypixel uint16 }

// terminalWidth returns the columns of the terminal fd, or 0 when they
// cannot be read.
func terminalWidth(fd uintptr) int {
	var ws winsize
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws))); errno != 0 {
		return 0
	}
	return int(ws.col)
}

// progressBarSteps are the steps shown in every node's bar, in order;
// progressRowSteps adds rollback and restore, shown for a node that
// needed them.
var (
	progressBarSteps = []string{StepPreflight, StepPrepare, StepDrain, StepWait, StepActivate, StepVerify, StepReady, StepHealthy}
	progressRowSteps = append(append([]string(nil), progressBarSteps...), StepRollback, StepRestore)
)

// Live display timing.
const (
	// progressMinRedraw is the least time between two redraws (at most
	// ten a second); the final frame is always drawn.
	progressMinRedraw = 100 * time.Millisecond
	// progressTick is how often the clock columns are refreshed while
	// nothing happens.
	progressTick = 50 * time.Millisecond
)

// liveStep is one step of one node in the live display.
type liveStep struct {
	state   stepState
	elapsed time.Duration // when ended
	since   time.Time     // when running
}

// liveNode is one row of the live display.
type liveNode struct {
	name  string
	steps map[string]*liveStep
	cur   string // the step that ran last
	msg   string // the last detail or error
}

// liveProgress draws a rollout on a terminal as a table redrawn in place:
// a header (release, pool, strategy, nodes done), then one row per node
// with its current step, a bar of all its steps, its elapsed time and its
// last message. Text written to it (announcements, failures, hook output)
// is printed above the table as it arrives; once finish has drawn the
// final frame, writes go straight through, so the summary follows the
// table. It is safe for concurrent use.
type liveProgress struct {
	w     io.Writer
	color bool
	width func() int       // nil or 0: lines are not cut
	now   func() time.Time // the clock (tests replace it)

	mu       sync.Mutex
	begun    bool
	done     bool
	ok       bool // the rollout's outcome, once done
	release  string
	pool     string
	start    time.Time
	nodes    []*liveNode
	lines    int // lines of the frame on screen
	lastDraw time.Time
	logs     []byte // complete lines waiting to be printed above the frame
	partial  []byte // a line without its newline yet
	frames   int    // frames drawn (tests)

	stop    chan struct{}
	stopped chan struct{}
}

// newLiveProgress returns a live display writing to w.
func newLiveProgress(w io.Writer, s progressSetup) *liveProgress {
	return &liveProgress{w: w, color: s.color, width: s.width, now: time.Now}
}

// begin draws the first frame for a rollout of release to nodes of pool,
// and refreshes the clocks every tick until finish (tick 0: only events
// redraw).
func (p *liveProgress) begin(release, pool string, nodes []string, tick time.Duration) {
	p.mu.Lock()
	p.begun = true
	p.release, p.pool = release, pool
	p.start = p.now()
	p.nodes = p.nodes[:0]
	for _, n := range nodes {
		p.nodes = append(p.nodes, &liveNode{name: n, steps: map[string]*liveStep{}})
	}
	p.drawLocked()
	p.mu.Unlock()
	if tick > 0 {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go p.tick(tick, p.stop, p.stopped)
	}
}

// tick redraws every d (throttled) until stop is closed, then closes
// stopped.
func (p *liveProgress) tick(d time.Duration, stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.maybeDrawLocked()
			p.mu.Unlock()
		}
	}
}

// step records an event of node i (in the order given to begin): step
// entered state after elapsed (for an ended step), with a detail or error
// message.
func (p *liveProgress) step(i int, step string, st stepState, elapsed time.Duration, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.begun || p.done || i < 0 || i >= len(p.nodes) {
		return
	}
	n := p.nodes[i]
	s := n.steps[step]
	if s == nil {
		s = &liveStep{}
		n.steps[step] = s
	}
	if st == stateRunning {
		if s.state != stateRunning {
			s.since = p.now()
		}
	} else {
		s.elapsed = elapsed
	}
	s.state = st
	n.cur = step
	if msg != "" {
		n.msg = msg
	}
	p.maybeDrawLocked()
}

// Write prints complete lines above the table (or passes p through before
// begin and after finish).
func (p *liveProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.begun || p.done {
		if len(p.partial) > 0 {
			if _, err := p.w.Write(p.partial); err != nil {
				return 0, err
			}
			p.partial = nil
		}
		return p.w.Write(b)
	}
	p.partial = append(p.partial, b...)
	if i := bytes.LastIndexByte(p.partial, '\n'); i >= 0 {
		p.logs = append(p.logs, p.partial[:i+1]...)
		p.partial = append(p.partial[:0:0], p.partial[i+1:]...)
		p.maybeDrawLocked()
	}
	return len(b), nil
}

// finish stops the clock, draws the final frame (whatever the throttle
// says) with the outcome, and lets later writes through below it.
func (p *liveProgress) finish(ok bool) {
	if p.stop != nil {
		close(p.stop)
		<-p.stopped
		p.stop = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.begun || p.done {
		return
	}
	p.ok = ok
	p.done = true
	// Steps of a failed node that did not run never will.
	for _, n := range p.nodes {
		if !n.failed() {
			continue
		}
		for _, name := range progressBarSteps {
			if s := n.steps[name]; s == nil {
				n.steps[name] = &liveStep{state: stateSkipped}
			}
		}
	}
	if len(p.partial) > 0 {
		p.logs = append(append(p.logs, p.partial...), '\n')
		p.partial = nil
	}
	p.drawLocked()
}

// maybeDrawLocked redraws unless the last redraw was less than
// progressMinRedraw ago; what it skips, the next tick or finish draws.
func (p *liveProgress) maybeDrawLocked() {
	if p.now().Sub(p.lastDraw) >= progressMinRedraw {
		p.drawLocked()
	}
}

// drawLocked replaces the frame on screen: cursor up to its first line,
// clear to the end of the screen, the pending log lines, the new frame.
// It writes all of it at once.
func (p *liveProgress) drawLocked() {
	var b bytes.Buffer
	if p.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\r\x1b[J", p.lines)
	}
	b.Write(p.logs)
	p.logs = p.logs[:0]
	frame := p.frameLocked()
	b.WriteString(frame)
	p.lines = strings.Count(frame, "\n")
	_, _ = p.w.Write(b.Bytes())
	p.lastDraw = p.now()
	p.frames++
}

// failed reports whether a step of the node (other than its recovery)
// failed.
func (n *liveNode) failed() bool {
	for name, s := range n.steps {
		if s.state == stateFailed && name != StepRollback && name != StepRestore {
			return true
		}
	}
	return false
}

// label is the node's STEP column: done, failed, the running or last
// step, or waiting.
func (n *liveNode) label(final bool) string {
	switch {
	case n.failed():
		return "failed"
	case n.steps[StepHealthy] != nil && n.steps[StepHealthy].state == stateOK:
		return "done"
	case final && n.steps[StepDrain] == nil:
		return "untouched"
	case n.cur != "":
		return n.cur
	}
	return "waiting"
}

// elapsed is the time the node's steps took, the running ones so far.
func (n *liveNode) elapsed(now time.Time) time.Duration {
	var d time.Duration
	for _, s := range n.steps {
		switch s.state {
		case stateRunning:
			d += now.Sub(s.since)
		case stateOK, stateFailed:
			d += s.elapsed
		}
	}
	return d
}

// Glyphs and colours of the step states.
var stateGlyph = [...]string{statePending: "·", stateRunning: "…", stateOK: "✓", stateFailed: "✗", stateSkipped: "-"}

var stateColor = [...]string{statePending: "2", stateRunning: "33", stateOK: "32", stateFailed: "31", stateSkipped: "2"}

// paint wraps s in the colour code c when colours are on.
func (p *liveProgress) paint(c, s string) string {
	if !p.color || c == "" {
		return s
	}
	return "\x1b[" + c + "m" + s + "\x1b[0m"
}

// frameLocked renders the header and one row per node, each line ending
// in a newline and cut to the terminal's width.
func (p *liveProgress) frameLocked() string {
	now := p.now()
	done := 0
	for _, n := range p.nodes {
		if n.label(false) == "done" {
			done++
		}
	}
	var out strings.Builder
	header := fmt.Sprintf("rollout %s · pool %s · one node at a time · %d/%d nodes done · %.1fs",
		p.release, p.pool, done, len(p.nodes), now.Sub(p.start).Seconds())
	if p.done {
		if p.ok {
			header += " · " + p.paint("32", "ok")
		} else {
			header += " · " + p.paint("31", "FAILED")
		}
	}
	width := 0
	if p.width != nil {
		width = p.width()
	}
	out.WriteString(cutLine(header, width, p.color))
	out.WriteByte('\n')

	nameW, labelW := 4, len("untouched")
	recovery := false // a node shows rollback or restore
	bars := make([]string, len(p.nodes))
	barW := 0
	for i, n := range p.nodes {
		nameW = max(nameW, utf8.RuneCountInString(n.name))
		var bar []string
		for _, name := range progressRowSteps {
			s := n.steps[name]
			if s == nil {
				if name == StepRollback || name == StepRestore {
					continue
				}
				s = &liveStep{}
			}
			recovery = recovery || name == StepRollback || name == StepRestore
			bar = append(bar, name+" "+p.glyph(s.state))
		}
		bars[i] = strings.Join(bar, " ")
		barW = max(barW, visibleLen(bars[i]))
	}
	// On a narrow terminal, the bar is a column of glyphs under short step
	// names, so that the rows keep some room for the message.
	if fixed := 2 + nameW + 2 + labelW + 2 + barW + 9; width > 0 && fixed+progressMinMessage > width {
		cols := progressBarSteps
		if recovery {
			cols = progressRowSteps
		}
		var head []string
		for _, c := range cols {
			head = append(head, progressShortStep[c])
		}
		for i, n := range p.nodes {
			var b strings.Builder
			for j, c := range cols {
				if j > 0 {
					b.WriteByte(' ')
				}
				g := " "
				if s := n.steps[c]; s != nil {
					g = p.glyph(s.state)
				} else if c != StepRollback && c != StepRestore {
					g = p.glyph(statePending)
				}
				b.WriteString(g + strings.Repeat(" ", len(progressShortStep[c])-1))
			}
			bars[i] = b.String()
		}
		barW = len(strings.Join(head, " "))
		line := fmt.Sprintf("  %-*s  %-*s  %s", nameW, "", labelW, "", strings.Join(head, " "))
		out.WriteString(cutLine(line, width, p.color))
		out.WriteByte('\n')
	}
	for i, n := range p.nodes {
		label := n.label(p.done)
		lc := ""
		switch label {
		case "done":
			lc = "32"
		case "failed":
			lc = "31"
		}
		line := fmt.Sprintf("  %-*s  %s%s  %s%s  %6.1fs  %s",
			nameW, n.name,
			p.paint(lc, label), strings.Repeat(" ", labelW-utf8.RuneCountInString(label)),
			bars[i], strings.Repeat(" ", max(barW-visibleLen(bars[i]), 0)),
			n.elapsed(now).Seconds(), oneLine(n.msg))
		out.WriteString(cutLine(strings.TrimRight(line, " "), width, p.color))
		out.WriteByte('\n')
	}
	return out.String()
}

// glyph is the state's glyph, in its colour.
func (p *liveProgress) glyph(st stepState) string {
	return p.paint(stateColor[st], stateGlyph[st])
}

// progressMinMessage is the room a row should keep for its message
// before the bar turns compact.
const progressMinMessage = 16

// progressShortStep names the steps in the compact bar's header.
var progressShortStep = map[string]string{
	StepPreflight: "pre", StepPrepare: "prep", StepDrain: "drain", StepWait: "wait",
	StepActivate: "act", StepVerify: "vrfy", StepReady: "ready", StepHealthy: "up",
	StepRollback: "rb", StepRestore: "rest",
}

// oneLine replaces control characters (newlines, escapes) with spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// visibleLen is the number of runes of s outside ANSI escape sequences.
func visibleLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			i = skipEscape(s, i)
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	return n
}

// skipEscape returns the index after the CSI sequence starting at s[i].
func skipEscape(s string, i int) int {
	j := i + 1
	if j < len(s) && s[j] == '[' {
		j++
		for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
			j++
		}
	}
	return min(j+1, len(s))
}

// cutLine cuts s to width-1 visible runes (a line as wide as the terminal
// may wrap, which would break the redraw), keeping escape sequences and
// resetting the colour when it cut. Width 0 means no limit.
func cutLine(s string, width int, color bool) string {
	if width <= 1 || visibleLen(s) < width {
		return s
	}
	limit := width - 2 // room for the ellipsis
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			j := skipEscape(s, i)
			b.WriteString(s[i:j])
			i = j
			continue
		}
		if n == limit {
			break
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		b.WriteString(s[i : i+size])
		i += size
		n++
	}
	b.WriteString("…")
	if color {
		b.WriteString("\x1b[0m")
	}
	return b.String()
}
