package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// smallBody is the largest response body of declared length that is read
// whole before the handler returns; larger bodies, and bodies of unknown
// length, are streamed from the node to the client as they arrive.
const smallBody = 64 << 10

// transport is the HostClient round trip edge uses instead of fasthttp's
// own. It differs in two ways that matter to a proxy:
//
//   - it never allocates per request: fasthttp's streaming mode wraps every
//     streamed response in a new reader with three closures, while here
//     small bodies are read into the pooled response buffer and large ones
//     go through a pooled reader that returns the connection when the
//     server has written the body (or closes it when it was cut short);
//   - it never retries: failover to another node is the proxy's decision.
//
// It is safe for concurrent use.
//
// It also carries the node's in-flight count: the proxy counts a request
// from the moment it picks the node, and when the response body is left
// to stream, the count is released only when the body has been passed on
// in full, so draining a node waits for long downloads too.
type transport struct {
	link *nodeLink
	node string // for errors
}

// RoundTrip implements fasthttp.RoundTripper.
func (t *transport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (retry bool, err error) {
	// Method expressions let roundTrip hold fasthttp's unexported
	// connection type without naming it, and cost nothing per call.
	_, err = roundTrip(t, hc, req, resp,
		(*fasthttp.HostClient).AcquireConn, (*fasthttp.HostClient).ReleaseConn, (*fasthttp.HostClient).CloseConn)
	return false, err
}

// pooledConn is fasthttp's pooled client connection.
type pooledConn interface {
	Conn() net.Conn
	LastUseTime() time.Time
}

// roundTrip sends req and reads the response header (and a small body).
// streaming reports that the body is left to stream, in which case the
// in-flight count is released when the stream is closed.
func roundTrip[C pooledConn](t *transport, hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response,
	acquire func(*fasthttp.HostClient, time.Duration, bool) (C, error),
	release, closeConn func(*fasthttp.HostClient, C),
) (streaming bool, err error) {
	cc, err := acquire(hc, 0, false)
	if err != nil {
		return false, err
	}
	reused := !cc.LastUseTime().IsZero()
	conn := cc.Conn()
	if hc.WriteTimeout > 0 {
		_ = conn.SetWriteDeadline(time.Now().Add(hc.WriteTimeout))
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		closeConn(hc, cc)
		if reused && !isTimeout(err) && !errors.Is(err, ErrBodyTooLarge) && !errors.Is(err, ErrClientTimeout) {
			return false, &resetError{node: t.node, sent: false, reused: true, err: err}
		}
		return false, err
	}

	if hc.ReadTimeout > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(hc.ReadTimeout))
	}
	br := hc.AcquireReader(conn)
	noBody := resp.SkipBody || req.Header.IsHead()
	resp.SkipBody = true // read the header (and any 1xx) only
	err = resp.ReadLimitBody(br, 0)
	resp.SkipBody = noBody
	if err != nil {
		hc.ReleaseReader(br)
		closeConn(hc, cc)
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			// The connection broke before any response: on a reused
			// connection, typically the node closing it while idle.
			return false, &resetError{node: t.node, sent: true, reused: reused, err: err}
		}
		return false, malformedAnswer(t.node, err)
	}
	reuse := !req.Header.ConnectionClose() && !resp.Header.ConnectionClose()
	status := resp.StatusCode()
	cl := resp.Header.ContentLength()

	// RFC 9112 §6.3: responses to HEAD, 1xx, 204 and 304 have no body.
	if noBody || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified {
		hc.ReleaseReader(br)
		if reuse {
			release(hc, cc)
		} else {
			closeConn(hc, cc)
		}
		return false, nil
	}
	if cl >= 0 && cl <= smallBody {
		err = resp.ReadBody(br, 0)
		hc.ReleaseReader(br)
		if err != nil {
			closeConn(hc, cc)
			return false, malformedAnswer(t.node, err)
		}
		if reuse {
			release(hc, cc)
		} else {
			closeConn(hc, cc)
		}
		return false, nil
	}

	body, _ := upstreamBodyPool.Get().(*upstreamBody[C])
	if body == nil {
		body = new(upstreamBody[C])
	}
	*body = upstreamBody[C]{hc: hc, cc: cc, br: br, release: release, closeConn: closeConn, reuse: reuse, inflight: &t.link.inflight}
	switch {
	case cl >= 0:
		body.mode, body.left = bodyFixed, int64(cl)
	case cl == -1:
		body.mode = bodyChunked
	default: // no length, no chunking: the body ends when the node closes
		body.mode, body.reuse = bodyUntilClose, false
		cl = -1
	}
	resp.SetBodyStream(body, cl)
	// The header goes out at once, not with the first 16 KiB of body: a
	// client sees a slow answer start. (A fixed-length body itself passes
	// through fasthttp's 16 KiB write buffer; a chunked one is flushed
	// chunk by chunk.)
	resp.ImmediateHeaderFlush = true
	return true, nil
}

// malformedAnswer classifies a failure to read a node's answer before any
// of it reached the client (a garbage status line or header, a body of up
// to 64 KiB cut short): like a connection reset after the request was
// sent, it counts against the node and may be retried on another node
// under the pool's retries (on: reset). A timeout stays a timeout.
func malformedAnswer(node string, err error) error {
	if isTimeout(err) {
		return err
	}
	return &resetError{node: node, sent: true, reused: false, err: err}
}

const (
	bodyFixed uint8 = iota
	bodyChunked
	bodyUntilClose
)

var upstreamBodyPool sync.Pool

// errBadChunk is a malformed chunked body from a node.
var errBadChunk = errors.New("malformed chunked body from node")

// upstreamBody streams a node's response body, decoding chunked framing
// (RFC 9112 §7.1), and gives the connection back to the pool once the body
// was read to its end, or closes it otherwise. fasthttp's server reads it
// and then calls CloseWithError, from the connection's one goroutine.
type upstreamBody[C pooledConn] struct {
	hc        *fasthttp.HostClient
	cc        C
	br        *bufio.Reader
	release   func(*fasthttp.HostClient, C)
	closeConn func(*fasthttp.HostClient, C)
	reuse     bool
	inflight  *atomic.Int64 // the node's in-flight count, released on close
	mode      uint8
	left      int64 // bytes left in the body (fixed) or the current chunk
	done      bool  // the body was read to its end
	err       error // sticky: once a read failed, every later read fails
	sink      bodySink
}

// bodySink sees a streamed body as it passes to the client: every piece
// read, then its end (nil after the whole body, else why it stopped). The
// cache fills entries through it. Its calls come from the goroutine
// reading the body.
type bodySink interface {
	write(p []byte)
	end(err error)
}

// sinkable is a streamed body that a bodySink can watch.
type sinkable interface {
	setSink(bodySink)
}

func (b *upstreamBody[C]) setSink(s bodySink) { b.sink = s }

// errBodyIncomplete ends a sink whose body was closed before its end.
var errBodyIncomplete = errors.New("body closed before its end")

// Read reads the body. An error is sticky: fasthttp's chunked writer
// ignores an error returned together with data and reads again, so a
// broken body must keep failing rather than resynchronise on later bytes.
func (b *upstreamBody[C]) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	if b.sink != nil {
		if n > 0 {
			b.sink.write(p[:n])
		}
		if err != nil {
			var why error
			if err != io.EOF {
				why = err
			}
			b.sink.end(why)
			b.sink = nil
		}
	}
	return n, err
}

func (b *upstreamBody[C]) read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.br == nil {
		return 0, errors.New("read from a closed upstream body")
	}
	switch b.mode {
	case bodyUntilClose:
		n, err := b.br.Read(p)
		if err == io.EOF {
			b.done = true
		}
		return n, err
	case bodyChunked:
		if b.left == 0 {
			size, err := readChunkSize(b.br)
			if err != nil {
				return 0, err
			}
			if size == 0 {
				if err := skipTrailers(b.br); err != nil {
					return 0, err
				}
				b.done = true
				return 0, io.EOF
			}
			b.left = size
		}
	}
	if b.left == 0 { // fixed body complete
		b.done = true
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, err
	}
	if b.left == 0 {
		if b.mode == bodyChunked {
			if err := expectCRLF(b.br); err != nil {
				return n, err
			}
		} else {
			b.done = true
		}
	}
	return n, nil
}

// CloseWithError implements fasthttp.ReadCloserWithError: fasthttp calls it
// when it is done with the body, with the error that stopped it, if any.
func (b *upstreamBody[C]) CloseWithError(err error) error {
	if b.sink != nil {
		b.sink.end(errBodyIncomplete)
		b.sink = nil
	}
	if b.br == nil {
		return nil
	}
	b.hc.ReleaseReader(b.br)
	if b.done && b.reuse && err == nil {
		b.release(b.hc, b.cc)
	} else {
		b.closeConn(b.hc, b.cc)
	}
	if b.inflight != nil {
		b.inflight.Add(-1)
	}
	*b = upstreamBody[C]{}
	upstreamBodyPool.Put(b)
	return nil
}

// maxChunkSize bounds one chunk's declared size (it is streamed, not
// buffered, but an absurd size is a framing error).
const maxChunkSize = 1 << 40

// readChunkSize reads "hex-size [BWS ; chunk-ext] CRLF" (RFC 9112 §7.1).
// Extensions are ignored, but must not carry control characters: a bare
// CR or LF inside the line would let a node frame messages differently
// for edge than for another parser.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			return 0, io.ErrUnexpectedEOF
		}
		return 0, errBadChunk
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, errBadChunk
	}
	line = line[:len(line)-2]
	var size int64
	i := 0
	for ; i < len(line); i++ {
		v, ok := hexValue(line[i])
		if !ok {
			break
		}
		size = size<<4 | int64(v)
		if size > maxChunkSize {
			return 0, errBadChunk
		}
	}
	if i == 0 {
		return 0, errBadChunk
	}
	ext := bytes.TrimLeft(line[i:], " \t")
	if len(ext) > 0 && ext[0] != ';' {
		return 0, errBadChunk
	}
	for _, c := range ext {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return 0, errBadChunk
		}
	}
	return size, nil
}

// hexValue is the value of a hexadecimal digit.
func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func expectCRLF(br *bufio.Reader) error {
	c1, err := br.ReadByte()
	if err != nil {
		return io.ErrUnexpectedEOF
	}
	c2, err := br.ReadByte()
	if err != nil {
		return io.ErrUnexpectedEOF
	}
	if c1 != '\r' || c2 != '\n' {
		return errBadChunk
	}
	return nil
}

// skipTrailers reads the trailer section up to its empty line. Trailers
// are not forwarded: edge does not announce them (Trailer is hop-by-hop
// here), and RFC 9110 §6.5.1 lets a recipient discard them.
func skipTrailers(br *bufio.Reader) error {
	for range 100 {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return errBadChunk
		}
		if len(line) == 2 && line[0] == '\r' {
			return nil
		}
	}
	return errBadChunk
}
