package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/tlsconf"
)

// udpBlackHole is a UDP socket that reads and discards everything: a server whose UDP side is
// filtered. Its TCP twin (same port number) is left to the caller.
type udpBlackHole struct {
	conn    *net.UDPConn
	packets atomic.Int64
	done    chan struct{}
}

func (b *udpBlackHole) Port() int { return b.conn.LocalAddr().(*net.UDPAddr).Port }

// blackHoleWithTCP binds a discarding UDP socket and a TCP listener on one port number.
func blackHoleWithTCP(t testing.TB) (*udpBlackHole, net.Listener) {
	t.Helper()
	for range 50 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(u.LocalAddr().(*net.UDPAddr).Port))
		if err != nil {
			u.Close()
			continue
		}
		b := &udpBlackHole{conn: u, done: make(chan struct{})}
		go func() {
			defer close(b.done)
			buf := make([]byte, 2048)
			for {
				if _, _, err := u.ReadFromUDP(buf); err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				b.packets.Add(1)
			}
		}()
		t.Cleanup(func() { u.Close(); <-b.done; ln.Close() })
		return b, ln
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}

// forwardTCP accepts on ln and joins each connection to target.
func forwardTCP(t testing.TB, ln net.Listener, target string) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, up)
			mu.Unlock()
			for _, dir := range [][2]net.Conn{{c, up}, {up, c}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					io.Copy(dir[1], dir[0])
					dir[1].(*net.TCPConn).CloseWrite()
				}()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// TestTransportProtocols: transport.protocol picks the control session's transport, and the
// proxies work over each.
func TestTransportProtocols(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	echo := startTCPService(t, echoHandler)
	for _, tc := range []struct{ protocol, want string }{
		{"quic", "quic"},
		{"tcp", "tcp"},
		{"auto", "quic"}, // UDP gets through: QUIC wins its head start
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			t.Parallel()
			c := startClient(t, clientHeader(srv.Port(), testToken, `transport.protocol = "`+tc.protocol+`"`)+
				tcpProxy("echo-"+tc.protocol, echo.Port(), 0))
			remote := waitRunning(t, c, "echo-"+tc.protocol)
			if got := c.Transport(); got != tc.want {
				t.Errorf("transport %q, want %q", got, tc.want)
			}
			if err := roundTrip(remote, []byte("over "+tc.want)); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestAutoFallsBackToTCP: with "auto", a server whose UDP side drops every packet is reached
// over TLS+yamux on TCP after QUIC's head start, and the proxies work.
func TestAutoFallsBackToTCP(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	hole, ln := blackHoleWithTCP(t)
	forwardTCP(t, ln, "127.0.0.1:"+strconv.Itoa(srv.Port()))
	echo := startTCPService(t, echoHandler)

	start := time.Now()
	c := startClient(t, clientHeader(hole.Port(), testToken, `transport.protocol = "auto"`)+tcpProxy("echo", echo.Port(), 0))
	remote := waitRunning(t, c, "echo")
	took := time.Since(start)
	if got := c.Transport(); got != "tcp" {
		t.Fatalf("transport %q, want tcp", got)
	}
	if hole.packets.Load() == 0 {
		t.Error("the client never tried QUIC")
	}
	t.Logf("logged in over tcp after %s (%d QUIC packets lost to the black hole)", took.Round(time.Millisecond), hole.packets.Load())
	if took > 4*time.Second {
		t.Errorf("fallback took %s, want about QUIC's 1 s head start", took)
	}
	if err := roundTrip(remote, []byte("via the fallback")); err != nil {
		t.Error(err)
	}
}

// TestDialerFallback drives session.Dialer directly against a port whose UDP side discards
// everything and whose TCP side is a real session listener.
func TestDialerFallback(t *testing.T) {
	t.Parallel()
	hole, tln := blackHoleWithTCP(t)
	serverTLS, err := tlsconf.Server(tlsconf.ServerFiles{})
	if err != nil {
		t.Fatal(err)
	}
	l := session.Listen(nil, tln, session.ListenConfig{
		TLS:              serverTLS,
		Yamux:            session.YamuxConfig(0),
		HandshakeTimeout: 5 * time.Second,
		MaxPending:       16,
	})
	accepted := make(chan session.Session, 4)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			s, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			accepted <- s
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-acceptDone
		close(accepted)
		for s := range accepted {
			s.Close("test done")
		}
	})

	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	t.Cleanup(func() { tr.Close(); udp.Close() })
	clientTLS, err := tlsconf.Client("", "")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(hole.Port())
	dialer := func(protocol string) *session.Dialer {
		return &session.Dialer{
			Transport: tr,
			TLS:       clientTLS,
			QUIC:      &quic.Config{HandshakeIdleTimeout: 5 * time.Second},
			Yamux:     session.YamuxConfig(0),
			Protocol:  protocol,
			TCPDelay:  100 * time.Millisecond,
		}
	}

	t.Run("auto picks tcp", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		s, err := dialer(session.ProtocolAuto).Dial(ctx, addr)
		if err != nil {
			t.Fatalf("auto dial: %v", err)
		}
		defer s.Close("done")
		took := time.Since(start)
		if s.Transport() != session.TransportTCP {
			t.Errorf("transport %q, want tcp", s.Transport())
		}
		if took < 100*time.Millisecond || took > 2*time.Second {
			t.Errorf("dial took %s, want just over the 100 ms head start of QUIC", took)
		}
		if hole.packets.Load() == 0 {
			t.Error("QUIC was never tried")
		}
		// The session carries streams.
		st, err := s.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte("x"))
		st.Close()
	})

	t.Run("quic only fails", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if s, err := dialer(session.ProtocolQUIC).Dial(ctx, addr); err == nil {
			s.Close("unexpected")
			t.Fatal("a QUIC dial into a black hole succeeded")
		}
	})

	t.Run("tcp only", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := dialer(session.ProtocolTCP).Dial(ctx, addr)
		if err != nil {
			t.Fatalf("tcp dial: %v", err)
		}
		defer s.Close("done")
		if s.Transport() != session.TransportTCP {
			t.Errorf("transport %q", s.Transport())
		}
	})
}
