// Command origin is the streaming origin of bench/peers.sh's stream-1g
// scenario (the ../shared/bench/backend origins serve only 1 KiB and 64 KiB
// bodies, built in memory).
//
//	GET /stream?bytes=N  N bytes (default 1 GiB), Content-Length: N,
//	                     Cache-Control: no-store, written 64 KiB at a time as
//	                     fast as the connection takes them
//	any other path       1 KiB, Cache-Control: no-store (probes)
//
// The body comes from one shared 64 KiB buffer, so the origin's own memory
// stays flat whatever N is; a proxy in between that buffered the body
// instead of streaming it would show that in its peak RSS.
//
// Only loopback addresses are accepted: this is a benchmark fixture.
//
//	go run ./bench/origin -addr 127.0.0.1:19411
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

const (
	defaultBytes = 1 << 30
	maxBytes     = 64 << 30
	chunk        = 64 << 10
)

var block = make([]byte, chunk)

func main() {
	addr := flag.String("addr", "127.0.0.1:19411", "listen address (loopback only)")
	name := flag.String("name", "s1", "value of the X-Backend response header")
	flag.Parse()

	if err := checkLoopback(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(2)
	}
	for i := range block {
		block[i] = 'x'
	}
	srv := &http.Server{
		Addr:              *addr,
		Handler:           handler(*name),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Printf("stream origin %s listening on %s", *name, *addr)
	log.Fatal(srv.ListenAndServe())
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: only loopback IP addresses are allowed", addr)
	}
	return nil
}

func handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int64(1024)
		if r.URL.Path == "/stream" {
			var err error
			if n, err = size(r.URL.Query().Get("bytes")); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(n, 10))
		h.Set("Cache-Control", "no-store")
		h.Set("X-Backend", name)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		for n > 0 {
			k := min(n, chunk)
			if _, err := w.Write(block[:k]); err != nil {
				return // client gone
			}
			n -= k
		}
	})
}

// size parses the bytes parameter: empty means the default 1 GiB.
func size(s string) (int64, error) {
	if s == "" {
		return defaultBytes, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > maxBytes {
		return 0, errors.New("bytes: want an integer from 0 to 64 GiB")
	}
	return n, nil
}
