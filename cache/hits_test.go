package cache

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// hitEntries are entries of several shapes, more than a P's slots.
func hitEntries() []*Entry {
	var es []*Entry
	for i := range 3 * hitSlotCount {
		es = append(es, ctEntry(func(e *Entry) {
			e.Header = slices.Clone(e.Header)
			e.Header = append(e.Header, Field{Name: []byte("x-n"), Value: fmt.Appendf(nil, "%d", i)})
			switch i % 4 {
			case 1:
				e.Header = slices.DeleteFunc(e.Header, func(f Field) bool { return string(f.Name) == "Content-Type" })
			case 2:
				e.Status = 404
				e.Header = append(e.Header, Field{Name: []byte("Server"), Value: []byte("origin")},
					Field{Name: []byte("Cache-Status"), Value: []byte("upstream; hit")})
			case 3:
				e.Body = nil
			}
			e.Date += int64(i)
			e.AgeValue = int64(i)
		}))
	}
	return es
}

// TestHitWriterAsEntryWrite serves entries through a server with the
// router's settings, with HitWriter and with Entry.Write, and compares
// what reaches the client: byte for byte the same, the stored Date and
// no invented Content-Type, also for HEAD and for a client that closes.
func TestHitWriterAsEntryWrite(t *testing.T) {
	es := hitEntries()
	var round atomic.Int64
	var w HitWriter
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	srv := &fasthttp.Server{
		NoDefaultDate:        true,
		NoDefaultContentType: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			var n int
			var how, kind string
			if parts := strings.Split(string(ctx.Path()), "/"); len(parts) == 4 {
				fmt.Sscanf(parts[1], "%d", &n) //nolint:errcheck
				how, kind = parts[2], parts[3]
			}
			// Something written before, as a failed revalidation leaves;
			// a connection to close stays one to close.
			ctx.Response.Header.Set("X-Old", "left over")
			ctx.Response.SetBodyString("old body")
			if len(ctx.QueryArgs().Peek("close")) > 0 {
				ctx.Response.SetConnectionClose()
			}
			e, resp := es[n], &ctx.Response
			now, extra := hitRound(int(round.Load()))
			if how != "hit" {
				defer setExtra(&resp.Header, extra)
			}
			switch {
			case how == "hit" && kind == "200":
				w.Write(e, resp, now, nil, extra)
			case how == "hit" && kind == "304":
				w.WriteNotModified(e, resp, now, nil, extra)
			case how == "hit" && kind == "206":
				w.WriteRange(e, resp, 1, 2, false, now, nil, extra)
			case how == "hit" && kind == "416":
				w.WriteRange(e, resp, 0, 0, true, now, nil, extra)
			case kind == "200":
				e.Write(resp, now, nil)
			case kind == "304":
				e.WriteNotModified(resp, now, nil)
			case kind == "206":
				e.WriteRange(resp, 1, 2, false, now, nil)
			case kind == "416":
				e.WriteRange(resp, 0, 0, true, now, nil)
			}
		},
	}
	go srv.Serve(ln)     //nolint:errcheck
	defer srv.Shutdown() //nolint:errcheck

	get := func(method, path string, closing int) string {
		t.Helper()
		conn, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		extra := ""
		switch closing {
		case 1:
			extra = "Connection: close\r\n"
		case 2:
			path += "?close=1"
		}
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: edge\r\n%s\r\n", method, path, extra)
		// The bytes as sent: the head, then the body its Content-Length
		// announces (none for HEAD).
		br := bufio.NewReader(conn)
		var head strings.Builder
		length := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s %s: %v after %q", method, path, err, head.String())
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				fmt.Sscanf(v, "%d", &length) //nolint:errcheck
			}
		}
		if method == "HEAD" {
			length = 0
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("%s %s: body: %v", method, path, err)
		}
		return head.String() + string(body)
	}
	// Seeded from a response as the server hands it over.
	seeded := make(chan struct{})
	seedSrv := &fasthttp.Server{
		NoDefaultDate:        true,
		NoDefaultContentType: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			w.Seed(&ctx.Response.Header)
			close(seeded)
		},
	}
	seedLn := fasthttputil.NewInmemoryListener()
	defer seedLn.Close()
	go seedSrv.Serve(seedLn) //nolint:errcheck
	defer seedSrv.Shutdown() //nolint:errcheck
	c, err := seedLn.Dial()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n")
	_, _ = io.ReadAll(c)
	c.Close()
	<-seeded

	// Each entry's rounds one after the other, so that its slot is
	// brought up to date (and the others' replaced) in between.
	for i, e := range es {
		for _, kind := range []string{"200", "304", "206", "416"} {
			if kind == "206" && len(e.Body) < 3 {
				continue
			}
			for r := range hitRounds {
				round.Store(int64(r))
				for _, method := range []string{"GET", "HEAD"} {
					for closing := range 3 {
						want := get(method, fmt.Sprintf("/%d/write/%s", i, kind), closing)
						got := get(method, fmt.Sprintf("/%d/hit/%s", i, kind), closing)
						if got != want {
							t.Fatalf("round %d, entry %d, %s %s (closing %d):\n got  %q\n want %q", r, i, kind, method, closing, got, want)
						}
						if !strings.HasPrefix(got, "HTTP/1.1 "+map[string]string{"200": strconv.Itoa(e.Status), "304": "304", "206": "206", "416": "416"}[kind]+" ") {
							t.Fatalf("entry %d, %s: status line of\n%s", i, kind, got)
						}
						if !strings.Contains(got, "\r\nDate: "+string(fasthttp.AppendHTTPDate(nil, time.Unix(e.Date, 0)))+"\r\n") {
							t.Errorf("entry %d, %s: stored Date not sent:\n%s", i, kind, got)
						}
						if strings.Contains(got, "X-Old") || strings.Contains(got, "old body") {
							t.Errorf("entry %d, %s: old response left:\n%s", i, kind, got)
						}
						if closes := strings.Contains(got, "\r\nConnection: close\r\n"); closes != (closing > 0) {
							t.Errorf("entry %d, %s, closing %d: Connection: close sent %v:\n%s", i, kind, closing, closes, got)
						}
					}
				}
			}
		}
	}
}

// hitRounds are the rounds of hitRound.
const hitRounds = 7

// hitRound is the time and the extra field of a round of writes: the
// same as the round before, then Age changes, then extra's value, then
// its name, then none.
func hitRound(r int) (time.Time, Field) {
	now := ptT0.Add(90 * time.Second)
	if r >= 2 {
		now = now.Add(1500 * time.Millisecond)
	}
	status := Field{Name: []byte("Cache-Status"), Value: []byte("edge; hit; ttl=10")}
	switch r {
	case 3, 4:
		status.Value = []byte("edge; fwd=stale; ttl=-3")
	case 5:
		status = Field{Name: []byte("X-Request-Id"), Value: []byte("abc")}
	case 6:
		status = Field{}
	}
	return now, status
}

// TestHitWriterUnseeded is Entry.Write.
func TestHitWriterUnseeded(t *testing.T) {
	var w HitWriter
	e := ctEntry(nil)
	now := ptT0.Add(90 * time.Second)
	var a, b fasthttp.Response
	a.Header.SetConnectionClose()
	b.Header.SetConnectionClose()
	w.Write(e, &a, now, nil, Field{})
	e.Write(&b, now, nil)
	if ctWire(&a) != ctWire(&b) {
		t.Errorf("got\n%s\nwant\n%s", ctWire(&a), ctWire(&b))
	}
}

// TestHitWriterSeededSettings: the seed's settings, not the response's,
// and its fields as Entry.Write puts them.
func TestHitWriterSeededSettings(t *testing.T) {
	var seed fasthttp.ResponseHeader
	seed.SetNoDefaultContentType(true)
	seed.Set("X-Seed", "not copied")
	var w HitWriter
	w.Seed(&seed)
	e := ctEntry(func(e *Entry) {
		e.Header = slices.DeleteFunc(slices.Clone(e.Header), func(f Field) bool { return string(f.Name) == "Content-Type" })
	})
	now := ptT0.Add(90 * time.Second)
	for i := range 4 {
		var resp, want fasthttp.Response
		want.Header.SetNoDefaultContentType(true)
		resp.Header.Set("X-Old", "left over")
		if i%2 == 1 {
			resp.Header.SetConnectionClose()
			want.Header.SetConnectionClose()
		}
		e.Write(&want, now, nil)
		w.Write(e, &resp, now, nil, Field{})
		if got, want := ctFields(&resp.Header), ctFields(&want.Header); !slices.Equal(got, want) {
			t.Errorf("fields\n got  %q\n want %q", got, want)
		}
		if ct := resp.Header.ContentType(); len(ct) != 0 {
			t.Errorf("Content-Type %q invented", ct)
		}
		if string(resp.Body()) != "0123456789" || &resp.Body()[0] != &e.Body[0] {
			t.Errorf("body %q not e.Body", resp.Body())
		}
	}
}

func TestHitWriterConcurrent(t *testing.T) {
	var seed fasthttp.ResponseHeader
	seed.SetNoDefaultContentType(true)
	var w HitWriter
	w.Seed(&seed)
	es := hitEntries()
	// The seed's settings are a plain header's (fasthttp's own clock for
	// Date on the wire): compare the fields and the body.
	answer := func(resp *fasthttp.Response) string {
		return fmt.Sprintf("%d %q %q", resp.StatusCode(), ctFields(&resp.Header), resp.Body())
	}
	// Every entry as a whole, a 304 and, with a body, a 206, in every
	// round of hitRound.
	write := func(w *HitWriter, e *Entry, kind, r int, resp *fasthttp.Response, buf []byte) []byte {
		now, extra := hitRound(r)
		switch {
		case kind == 1:
			return w.WriteNotModified(e, resp, now, buf, extra)
		case kind == 2 && len(e.Body) > 2:
			return w.WriteRange(e, resp, 1, 2, false, now, buf, extra)
		}
		return w.Write(e, resp, now, buf, extra)
	}
	wants := make([][3][hitRounds]string, len(es))
	for i, e := range es {
		for kind := range 3 {
			for r := range hitRounds {
				var resp fasthttp.Response
				resp.Header.SetNoDefaultContentType(true)
				write(new(HitWriter), e, kind, r, &resp, nil) // unseeded: Entry's own
				wants[i][kind][r] = answer(&resp)
			}
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var resp fasthttp.Response
			var buf []byte
			for n := range 5000 {
				i, kind, r := (n*7+g)%len(es), (n/5+g)%3, (n/3+g)%hitRounds
				buf = write(&w, es[i], kind, r, &resp, buf)
				if got := answer(&resp); got != wants[i][kind][r] {
					t.Errorf("entry %d, kind %d, round %d:\n got  %q\n want %q", i, kind, r, got, wants[i][kind][r])
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestHitWriterAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop what it holds")
	}
	var seed fasthttp.ResponseHeader
	var w HitWriter
	w.Seed(&seed)
	e := ctEntry(nil)
	var resp fasthttp.Response
	var buf []byte
	now := ptT0.Add(time.Second)
	status := Field{Name: []byte("Cache-Status"), Value: []byte("edge; hit; ttl=10")}
	if n := testing.AllocsPerRun(1000, func() { buf = w.Write(e, &resp, now, buf, status) }); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
}

func BenchmarkHitWriter(b *testing.B) {
	var seed fasthttp.ResponseHeader
	var w HitWriter
	w.Seed(&seed)
	e := ctEntry(nil)
	now := ptT0.Add(time.Second)
	b.Run("Entry.Write", func(b *testing.B) {
		var resp fasthttp.Response
		var buf []byte
		for b.Loop() {
			buf = e.Write(&resp, now, buf)
		}
	})
	b.Run("HitWriter.Write", func(b *testing.B) {
		var resp fasthttp.Response
		var buf []byte
		for b.Loop() {
			buf = w.Write(e, &resp, now, buf, Field{})
		}
	})
}
