package wan

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

var (
	macSender = []byte{2, 0, 0, 0, 0, 1}
	macRouter = []byte{2, 0, 0, 0, 0, 2}
	from4     = netip.MustParseAddr("203.0.113.254").As4()
	from6     = netip.MustParseAddr("2001:db8:ffff::fe").As16()
)

// frame4 is an Ethernet frame with an IPv4 UDP packet of n bytes in all.
func frame4(n int, df bool, proto byte) []byte {
	f := make([]byte, ethHeader+n)
	copy(f[0:6], macRouter)
	copy(f[6:12], macSender)
	binary.BigEndian.PutUint16(f[12:14], etherTypeIPv4)
	ip := f[ethHeader:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(n))
	if df {
		ip[6] = 0x40
	}
	ip[8], ip[9] = 64, proto
	copy(ip[12:16], []byte{10, 1, 0, 2})
	copy(ip[16:20], []byte{203, 0, 113, 1})
	binary.BigEndian.PutUint16(ip[10:12], checksum(0, ip[:20]))
	for i := 20; i < n; i++ {
		ip[i] = byte(i)
	}
	return f
}

func frame6(n int, next byte) []byte {
	f := make([]byte, ethHeader+n)
	copy(f[0:6], macRouter)
	copy(f[6:12], macSender)
	binary.BigEndian.PutUint16(f[12:14], etherTypeIPv6)
	ip := f[ethHeader:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(n-ipv6Header))
	ip[6], ip[7] = next, 64
	copy(ip[8:24], netip.MustParseAddr("2001:db8:1::2").AsSlice())
	copy(ip[24:40], netip.MustParseAddr("2001:db8::1").AsSlice())
	for i := ipv6Header; i < n; i++ {
		ip[i] = byte(i)
	}
	return f
}

func TestTooBigIPv4(t *testing.T) {
	in := frame4(1500, true, 17)
	out := tooBig(in, 1280, from4, from6)
	if out == nil {
		t.Fatal("no answer to an oversized DF packet")
	}
	if !bytes.Equal(out[0:6], macSender) || !bytes.Equal(out[6:12], macRouter) {
		t.Errorf("Ethernet %x -> %x, want back to the sender", out[6:12], out[0:6])
	}
	h, err := ipv4.ParseHeader(out[ethHeader:])
	if err != nil {
		t.Fatal(err)
	}
	if h.Src.String() != "203.0.113.254" || h.Dst.String() != "10.1.0.2" || h.Protocol != 1 || h.TotalLen != len(out)-ethHeader {
		t.Errorf("header %+v", h)
	}
	if checksum(0, out[ethHeader:ethHeader+20]) != 0 {
		t.Error("bad IPv4 header checksum")
	}
	body := out[ethHeader+20:]
	if checksum(0, body) != 0 {
		t.Error("bad ICMP checksum")
	}
	m, err := icmp.ParseMessage(1, body)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != ipv4.ICMPTypeDestinationUnreachable || m.Code != 4 {
		t.Fatalf("type %v code %d, want fragmentation needed", m.Type, m.Code)
	}
	if mtu := binary.BigEndian.Uint16(body[6:8]); mtu != 1280 {
		t.Errorf("next-hop MTU %d, want 1280", mtu)
	}
	if !bytes.Equal(body[8:], in[ethHeader:ethHeader+28]) {
		t.Error("quote is not the packet's header and first 8 bytes")
	}
}

func TestTooBigIPv6(t *testing.T) {
	in := frame6(1500, 17)
	out := tooBig(in, 1420, from4, from6)
	if out == nil {
		t.Fatal("no answer to an oversized IPv6 packet")
	}
	h, err := ipv6.ParseHeader(out[ethHeader:])
	if err != nil {
		t.Fatal(err)
	}
	if h.Src.String() != "2001:db8:ffff::fe" || h.Dst.String() != "2001:db8:1::2" || h.NextHeader != 58 {
		t.Errorf("header %+v", h)
	}
	if n := len(out) - ethHeader; n > minMTU6 {
		t.Errorf("error of %d bytes, larger than IPv6's minimum MTU", n)
	}
	body := out[ethHeader+ipv6Header:]
	psh := icmp.IPv6PseudoHeader(h.Src, h.Dst)
	m, err := icmp.ParseMessage(58, body)
	if err != nil {
		t.Fatal(err)
	}
	ptb, ok := m.Body.(*icmp.PacketTooBig)
	if m.Type != ipv6.ICMPTypePacketTooBig || !ok || ptb.MTU != 1420 {
		t.Fatalf("type %v body %#v, want packet too big, MTU 1420", m.Type, m.Body)
	}
	// Marshal recomputes the checksum over the pseudo-header: it must be the one we sent.
	again, err := (&icmp.Message{Type: m.Type, Code: m.Code, Body: m.Body}).Marshal(psh)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again[2:4], body[2:4]) {
		t.Errorf("ICMPv6 checksum %x, want %x", body[2:4], again[2:4])
	}
	if !bytes.Equal(ptb.Data, in[ethHeader:ethHeader+len(ptb.Data)]) {
		t.Error("quote is not the packet's start")
	}
}

func TestTooBigNoAnswer(t *testing.T) {
	icmpErr4 := frame4(1500, true, 1)
	icmpErr4[ethHeader+20] = 3 // destination unreachable
	echo4 := frame4(1500, true, 1)
	echo4[ethHeader+20] = 8
	icmpErr6 := frame6(1500, 58)
	icmpErr6[ethHeader+ipv6Header] = 1
	arp := frame4(100, true, 17)
	binary.BigEndian.PutUint16(arp[12:14], 0x0806)
	for _, c := range []struct {
		name   string
		frame  []byte
		answer bool
	}{
		{"IPv4 without DF (fragmentable: dropped, no error)", frame4(1500, false, 17), false},
		{"an ICMPv4 error", icmpErr4, false},
		{"an ICMPv4 echo", echo4, true},
		{"an ICMPv6 error", icmpErr6, false},
		{"ARP", arp, false},
		{"a runt", frame4(1500, true, 17)[:20], false},
	} {
		if got := tooBig(c.frame, 1280, from4, from6) != nil; got != c.answer {
			t.Errorf("%s: answered %v, want %v", c.name, got, c.answer)
		}
	}
	if ipLength(arp) != 0 || ipLength(frame6(1500, 17)) != 1500 || ipLength(frame4(1400, true, 6)) != 1400 {
		t.Error("ipLength")
	}
}

func FuzzTooBig(f *testing.F) {
	f.Add(frame4(1500, true, 17))
	f.Add(frame6(1500, 58))
	f.Fuzz(func(t *testing.T, frame []byte) {
		out := tooBig(frame, 1280, from4, from6)
		if out != nil && len(out)-ethHeader > minMTU6 {
			t.Fatalf("answer of %d bytes", len(out))
		}
	})
}
