package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edge-router/edge/config"
)

// ---------------------------------------------------------------------------
// In-process DNS server: UDP and TCP on the same port of 127.0.0.1, serving a
// mutable zone.

type dnsTestKey struct {
	name  string
	qtype uint16
}

type dnsTestServer struct {
	addr string

	mu      sync.Mutex
	answer  map[dnsTestKey][]dns.RR
	extra   map[dnsTestKey][]dns.RR
	rcode   map[string]int // by name, overrides everything
	udpMax  int            // when > 0, UDP answers are truncated to it
	queries map[string]int // by network: "udp", "tcp"
	asked   []dnsTestKey

	stopOnce sync.Once
	servers  []*dns.Server
}

func dnsStartServer(t *testing.T) *dnsTestServer {
	t.Helper()
	s := &dnsTestServer{
		answer:  map[dnsTestKey][]dns.RR{},
		extra:   map[dnsTestKey][]dns.RR{},
		rcode:   map[string]int{},
		queries: map[string]int{},
	}
	var (
		pc  net.PacketConn
		l   net.Listener
		err error
	)
	for attempt := 0; ; attempt++ {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatalf("listen tcp on the udp port: %v", err)
		}
	}
	s.addr = pc.LocalAddr().String()
	var started sync.WaitGroup
	started.Add(2)
	s.servers = []*dns.Server{
		{PacketConn: pc, Handler: s, NotifyStartedFunc: started.Done},
		{Listener: l, Handler: s, NotifyStartedFunc: started.Done},
	}
	for _, srv := range s.servers {
		go srv.ActivateAndServe()
	}
	started.Wait()
	t.Cleanup(s.stop)
	return s
}

// stop shuts both servers down; later queries fail.
func (s *dnsTestServer) stop() {
	s.stopOnce.Do(func() {
		for _, srv := range s.servers {
			srv.Shutdown()
		}
	})
}

func (s *dnsTestServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	network := w.RemoteAddr().Network()
	if len(req.Question) == 1 {
		q := req.Question[0]
		key := dnsTestKey{dnsCanon(q.Name), q.Qtype}
		s.mu.Lock()
		s.queries[network]++
		s.asked = append(s.asked, key)
		if rc, ok := s.rcode[key.name]; ok {
			resp.Rcode = rc
		} else if !s.hasNameLocked(key.name) {
			resp.Rcode = dns.RcodeNameError
		} else {
			resp.Answer = slices.Clone(s.answer[key])
			resp.Extra = slices.Clone(s.extra[key])
		}
		s.mu.Unlock()
	}
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = int(opt.UDPSize())
		resp.SetEdns0(opt.UDPSize(), false)
	}
	if network == "udp" {
		s.mu.Lock()
		if s.udpMax > 0 {
			size = min(size, s.udpMax)
		}
		s.mu.Unlock()
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}

func (s *dnsTestServer) hasNameLocked(name string) bool {
	for k, v := range s.answer {
		if k.name == name && len(v) > 0 {
			return true
		}
	}
	return false
}

// set replaces the answer to (name, qtype) by the records, given in zone file
// syntax; no records deletes it.
func (s *dnsTestServer) set(t *testing.T, name string, qtype uint16, rrs ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer[dnsTestKey{dnsCanon(name), qtype}] = dnsParse(t, rrs...)
}

// setExtra replaces the Additional section sent with the answer to (name, qtype).
func (s *dnsTestServer) setExtra(t *testing.T, name string, qtype uint16, rrs ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extra[dnsTestKey{dnsCanon(name), qtype}] = dnsParse(t, rrs...)
}

// setRcode makes every query for name answer rcode; RcodeSuccess removes it.
func (s *dnsTestServer) setRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcode, dnsCanon(name))
	} else {
		s.rcode[dnsCanon(name)] = rcode
	}
}

func (s *dnsTestServer) setUDPMax(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.udpMax = n
}

func (s *dnsTestServer) counts() (udp, tcp int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries["udp"], s.queries["tcp"]
}

func (s *dnsTestServer) askedKeys() []dnsTestKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.asked)
}

func dnsParse(t *testing.T, rrs ...string) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad test record %q: %v", s, err)
		}
		out = append(out, rr)
	}
	return out
}

// dnsSyncBuffer is a bytes.Buffer safe for a logger and a test to share.
type dnsSyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *dnsSyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *dnsSyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func dnsTestLogger() (*slog.Logger, *dnsSyncBuffer) {
	buf := &dnsSyncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func dnsNewResolver(t *testing.T, s *dnsTestServer, cfg config.DNSDiscovery) *DNSResolver {
	t.Helper()
	cfg.Resolver = s.addr
	if cfg.Timeout == 0 {
		cfg.Timeout = config.Duration(time.Second)
	}
	r, err := NewDNSResolver(cfg)
	if err != nil {
		t.Fatalf("NewDNSResolver: %v", err)
	}
	r.Logger, _ = dnsTestLogger()
	return r
}

func dnsResolveOK(t *testing.T, r Resolver) ([]Endpoint, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	eps, ttl, err := r.Resolve(ctx)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return eps, ttl
}

func dnsWantEndpoints(t *testing.T, got, want []Endpoint) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("endpoints:\n got  %v\n want %v", got, want)
	}
}

// ---------------------------------------------------------------------------
// Resolver

func TestDNSResolverSRVWithAdditional(t *testing.T) {
	s := dnsStartServer(t)
	const name = "_http._tcp.app.internal."
	s.set(t, name, dns.TypeSRV,
		name+" 30 IN SRV 10 5 8080 node1.app.internal.",
		name+" 60 IN SRV 10 0 8081 Node2.App.Internal.", // case differs from the glue
		name+" 60 IN SRV 20 3 9090 node3.app.internal.",
		name+" 60 IN SRV 0 0 0 .", // "not available": ignored
	)
	s.setExtra(t, name, dns.TypeSRV,
		"node1.app.internal. 20 IN A 10.0.0.1",
		"node2.app.internal. 40 IN A 10.0.0.2",
		"node2.app.internal. 40 IN AAAA 2001:db8::2",
		"node3.app.internal. 90 IN A 10.0.0.3",
		"unrelated.app.internal. 1 IN A 10.9.9.9", // not used: no effect on TTL
	)
	// Type defaults to SRV for a name starting with "_".
	r := dnsNewResolver(t, s, config.DNSDiscovery{Name: "_http._tcp.app.internal"})

	eps, ttl := dnsResolveOK(t, r)
	dnsWantEndpoints(t, eps, []Endpoint{
		{Address: "10.0.0.1:8080", Weight: 5, Priority: 10},
		{Address: "10.0.0.2:8081", Weight: 1, Priority: 10},
		{Address: "10.0.0.3:9090", Weight: 3, Priority: 20},
		{Address: "[2001:db8::2]:8081", Weight: 1, Priority: 10},
	})
	if ttl != 20*time.Second {
		t.Errorf("ttl = %v, want 20s", ttl)
	}
	if udp, tcp := s.counts(); udp != 1 || tcp != 0 {
		t.Errorf("queries udp=%d tcp=%d, want 1 and 0 (no follow-up queries)", udp, tcp)
	}
}

func TestDNSResolverSRVFollowUpQueries(t *testing.T) {
	s := dnsStartServer(t)
	const name = "_api._tcp.svc.internal."
	s.set(t, name, dns.TypeSRV,
		name+" 30 IN SRV 1 10 8080 v4.svc.internal.",
		name+" 30 IN SRV 1 20 8081 v6.svc.internal.",
		name+" 30 IN SRV 2 30 8082 dual.svc.internal.",
		name+" 30 IN SRV 2 30 8083 gone.svc.internal.", // NXDOMAIN: skipped, logged
		name+" 30 IN SRV 2 30 8084 nodata.svc.internal.",
	)
	s.set(t, "v4.svc.internal.", dns.TypeA, "v4.svc.internal. 15 IN A 192.0.2.4")
	s.set(t, "v6.svc.internal.", dns.TypeAAAA, "v6.svc.internal. 25 IN AAAA ::1")
	s.set(t, "dual.svc.internal.", dns.TypeA, "dual.svc.internal. 40 IN A 192.0.2.10")
	s.set(t, "dual.svc.internal.", dns.TypeAAAA, "dual.svc.internal. 40 IN AAAA 2001:db8::10")
	s.set(t, "nodata.svc.internal.", dns.TypeTXT, `nodata.svc.internal. 5 IN TXT "no address"`)

	r := dnsNewResolver(t, s, config.DNSDiscovery{Name: "_api._tcp.svc.internal", Type: "srv"})
	log, buf := dnsTestLogger()
	r.Logger = log

	eps, ttl := dnsResolveOK(t, r)
	dnsWantEndpoints(t, eps, []Endpoint{
		{Address: "192.0.2.10:8082", Weight: 30, Priority: 2},
		{Address: "192.0.2.4:8080", Weight: 10, Priority: 1},
		{Address: "[2001:db8::10]:8082", Weight: 30, Priority: 2},
		{Address: "[::1]:8081", Weight: 20, Priority: 1},
	})
	if ttl != 15*time.Second {
		t.Errorf("ttl = %v, want 15s (the v4 target's A record)", ttl)
	}
	// Both A and AAAA asked for each target.
	asked := s.askedKeys()
	for _, target := range []string{"v4", "v6", "dual", "gone", "nodata"} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			if !slices.Contains(asked, dnsTestKey{target + ".svc.internal.", qt}) {
				t.Errorf("no %s query for target %s", dns.TypeToString[qt], target)
			}
		}
	}
	logs := buf.String()
	for _, target := range []string{"gone.svc.internal", "nodata.svc.internal"} {
		if !strings.Contains(logs, target) {
			t.Errorf("skipped target %s not logged; log:\n%s", target, logs)
		}
	}
}

func TestDNSResolverAAndAAAA(t *testing.T) {
	s := dnsStartServer(t)
	s.set(t, "app.internal.", dns.TypeA,
		"app.internal. 30 IN A 10.1.0.2",
		"app.internal. 12 IN A 10.1.0.1",
	)
	s.set(t, "app.internal.", dns.TypeAAAA, "app.internal. 7 IN AAAA fd00::1")
	s.set(t, "alias.internal.", dns.TypeA,
		"alias.internal. 5 IN CNAME app.internal.",
		"app.internal. 30 IN A 10.1.0.2",
	)

	t.Run("A", func(t *testing.T) {
		r := dnsNewResolver(t, s, config.DNSDiscovery{Name: "app.internal", Type: "A", Port: 8080})
		eps, ttl := dnsResolveOK(t, r)
		dnsWantEndpoints(t, eps, []Endpoint{
			{Address: "10.1.0.1:8080", Weight: 1},
			{Address: "10.1.0.2:8080", Weight: 1},
		})
		if ttl != 12*time.Second {
			t.Errorf("ttl = %v, want 12s", ttl)
		}
	})
	t.Run("default type is A", func(t *testing.T) {
		r := dnsNewResolver(t, s, config.DNSDiscovery{Name: "app.internal.", Port: 81})
		eps, _ := dnsResolveOK(t, r)
		dnsWantEndpoints(t, eps, []Endpoint{
			{Address: "10.1.0.1:81", Weight: 1},
			{Address: "10.1.0.2:81", Weight: 1},
		})
	})
	t.Run("AAAA", func(t *testing.T) {
		r := dnsNewResolver(t, s, config.DNSDiscovery{Name: "app.internal", Type: "AAAA", Port: 443})
		eps, ttl := dnsResolveOK(t, r)
		dnsWantEndpoints(t, eps, []Endpoint{{Address: "[fd00::1]:443", Weight: 1}})
		if ttl != 7*time.Second {
			t.Errorf("ttl = %v, want 7s", ttl)
		}
	})
	t.Run("CNAME TTL counts", func(t *testing.T) {
		r := dnsNewResolver(t, s, config.DNSDiscovery{Name: "alias.internal", Port: 80})
		eps, ttl := dnsResolveOK(t, r)
		dnsWantEndpoints(t, eps, []Endpoint{{Address: "10.1.0.2:80", Weight: 1}})
		if ttl != 5*time.Second {
			t.Errorf("ttl = %v, want 5s (the CNAME's)", ttl)
		}
	})
}

func TestDNSResolverTruncatedAnswerRetriesOverTCP(t *testing.T) {
	s := dnsStartServer(t)
	const name = "_big._tcp.app.internal."
	var srv, glue []string
	var want []Endpoint
	for i := range 40 {
		target := fmt.Sprintf("node-%02d.app.internal.", i)
		srv = append(srv, fmt.Sprintf("%s 300 IN SRV 0 %d 80 %s", name, i+1, target))
		glue = append(glue, fmt.Sprintf("%s %d IN A 10.2.0.%d", target, 100-i, i+1))
		want = append(want, Endpoint{Address: fmt.Sprintf("10.2.0.%d:80", i+1), Weight: i + 1})
	}
	slices.SortFunc(want, func(a, b Endpoint) int { return strings.Compare(a.Address, b.Address) })
	s.set(t, name, dns.TypeSRV, srv...)
	s.setExtra(t, name, dns.TypeSRV, glue...)
	s.setUDPMax(512)

	r := dnsNewResolver(t, s, config.DNSDiscovery{Name: name})
	eps, ttl := dnsResolveOK(t, r)
	dnsWantEndpoints(t, eps, want)
	if ttl != 61*time.Second {
		t.Errorf("ttl = %v, want 61s", ttl)
	}
	if udp, tcp := s.counts(); udp != 1 || tcp != 1 {
		t.Errorf("queries udp=%d tcp=%d, want 1 and 1", udp, tcp)
	}
}

func TestDNSResolverErrors(t *testing.T) {
	s := dnsStartServer(t)
	s.set(t, "_ok._tcp.app.internal.", dns.TypeSRV,
		"_ok._tcp.app.internal. 30 IN SRV 0 0 80 flaky.app.internal.")
	s.set(t, "flaky.app.internal.", dns.TypeA, "flaky.app.internal. 30 IN A 10.3.0.1")
	s.set(t, "_noaddr._tcp.app.internal.", dns.TypeSRV,
		"_noaddr._tcp.app.internal. 30 IN SRV 0 0 80 nowhere.app.internal.")
	s.set(t, "_broken._tcp.app.internal.", dns.TypeSRV,
		"_broken._tcp.app.internal. 30 IN SRV 0 0 80 broken.app.internal.")
	s.setRcode("broken.app.internal.", dns.RcodeServerFailure)
	s.set(t, "_fail._tcp.app.internal.", dns.TypeSRV,
		"_fail._tcp.app.internal. 30 IN SRV 0 0 80 flaky.app.internal.")
	s.setRcode("_fail._tcp.app.internal.", dns.RcodeServerFailure)
	s.setRcode("_refused._tcp.app.internal.", dns.RcodeRefused)

	for _, tc := range []struct {
		name, typ string
		noRecords bool
		contains  string
	}{
		{"_missing._tcp.app.internal", "", true, "NXDOMAIN"},
		{"_fail._tcp.app.internal", "", false, "SERVFAIL"},
		{"_refused._tcp.app.internal", "", false, "REFUSED"},
		{"flaky.app.internal", "AAAA", true, "no records"},            // NODATA
		{"_noaddr._tcp.app.internal", "", true, "no records"},         // target without address
		{"_broken._tcp.app.internal", "", false, "target broken.app"}, // target lookup failed
	} {
		t.Run(strings.TrimSpace(tc.name+" "+tc.typ), func(t *testing.T) {
			r := dnsNewResolver(t, s, config.DNSDiscovery{Name: tc.name, Type: tc.typ, Port: 80})
			eps, _, err := r.Resolve(context.Background())
			if err == nil {
				t.Fatalf("Resolve = %v, want an error", eps)
			}
			typ := dnsOr(tc.typ, "SRV")
			prefix := fmt.Sprintf("resolving %s %s via %s: ", tc.name, typ, s.addr)
			msg := err.Error()
			if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tc.contains) {
				t.Errorf("error %q, want prefix %q and %q in it", msg, prefix, tc.contains)
			}
			if got := errors.Is(err, ErrNoDNSRecords); got != tc.noRecords {
				t.Errorf("errors.Is(err, ErrNoDNSRecords) = %v, want %v (%v)", got, tc.noRecords, err)
			}
		})
	}

	t.Run("server down", func(t *testing.T) {
		r := dnsNewResolver(t, s, config.DNSDiscovery{Name: "_ok._tcp.app.internal", Timeout: config.Duration(300 * time.Millisecond)})
		dnsResolveOK(t, r)
		s.stop()
		start := time.Now()
		_, _, err := r.Resolve(context.Background())
		if err == nil || errors.Is(err, ErrNoDNSRecords) {
			t.Fatalf("Resolve with the server stopped: err = %v, want a failure", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Resolve took %v with a 300ms timeout", d)
		}
	})
}

func dnsOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestDNSResolverContextCancelled(t *testing.T) {
	// A UDP socket that never answers.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	r, err := NewDNSResolver(config.DNSDiscovery{Name: "app.internal", Port: 80, Resolver: pc.LocalAddr().String(), Timeout: config.Duration(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = r.Resolve(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Resolve took %v after the context expired", d)
	}
}

func TestNewDNSResolverConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  config.DNSDiscovery
		want string // String(), or "error: <substring>"
	}{
		{config.DNSDiscovery{Name: "_h._tcp.a.internal", Resolver: "10.0.0.53:5353"}, "_h._tcp.a.internal SRV via 10.0.0.53:5353"},
		{config.DNSDiscovery{Name: "a.internal", Port: 80, Resolver: "10.0.0.53"}, "a.internal A via 10.0.0.53:53"},
		{config.DNSDiscovery{Name: "a.internal", Type: "aaaa", Port: 80, Resolver: "::1"}, "a.internal AAAA via [::1]:53"},
		{config.DNSDiscovery{Name: "a.internal", Port: 80, Resolver: "[fd00::53]:53"}, "a.internal A via [fd00::53]:53"},
		{config.DNSDiscovery{Name: "_h._tcp.a.internal", Type: "A", Port: 80, Resolver: "10.0.0.53:53"}, "_h._tcp.a.internal A via 10.0.0.53:53"},
		{config.DNSDiscovery{Name: "", Resolver: "10.0.0.53:53"}, "error: name is required"},
		{config.DNSDiscovery{Name: "a.internal", Type: "MX", Resolver: "10.0.0.53:53"}, "error: unknown type"},
		{config.DNSDiscovery{Name: "a.internal", Resolver: "10.0.0.53:53"}, "error: port 0 out of range"},
		{config.DNSDiscovery{Name: "a.internal", Type: "AAAA", Port: 70000, Resolver: "10.0.0.53:53"}, "error: port 70000"},
		{config.DNSDiscovery{Name: "a.internal", Port: 80, Resolver: "10.0.0.53:x"}, "error: invalid port"},
		{config.DNSDiscovery{Name: "a..internal", Port: 80, Resolver: "10.0.0.53:53"}, "error: invalid name"},
	} {
		r, err := NewDNSResolver(tc.cfg)
		if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("NewDNSResolver(%+v) error = %v, want one containing %q", tc.cfg, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewDNSResolver(%+v): %v", tc.cfg, err)
			continue
		}
		if got := r.String(); got != tc.want {
			t.Errorf("NewDNSResolver(%+v) = %q, want %q", tc.cfg, got, tc.want)
		}
		if r.timeout != DNSDefaultTimeout {
			t.Errorf("timeout = %v, want the default %v", r.timeout, DNSDefaultTimeout)
		}
	}

	// Without a resolver: the first nameserver of /etc/resolv.conf.
	cc, err := dns.ClientConfigFromFile(DNSResolvConf)
	if err != nil || len(cc.Servers) == 0 {
		t.Logf("skipping the resolv.conf case: %v", err)
		return
	}
	r, err := NewDNSResolver(config.DNSDiscovery{Name: "a.internal", Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	if want := net.JoinHostPort(cc.Servers[0], cc.Port); r.server != want {
		t.Errorf("server = %q, want %q from %s", r.server, want, DNSResolvConf)
	}
}

// ---------------------------------------------------------------------------
// DiscoverLoop

// dnsMetricValue gathers reg and returns the value of the series of name
// with exactly these labels, or -1 when there is none.
func dnsMetricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// dnsWaitFor polls cond until it holds or the deadline passes.
func dnsWaitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dnsChanges collects what DiscoverLoop delivers, checking that onChange is
// never called concurrently or with an empty list.
type dnsChanges struct {
	t       *testing.T
	running atomic.Bool
	ch      chan []Endpoint
}

func dnsNewChanges(t *testing.T) *dnsChanges {
	return &dnsChanges{t: t, ch: make(chan []Endpoint, 100)}
}

func (c *dnsChanges) onChange(eps []Endpoint) {
	if !c.running.CompareAndSwap(false, true) {
		c.t.Error("onChange called concurrently")
	}
	defer c.running.Store(false)
	if len(eps) == 0 {
		c.t.Error("onChange called with no endpoints")
	}
	c.ch <- eps
}

func (c *dnsChanges) next(t *testing.T, within time.Duration) []Endpoint {
	t.Helper()
	select {
	case eps := <-c.ch:
		return eps
	case <-time.After(within):
		t.Fatalf("no onChange within %v", within)
		return nil
	}
}

func (c *dnsChanges) none(t *testing.T, during time.Duration) {
	t.Helper()
	select {
	case eps := <-c.ch:
		t.Fatalf("unexpected onChange(%v)", eps)
	case <-time.After(during):
	}
}

// dnsRunLoop starts DiscoverLoop and returns a function that cancels it and
// waits for it to return.
func dnsRunLoop(t *testing.T, pool string, r Resolver, minTTL, maxTTL time.Duration, m *DNSMetrics, log *slog.Logger, onChange func([]Endpoint)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		DiscoverLoop(ctx, pool, r, minTTL, maxTTL, m, log, onChange)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("DiscoverLoop did not return after its context was cancelled")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestDiscoverLoopFollowsDNS(t *testing.T) {
	s := dnsStartServer(t)
	const name = "_web._tcp.loop.internal."
	// TTL 0: the loop re-resolves every minTTL (50ms).
	s.set(t, name, dns.TypeSRV,
		name+" 0 IN SRV 0 1 8080 a.loop.internal.",
		name+" 0 IN SRV 0 1 8080 b.loop.internal.")
	s.setExtra(t, name, dns.TypeSRV,
		"a.loop.internal. 0 IN A 10.4.0.1",
		"b.loop.internal. 0 IN A 10.4.0.2")
	r := dnsNewResolver(t, s, config.DNSDiscovery{Name: name, Timeout: config.Duration(500 * time.Millisecond)})

	reg := prometheus.NewRegistry()
	m, err := NewDNSMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	log, logs := dnsTestLogger()
	changes := dnsNewChanges(t)
	const pool = "web"
	stop := dnsRunLoop(t, pool, r, 50*time.Millisecond, 100*time.Millisecond, m, log, changes.onChange)
	metric := func(name, result string) float64 {
		labels := map[string]string{"pool": pool}
		if result != "" {
			labels["result"] = result
		}
		return dnsMetricValue(t, reg, name, labels)
	}

	// The first answer is delivered at once.
	dnsWantEndpoints(t, changes.next(t, 2*time.Second), []Endpoint{
		{Address: "10.4.0.1:8080", Weight: 1},
		{Address: "10.4.0.2:8080", Weight: 1},
	})

	// Unchanged answers: resolved again, not delivered again.
	before := metric("edge_dns_resolutions_total", "success")
	dnsWaitFor(t, "three more resolutions", 5*time.Second, func() bool {
		return metric("edge_dns_resolutions_total", "success") >= before+3
	})
	changes.none(t, 10*time.Millisecond)

	// Records change: the new set arrives within about a period.
	s.set(t, name, dns.TypeSRV,
		name+" 0 IN SRV 0 1 8080 a.loop.internal.",
		name+" 0 IN SRV 5 7 9090 c.loop.internal.")
	s.setExtra(t, name, dns.TypeSRV,
		"a.loop.internal. 0 IN A 10.4.0.1",
		"c.loop.internal. 0 IN A 10.4.0.3")
	want := []Endpoint{
		{Address: "10.4.0.1:8080", Weight: 1},
		{Address: "10.4.0.3:9090", Weight: 7, Priority: 5},
	}
	dnsWantEndpoints(t, changes.next(t, 2*time.Second), want)
	if got := metric("edge_dns_nodes", ""); got != 2 {
		t.Errorf("edge_dns_nodes = %v, want 2", got)
	}
	if got := metric("edge_dns_last_success_timestamp_seconds", ""); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("edge_dns_last_success_timestamp_seconds = %v, want about now", got)
	}

	// The server fails: the last good set stays, failures are counted.
	s.setRcode(name, dns.RcodeServerFailure)
	dnsWaitFor(t, "two failures counted", 3*time.Second, func() bool {
		return metric("edge_dns_resolutions_total", "failure") >= 2
	})
	changes.none(t, 100*time.Millisecond)
	if !strings.Contains(logs.String(), "SERVFAIL") {
		t.Errorf("failure not logged; log:\n%s", logs)
	}

	// The name disappears: counted as empty, the last good set stays.
	s.setRcode(name, dns.RcodeSuccess)
	s.set(t, name, dns.TypeSRV)
	dnsWaitFor(t, "an empty answer counted", 5*time.Second, func() bool {
		return metric("edge_dns_resolutions_total", "empty") >= 1
	})
	changes.none(t, 100*time.Millisecond)
	if got := metric("edge_dns_nodes", ""); got != 2 {
		t.Errorf("edge_dns_nodes = %v after failures, want 2 (the last good answer)", got)
	}

	// Back, unchanged: nothing to deliver. Then changed: delivered.
	s.set(t, name, dns.TypeSRV,
		name+" 0 IN SRV 0 1 8080 a.loop.internal.",
		name+" 0 IN SRV 5 7 9090 c.loop.internal.")
	successes := metric("edge_dns_resolutions_total", "success")
	dnsWaitFor(t, "a success after recovery", 5*time.Second, func() bool {
		return metric("edge_dns_resolutions_total", "success") > successes
	})
	changes.none(t, 100*time.Millisecond)
	s.set(t, name, dns.TypeSRV, name+" 0 IN SRV 0 1 8080 a.loop.internal.")
	dnsWantEndpoints(t, changes.next(t, 2*time.Second), []Endpoint{{Address: "10.4.0.1:8080", Weight: 1}})

	stop()
	if udp, _ := s.counts(); udp == 0 {
		t.Error("no queries reached the server")
	}
}

// dnsFakeResolver answers from a function, counting calls.
type dnsFakeResolver struct {
	calls atomic.Int64
	fn    func(ctx context.Context, call int64) ([]Endpoint, time.Duration, error)
}

func (f *dnsFakeResolver) Resolve(ctx context.Context) ([]Endpoint, time.Duration, error) {
	return f.fn(ctx, f.calls.Add(1))
}

func TestDiscoverLoopServerDownKeepsLastGood(t *testing.T) {
	s := dnsStartServer(t)
	s.set(t, "app.down.internal.", dns.TypeA, "app.down.internal. 0 IN A 10.5.0.1")
	r := dnsNewResolver(t, s, config.DNSDiscovery{Name: "app.down.internal", Port: 80, Timeout: config.Duration(100 * time.Millisecond)})
	reg := prometheus.NewRegistry()
	m, err := NewDNSMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	changes := dnsNewChanges(t)
	log, _ := dnsTestLogger()
	dnsRunLoop(t, "down", r, 20*time.Millisecond, 50*time.Millisecond, m, log, changes.onChange)

	dnsWantEndpoints(t, changes.next(t, 2*time.Second), []Endpoint{{Address: "10.5.0.1:80", Weight: 1}})
	s.stop()
	dnsWaitFor(t, "failures counted", 5*time.Second, func() bool {
		return dnsMetricValue(t, reg, "edge_dns_resolutions_total", map[string]string{"pool": "down", "result": "failure"}) >= 2
	})
	changes.none(t, 100*time.Millisecond)
	if got := dnsMetricValue(t, reg, "edge_dns_nodes", map[string]string{"pool": "down"}); got != 1 {
		t.Errorf("edge_dns_nodes = %v, want 1", got)
	}
}

func TestDiscoverLoopOrderAndCopies(t *testing.T) {
	// Answers in varying order are the same set; onChange gets its own copy.
	r := &dnsFakeResolver{fn: func(_ context.Context, call int64) ([]Endpoint, time.Duration, error) {
		eps := []Endpoint{{Address: "10.0.0.2:80", Weight: 1}, {Address: "10.0.0.1:80", Weight: 1}}
		if call%2 == 0 {
			slices.Reverse(eps)
		}
		return eps, 0, nil
	}}
	changes := dnsNewChanges(t)
	stop := dnsRunLoop(t, "fake", r, 5*time.Millisecond, 10*time.Millisecond, nil, nil, func(eps []Endpoint) {
		got := slices.Clone(eps)
		eps[0].Address = "mutated" // must not affect the loop's own copy
		changes.onChange(got)
	})
	dnsWantEndpoints(t, changes.next(t, 2*time.Second), []Endpoint{{Address: "10.0.0.1:80", Weight: 1}, {Address: "10.0.0.2:80", Weight: 1}})
	dnsWaitFor(t, "several resolutions", 3*time.Second, func() bool { return r.calls.Load() >= 6 })
	stop()
	select {
	case eps := <-changes.ch:
		t.Errorf("onChange(%v) for an unchanged set", eps)
	default:
	}
}

func TestDiscoverLoopEmptyAndFailuresBeforeFirstAnswer(t *testing.T) {
	// Failures and empty answers before any good one: nothing delivered,
	// counted separately; then the first good answer is delivered.
	r := &dnsFakeResolver{fn: func(_ context.Context, call int64) ([]Endpoint, time.Duration, error) {
		switch call {
		case 1:
			return nil, 0, errors.New("boom")
		case 2:
			return nil, 0, nil // empty without an error
		case 3:
			return nil, 0, fmt.Errorf("resolving x: %w", ErrNoDNSRecords)
		}
		return []Endpoint{{Address: "10.0.0.1:80", Weight: 1}}, time.Hour, nil
	}}
	reg := prometheus.NewRegistry()
	m, err := NewDNSMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	changes := dnsNewChanges(t)
	log, _ := dnsTestLogger()
	dnsRunLoop(t, "fake", r, 5*time.Millisecond, 20*time.Millisecond, m, log, changes.onChange)
	dnsWantEndpoints(t, changes.next(t, 2*time.Second), []Endpoint{{Address: "10.0.0.1:80", Weight: 1}})
	for result, want := range map[string]float64{"failure": 1, "empty": 2, "success": 1} {
		if got := dnsMetricValue(t, reg, "edge_dns_resolutions_total", map[string]string{"pool": "fake", "result": result}); got != want {
			t.Errorf("resolutions{result=%s} = %v, want %v", result, got, want)
		}
	}
	// TTL of an hour, clamped to maxTTL 20ms: re-resolved soon.
	dnsWaitFor(t, "re-resolution after maxTTL", 2*time.Second, func() bool { return r.calls.Load() >= 6 })
}

func TestDiscoverLoopExitsOnCancel(t *testing.T) {
	t.Run("while resolving", func(t *testing.T) {
		started := make(chan struct{})
		var once sync.Once
		r := &dnsFakeResolver{fn: func(ctx context.Context, _ int64) ([]Endpoint, time.Duration, error) {
			once.Do(func() { close(started) })
			<-ctx.Done()
			return nil, 0, ctx.Err()
		}}
		called := atomic.Bool{}
		stop := dnsRunLoop(t, "p", r, time.Second, time.Minute, nil, nil, func([]Endpoint) { called.Store(true) })
		<-started
		stop()
		if called.Load() {
			t.Error("onChange called")
		}
	})
	t.Run("while waiting", func(t *testing.T) {
		r := &dnsFakeResolver{fn: func(context.Context, int64) ([]Endpoint, time.Duration, error) {
			return []Endpoint{{Address: "10.0.0.1:80", Weight: 1}}, time.Hour, nil
		}}
		changes := dnsNewChanges(t)
		stop := dnsRunLoop(t, "p", r, time.Minute, time.Hour, nil, nil, changes.onChange)
		changes.next(t, 2*time.Second)
		start := time.Now()
		stop()
		if d := time.Since(start); d > time.Second {
			t.Errorf("stop took %v", d)
		}
		if n := r.calls.Load(); n != 1 {
			t.Errorf("%d resolutions, want 1", n)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := &dnsFakeResolver{fn: func(ctx context.Context, _ int64) ([]Endpoint, time.Duration, error) {
			return []Endpoint{{Address: "10.0.0.1:80", Weight: 1}}, 0, nil
		}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			DiscoverLoop(ctx, "p", r, 0, 0, nil, nil, func([]Endpoint) { t.Error("onChange called") })
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("DiscoverLoop did not return")
		}
	})
}

func TestDNSBackoffAndJitter(t *testing.T) {
	minTTL, maxTTL := time.Second, 10*time.Second
	for failures, want := range []time.Duration{1, 2, 4, 8, 10, 10} {
		if got := dnsBackoff(minTTL, maxTTL, failures); got != want*time.Second {
			t.Errorf("dnsBackoff(%d) = %v, want %v", failures, got, want*time.Second)
		}
	}
	if got := dnsBackoff(time.Second, 5*time.Minute, 1000); got != 5*time.Minute {
		t.Errorf("dnsBackoff after 1000 failures = %v, want the cap", got)
	}
	for range 1000 {
		if j := dnsJitter(time.Second); j < 900*time.Millisecond || j > 1100*time.Millisecond {
			t.Fatalf("dnsJitter(1s) = %v, outside ±10%%", j)
		}
	}
}

func TestDNSMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	m1, err := NewDNSMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewDNSMetrics(reg) // e.g. after a reload: collectors reused
	if err != nil {
		t.Fatalf("second NewDNSMetrics on the same registry: %v", err)
	}
	m1.success("a", 3)
	m2.success("a", 4)
	if got := dnsMetricValue(t, reg, "edge_dns_resolutions_total", map[string]string{"pool": "a", "result": "success"}); got != 2 {
		t.Errorf("successes = %v, want 2 (shared collectors)", got)
	}
	m1.init("b")
	if got := dnsMetricValue(t, reg, "edge_dns_resolutions_total", map[string]string{"pool": "b", "result": "failure"}); got != 0 {
		t.Errorf("initialised failure series = %v, want 0", got)
	}
	m1.Forget("a")
	if got := dnsMetricValue(t, reg, "edge_dns_nodes", map[string]string{"pool": "a"}); got != -1 {
		t.Errorf("edge_dns_nodes{pool=a} = %v after Forget, want no series", got)
	}

	// A conflicting collector under the same name is an error.
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "edge_dns_nodes", Help: "x"}))
	if _, err := NewDNSMetrics(reg2); err == nil {
		t.Error("NewDNSMetrics with a conflicting edge_dns_nodes: no error")
	}

	// nil metrics and nil registry are fine.
	var nilM *DNSMetrics
	nilM.success("a", 1)
	nilM.count("a", DNSResultFailure)
	nilM.Forget("a")
	if _, err := NewDNSMetrics(nil); err != nil {
		t.Error(err)
	}
}
