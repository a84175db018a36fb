// Command demonode is a tiny app node for edge's demo (examples/demo.sh).
//
// It answers every path with a short text/plain page naming itself, and
// sets X-Node, so you can see which node edge picked:
//
//	GET /anything -> 200 "hello from node1\npath: /anything\n", X-Node: node1
//	GET /health   -> 200 "ok\n"
//
//	go run ./examples/demonode -addr 127.0.0.1:9001 -name node1
package main

import (
	"bytes"
	"flag"
	"log"
	"strings"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	name := flag.String("name", "node1", "node name shown in responses and in X-Node")
	flag.Parse()

	handler := func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.Response.Header.Set("X-Node", *name)
		if string(ctx.Path()) == "/health" {
			ctx.SetBodyString("ok\n")
			return
		}
		if bytes.HasPrefix(ctx.Path(), []byte("/catalog/")) {
			// A cacheable page, tagged for purging, as a shop would send it.
			ctx.Response.Header.Set("Cache-Control", "public, max-age=60")
			ctx.Response.Header.Set("X-Magento-Tags", "catalog,"+strings.TrimPrefix(string(ctx.Path()), "/catalog/"))
		}
		ctx.SetBodyString("hello from " + *name + "\npath: " + string(ctx.Path()) + "\n")
	}

	log.Printf("demonode %s listening on %s", *name, *addr)
	if err := fasthttp.ListenAndServe(*addr, handler); err != nil {
		log.Fatal(err)
	}
}
