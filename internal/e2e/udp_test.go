package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/relay"
)

// udpAsk sends msg from conn and waits for the same bytes to come back, resending a few times
// (UDP may drop). A reply that is not msg is an error (it belongs to another source), unless it
// is a late echo of this source's own earlier resend (it starts with tag and *resent is set).
func udpAsk(conn *net.UDPConn, to *net.UDPAddr, msg []byte, tag string, resent *bool) error {
	buf := make([]byte, 65536)
	for try := range 5 {
		if try > 0 {
			*resent = true
		}
		if _, err := conn.WriteToUDP(msg, to); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // resend
				}
				return err
			}
			if bytes.Equal(buf[:n], msg) {
				return nil
			}
			if !*resent || !bytes.HasPrefix(buf[:n], []byte(tag)) {
				return fmt.Errorf("got a %d-byte datagram %.24q that this source never sent (want %.24q)", n, buf[:n], msg)
			}
		}
	}
	return fmt.Errorf("no echo of %.24q after 5 tries", msg)
}

// TestUDPProxy sends datagrams from several sources at once through a udp proxy to an echo
// service: each source must get exactly its own datagrams back, intact, and the service must
// see one flow (one source address) per remote source.
func TestUDPProxy(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"quic", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "")
			echo := startUDPEcho(t)
			c := startClient(t, clientHeader(srv.Port(), testToken, `transport.protocol = "`+transport+`"`)+
				udpProxy("dns", echo.Port(), 0))
			remote := waitRunning(t, c, "dns")
			to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(remote))

			const sources, perSource = 8, 40
			sizes := []int{1, 17, 512, 1200, 1472, 8000, 30000}
			var wg sync.WaitGroup
			errs := make(chan error, sources)
			for s := range sources {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
					if err != nil {
						errs <- err
						return
					}
					defer conn.Close()
					rnd := seeded(uint64(s))
					tag := fmt.Sprintf("src%02d-", s)
					resent := false
					for i := range perSource {
						size := max(sizes[(s+i)%len(sizes)], 16)
						msg := make([]byte, size)
						copy(msg, fmt.Sprintf("%sseq%04d-", tag, i))
						if size > 16 {
							io.ReadFull(rnd, msg[16:])
						}
						if err := udpAsk(conn, to, msg, tag, &resent); err != nil {
							errs <- fmt.Errorf("source %d, datagram %d (%d bytes): %w", s, i, size, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if got := echo.sources(); got != sources {
				t.Errorf("the local service saw %d source addresses, want one per remote source (%d)", got, sources)
			}
			pi, _ := proxyInfo(c, "dns")
			if pi.BytesIn == 0 || pi.BytesOut == 0 {
				t.Errorf("client counted %d bytes in, %d out", pi.BytesIn, pi.BytesOut)
			}
			// Over QUIC the datagrams that fit a packet (1, 17, 512, 1200 bytes: 4 of the 7 sizes,
			// there and back) ride QUIC DATAGRAM frames; over TCP there are none.
			dgrams := c.Servers()[0].Datagrams
			want := int64(sources * perSource * 2 * 4 / 7 * 9 / 10)
			if transport == "quic" && dgrams < want || transport == "tcp" && dgrams != 0 {
				t.Errorf("%d datagrams in QUIC DATAGRAM frames over %s, want %s", dgrams, transport,
					map[string]string{"quic": fmt.Sprintf("at least %d", want), "tcp": "none"}[transport])
			}
		})
	}
}

// pipeStream is a session.Stream over one end of a net.Pipe (no half close: CloseWrite closes).
type pipeStream struct{ net.Conn }

func (p pipeStream) CloseWrite() error { return p.Conn.Close() }
func (p pipeStream) Reset()            { p.Conn.Close() }

// TestUDPFanoutExpiry drives relay.UDPFanout, the public side of a udp proxy, with a short idle
// timeout: a silent source's flow ends (its stream closed), an active one lives on, and a source
// that speaks again after expiry gets a new flow.
func TestUDPFanoutExpiry(t *testing.T) {
	t.Parallel()
	// Long enough that a loaded 2-core machine (the full suite runs beside this test) never
	// stalls the busy source's exchange past it: at 200 ms one such stall replaced its flow.
	const idle = time.Second
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var (
		opened  sync.Map // source → number of streams opened for it
		ended   atomic.Int64
		farWG   sync.WaitGroup
		flowsIn atomic.Int64
	)
	fan := &relay.UDPFanout{
		Conn: conn,
		Idle: idle,
		Open: func(ctx context.Context, src netip.AddrPort) (session.Stream, error) {
			n, _ := opened.LoadOrStore(src.String(), new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			near, far := net.Pipe()
			// The far side plays the client: it echoes each datagram, prefixed with "re:".
			farWG.Add(1)
			go func() {
				defer farWG.Done()
				defer ended.Add(1)
				defer far.Close()
				buf := make([]byte, wire.MaxDatagram)
				for {
					n, err := wire.ReadDatagram(far, buf)
					if err != nil {
						return
					}
					if err := wire.WriteDatagram(far, append([]byte("re:"), buf[:n]...)); err != nil {
						return
					}
				}
			}()
			return pipeStream{near}, nil
		},
		OnFlow: func(d int) { flowsIn.Add(int64(d)) },
	}
	fan.Start()
	t.Cleanup(func() { fan.Close(); farWG.Wait() })
	to := conn.LocalAddr().(*net.UDPAddr)

	newSource := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ask := func(c *net.UDPConn, msg string) {
		t.Helper()
		buf := make([]byte, 1024)
		for range 5 {
			c.WriteToUDP([]byte(msg), to)
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, _, err := c.ReadFromUDP(buf)
			if err == nil {
				if got := string(buf[:n]); got != "re:"+msg {
					t.Fatalf("reply %q, want %q", got, "re:"+msg)
				}
				return
			}
		}
		t.Fatalf("no reply to %q", msg)
	}
	openedFor := func(c *net.UDPConn) int64 {
		n, ok := opened.Load(c.LocalAddr().String())
		if !ok {
			return 0
		}
		return n.(*atomic.Int64).Load()
	}

	quiet, busy := newSource(), newSource()
	ask(quiet, "hello from quiet")
	ask(busy, "hello from busy")
	if got := fan.Flows(); got != 2 {
		t.Fatalf("%d flows, want 2", got)
	}

	// busy keeps talking for several idle periods; quiet says nothing.
	for i := range 12 {
		ask(busy, fmt.Sprintf("busy %d", i))
		time.Sleep(idle / 4)
	}
	if openedFor(busy) != 1 {
		t.Errorf("the active source's flow was replaced (%d streams opened), want it kept", openedFor(busy))
	}
	eventually(t, 4*idle, func() bool { return fan.Flows() == 1 && ended.Load() == 1 },
		func() string {
			return fmt.Sprintf("quiet flow not expired: %d flows, %d streams ended", fan.Flows(), ended.Load())
		})

	// The quiet source comes back: a new flow, a new stream.
	ask(quiet, "back again")
	if got := openedFor(quiet); got != 2 {
		t.Errorf("%d streams for the returning source, want 2", got)
	}
	// Both silent now: everything expires.
	eventually(t, 4*idle, func() bool { return fan.Flows() == 0 && ended.Load() == 3 && flowsIn.Load() == 0 },
		func() string {
			return fmt.Sprintf("flows not expired: %d flows, %d streams ended, OnFlow balance %d", fan.Flows(), ended.Load(), flowsIn.Load())
		})

	// Close with a live flow ends it and the fanout's goroutines.
	ask(busy, "last")
	fan.Close()
	farWG.Wait()
	if fan.Flows() != 0 || ended.Load() != 4 {
		t.Errorf("after Close: %d flows, %d streams ended, want 0 and 4", fan.Flows(), ended.Load())
	}
}
