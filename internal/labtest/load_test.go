//go:build linux

package labtest

import (
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
	"github.com/xp2p/xp2p/internal/natlab/wan"
)

// startClientEnv is startClient without the TCP path (XP2P_DISABLE_TCP_PATH): every stream
// then rides QUIC on the client's one UDP socket.
func startClientEnv(t *testing.T, l *natlab.Lab, host, name, config string) *natlab.Proc {
	t.Helper()
	p := l.Start(host, name, "env", "XP2P_DISABLE_TCP_PATH=1", natlab.Binary(t), "client", "-c", natlab.WriteFile(t, name+".toml", config))
	p.WaitLog("logged in to server", 15*time.Second)
	return p
}

// TestP2PIdleSessionUnderLoad: one visitor client holds two sessions to the provider; one
// carries a bulk transfer as fast as the machine goes (the socket, the NATs and the CPU
// saturated), the other is idle. The idle one keeps its direct path: its keepalives and probes
// get through the saturated socket.
func TestP2PIdleSessionUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("12 s of load")
	}
	t.Parallel()
	// The visitor's uplink and downlink: 40 Mbit/s, 10 ms each way, a router's 50 ms queue.
	shape := wan.Shape{Delay: 10 * time.Millisecond, Rate: 40e6}
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy, WAN: &natlab.Link{Up: shape, Down: shape}}}})
	startServer(t, l)
	echoService(t, l, "P1", "127.0.0.1:9000")
	provider := startClientEnv(t, l, "P1", "provider", clientConfig("", `[[proxies]]
name = "bulk"
type = "xp2p"
secretKey = "lab-secret"
localPort = 9000
[[proxies]]
name = "idle"
type = "xp2p"
secretKey = "lab-secret"
localPort = 9000
`)+"\n")
	provider.WaitLog("xp2p service published.*idle", 10*time.Second)
	visitor := startClientEnv(t, l, "V1", "visitor", clientConfig("", `[[visitors]]
name = "bulk"
type = "xp2p"
serverName = "bulk"
secretKey = "lab-secret"
bindPort = 9001
[[visitors]]
name = "idle"
type = "xp2p"
serverName = "idle"
secretKey = "lab-secret"
bindPort = 9002
keepTunnelOpen = true
`))
	visitor.WaitLog(`direct path locked.*service=idle`, 15*time.Second)
	c, err := l.Dial("V1", "tcp4", "127.0.0.1:9002", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echoOn(c, "before"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	moved := 0
	for time.Since(start) < 12*time.Second {
		exchange(t, l, "V1", "127.0.0.1:9001", 16<<20, 0)
		moved += 16
	}
	t.Logf("%d MiB echoed on the busy session in %s", moved, time.Since(start).Round(time.Millisecond))
	if err := echoOn(c, "after"); err != nil {
		t.Fatalf("the idle session's connection: %v", err)
	}
	for _, p := range []*natlab.Proc{visitor, provider} {
		if n := p.Count(`direct path lost.*service=idle`); n > 0 {
			t.Errorf("%s: the idle session lost its direct path %d times under the other's load", p.Name, n)
		}
	}
}

// TestP2PRoaming: the visitor's host moves to another network (another NAT, another address)
// in the middle of a transfer. The client notices (netlink), tells the server its new
// addresses, and its session probes from the new network at once: the transfer goes on through
// the relay while the direct path comes back through the new NAT, and no byte is lost.
func TestP2PRoaming(t *testing.T) {
	if testing.Short() {
		t.Skip("a 5 s transfer across a move, then a new TCP path")
	}
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}, {Name: "W", NAT: natlab.Easy}}})
	p := startPair(t, l, "P1", "V1", "")
	done := make(chan time.Duration, 1)
	go func() { done <- exchange(t, l, "V1", visitorAddr, 40<<20, 8<<20) }() // about 5 s
	p.visitor.WaitLog(`direct path locked.*role=visitor`, 10*time.Second)
	time.Sleep(1500 * time.Millisecond)
	moved := time.Now()
	l.Move("V1", "W")
	p.visitor.WaitLog(`network changed`, 10*time.Second)
	line := p.provider.WaitLog(`(direct path locked|direct path upgraded).*remote=`+l.NATIP("W")+`:[0-9]+|direct path upgraded.*to=`+l.NATIP("W")+`:[0-9]+`, 20*time.Second)[0]
	t.Logf("the provider's path leads to the visitor's new NAT %s after %s: %s", l.NATIP("W"), time.Since(moved).Round(time.Millisecond), line)
	d := <-done
	t.Logf("40 MiB echoed intact in %s across the move", d.Round(time.Millisecond))
	// The TCP path, tied to the old network, is punched anew; new connections take it.
	p.visitor.WaitLog(`(?s)direct tcp path dropped.*direct tcp path up`, 15*time.Second)
	exchange(t, l, "V1", visitorAddr, 4<<20, 0)
}
