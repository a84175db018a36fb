package router

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// sysConn is a TCP connection whose Read and Write make the read(2) and
// write(2) calls without telling the Go scheduler that a system call is
// under way (syscall.RawSyscall inside syscall.RawConn's callbacks).
//
// Why: the socket is non-blocking, so the call never waits; it only
// copies. A plain net.TCPConn enters the scheduler's "in a system call"
// state around each call, and while edge runs on one core the runtime's
// monitor thread then wakes every 20 µs to look for calls that last too
// long, and hands the processor to another thread when a loopback write
// happens to span two of its looks (futex wake-ups, thread switches).
// Side by side with the build before it (bench/peers.sh), edge spent
// 0.82× the CPU per proxied 1 KiB request and 0.73× per 64 KiB one. Waiting is still done by the runtime's network poller: when a call
// would block (EAGAIN), the callback returns false and RawConn waits for
// readiness, honouring deadlines and Close as net.TCPConn does.
//
// Everything else (deadlines, CloseWrite, addresses, ReadFrom for
// sendfile) is the embedded *net.TCPConn's. Like net.TCPConn, one Read and
// one Write may run at once, from different goroutines.
type sysConn struct {
	*net.TCPConn
	raw syscall.RawConn

	// The callbacks are made once, so that Read and Write allocate
	// nothing; their arguments and results pass through these fields,
	// which only the one Read (or Write) in progress touches.
	readFn, writeFn func(fd uintptr) bool
	rbuf, wbuf      []byte
	rn, wn          int
	rerr, werr      syscall.Errno
}

// newSysConn wraps c; when its raw descriptor cannot be had, c itself is
// returned unchanged.
func newSysConn(c *net.TCPConn) net.Conn {
	raw, err := c.SyscallConn()
	if err != nil {
		return c
	}
	sc := &sysConn{TCPConn: c, raw: raw}
	sc.readFn = sc.doRead
	sc.writeFn = sc.doWrite
	return sc
}

// wrapSysConn wraps c in a sysConn when it is a TCP connection.
func wrapSysConn(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		return newSysConn(tc)
	}
	return c
}

func (c *sysConn) doRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			c.rn = int(n)
		}
		c.rerr = e
		return true
	}
}

func (c *sysConn) doWrite(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		rest := c.wbuf[c.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch e {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// Read reads like net.TCPConn.Read: io.EOF at the end of the stream, a
// *net.OpError otherwise.
func (c *sysConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.raw.Read(c.readFn)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, err // a deadline, or a closed connection: already an *net.OpError
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p like net.TCPConn.Write, or reports how much it
// wrote before an error.
func (c *sysConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.raw.Write(c.writeFn)
	n, errno := c.wn, c.werr
	c.wbuf = nil
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

func (c *sysConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
