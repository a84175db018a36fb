package router

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsZone is an in-process DNS server, UDP and TCP on the same port of
// 127.0.0.1, answering SRV queries for one service name with a mutable set
// of targets (each with an A record 127.0.0.1 and its own port), TTL 1s.
type dnsZone struct {
	addr    string
	service string // fully qualified

	mu        sync.Mutex
	targets   map[string]int // target name (fully qualified) → port
	rcode     int            // when not success, every query gets it
	queries   int
	servfails int
}

func startDNSZone(t *testing.T, service string) *dnsZone {
	t.Helper()
	z := &dnsZone{service: dns.Fqdn(service), targets: map[string]int{}}
	z.addr = serveDNS(t, z)
	return z
}

func (z *dnsZone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	z.mu.Lock()
	z.queries++
	switch {
	case z.rcode != dns.RcodeSuccess:
		resp.Rcode = z.rcode
		z.servfails++
	case len(req.Question) != 1:
		resp.Rcode = dns.RcodeFormatError
	default:
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		switch {
		case name == z.service && q.Qtype == dns.TypeSRV:
			names := make([]string, 0, len(z.targets))
			for target := range z.targets {
				names = append(names, target)
			}
			slices.Sort(names)
			for _, target := range names {
				resp.Answer = append(resp.Answer, &dns.SRV{
					Hdr:      dns.RR_Header{Name: z.service, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1},
					Priority: 10, Weight: 1, Port: uint16(z.targets[target]), Target: target,
				})
				resp.Extra = append(resp.Extra, z.a(target))
			}
			if len(names) == 0 {
				resp.Rcode = dns.RcodeNameError
			}
		case z.targets[name] != 0 && q.Qtype == dns.TypeA:
			resp.Answer = append(resp.Answer, z.a(name))
		case z.targets[name] != 0:
			// The name exists, with no records of that type.
		default:
			resp.Rcode = dns.RcodeNameError
		}
	}
	z.mu.Unlock()
	_ = w.WriteMsg(resp)
}

func (z *dnsZone) a(name string) dns.RR {
	return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.IPv4(127, 0, 0, 1)}
}

// set replaces the targets: one per node, named t<i>.app.test., with the
// node's port.
func (z *dnsZone) set(t *testing.T, nodes map[string]*flipNode) {
	t.Helper()
	targets := map[string]int{}
	for name, n := range nodes {
		_, port, err := net.SplitHostPort(n.addr)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		targets[dns.Fqdn(name+".app.test")] = p
	}
	z.mu.Lock()
	z.targets = targets
	z.mu.Unlock()
}

func (z *dnsZone) setRcode(rcode int) {
	z.mu.Lock()
	z.rcode = rcode
	z.mu.Unlock()
}

func (z *dnsZone) servfailCount() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.servfails
}

const dnsConfig = `
listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
upstreams:
  app:
    policy: round_robin
    discovery:
      dns: {name: _http._tcp.app.test, resolver: "{{.Resolver}}", min_ttl: 100ms, max_ttl: 2s, timeout: 500ms}
routes:
  - name: app
    proxy: app
`

// poolAddrs returns the addresses of the pool's nodes, sorted.
func poolAddrs(t *testing.T, e *edgeUnderTest) []string {
	t.Helper()
	var out []string
	for _, n := range poolNow(t, e).Nodes {
		out = append(out, n.Address)
	}
	slices.Sort(out)
	return out
}

func addrsOf(nodes ...*flipNode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.addr)
	}
	slices.Sort(out)
	return out
}

func TestDNSDiscoveryFollowsRecords(t *testing.T) {
	a, b, c := startFlipNode(t, "a"), startFlipNode(t, "b"), startFlipNode(t, "c")
	zone := startDNSZone(t, "_http._tcp.app.test")
	zone.set(t, map[string]*flipNode{"a": a, "b": b})
	e := startEdge(t, dnsConfig, map[string]any{"Resolver": zone.addr})

	// The first resolution happens before the server starts.
	if got, want := poolAddrs(t, e), addrsOf(a, b); !slices.Equal(got, want) {
		t.Fatalf("discovered nodes %v, want %v", got, want)
	}
	if got := sendGETs(t, e, 20); got[200] != 20 {
		t.Fatalf("statuses %v, want 20 × 200", got)
	}
	if a.requests.Load() != 10 || b.requests.Load() != 10 || c.requests.Load() != 0 {
		t.Fatalf("requests a=%d b=%d c=%d, want 10, 10, 0", a.requests.Load(), b.requests.Load(), c.requests.Load())
	}

	// An operator's weight override on a node that stays in DNS.
	if status, body := adminDo(t, e, "POST", "/pools/app/nodes/"+a.addr+"/weight?weight=5"); status != 200 {
		t.Fatalf("weight: %d %s", status, body)
	}
	if n, _ := nodeNow(t, e, a.addr); n.Weight != 5 {
		t.Fatalf("a's weight %d after the override, want 5", n.Weight)
	}

	l := startLoad(t, e.url+"/", 4)
	waitRequests(t, a, 20, 2*time.Second)

	// b leaves, c joins: the pool follows within about the TTL (1s).
	zone.set(t, map[string]*flipNode{"a": a, "c": c})
	changed := time.Now()
	took := waitFor(t, 2500*time.Millisecond, "the pool to follow DNS", func() bool {
		return slices.Equal(poolAddrs(t, e), addrsOf(a, c))
	}, func() string { return fmt.Sprint(poolAddrs(t, e)) })
	t.Logf("pool followed the records after %v", took.Round(time.Millisecond))
	waitRequests(t, c, 20, 2*time.Second)
	// Requests picked before the change may still arrive at b.
	time.Sleep(50 * time.Millisecond)
	bGone := b.requests.Load()

	an, _ := nodeNow(t, e, a.addr)
	if an.Weight != 5 || an.WeightOverride != 5 || an.State != "up" {
		t.Errorf("a after the DNS change: weight %d, override %d, state %q; want 5, 5, up", an.Weight, an.WeightOverride, an.State)
	}
	// Round robin with weights 5 and 1: a takes about 5/6.
	a0, c0 := a.requests.Load(), c.requests.Load()
	time.Sleep(300 * time.Millisecond)
	da, dc := a.requests.Load()-a0, c.requests.Load()-c0
	if da+dc < 20 || float64(da)/float64(da+dc) < 0.7 {
		t.Errorf("after the DNS change a got %d and c %d requests; want about 5:1 (a's override kept)", da, dc)
	}
	if got := b.requests.Load(); got != bGone {
		t.Errorf("b got %d requests after it left DNS", got-bGone)
	}
	// A deployment stops a node once it is out of DNS: nothing fails.
	b.stop()

	// The resolver fails: the last good set stays.
	zone.setRcode(dns.RcodeServerFailure)
	waitFor(t, 5*time.Second, "two failed resolutions", func() bool { return zone.servfailCount() >= 2 })
	if got, want := poolAddrs(t, e), addrsOf(a, c); !slices.Equal(got, want) {
		t.Errorf("after SERVFAIL the pool is %v, want the last good %v", got, want)
	}
	waitRequests(t, a, 20, 2*time.Second)
	waitRequests(t, c, 5, 2*time.Second)
	zone.setRcode(dns.RcodeSuccess)

	// Recovery: a new answer is followed again.
	zone.set(t, map[string]*flipNode{"c": c})
	waitFor(t, 5*time.Second, "the pool to follow DNS after the failures", func() bool {
		return slices.Equal(poolAddrs(t, e), addrsOf(c))
	}, func() string { return fmt.Sprint(poolAddrs(t, e)) })
	t.Logf("DNS test ran %v after the first change", time.Since(changed).Round(time.Millisecond))
	l.check(t)
}
