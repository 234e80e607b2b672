package e2e

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/quic-go/quic-go"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/tlsconf"
	"github.com/xp2p/xp2p/internal/wire"
)

// loginTimeout is the server's limit on a session that does not log in (rendezvous).
const loginTimeout = 10 * time.Second

// rawSession opens a control session to the server without logging in, as a misbehaving
// client would: protocol is "quic" (on a UDP socket of its own) or "tcp".
func rawSession(t testing.TB, port int, protocol string) session.Session {
	return rawSessionFrom(t, port, protocol, net.IPv4(127, 0, 0, 1))
}

// rawSessionFrom is rawSession from a source address of the test's choice (a loopback address:
// its UDP socket or its TCP connection is bound there), so that the server tells its sessions
// apart from other clients'.
func rawSessionFrom(t testing.TB, port int, protocol string, src net.IP) session.Session {
	t.Helper()
	tlsConf, err := tlsconf.Client("", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	target := "127.0.0.1:" + strconv.Itoa(port)
	var sess session.Session
	switch protocol {
	case session.ProtocolQUIC:
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: src})
		if err != nil {
			t.Fatal(err)
		}
		tr := &quic.Transport{Conn: udp}
		t.Cleanup(func() { tr.Close(); udp.Close() })
		d := &session.Dialer{Transport: tr, TLS: tlsConf, QUIC: &quic.Config{MaxIdleTimeout: time.Minute}, Protocol: protocol}
		sess, err = d.Dial(ctx, target)
		if err != nil {
			t.Fatalf("raw quic session: %v", err)
		}
	default:
		tc, m, err := yamuxFrom(ctx, target, src, tlsConf)
		if err != nil {
			t.Fatalf("raw tcp session: %v", err)
		}
		sess = session.Yamux(tc, m)
	}
	t.Cleanup(func() { sess.Close("test done") })
	return sess
}

// rawLogin logs a raw session in with the right token and a fresh run key and returns its
// control stream.
func rawLogin(t testing.TB, sess session.Session) session.Stream {
	t.Helper()
	key := auth.NewRunKey()
	ctrl, res := loginAs(t, sess, key.ID(), key.Public(), &key)
	if res.Error != "" {
		t.Fatalf("login refused: %s", res.Error)
	}
	return ctrl
}

// TestSlowloris opens many connections to bindPort that never finish the TLS handshake, QUIC
// sessions that never log in, TLS+yamux sessions that never log in and UDP sockets that send
// junk. A real client must still log in and use its proxy while they are open, and the server
// must drop every one that holds state within the login timeout.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	n := 200
	if testing.Short() {
		n = 40
	}
	srv := startServer(t, "")
	addr := "127.0.0.1:" + strconv.Itoa(srv.Port())
	start := time.Now()

	// Raw TCP: connect and say nothing, from 8 other sources than the real clients below (each
	// source may hold 64 pending: see TestTCPHandshakeShedding).
	var tcpConns []net.Conn
	for i := range n {
		silent := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}}
		c, err := silent.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("raw tcp %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		tcpConns = append(tcpConns, c)
	}
	// Raw UDP: junk shaped like a QUIC long header, a QUIC short header, a STUN message and a
	// relay frame, from sockets that never say more.
	for i := range n {
		u, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(srv.UDPAddr().AddrPort()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.Close() })
		for _, first := range []byte{0xc3, 0x43, 0x00, wire.RelayMagic} {
			pkt := make([]byte, 20+i*5)
			rand.Read(pkt)
			pkt[0] = first
			u.Write(pkt)
		}
	}
	// QUIC sessions that complete the handshake and never log in, each from its own socket.
	quicN := n / 2
	quicSess := make([]session.Session, quicN)
	var wg sync.WaitGroup
	for i := range quicN {
		wg.Add(1)
		go func() {
			defer wg.Done()
			quicSess[i] = rawSessionFrom(t, srv.Port(), session.ProtocolQUIC, net.IPv4(127, 0, 1, byte(1+i%8)))
		}()
	}
	wg.Wait()
	// TLS+yamux sessions that never log in.
	tlsN := n / 10
	var tlsSess []session.Session
	for i := range tlsN {
		tlsSess = append(tlsSess, rawSessionFrom(t, srv.Port(), session.ProtocolTCP, net.IPv4(127, 0, 2, byte(1+i%4))))
	}
	opened := time.Now()
	t.Logf("%d raw tcp, %d junk udp, %d quic and %d tls sessions that never log in, opened in %s",
		n, n, quicN, tlsN, opened.Sub(start).Round(time.Millisecond))

	// A real client gets through meanwhile, over each transport.
	echo := startTCPService(t, echoHandler)
	for _, transport := range []string{"quic", "tcp"} {
		loginStart := time.Now()
		c := startClient(t, clientHeader(srv.Port(), testToken, `transport.protocol = "`+transport+`"`)+tcpProxy("echo-"+transport, echo.Port(), 0))
		remote := waitRunning(t, c, "echo-"+transport)
		if err := roundTrip(remote, []byte("through the crowd over "+transport)); err != nil {
			t.Fatalf("%s client: %v", transport, err)
		}
		t.Logf("real %s client logged in and used its proxy in %s", transport, time.Since(loginStart).Round(time.Millisecond))
	}

	// Every stateful intruder is dropped within the login timeout (plus slack) of its opening
	// (the last opened late under a loaded machine).
	deadline := opened.Add(loginTimeout + 4*time.Second)
	var stillOpen atomic.Int64
	for _, c := range tcpConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(deadline)
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				stillOpen.Add(1)
			}
		}()
	}
	for _, s := range append(quicSess, tlsSess...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-s.Done():
			case <-time.After(time.Until(deadline)):
				stillOpen.Add(1)
			}
		}()
	}
	wg.Wait()
	if k := stillOpen.Load(); k > 0 {
		t.Errorf("%d connections that never logged in were still open %s after they came", k, time.Since(start).Round(time.Second))
	}
	t.Logf("all dropped %s after the first came", time.Since(start).Round(100*time.Millisecond))
	// A QUIC session ends by the login timeout ("login refused"), or, when more handshakes
	// finish at once than quic-go's accept queue holds (32), is refused before the server sees
	// it (CONNECTION_REFUSED): a real client would retry after its backoff.
	causes := map[string]int{}
	for _, s := range quicSess {
		cause := fmt.Sprint(context.Cause(session.Conn(s).Context()))
		switch {
		case strings.Contains(cause, "login refused"):
			causes["login refused"]++
		case strings.Contains(cause, "CONNECTION_REFUSED"):
			causes["refused by the accept queue"]++
		default:
			t.Errorf("quic session that never logged in ended by %q", cause)
		}
	}
	t.Logf("quic sessions: %v", causes)
	if got, want := srv.log.Count("transport=quic reason=\"no control stream"), causes["login refused"]; got != want {
		t.Errorf("server logged %d quic login timeouts, want %d", got, want)
	}
	if got := srv.log.Count("transport=tcp reason=\"no control stream"); got != tlsN {
		t.Errorf("server logged %d tls+yamux login timeouts, want %d", got, tlsN)
	}
	if online := srv.Events.ClientsOnline.Load(); online != 2 {
		t.Errorf("%d clients online, want the 2 real ones", online)
	}
}

// TestTCPHandshakeShedding is the slowloris of issue 11: 1100 silent TCP connections from one
// address used to fill the server's 1024 slots for pending TLS handshakes and lock every TCP
// client out. Now one source (an IPv4 address, an IPv6 /64) holds at most 64 pending at once;
// the rest are shed at once, before any TLS work, a TCP client from another address logs in
// and is served meanwhile, QUIC clients are unaffected, and the source itself gets its slots back
// when its connections end.
func TestTCPHandshakeShedding(t *testing.T) {
	if testing.Short() {
		t.Skip("opens over 1100 connections")
	}
	t.Parallel()
	const perSource, total = 64, 1100
	srv := startServer(t, "")
	addr := "127.0.0.1:" + strconv.Itoa(srv.Port())
	conns := make([]net.Conn, 0, total)
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	t.Cleanup(closeAll)
	attacker := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	for i := range total {
		c, err := attacker.Dial("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.ECONNRESET) {
				continue // shed before connect() returned
			}
			t.Fatalf("conn %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	var kept atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(deadline)
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				kept.Add(1)
			}
		}()
	}
	// Meanwhile a TCP client from 127.0.0.1 logs in and is served.
	echo := startTCPService(t, echoHandler)
	c := startClient(t, clientHeader(srv.Port(), testToken, `transport.protocol = "tcp"`)+tcpProxy("echo-tcp", echo.Port(), 0))
	if err := roundTrip(waitRunning(t, c, "echo-tcp"), []byte("tcp beside the flood")); err != nil {
		t.Fatal(err)
	}
	q := startClient(t, clientHeader(srv.Port(), testToken, `transport.protocol = "quic"`)+tcpProxy("echo-quic", echo.Port(), 0))
	if err := roundTrip(waitRunning(t, q, "echo-quic"), []byte("quic beside the flood")); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	t.Logf("%d silent connections from one address: %d kept pending, %d shed at once", total, kept.Load(), total-kept.Load())
	if kept.Load() != perSource {
		t.Errorf("%d kept pending, want %d", kept.Load(), perSource)
	}
	closeAll()
	eventually(t, 5*time.Second, func() bool {
		c, err := attacker.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout() // pending again, not shed
	}, func() string { return "the source never got its slots back" })
}

// TestMalformedControl: a logged-in client that sends a malformed control message loses its
// own session; the server and its other clients go on.
func TestMalformedControl(t *testing.T) {
	t.Parallel()
	frame := func(payload string) []byte {
		b := make([]byte, 4+len(payload))
		binary.BigEndian.PutUint32(b, uint32(len(payload)))
		copy(b[4:], payload)
		return b
	}
	cases := []struct {
		name   string
		data   []byte
		reason string // in the server's log of the disconnect
	}{
		{"not json", frame("{this is not json"), "decode control frame"},
		{"unknown type", frame(`{"t":"mystery","b":{}}`), "unknown message type"},
		{"invalid body", frame(`{"t":"newProxy","b":{"name":"","type":"tcp"}}`), "invalid newProxy"},
		{"oversized frame", []byte{0xff, 0xff, 0xff, 0xff, 0}, "control frame too large"},
		{"server-only message", frame(`{"t":"loginResult","b":{"error":"x"}}`), "unexpected loginResult"},
	}
	for _, transport := range []string{session.ProtocolQUIC, session.ProtocolTCP} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "")
			echo := startTCPService(t, echoHandler)
			good := startClient(t, clientHeader(srv.Port(), testToken, "")+tcpProxy("echo", echo.Port(), 0))
			remote := waitRunning(t, good, "echo")
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					sess := rawSession(t, srv.Port(), transport)
					ctrl := rawLogin(t, sess)
					before := srv.log.Count("client disconnected")
					// The server may cut the session so fast that the write learns of it before
					// it returns (yamux): then the session's end is the answer already.
					if _, err := ctrl.Write(tc.data); err != nil && !session.IsClosed(err) {
						t.Fatal(err)
					}
					select {
					case <-sess.Done():
					case <-time.After(3 * time.Second):
						t.Fatal("the server kept the session of a client that sent a malformed message")
					}
					eventually(t, 2*time.Second, func() bool { return srv.log.Count("client disconnected") > before },
						func() string { return "no disconnect logged" })
					if !strings.Contains(srv.log.String(), tc.reason) {
						t.Errorf("server log does not give the reason %q", tc.reason)
					}
					if err := roundTrip(remote, []byte("still here after "+tc.name)); err != nil {
						t.Errorf("the other client's proxy: %v", err)
					}
				})
			}
			if online := srv.Events.ClientsOnline.Load(); online != 1 {
				t.Errorf("%d clients online, want only the good one", online)
			}
			if good.Transport() == "" {
				t.Error("the good client lost its session")
			}
		})
	}
}

// TestSTUNRateLimitPerSource floods the server's STUN port from one address: it answers a
// burst and then a trickle (no reflector for spoofed floods), while another address is still
// answered at once.
func TestSTUNRateLimitPerSource(t *testing.T) {
	srv := startServer(t, "")
	target := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: srv.Port()}
	request := func(t *testing.T) []byte {
		m, err := stun.Build(stun.TransactionID, stun.BindingRequest)
		if err != nil {
			t.Fatal(err)
		}
		return m.Raw
	}
	// countAnswers sends n requests from a socket on ip and counts the answers that arrive
	// until the socket has been quiet for 300 ms.
	countAnswers := func(t *testing.T, ip net.IP, n int) int {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadBuffer(1 << 20)
		got := make(chan int)
		go func() {
			answers := 0
			buf := make([]byte, 1500)
			for {
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				k, err := c.Read(buf)
				if err != nil {
					got <- answers
					return
				}
				if stun.IsMessage(buf[:k]) {
					answers++
				}
			}
		}()
		for range n {
			if _, err := c.WriteToUDP(request(t), target); err != nil {
				t.Fatal(err)
			}
		}
		return <-got
	}
	const flood = 2000
	start := time.Now()
	flooded := countAnswers(t, net.IPv4(127, 0, 0, 1), flood)
	elapsed := time.Since(start)
	// The burst (200) plus 50/s for the time the flood took, with slack for timing.
	limit := 200 + int(elapsed.Seconds()*50) + 20
	if flooded == 0 || flooded > limit {
		t.Fatalf("%d requests from one address in %v got %d answers, want 1..%d", flood, elapsed, flooded, limit)
	}
	if other := countAnswers(t, net.IPv4(127, 0, 0, 2), 5); other != 5 {
		t.Fatalf("another address got %d of 5 answers while the first was limited", other)
	}
	t.Logf("flood of %d: %d answered in %v; the other address: all answered", flood, flooded, elapsed)
}
