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
// path (40 ms to the server from either side): asking the server for the session (one round
// trip to the server), the QUIC handshake through the relay, the mutual secretKey proof and the
// first request and answer (one path round trip each). A visitor that met the provider before
// (its certificate pinned after a proof) sends the first stream with its proof: one path round
// trip fewer.
func TestP2PFirstByteRoundTrips(t *testing.T) {
	t.Parallel()
	const oneWay = 20 * time.Millisecond
	const rtt = 4 * oneWay
	l := natlab.New(t, natlab.Config{Sides: wanSides(oneWay, 0)})
	startServer(t, l)
	echoService(t, l, "P1", "127.0.0.1:9000")
	startClient(t, l, "P1", "provider", providerConfig("")).WaitLog("xp2p service published", 10*time.Second)
	visitor := startClient(t, l, "V1", "visitor", clientConfig("", `[[visitors]]
name = "first"
type = "xp2p"
serverName = "echo"
secretKey = "lab-secret"
bindPort = 9001
[[visitors]]
name = "second"
type = "xp2p"
serverName = "echo"
secretKey = "lab-secret"
bindPort = 9002
`))
	first := firstByte(t, l, "V1", "127.0.0.1:9001")
	ready1 := visitor.WaitLog(`p2p session ready.*`, 5*time.Second)[0]
	second := firstByte(t, l, "V1", "127.0.0.1:9002")
	rts := func(d time.Duration) string {
		return fmt.Sprintf("%s (%.1f round trips of %s)", d.Round(time.Millisecond), float64(d)/float64(rtt), rtt)
	}
	t.Logf("first byte of a first meeting: %s; session ready after %s", rts(first), field(ready1, "time_to_ready"))
	t.Logf("first byte from a known provider: %s", rts(second))
	// 0.5 (server) + 1 (QUIC) + 1 (proof) + 1 (answer) round trips of the path; up to one more
	// when the direct path is locked mid-handshake (the side that locks first sends there before
	// the other side lets that address in, and QUIC retransmits).
	if first < 3*rtt || first > 5*rtt {
		t.Errorf("first meeting: first byte after %s, want 3.5 to 4.5 round trips", rts(first))
	}
	if first-second < rtt*3/4 {
		t.Errorf("known provider: first byte after %s, want a round trip less than the first meeting's %s", rts(second), rts(first))
	}
}
