package router

import (
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"
)

// Sentinel errors of the request path. Callers compare with errors.Is.
var (
	// ErrNoNodeAvailable means every node of the pool is out of service
	// (or already tried): answered 503.
	ErrNoNodeAvailable = errors.New("no node available")
	// ErrNodeTimeout means a node did not answer in time: answered 504.
	ErrNodeTimeout = errors.New("node timed out")
	// ErrNodeBusy means a node had no free connection in time: answered 503.
	ErrNodeBusy = errors.New("node connection limit reached")
	// ErrBodyTooLarge means the request body exceeded the limit: answered 413.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrClientTimeout means the client was too slow sending its body:
	// answered 408.
	ErrClientTimeout = errors.New("client body timeout")
	// ErrBadRequestBody means the client's body was malformed (a broken
	// chunked encoding) or cut short: answered 400.
	ErrBadRequestBody = errors.New("malformed request body")
)

// dialError is a failure to connect to a node. Nothing reached the node,
// so the request is always safe to send to another node.
type dialError struct {
	node string
	err  error
}

func (e *dialError) Error() string { return fmt.Sprintf("dialing node %s: %v", e.node, e.err) }
func (e *dialError) Unwrap() error { return e.err }

// resetError is a connection that broke before any byte of a response
// arrived. On a kept-alive connection reused from the pool this is usually
// the node having closed it while idle.
type resetError struct {
	node   string
	sent   bool // false: writing the request failed, so the node processed nothing
	reused bool // the connection had carried requests before
	err    error
}

func (e *resetError) Error() string {
	if !e.sent {
		return fmt.Sprintf("node %s: connection broke while sending the request: %v", e.node, e.err)
	}
	return fmt.Sprintf("node %s: connection broke before a response: %v", e.node, e.err)
}
func (e *resetError) Unwrap() error { return e.err }

// isDialError reports whether err is a connection failure that is safe to
// retry on another node.
func isDialError(err error) bool {
	var d *dialError
	return errors.As(err, &d)
}

// classifyUpstreamError turns a fasthttp client error into one of our
// sentinels or typed errors, keeping the original for logs.
func classifyUpstreamError(node string, err error) error {
	switch {
	case err == nil:
		return nil
	case isDialError(err):
		return err
	case errors.As(err, new(*resetError)):
		return err
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fmt.Errorf("node %s: %w", node, ErrNodeBusy)
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), isTimeout(err):
		return fmt.Errorf("node %s: %w: %v", node, ErrNodeTimeout, err)
	case errors.Is(err, ErrBodyTooLarge), errors.Is(err, ErrClientTimeout), errors.Is(err, ErrBadRequestBody):
		// Failures reading the client's body surface through the client
		// library as write errors; keep their meaning.
		return err
	}
	return fmt.Errorf("node %s: %w", node, err)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// statusForError maps an error of the request path to the status sent to
// the client. It is the only place that does so; the error text itself is
// never sent to clients.
func statusForError(err error) int {
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge // 413
	case errors.Is(err, ErrClientTimeout):
		return fasthttp.StatusRequestTimeout // 408
	case errors.Is(err, ErrBadRequestBody):
		return fasthttp.StatusBadRequest // 400
	case errors.Is(err, ErrNoNodeAvailable), errors.Is(err, ErrNodeBusy):
		return fasthttp.StatusServiceUnavailable // 503
	case errors.Is(err, ErrNodeTimeout):
		return fasthttp.StatusGatewayTimeout // 504
	}
	return fasthttp.StatusBadGateway // 502: node unreachable or broken answer
}

// statusText is the short body sent with an error status. It never contains
// internal error text.
func statusText(status int) string {
	switch status {
	case fasthttp.StatusBadRequest:
		return "bad request\n"
	case fasthttp.StatusRequestTimeout:
		return "request timeout\n"
	case fasthttp.StatusRequestEntityTooLarge:
		return "request body too large\n"
	case fasthttp.StatusRequestURITooLong:
		return "request URI too long\n"
	case fasthttp.StatusRequestHeaderFieldsTooLarge:
		return "request header too large\n"
	case fasthttp.StatusNotFound:
		return "no route\n"
	case fasthttp.StatusBadGateway:
		return "bad gateway\n"
	case fasthttp.StatusServiceUnavailable:
		return "service unavailable\n"
	case fasthttp.StatusGatewayTimeout:
		return "gateway timeout\n"
	}
	return "error\n"
}
