package router

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium (package chromium), which .ci/run
// installs.
const chromiumPath = "/usr/bin/chromium"

// TestStatusPageInChromium drives the status page in headless Chromium as
// an operator would: log in with the token, watch three nodes come up, see
// one that stops go down, drain another through its button (accepting the
// confirmation), purge the cache, and keep a screenshot of the page; then
// load it again with JavaScript off.
func TestStatusPageInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: .ci/run installs Debian's chromium package", chromiumPath)
		}
		t.Skipf("%s is missing (apt-get install chromium): skipping the browser test", chromiumPath)
	}
	const token = "browser-test-token"
	nodes := startNodes(t, 3)
	e := startEdge(t, statusConfig, statusData(token, nodes...))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Some traffic, so the charts have something to draw.
	var wg sync.WaitGroup
	defer wg.Wait()
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	wg.Go(func() {
		c := testClient()
		for i := 0; trafficCtx.Err() == nil && i < 2000; i++ {
			if resp, err := c.Get(e.url + "/"); err == nil {
				resp.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	var chromeOut syncBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
		chromedp.CombinedOutput(&chromeOut),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc() // waits for the browser to exit
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	fail := func(step string, err error) {
		t.Helper()
		t.Fatalf("%s: %v\nchromium's output:\n%s", step, err, chromeOut.String())
	}

	// Confirmation dialogs are accepted, and remembered.
	var dialogMu sync.Mutex
	var dialogs []string
	if err := chromedp.Do(bctx); err != nil { // starts the browser and the tab
		fail("starting chromium", err)
	}
	go func() {
		for ev, err := range chromedp.Events(bctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			dialogMu.Lock()
			dialogs = append(dialogs, ev.Message)
			dialogMu.Unlock()
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()

	poll := func(step, expr string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			html, _ := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("body")))
			fail(step+" ("+expr+")\npage:\n"+html, err)
		}
	}

	// The page sends a browser to the login form; the token logs it in.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(e.admin+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
	); err != nil {
		fail("opening the login form", err)
	}
	res, err := chromedp.RunResponse(bctx, chromedp.Click(chromedp.ID("login")))
	if err != nil {
		fail("logging in", err)
	}
	if res.Status != 200 {
		t.Fatalf("after login: status %d, want the status page", res.Status)
	}
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil || loc != e.admin+"/" {
		t.Fatalf("after login the browser is at %q (%v), want %s/", loc, err, e.admin)
	}

	// The script runs (the page's CSP allows it by hash) and every node is
	// up.
	poll("the page goes live", `document.getElementById("live").classList.contains("on")`)
	poll("three nodes up", `document.querySelectorAll('tr[data-pool="app"][data-state="up"]').length === 3`)

	// A node that stops shows as down within a few check intervals.
	nodes[2].stop()
	poll("n2 down", `(function () { var r = document.querySelector('tr[data-node="n2"]'); return r && r.dataset.state === "down"; })()`)

	// Drain n1 with its button, accepting the confirmation.
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`button[data-act="state"][data-node="n1"][data-target="drain"]`))); err != nil {
		fail("clicking drain", err)
	}
	poll("n1 draining", `(function () { var r = document.querySelector('tr[data-node="n1"]'); return r && r.dataset.state === "draining"; })()`)
	poll("the result is shown", `document.getElementById("result").textContent.indexOf("n1 (app) is now draining") >= 0`)
	dialogMu.Lock()
	asked := strings.Join(dialogs, "\n")
	dialogMu.Unlock()
	if !strings.Contains(asked, "Drain node n1 of pool app?") {
		t.Errorf("confirmation dialogs %q: want one for draining n1", asked)
	}
	resp, body := do(t, testClient(), "GET", e.admin+"/pools/app", map[string]string{"Authorization": "Bearer " + token}, nil)
	var pv struct {
		Nodes []struct{ Name, State string }
	}
	if err := json.Unmarshal([]byte(body), &pv); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET /pools/app: %d %v %s", resp.StatusCode, err, body)
	}
	for _, n := range pv.Nodes {
		if n.Name == "n1" && n.State != "draining" {
			t.Errorf("GET /pools/app: n1 is %q, want draining", n.State)
		}
	}

	// Purge the cache, confirmed.
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.ID("purge"))); err != nil {
		fail("clicking purge", err)
	}
	poll("purge result", `document.getElementById("result").textContent.indexOf("cache purged") >= 0`)

	// Wait for a chart with a line, then keep a screenshot of the page.
	poll("a chart is drawn", `Array.from(document.querySelectorAll("polyline.rps")).some(function (p) { return p.getAttribute("points").split(" ").length > 2; })`)
	dir := os.Getenv("EDGE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keepScreenshot(t, bctx, filepath.Join(dir, "status-page.png"))

	// Without JavaScript (a new tab of the same browser, so logged in) the
	// server-rendered tables are there, as they were at load time.
	nojs, cancelNoJS := chromedp.NewContext(bctx)
	defer cancelNoJS()
	if _, err := chromedp.Call(nojs, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		fail("disabling JavaScript", err)
	}
	if err := chromedp.Do(nojs, chromedp.Navigate(e.admin+"/")); err != nil {
		fail("loading the page without JavaScript", err)
	}
	rows, err := chromedp.Run(nojs, chromedp.Nodes(chromedp.CSSAll(`tr[data-pool="app"][data-node]`)))
	if err != nil {
		fail("reading the rows without JavaScript", err)
	}
	states := map[string]string{}
	for _, r := range rows {
		states[r.AttributeValue("data-node")] = r.AttributeValue("data-state")
	}
	if states["n0"] != "up" || states["n1"] != "draining" || states["n2"] != "down" {
		t.Errorf("without JavaScript the rows say %v, want n0 up, n1 draining, n2 down", states)
	}
	live, err := chromedp.Run(nojs, chromedp.Text(chromedp.ID("live")))
	if err != nil || live != "static" {
		t.Errorf("without JavaScript the page says %q (%v), want static", live, err)
	}
	keepScreenshot(t, nojs, filepath.Join(dir, "status-page-nojs.png"))
}

// keepScreenshot takes a full-page screenshot, checks that it is a PNG of
// a real page, and writes it to path.
func keepScreenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 400 || len(shot) < 20<<10 {
		t.Fatalf("screenshot too small: %dx%d, %d bytes", b.Dx(), b.Dy(), len(shot))
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page: %s (%dx%d)", path, img.Bounds().Dx(), img.Bounds().Dy())
}

// syncBuffer is a bytes.Buffer safe for the browser's output goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
