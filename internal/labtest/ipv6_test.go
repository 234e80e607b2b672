//go:build linux

package labtest

import (
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/internal/natlab"
	"github.com/xp2p/xp2p/nat"
)

// forgeRegistration sends, from host, address registrations naming client id, keyed with what
// an attacker can guess, to the server's addresses of both families.
func forgeRegistration(t *testing.T, l *natlab.Lab, host, id string) {
	t.Helper()
	for _, key := range [][]byte{nil, []byte("guess"), nat.RegisterKey(nil)} {
		var m *stun.Message
		var err error
		if key == nil {
			m, err = stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername("xp2p-addr:"+id), stun.Fingerprint)
		} else {
			m, err = nat.RegisterRequest(id, key)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, srv := range []string{natlab.ServerIP, natlab.ServerIP6} {
			c := l.ListenPacket(host, "udp", ":0")
			c.WriteTo(m.Raw, &net.UDPAddr{IP: net.ParseIP(srv), Port: 7000})
		}
	}
}

// atServer6 is a client config's top keys that name the server by its IPv6 address.
const atServer6 = `serverAddr = "` + natlab.ServerIP6 + `"`

// clientConfig6 is clientConfig with the server reached over IPv6.
func clientConfig6(body string) string {
	return strings.Replace(clientConfig("", body), `serverAddr = "`+natlab.ServerIP+`"`, atServer6, 1)
}

func providerConfig6() string {
	return strings.Replace(providerConfig(""), `serverAddr = "`+natlab.ServerIP+`"`, atServer6, 1)
}

func visitorConfig6() string {
	return strings.Replace(visitorConfig(""), `serverAddr = "`+natlab.ServerIP+`"`, atServer6, 1)
}

// lockedRemote waits for the visitor's direct lock and returns its remote address.
func lockedRemote(t *testing.T, p *natlab.Proc) netip.AddrPort {
	t.Helper()
	line := p.WaitLog(`direct path locked.*role=visitor.*`, 15*time.Second)[0]
	ap, err := netip.ParseAddrPort(field(line, "remote"))
	if err != nil {
		t.Fatalf("locked %q: %v", field(line, "remote"), err)
	}
	t.Logf("visitor locked %s (%s candidate) in %s", ap, field(line, "candidate"), field(line, "time_to_direct"))
	return ap
}

// TestP2PIPv6: IPv6 behind home routers' stateful firewalls (no NAT66), beside IPv4 NATs.
// Clients punch both families at once, whichever family reaches the server: the server learns
// each client's public address of the other family from a registration the client sends there.
func TestP2PIPv6(t *testing.T) {
	t.Parallel()
	t.Run("symxsym", func(t *testing.T) {
		// Two symmetric IPv4 NATs give no direct path (TestP2PMatrix); IPv6 on both sides does.
		t.Parallel()
		l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Sym, IPv6: true}, {Name: "V", NAT: natlab.Sym, IPv6: true}}})
		p := startPair(t, l, "P1", "V1", "")
		exchange(t, l, "V1", visitorAddr, 4<<20, 0)
		if remote := lockedRemote(t, p.visitor); !remote.Addr().Is6() || remote.Addr().String() != l.IP6("P1") {
			t.Errorf("locked %s, want the provider's IPv6 address %s", remote, l.IP6("P1"))
		}
		exchange(t, l, "V1", visitorAddr, 4<<20, 0)
		if n := p.visitor.Count("direct path unlikely"); n > 0 {
			t.Error("the visitor thought a direct path unlikely")
		}
		// Both clients' IPv6 addresses reached the server through their registrations.
		p.server.WaitLog(`client public address of its other family.*public_alt=\[`+l.IP6("P1"), 5*time.Second)
		p.server.WaitLog(`client public address of its other family.*public_alt=\[`+l.IP6("V1"), 5*time.Second)

		// An attacker who knows the clients' ids (not their sessions' keys) registers its own
		// address for them, over both families: the server keeps the real ones.
		ids := regexp.MustCompile(`client logged in" client=([0-9a-f]+)`).FindAllStringSubmatch(p.server.Output(), -1)
		if len(ids) != 2 {
			t.Fatalf("%d client ids in the server's log, want 2", len(ids))
		}
		for _, m := range ids {
			forgeRegistration(t, l, "pub", m[1])
		}
		time.Sleep(300 * time.Millisecond)
		if strings.Contains(p.server.Output(), "public_alt=["+natlab.PublicIP6) || strings.Contains(p.server.Output(), "public_alt="+natlab.PublicIP) {
			t.Error("the server took a forged registration")
		}
		exchange(t, l, "V1", visitorAddr, 1<<20, 0)
	})
	t.Run("v6onlyVisitor", func(t *testing.T) {
		// A visitor with IPv6 only reaches a dual-stack provider that reaches the server over
		// IPv4: relayed across the families at first, then direct over IPv6.
		t.Parallel()
		l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy, IPv6: true}, {Name: "V", NAT: natlab.Easy, NoIPv4: true}}})
		startServer(t, l)
		echoService(t, l, "P1", "127.0.0.1:9000")
		startClient(t, l, "P1", "provider", providerConfig("")).WaitLog("xp2p service published", 10*time.Second)
		visitor := startClient(t, l, "V1", "visitor", visitorConfig6())
		exchange(t, l, "V1", visitorAddr, 4<<20, 0)
		if remote := lockedRemote(t, visitor); remote.Addr().String() != l.IP6("P1") {
			t.Errorf("locked %s, want the provider's IPv6 address %s", remote, l.IP6("P1"))
		}
		exchange(t, l, "V1", visitorAddr, 4<<20, 0)
	})
	t.Run("v6onlyVisitorRelayed", func(t *testing.T) {
		// The provider has no IPv6: no direct path, but the relay carries the session between
		// the families.
		t.Parallel()
		l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy, NoIPv4: true}}})
		startServer(t, l)
		echoService(t, l, "P1", "127.0.0.1:9000")
		startClient(t, l, "P1", "provider", providerConfig("")).WaitLog("xp2p service published", 10*time.Second)
		visitor := startClient(t, l, "V1", "visitor", visitorConfig6())
		exchange(t, l, "V1", visitorAddr, 4<<20, 0)
		if line := visitor.WaitLog(`p2p session ready.*`, 5*time.Second)[0]; !strings.Contains(line, "path=relay") {
			t.Errorf("session not relayed: %s", line)
		}
	})
	t.Run("server6", func(t *testing.T) {
		// Both clients name the server by its IPv6 address; their IPv4 NATs are easy, and the
		// session goes direct (over either family), with the server knowing both families.
		t.Parallel()
		l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy, IPv6: true}, {Name: "V", NAT: natlab.Sym, IPv6: true}}})
		server := startServer(t, l)
		echoService(t, l, "P1", "127.0.0.1:9000")
		startClient(t, l, "P1", "provider", providerConfig6()).WaitLog("xp2p service published", 10*time.Second)
		visitor := startClient(t, l, "V1", "visitor", visitorConfig6())
		exchange(t, l, "V1", visitorAddr, 4<<20, 0)
		lockedRemote(t, visitor)
		exchange(t, l, "V1", visitorAddr, 4<<20, 0)
		server.WaitLog(`client public address of its other family.*public_alt=`+l.NATIP("P")+":", 5*time.Second)
		server.WaitLog(`client public address of its other family.*public_alt=`+l.NATIP("V")+":", 5*time.Second)
	})
	t.Run("symxsym1280blackhole", func(t *testing.T) {
		// IPv6 direct behind a 1280-byte black hole: the packets fit IPv6's minimum.
		t.Parallel()
		l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Sym, IPv6: true}, {Name: "V", NAT: natlab.Sym, IPv6: true, WAN: mtuLink(1280, true)}}})
		p := startPair(t, l, "P1", "V1", "")
		exchange(t, l, "V1", visitorAddr, 4<<20, 0)
		if remote := lockedRemote(t, p.visitor); !remote.Addr().Is6() {
			t.Errorf("locked %s, want IPv6", remote)
		}
		d := exchange(t, l, "V1", visitorAddr, 16<<20, 0)
		t.Logf("16 MiB echoed in %s", d)
	})
}

// TestP2PUpgradeToIPv6: a session locks IPv4 first (IPv6 between the sides is blocked at
// first); once IPv6 carries, it moves there in the middle of a transfer (IPv6 is preferred at a
// like round trip: no NAT whose mapping may change), and no byte is lost.
func TestP2PUpgradeToIPv6(t *testing.T) {
	if testing.Short() {
		t.Skip("a 5 s transfer across an upgrade")
	}
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy, IPv6: true}, {Name: "V", NAT: natlab.Easy, IPv6: true}}})
	l.NFT("natV", `table ip6 xblock6 {
  chain f {
    type filter hook forward priority -10;
    meta l4proto udp ip6 saddr != `+natlab.ServerIP6+` ip6 daddr != `+natlab.ServerIP6+` drop
  }
}`)
	p := startPair(t, l, "P1", "V1", "")
	done := make(chan time.Duration, 1)
	go func() { done <- exchange(t, l, "V1", visitorAddr, 40<<20, 8<<20) }() // about 5 s
	if remote := lockedRemote(t, p.visitor); !remote.Addr().Is4() {
		t.Fatalf("locked %s while IPv6 was blocked", remote)
	}
	time.Sleep(500 * time.Millisecond)
	if out, err := l.Exec("natV", "nft", "delete", "table", "ip6", "xblock6"); err != nil {
		t.Fatalf("lift the block: %v: %s", err, out)
	}
	line := p.visitor.WaitLog(`direct path upgraded.*role=visitor.*|direct path upgraded.*`, 10*time.Second)[0]
	if to, _ := netip.ParseAddrPort(field(line, "to")); !to.Addr().Is6() {
		t.Errorf("upgraded to %s, want IPv6: %s", field(line, "to"), line)
	}
	d := <-done
	t.Logf("40 MiB echoed intact in %s, moving from %s to %s mid-way", d.Round(time.Millisecond), field(line, "from"), field(line, "to"))
}
