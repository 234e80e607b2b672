//go:build linux

package labtest

import (
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// TestClassicProxyBehindNATs: a client behind an easy NAT (QUIC to the server) and one behind a
// NAT that drops all outbound UDP (TLS over TCP) each publish a tcp proxy that a user on the
// public side reaches; after a server restart both come back by themselves.
func TestClassicProxyBehindNATs(t *testing.T) {
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "E", NAT: natlab.Easy}, {Name: "N", NAT: natlab.NoUDP}}})
	srv := startServer(t, l)
	echoService(t, l, "E1", "127.0.0.1:9000")
	echoService(t, l, "N1", "127.0.0.1:9000")
	proxy := func(port string) string {
		return `[[proxies]]
name = "echo-` + port + `"
type = "tcp"
localPort = 9000
remotePort = ` + port + "\n"
	}
	easy := startClient(t, l, "E1", "easy-client", clientConfig("", proxy("6001")))
	noudp := startClient(t, l, "N1", "noudp-client", clientConfig("", proxy("6002")))
	if tr := field(easy.WaitLog(`logged in to server.*`, time.Second)[0], "transport"); tr != "quic" {
		t.Errorf("client behind the easy NAT uses %q, want quic", tr)
	}
	if tr := field(noudp.WaitLog(`logged in to server.*`, time.Second)[0], "transport"); tr != "tcp" {
		t.Errorf("client behind the noudp NAT uses %q, want tcp (UDP cannot leave)", tr)
	}
	easy.WaitLog("proxy published", 10*time.Second)
	noudp.WaitLog("proxy published", 10*time.Second)
	for _, port := range []string{"6001", "6002"} {
		d := exchange(t, l, "pub", natlab.ServerIP+":"+port, 8<<20, 0)
		t.Logf("8 MB echoed through remotePort %s from the public side in %s", port, d.Round(time.Millisecond))
	}

	// Server restart: both clients reconnect and re-register by themselves.
	srv.Kill()
	srv = startServer(t, l)
	for _, port := range []string{"6001", "6002"} {
		eventually(t, 30*time.Second, "proxy "+port+" after a server restart", func() error {
			return ping(l, "pub", natlab.ServerIP+":"+port)
		})
	}
	exchange(t, l, "pub", natlab.ServerIP+":6001", 1<<20, 0)
	exchange(t, l, "pub", natlab.ServerIP+":6002", 1<<20, 0)
}
