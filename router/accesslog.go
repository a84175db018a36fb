package router

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/edge-router/edge/config"
)

// accessLogger formats one line per request on the request path into a
// pooled buffer and hands it to a writer goroutine over a bounded queue.
// When the writer falls behind, lines are dropped and counted rather than
// slowing requests down. A nil or "off" logger costs nothing.
type accessLogger struct {
	json    bool
	out     io.Writer
	closer  io.Closer
	lines   chan *[]byte
	done    chan struct{}
	dropped prometheus.Counter
	once    sync.Once
}

var lineBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// accessLogQueue is how many formatted lines may wait for the writer.
const accessLogQueue = 4096

func newAccessLogger(c config.AccessLog, dropped prometheus.Counter) (*accessLogger, error) {
	if c.Format == "" || c.Format == "off" {
		return nil, nil
	}
	al := &accessLogger{json: c.Format == "json", dropped: dropped, lines: make(chan *[]byte, accessLogQueue), done: make(chan struct{})}
	if c.Path == "" || c.Path == "-" {
		al.out = os.Stderr
	} else {
		f, err := os.OpenFile(c.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("opening access log: %w", err)
		}
		al.out, al.closer = f, f
	}
	go al.run()
	return al, nil
}

func (al *accessLogger) enabled() bool { return al != nil }

func (al *accessLogger) run() {
	defer close(al.done)
	for b := range al.lines {
		_, _ = al.out.Write(*b)
		*b = (*b)[:0]
		lineBufPool.Put(b)
	}
	if al.closer != nil {
		_ = al.closer.Close()
	}
}

// close stops the writer after it has written every queued line. Lines
// logged after close are dropped. Safe to call more than once, and on nil.
func (al *accessLogger) close() {
	if al == nil {
		return
	}
	al.once.Do(func() {
		close(al.lines)
	})
	<-al.done
}

func (al *accessLogger) log(ctx *fasthttp.RequestCtx, out *outcome, status int, dur time.Duration) {
	bp := lineBufPool.Get().(*[]byte)
	b := (*bp)[:0]
	if al.json {
		b = appendJSONLine(b, ctx, out, status, dur)
	} else {
		b = appendCombinedLine(b, ctx, out, status, dur)
	}
	*bp = b
	defer func() {
		// The queue was closed by a reload between our load of the logger
		// and now: drop the line.
		if recover() != nil {
			al.dropped.Inc()
		}
	}()
	select {
	case al.lines <- bp:
	default:
		al.dropped.Inc()
		lineBufPool.Put(bp)
	}
}

func responseBytes(ctx *fasthttp.RequestCtx) int {
	if n := ctx.Response.Header.ContentLength(); n >= 0 {
		return n
	}
	if !ctx.Response.IsBodyStream() {
		return len(ctx.Response.Body())
	}
	return -1
}

func outcomeNames(out *outcome) (route, node string) {
	route, node = "-", "-"
	if out.route != nil {
		route = out.route.name
	}
	if out.node != nil {
		node = out.node.Name
	}
	return route, node
}

// appendCombinedLine writes the combined log format followed by edge's own
// fields: request ID, route, node, total and upstream seconds.
func appendCombinedLine(b []byte, ctx *fasthttp.RequestCtx, out *outcome, status int, dur time.Duration) []byte {
	b = peerAddr(ctx).AppendTo(b)
	b = append(b, " - - ["...)
	b = time.Now().AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendPrintable(b, ctx.Method())
	b = append(b, ' ')
	b = appendPrintable(b, ctx.RequestURI())
	b = append(b, ' ')
	b = appendPrintable(b, ctx.Request.Header.Protocol())
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if n := responseBytes(ctx); n >= 0 {
		b = strconv.AppendInt(b, int64(n), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, " \""...)
	b = appendPrintable(b, ctx.Referer())
	b = append(b, "\" \""...)
	b = appendPrintable(b, ctx.UserAgent())
	b = append(b, "\" rid="...)
	b = appendPrintable(b, requestIDOf(ctx))
	route, node := outcomeNames(out)
	b = append(b, " route="...)
	b = append(b, route...)
	b = append(b, " node="...)
	b = append(b, node...)
	b = append(b, " dur="...)
	b = strconv.AppendFloat(b, dur.Seconds(), 'f', 6, 64)
	b = append(b, " up="...)
	b = strconv.AppendFloat(b, out.upstream.Seconds(), 'f', 6, 64)
	b = append(b, " retries="...)
	b = strconv.AppendInt(b, int64(out.retries), 10)
	if out.retryReason != "" {
		b = append(b, " retry_reason="...)
		b = append(b, out.retryReason...)
	}
	return append(b, '\n')
}

func appendJSONLine(b []byte, ctx *fasthttp.RequestCtx, out *outcome, status int, dur time.Duration) []byte {
	route, node := outcomeNames(out)
	b = append(b, `{"time":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","client":"`...)
	b = peerAddr(ctx).AppendTo(b)
	b = append(b, `","method":`...)
	b = appendJSONString(b, ctx.Method())
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, ctx.RequestURI())
	b = append(b, `,"host":`...)
	b = appendJSONString(b, ctx.Host())
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(responseBytes(ctx)), 10)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, requestIDOf(ctx))
	b = append(b, `,"route":`...)
	b = appendJSONString(b, []byte(route))
	b = append(b, `,"node":`...)
	b = appendJSONString(b, []byte(node))
	b = append(b, `,"duration":`...)
	b = strconv.AppendFloat(b, dur.Seconds(), 'f', 6, 64)
	b = append(b, `,"upstream_duration":`...)
	b = strconv.AppendFloat(b, out.upstream.Seconds(), 'f', 6, 64)
	b = append(b, `,"retries":`...)
	b = strconv.AppendInt(b, int64(out.retries), 10)
	if out.retryReason != "" {
		b = append(b, `,"retry_reason":`...)
		b = appendJSONString(b, []byte(out.retryReason))
	}
	if out.err != nil {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, []byte(out.err.Error()))
	}
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, ctx.UserAgent())
	return append(b, "}\n"...)
}

func requestIDOf(ctx *fasthttp.RequestCtx) []byte {
	if v := ctx.Response.Header.PeekBytes(hdrXRequestID); len(v) > 0 {
		return v
	}
	return ctx.Request.Header.PeekBytes(hdrXRequestID)
}

// appendPrintable copies v, replacing bytes that could forge a log line
// (control characters, quotes, backslashes, non-ASCII) with \xHH.
func appendPrintable(b, v []byte) []byte {
	const hexDigits = "0123456789abcdef"
	for _, c := range v {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendJSONString writes v as a JSON string; bytes outside printable ASCII
// are written as \u00XX so the line stays valid JSON whatever the client sent.
func appendJSONString(b, v []byte) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range v {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
