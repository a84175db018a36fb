package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// RolloutNode is one node of a rolling deploy.
type RolloutNode struct {
	// Target is the node's deploy agent.
	Target Target
	// EdgeNode is the node's name in edge's pool; empty means Target.Name().
	EdgeNode string
	// HealthURL is the application's own health endpoint on the node (not
	// through edge). It must answer 2xx with the release id in its body
	// for the node's new release to count as verified.
	HealthURL string
}

// RolloutOptions configures Rollout.
type RolloutOptions struct {
	// Edge is the base URL of edge's admin API (e.g.
	// "http://127.0.0.1:9901"), EdgeToken its bearer token (may be
	// empty), Pool the pool whose nodes are deployed.
	Edge, EdgeToken, Pool string
	// Nodes are deployed one at a time, in this order.
	Nodes []RolloutNode
	// ReleaseID names the new release; empty generates one: the UTC time
	// as yyyymmddThhmmssZ, "-", and 7 random hex digits.
	ReleaseID string
	// Source is what every node prepares. A Reader can be read only once,
	// so it is accepted for a single node only.
	Source Source
	// DrainLease is the lease of a node's drain in edge: if this process
	// dies, edge returns the node to service by itself after it (the lease
	// is renewed before activation and before verification). Default 5m.
	DrainLease time.Duration
	// DrainTimeout bounds the wait for a drained node's in-flight requests
	// to reach zero; a node still busy after it fails. Default 60s.
	DrainTimeout time.Duration
	// VerifyTimeout bounds polling a node's HealthURL for the new release
	// id. Default 30s.
	VerifyTimeout time.Duration
	// HealthyTimeout bounds the wait for edge to report a node "up" after
	// it was returned to service. Default 60s.
	HealthyTimeout time.Duration
	// DryRun checks edge and the agents (read only), prints the node×step
	// plan, and changes nothing.
	DryRun bool
	// Out receives progress lines as they happen and a summary table at
	// the end; nil discards them.
	Out io.Writer
	// Progress is how progress is shown on Out: ProgressAuto (or "") a
	// live table redrawn in place when Out is a terminal (an *os.File)
	// and TERM is not "dumb", else ProgressPlain lines; ProgressTTY the
	// live table whatever Out is. Plain lines are "[  1.2s] n2  drain
	// ok  3ms  lease 5m0s", one per step as it ends. NO_COLOR turns the
	// live table's colours off.
	Progress string
}

// Rollout steps, in order. Preflight, prepare and the node steps make up a
// node's StepResults; rollback and restore are the recovery of a node that
// failed.
const (
	StepPreflight = "preflight" // edge reports the node up; the agent answers
	StepPrepare   = "prepare"   // all nodes in parallel
	StepDrain     = "drain"     // edge stops sending new requests (with a lease)
	StepWait      = "wait"      // in-flight requests reach zero
	StepActivate  = "activate"  // the new release becomes current
	StepVerify    = "verify"    // HealthURL reports the new release id
	StepReady     = "ready"     // edge may send requests again
	StepHealthy   = "healthy"   // edge reports the node up
	StepRollback  = "rollback"  // recovery: back to the previous release
	StepRestore   = "restore"   // recovery: ready again in edge
)

// drainSettle separates the two idle checks of the wait step.
const drainSettle = 50 * time.Millisecond

// rolloutNodeSteps are the steps of one node, one node at a time.
var rolloutNodeSteps = []string{StepDrain, StepWait, StepActivate, StepVerify, StepReady, StepHealthy}

// StepResult is one step of one node.
type StepResult struct {
	Step    string
	Elapsed time.Duration
	Err     error
}

// NodeResult is what a rollout did to one node.
type NodeResult struct {
	Name string
	// Previous is the node's current release before the rollout (as its
	// agent reported it at preflight).
	Previous string
	Steps    []StepResult
	// RolledBack is set when the node failed after its new release was
	// activated and was rolled back to Previous.
	RolledBack bool
}

// Step returns the result of the named step, or false when the node did
// not get to it.
func (n NodeResult) Step(step string) (StepResult, bool) {
	for _, s := range n.Steps {
		if s.Step == step {
			return s, true
		}
	}
	return StepResult{}, false
}

// RolloutResult is the outcome of a rollout; Err is the error Rollout
// returned.
type RolloutResult struct {
	ReleaseID string
	Nodes     []NodeResult
	Err       error
}

// RolloutError says where a rollout stopped: which node, which step, why,
// and what was done about it.
type RolloutError struct {
	Node     string // "" when the rollout failed before any node (preflight of several, prepare)
	Step     string
	Err      error
	Recovery string // e.g. "n2 rolled back to v1 and back in service; not touched: n3"
}

func (e *RolloutError) Error() string {
	var b strings.Builder
	b.WriteString("rollout stopped: ")
	if e.Node != "" {
		fmt.Fprintf(&b, "node %s failed at step %s: ", e.Node, e.Step)
	} else {
		fmt.Fprintf(&b, "%s failed: ", e.Step)
	}
	b.WriteString(e.Err.Error())
	if e.Recovery != "" {
		b.WriteString(" (" + e.Recovery + ")")
	}
	return b.String()
}

func (e *RolloutError) Unwrap() error { return e.Err }

// Rollout deploys a release to the nodes of an edge pool without dropping
// a request:
//
//  1. preflight: edge must report every listed node "up" (and, when the
//     pool has active checks, checked at least once), and every agent
//     must answer (its current release is recorded); else nothing is
//     done. Every listed node up, and one node out of service at a
//     time, keeps all the other listed nodes ready throughout (two or more
//     with three nodes).
//  2. prepare the release on all nodes in parallel; any failure stops
//     the rollout with nothing activated.
//  3. then one node at a time: drain it in edge with a lease, wait for its
//     in-flight requests to reach zero, activate the release, poll its
//     HealthURL until it reports the release id, return it to service,
//     and wait until edge reports it up.
//
// On any failure at a node, that node is rolled back to its previous
// release (when the new one was activated), returned to service, and the
// rollout stops: later nodes are not touched, earlier ones keep the new
// release. The error is a *RolloutError naming the node and the step.
// Recovery runs even when ctx is cancelled.
func Rollout(ctx context.Context, o RolloutOptions) (RolloutResult, error) {
	o = rolloutDefaults(o)
	r := &roller{o: o, start: time.Now(), out: o.Out}
	r.res.ReleaseID = o.ReleaseID
	for _, n := range o.Nodes {
		name := ""
		if n.Target != nil {
			name = n.Target.Name()
		}
		r.res.Nodes = append(r.res.Nodes, NodeResult{Name: name})
		r.width = max(r.width, len(name))
	}
	if err := validateRollout(o); err != nil {
		r.res.Err = err
		return r.res, err
	}
	r.edge = NewEdgeClient(o.Edge, o.EdgeToken, nil)
	r.startProgress()
	err := r.run(ctx)
	if r.live != nil {
		r.live.finish(err == nil)
	}
	if !o.DryRun || err != nil {
		r.summary(err)
	}
	r.res.Err = err
	return r.res, err
}

func rolloutDefaults(o RolloutOptions) RolloutOptions {
	if o.ReleaseID == "" {
		o.ReleaseID = NewReleaseID(time.Now())
	}
	if o.DrainLease <= 0 {
		o.DrainLease = 5 * time.Minute
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 60 * time.Second
	}
	if o.VerifyTimeout <= 0 {
		o.VerifyTimeout = 30 * time.Second
	}
	if o.HealthyTimeout <= 0 {
		o.HealthyTimeout = 60 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	nodes := make([]RolloutNode, len(o.Nodes))
	copy(nodes, o.Nodes)
	for i := range nodes {
		if nodes[i].EdgeNode == "" && nodes[i].Target != nil {
			nodes[i].EdgeNode = nodes[i].Target.Name()
		}
	}
	o.Nodes = nodes
	return o
}

// NewReleaseID returns a release id for time t: its UTC time as
// yyyymmddThhmmssZ, "-", and 7 random hex digits.
func NewReleaseID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])[:7]
}

func validateRollout(o RolloutOptions) error {
	var probs []string
	if o.Edge == "" {
		probs = append(probs, "the edge admin URL is required")
	}
	if o.Pool == "" {
		probs = append(probs, "the pool is required")
	}
	if len(o.Nodes) == 0 {
		probs = append(probs, "at least one node is required")
	}
	if !ValidReleaseID(o.ReleaseID) {
		probs = append(probs, fmt.Sprintf("invalid release id %q (want ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$)", o.ReleaseID))
	}
	if !validProgress(o.Progress) {
		probs = append(probs, fmt.Sprintf("invalid progress mode %q (want auto, tty or plain)", o.Progress))
	}
	names, edgeNames := map[string]bool{}, map[string]bool{}
	for i, n := range o.Nodes {
		if n.Target == nil {
			probs = append(probs, fmt.Sprintf("node %d has no target", i+1))
			continue
		}
		name := n.Target.Name()
		switch {
		case name == "":
			probs = append(probs, fmt.Sprintf("node %d has no name", i+1))
		case names[name]:
			probs = append(probs, fmt.Sprintf("node %s is listed twice", name))
		case edgeNames[n.EdgeNode]:
			probs = append(probs, fmt.Sprintf("edge node %s is listed twice", n.EdgeNode))
		}
		names[name], edgeNames[n.EdgeNode] = true, true
		if n.HealthURL == "" {
			probs = append(probs, fmt.Sprintf("node %s has no health URL (its new release could not be verified)", name))
		}
	}
	src := o.Source
	count := 0
	for _, set := range []bool{src.Dir != "", src.Tarball != "", src.GitRepo != "", src.Reader != nil} {
		if set {
			count++
		}
	}
	switch {
	case count != 1:
		probs = append(probs, "the source must be exactly one of a directory, a tarball, a git repository or a reader")
	case src.Reader != nil && len(o.Nodes) > 1:
		probs = append(probs, "a Reader source can be read once: use a directory, tarball or git source for several nodes")
	}
	if len(probs) > 0 {
		return errors.New("rollout: " + strings.Join(probs, "; "))
	}
	return nil
}

// roller runs one rollout.
type roller struct {
	o     RolloutOptions
	edge  *EdgeClient
	start time.Time
	width int

	mu  sync.Mutex // guards out and res.Nodes[*].Steps
	out io.Writer
	res RolloutResult

	// live, when set, is the live table: out is live, which prints what
	// is written to it above the table, and the lines of steps that
	// ended well are left out (the table shows them).
	live *liveProgress
}

// startProgress sets up the live table when Out and Progress call for
// it; otherwise the roller writes plain lines to Out.
func (r *roller) startProgress() {
	lp, ok := r.o.Out.(*liveProgress) // RunRollout made it for its stdout
	if !ok {
		s := resolveProgress(r.o.Progress, r.o.Out, os.Getenv)
		if !s.live {
			return
		}
		lp = newLiveProgress(r.o.Out, s)
	}
	r.live, r.out = lp, lp
	lp.begin(r.o.ReleaseID, r.o.Pool, r.names(), progressTick)
}

// event tells the live table (if any) that step of node i entered st.
func (r *roller) event(i int, step string, st stepState, el time.Duration, msg string) {
	if r.live != nil {
		r.live.step(i, step, st, el, msg)
	}
}

// logf prints one progress line: "[  1.2s] n2  drain     ok …".
func (r *roller) logf(node, step, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	el := time.Since(r.start).Seconds()
	fmt.Fprintf(r.out, "[%5.1fs] %-*s  %-9s %s\n", el, r.width, node, step, fmt.Sprintf(format, args...))
}

// okf is logf for a step that ended well: the live table shows it
// instead.
func (r *roller) okf(node, step, format string, args ...any) {
	if r.live == nil {
		r.logf(node, step, format, args...)
	}
}

// say prints a line that is about the whole rollout.
func (r *roller) say(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	el := time.Since(r.start).Seconds()
	fmt.Fprintf(r.out, "[%5.1fs] %s\n", el, fmt.Sprintf(format, args...))
}

// step runs f as step name of node i, records and prints its result. f
// returns a detail for the "ok" line.
func (r *roller) step(i int, name string, f func() (string, error)) error {
	return r.stepPlus(i, name, 0, f)
}

// stepPlus is step for a step of which extra was spent before f.
func (r *roller) stepPlus(i int, name string, extra time.Duration, f func() (string, error)) error {
	r.event(i, name, stateRunning, 0, "")
	t0 := time.Now()
	detail, err := f()
	el := time.Since(t0) + extra
	r.mu.Lock()
	r.res.Nodes[i].Steps = append(r.res.Nodes[i].Steps, StepResult{Step: name, Elapsed: el, Err: err})
	r.mu.Unlock()
	node := r.res.Nodes[i].Name
	switch {
	case err != nil:
		r.event(i, name, stateFailed, el, err.Error())
		r.logf(node, name, "FAILED after %s: %v", roundElapsed(el), err)
	case detail != "":
		r.event(i, name, stateOK, el, detail)
		r.okf(node, name, "ok  %s  %s", roundElapsed(el), detail)
	default:
		r.event(i, name, stateOK, el, "")
		r.okf(node, name, "ok  %s", roundElapsed(el))
	}
	return err
}

func roundElapsed(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

func (r *roller) run(ctx context.Context) error {
	o := r.o
	mode := ""
	if o.DryRun {
		mode = " (dry run: nothing will be changed)"
	}
	r.say("rollout of release %s to %d node(s) of pool %s via edge %s%s", o.ReleaseID, len(o.Nodes), o.Pool, r.edge.base, mode)

	if err := r.preflight(ctx); err != nil {
		return err
	}
	if o.DryRun {
		r.plan()
		return nil
	}
	if err := r.prepareAll(ctx); err != nil {
		return err
	}
	for i := range o.Nodes {
		if err := r.rollNode(ctx, i); err != nil {
			return err
		}
	}
	r.say("rollout of %s done: %d node(s) on the new release", o.ReleaseID, len(o.Nodes))
	return nil
}

// preflight checks that edge reports every listed node up and that every
// agent answers, and records each node's current release.
func (r *roller) preflight(ctx context.Context) error {
	o := r.o
	for i := range o.Nodes {
		r.event(i, StepPreflight, stateRunning, 0, "")
	}
	t0 := time.Now()
	pool, err := r.edge.Pool(ctx, o.Pool)
	if err != nil {
		for i := range o.Nodes {
			r.event(i, StepPreflight, stateFailed, time.Since(t0), err.Error())
		}
		return &RolloutError{Step: StepPreflight, Err: err, Recovery: "nothing was changed"}
	}
	poolTime := time.Since(t0)
	var wg sync.WaitGroup
	statuses := make([]Status, len(o.Nodes))
	statusErrs := make([]error, len(o.Nodes))
	statusTimes := make([]time.Duration, len(o.Nodes))
	for i, n := range o.Nodes {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			t0 := time.Now()
			statuses[i], statusErrs[i] = n.Target.Status(sctx)
			statusTimes[i] = time.Since(t0)
		})
	}
	wg.Wait()

	var failed []string
	var firstErr error
	for i, n := range o.Nodes {
		err := r.stepPlus(i, StepPreflight, poolTime+statusTimes[i], func() (string, error) {
			en, ok := pool.Node(n.EdgeNode)
			if !ok {
				return "", fmt.Errorf("edge pool %s has no node %q", o.Pool, n.EdgeNode)
			}
			if en.State != EdgeStateUp {
				return "", fmt.Errorf("edge reports %s %s%s, not up", n.EdgeNode, en.State, edgeReason(en.Reason))
			}
			if en.Health != "unchecked" && en.LastCheck == nil {
				return "", fmt.Errorf("edge has not health-checked %s yet", n.EdgeNode)
			}
			if statusErrs[i] != nil {
				return "", fmt.Errorf("agent status: %w", statusErrs[i])
			}
			r.res.Nodes[i].Previous = statuses[i].Current
			cur := statuses[i].Current
			if cur == "" {
				cur = "none"
			}
			return fmt.Sprintf("up in edge (health %s), current release %s", en.Health, cur), nil
		})
		if err != nil {
			failed = append(failed, r.res.Nodes[i].Name)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if len(failed) > 0 {
		e := &RolloutError{Step: StepPreflight, Err: firstErr, Recovery: "nothing was changed"}
		if len(failed) == 1 {
			e.Node = failed[0]
		} else {
			e.Err = fmt.Errorf("nodes %s: %w", strings.Join(failed, ", "), firstErr)
		}
		return e
	}
	up := 0
	for _, n := range pool.Nodes {
		if n.State == EdgeStateUp && !n.Backup {
			up++
		}
	}
	if up < 3 {
		r.say("warning: pool %s has %d node(s) up: while one is out of service, %d will serve", o.Pool, up, up-1)
	}
	return nil
}

// plan prints what a rollout would do, node by node.
func (r *roller) plan() {
	o := r.o
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, "plan for release %s (nothing was changed):\n", o.ReleaseID)
	fmt.Fprintf(r.out, "  1. prepare %s on %s, in parallel, from %s\n", o.ReleaseID, strings.Join(r.names(), ", "), sourceString(o.Source))
	tw := tabwriter.NewWriter(r.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tnode\tcurrent\t"+strings.ToUpper(strings.Join(rolloutNodeSteps, "\t")))
	for i, n := range o.Nodes {
		cur := r.res.Nodes[i].Previous
		if cur == "" {
			cur = "none"
		}
		fmt.Fprintf(tw, "  %d.\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+2, r.res.Nodes[i].Name, cur,
			fmt.Sprintf("edge %s, lease %s", n.EdgeNode, o.DrainLease),
			fmt.Sprintf("in-flight 0, ≤%s", o.DrainTimeout),
			o.ReleaseID,
			fmt.Sprintf("%s, ≤%s", n.HealthURL, o.VerifyTimeout),
			"state=ready",
			fmt.Sprintf("up, ≤%s", o.HealthyTimeout))
	}
	_ = tw.Flush()
	fmt.Fprintln(r.out, "  on a failure at a node: roll it back to its current release (if activated), return it to service, stop")
}

func (r *roller) names() []string {
	var s []string
	for _, n := range r.res.Nodes {
		s = append(s, n.Name)
	}
	return s
}

func sourceString(s Source) string {
	switch {
	case s.Dir != "":
		return "directory " + s.Dir
	case s.Tarball != "":
		if s.SHA256 != "" {
			return "tarball " + s.Tarball + " (sha256 " + s.SHA256 + ")"
		}
		return "tarball " + s.Tarball
	case s.GitRepo != "":
		rev := s.GitRev
		if rev == "" {
			rev = "HEAD"
		}
		return "git " + s.GitRepo + " at " + rev
	case s.Reader != nil:
		return "a stream"
	}
	return "nothing"
}

// prepareAll prepares the release on every node at once and waits for all
// of them.
func (r *roller) prepareAll(ctx context.Context) error {
	o := r.o
	r.say("preparing %s on %d node(s) in parallel from %s", o.ReleaseID, len(o.Nodes), sourceString(o.Source))
	var wg sync.WaitGroup
	errs := make([]error, len(o.Nodes))
	for i, n := range o.Nodes {
		wg.Go(func() {
			errs[i] = r.step(i, StepPrepare, func() (string, error) {
				return "", n.Target.Prepare(ctx, o.ReleaseID, o.Source)
			})
		})
	}
	wg.Wait()
	var failed []string
	var first error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, r.res.Nodes[i].Name)
			if first == nil {
				first = err
			}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	e := &RolloutError{Step: StepPrepare, Err: first, Recovery: "nothing was activated"}
	if len(failed) == 1 {
		e.Node = failed[0]
	} else {
		e.Err = fmt.Errorf("nodes %s: %w", strings.Join(failed, ", "), first)
	}
	return e
}

// rollNode takes node i through the node steps, and recovers it on a
// failure.
func (r *roller) rollNode(ctx context.Context, i int) error {
	o := r.o
	n := o.Nodes[i]
	name := r.res.Nodes[i].Name
	prev := r.res.Nodes[i].Previous
	activated, touched := false, false

	failed, err := "", error(nil)
	do := func(step string, f func() (string, error)) bool {
		if err != nil {
			return false
		}
		if e := r.step(i, step, f); e != nil {
			failed, err = step, e
			return false
		}
		return true
	}

	do(StepDrain, func() (string, error) {
		// Re-check what preflight established: every other listed node is
		// still up, so taking this one out leaves them all serving.
		pool, err := r.edge.Pool(ctx, o.Pool)
		if err != nil {
			return "", err
		}
		for _, other := range o.Nodes {
			if other.EdgeNode == n.EdgeNode {
				continue
			}
			if en, ok := pool.Node(other.EdgeNode); !ok || en.State != EdgeStateUp {
				return "", fmt.Errorf("refusing to drain: %s is %s%s in edge", other.EdgeNode, en.State, edgeReason(en.Reason))
			}
		}
		touched = true // a failed call may still have been applied
		if _, err := r.edge.SetNodeState(ctx, o.Pool, n.EdgeNode, EdgeDrain, o.DrainLease, false); err != nil {
			return "", err
		}
		return "lease " + o.DrainLease.String(), nil
	})
	do(StepWait, func() (string, error) {
		// Edge counts a request in flight from the moment it is sent, a
		// few instructions after it picked the node: a request picked just
		// before the drain may not be counted yet. So idle must hold twice,
		// drainSettle apart.
		deadline := time.Now().Add(o.DrainTimeout)
		for pass := 0; pass < 2; pass++ {
			idle, in, err := r.edge.WaitIdle(ctx, o.Pool, n.EdgeNode, max(time.Until(deadline), 0))
			if err != nil {
				return "", err
			}
			if !idle {
				return "", fmt.Errorf("%d request(s) still in flight after %s", in, o.DrainTimeout)
			}
			if pass == 0 {
				select {
				case <-ctx.Done():
					return "", ctx.Err()
				case <-time.After(drainSettle):
				}
			}
		}
		return "no request in flight", nil
	})
	do(StepActivate, func() (string, error) {
		if err := r.renewDrain(ctx, n.EdgeNode); err != nil {
			return "", err
		}
		activated = true // until we know better
		if err := n.Target.Activate(ctx, o.ReleaseID); err != nil {
			st, serr := n.Target.Status(context.WithoutCancel(ctx))
			if serr == nil && st.Current != o.ReleaseID {
				activated = false
			}
			return "", err
		}
		return fmt.Sprintf("%s -> %s", releaseOrNone(prev), o.ReleaseID), nil
	})
	do(StepVerify, func() (string, error) {
		if err := r.renewDrain(ctx, n.EdgeNode); err != nil {
			return "", err
		}
		if err := verifyRelease(ctx, n.HealthURL, o.ReleaseID, o.VerifyTimeout); err != nil {
			return "", err
		}
		return n.HealthURL + " reports " + o.ReleaseID, nil
	})
	do(StepReady, func() (string, error) {
		_, err := r.edge.SetNodeState(ctx, o.Pool, n.EdgeNode, EdgeReady, 0, false)
		return "", err
	})
	do(StepHealthy, func() (string, error) {
		en, err := r.edge.WaitState(ctx, o.Pool, n.EdgeNode, EdgeStateUp, o.HealthyTimeout)
		if err != nil {
			return "", err
		}
		return "up in edge (health " + en.Health + ")", nil
	})
	if err == nil {
		return nil
	}
	if !touched {
		return &RolloutError{Node: name, Step: failed, Err: err, Recovery: name + " not changed; " + r.others(i)}
	}
	recovery := r.recoverNode(ctx, i, activated)
	return &RolloutError{Node: name, Step: failed, Err: err, Recovery: recovery + "; " + r.others(i)}
}

// renewDrain extends a drained node's lease, so that a slow activation or
// verification does not outlive it.
func (r *roller) renewDrain(ctx context.Context, edgeNode string) error {
	if _, err := r.edge.SetNodeState(ctx, r.o.Pool, edgeNode, EdgeDrain, r.o.DrainLease, false); err != nil {
		return fmt.Errorf("renewing the drain lease: %w", err)
	}
	return nil
}

// recoverNode rolls node i back (when its new release may be active) and
// returns it to service. It runs even when ctx is cancelled, and returns a
// description of what it did.
func (r *roller) recoverNode(ctx context.Context, i int, activated bool) string {
	o := r.o
	n := o.Nodes[i]
	name := r.res.Nodes[i].Name
	prev := r.res.Nodes[i].Previous
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.HealthyTimeout+time.Minute)
	defer cancel()

	var parts []string
	if activated {
		if prev == "" {
			r.event(i, StepRollback, stateSkipped, 0, "no release before this one")
			r.logf(name, StepRollback, "SKIPPED: the node had no release before this one")
			parts = append(parts, name+" has no previous release to roll back to")
		} else {
			err := r.step(i, StepRollback, func() (string, error) {
				from, to, err := n.Target.Rollback(rctx, prev)
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("%s -> %s", releaseOrNone(from), to), nil
			})
			if err != nil {
				parts = append(parts, fmt.Sprintf("rolling %s back to %s FAILED: %v", name, prev, err))
			} else {
				r.mu.Lock()
				r.res.Nodes[i].RolledBack = true
				r.mu.Unlock()
				parts = append(parts, fmt.Sprintf("%s rolled back to %s", name, prev))
			}
		}
	} else {
		parts = append(parts, fmt.Sprintf("%s still on %s", name, releaseOrNone(prev)))
	}
	err := r.step(i, StepRestore, func() (string, error) {
		if _, err := r.edge.SetNodeState(rctx, o.Pool, n.EdgeNode, EdgeReady, 0, false); err != nil {
			return "", err
		}
		en, err := r.edge.WaitState(rctx, o.Pool, n.EdgeNode, EdgeStateUp, o.HealthyTimeout)
		if err != nil {
			return "", fmt.Errorf("ready, but: %w", err)
		}
		return "ready and up in edge (health " + en.Health + ")", nil
	})
	if err != nil {
		parts = append(parts, fmt.Sprintf("returning it to service FAILED: %v", err))
	} else {
		parts = append(parts, "back in service")
	}
	return strings.Join(parts, ", ")
}

// others describes the nodes other than node i after a failure at it: the
// earlier ones on the new release, the later ones not touched.
func (r *roller) others(i int) string {
	var done, left []string
	for _, n := range r.res.Nodes[:i] {
		done = append(done, n.Name)
	}
	for _, n := range r.res.Nodes[i+1:] {
		left = append(left, n.Name+" on "+releaseOrNone(n.Previous))
	}
	var out []string
	if len(done) > 0 {
		out = append(out, "on "+r.o.ReleaseID+": "+strings.Join(done, ", "))
	}
	if len(left) > 0 {
		out = append(out, "not touched: "+strings.Join(left, ", "))
	}
	if len(out) == 0 {
		return "no other node"
	}
	return strings.Join(out, "; ")
}

func releaseOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// verifyRelease polls url until it answers 2xx with id in its body (as a
// whole token: "v1" does not match "v10"), for up to timeout.
func verifyRelease(ctx context.Context, url, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: min(timeout, 5*time.Second)}
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			switch {
			case rerr != nil:
				last = fmt.Sprintf("status %d, reading the body: %v", resp.StatusCode, rerr)
			case resp.StatusCode < 200 || resp.StatusCode > 299:
				last = fmt.Sprintf("status %d: %s", resp.StatusCode, bodySnippet(body))
			case containsReleaseID(string(body), id):
				return nil
			default:
				last = fmt.Sprintf("status %d without the release id: %s", resp.StatusCode, bodySnippet(body))
			}
		} else {
			last = err.Error()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not report release %s within %s (last answer: %s)", url, id, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func bodySnippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// containsReleaseID reports whether s contains id not glued to other id
// characters (letters, digits, '.', '_', '-').
func containsReleaseID(s, id string) bool {
	isID := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	for off := 0; ; {
		i := strings.Index(s[off:], id)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(id)
		if (i == 0 || !isID(s[i-1])) && (end == len(s) || !isID(s[end])) {
			return true
		}
		off = i + 1
	}
}

// summary prints a node×step table of elapsed times and each node's
// outcome.
func (r *roller) summary(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		fmt.Fprintf(r.out, "\nsummary: release %s, pool %s: FAILED\n", r.o.ReleaseID, r.o.Pool)
	} else {
		fmt.Fprintf(r.out, "\nsummary: release %s, pool %s: ok\n", r.o.ReleaseID, r.o.Pool)
	}
	cols := append([]string{StepPreflight, StepPrepare}, rolloutNodeSteps...)
	tw := tabwriter.NewWriter(r.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "node\t"+strings.Join(cols, "\t")+"\tresult")
	for _, n := range r.res.Nodes {
		cells := []string{n.Name}
		for _, c := range cols {
			st, ok := n.Step(c)
			switch {
			case !ok:
				cells = append(cells, "-")
			case st.Err != nil:
				cells = append(cells, "FAILED")
			default:
				cells = append(cells, roundElapsed(st.Elapsed))
			}
		}
		cells = append(cells, nodeOutcome(n, r.o.ReleaseID))
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
	if err != nil {
		fmt.Fprintf(r.out, "error: %v\n", err)
	}
}

// nodeOutcome is a node's summary result.
func nodeOutcome(n NodeResult, id string) string {
	for _, s := range n.Steps {
		if s.Err == nil || s.Step == StepRollback || s.Step == StepRestore {
			continue
		}
		res := "FAILED at " + s.Step
		if n.RolledBack {
			res += ", rolled back to " + n.Previous
		}
		if st, ok := n.Step(StepRollback); ok && st.Err != nil {
			res += ", rollback FAILED"
		}
		if st, ok := n.Step(StepRestore); ok {
			if st.Err != nil {
				res += ", return to service FAILED"
			} else {
				res += ", back in service"
			}
		}
		return res
	}
	if _, ok := n.Step(StepHealthy); ok {
		return "on " + id
	}
	if _, ok := n.Step(StepPrepare); ok {
		return "prepared, not activated (still " + releaseOrNone(n.Previous) + ")"
	}
	return "not touched"
}

// RunRollout is the `edge-deploy rollout` command: it parses its flags
// from args, runs Rollout with progress on stdout, and returns the exit
// code: 0 on success, 1 on failure, 2 on bad usage.
func RunRollout(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge-deploy rollout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	edge := fs.String("edge", "http://127.0.0.1:9901", "edge admin API base URL")
	edgeToken := fs.String("edge-token", os.Getenv("EDGE_ADMIN_TOKEN"), "edge admin bearer token (default $EDGE_ADMIN_TOKEN)")
	pool := fs.String("pool", "", "edge pool of the nodes (required)")
	var nodes rolloutNodeFlags
	fs.Var(&nodes, "node", "a node, in rollout order (repeatable): name=NAME,agent=URL|dir=PATH,health=URL[,edge=EDGE_NAME]")
	cfgPath := fs.String("config", "", "deploy configuration file for dir= nodes (its root is replaced by each node's dir)")
	agentToken := fs.String("agent-token", os.Getenv("EDGE_DEPLOY_TOKEN"), "deploy agent bearer token for agent= nodes (default $EDGE_DEPLOY_TOKEN)")
	dir := fs.String("dir", "", "source: a directory")
	tarball := fs.String("tarball", "", "source: a .tar.gz file")
	sum := fs.String("sha256", "", "expected SHA-256 of -tarball")
	gitRepo := fs.String("git", "", "source: a git repository (path or URL)")
	gitRev := fs.String("rev", "", "git revision of -git (default HEAD)")
	id := fs.String("id", "", "release id (default: UTC time yyyymmddThhmmssZ-<7 hex>)")
	lease := fs.Duration("drain-lease", 5*time.Minute, "lease of a node's drain in edge")
	drainTimeout := fs.Duration("drain-timeout", 60*time.Second, "wait for a drained node's in-flight requests to reach zero")
	verifyTimeout := fs.Duration("verify-timeout", 30*time.Second, "wait for a node's health URL to report the new release")
	healthyTimeout := fs.Duration("healthy-timeout", 60*time.Second, "wait for edge to report a node up after it is ready")
	dryRun := fs.Bool("dry-run", false, "check edge and the agents, print the plan, change nothing")
	progress := fs.String("progress", ProgressAuto, "progress display: auto (a live table on a terminal, else plain), tty (always the live table) or plain (one line per step)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: edge-deploy rollout -pool POOL -node name=N,agent=URL|dir=PATH,health=URL ... (-dir D | -tarball F [-sha256 H] | -git REPO [-rev R]) [flags]

Deploys a release to the nodes of an edge pool, one node at a time, never
taking more than one node out of service: prepare everywhere in parallel,
then per node drain, wait idle, activate, verify, ready, healthy. A failing
node is rolled back and returned to service, and the rollout stops.

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	usageErr := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "edge-deploy rollout: "+format+"\n", args...)
		return 2
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *pool == "" {
		return usageErr("-pool is required")
	}
	if len(nodes) == 0 {
		return usageErr("at least one -node is required")
	}
	src := Source{Dir: *dir, Tarball: *tarball, SHA256: *sum, GitRepo: *gitRepo, GitRev: *gitRev}
	switch n := countNonEmpty(*dir, *tarball, *gitRepo); {
	case n != 1:
		return usageErr("give exactly one source: -dir, -tarball or -git")
	case *sum != "" && *tarball == "":
		return usageErr("-sha256 goes with -tarball")
	case *gitRev != "" && *gitRepo == "":
		return usageErr("-rev goes with -git")
	}
	if !validProgress(*progress) {
		return usageErr("-progress must be auto, tty or plain, not %q", *progress)
	}

	// On the live table, everything (hook output of dir= nodes too) goes
	// through it, so it is printed above the table instead of breaking it.
	var out io.Writer = &syncLineWriter{w: stdout}
	if s := resolveProgress(*progress, stdout, os.Getenv); s.live {
		out = newLiveProgress(stdout, s)
	} else {
		*progress = ProgressPlain
	}
	var base Config
	if *cfgPath != "" {
		c, err := LoadConfig(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "edge-deploy rollout: %v\n", err)
			return 1
		}
		base = c
	}
	o := RolloutOptions{
		Edge: *edge, EdgeToken: *edgeToken, Pool: *pool,
		ReleaseID: *id, Source: src,
		DrainLease: *lease, DrainTimeout: *drainTimeout, VerifyTimeout: *verifyTimeout, HealthyTimeout: *healthyTimeout,
		DryRun: *dryRun, Out: out, Progress: *progress,
	}
	for _, ns := range nodes {
		var t Target
		if ns.agent != "" {
			t = HTTPTarget(ns.name, ns.agent, *agentToken, nil)
		} else {
			cfg := base
			cfg.Root = ns.dir
			n, err := Open(cfg)
			if err != nil {
				fmt.Fprintf(stderr, "edge-deploy rollout: node %s: %v\n", ns.name, err)
				return 1
			}
			pw := &nodePrefixWriter{w: out, prefix: "    " + ns.name + " | "}
			defer pw.flush()
			t = LocalTarget(ns.name, n, Options{DryRun: *dryRun, Out: pw})
		}
		o.Nodes = append(o.Nodes, RolloutNode{Target: t, EdgeNode: ns.edge, HealthURL: ns.health})
	}
	if _, err := Rollout(ctx, o); err != nil {
		fmt.Fprintf(stderr, "edge-deploy rollout: %v\n", err)
		return 1
	}
	return 0
}

func countNonEmpty(vals ...string) int {
	n := 0
	for _, v := range vals {
		if v != "" {
			n++
		}
	}
	return n
}

// rolloutNodeSpec is one -node flag.
type rolloutNodeSpec struct{ name, agent, dir, health, edge string }

type rolloutNodeFlags []rolloutNodeSpec

func (f *rolloutNodeFlags) String() string { return fmt.Sprint(len(*f), " nodes") }

func (f *rolloutNodeFlags) Set(s string) error {
	ns, err := parseRolloutNode(s)
	if err != nil {
		return err
	}
	*f = append(*f, ns)
	return nil
}

// parseRolloutNode parses "name=NAME,agent=URL|dir=PATH,health=URL[,edge=EDGE_NAME]".
func parseRolloutNode(s string) (rolloutNodeSpec, error) {
	var ns rolloutNodeSpec
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return ns, fmt.Errorf("%q: want key=value pairs separated by commas (name, agent or dir, health, edge)", part)
		}
		var dst *string
		switch k {
		case "name":
			dst = &ns.name
		case "agent":
			dst = &ns.agent
		case "dir":
			dst = &ns.dir
		case "health":
			dst = &ns.health
		case "edge":
			dst = &ns.edge
		default:
			return ns, fmt.Errorf("unknown key %q (want name, agent, dir, health, edge)", k)
		}
		if *dst != "" {
			return ns, fmt.Errorf("%s= given twice", k)
		}
		*dst = v
	}
	switch {
	case ns.name == "":
		return ns, errors.New("name= is required")
	case (ns.agent == "") == (ns.dir == ""):
		return ns, fmt.Errorf("node %s: give exactly one of agent=URL and dir=PATH", ns.name)
	case ns.health == "":
		return ns, fmt.Errorf("node %s: health=URL is required (it must report the release id)", ns.name)
	}
	return ns, nil
}

// syncLineWriter serialises writes, so lines written by concurrent steps do
// not interleave.
type syncLineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *syncLineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// nodePrefixWriter writes whole lines, each with a prefix (a local node's hook
// output).
type nodePrefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *nodePrefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := make([]byte, 0, len(p.prefix)+i+1)
		line = append(append(line, p.prefix...), p.buf[:i+1]...)
		p.buf = p.buf[i+1:]
		if _, err := p.w.Write(line); err != nil {
			return len(b), err
		}
	}
	return len(b), nil
}

// flush writes a last line left without its newline.
func (p *nodePrefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		_, _ = p.w.Write(append(append([]byte(p.prefix), p.buf...), '\n'))
		p.buf = nil
	}
}
