package main

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// content makes the deterministic bodies that the origins send and the
// clients expect: every node answers the same bytes for the same path, so
// a client can check a body exactly whichever node (or the cache) served it.
type content struct {
	pat []byte // printable, so a mismatch shows readable bytes
}

const patternSize = 2 << 20

func newContent(seed uint64) *content {
	r := rand.New(rand.NewPCG(seed, 0x50a4))
	pat := make([]byte, patternSize)
	for i := range pat {
		pat[i] = 'a' + byte(r.IntN(26))
	}
	return &content{pat: pat}
}

// Kinds of path served by the origins: /<kind>/<key>.
const (
	kindSmall = "small" // 64–511 bytes
	kindB64   = "b64"   // exactly 64 KiB: the largest body edge reads whole
	kindCache = "cache" // 2–4 KiB, Cache-Control: public, max-age=2
	kindBig   = "big"   // 256 KiB – 1 MiB, streamed by edge
)

// bodySize is the size of /<kind>/<key>'s body.
func bodySize(kind string, k int) int {
	switch kind {
	case kindSmall:
		return 64 + (k*37)%448
	case kindB64:
		return 64 << 10
	case kindCache:
		return 2048 + (k*53)%2048
	case kindBig:
		return (256 << 10) * (1 + k%4)
	}
	return -1
}

// body returns the body of /<kind>/<key> (a slice of the pattern: do not
// modify it), or nil for an unknown kind.
func (c *content) body(kind string, k int) []byte {
	size := bodySize(kind, k)
	if size < 0 || k < 0 {
		return nil
	}
	salt := 0
	for _, ch := range kind {
		salt = salt*31 + int(ch)
	}
	off := (k*7919 + salt*104729) % (len(c.pat) - size)
	return c.pat[off : off+size]
}

// uploadBody is the body a client sends to POST /upload.
func (c *content) uploadBody(k, size int) []byte {
	off := (k * 6151) % (len(c.pat) - size)
	return c.pat[off : off+size]
}

// uploadAnswer is what /upload answers for a body.
func uploadAnswer(n int64, crc uint32) string {
	return fmt.Sprintf("len=%d crc=%08x\n", n, crc)
}

// parsePath splits "/kind/key".
func parsePath(p string) (kind string, k int, ok bool) {
	rest, found := strings.CutPrefix(p, "/")
	if !found {
		return "", 0, false
	}
	kind, key, found := strings.Cut(rest, "/")
	if !found {
		return "", 0, false
	}
	k, err := strconv.Atoi(key)
	if err != nil || k < 0 {
		return "", 0, false
	}
	return kind, k, bodySize(kind, k) >= 0
}

// recorder remembers, per X-Request-ID, what the origins did with each
// attempt ("node3:garbage, node1:ok"), so that a failed request can be
// explained. It keeps the last recorderSize IDs.
type recorder struct {
	mu   sync.Mutex
	m    map[string]string
	ring []string
	pos  int
}

const recorderSize = 1 << 16

func newRecorder() *recorder {
	return &recorder{m: make(map[string]string, recorderSize), ring: make([]string, recorderSize)}
}

func (r *recorder) add(id, what string) {
	if id == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.m[id]; ok {
		r.m[id] = prev + ", " + what
		return
	}
	if old := r.ring[r.pos]; old != "" {
		delete(r.m, old)
	}
	r.ring[r.pos] = id
	r.pos = (r.pos + 1) % len(r.ring)
	r.m[id] = what
}

func (r *recorder) get(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

// Misbehaviours of the bad node.
const (
	actOK       = "ok"
	actReset    = "reset"    // RST without an answer
	actHang     = "hang"     // no answer for longer than response_header_timeout
	actGarbage  = "garbage"  // a garbage status line
	actTruncate = "truncate" // Content-Length announced, half the body sent, then close
	act503      = "503"      // 503 Service Unavailable
)

var allActs = []string{actReset, actHang, actGarbage, actTruncate, act503}

// origin is one node of the pool, run in this process.
type origin struct {
	name    string
	addr    string // fixed after the first start
	bad     bool
	badRate float64
	acts    []string
	hangMin time.Duration
	hangMax time.Duration
	content *content
	rec     *recorder

	mu   sync.Mutex
	srv  *http.Server
	rng  *rand.Rand
	done chan struct{} // closed when the current Serve returned

	conns  atomic.Int64 // open connections (edge's, and health checks)
	served atomic.Int64
	actMu  sync.Mutex
	acted  map[string]int64
	isDown atomic.Bool
}

func newOrigin(name string, bad bool, o *options, c *content, rec *recorder, seed uint64) *origin {
	return &origin{
		name: name, bad: bad, badRate: o.badRate, acts: o.acts,
		hangMin: o.hangMin, hangMax: o.hangMax,
		content: c, rec: rec,
		rng:   rand.New(rand.NewPCG(seed, 0x0419)),
		acted: map[string]int64{},
	}
}

// start listens (on a free port the first time, on the same one after) and
// serves in the background.
func (o *origin) start() error {
	addr := o.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may be briefly busy after a stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("origin %s: %w", o.name, err)
	}
	o.addr = ln.Addr().String()
	srv := &http.Server{
		Handler:           o,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				o.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				o.conns.Add(-1)
			}
		},
	}
	done := make(chan struct{})
	o.mu.Lock()
	o.srv, o.done = srv, done
	o.mu.Unlock()
	o.isDown.Store(false)
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return nil
}

// stop closes the listener and every connection: the node is down.
func (o *origin) stop() {
	o.mu.Lock()
	srv, done := o.srv, o.done
	o.srv = nil
	o.mu.Unlock()
	o.isDown.Store(true)
	if srv == nil {
		return
	}
	_ = srv.Close()
	<-done
}

func (o *origin) count(act string) {
	o.actMu.Lock()
	o.acted[act]++
	o.actMu.Unlock()
}

func (o *origin) actions() map[string]int64 {
	o.actMu.Lock()
	defer o.actMu.Unlock()
	m := make(map[string]int64, len(o.acted))
	for k, v := range o.acted {
		m[k] = v
	}
	return m
}

func (o *origin) pick() (string, time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.bad || len(o.acts) == 0 || o.rng.Float64() >= o.badRate {
		return actOK, 0
	}
	act := o.acts[o.rng.IntN(len(o.acts))]
	hang := o.hangMin
	if o.hangMax > o.hangMin {
		hang += time.Duration(o.rng.Int64N(int64(o.hangMax - o.hangMin)))
	}
	return act, hang
}

var garbageLines = []string{
	"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",
	"garbage from a misbehaving node\r\n\r\n",
	"HTTP/1.1 abc\r\n\r\n",
	"\x00\x01\x02\x03 binary junk\r\n\r\n",
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health" {
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	o.served.Add(1)
	act, hang := o.pick()
	if act == actTruncate && r.Method == http.MethodHead {
		act = actOK // a HEAD answer has no body to cut
	}
	o.count(act)
	o.rec.add(r.Header.Get("X-Request-ID"), o.name+":"+act)
	w.Header().Set("X-Node", o.name)

	switch act {
	case actReset:
		if c := hijack(w); c != nil {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
		return
	case actGarbage:
		if c := hijack(w); c != nil {
			_, _ = io.WriteString(c, garbageLines[int(o.served.Load())%len(garbageLines)])
			_ = c.Close()
		}
		return
	case actHang:
		t := time.NewTimer(hang)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		panic(http.ErrAbortHandler) // close without an answer
	case act503:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, o.name+" unavailable\n")
		return
	}

	var body []byte
	if r.URL.Path == "/upload" {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		h := crc32.NewIEEE()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			// edge gave up the upload, or this node went down under it.
			o.rec.add(r.Header.Get("X-Request-ID"), fmt.Sprintf("%s:upload cut after %d KiB", o.name, n>>10))
			panic(http.ErrAbortHandler)
		}
		body = []byte(uploadAnswer(n, h.Sum32()))
		w.Header().Set("Content-Type", "text/plain")
	} else {
		kind, k, ok := parsePath(r.URL.Path)
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		body = o.content.body(kind, k)
		w.Header().Set("Content-Type", "application/octet-stream")
		if kind == kindCache {
			w.Header().Set("Cache-Control", "public, max-age=2")
		} else {
			w.Header().Set("Cache-Control", "no-store")
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if act == actTruncate {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler) // closes the connection mid-body
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	if n, err := w.Write(body); err != nil {
		// edge gave up the answer (its client went away), or this node
		// went down under it.
		o.rec.add(r.Header.Get("X-Request-ID"), fmt.Sprintf("%s:answer cut after %d KiB", o.name, n>>10))
	}
}

func hijack(w http.ResponseWriter) net.Conn {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil
	}
	c, _, err := hj.Hijack()
	if err != nil {
		return nil
	}
	return c
}

// chaos takes the bad node down for downMin–downMax, first after
// firstMin–firstMax, then again every gapMin–gapMax after it came back,
// until ctx ends (it is left up).
func chaos(ctx context.Context, o *origin, opts *options, seed uint64, logf func(string, ...any)) {
	rng := rand.New(rand.NewPCG(seed, 0xd0e1))
	between := func(a, b time.Duration) time.Duration {
		if b <= a {
			return a
		}
		return a + time.Duration(rng.Int64N(int64(b-a)))
	}
	wait := between(opts.firstDownMin, opts.firstDownMax)
	for {
		if !sleepCtx(ctx, wait) {
			return
		}
		down := between(opts.downMin, opts.downMax)
		logf("%s down for %s (listener and connections closed)", o.name, down.Round(time.Second))
		o.stop()
		ok := sleepCtx(ctx, down)
		if err := o.start(); err != nil {
			logf("%s could not come back: %v", o.name, err)
			return
		}
		if !ok {
			return
		}
		logf("%s back up", o.name)
		wait = between(opts.gapMin, opts.gapMax)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
