package vnet

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// inbox reads a socket in the background.
type inbox struct {
	c  *Conn
	ch chan netip.AddrPort
}

func listen(t *testing.T, h *Host, port uint16) *inbox {
	t.Helper()
	c, err := h.ListenUDP(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	in := &inbox{c: c, ch: make(chan netip.AddrPort, 16)}
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			in.ch <- from
		}
	}()
	return in
}

// send sends from in's socket to to and reports whether r got it, and from where.
func send(t *testing.T, in, r *inbox, to netip.AddrPort) (netip.AddrPort, bool) {
	t.Helper()
	if err := in.c.WriteTo([]byte("x"), to); err != nil {
		t.Fatal(err)
	}
	select {
	case from := <-r.ch:
		return from, true
	case <-time.After(20 * time.Millisecond):
		return netip.AddrPort{}, false
	}
}

func TestMappingAndFiltering(t *testing.T) {
	cases := []struct {
		kind          Kind
		sameMapping   bool // two servers see the same public address (endpoint-independent)
		portPreserved bool
		otherPortIn   bool // a server's other port, never sent to, gets in
		strangerIn    bool // a host never sent to gets in
	}{
		{kind: Easy, sameMapping: true, portPreserved: true},
		{kind: Restricted, sameMapping: true, portPreserved: true, otherPortIn: true},
		{kind: FullCone, sameMapping: true, portPreserved: true, otherPortIn: true, strangerIn: true},
		{kind: Sym},
		{kind: SymSeq},
	}
	for _, tc := range cases {
		t.Run(tc.kind.String(), func(t *testing.T) {
			n := New()
			s1, s2 := n.Host("203.0.113.1"), n.Host("203.0.113.2")
			stranger := n.Host("203.0.113.3")
			nat := n.NAT(tc.kind, "203.0.113.10")
			c := listen(t, nat.Host("10.0.0.2"), 5000)
			l1, l2 := listen(t, s1, 7000), listen(t, s2, 7000)
			l1other, l3 := listen(t, s1, 7001), listen(t, stranger, 7000)
			from1, ok1 := send(t, c, l1, l1.c.LocalAddr())
			from2, ok2 := send(t, c, l2, l2.c.LocalAddr())
			if !ok1 || !ok2 {
				t.Fatal("outbound packets did not arrive")
			}
			if from1.Addr() != nat.Public() {
				t.Errorf("source %v, want the NAT's address", from1)
			}
			if (from1 == from2) != tc.sameMapping {
				t.Errorf("mappings %v and %v: same %v, want %v", from1, from2, from1 == from2, tc.sameMapping)
			}
			if (from1.Port() == 5000) != tc.portPreserved {
				t.Errorf("public port %d: preserved want %v", from1.Port(), tc.portPreserved)
			}
			if _, ok := send(t, l1, c, from1); !ok {
				t.Error("an answer from where we sent was filtered")
			}
			if _, ok := send(t, l1other, c, from1); ok != tc.otherPortIn {
				t.Errorf("the server's other port got in: %v, want %v", ok, tc.otherPortIn)
			}
			if _, ok := send(t, l3, c, from1); ok != tc.strangerIn {
				t.Errorf("a stranger got in: %v, want %v", ok, tc.strangerIn)
			}
		})
	}
}

func TestSequentialPorts(t *testing.T) {
	n := New()
	nat := n.NAT(SymSeq, "203.0.113.10")
	c := listen(t, nat.Host("10.0.0.2"), 5000)
	var last uint16
	for i := range 4 {
		srv := listen(t, n.Host(netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i)}).String()), 7000)
		from, ok := send(t, c, srv, srv.c.LocalAddr())
		if !ok {
			t.Fatal("lost")
		}
		if i > 0 && from.Port() != last+1 {
			t.Errorf("mapping %d on port %d, want %d", i, from.Port(), last+1)
		}
		last = from.Port()
	}
}

func TestFirewallAndNoUDP(t *testing.T) {
	n := New()
	srv := listen(t, n.Host("2001:db8::1"), 7000)
	fw := n.NAT(Firewall, "2001:db8::a")
	c := listen(t, fw.Host("2001:db8:1::2"), 5000)
	if _, ok := send(t, srv, c, c.c.LocalAddr()); ok {
		t.Error("the firewall let in a packet nobody asked for")
	}
	from, ok := send(t, c, srv, srv.c.LocalAddr())
	if !ok || from != c.c.LocalAddr() {
		t.Fatalf("through the firewall: %v %v, want the host's own address", from, ok)
	}
	if _, ok := send(t, srv, c, from); !ok {
		t.Error("the answer did not get through the firewall")
	}

	blocked := n.NAT(NoUDP, "203.0.113.20")
	b := listen(t, blocked.Host("10.0.0.2"), 5000)
	if _, ok := send(t, b, srv, srv.c.LocalAddr()); ok {
		t.Error("noudp let UDP out")
	}
}

func TestMTU(t *testing.T) {
	n := New()
	srv := listen(t, n.Host("203.0.113.1"), 7000)
	nat := n.NAT(Easy, "203.0.113.10")
	nat.SetMTU(1400)
	h := nat.Host("10.0.0.2")
	c := listen(t, h, 5000)
	big := make([]byte, 1400-28+1)
	if err := c.c.WriteTo(big[:1400-28], srv.c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.ch:
	case <-time.After(20 * time.Millisecond):
		t.Fatal("a packet that fits was lost")
	}
	c.c.WriteTo(big, srv.c.LocalAddr())
	select {
	case <-srv.ch:
		t.Fatal("a packet larger than the NAT's link got through")
	case <-time.After(20 * time.Millisecond):
	}
	h.SetMTU(1300)
	if err := c.c.WriteTo(big[:1300-28+1], srv.c.LocalAddr()); !errors.Is(err, ErrTooBig) {
		t.Errorf("larger than the host's own link: %v, want ErrTooBig", err)
	}
}
