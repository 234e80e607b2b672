//go:build linux

package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// Ports and secrets of the lab set-up. The xp2p server and frps both run on the public server
// host; frp's xtcp uses the xp2p server's STUN service (frp needs one, and the lab has no
// internet), which answers RFC 5780 requests with a second address and port.
const (
	token       = "bench-token-8c1f"
	secret      = "bench-secret"
	servicePort = 9000
	xp2pPort    = 7000
	frpPort     = 7100
	xp2pRemote  = 6000 // classic tcp proxy, xp2p
	frpRemote   = 6100 // classic tcp proxy, frp
	xp2pVisitor = 9001 // visitor ports on the visitor host
	frpVisitor  = 9101
	serverAlt   = "203.0.113.3"
)

// system is one implementation under test.
type system struct {
	name string // "xp2p" or "frp"
	bins *binaries
}

type binaries struct {
	xp2p, frps, frpc string
	// tailscaled, tailscale and tscontrol: empty when Tailscale is left out (-tailscale=false,
	// or its build failed: the report says so).
	tailscaled, tailscale, tscontrol string
}

// startServer runs the system's server on the lab's server host.
func (s system) startServer(t natlab.TB, l *natlab.Lab) *natlab.Proc {
	return s.startServerWith(t, l, "")
}

// startServerWith runs the system's server with extra top-level keys.
func (s system) startServerWith(t natlab.TB, l *natlab.Lab, extra string) *natlab.Proc {
	if s.name == "xp2p" {
		// stateDir: a restarted server keeps the identity its clients pinned.
		cfg := fmt.Sprintf("bindPort = %d\nauth.token = %q\nstateDir = %q\n%s[stun]\naltAddr = %q\n", xp2pPort, token, l.StateDir("xp2p-server"), extra, serverAlt)
		p := l.Start("srv", "xp2p-server", s.bins.xp2p, "server", "-c", natlab.WriteFile(t, "xp2p-server.toml", cfg))
		p.WaitLog("xp2p server listening", 10*time.Second)
		return p
	}
	cfg := fmt.Sprintf("bindPort = %d\nauth.token = %q\n%s", frpPort, token, extra)
	p := l.Start("srv", "frps", s.bins.frps, "-c", natlab.WriteFile(t, "frps.toml", cfg))
	p.WaitLog("frps started successfully", 10*time.Second)
	return p
}

// addServerAlt gives the server host its second address (for the RFC 5780 tests).
func addServerAlt(t natlab.TB, l *natlab.Lab) {
	if out, err := l.Exec("srv", "ip", "addr", "add", serverAlt+"/24", "dev", "eth0"); err != nil {
		t.Fatalf("second server address: %v: %s", err, out)
	}
}

// clientConfig is the common head of a client config.
func (s system) clientConfig(extra string) string {
	port := xp2pPort
	if s.name == "frp" {
		port = frpPort
		extra = fmt.Sprintf("natHoleStunServer = \"%s:%d\"\nlog.level = \"info\"\nlog.disablePrintColor = true\n", natlab.ServerIP, xp2pPort) + extra
	}
	return fmt.Sprintf("serverAddr = %q\nserverPort = %d\nauth.token = %q\n%s\n", natlab.ServerIP, port, token, extra)
}

// startClient runs a client of the system with config on host and waits for its login.
func (s system) startClient(t natlab.TB, l *natlab.Lab, host, name, config string) *natlab.Proc {
	path := natlab.WriteFile(t, name+".toml", config)
	if s.name == "xp2p" {
		p := l.Start(host, name, s.bins.xp2p, "client", "-c", path)
		p.WaitLog("logged in to server", 15*time.Second)
		return p
	}
	p := l.Start(host, name, s.bins.frpc, "-c", path)
	p.WaitLog("login to server success", 15*time.Second)
	return p
}

// tcpProxies is the [[proxies]] of n classic tcp proxies of the service, from remote port base.
func (s system) tcpProxies(n, base int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "[[proxies]]\nname = \"svc%d\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\nremotePort = %d\n\n", i, servicePort, base+i)
	}
	return b.String()
}

// remotePort is the system's classic proxy port on the server.
func (s system) remotePort() int {
	if s.name == "xp2p" {
		return xp2pRemote
	}
	return frpRemote
}

// p2pProvider is the provider side of the system's P2P service (frp: xtcp plus an stcp for
// the visitor's fallback).
func (s system) p2pProvider() string {
	if s.name == "xp2p" {
		return fmt.Sprintf("[[proxies]]\nname = \"p2p\"\ntype = \"xp2p\"\nsecretKey = %q\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\n", secret, servicePort)
	}
	return fmt.Sprintf(`[[proxies]]
name = "p2p"
type = "xtcp"
secretKey = %q
localIP = "127.0.0.1"
localPort = %d

[[proxies]]
name = "p2p-stcp"
type = "stcp"
secretKey = %q
localIP = "127.0.0.1"
localPort = %d
`, secret, servicePort, secret, servicePort)
}

// p2pVisitor is the visitor side: frp's xtcp visitor falls back to stcp after its default 1 s.
func (s system) p2pVisitor() string {
	if s.name == "xp2p" {
		return fmt.Sprintf("[[visitors]]\nname = \"v\"\ntype = \"xp2p\"\nserverName = \"p2p\"\nsecretKey = %q\nbindAddr = \"127.0.0.1\"\nbindPort = %d\n", secret, xp2pVisitor)
	}
	return fmt.Sprintf(`[[visitors]]
name = "v"
type = "xtcp"
serverName = "p2p"
secretKey = %q
bindAddr = "127.0.0.1"
bindPort = %d
fallbackTo = "v-stcp"
fallbackTimeoutMs = 1000

[[visitors]]
name = "v-stcp"
type = "stcp"
serverName = "p2p-stcp"
secretKey = %q
bindPort = -1
`, secret, frpVisitor, secret)
}

// visitorAddr is where the visitor listens on its host.
func (s system) visitorAddr() string {
	if s.name == "xp2p" {
		return fmt.Sprintf("127.0.0.1:%d", xp2pVisitor)
	}
	return fmt.Sprintf("127.0.0.1:%d", frpVisitor)
}

// path says how the visitor's connection went: "direct" or "relayed", from its log.
func (s system) path(visitor *natlab.Proc, wait time.Duration) string {
	pattern := "direct path locked"
	if s.name == "frp" {
		pattern = "establishing nat hole connection successful"
	}
	deadline := time.Now().Add(wait)
	for {
		if visitor.Count(pattern) > 0 {
			return "direct"
		}
		if time.Now().After(deadline) {
			return "relayed"
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// timeToDirect is xp2p's time to the direct path from its log, in ms (NaN: not known).
func timeToDirect(visitor *natlab.Proc) (float64, bool) {
	out := visitor.Output()
	i := strings.Index(out, "direct path locked")
	if i < 0 {
		return 0, false
	}
	line := out[i:]
	line, _, _ = strings.Cut(line, "\n")
	_, v, ok := strings.Cut(line, "time_to_direct=")
	if !ok {
		return 0, false
	}
	v, _, _ = strings.Cut(v, " ")
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, false
	}
	return float64(d.Microseconds()) / 1e3, true
}

// frpHoleTime is when frpc logged its punched hole (its log lines start with a local time
// stamp to the millisecond; the bench runs on the same clock).
func frpHoleTime(visitor *natlab.Proc) (time.Time, bool) {
	for _, line := range strings.Split(visitor.Output(), "\n") {
		if !strings.Contains(line, "establishing nat hole connection successful") || len(line) < 23 {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02 15:04:05.000", line[:23], time.Local)
		return at, err == nil
	}
	return time.Time{}, false
}
