package router

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// sysConnPair returns a sysConn and the plain TCP connection at its other
// end, over loopback.
func sysConnPair(t *testing.T) (*sysConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = c.Close(); _ = peer.Close() })
	sc, ok := wrapSysConn(c).(*sysConn)
	if !ok {
		t.Fatalf("wrapSysConn(%T) did not wrap", c)
	}
	return sc, peer
}

func TestSysConnReadsWhatWasSentThenEOF(t *testing.T) {
	sc, peer := sysConnPair(t)
	want := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB: many reads, some waits
	go func() {
		_, _ = peer.Write(want)
		_ = peer.Close()
	}()
	got, err := io.ReadAll(sc)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want the %d sent", len(got), len(want))
	}
	if n, err := sc.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestSysConnWritesEverythingToASlowReader(t *testing.T) {
	sc, peer := sysConnPair(t)
	want := bytes.Repeat([]byte("abcdefgh"), 1<<20) // 8 MiB: far more than the socket buffers
	got := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		chunk := make([]byte, 64<<10)
		for {
			n, err := peer.Read(chunk)
			buf.Write(chunk[:n])
			if err != nil {
				got <- buf.Bytes()
				return
			}
			if buf.Len() < 1<<20 {
				time.Sleep(time.Millisecond) // slow at first: the writer must wait for room
			}
		}
	}()
	n, err := sc.Write(want)
	if err != nil || n != len(want) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
	}
	_ = sc.CloseWrite() // the embedded TCPConn's, for the reader's EOF
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer received %d bytes, want the %d written", len(b), len(want))
	}
}

func TestSysConnHonoursDeadlines(t *testing.T) {
	sc, _ := sysConnPair(t)
	_ = sc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	n, err := sc.Read(make([]byte, 10))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline = %d, %v; want a timeout", n, err)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond || waited > 5*time.Second {
		t.Errorf("the read deadline fired after %v, want about 50ms", waited)
	}

	// A writer whose peer never reads fills the buffers, then times out,
	// saying how much it wrote.
	big := make([]byte, 64<<20) // made before the deadline is set
	_ = sc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err = sc.Write(big)
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Write past its deadline = %d, %v; want a timeout", n, err)
	}
	if n <= 0 || n >= len(big) {
		t.Errorf("Write reported %d bytes written before the timeout, want some but not all", n)
	}
}

func TestSysConnCloseEndsABlockedRead(t *testing.T) {
	sc, _ := sysConnPair(t)
	done := make(chan error, 1)
	go func() {
		_, err := sc.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = sc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read ended by Close with %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the Read")
	}
}

func TestSysConnReportsResetAsOpError(t *testing.T) {
	sc, peer := sysConnPair(t)
	// The peer closes with unread data: the kernel answers with RST.
	_, _ = sc.Write([]byte("unread"))
	time.Sleep(20 * time.Millisecond)
	_ = peer.(*net.TCPConn).SetLinger(0)
	_ = peer.Close()
	time.Sleep(20 * time.Millisecond)
	var err error
	for range 100 { // the first write may still be accepted
		if _, err = sc.Write([]byte("more")); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		t.Fatalf("Write to a reset connection = %v (%T); want a *net.OpError write with ECONNRESET or EPIPE", err, err)
	}
}

func TestSysConnReadAndWriteAllocateNothing(t *testing.T) {
	sc, peer := sysConnPair(t)
	msg := []byte("ping")
	buf := make([]byte, 16)
	pbuf := make([]byte, 16)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := sc.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, pbuf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(sc, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a Write and a Read through sysConn allocated %.1f times, want 0", allocs)
	}
}

// sockoptInt reads an integer socket option of c's descriptor.
func sockoptInt(t *testing.T, c net.Conn, level, opt int) int {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("%T has no descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// TestPublicConnectionsHaveNoKeepAliveProbesUntilTunnelled: accepted
// connections skip the four keep-alive setsockopt calls; a tunnel's
// client connection gets probes after 30 s of silence.
func TestPublicConnectionsHaveNoKeepAliveProbesUntilTunnelled(t *testing.T) {
	ln, err := publicListenConfig.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	c, err := (&retryListener{Listener: ln}).Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, ok := c.(*sysConn); !ok {
		t.Fatalf("accepted %T, want a *sysConn", c)
	}
	if v := sockoptInt(t, c, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); v != 0 {
		t.Errorf("SO_KEEPALIVE = %d on an accepted connection, want 0", v)
	}
	keepTunnelAlive(innermostConn(&sendTimeoutConn{slidingConn: slidingConn{Conn: c}}))
	if v := sockoptInt(t, c, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); v != 1 {
		t.Errorf("SO_KEEPALIVE = %d on a tunnel's client connection, want 1", v)
	}
	if v := sockoptInt(t, c, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE); v != 30 {
		t.Errorf("TCP_KEEPIDLE = %d s on a tunnel's client connection, want 30", v)
	}
}
