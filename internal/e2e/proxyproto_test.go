package e2e

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// startProxyProtoService serves each connection with the address the PROXY protocol header
// named as its source (or the connection's own peer when there was none), one line.
func startProxyProtoService(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := &proxyproto.Listener{Listener: ln, ReadHeaderTimeout: 300 * time.Millisecond} // "none" sends no header: it waits this long
	t.Cleanup(func() { pl.Close() })
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", c.RemoteAddr())
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// seenAs connects to addr and returns the user's own address and the one the service saw.
func seenAs(t *testing.T, addr string) (user, seen string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("through %s: %v", addr, err)
	}
	return c.LocalAddr().String(), strings.TrimSpace(line)
}

// TestProxyProtocol: with transport.proxyProtocolVersion the local service sees the real
// user's address (PROXY protocol v1 or v2), through a tcp proxy and through an xp2p service.
func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	svc := startProxyProtoService(t)
	v1, v2, none := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	provider := startClient(t, clientHeader(srv.Port(), testToken, "")+
		tcpProxy("v1", svc, v1, `transport.proxyProtocolVersion = "v1"`)+
		tcpProxy("v2", svc, v2, `transport.proxyProtocolVersion = "v2"`)+
		tcpProxy("none", svc, none)+
		p2pService("p2p", "xp2p", "k", svc, `transport.proxyProtocolVersion = "v2"`))
	for _, name := range []string{"v1", "v2", "none"} {
		waitRunning(t, provider, name)
	}
	waitProxyStatus(t, provider, "p2p")
	vport := freeTCPPort(t)
	startClient(t, clientHeader(srv.Port(), testToken, "")+p2pVisitor("v", "xp2p", "p2p", "k", vport))

	cases := []struct {
		name, addr string
		real       bool
	}{
		{"tcp proxy, v1", fmt.Sprintf("127.0.0.1:%d", v1), true},
		{"tcp proxy, v2", fmt.Sprintf("127.0.0.1:%d", v2), true},
		{"tcp proxy, none", fmt.Sprintf("127.0.0.1:%d", none), false},
		{"xp2p service, v2", fmt.Sprintf("127.0.0.1:%d", vport), true},
	}
	for _, tc := range cases {
		user, seen := seenAs(t, tc.addr)
		if (seen == user) != tc.real {
			t.Errorf("%s: the user %s was seen as %s (want the real address: %v)", tc.name, user, seen, tc.real)
		}
	}
}
