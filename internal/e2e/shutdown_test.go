package e2e

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// TestCleanShutdown closes a server and its clients, in both orders, while user connections and
// udp flows are open: every Close returns promptly, the open user connection ends, no goroutine
// of xp2p (or of quic-go and yamux under it) is left, and every port can be bound again at once.
//
// Not parallel: it counts goroutines, so it runs before the parallel tests start.
func TestCleanShutdown(t *testing.T) {
	for _, serverFirst := range []bool{false, true} {
		name := "clients first"
		if serverFirst {
			name = "server first"
		}
		t.Run(name, func(t *testing.T) {
			base := goroutines()
			echo := startTCPService(t, echoHandler)
			uecho := startUDPEcho(t)
			srv := startServer(t, "")
			cq := startClient(t, clientHeader(srv.Port(), testToken, `transport.protocol = "quic"`)+
				tcpProxy("q-tcp", echo.Port(), 0)+udpProxy("q-udp", uecho.Port(), 0))
			ct := startClient(t, clientHeader(srv.Port(), testToken, `transport.protocol = "tcp"`)+
				tcpProxy("t-tcp", echo.Port(), 0)+udpProxy("t-udp", uecho.Port(), 0))

			type bound struct {
				network string
				port    int
			}
			ports := []bound{{"udp", srv.Port()}, {"tcp", srv.Port()}}
			var users []*net.TCPConn
			for _, p := range []struct {
				c    *testClient
				name string
			}{{cq, "q-tcp"}, {ct, "t-tcp"}} {
				remote := waitRunning(t, p.c, p.name)
				if err := roundTrip(remote, []byte("hello "+p.name)); err != nil {
					t.Fatal(err)
				}
				// A user connection left open across the shutdown.
				u := dial(t, remote)
				if _, err := u.Write([]byte("ping")); err != nil {
					t.Fatal(err)
				}
				u.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := u.Read(make([]byte, 4)); err != nil {
					t.Fatal(err)
				}
				users = append(users, u)
				ports = append(ports, bound{"tcp", portOf(remote)})
			}
			for _, p := range []struct {
				c    *testClient
				name string
			}{{cq, "q-udp"}, {ct, "t-udp"}} {
				remote := waitRunning(t, p.c, p.name)
				src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					t.Fatal(err)
				}
				defer src.Close()
				resent := false
				// The flow stays open (its idle timeout is 60 s) across the shutdown.
				if err := udpAsk(src, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(remote)), []byte("datagram to "+p.name+"...."), "datagram", &resent); err != nil {
					t.Fatal(err)
				}
				ports = append(ports, bound{"udp", portOf(remote)})
			}
			ports = append(ports, bound{"udp", cq.UDPAddr().Port}, bound{"udp", ct.UDPAddr().Port})

			timed := func(what string, f func()) {
				start := time.Now()
				f()
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("%s took %s", what, took)
				} else {
					t.Logf("%s took %s", what, took.Round(time.Microsecond))
				}
			}
			if serverFirst {
				timed("server Close", srv.Close)
			}
			timed("quic client Close", cq.Close)
			timed("tcp client Close", ct.Close)
			if !serverFirst {
				timed("server Close", srv.Close)
			}
			for i, u := range users {
				u.SetReadDeadline(time.Now().Add(time.Second))
				_, err := u.Read(make([]byte, 16))
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("user connection %d still open after the shutdown", i)
				}
			}
			echo.Close()

			checkNoLeaks(t, base, 5*time.Second)
			for _, p := range ports {
				if err := listenAt(p.network, p.port); err != nil {
					t.Errorf("%s port %d not free after Close: %v", p.network, p.port, err)
				}
			}
		})
	}
}

func portOf(hostport string) int {
	_, p, _ := net.SplitHostPort(hostport)
	n, _ := strconv.Atoi(p)
	return n
}

// listenAt binds port on the wildcard address (which conflicts with any binding of the port)
// and releases it.
func listenAt(network string, port int) error {
	switch network {
	case "udp":
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		if err != nil {
			return err
		}
		return c.Close()
	default:
		ln, err := net.Listen("tcp4", ":"+strconv.Itoa(port))
		if err != nil {
			return err
		}
		return ln.Close()
	}
}
