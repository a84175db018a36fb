package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edge-router/edge/config"
	"github.com/edge-router/edge/router"
)

// headerList collects repeated -H flags.
type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

const explainUsage = `usage: edge explain [-config FILE | -admin ADDR [-token T]] [-X METHOD] [-H 'Name: value']... [-client IP] [-json] URL

Says what edge does with a request to URL: the request as routed, the route
that takes it and why every other route does not, the pool and the node it
goes to, the cache entry that may answer it, or the error edge answers with.
Without -admin it evaluates FILE alone (node health unknown, cache empty);
with -admin it asks a running edge (real health and cache). Nothing is sent
to any node. Exit status: 0 when the request is served, 1 when edge answers
it with its own error (no route, bad path, access denied…), 2 on usage or
configuration errors.

`

// cmdExplain is `edge explain`.
func cmdExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "edge.yaml", "configuration file, evaluated offline when -admin is not given")
	admin := fs.String("admin", "", "admin `address` of a running edge to ask instead of reading -config")
	token := fs.String("token", os.Getenv("EDGE_ADMIN_TOKEN"), "admin bearer token (default $EDGE_ADMIN_TOKEN)")
	method := fs.String("X", "GET", "request `method`")
	var headers headerList
	fs.Var(&headers, "H", "request `field` as 'Name: value' (repeatable)")
	client := fs.String("client", "", "client `IP` address (default 192.0.2.1, a client on the internet)")
	asJSON := fs.Bool("json", false, "print the explanation as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), explainUsage)
		fs.PrintDefaults()
	}
	// Flags may come before or after the URL.
	var urls []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		urls = append(urls, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(urls) != 1 {
		fmt.Fprintf(stderr, "edge explain: want one URL, got %d\n", len(urls))
		fs.Usage()
		return 2
	}
	in := router.ExplainInput{Method: strings.ToUpper(*method), URL: urls[0], Headers: headers}
	if *client != "" {
		a, err := netip.ParseAddr(*client)
		if err != nil {
			fmt.Fprintf(stderr, "edge explain: -client %q is not an IP address\n", *client)
			return 2
		}
		in.Client = a
	}

	var e router.Explanation
	var err error
	if *admin != "" {
		e, err = explainRemote(*admin, *token, in)
	} else {
		var cfg *config.Config
		if cfg, err = config.Load(*path); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		e, err = router.ExplainOffline(cfg, in)
	}
	if err != nil {
		fmt.Fprintln(stderr, "edge explain:", err)
		return 2
	}
	if *asJSON {
		b, _ := json.MarshalIndent(e, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		_ = e.WriteText(stdout)
	}
	if e.Error != "" {
		return 1
	}
	return 0
}

// explainRemote asks a running edge's admin API for the explanation.
func explainRemote(admin, token string, in router.ExplainInput) (router.Explanation, error) {
	q := url.Values{"url": {in.URL}, "method": {in.Method}}
	for _, h := range in.Headers {
		q.Add("header", h)
	}
	if in.Client.IsValid() {
		q.Set("client", in.Client.String())
	}
	var e router.Explanation
	body, err := adminGet(admin, token, "/explain?"+q.Encode())
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("reading the admin API's answer: %w", err)
	}
	return e, nil
}

// adminGet GETs path from a running edge's admin API and returns the
// body of a 200 answer; any other answer is an error carrying its body.
func adminGet(admin, token, path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the admin API's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var je struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &je) == nil && je.Error != "" {
			msg = je.Error
		}
		return nil, fmt.Errorf("admin API answered %s: %s", resp.Status, msg)
	}
	return body, nil
}
