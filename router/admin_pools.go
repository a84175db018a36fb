package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/health"
)

// poolView is a pool as the admin API shows it.
type poolView struct {
	Name    string     `json:"name"`
	Policy  string     `json:"policy"`
	AllDown string     `json:"all_down"`
	Nodes   []nodeView `json:"nodes"`
}

// nodeView is a node as the admin API shows it: health and operator state
// from the health registry, plus what only the router knows.
type nodeView struct {
	health.Status
	Backup           bool  `json:"backup"`
	Weight           int   `json:"weight"`            // in effect now
	ConfiguredWeight int   `json:"configured_weight"` // from the file (or DNS)
	InFlight         int64 `json:"in_flight"`
}

func (s *Server) poolViews(only string) []poolView {
	snap := s.snap.Load()
	var out []poolView
	for _, p := range snap.poolList {
		if only != "" && p.name != only {
			continue
		}
		up := snap.cfg.Upstreams[p.name]
		pv := poolView{Name: p.name, Policy: p.policy, AllDown: up.AllDown, Nodes: []nodeView{}}
		for _, n := range p.nodes {
			pv.Nodes = append(pv.Nodes, s.nodeView(p, n))
		}
		out = append(out, pv)
	}
	return out
}

func (s *Server) nodeView(p *pool, n *Node) nodeView {
	v := nodeView{Backup: n.backup, Weight: n.weight, InFlight: n.Inflight()}
	v.ConfiguredWeight = n.weight
	if n.health != nil {
		v.Status = n.health.Status()
		if v.WeightOverride > 0 {
			v.ConfiguredWeight = s.configuredWeight(p, n)
		}
	}
	return v
}

func (s *Server) configuredWeight(p *pool, n *Node) int {
	up := s.snap.Load().cfg.Upstreams[p.name]
	for _, cn := range up.Nodes {
		if cn.Address == n.Address {
			return cn.Weight
		}
	}
	for _, e := range s.discovered(p.name) {
		if e.Address == n.Address {
			return max(e.Weight, 1)
		}
	}
	return n.weight
}

// findNode returns a pool and one of its nodes by name from the current
// snapshot.
func (s *Server) findNode(poolName, nodeName string) (*pool, *Node) {
	p := s.snap.Load().pools[poolName]
	if p == nil {
		return nil, nil
	}
	for _, n := range p.nodes {
		if n.Name == nodeName {
			return p, n
		}
	}
	return p, nil
}

// maxWait bounds a long poll for a node to become idle (the admin server's
// write timeout is longer).
const maxWait = 60 * time.Second

// handlePools serves the pools part of the admin API:
//
//	GET  /pools
//	GET  /pools/{pool}
//	POST /pools/{pool}/nodes/{node}/state?state=drain|maint|ready[&ttl=5m][&force=true]
//	POST /pools/{pool}/nodes/{node}/weight?weight=N   (0 returns to the configured weight)
//	GET  /pools/{pool}/nodes/{node}/wait?timeout=30s  until the node has no request in flight
func (s *Server) handlePools(ctx *fasthttp.RequestCtx, path string) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(path, "/pools"), "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	switch {
	case len(parts) == 0:
		if !requireMethod(ctx, fasthttp.MethodGet) {
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, s.poolViews(""))
	case len(parts) == 1:
		if !requireMethod(ctx, fasthttp.MethodGet) {
			return
		}
		views := s.poolViews(parts[0])
		if len(views) == 0 {
			writeJSONError(ctx, fasthttp.StatusNotFound, "unknown pool %q", parts[0])
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, views[0])
	case len(parts) == 4 && parts[1] == "nodes":
		p, n := s.findNode(parts[0], parts[2])
		if p == nil {
			writeJSONError(ctx, fasthttp.StatusNotFound, "unknown pool %q", parts[0])
			return
		}
		if n == nil {
			writeJSONError(ctx, fasthttp.StatusNotFound, "unknown node %q in pool %q", parts[2], parts[0])
			return
		}
		switch parts[3] {
		case "state":
			s.handleNodeState(ctx, p, n)
		case "weight":
			s.handleNodeWeight(ctx, p, n)
		case "wait":
			s.handleNodeWait(ctx, p, n)
		default:
			writeJSONError(ctx, fasthttp.StatusNotFound, "unknown action %q", parts[3])
		}
	default:
		writeJSONError(ctx, fasthttp.StatusNotFound, "not found")
	}
}

func (s *Server) handleNodeState(ctx *fasthttp.RequestCtx, p *pool, n *Node) {
	if !requireMethod(ctx, fasthttp.MethodPost) {
		return
	}
	args := ctx.QueryArgs()
	state, err := health.ParseAdminState(string(args.Peek("state")))
	if err != nil {
		writeJSONError(ctx, fasthttp.StatusBadRequest, "state must be ready, drain or maint")
		return
	}
	var ttl time.Duration
	if v := args.Peek("ttl"); len(v) > 0 {
		if ttl, err = time.ParseDuration(string(v)); err != nil || ttl < 0 {
			writeJSONError(ctx, fasthttp.StatusBadRequest, "ttl must be a duration such as 5m")
			return
		}
	}
	force := string(args.Peek("force")) == "true" || string(args.Peek("force")) == "1"
	if err := n.health.SetAdminState(state, ttl, force); err != nil {
		if errors.Is(err, health.ErrLastReadyNode) {
			writeJSONError(ctx, fasthttp.StatusConflict, "%s: add force=true to take it out anyway", err.Error())
			return
		}
		writeJSONError(ctx, fasthttp.StatusBadRequest, "%s", err.Error())
		return
	}
	s.log.Info("node state set by operator", "pool", p.name, "node", n.Name, "state", state.String(), "ttl", ttl.String(), "force", force)
	writeJSON(ctx, fasthttp.StatusOK, s.nodeView(p, n))
}

func (s *Server) handleNodeWeight(ctx *fasthttp.RequestCtx, p *pool, n *Node) {
	if !requireMethod(ctx, fasthttp.MethodPost) {
		return
	}
	w, err := strconv.Atoi(string(ctx.QueryArgs().Peek("weight")))
	if err != nil {
		writeJSONError(ctx, fasthttp.StatusBadRequest, "weight must be a number from 1 to 1000, or 0 for the configured weight")
		return
	}
	if err := n.health.SetWeight(w); err != nil {
		writeJSONError(ctx, fasthttp.StatusBadRequest, "%s", err.Error())
		return
	}
	// Round robin and hashing precompute their tables from the weights.
	if err := s.rebuild(); err != nil {
		writeJSONError(ctx, fasthttp.StatusInternalServerError, "weight stored but not applied: %s", err.Error())
		return
	}
	s.log.Info("node weight set by operator", "pool", p.name, "node", n.Name, "weight", w)
	p, n = s.findNode(p.name, n.Name)
	if n == nil {
		writeJSONError(ctx, fasthttp.StatusNotFound, "node left the pool")
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, s.nodeView(p, n))
}

func (s *Server) handleNodeWait(ctx *fasthttp.RequestCtx, p *pool, n *Node) {
	if !requireMethod(ctx, fasthttp.MethodGet) {
		return
	}
	timeout := 30 * time.Second
	if v := ctx.QueryArgs().Peek("timeout"); len(v) > 0 {
		d, err := time.ParseDuration(string(v))
		if err != nil || d < 0 {
			writeJSONError(ctx, fasthttp.StatusBadRequest, "timeout must be a duration such as 30s")
			return
		}
		timeout = min(d, maxWait)
	}
	deadline := time.Now().Add(timeout)
	for n.Inflight() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	in := n.Inflight()
	status := fasthttp.StatusOK
	if in > 0 {
		status = fasthttp.StatusGatewayTimeout
	}
	writeJSON(ctx, status, map[string]any{"pool": p.name, "node": n.Name, "idle": in == 0, "in_flight": in})
}

func requireMethod(ctx *fasthttp.RequestCtx, method string) bool {
	if string(ctx.Method()) == method {
		return true
	}
	ctx.Response.Header.Set("Allow", method)
	writeJSONError(ctx, fasthttp.StatusMethodNotAllowed, "use %s", method)
	return false
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	enc := json.NewEncoder(ctx)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeJSONError(ctx *fasthttp.RequestCtx, status int, format string, args ...any) {
	writeJSON(ctx, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}
