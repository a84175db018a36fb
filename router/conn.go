package router

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// slidingConn turns the absolute deadlines that fasthttp sets into
// inactivity timeouts: after a deadline is set for d from now, every Read
// (or Write) pushes it to d from then. A long download or upload therefore
// lives as long as it keeps moving, while a stalled peer is cut after d,
// which is how nginx's proxy_read_timeout and send_timeout behave.
//
// fasthttp uses a connection from one goroutine at a time, but Close and
// deadline updates may come from others, so the fields are atomic.
type slidingConn struct {
	net.Conn
	readTimeout  atomic.Int64 // ns; 0 = no read deadline
	writeTimeout atomic.Int64 // ns; 0 = no write deadline
	readSetAt    atomic.Int64 // unix ns when the read deadline was last pushed
	writeSetAt   atomic.Int64
}

// refreshDivisor: a deadline is pushed only when 1/refreshDivisor of its
// timeout has passed since the last push, so a busy connection pays for
// one SetDeadline call per several reads or writes, not for each.
const refreshDivisor = 8

func (c *slidingConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(t, &c.readTimeout, &c.readSetAt, c.Conn.SetReadDeadline)
}

func (c *slidingConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(t, &c.writeTimeout, &c.writeSetAt, c.Conn.SetWriteDeadline)
}

func (c *slidingConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *slidingConn) setDeadline(t time.Time, timeout, setAt *atomic.Int64, set func(time.Time) error) error {
	if t.IsZero() {
		timeout.Store(0)
		return set(t)
	}
	now := time.Now()
	d := t.Sub(now)
	if d < time.Millisecond {
		d = time.Millisecond
	}
	timeout.Store(int64(d))
	setAt.Store(now.UnixNano())
	return set(t)
}

func (c *slidingConn) Read(p []byte) (int, error) {
	c.slide(&c.readTimeout, &c.readSetAt, c.Conn.SetReadDeadline)
	return c.Conn.Read(p)
}

func (c *slidingConn) Write(p []byte) (int, error) {
	c.slide(&c.writeTimeout, &c.writeSetAt, c.Conn.SetWriteDeadline)
	return c.Conn.Write(p)
}

func (c *slidingConn) slide(timeout, setAt *atomic.Int64, set func(time.Time) error) {
	d := timeout.Load()
	if d == 0 {
		return
	}
	now := time.Now()
	if now.UnixNano()-setAt.Load() < d/refreshDivisor {
		return
	}
	setAt.Store(now.UnixNano())
	_ = set(now.Add(time.Duration(d))) // an error here surfaces on the I/O call
}

// sendTimeoutConn is a client connection whose every Write must make
// progress within sendTimeout (nginx's send_timeout): the write deadline is
// pushed before writes, so a slow reader is cut while a large response that
// keeps moving is not. fasthttp's own WriteTimeout would bound the whole
// response instead.
type sendTimeoutConn struct {
	slidingConn
}

// sendTimeoutListener wraps accepted connections in sendTimeoutConn.
type sendTimeoutListener struct {
	net.Listener
	sendTimeout time.Duration
}

func (l *sendTimeoutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &sendTimeoutConn{slidingConn: slidingConn{Conn: c}}
	if l.sendTimeout > 0 {
		sc.writeTimeout.Store(int64(l.sendTimeout))
	}
	return sc, nil
}

// SetDeadline sets the read deadline as given and the write one as
// SetWriteDeadline does: fasthttp clears both with SetDeadline before it
// hands a connection over (a hijacked tunnel, HTTP/2), and that must not
// switch the send timeout off.
func (c *sendTimeoutConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline is the plain connection's: reads do not slide (Read),
// so there is no inactivity timeout to remember.
func (c *sendTimeoutConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// Read is the plain connection's: only writes slide. The request header
// must arrive within read_header_timeout of its start however slowly it
// trickles (slow-loris), and a streamed request body pushes its own
// deadline between reads (bodyReader).
func (c *sendTimeoutConn) Read(p []byte) (int, error) { return c.Conn.Read(p) }

// SetWriteDeadline keeps the send timeout in force: fasthttp clears write
// deadlines between requests when its own WriteTimeout is unset, and a
// cleared deadline must not disable the inactivity bound.
func (c *sendTimeoutConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	return c.slidingConn.SetWriteDeadline(t)
}

// retryListener keeps accepting through errors that pass: running out of
// file descriptors (EMFILE, ENFILE), of buffer space, or a connection
// aborted before it was accepted. fasthttp stops serving a listener at the
// first Accept error, so without this a burst that exhausts descriptors
// would end the listener for good. It waits 5 ms, doubling up to 1 s, as
// net/http does, and calls onError at most once a second.
type retryListener struct {
	net.Listener
	onError func(error)
	lastLog atomic.Int64
}

func (l *retryListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return wrapSysConn(c), nil
		}
		if !acceptErrorPasses(err) {
			return c, err
		}
		if now := time.Now().UnixNano(); now-l.lastLog.Load() > int64(time.Second) {
			l.lastLog.Store(now)
			if l.onError != nil {
				l.onError(err)
			}
		}
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		time.Sleep(delay)
	}
}

// acceptErrorPasses reports whether an Accept error is worth retrying.
func acceptErrorPasses(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}
