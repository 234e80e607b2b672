//go:build linux

package labtest

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
	"github.com/xp2p/xp2p/internal/natlab/wan"
)

// wanSides are two easy NATs whose links to the WAN each add oneWay in both directions: the
// direct and the relayed path between them have a round trip of 4 × oneWay, a side's path to
// the server 2 × oneWay.
func wanSides(oneWay time.Duration, loss float64) []natlab.Side {
	link := &natlab.Link{Up: wan.Shape{Delay: oneWay, Loss: loss}, Down: wan.Shape{Delay: oneWay}}
	return []natlab.Side{{Name: "P", NAT: natlab.Easy, WAN: link}, {Name: "V", NAT: natlab.Easy, WAN: link}}
}

// firstByte dials addr from host, sends one byte and waits for its echo: the time a user waits
// for a new session's first answer.
func firstByte(t *testing.T, l *natlab.Lab, host, addr string) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := l.Dial(host, "tcp4", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{7}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("first byte through %s: %v", addr, err)
	}
	return time.Since(start)
}

// TestP2PFirstByteRoundTrips counts the round trips to a new session's first byte on an 80 ms
// path (40 ms to the server from either side): asking the server for the session (half a path
// round trip), the QUIC handshake through the relay, the peers' CPace exchange (the visitor's
// share; the provider's share and proof; the visitor's confirmation, which the provider waits
// for before it serves a stream) and the first request and answer: 3.5. Peers that met before
// (the visitor pinned the provider's certificate after its proof) save a round trip: the
// visitor's hello carries its proof and is followed by its first stream, which the provider
// serves at once: 2.5.
func TestP2PFirstByteRoundTrips(t *testing.T) {
	t.Parallel()
	const oneWay = 20 * time.Millisecond
	const rtt = 4 * oneWay
	l := natlab.New(t, natlab.Config{Sides: wanSides(oneWay, 0)})
	startServer(t, l)
	echoService(t, l, "P1", "127.0.0.1:9000")
	startClient(t, l, "P1", "provider", providerConfig("")).WaitLog("xp2p service published", 10*time.Second)
	visitors := ""
	for i, name := range []string{"first", "second", "third", "fourth"} {
		visitors += fmt.Sprintf("[[visitors]]\nname = %q\ntype = \"xp2p\"\nserverName = \"echo\"\nsecretKey = \"lab-secret\"\nbindPort = %d\n", name, 9001+i)
	}
	visitor := startClient(t, l, "V1", "visitor", clientConfig("", visitors))
	rts := func(d time.Duration) string {
		return fmt.Sprintf("%s (%.1f round trips of %s)", d.Round(time.Millisecond), float64(d)/float64(rtt), rtt)
	}
	first := firstByte(t, l, "V1", "127.0.0.1:9001")
	ready1 := visitor.WaitLog(`p2p session ready.*`, 5*time.Second)[0]
	t.Logf("first byte of a first meeting: %s; session ready after %s", rts(first), field(ready1, "time_to_ready"))
	// The known sessions are measured once the first one's paths have settled (its direct path
	// locked, its TCP path punched), which would otherwise cost them a round trip now and then.
	visitor.WaitLog(`direct tcp path up`, 10*time.Second)
	known := time.Duration(1 << 62)
	for i := range 3 {
		d := firstByte(t, l, "V1", fmt.Sprintf("127.0.0.1:%d", 9002+i))
		t.Logf("first byte from a known provider: %s", rts(d))
		known = min(known, d)
	}
	// 0.5 (server) + 1 (QUIC) + 1 (CPace) + 1 (answer) round trips of the path; up to one more
	// when the direct path is locked mid-handshake (the side that locks first sends there before
	// the other side lets that address in, and QUIC retransmits).
	if first < 3*rtt || first > 6*rtt { // and up to 1.5 more on a loaded machine
		t.Errorf("first meeting: first byte after %s, want 3.5 to 4.5 round trips", rts(first))
	}
	// A round trip less (the best of three): half of one allowed to a loaded machine.
	if known > first-rtt/2 {
		t.Errorf("known peers: first byte after %s, a first meeting's after %s: want a round trip less", rts(known), rts(first))
	}
	if n := visitor.Count(`p2p session ready.*pipelined=true`); n < 3 {
		t.Errorf("%d of the known sessions pipelined, want 3", n)
	}
}

// rateFor sends to a sink through addr from host for d (after a first byte answered) and
// returns the rate in Mbit/s.
func rateFor(t *testing.T, l *natlab.Lab, host, addr string, d time.Duration) float64 {
	t.Helper()
	c, err := l.Dial(host, "tcp4", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d + 20*time.Second))
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("sink through %s: %v", addr, err)
	}
	buf := make([]byte, 128<<10)
	start := time.Now()
	sent := 0
	for time.Since(start) < d {
		n, err := c.Write(buf)
		if err != nil {
			t.Fatalf("send through %s: %v", addr, err)
		}
		sent += n
	}
	return float64(sent) * 8 / time.Since(start).Seconds() / 1e6
}

// TestP2PTCPPathSurvivesLoss: on a 20 ms path with 0.5 % random loss each way, kernel TCP (BBR
// here) keeps most of its rate where quic-go's cubic falls to a few percent of it. The session
// punches a direct TCP path and its bulk stream rides it: it must carry at least a quarter of
// what direct TCP through both NATs carries on the same path, in the same run. QUIC alone carries
// about 1.5 % here, so a quarter tells the two apart with room for a loaded 2-core machine, where
// the userspace WAN and xp2p's TLS compete with the rest of the suite for CPU (seen: 0.42x under
// load, 0.9-1.0x alone); `go run ./bench -only paths` measures the ratio itself.
func TestP2PTCPPathSurvivesLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: two 3-second transfers on a lossy path")
	}
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: wanSides(5*time.Millisecond, 0.005)})
	startServer(t, l)
	sink(t, l, "P1", "0.0.0.0:9000") // the provider's service, and the port forward's
	// Direct TCP through both NATs: the provider's NAT forwards a port to the sink.
	l.NFT("natP", fmt.Sprintf(`table ip portfwd {
  chain pre {
    type nat hook prerouting priority -101;
    iifname "wan0" tcp dport 9000 dnat to %s
  }
}`, l.IP("P1")))
	provider := startClient(t, l, "P1", "provider", providerConfig(""))
	provider.WaitLog("xp2p service published", 10*time.Second)
	visitor := startClient(t, l, "V1", "visitor", visitorConfig(""))
	firstByte(t, l, "V1", visitorAddr) // opens the session, which then punches its TCP path
	visitor.WaitLog(`direct tcp path up`, 15*time.Second)
	const d = 3 * time.Second
	direct := rateFor(t, l, "V1", fmt.Sprintf("%s:9000", l.NATIP("P")), d)
	p2p := rateFor(t, l, "V1", visitorAddr, d)
	t.Logf("20 ms, 0.5 %% loss: direct TCP %.0f Mbit/s, xp2p on its TCP path %.0f Mbit/s (%.2fx)", direct, p2p, p2p/direct)
	if p2p < direct/4 {
		t.Errorf("xp2p carried %.0f Mbit/s, under a quarter of direct TCP's %.0f", p2p, direct)
	}
}

// TestP2PTCPPathFromNoUDP: a provider whose network drops all UDP is relayed over its TCP
// session to the server, yet it can still open TCP: the session punches a direct TCP path, and
// streams leave the relay.
func TestP2PTCPPathFromNoUDP(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the noudp side's login waits for UDP to fail first")
	}
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.NoUDP}, {Name: "V", NAT: natlab.Easy}}})
	p := startPair(t, l, "P1", "V1", "")
	exchange(t, l, "V1", visitorAddr, 1<<20, 0)
	line := p.provider.WaitLog(`direct tcp path up.*`, 15*time.Second)[0]
	t.Logf("provider: tcp path to %s after %s", field(line, "remote"), field(line, "time_to_tcp"))
	exchange(t, l, "V1", visitorAddr, 4<<20, 0)
	p.visitor.Stop()
	ended := p.visitor.WaitLog(`p2p session ended.*`, 5*time.Second)[0]
	if field(ended, "tcp_streams") == "0" {
		t.Errorf("no stream took the TCP path: %s", ended)
	}
}

// TestP2PTCPPathBlackHoleMTU: a 1440-byte path MTU that answers no ICMP (a PMTU black hole): QUIC's
// 1400-byte packets fit, a 1500-byte MTU's TCP segments do not, and Linux does not probe for the
// path MTU. The punched TCP path sends segments that fit 1280 (traversal.TCPSegment), so a bulk
// stream on it goes through, checksummed both ways.
func TestP2PTCPPathBlackHoleMTU(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a TCP path that would stall times out its handshake")
	}
	t.Parallel()
	hole := &natlab.Link{Up: wan.Shape{MTU: 1440, NoICMP: true}, Down: wan.Shape{MTU: 1440, NoICMP: true}}
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy, WAN: hole}, {Name: "V", NAT: natlab.Easy}}})
	p := startPair(t, l, "P1", "V1", "")
	exchange(t, l, "V1", visitorAddr, 64<<10, 0)
	p.visitor.WaitLog(`direct tcp path up`, 15*time.Second)
	exchange(t, l, "V1", visitorAddr, 8<<20, 0)
	p.visitor.Stop()
	ended := p.visitor.WaitLog(`p2p session ended.*`, 5*time.Second)[0]
	if field(ended, "tcp_streams") == "0" {
		t.Errorf("no stream took the TCP path: %s", ended)
	}
	if up, down := l.LinkStats("natP"); up.TooBig+down.TooBig == 0 {
		t.Log("no packet met the MTU: nothing tried a 1500-byte packet")
	}
}
