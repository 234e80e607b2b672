package traversal

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// Two sides punch at once on loopback: one TCP connection comes out, the same at both ends.
func TestTCPPunchSimultaneousOpen(t *testing.T) {
	a, err := ListenTCPPunch("tcp4")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ListenTCPPunch("tcp4")
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type result struct {
		c   *net.TCPConn
		err error
	}
	rb := make(chan result, 1)
	go func() {
		c, err := b.Connect(ctx, []netip.AddrPort{netip.AddrPortFrom(lo, uint16(a.Port()))})
		rb <- result{c, err}
	}()
	ca, err := a.Connect(ctx, []netip.AddrPort{netip.AddrPortFrom(lo, uint16(b.Port()))})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	r := <-rb
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	if ca.LocalAddr().String() != r.c.RemoteAddr().String() || ca.RemoteAddr().String() != r.c.LocalAddr().String() {
		t.Fatalf("two connections: %s-%s and %s-%s", ca.LocalAddr(), ca.RemoteAddr(), r.c.LocalAddr(), r.c.RemoteAddr())
	}
	if ca.LocalAddr().(*net.TCPAddr).Port != a.Port() {
		t.Errorf("connected from port %d, want the punching port %d", ca.LocalAddr().(*net.TCPAddr).Port, a.Port())
	}
	go ca.Write([]byte("through"))
	buf := make([]byte, 7)
	r.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(r.c, buf); err != nil || string(buf) != "through" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// A connection to the punching port from an address that is not the peer's is closed at once:
// only the peer's addresses get in (TLS then proves who it is).
func TestTCPPunchRefusesStrangers(t *testing.T) {
	p, err := ListenTCPPunch("tcp4")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// The "peer" is an address nobody connects from; the listener sees only strangers.
		_, err := p.Connect(ctx, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:9")})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port())))
	if err == nil {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || n > 0 {
			t.Error("a stranger's connection was kept")
		}
		c.Close()
	}
	if err := <-done; err == nil {
		t.Error("the punch succeeded with no peer")
	}
}
