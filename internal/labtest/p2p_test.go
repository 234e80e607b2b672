//go:build linux

package labtest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

const visitorAddr = "127.0.0.1:9001"

func providerConfig(top string) string {
	return clientConfig(top, `[[proxies]]
name = "echo"
type = "xp2p"
secretKey = "lab-secret"
localPort = 9000
`)
}

func visitorConfig(top string) string {
	return clientConfig(top, `[[visitors]]
name = "v"
type = "xtcp"
serverName = "echo"
secretKey = "lab-secret"
bindPort = 9001
`)
}

// p2pPair is a server, a provider (with an echo service) and a visitor in a lab.
type p2pPair struct {
	lab               *natlab.Lab
	server            *natlab.Proc
	provider, visitor *natlab.Proc
	provHost, visHost string
	provTop, visTop   string
}

func startPair(t *testing.T, l *natlab.Lab, provHost, visHost, top string) *p2pPair {
	t.Helper()
	p := &p2pPair{lab: l, provHost: provHost, visHost: visHost, provTop: top, visTop: top}
	p.server = startServer(t, l)
	echoService(t, l, provHost, "127.0.0.1:9000")
	p.provider = startClient(t, l, provHost, "provider", providerConfig(top))
	p.provider.WaitLog("xp2p service published", 10*time.Second)
	p.visitor = startClient(t, l, visHost, "visitor", visitorConfig(top))
	return p
}

// blockDirect drops UDP between two NATs (the server stays reachable); the returned function
// lifts the block.
func blockDirect(t *testing.T, l *natlab.Lab, side, otherSide string) func() {
	t.Helper()
	other := l.NATIP(otherSide)
	l.NFT("nat"+side, fmt.Sprintf(`table inet xblock {
  chain f {
    type filter hook forward priority -10;
    ip daddr %s meta l4proto udp drop
    ip saddr %s meta l4proto udp drop
  }
}`, other, other))
	return func() {
		if out, err := l.Exec("nat"+side, "nft", "delete", "table", "inet", "xblock"); err != nil {
			t.Fatalf("lift block: %v: %s", err, out)
		}
	}
}

// TestP2PMatrix runs a session for each pair of NAT kinds and checks the path it takes, with
// checksummed data both ways.
func TestP2PMatrix(t *testing.T) {
	t.Parallel()
	cases := []struct {
		provider, visitor string
		sameLAN           bool
		direct            bool
		note              string
	}{
		{provider: natlab.Easy, visitor: natlab.Easy, direct: true},
		{provider: natlab.Easy, visitor: natlab.Open, direct: true},
		{provider: natlab.Open, visitor: natlab.Sym, direct: true, note: "the sym side's probe reaches the open NAT, which learns its mapping"},
		{provider: natlab.Easy, visitor: natlab.Easy, sameLAN: true, direct: true, note: "both behind one NAT: private candidates"},
		{provider: natlab.Easy, visitor: natlab.Sym, direct: true, note: "birthday punching: the sym side's 256 extra sockets, the easy side's 1024 random ports"},
		{provider: natlab.Sym, visitor: natlab.Easy, direct: true, note: "birthday punching, roles the other way round"},
		{provider: natlab.Easy, visitor: natlab.SymSeq, direct: true, note: "once both sides have measured their NATs (a second or two), the easy side predicts the sequential NAT's next ports"},
		{provider: natlab.Sym, visitor: natlab.Sym, direct: false},
		{provider: natlab.NoUDP, visitor: natlab.Easy, direct: false, note: "the provider relays over its TCP session"},
	}
	for _, tc := range cases {
		name := tc.provider + "x" + tc.visitor
		if tc.sameLAN {
			name = "sameLAN"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var l *natlab.Lab
			provHost, visHost := "P1", "V1"
			if tc.sameLAN {
				l = natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "L", NAT: tc.provider, Hosts: 2}}})
				provHost, visHost = "L1", "L2"
			} else {
				l = natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: tc.provider}, {Name: "V", NAT: tc.visitor}}})
			}
			p := startPair(t, l, provHost, visHost, "")
			if !tc.direct {
				// Both sides measure their NAT at start (xp2p nat's tests); with both
				// measurements in hand, the session knows a direct path is unlikely.
				p.provider.WaitLog("NAT behaviour", 10*time.Second)
				p.visitor.WaitLog("NAT behaviour", 10*time.Second)
				p.server.WaitLog("client NAT", 5*time.Second)
			}
			d := exchange(t, l, visHost, visitorAddr, 4<<20, 0)
			ready := p.visitor.WaitLog(`p2p session ready.*`, 5*time.Second)[0]
			t.Logf("4 MB echoed in %s; visitor: time_to_ready=%s", d.Round(time.Millisecond), field(ready, "time_to_ready"))
			if tc.direct {
				// Birthday punching finds its path on the first try (~2 s) when the machine is
				// quiet; under the whole suite's load on 2 cores a try can miss (seen once: packets
				// dropped while both sides sprayed), and the next comes 5 s later.
				line := p.visitor.WaitLog(`direct path locked.*role=visitor.*`, 30*time.Second)[0]
				remote := field(line, "remote")
				t.Logf("direct: visitor locked %s (%s candidate) in %s", remote, field(line, "candidate"), field(line, "time_to_direct"))
				if tc.sameLAN && !strings.HasPrefix(remote, "10.") {
					t.Errorf("same-LAN peers locked %s, want the private address", remote)
				}
				// The next bytes ride the direct path.
				exchange(t, l, visHost, visitorAddr, 1<<20, 0)
			} else {
				// Punching runs fast for its first seconds; a direct path possible at all would be
				// locked by then.
				time.Sleep(3 * time.Second)
				if n := p.visitor.Count("direct path locked"); n > 0 {
					t.Errorf("%s × %s: a direct path was locked, want relayed (%s)", tc.provider, tc.visitor, tc.note)
				}
				if !strings.Contains(ready, "path=relay") {
					t.Errorf("session not relayed: %s", ready)
				}
				line := p.visitor.WaitLog(`direct path unlikely.*`, time.Second)[0]
				t.Logf("visitor: %s", line[strings.Index(line, "why="):])
			}
			if tc.provider == natlab.NoUDP {
				if tr := field(p.provider.WaitLog(`logged in to server.*`, time.Second)[0], "transport"); tr != "tcp" {
					t.Errorf("provider behind noudp uses %q, want tcp", tr)
				}
			}
		})
	}
}

// TestP2PIdleUnderShortNATTimeout: the NATs forget UDP mappings after 5 s; keepalives (2 s) keep a
// direct session alive through 35 s of silence: seven NAT timeouts, and longer than the P2P
// session's QUIC idle timeout (30 s).
func TestP2PIdleUnderShortNATTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("35 s idle test")
	}
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}}, UDPTimeout: 5 * time.Second})
	top := "transport.p2pKeepalive = 2\ntransport.heartbeatInterval = 2\ntransport.heartbeatTimeout = 8"
	p := startPair(t, l, "P1", "V1", top)
	c, err := l.Dial("V1", "tcp4", visitorAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echoOn(c, "before"); err != nil {
		t.Fatal(err)
	}
	p.visitor.WaitLog(`direct path locked`, 10*time.Second)
	time.Sleep(35 * time.Second)
	if err := echoOn(c, "after 35 s of silence"); err != nil {
		t.Fatalf("the idle connection died: %v", err)
	}
	if n := p.visitor.Count("direct path lost"); n > 0 {
		t.Errorf("the direct path was lost %d times while idle: keepalives did not hold the NAT mapping", n)
	}
}

// TestP2PSurvivesServerLoss: once the direct path is up, the session does not need the server.
func TestP2PSurvivesServerLoss(t *testing.T) {
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}}})
	p := startPair(t, l, "P1", "V1", "")
	c, err := l.Dial("V1", "tcp4", visitorAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echoOn(c, "hello"); err != nil {
		t.Fatal(err)
	}
	p.visitor.WaitLog(`direct path locked`, 10*time.Second)
	p.server.Kill()
	for i := range 5 {
		if err := echoOn(c, fmt.Sprintf("without a server %d", i)); err != nil {
			t.Fatalf("session broke when the server died: %v", err)
		}
		time.Sleep(time.Second)
	}
	// New streams of the same session work too.
	exchange(t, l, "V1", visitorAddr, 4<<20, 0)
}

// TestP2PProviderRestart: the provider crashes and comes back; the visitor reaches it again by
// itself.
func TestP2PProviderRestart(t *testing.T) {
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}}})
	p := startPair(t, l, "P1", "V1", "")
	exchange(t, l, "V1", visitorAddr, 1<<20, 0)
	p.provider.Kill()
	p.provider = startClient(t, l, "P1", "provider-2", providerConfig(""))
	start := time.Now()
	eventually(t, 30*time.Second, "a connection through the visitor after the provider restarted", func() error {
		return ping(l, "V1", visitorAddr)
	})
	t.Logf("visitor reached the restarted provider %s after it logged in", time.Since(start).Round(time.Millisecond))
	exchange(t, l, "V1", visitorAddr, 4<<20, 0)
}

// TestP2PRelayedTransferMovesToDirect: direct UDP between the NATs is blocked at first, so the
// session starts relayed; the block is lifted while a transfer runs, and the transfer finishes
// intact on the direct path.
func TestP2PRelayedTransferMovesToDirect(t *testing.T) {
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}}})
	lift := blockDirect(t, l, "P", "V")
	p := startPair(t, l, "P1", "V1", "")
	done := make(chan time.Duration, 1)
	go func() {
		done <- exchange(t, l, "V1", visitorAddr, 48<<20, 12<<20) // about 4 s
	}()
	p.visitor.WaitLog(`p2p session ready.*path=relay`, 10*time.Second)
	time.Sleep(time.Second)
	if n := p.visitor.Count("direct path locked"); n > 0 {
		t.Fatal("direct path locked while direct UDP was blocked")
	}
	lift()
	p.visitor.WaitLog(`direct path locked`, 20*time.Second)
	d := <-done
	t.Logf("48 MB echoed intact in %s, moving from the relay to the direct path mid-way", d.Round(time.Millisecond))
}

// TestP2PPathDiesAndComesBack: the direct path dies under a transfer (as after a NAT rebinding);
// traffic goes back to the relay without losing the stream, and the session finds its way
// back to a direct path once one exists again.
func TestP2PPathDiesAndComesBack(t *testing.T) {
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}}})
	p := startPair(t, l, "P1", "V1", "transport.p2pKeepalive = 2")
	exchange(t, l, "V1", visitorAddr, 1<<20, 0)
	p.visitor.WaitLog(`direct path locked`, 10*time.Second)
	done := make(chan time.Duration, 1)
	go func() {
		done <- exchange(t, l, "V1", visitorAddr, 64<<20, 8<<20) // about 8 s
	}()
	time.Sleep(time.Second)
	lift := blockDirect(t, l, "P", "V")
	p.visitor.WaitLog(`direct path lost; back to relay`, 15*time.Second)
	time.Sleep(time.Second)
	lift()
	if n := p.visitor.Count("direct path locked"); n < 2 {
		p.visitor.WaitLog(`(?s)direct path locked.*direct path lost.*direct path locked`, 30*time.Second)
	}
	d := <-done
	t.Logf("64 MB echoed intact in %s across direct → relay → direct", d.Round(time.Millisecond))
}

// TestP2PUDPDatagramsDirect: a udp service over a direct easy×easy path. Each datagram comes
// back intact, and they travel in QUIC DATAGRAM frames (no retransmission, no head-of-line
// blocking), the big one that does not fit a packet on its flow's stream.
func TestP2PUDPDatagramsDirect(t *testing.T) {
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}}})
	startServer(t, l)
	echo := l.ListenPacket("P1", "udp4", "127.0.0.1:9000")
	// The test's own sockets get the buffers xp2p's have (netx.UDPSocketBuffer): what is
	// measured is xp2p's path, not a 208 KiB default on a machine busy with the other lab tests.
	echo.(*net.UDPConn).SetReadBuffer(4 << 20)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(buf[:n], from)
		}
	}()
	provider := startClient(t, l, "P1", "provider", clientConfig("", `[[proxies]]
name = "game"
type = "xp2p"
secretKey = "lab-secret"
localPort = 9000
protocol = "udp"
`))
	provider.WaitLog("xp2p service published", 10*time.Second)
	visitor := startClient(t, l, "V1", "visitor", clientConfig("", `[[visitors]]
name = "v"
type = "xp2p"
serverName = "game"
secretKey = "lab-secret"
bindPort = 9001
protocol = "udp"
`))
	user := l.ListenPacket("V1", "udp4", "127.0.0.1:0")
	user.(*net.UDPConn).SetReadBuffer(4 << 20)
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001}
	// The first datagrams may go before the session is up (the visitor queues them).
	eventually(t, 10*time.Second, "first echo", func() error { return udpEcho(user, to, []byte("hello")) })
	line := visitor.WaitLog(`direct path locked.*role=visitor.*`, 10*time.Second)[0]
	t.Logf("direct: %s in %s", field(line, "remote"), field(line, "time_to_direct"))

	const count, size = 2000, 1200
	var sent sync.Map
	backc := make(chan int, 1)
	go func() { // reads while the sender sends: the echoes must not wait in a socket buffer
		back := 0
		buf := make([]byte, 65536)
		for back < count {
			user.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := user.ReadFrom(buf)
			if err != nil {
				break
			}
			if _, ok := sent.LoadAndDelete(string(buf[:n])); !ok {
				t.Errorf("a %d-byte datagram came back that was never sent or twice (%.8q)", n, buf[:n])
				break
			}
			back++
		}
		backc <- back
	}()
	for i := range count {
		msg := make([]byte, size)
		rand.Read(msg)
		copy(msg, fmt.Sprintf("%06d", i))
		sent.Store(string(msg), true)
		if _, err := user.WriteTo(msg, to); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			time.Sleep(5 * time.Millisecond) // about 40 Mbit/s: a game or a call, not a flood
		}
	}
	back := <-backc
	// UDP may drop (socket buffers, quic-go's datagram queue) when CI's two cores are busy with
	// the other lab tests; most must come back, every one intact.
	if back < count*90/100 {
		visitor.Stop()
		provider.Stop()
		t.Fatalf("%d of %d datagrams came back\nvisitor: %s\nprovider: %s", back, count,
			visitor.WaitLog(`p2p session ended.*`, 5*time.Second)[0], provider.WaitLog(`p2p session ended.*`, 5*time.Second)[0])
	}
	big := make([]byte, 20000)
	rand.Read(big)
	if err := udpEcho(user, to, big); err != nil {
		t.Fatalf("a 20000-byte datagram: %v", err)
	}
	visitor.Stop()
	ended := visitor.WaitLog(`p2p session ended.*`, 5*time.Second)[0]
	dgSent, _ := strconv.Atoi(field(ended, "datagrams_sent"))
	dgReceived, _ := strconv.Atoi(field(ended, "datagrams_received"))
	t.Logf("%d of %d datagrams echoed; visitor sent %d and received %d QUIC datagrams", back, count, dgSent, dgReceived)
	// The session's first packets are 1223 bytes (they must fit any path) and a 1200-byte
	// datagram does not fit one: the first few ride the flow's stream, until quic-go's path MTU
	// discovery has grown the packets (within milliseconds).
	if dgSent < count*90/100 || dgReceived < count*90/100 {
		t.Errorf("the visitor sent %d and received %d QUIC datagrams, want about %d each way", dgSent, dgReceived, count)
	}
}

// udpEcho sends msg to to and waits (a second) for the same bytes back.
func udpEcho(pc net.PacketConn, to net.Addr, msg []byte) error {
	if _, err := pc.WriteTo(msg, to); err != nil {
		return err
	}
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(time.Second))
	defer pc.SetReadDeadline(time.Time{})
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if bytes.Equal(buf[:n], msg) {
			return nil
		}
	}
}
