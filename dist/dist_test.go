package dist

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/router"
)

// ---------------------------------------------------------------------
// The Grafana dashboard
// ---------------------------------------------------------------------

const dashboardFile = "grafana/edge.json"

// dashboard is the part of Grafana's dashboard JSON model the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Annotations   struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// dsVar is the data source variable every query goes through, so that
// the dashboard imports into any Grafana with any Prometheus data source.
const dsVar = "${DS_PROMETHEUS}"

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// queries returns every PromQL query of the dashboard, named by where it
// is: the panels' targets, the query variables and the annotations.
func (d dashboard) queries() map[string]string {
	q := map[string]string{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			q[fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID)] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var s string
		if json.Unmarshal(v.Query, &s) != nil {
			var obj struct {
				Query string `json:"query"`
			}
			_ = json.Unmarshal(v.Query, &obj)
			s = obj.Query
		}
		q["variable "+v.Name] = s + " " + v.Definition
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			q["annotation "+a.Name] = a.Expr
		}
	}
	return q
}

// metricNameRE finds metric names in PromQL: edge's own, and the process
// collector's that edge registers too.
var metricNameRE = regexp.MustCompile(`\b(?:edge|process)_[a-zA-Z0-9_]*[a-zA-Z0-9]`)

// metricNames returns the metric names a query uses.
func metricNames(expr string) []string {
	// Label values and legend text are quoted; metric names never are.
	unquoted := regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(expr, `""`)
	return metricNameRE.FindAllString(unquoted, -1)
}

func TestDashboardModel(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want a uid, a title and schemaVersion ≥ 36 (Grafana 9+)", d.UID, d.Title, d.SchemaVersion)
	}
	var hasDS bool
	for _, v := range d.Templating.List {
		if v.Name == "DS_PROMETHEUS" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			hasDS = true
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != dsVar) {
			t.Errorf("variable %s: datasource %+v, want uid %s", v.Name, v.Datasource, dsVar)
		}
	}
	if !hasDS {
		t.Errorf("no datasource variable DS_PROMETHEUS of type prometheus")
	}
	ids := map[int]string{}
	for _, p := range allPanels(d.Panels) {
		if other, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or also used by %q", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsVar {
			t.Errorf("panel %q: datasource %+v, want uid %s", p.Title, p.Datasource, dsVar)
		}
		if len(p.Targets) == 0 && p.Type != "text" {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("panel %q: a target without expr or refId", p.Title)
			}
			if tg.Datasource != nil && tg.Datasource.UID != dsVar {
				t.Errorf("panel %q target %s: datasource %+v, want uid %s", p.Title, tg.RefID, tg.Datasource, dsVar)
			}
			if strings.Contains(tg.Expr, "[5m]") || strings.Contains(tg.Expr, "[1m]") {
				t.Errorf("panel %q target %s: use $__rate_interval, not a fixed range", p.Title, tg.RefID)
			}
		}
	}
}

// The operator's view asks for these; each must be queried somewhere.
func TestDashboardCoversTheOperatorsView(t *testing.T) {
	used := map[string]bool{}
	for _, expr := range loadDashboard(t).queries() {
		for _, n := range metricNames(expr) {
			used[n] = true
		}
	}
	for _, want := range []string{
		"edge_http_requests_total",                          // requests/s by route and class, error ratio
		"edge_http_request_duration_seconds_bucket",         // p50/p99 per route
		"edge_upstream_request_duration_seconds_bucket",     // upstream latency per node
		"edge_health_node_state",                            // node state
		"edge_health_ejections_total",                       // ejections
		"edge_upstream_retries_total",                       // retries
		"edge_http_requests_in_flight",                      // in flight
		"edge_upstream_connections",                         // connections to nodes
		"edge_cache_requests_total",                         // hit ratio
		"edge_cache_bytes",                                  // bytes held
		"edge_cache_objects",                                // objects held
		"edge_cache_purges_total",                           // purges
		"edge_tls_certificate_expiry_timestamp_seconds",     // certificate expiry
		"edge_config_last_reload_successful",                // reload state
		"edge_config_reloads_total",                         // reloads
		"edge_limit_triggered_total",                        // limits
		"edge_http_connections_rejected_total",              // max_connections
		"edge_config_last_reload_success_timestamp_seconds", // age of the configuration
	} {
		if !used[want] {
			t.Errorf("the dashboard does not query %s", want)
		}
	}
}

// TestDashboardMetricsAreExported starts a real edge, makes it export
// every series it creates lazily, and checks that every metric the
// dashboard queries is one that edge exports.
func TestDashboardMetricsAreExported(t *testing.T) {
	queries := loadDashboard(t).queries()
	e := startEdge(t)
	e.exercise(t)

	type use struct{ name, where string }
	var uses []use
	for where, expr := range queries {
		for _, n := range metricNames(expr) {
			uses = append(uses, use{n, where})
		}
	}
	if len(uses) < 20 {
		t.Fatalf("only %d metric uses found in %s", len(uses), dashboardFile)
	}
	// Series appear as the requests above are counted: poll until every
	// family is there.
	var missing []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		types := e.metricTypes(t)
		missing = missing[:0]
		for _, u := range uses {
			if !exported(types, u.name) {
				missing = append(missing, fmt.Sprintf("%s (%s)", u.name, u.where))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	sort.Strings(missing)
	for _, m := range slices.Compact(missing) {
		t.Errorf("the dashboard queries %s, which edge does not export", m)
	}
}

// exported reports whether name is a family in types, or a histogram's
// _bucket, _sum or _count series.
func exported(types map[string]string, name string) bool {
	if _, ok := types[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if typ := types[base]; typ == "histogram" || (typ == "summary" && suffix != "_bucket") {
				return true
			}
		}
	}
	return false
}

// edgeUnderTest is a running edge with two loopback nodes.
type edgeUnderTest struct {
	http, https, admin string
	client             *http.Client
}

const testConfig = `
listeners:
  - {name: http, address: "127.0.0.1:0"}
  - {name: https, address: "127.0.0.1:0", tls: true}
admin: {address: "127.0.0.1:0"}
tls:
  certificates: [{cert: %q, key: %q}]
cache:
  purge: {allow: ["127.0.0.0/8"]}
upstreams:
  app:
    policy: round_robin
    nodes:
      - {name: n1, address: %q}
      - {name: n2, address: %q}
    health_check: {path: /health, interval: 200ms, timeout: 100ms}
    retries: {attempts: 1, on: ["503"]}
routes:
  - name: limited
    match: {path: /limited}
    proxy: app
    rate_limit: {requests_per_second: 1, burst: 1}
  - name: cached
    match: {path_prefix: /cached/}
    proxy: app
    cache: {}
  - name: app
    proxy: app
`

// startNode starts a loopback HTTP node: /flaky answers 503,
// /cached/private a private page, /cached/… a cacheable, tagged page,
// anything else 200.
func startNode(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Node", name)
			switch {
			case r.URL.Path == "/flaky":
				w.WriteHeader(http.StatusServiceUnavailable)
			case r.URL.Path == "/cached/private":
				w.Header().Set("Cache-Control", "private")
			case strings.HasPrefix(r.URL.Path, "/cached/"):
				w.Header().Set("Cache-Control", "public, max-age=60")
				w.Header().Set("Surrogate-Key", "page")
			}
			fmt.Fprintf(w, "%s %s\n", name, r.URL.Path)
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// writeCert writes a self-signed certificate for localhost and its key.
func writeCert(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func startEdge(t *testing.T) *edgeUnderTest {
	t.Helper()
	dir := t.TempDir()
	certPath, keyPath := writeCert(t, dir)
	path := filepath.Join(dir, "edge.yaml")
	cfgText := fmt.Sprintf(testConfig, certPath, keyPath, startNode(t, "n1"), startNode(t, "n2"))
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("loading the test configuration: %v", err)
	}
	srv, err := router.New(cfg, router.Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	addrs := srv.Addrs()
	if len(addrs) != 2 || srv.AdminAddr() == nil {
		t.Fatalf("listeners %v, admin %v: want two listeners and the admin", addrs, srv.AdminAddr())
	}
	return &edgeUnderTest{
		http:  "http://" + addrs[0].String(),
		https: addrs[1].String(),
		admin: "http://" + srv.AdminAddr().String(),
		client: &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test's own self-signed certificate
			},
		},
	}
}

// do sends a request and returns the status.
func (e *edgeUnderTest) do(t *testing.T, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// exercise sends the requests that create edge's lazily created series:
// answers by route and node, cache hits, stores and a refusal to store, a
// retry, a rate limit, purges, a reload and TLS handshakes, good and bad.
func (e *edgeUnderTest) exercise(t *testing.T) {
	t.Helper()
	for _, path := range []string{"/", "/cached/a", "/cached/a", "/cached/private", "/flaky", "/limited", "/limited", "/limited"} {
		e.do(t, http.MethodGet, e.http+path)
	}
	if got := e.do(t, http.MethodGet, "https://"+e.https+"/cached/b"); got != http.StatusOK {
		t.Errorf("GET over HTTPS: %d", got)
	}
	if got := e.do(t, "PURGE", e.http+"/cached/a"); got != http.StatusOK {
		t.Errorf("PURGE: %d", got)
	}
	if got := e.do(t, http.MethodPost, e.admin+"/cache/purge?tag=page"); got != http.StatusOK {
		t.Errorf("admin purge: %d", got)
	}
	if got := e.do(t, http.MethodPost, e.admin+"/reload"); got != http.StatusOK {
		t.Errorf("reload: %d", got)
	}
	// A client that speaks plain HTTP to the HTTPS listener.
	c, err := net.DialTimeout("tcp", e.https, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	_, _ = io.Copy(io.Discard, c)
	_ = c.Close()
}

// metricTypes scrapes /metrics and returns each family's type, from the
// "# TYPE" lines of the Prometheus text format.
func (e *edgeUnderTest) metricTypes(t *testing.T) map[string]string {
	t.Helper()
	resp, err := e.client.Get(e.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	types := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("DIST_PRINT_METRICS") != "" {
		names := make([]string, 0, len(types))
		for n, typ := range types {
			names = append(names, n+" "+typ)
		}
		sort.Strings(names)
		t.Logf("exported:\n%s", strings.Join(names, "\n"))
	}
	return types
}

// ---------------------------------------------------------------------
// The systemd units
// ---------------------------------------------------------------------

// unitFile is a systemd unit: section → key → values in file order.
type unitFile map[string]map[string][]string

func readUnit(t *testing.T, path string) unitFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, i+1, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// last is the value in force: the last one given.
func (u unitFile) last(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func TestEdgeUnitHardening(t *testing.T) {
	u := readUnit(t, "edge.service")
	for _, tc := range []struct{ key, want string }{
		{"Type", "exec"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"NoNewPrivileges", "yes"},
		{"CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
		{"AmbientCapabilities", "CAP_NET_BIND_SERVICE"},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"MemoryDenyWriteExecute", "yes"},
		{"LockPersonality", "yes"},
		{"RestrictNamespaces", "yes"},
		{"RestrictSUIDSGID", "yes"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectControlGroups", "yes"},
		{"SystemCallArchitectures", "native"},
		{"StateDirectory", "edge"},
		{"ConfigurationDirectory", "edge"},
		{"Restart", "on-failure"},
		{"KillSignal", "SIGTERM"},
	} {
		if got := u.last("Service", tc.key); got != tc.want {
			t.Errorf("[Service] %s=%q, want %q", tc.key, got, tc.want)
		}
	}
	if !slices.Contains(u["Service"]["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter=%q, want @system-service among them", u["Service"]["SystemCallFilter"])
	}
	if u.last("Service", "DynamicUser") != "yes" && u.last("Service", "User") != "edge" {
		t.Errorf("want DynamicUser=yes or User=edge")
	}
	if n, err := strconv.Atoi(u.last("Service", "LimitNOFILE")); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE=%q, want at least 65536", u.last("Service", "LimitNOFILE"))
	}
	if r := u["Service"]["ExecReload"]; len(r) == 0 || !strings.Contains(r[len(r)-1], "kill -HUP $MAINPID") {
		t.Errorf("ExecReload=%q: the last one must send SIGHUP (edge reloads on it)", r)
	}
	if u.last("Install", "WantedBy") != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%q", u.last("Install", "WantedBy"))
	}

	// The unit's directories and timeout match edge's defaults: ACME
	// storage in the StateDirectory, a stop timeout above the grace period.
	cfg := loadString(t, `
listeners: [{address: "127.0.0.1:0", tls: true}]
tls: {acme: {agreed: true, names: [shop.example.com]}}
routes: [{name: ok, respond: {status: 200}}]
`)
	if state := "/var/lib/" + u.last("Service", "StateDirectory") + "/"; !strings.HasPrefix(cfg.TLS.ACME.Storage, state) {
		t.Errorf("tls.acme.storage defaults to %s, outside StateDirectory %s", cfg.TLS.ACME.Storage, state)
	}
	stop, err := time.ParseDuration(u.last("Service", "TimeoutStopSec"))
	if err != nil || stop <= cfg.Server.GracePeriod.D() {
		t.Errorf("TimeoutStopSec=%q, want a duration above server.grace_period's default %s", u.last("Service", "TimeoutStopSec"), cfg.Server.GracePeriod.D())
	}
}

func TestDeployUnit(t *testing.T) {
	u := readUnit(t, "edge-deploy.service")
	for _, tc := range []struct{ key, want string }{
		{"Type", "exec"},
		{"KillMode", "mixed"},
		{"Restart", "on-failure"},
		{"RestartPreventExitStatus", "2"},
		{"PrivateTmp", "yes"},
		{"ProtectSystem", "full"},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
	} {
		if got := u.last("Service", tc.key); got != tc.want {
			t.Errorf("[Service] %s=%q, want %q", tc.key, got, tc.want)
		}
	}
	if u.last("Service", "User") == "" || u.last("Service", "User") == "root" {
		t.Errorf("User=%q: the agent runs as the deploy root's owner", u.last("Service", "User"))
	}
	// The agent waits up to 5 minutes for an operation in progress.
	if d, err := time.ParseDuration(strings.ReplaceAll(u.last("Service", "TimeoutStopSec"), "min", "m")); err != nil || d <= 5*time.Minute {
		t.Errorf("TimeoutStopSec=%q, want more than 5min", u.last("Service", "TimeoutStopSec"))
	}
}

func loadString(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text), "test.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// buildCommand builds ./cmd/NAME into dir.
func buildCommand(t *testing.T, dir, name string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binaries with")
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(goBin, "build", "-o", out, "../cmd/"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ../cmd/%s: %v\n%s", name, err, b)
	}
	return out
}

// execArgs splits an Exec line into words, dropping systemd's prefixes
// ("-", "@", "+", "!", ":") and expanding ${VAR} from env.
func execArgs(line string, env map[string]string) []string {
	line = strings.TrimLeft(line, "-@+!:")
	args := strings.Fields(line)
	for i, a := range args {
		args[i] = os.Expand(a, func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return "${" + k + "}"
		})
	}
	return args
}

// unitEnv returns the unit's Environment= assignments.
func unitEnv(u unitFile) map[string]string {
	env := map[string]string{}
	for _, line := range u["Service"]["Environment"] {
		for _, kv := range strings.Fields(line) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	return env
}

// TestUnitCommands runs the units' commands, with the binaries built from
// this tree and a test configuration: the subcommands and flags must
// exist (a usage error exits 2), "edge check" must pass on a good file.
// Where systemd-analyze is installed, it verifies the units too.
func TestUnitCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	bin := t.TempDir()
	built := map[string]string{
		"/usr/local/bin/edge":        buildCommand(t, bin, "edge"),
		"/usr/local/bin/edge-deploy": buildCommand(t, bin, "edge-deploy"),
	}
	good, err := filepath.Abs("../examples/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	configs := map[string]bool{"/etc/edge/edge.yaml": true, "/etc/edge-deploy/deploy.yaml": true}

	for _, unit := range []string{"edge.service", "edge-deploy.service"} {
		u := readUnit(t, unit)
		env := unitEnv(u)
		ran := 0
		for _, key := range []string{"ExecStartPre", "ExecStart", "ExecReload"} {
			for _, line := range u["Service"][key] {
				args := execArgs(line, env)
				path, ok := built[args[0]]
				if !ok {
					if _, err := os.Stat(args[0]); err != nil && args[0] != "/bin/kill" {
						t.Errorf("%s %s: %s does not exist", unit, key, args[0])
					}
					continue
				}
				// check runs on a good file and must pass; other commands
				// get a missing file and must fail on it (exit 1), after
				// their flags were accepted.
				check := len(args) > 1 && args[1] == "check"
				for i, a := range args {
					if configs[a] {
						args[i] = missing
						if check {
							args[i] = good
						}
					}
				}
				cmd := exec.Command(path, args[1:]...)
				cmd.Env = append(os.Environ(), "EDGE_ADMIN_TOKEN=", "EDGE_DEPLOY_TOKEN=")
				out, err := cmd.CombinedOutput()
				code := cmd.ProcessState.ExitCode()
				want := 1
				if check {
					want = 0
				}
				if code != want || (!check && !strings.Contains(string(out), "missing.yaml")) {
					t.Errorf("%s %s=%s: exit %d (%v), want %d\n%s", unit, key, line, code, err, want, out)
				}
				ran++
			}
		}
		if ran == 0 {
			t.Errorf("%s: no command of edge's was found to run", unit)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: units not verified by systemd")
		return
	}
	dir := t.TempDir()
	for _, unit := range []string{"edge.service", "edge-deploy.service"} {
		data, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		for from, to := range built {
			text = strings.ReplaceAll(text, from+" ", to+" ")
		}
		if err := os.WriteFile(filepath.Join(dir, unit), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, "verify", filepath.Join(dir, unit))
		out, err := cmd.CombinedOutput()
		if err != nil || regexp.MustCompile(`(?i)unknown|ignoring|failed|invalid|not executable`).Match(out) {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
}

// ---------------------------------------------------------------------
// The example configurations
// ---------------------------------------------------------------------

// exampleEnv are the variables the examples take their secrets from.
var exampleEnv = map[string]string{
	"EDGE_ADMIN_TOKEN": "test-admin-token",
	"EDGE_PURGE_TOKEN": "test-purge-token",
}

func TestExamplesLoad(t *testing.T) {
	for k, v := range exampleEnv {
		t.Setenv(k, v)
	}
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"edge.yaml", "magento.yaml", "php-app.yaml"} {
		if !slices.Contains(files, "../examples/"+want) {
			t.Errorf("examples/%s is missing", want)
		}
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatalf("%v", err)
			}
			if len(cfg.Routes) == 0 {
				t.Errorf("no routes")
			}
		})
	}
}
