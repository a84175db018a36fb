package router

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/health"
)

// discoveries runs one DNS discovery loop per pool that has one, and holds
// each pool's last good answer. Its own mutex guards it; it never calls
// into the server while holding it.
type discoveries struct {
	mu    sync.Mutex
	loops map[string]*discoveryLoop
}

type discoveryLoop struct {
	cfg    config.DNSDiscovery
	cancel context.CancelFunc
	eps    []health.Endpoint
}

// discovered returns the last good DNS answer for a pool (nil when the
// pool has no discovery or no answer yet).
func (s *Server) discovered(pool string) []health.Endpoint {
	s.disc.mu.Lock()
	defer s.disc.mu.Unlock()
	if l := s.disc.loops[pool]; l != nil {
		return l.eps
	}
	return nil
}

// syncDiscovery starts, restarts or stops discovery loops so that they
// match cfg. A new or changed loop resolves once before returning (bounded
// by its query timeout), so the snapshot built next already has nodes.
// Called with reloadMu held.
func (s *Server) syncDiscovery(cfg *config.Config) {
	s.disc.mu.Lock()
	if s.disc.loops == nil {
		s.disc.loops = map[string]*discoveryLoop{}
	}
	var started []string
	for name, l := range s.disc.loops {
		up := cfg.Upstreams[name]
		if up == nil || up.Discovery.DNS == nil || *up.Discovery.DNS != l.cfg {
			if l.cancel != nil {
				l.cancel()
			}
			delete(s.disc.loops, name)
		}
	}
	for name, up := range cfg.Upstreams {
		if up.Discovery.DNS == nil || s.disc.loops[name] != nil {
			continue
		}
		s.disc.loops[name] = &discoveryLoop{cfg: *up.Discovery.DNS}
		started = append(started, name)
	}
	s.disc.mu.Unlock()

	slices.Sort(started)
	for _, name := range started {
		s.startDiscovery(name, *cfg.Upstreams[name].Discovery.DNS)
	}
}

func (s *Server) startDiscovery(pool string, c config.DNSDiscovery) {
	resolver, err := health.NewDNSResolver(c)
	if err != nil {
		s.log.Error("DNS discovery not started", "pool", pool, "error", err)
		return
	}
	resolver.Logger = s.log.With("pool", pool)
	ctx, cancel := context.WithCancel(context.Background())
	first, cancelFirst := context.WithTimeout(ctx, c.Timeout.D()+time.Second)
	eps, _, err := resolver.Resolve(first)
	cancelFirst()
	if err != nil {
		s.log.Warn("first DNS resolution failed; the pool starts without discovered nodes", "pool", pool, "error", err)
	}

	s.disc.mu.Lock()
	l := s.disc.loops[pool]
	if l == nil || l.cancel != nil { // replaced or stopped meanwhile
		s.disc.mu.Unlock()
		cancel()
		return
	}
	l.cancel = cancel
	if err == nil {
		l.eps = eps
	}
	s.disc.mu.Unlock()

	go health.DiscoverLoop(ctx, pool, resolver, c.MinTTL.D(), c.MaxTTL.D(), s.dnsMetrics, s.log, func(eps []health.Endpoint) {
		s.disc.mu.Lock()
		if cur := s.disc.loops[pool]; cur == nil || cur != l {
			s.disc.mu.Unlock()
			return
		}
		same := slices.Equal(l.eps, eps)
		l.eps = eps
		s.disc.mu.Unlock()
		if !same {
			s.log.Info("DNS discovery changed the pool", "pool", pool, "nodes", len(eps))
			_ = s.rebuild()
		}
	})
}

// stopDiscovery ends every loop.
func (s *Server) stopDiscovery() {
	s.disc.mu.Lock()
	defer s.disc.mu.Unlock()
	for name, l := range s.disc.loops {
		if l.cancel != nil {
			l.cancel()
		}
		delete(s.disc.loops, name)
	}
}
