package config

import "time"

// HTTP2 configures HTTP/2 to clients on the TLS listeners (ALPN "h2").
// HTTP/1.1 clients are unaffected by any of it.
type HTTP2 struct {
	// Enabled offers "h2" in ALPN on the TLS listeners. Default: true.
	Enabled *bool `yaml:"enabled"`
	// MaxConcurrentStreams bounds the streams a client may have open on
	// one connection (SETTINGS_MAX_CONCURRENT_STREAMS). Default: 100
	// (HAProxy's tune.h2.max-concurrent-streams; nginx uses 128).
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// MaxResetStreams bounds the streams a client may cancel on one
	// connection before their answer is complete, per 10 seconds; a
	// connection that cancels more (the "rapid reset" attack,
	// CVE-2023-44487) is closed. Default: 200.
	MaxResetStreams int `yaml:"max_reset_streams"`
}

// Tunnels configures connections upgraded to another protocol (WebSocket
// and any other "Upgrade" a node accepts with 101), which edge passes
// through as bytes in both directions.
type Tunnels struct {
	// MaxOpen bounds the tunnels open at once; a further upgrade request
	// is answered 503. Default: 10000.
	MaxOpen int `yaml:"max_open"`
	// IdleTimeout closes a tunnel when no byte has crossed it in either
	// direction for this long (HAProxy's "timeout tunnel"). Default: 1h.
	IdleTimeout Duration `yaml:"idle_timeout"`
}

const (
	defaultH2MaxStreams   = 100
	defaultH2MaxResets    = 200
	defaultTunnelsMaxOpen = 10000
	defaultTunnelIdle     = Duration(time.Hour)
)

// HTTP2Enabled reports whether h2 is offered (Enabled defaults to true).
func (h HTTP2) HTTP2Enabled() bool { return h.Enabled == nil || *h.Enabled }

func (s *Server) applyProtocolDefaults(set func(string) bool) {
	if s.HTTP2.Enabled == nil {
		on := true
		s.HTTP2.Enabled = &on
	}
	defaultInt(&s.HTTP2.MaxConcurrentStreams, defaultH2MaxStreams, set, "server.http2.max_concurrent_streams")
	defaultInt(&s.HTTP2.MaxResetStreams, defaultH2MaxResets, set, "server.http2.max_reset_streams")
	defaultInt(&s.Tunnels.MaxOpen, defaultTunnelsMaxOpen, set, "server.tunnels.max_open")
	defaultDuration(&s.Tunnels.IdleTimeout, defaultTunnelIdle, set, "server.tunnels.idle_timeout")
}

func (s *Server) validateProtocols(v *validator) {
	if n := s.HTTP2.MaxConcurrentStreams; n < 1 || n > 10000 {
		v.add("server.http2.max_concurrent_streams", "must be between 1 and 10000, got %d", n)
	}
	if s.HTTP2.MaxResetStreams < 1 {
		v.add("server.http2.max_reset_streams", "must be at least 1, got %d", s.HTTP2.MaxResetStreams)
	}
	if s.Tunnels.MaxOpen < 0 {
		v.add("server.tunnels.max_open", "must not be negative (0 refuses every upgrade), got %d", s.Tunnels.MaxOpen)
	}
	if s.Tunnels.IdleTimeout.D() <= 0 {
		v.add("server.tunnels.idle_timeout", "must be greater than 0")
	}
}
