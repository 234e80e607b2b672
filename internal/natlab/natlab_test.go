//go:build linux

package natlab

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// recvFrom waits up to d for one datagram and returns its source (invalid if none came).
func recvFrom(pc net.PacketConn, d time.Duration) netip.AddrPort {
	pc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1500)
	_, a, err := pc.ReadFrom(buf)
	if err != nil {
		return netip.AddrPort{}
	}
	return a.(*net.UDPAddr).AddrPort()
}

func send(t *testing.T, pc net.PacketConn, to string) {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.WriteTo([]byte("probe"), ua); err != nil {
		t.Fatal(err)
	}
}

// mapped sends from a host socket to a public listener and returns the source it saw.
func mapped(t *testing.T, host net.PacketConn, listener net.PacketConn, listenerAddr string) netip.AddrPort {
	t.Helper()
	send(t, host, listenerAddr)
	src := recvFrom(listener, 2*time.Second)
	if !src.IsValid() {
		t.Fatalf("nothing from the host reached %s", listenerAddr)
	}
	return src
}

func TestNATKinds(t *testing.T) {
	t.Parallel()
	l := New(t, Config{Sides: []Side{{Name: "E", NAT: Easy}, {Name: "S", NAT: Sym}, {Name: "O", NAT: Open}, {Name: "N", NAT: NoUDP}, {Name: "Q", NAT: SymSeq}}})
	srv := l.ListenPacket("srv", "udp4", ServerIP+":3478")
	pub := l.ListenPacket("pub", "udp4", PublicIP+":3479")

	t.Run("easy", func(t *testing.T) {
		h := l.ListenPacket("E1", "udp4", ":40000")
		a := mapped(t, h, srv, ServerIP+":3478")
		b := mapped(t, h, pub, PublicIP+":3479")
		if a != b {
			t.Errorf("easy NAT mapped one socket to %s and %s: want endpoint-independent mapping", a, b)
		}
		if a.Port() != 40000 || a.Addr().String() != l.NATIP("E") {
			t.Errorf("easy NAT mapping %s, want %s:40000 (port preserved)", a, l.NATIP("E"))
		}
		// Filtering: a third party may not send to the mapping.
		other := l.ListenPacket("pub", "udp4", PublicIP+":3480")
		send(t, other, a.String())
		if got := recvFrom(h, 500*time.Millisecond); got.IsValid() {
			t.Errorf("easy NAT let an unsolicited packet from %s in", got)
		}
		// But the destination may answer.
		send(t, srv, a.String())
		if got := recvFrom(h, 2*time.Second); !got.IsValid() {
			t.Error("easy NAT dropped the answer of the destination")
		}
	})
	t.Run("sym", func(t *testing.T) {
		h := l.ListenPacket("S1", "udp4", ":40000")
		a := mapped(t, h, srv, ServerIP+":3478")
		b := mapped(t, h, pub, PublicIP+":3479")
		if a == b {
			t.Errorf("symmetric NAT mapped one socket to %s for two destinations: want a new mapping per destination", a)
		}
	})
	t.Run("symseq", func(t *testing.T) {
		h := l.ListenPacket("Q1", "udp4", ":40000")
		a := mapped(t, h, srv, ServerIP+":3478")
		b := mapped(t, h, pub, PublicIP+":3479")
		if b.Port() != a.Port()+1 || a.Addr() != b.Addr() {
			t.Errorf("sequential symmetric NAT mapped %s then %s: want the next port for the next destination", a, b)
		}
	})
	t.Run("open", func(t *testing.T) {
		h := l.ListenPacket("O1", "udp4", ":40000")
		a := mapped(t, h, srv, ServerIP+":3478")
		other := l.ListenPacket("pub", "udp4", PublicIP+":3481")
		send(t, other, a.String())
		if got := recvFrom(h, 2*time.Second); !got.IsValid() {
			t.Errorf("open NAT dropped an unsolicited packet to %s", a)
		}
	})
	t.Run("noudp", func(t *testing.T) {
		h := l.ListenPacket("N1", "udp4", ":40000")
		send(t, h, ServerIP+":3478")
		if got := recvFrom(srv, 700*time.Millisecond); got.IsValid() {
			t.Errorf("noudp NAT let UDP out (from %s)", got)
		}
		ln := l.Listen("srv", "tcp4", ServerIP+":3478")
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		c, err := l.Dial("N1", "tcp4", ServerIP+":3478", 2*time.Second)
		if err != nil {
			t.Fatalf("noudp NAT blocked TCP too: %v", err)
		}
		c.Close()
	})
}

func TestUDPTimeoutAndSameLAN(t *testing.T) {
	t.Parallel()
	l := New(t, Config{Sides: []Side{{Name: "A", NAT: Easy, Hosts: 2}}, UDPTimeout: 2 * time.Second})
	srv := l.ListenPacket("srv", "udp4", ServerIP+":3478")
	h := l.ListenPacket("A1", "udp4", ":40000")
	m := mapped(t, h, srv, ServerIP+":3478")
	time.Sleep(3500 * time.Millisecond)
	send(t, srv, m.String())
	if got := recvFrom(h, 700*time.Millisecond); got.IsValid() {
		t.Errorf("the mapping outlived the NAT's 2 s UDP timeout")
	}
	// Two hosts on one LAN reach each other directly.
	h2 := l.ListenPacket("A2", "udp4", ":40001")
	send(t, h, l.IP("A2")+":40001")
	if got := recvFrom(h2, 2*time.Second); got.Addr().String() != l.IP("A1") {
		t.Errorf("same-LAN packet came from %v, want %s", got, l.IP("A1"))
	}
}

// TestIPv6 builds a lab with IPv6: hosts behind two NATs reach the server over IPv6 without
// translation, an IPv6-only host has no IPv4 at all, and each NAT's firewall keeps out what no
// flow from inside asked for (a packet from the server to a host), but lets an answer in.
func TestIPv6(t *testing.T) {
	t.Parallel()
	l := New(t, Config{Sides: []Side{{Name: "A", NAT: Easy, IPv6: true}, {Name: "B", NAT: Sym, NoIPv4: true}}})
	if got := l.IP("B1"); got != l.IP6("B1") {
		t.Errorf("an IPv6-only host's address is %s, want its IPv6 %s", got, l.IP6("B1"))
	}
	if out, _ := l.Exec("B1", "ip", "-4", "addr", "show", "dev", "eth0"); strings.Contains(out, "inet ") {
		t.Errorf("the IPv6-only host has IPv4:\n%s", out)
	}
	srv := l.ListenPacket("srv", "udp6", "["+ServerIP6+"]:7000")
	other := l.ListenPacket("srv", "udp6", "["+ServerIP6+"]:7001")
	for _, host := range []string{"A1", "B1"} {
		c := l.ListenPacket(host, "udp6", "[::]:0")
		if _, err := c.WriteTo([]byte("hi"), &net.UDPAddr{IP: net.ParseIP(ServerIP6), Port: 7000}); err != nil {
			t.Fatalf("%s → server: %v", host, err)
		}
		buf := make([]byte, 16)
		srv.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, from, err := srv.ReadFrom(buf)
		if err != nil {
			t.Fatalf("the server heard nothing from %s over IPv6: %v", host, err)
		}
		if got := from.(*net.UDPAddr).IP.String(); got != l.IP6(host) {
			t.Errorf("the server saw %s as %s, want its own address (no NAT66)", host, got)
		}
		// The answer gets in; a packet from another port of the server does not.
		other.WriteTo([]byte("unasked"), from)
		srv.WriteTo([]byte("answer"), from)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := c.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "answer" {
			t.Errorf("%s: got %q, %v; want the answer only", host, buf[:n], err)
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, _, err := c.ReadFrom(buf); err == nil {
			t.Errorf("%s: the firewall let in %q", host, buf[:n])
		}
	}
}
