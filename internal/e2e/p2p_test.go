package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xp2p/xp2p/peer"
)

// p2pService is an xp2p service entry of a provider's config.
func p2pService(name, typ, secret string, localPort int, extra ...string) string {
	return fmt.Sprintf(`
[[proxies]]
name = %q
type = %q
secretKey = %q
localIP = "127.0.0.1"
localPort = %d
%s
`, name, typ, secret, localPort, strings.Join(extra, "\n"))
}

// p2pVisitor is a visitor entry of a visitor's config.
func p2pVisitor(name, typ, service, secret string, bindPort int, extra ...string) string {
	return fmt.Sprintf(`
[[visitors]]
name = %q
type = %q
serverName = %q
secretKey = %q
bindAddr = "127.0.0.1"
bindPort = %d
%s
`, name, typ, service, secret, bindPort, strings.Join(extra, "\n"))
}

// echoThrough sends n random bytes through addr to an echo service and checks they come back.
func echoThrough(t *testing.T, addr string, n int) {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data := make([]byte, n)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		c.CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo through %s: %v", addr, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write through %s: %v", addr, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo through %s: got %d bytes, want %d identical bytes", addr, len(got), len(data))
	}
}

// sessionTo waits for the client's session to service and returns it.
func sessionTo(t *testing.T, c *testClient, service string, cond func(peer.SessionInfo) bool) peer.SessionInfo {
	t.Helper()
	var found peer.SessionInfo
	eventually(t, 10*time.Second, func() bool {
		for _, s := range c.Sessions() {
			if s.Service == service && cond(s) {
				found = s
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("no matching session to %q: %+v", service, c.Sessions()) })
	return found
}

func TestP2PSessionDirectAndRelayed(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	echo := startTCPService(t, echoHandler)
	provider := startClient(t, clientHeader(srv.Port(), testToken, "")+
		p2pService("echo", "xp2p", "s3cret", echo.Port())+
		p2pService("echo-relayed", "stcp", "s3cret", echo.Port()))
	vport, rport := freeTCPPort(t), freeTCPPort(t)
	visitor := startClient(t, clientHeader(srv.Port(), testToken, "")+
		p2pVisitor("v", "xtcp", "echo", "s3cret", vport)+
		p2pVisitor("r", "stcp", "echo-relayed", "s3cret", rport))
	waitProxyStatus(t, provider, "echo")
	waitProxyStatus(t, provider, "echo-relayed")

	echoThrough(t, fmt.Sprintf("127.0.0.1:%d", vport), 8<<20)
	direct := sessionTo(t, visitor, "echo", func(s peer.SessionInfo) bool { return s.Path == peer.PathDirect })
	if direct.TimeToReady <= 0 || direct.Remote == "" {
		t.Errorf("direct session lacks figures: %+v", direct)
	}

	echoThrough(t, fmt.Sprintf("127.0.0.1:%d", rport), 8<<20)
	relayed := sessionTo(t, visitor, "echo-relayed", func(peer.SessionInfo) bool { return true })
	if relayed.Path != peer.PathRelay || relayed.DirectBytes != 0 || relayed.RelayBytes < 8<<20 {
		t.Errorf("stcp session should stay relayed: %+v", relayed)
	}
}

func TestP2PWrongSecretKey(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	echo := startTCPService(t, echoHandler)
	provider := startClient(t, clientHeader(srv.Port(), testToken, "")+p2pService("echo", "xp2p", "right", echo.Port()))
	vport := freeTCPPort(t)
	visitor := startClient(t, clientHeader(srv.Port(), testToken, "")+p2pVisitor("v", "xp2p", "echo", "wrong", vport))
	waitProxyStatus(t, provider, "echo")

	// The visitor resets the user's connection; the reset may even beat connect() back.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", vport), 5*time.Second); err == nil {
		c.SetDeadline(time.Now().Add(15 * time.Second))
		c.Write([]byte("hello"))
		if n, err := c.Read(make([]byte, 16)); err == nil {
			t.Fatalf("read %d bytes through a visitor with the wrong secretKey", n)
		}
		c.Close()
	}
	eventually(t, 5*time.Second, func() bool { return visitor.log.Count("wrong secretKey") > 0 },
		func() string {
			return "the visitor did not log a clear wrong-secretKey error:\n" + visitor.log.tail(20)
		})
	eventually(t, 5*time.Second, func() bool { return provider.log.Count("visitor refused: wrong secretKey") > 0 },
		func() string { return "the provider did not log the refusal:\n" + provider.log.tail(20) })

	// Guessing is slowed down: after 5 wrong keys from one address, the provider refuses that
	// address without checking, for 10 s per further try.
	for range 8 {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", vport), 5*time.Second); err == nil {
			c.SetDeadline(time.Now().Add(15 * time.Second))
			c.Read(make([]byte, 16))
			c.Close()
		}
	}
	if n := provider.log.Count("visitor refused: wrong secretKey"); n > 5 {
		t.Errorf("the provider checked %d wrong secretKeys from one address, want at most 5", n)
	}
	eventually(t, 5*time.Second, func() bool { return visitor.log.Count("too many wrong secretKeys") > 0 },
		func() string { return "the visitor was not told it is being slowed down:\n" + visitor.log.tail(20) })
}

func TestP2PUDPService(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	echo := startUDPEcho(t)
	provider := startClient(t, clientHeader(srv.Port(), testToken, "")+
		p2pService("dns", "xp2p", "k", echo.Port(), `protocol = "udp"`))
	vport := freeUDPTCPPort(t)
	visitor := startClient(t, clientHeader(srv.Port(), testToken, "")+
		p2pVisitor("v", "xp2p", "dns", "k", vport, `protocol = "udp"`))
	waitProxyStatus(t, provider, "dns")

	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: vport}
	for i := range 3 {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var resent bool
		if err := udpAsk(conn, to, []byte(fmt.Sprintf("query-%d", i)), fmt.Sprintf("source %d", i), &resent); err != nil {
			t.Fatal(err)
		}
		// Too large for one QUIC packet: it goes on the flow's stream, intact.
		big := append([]byte(fmt.Sprintf("source %d big ", i)), bytes.Repeat([]byte{byte(i)}, 8000)...)
		if err := udpAsk(conn, to, big, fmt.Sprintf("source %d", i), &resent); err != nil {
			t.Fatal(err)
		}
	}
	if got := echo.sources(); got != 3 {
		t.Errorf("the udp service saw %d sources, want 3 (one flow per visitor-side source)", got)
	}
	// The small datagrams went in QUIC DATAGRAM frames, both ways (3 queries and 3 answers at
	// least, more if some were resent).
	for role, c := range map[string]*testClient{"visitor": visitor, "provider": provider} {
		if sessions := c.Sessions(); len(sessions) != 1 || sessions[0].Datagrams < 6 {
			t.Errorf("%s sessions %+v, want one that carried at least 6 QUIC datagrams", role, sessions)
		}
	}
}

func TestP2PSeveralVisitorsServicesProviders(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	echoA, echoB := startTCPService(t, idHandler("A")), startTCPService(t, idHandler("B"))
	echoC := startTCPService(t, idHandler("C"))
	provA := startClient(t, clientHeader(srv.Port(), testToken, "")+
		p2pService("svc-a", "xp2p", "ka", echoA.Port())+p2pService("svc-b", "xp2p", "kb", echoB.Port()))
	provC := startClient(t, clientHeader(srv.Port(), testToken, "")+p2pService("svc-c", "xp2p", "kc", echoC.Port()))
	waitProxyStatus(t, provA, "svc-b")
	waitProxyStatus(t, provC, "svc-c")
	// Visitor 1 reaches both providers; visitor 2 reaches one service of the first provider.
	p1, p2, p3 := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	startClient(t, clientHeader(srv.Port(), testToken, "")+
		p2pVisitor("a", "xp2p", "svc-a", "ka", p1)+p2pVisitor("c", "xp2p", "svc-c", "kc", p2))
	startClient(t, clientHeader(srv.Port(), testToken, "")+p2pVisitor("b", "xp2p", "svc-b", "kb", p3))
	for port, want := range map[int]string{p1: "A", p2: "C", p3: "B"} {
		for range 5 {
			got, err := askID(fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil || got != want {
				t.Fatalf("through 127.0.0.1:%d: got %q, %v; want %q", port, got, err, want)
			}
		}
	}
	// One provider failing does not disturb the others.
	provC.Close()
	if got, err := askID(fmt.Sprintf("127.0.0.1:%d", p1)); err != nil || got != "A" {
		t.Fatalf("after provider C left: %q, %v", got, err)
	}
	if got, err := askID(fmt.Sprintf("127.0.0.1:%d", p3)); err != nil || got != "B" {
		t.Fatalf("after provider C left: %q, %v", got, err)
	}
}

func TestSeveralServers(t *testing.T) {
	t.Parallel()
	srv1, srv2 := startServer(t, ""), startServer(t, "")
	svc := startTCPService(t, idHandler("svc"))
	provider := startClient(t, clientHeader(srv1.Port(), testToken, "")+
		fmt.Sprintf("[[servers]]\naddr = \"127.0.0.1\"\nport = %d\n", srv2.Port())+
		tcpProxy("web", svc.Port(), 0)+p2pService("p2p", "xp2p", "k", svc.Port()))
	// Wait for both servers' answers ("running on 1 of 2 servers" comes first).
	eventually(t, 10*time.Second, func() bool {
		pi, _ := proxyInfo(provider, "web")
		return pi.Status == "running"
	}, func() string { pi, _ := proxyInfo(provider, "web"); return "status: " + pi.Status })
	pi, _ := proxyInfo(provider, "web")
	remotes := strings.Split(pi.Remote, ", ")
	if len(remotes) != 2 {
		t.Fatalf("proxy should be published on both servers, got %q", remotes)
	}
	for _, r := range remotes {
		if got, err := askID(r); err != nil || got != "svc" {
			t.Fatalf("through %s: %q, %v", r, got, err)
		}
	}
	vport := freeTCPPort(t)
	startClient(t, clientHeader(srv2.Port(), testToken, "")+
		fmt.Sprintf("[[servers]]\naddr = \"127.0.0.1\"\nport = %d\n", srv1.Port())+
		p2pVisitor("v", "xp2p", "p2p", "k", vport))
	if got, err := askID(fmt.Sprintf("127.0.0.1:%d", vport)); err != nil || got != "svc" {
		t.Fatalf("visitor: %q, %v", got, err)
	}

	// A server going away only takes its share.
	srv1.Close()
	eventually(t, 10*time.Second, func() bool {
		pi, _ := proxyInfo(provider, "web")
		return pi.Status == "running on 1 of 2 servers"
	}, func() string { pi, _ := proxyInfo(provider, "web"); return "status: " + pi.Status })
	pi, _ = proxyInfo(provider, "web")
	if got, err := askID(pi.Remote); err != nil || got != "svc" {
		t.Fatalf("through the remaining server %s: %q, %v", pi.Remote, got, err)
	}
	if got, err := askID(fmt.Sprintf("127.0.0.1:%d", vport)); err != nil || got != "svc" {
		t.Fatalf("visitor after one server left: %q, %v", got, err)
	}
}

// TestP2PKnownProviderPipelines: a visitor that has seen a provider prove the secretKey pins its
// certificate, and its next session to that provider sends the first stream with its own proof
// instead of a round trip later. A first meeting never pipelines.
func TestP2PKnownProviderPipelines(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	echo := startTCPService(t, echoHandler)
	provider := startClient(t, clientHeader(srv.Port(), testToken, "")+p2pService("echo", "xp2p", "s3cret", echo.Port()))
	first, second := freeTCPPort(t), freeTCPPort(t)
	visitor := startClient(t, clientHeader(srv.Port(), testToken, "")+
		p2pVisitor("first", "xp2p", "echo", "s3cret", first)+
		p2pVisitor("second", "xp2p", "echo", "s3cret", second))
	waitProxyStatus(t, provider, "echo")

	echoThrough(t, fmt.Sprintf("127.0.0.1:%d", first), 1<<20)
	s1 := sessionTo(t, visitor, "echo", func(s peer.SessionInfo) bool { return s.TimeToReady > 0 })
	if s1.Pipelined {
		t.Fatalf("a first meeting pipelined: %+v", s1)
	}
	echoThrough(t, fmt.Sprintf("127.0.0.1:%d", second), 1<<20)
	s2 := sessionTo(t, visitor, "echo", func(s peer.SessionInfo) bool { return s.ID != s1.ID })
	if !s2.Pipelined {
		t.Errorf("the second session to a known provider did not pipeline: %+v", s2)
	}
}

// TestP2PTCPPath: once a session is ready the two clients punch a direct TCP path (a
// simultaneous open; here on loopback), prove the session over its TLS, and new streams take it,
// checksummed both ways.
func TestP2PTCPPath(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	echo := startTCPService(t, echoHandler)
	provider := startClient(t, clientHeader(srv.Port(), testToken, "")+p2pService("echo", "xp2p", "s3cret", echo.Port()))
	vport := freeTCPPort(t)
	visitor := startClient(t, clientHeader(srv.Port(), testToken, "")+p2pVisitor("v", "xp2p", "echo", "s3cret", vport))
	waitProxyStatus(t, provider, "echo")
	addr := fmt.Sprintf("127.0.0.1:%d", vport)
	echoThrough(t, addr, 1<<20) // the first stream: QUIC, while the TCP path is punched
	up := sessionTo(t, visitor, "echo", func(s peer.SessionInfo) bool { return s.TCP != "" })
	echoThrough(t, addr, 8<<20)
	s := sessionTo(t, visitor, "echo", func(s peer.SessionInfo) bool { return s.ID == up.ID })
	if s.TCPStreams < 1 {
		t.Errorf("the stream after the TCP path came up did not take it: %+v", s)
	}
	ps := sessionTo(t, provider, "echo", func(peer.SessionInfo) bool { return true })
	if ps.TCP == "" {
		t.Errorf("the provider has no TCP path: %+v", ps)
	}
}
