//go:build linux

package labtest

import (
	"bufio"
	"crypto/rand"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// TestP2PPortMapping: a port-restricted NAT facing a symmetric one needs birthday punching
// (TestP2PMatrix), unless the router maps the provider's port (transport.portMapping): then the
// symmetric side's probes get in at once. The router is Debian's miniupnpd speaking one
// protocol at a time; its mapping is a real nftables DNAT rule, gone when the provider stops.
func TestP2PPortMapping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		protocol string
		router   natlab.RouterProtocols
	}{
		{"PCP", natlab.RouterProtocols{PCP: true}},
		{"NAT-PMP", natlab.RouterProtocols{NATPMP: true}},
		{"UPnP-IGD", natlab.RouterProtocols{UPnP: true}},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			t.Parallel()
			l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy, Routable: true}, {Name: "V", NAT: natlab.Sym}}})
			router := l.StartMiniUPnPd("P", tc.router)
			server := startServer(t, l)
			echoService(t, l, "P1", "127.0.0.1:9000")
			cfg := providerConfig("transport.portMapping = true\ntransport.udpPort = 40123\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = 7400")
			provider := startClient(t, l, "P1", "provider", cfg)
			line := provider.WaitLog(`port mapped by the router.*`, 10*time.Second)[0]
			t.Logf("%s: mapped in %s", tc.protocol, field(line, "took"))
			if got := field(line, "protocol"); got != tc.protocol {
				t.Errorf("mapped by %s, want %s (router speaks %s only)", got, tc.protocol, tc.router)
			}
			mapped := field(line, "public")
			if want := l.NATIP("P") + ":40123"; mapped != want {
				t.Errorf("mapped %s, want %s", mapped, want)
			}
			// The server learns the mapping at login, or from a report if it came later.
			server.WaitLog("mapped="+mapped+" mapped_by="+tc.protocol, 5*time.Second)
			status, err := l.Exec("P1", natlab.Binary(t), "status", "-c", natlab.WriteFile(t, "status.toml", cfg))
			if want := "port mapping: " + mapped + " → " + l.IP("P1") + ":40123 by " + tc.protocol; err != nil || !strings.Contains(status, want) {
				t.Errorf("xp2p status: %v, lacks %q:\n%s", err, want, status)
			}
			if rules := l.PortMappings("P"); !strings.Contains(rules, "th dport 40123 dnat ip to "+l.IP("P1")+":40123") {
				t.Fatalf("the mapping is not in the router's rules:\n%s", rules)
			}
			// Leased for the two hours asked, not for ever: a client that dies leaves nothing
			// behind for long.
			var expires int64
			if m := regexp.MustCompile(`(?m)^UDP:40123:` + regexp.QuoteMeta(l.IP("P1")) + `:40123:(\d+):`).FindStringSubmatch(router.Leases()); m != nil {
				expires, _ = strconv.ParseInt(m[1], 10, 64)
			}
			if left := time.Until(time.Unix(expires, 0)); left < 115*time.Minute || left > 2*time.Hour {
				t.Errorf("the router's lease ends in %s, want 2 h: %q", left.Round(time.Second), router.Leases())
			}
			provider.WaitLog("xp2p service published", 10*time.Second)
			visitor := startClient(t, l, "V1", "visitor", visitorConfig(""))
			exchange(t, l, "V1", visitorAddr, 1<<20, 0)
			locked := visitor.WaitLog(`direct path locked.*role=visitor.*`, 10*time.Second)[0]
			t.Logf("%s: port-restricted (mapped) × symmetric: visitor locked %s in %s", tc.protocol, field(locked, "remote"), field(locked, "time_to_direct"))
			exchange(t, l, "V1", visitorAddr, 1<<20, 0)
			// Birthday punching also finds a path in this pair, in a second or two: the mapping
			// must have made it needless (the provider counts as open).
			if n := visitor.Count("birthday punching"); n > 0 {
				t.Errorf("the visitor ran birthday punching: the session did not count on the mapping")
			}

			provider.Stop()
			if rules := l.PortMappings("P"); rules != "" {
				t.Errorf("the mapping outlived the provider:\n%s", rules)
			}
		})
	}
}

// TestPortMappingBadRouter: a router whose port-mapping ports are closed (it answers with ICMP
// port unreachable), one that drops what is sent to them, and one that answers garbage (random
// bytes on PCP's and NAT-PMP's port, an SSDP answer that leads to an endless description) each
// cost the client a bounded time and nothing else: it says why on its log and status, and
// its service works, directly.
func TestPortMappingBadRouter(t *testing.T) {
	t.Parallel()
	for _, router := range []string{"closed", "silent", "garbage"} {
		t.Run(router, func(t *testing.T) {
			t.Parallel()
			l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}}})
			switch router {
			case "silent":
				l.NFT("natP", `table inet silent {
  chain input {
    type filter hook input priority -10;
    iifname "lan0" udp dport { 1900, 5351 } drop
  }
}`)
			case "garbage":
				garbageRouter(t, l, "P")
			}
			p := startPair(t, l, "P1", "V1", "transport.portMapping = true")
			line := p.provider.WaitLog(`port mapping failed.*`, 10*time.Second)[0]
			took, err := time.ParseDuration(field(line, "took"))
			// The Mapper's default timeout is 2 s: one attempt at all protocols at once.
			if err != nil || took > 4*time.Second {
				t.Errorf("the %s router cost %s (%v), want at most the 2 s timeout and some slack", router, took, err)
			}
			why := field(line, "err")
			for _, proto := range []string{"PCP: ", "NAT-PMP: ", "UPnP-IGD: "} {
				if !strings.Contains(why, proto) {
					t.Errorf("the error does not say what %s answered: %s", strings.TrimSuffix(proto, ": "), why)
				}
			}
			t.Logf("%s router: %s after %s", router, why, took)
			exchange(t, l, "V1", visitorAddr, 1<<20, 0)
			p.visitor.WaitLog(`direct path locked`, 10*time.Second)
			exchange(t, l, "V1", visitorAddr, 1<<20, 0)
			if n := p.provider.Count("port mapped by the router"); n > 0 {
				t.Errorf("the %s router mapped a port", router)
			}
		})
	}
}

// garbageRouter makes a side's NAT answer every port-mapping request with garbage: random
// bytes, a PCP header alone, a NAT-PMP answer cut short on port 5351; on SSDP, a well-formed
// answer whose description never ends.
func garbageRouter(t *testing.T, l *natlab.Lab, side string) {
	gw := l.IP(side + "1")
	gw = gw[:strings.LastIndex(gw, ".")] + ".1"
	junk := [][]byte{[]byte("\x02\x81\x00\x00"), {2, 0x81, 0, 0, 0, 0, 0x1c, 0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, {0, 0x81, 0, 0, 0, 0, 0, 1}, make([]byte, 1400)}
	rand.Read(junk[3])
	pmp := l.ListenPacket("nat"+side, "udp4", gw+":5351")
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pmp.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, j := range junk {
				pmp.WriteTo(j, from)
			}
		}
	}()
	desc := l.Listen("nat"+side, "tcp4", gw+":0")
	go func() {
		for {
			c, err := desc.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<?xml version=\"1.0\"?><root xmlns=\"urn:schemas-upnp-org:device-1-0\"><device>")
				chunk := []byte(strings.Repeat("<x>garbage</x>", 64))
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	ssdp := l.ListenPacket("nat"+side, "udp4", "0.0.0.0:1900")
	answer := "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:x\r\nLOCATION: http://" + desc.Addr().String() + "/rootDesc.xml\r\n\r\n"
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := ssdp.ReadFrom(buf)
			if err != nil {
				return
			}
			ssdp.WriteTo(junk[3], from)
			ssdp.WriteTo([]byte(answer), from)
		}
	}()
}

// TestPortMappingLANNeighbour: another host of the LAN answers the client's SSDP search first,
// with a description of its own (an IGD whose control URL it serves), as a hostile or broken
// device could. The client follows none of it: the router (miniupnpd, UPnP-IGD only) maps the
// port, and the neighbour's HTTP server is never asked.
func TestPortMappingLANNeighbour(t *testing.T) {
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy, Routable: true, Hosts: 2}}})
	l.StartMiniUPnPd("P", natlab.RouterProtocols{UPnP: true})
	evil := l.IP("P2")
	hits := make(chan string, 16)
	web := l.Listen("P2", "tcp4", evil+":8080")
	go func() {
		for {
			c, err := web.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			hits <- line
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n")
			c.Close()
		}
	}()
	var group net.PacketConn
	if err := l.In("P2", func() (err error) {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		group, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: 1900})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { group.Close() })
	searches := make(chan struct{}, 16)
	go func() {
		buf := make([]byte, 1500)
		answer := "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:evil\r\nLOCATION: http://" + evil + ":8080/rootDesc.xml\r\n\r\n"
		for {
			_, from, err := group.ReadFrom(buf)
			if err != nil {
				return
			}
			group.WriteTo([]byte(answer), from)
			select {
			case searches <- struct{}{}:
			default:
			}
		}
	}()
	startServer(t, l)
	provider := startClient(t, l, "P1", "provider", providerConfig("transport.portMapping = true\ntransport.udpPort = 40123"))
	line := provider.WaitLog(`port mapped by the router.*`, 10*time.Second)[0]
	if got, want := field(line, "protocol")+" "+field(line, "public"), "UPnP-IGD "+l.NATIP("P")+":40123"; got != want {
		t.Errorf("mapped %s, want %s", got, want)
	}
	select {
	case <-searches:
	default:
		t.Fatal("the neighbour saw no M-SEARCH: the test did not attack")
	}
	select {
	case h := <-hits:
		t.Errorf("the client asked the neighbour: %q", h)
	default:
	}
}
