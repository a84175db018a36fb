package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// EdgeClient is a small client of edge's admin API (the pools part): it
// drains and readies nodes, waits for them to be idle and reads their
// state. It speaks HTTP only; package deploy does not link edge.
type EdgeClient struct {
	base, token string
	c           *http.Client
}

// NewEdgeClient returns a client of the admin API at baseURL (e.g.
// "http://127.0.0.1:9901"; a bare host:port gets "http://"). token, when not
// empty, is sent as a bearer token. client nil means a client with a 2
// minute timeout per call (a wait call lasts up to 60 s).
func NewEdgeClient(baseURL, token string, client *http.Client) *EdgeClient {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Minute}
	}
	return &EdgeClient{base: baseURLOf(baseURL), token: token, c: client}
}

// EdgePool is a pool as edge's admin API shows it (GET /pools/{pool}).
type EdgePool struct {
	Name    string     `json:"name"`
	Policy  string     `json:"policy"`
	AllDown string     `json:"all_down"`
	Nodes   []EdgeNode `json:"nodes"`
}

// Node returns the pool's node named name, or false.
func (p EdgePool) Node(name string) (EdgeNode, bool) {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return EdgeNode{}, false
}

// EdgeNode is one node of a pool as edge's admin API shows it (the fields
// a deploy needs; edge sends more).
type EdgeNode struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is "up", "down", "draining" or "maint": "up" means the node
	// takes new requests now.
	State string `json:"state"`
	// Health is the active checks' verdict: "up", "down" or "unchecked".
	Health string `json:"health"`
	// Reason says why the node is not up.
	Reason string `json:"reason,omitempty"`
	// LastCheck is the last active check; nil when the node was never
	// checked (edge counts a new node up until its first check says
	// otherwise).
	LastCheck *EdgeCheck `json:"last_check,omitempty"`
	// AdminState is the operator's state: "ready", "drain" or "maint".
	AdminState   string     `json:"admin_state"`
	LeaseExpires *time.Time `json:"lease_expires,omitempty"`
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	Backup       bool       `json:"backup"`
	Weight       int        `json:"weight"`
	InFlight     int64      `json:"in_flight"`
}

// EdgeCheck is the result of one active health check.
type EdgeCheck struct {
	Time      time.Time `json:"time"`
	Status    int       `json:"status"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	Passed    bool      `json:"passed"`
}

// Node states of EdgeNode.State.
const (
	EdgeStateUp       = "up"
	EdgeStateDown     = "down"
	EdgeStateDraining = "draining"
	EdgeStateMaint    = "maint"
)

// Operator states for EdgeClient.SetNodeState.
const (
	EdgeReady = "ready"
	EdgeDrain = "drain"
	EdgeMaint = "maint"
)

// ErrLastAvailable is returned (wrapped) by SetNodeState when edge refuses
// to take a pool's last available node out of service (409).
var ErrLastAvailable = errors.New("edge refused: it is the last available node of its pool")

// EdgeError is an answer of edge's admin API other than the expected one.
type EdgeError struct {
	Status  int
	Message string // edge's {"error"} text, or the body's first line
}

func (e *EdgeError) Error() string {
	return fmt.Sprintf("edge admin API answered %d: %s", e.Status, e.Message)
}

// SetNodeState sets a node's operator state: EdgeDrain or EdgeMaint
// (with a lease ttl after which edge makes the node ready by itself; 0
// means none) or EdgeReady. Without force, edge refuses to take out the
// pool's last available node: the error then wraps ErrLastAvailable. It
// returns the node as edge shows it afterwards.
func (c *EdgeClient) SetNodeState(ctx context.Context, pool, node, state string, ttl time.Duration, force bool) (EdgeNode, error) {
	q := url.Values{"state": {state}}
	if ttl > 0 {
		q.Set("ttl", ttl.String())
	}
	if force {
		q.Set("force", "true")
	}
	var n EdgeNode
	status, err := c.do(ctx, http.MethodPost, edgeNodePath(pool, node, "state"), q, &n, http.StatusOK)
	if err != nil {
		if status == http.StatusConflict {
			return EdgeNode{}, fmt.Errorf("set %s/%s to %s: %w (%v)", pool, node, state, ErrLastAvailable, err)
		}
		return EdgeNode{}, fmt.Errorf("set %s/%s to %s: %w", pool, node, state, err)
	}
	return n, nil
}

// WaitIdle waits until edge has no request in flight to the node, for up
// to timeout (edge bounds one call to 60 s; longer timeouts take several
// calls). It returns whether the node is idle and its last in-flight count;
// a node still busy at the timeout is not an error.
func (c *EdgeClient) WaitIdle(ctx context.Context, pool, node string, timeout time.Duration) (idle bool, inFlight int64, err error) {
	deadline := time.Now().Add(timeout)
	for {
		left := max(time.Until(deadline), 0)
		step := min(left, 60*time.Second).Round(time.Millisecond)
		var out struct {
			Idle     bool  `json:"idle"`
			InFlight int64 `json:"in_flight"`
		}
		_, err := c.do(ctx, http.MethodGet, edgeNodePath(pool, node, "wait"), url.Values{"timeout": {step.String()}},
			&out, http.StatusOK, http.StatusGatewayTimeout)
		if err != nil {
			return false, 0, fmt.Errorf("wait for %s/%s to be idle: %w", pool, node, err)
		}
		if out.Idle || time.Until(deadline) <= 0 {
			return out.Idle, out.InFlight, nil
		}
	}
}

// Pool returns a pool and the state of its nodes.
func (c *EdgeClient) Pool(ctx context.Context, pool string) (EdgePool, error) {
	var p EdgePool
	if _, err := c.do(ctx, http.MethodGet, "/pools/"+url.PathEscape(pool), nil, &p, http.StatusOK); err != nil {
		return EdgePool{}, fmt.Errorf("read pool %s: %w", pool, err)
	}
	return p, nil
}

// WaitState polls the pool until the node reports state (e.g. EdgeStateUp),
// for up to timeout, and returns the node as last seen.
func (c *EdgeClient) WaitState(ctx context.Context, pool, node, state string, timeout time.Duration) (EdgeNode, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.Pool(ctx, pool)
		if err != nil {
			return EdgeNode{}, err
		}
		n, ok := p.Node(node)
		if !ok {
			return EdgeNode{}, fmt.Errorf("pool %s has no node %q", pool, node)
		}
		if n.State == state {
			return n, nil
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("node %s/%s is %s, not %s, after %v%s", pool, node, n.State, state, timeout, edgeReason(n.Reason))
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func edgeReason(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

func edgeNodePath(pool, node, action string) string {
	return "/pools/" + url.PathEscape(pool) + "/nodes/" + url.PathEscape(node) + "/" + action
}

// do sends one request and decodes the answer into out when its status is
// one of ok; other statuses become *EdgeError.
func (c *EdgeClient) do(ctx context.Context, method, path string, q url.Values, out any, ok ...int) (int, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return 0, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer (status %d): %w", resp.StatusCode, err)
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			if out != nil && len(bytes.TrimSpace(data)) > 0 {
				if err := json.Unmarshal(data, out); err != nil {
					return resp.StatusCode, fmt.Errorf("decoding the answer: %w", err)
				}
			}
			return resp.StatusCode, nil
		}
	}
	return resp.StatusCode, &EdgeError{Status: resp.StatusCode, Message: agentErrorText(data, resp.Status)}
}
