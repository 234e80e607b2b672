package nat

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

func TestBehaviorCodeRoundTrip(t *testing.T) {
	cases := []struct {
		b    Behavior
		code string
		name string
	}{
		{Behavior{}, "", "unknown"},
		{Behavior{UDPBlocked: true}, "udp-blocked", "UDP blocked"},
		{Behavior{Mapping: NoNAT, Filtering: EndpointIndependent, PortPreserved: true}, "m=none f=ei pp", "open"},
		{Behavior{Mapping: NoNAT, Filtering: AddressPortDependent}, "m=none f=apd", "open, firewalled"},
		{Behavior{Mapping: EndpointIndependent, Filtering: EndpointIndependent}, "m=ei f=ei", "full cone"},
		{Behavior{Mapping: EndpointIndependent, Filtering: AddressDependent}, "m=ei f=ad", "restricted cone"},
		{Behavior{Mapping: EndpointIndependent, Filtering: AddressPortDependent, PortPreserved: true}, "m=ei f=apd pp", "port-restricted cone"},
		{Behavior{Mapping: AtMostAddressDependent, Filtering: AtMostAddressDependent}, "m=ei|ad f=ei|ad", "full or restricted cone"},
		{Behavior{Mapping: AddressDependent, Filtering: AddressPortDependent}, "m=ad f=apd", "symmetric"},
		{Behavior{Mapping: AddressPortDependent, Filtering: AddressPortDependent}, "m=apd f=apd", "symmetric"},
		{Behavior{Mapping: AddressPortDependent, Filtering: AddressPortDependent, PortDelta: 2}, "m=apd f=apd d=2", "symmetric"},
	}
	for _, c := range cases {
		if got := c.b.Code(); got != c.code {
			t.Errorf("%+v.Code() = %q, want %q", c.b, got, c.code)
		}
		if got := c.b.Name(); got != c.name {
			t.Errorf("%+v.Name() = %q, want %q", c.b, got, c.name)
		}
		back, err := ParseBehavior(c.code)
		if err != nil || back != c.b {
			t.Errorf("ParseBehavior(%q) = %+v, %v; want %+v", c.code, back, err, c.b)
		}
	}
}

func TestParseBehaviorErrors(t *testing.T) {
	for _, code := range []string{"m=weird f=ei", "m=ei f=", "f=xx", "m=apd d=0", "m=apd d=65", "m=apd d=x"} {
		if _, err := ParseBehavior(code); err == nil {
			t.Errorf("ParseBehavior(%q): no error", code)
		}
	}
	// Fields a newer peer may add are ignored.
	if b, err := ParseBehavior("m=ei f=apd future=1"); err != nil || b.Mapping != EndpointIndependent {
		t.Errorf("unknown field: %+v, %v", b, err)
	}
}

func TestChangeRequestCodec(t *testing.T) {
	for _, c := range []ChangeRequest{{}, {ChangeIP: true}, {ChangePort: true}, {true, true}} {
		m, err := stun.Build(stun.TransactionID, stun.BindingRequest, c)
		if err != nil {
			t.Fatal(err)
		}
		var back ChangeRequest
		if err := back.GetFrom(m); err != nil || back != c {
			t.Errorf("%+v: got %+v, %v", c, back, err)
		}
	}
	m := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	m.Add(stun.AttrChangeRequest, []byte{1, 2})
	var c ChangeRequest
	if err := c.GetFrom(m); err == nil {
		t.Error("a 2-byte CHANGE-REQUEST decoded")
	}
}

var (
	primary = netip.MustParseAddr("192.0.2.1")
	second  = netip.MustParseAddr("192.0.2.2")
	client  = netip.MustParseAddrPort("198.51.100.7:40000")
)

func TestResponderRoutes(t *testing.T) {
	full := &Responder{Primary: primary, AltAddr: second, Port: 3478, AltPort: 3479, Software: "test"}
	portOnly := &Responder{Primary: primary, Port: 3478, AltPort: 3479}
	none := &Responder{Port: 3478}
	at := func(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
	cases := []struct {
		name      string
		r         *Responder
		local     netip.AddrPort
		change    ChangeRequest
		src       netip.AddrPort
		other     netip.AddrPort // invalid: none advertised
		errorCode int            // 0: success
	}{
		{"plain", full, at(primary, 3478), ChangeRequest{}, at(primary, 3478), at(second, 3479), 0},
		{"change both", full, at(primary, 3478), ChangeRequest{true, true}, at(second, 3479), at(second, 3479), 0},
		{"change port", full, at(primary, 3478), ChangeRequest{ChangePort: true}, at(primary, 3479), at(second, 3479), 0},
		{"change ip", full, at(primary, 3478), ChangeRequest{ChangeIP: true}, at(second, 3478), at(second, 3479), 0},
		{"at the other address and port", full, at(second, 3479), ChangeRequest{}, at(second, 3479), at(primary, 3478), 0},
		{"port only, plain", portOnly, at(primary, 3478), ChangeRequest{}, at(primary, 3478), at(primary, 3479), 0},
		{"port only, change port", portOnly, at(primary, 3478), ChangeRequest{ChangePort: true}, at(primary, 3479), at(primary, 3479), 0},
		{"port only, change ip", portOnly, at(primary, 3478), ChangeRequest{ChangeIP: true}, netip.AddrPort{}, netip.AddrPort{}, 420},
		{"nothing else", none, at(primary, 3478), ChangeRequest{}, at(primary, 3478), netip.AddrPort{}, 0},
		{"nothing else, change port", none, at(primary, 3478), ChangeRequest{ChangePort: true}, netip.AddrPort{}, netip.AddrPort{}, 420},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
			if c.change != (ChangeRequest{}) {
				setters = append(setters, c.change)
			}
			req := stun.MustBuild(append(setters, stun.Fingerprint)...)
			raw, src, ok := c.r.Answer(req.Raw, client, c.local)
			if !ok {
				t.Fatal("no answer")
			}
			resp := &stun.Message{Raw: raw}
			if err := resp.Decode(); err != nil || resp.TransactionID != req.TransactionID {
				t.Fatalf("decode: %v (id match %v)", err, resp.TransactionID == req.TransactionID)
			}
			if c.errorCode != 0 {
				var code stun.ErrorCodeAttribute
				if err := code.GetFrom(resp); err != nil || int(code.Code) != c.errorCode || src != c.local {
					t.Fatalf("want error %d from %s, got %v %v from %s", c.errorCode, c.local, code, err, src)
				}
				return
			}
			if src != c.src {
				t.Errorf("answered from %s, want %s", src, c.src)
			}
			var xor stun.XORMappedAddress
			if err := xor.GetFrom(resp); err != nil || addrPort(xor.IP, xor.Port) != client {
				t.Errorf("XOR-MAPPED-ADDRESS %v %v, want %s", xor, err, client)
			}
			var origin stun.ResponseOrigin
			if err := origin.GetFrom(resp); err != nil || addrPort(origin.IP, origin.Port) != src {
				t.Errorf("RESPONSE-ORIGIN %v %v, want %s", origin, err, src)
			}
			var other stun.OtherAddress
			err := other.GetFrom(resp)
			switch {
			case !c.other.IsValid() && err == nil:
				t.Errorf("OTHER-ADDRESS %v advertised, want none", other)
			case c.other.IsValid() && (err != nil || addrPort(other.IP, other.Port) != c.other):
				t.Errorf("OTHER-ADDRESS %v %v, want %s", other, err, c.other)
			}
			if err := stun.Fingerprint.Check(resp); err != nil {
				t.Errorf("fingerprint: %v", err)
			}
		})
	}
}

// classicRequest builds an RFC 3489 binding request (no magic cookie), as stun-client sends.
func classicRequest(flags byte) []byte {
	b := []byte{0, 1, 0, 8}
	b = append(b, []byte("0123456789abcdef")...)
	return append(b, 0, 3, 0, 4, 0, 0, 0, flags)
}

func TestResponderClassic(t *testing.T) {
	r := &Responder{Primary: primary, AltAddr: second, Port: 3478, AltPort: 3479}
	local := netip.AddrPortFrom(primary, 3478)
	resp, src, ok := r.Answer(classicRequest(changeIPFlag|changePortFlag), client, local)
	if !ok || src != netip.AddrPortFrom(second, 3479) {
		t.Fatalf("answer %v from %s", ok, src)
	}
	if binary.BigEndian.Uint16(resp[0:2]) != 0x0101 || string(resp[4:20]) != "0123456789abcdef" ||
		int(binary.BigEndian.Uint16(resp[2:4])) != len(resp)-20 {
		t.Fatalf("bad header % x", resp[:20])
	}
	attrs := map[uint16]netip.AddrPort{}
	for b := resp[20:]; len(b) >= 12; b = b[12:] {
		ip := netip.AddrFrom4([4]byte(b[8:12]))
		attrs[binary.BigEndian.Uint16(b[0:2])] = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[6:8]))
	}
	want := map[uint16]netip.AddrPort{0x0001: client, 0x0004: src, 0x0005: netip.AddrPortFrom(second, 3479)}
	for typ, a := range want {
		if attrs[typ] != a {
			t.Errorf("attribute %#04x = %s, want %s", typ, attrs[typ], a)
		}
	}
	// A change the host cannot make gets silence: RFC 3489 clients take any answer as success.
	if _, _, ok := (&Responder{Port: 3478}).Answer(classicRequest(changeIPFlag), client, local); ok {
		t.Error("answered a change request it cannot honour")
	}
}

func TestResponderDropsNonRequests(t *testing.T) {
	r := &Responder{Port: 3478}
	local := netip.AddrPortFrom(primary, 3478)
	resp := stun.MustBuild(stun.TransactionID, stun.BindingSuccess)
	truncated := classicRequest(0)[:25]
	badLength := classicRequest(0)
	badLength[3] = 12
	oddAttr := append(classicRequest(0)[:20:20], 0, 3, 0, 9, 1, 2, 3, 4)
	oddAttr[3] = 8
	cases := map[string][]byte{
		"empty":                  nil,
		"short":                  {0, 1, 0, 0},
		"success response":       resp.Raw,
		"classic truncated":      truncated,
		"classic bad length":     badLength,
		"attribute past the end": oddAttr,
		"huge":                   make([]byte, 4000),
	}
	for name, pkt := range cases {
		if _, _, ok := r.Answer(pkt, client, local); ok {
			t.Errorf("%s: answered", name)
		}
	}
}

func FuzzResponder(f *testing.F) {
	f.Add(classicRequest(6))
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest, ChangeRequest{true, true}, stun.Fingerprint).Raw)
	r := &Responder{Primary: primary, AltAddr: second, Port: 3478, AltPort: 3479}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		resp, _, ok := r.Answer(pkt, client, netip.AddrPortFrom(primary, 3478))
		if ok && (len(resp) < 20 || len(resp) > 200) {
			t.Fatalf("answer of %d bytes", len(resp))
		}
	})
}

func FuzzParseBehavior(f *testing.F) {
	f.Add("m=ei f=apd pp")
	f.Add("udp-blocked")
	f.Fuzz(func(t *testing.T, code string) {
		b, err := ParseBehavior(code)
		if err != nil {
			return
		}
		// What a peer sends back must read the same (fields Code drops, such as a lone "pp"
		// without a mapping, stay dropped).
		if again, err := ParseBehavior(b.Code()); err != nil || again.Code() != b.Code() {
			t.Fatalf("%q → %+v → %q → %+v, %v", code, b, b.Code(), again, err)
		}
	})
}

// stunServer serves a Responder on two loopback addresses and two ports: the real RFC 5780
// set-up, since Linux answers on all of 127.0.0.0/8.
func stunServer(t *testing.T) netip.AddrPort {
	t.Helper()
	a1, a2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	main1 := listen(t, netip.AddrPortFrom(a1, 0))
	port := main1.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	var socks = map[netip.AddrPort]*net.UDPConn{netip.AddrPortFrom(a1, port): main1}
	var alt uint16
	for try := 0; ; try++ {
		c := listen(t, netip.AddrPortFrom(a1, 0))
		alt = c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		other, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a2, port)))
		other2, err2 := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a2, alt)))
		if err == nil && err2 == nil {
			socks[netip.AddrPortFrom(a1, alt)] = c
			socks[netip.AddrPortFrom(a2, port)] = other
			socks[netip.AddrPortFrom(a2, alt)] = other2
			t.Cleanup(func() { other.Close(); other2.Close() })
			break
		}
		if try > 20 {
			t.Fatalf("no free port pair: %v %v", err, err2)
		}
	}
	r := &Responder{Primary: a1, AltAddr: a2, Port: port, AltPort: alt}
	var wg sync.WaitGroup
	for local, c := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				if resp, src, ok := r.Answer(buf[:n], from, local); ok {
					socks[src].WriteToUDPAddrPort(resp, from)
				}
			}
		}()
	}
	t.Cleanup(func() {
		for _, c := range socks {
			c.Close()
		}
		wg.Wait()
	})
	return netip.AddrPortFrom(a1, port)
}

func listen(t *testing.T, a netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(a))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDiscoverLoopback(t *testing.T) {
	server := stunServer(t)
	r, err := Discover(context.Background(), DiscoverConfig{Server: server.String(), RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b := r.Behavior
	if b.Mapping != NoNAT || b.Filtering != EndpointIndependent || !b.PortPreserved || b.Name() != "open" {
		t.Errorf("loopback classified as %s / %s / %s (notes %q)", b.Name(), b.Mapping, b.Filtering, r.Notes)
	}
	if r.Public != r.Local || r.Other.Addr().String() != "127.0.0.2" || r.RTT <= 0 {
		t.Errorf("report %+v", r)
	}
}

func TestDiscoverNoServer(t *testing.T) {
	c := listen(t, netip.MustParseAddrPort("127.0.0.1:0")) // bound, silent
	start := time.Now()
	r, err := Discover(context.Background(), DiscoverConfig{Server: c.LocalAddr().String(), RTO: 20 * time.Millisecond, Tries: 2})
	if err != nil || !r.Behavior.UDPBlocked || len(r.Notes) == 0 {
		t.Fatalf("silent server: %+v, %v", r, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v with 2 tries of 20+40 ms", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Discover(ctx, DiscoverConfig{Server: c.LocalAddr().String()}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := Discover(context.Background(), DiscoverConfig{Server: "no-such-host.invalid:3478"}); err == nil {
		t.Error("unresolvable server: no error")
	}
}

func TestPredictPorts(t *testing.T) {
	portRest := Behavior{Mapping: EndpointIndependent, Filtering: AddressPortDependent}
	symSeq := Behavior{Mapping: AddressPortDependent, Filtering: AddressPortDependent, PortDelta: 2}
	sym := Behavior{Mapping: AddressPortDependent, Filtering: AddressPortDependent}
	public := netip.MustParseAddrPort("203.0.113.20:30000")
	got := PredictPorts(portRest, symSeq, public)
	// A step of 2 is covered port by port: it may be a step of 1 with a flow in between.
	if len(got) != 2*PredictWindow || got[0].Port() != 30001 || got[len(got)-1].Port() != 30000+2*PredictWindow || got[0].Addr() != public.Addr() {
		t.Errorf("PredictPorts(step 2) = %v", got)
	}
	symSeq.PortDelta = 5
	if got := PredictPorts(portRest, symSeq, public); len(got) != PredictWindow || got[0].Port() != 30005 || got[1].Port() != 30010 {
		t.Errorf("PredictPorts(step 5) = %v", got)
	}
	symSeq.PortDelta = 2
	for name, c := range map[string][2]Behavior{"random ports": {portRest, sym}, "both symmetric": {symSeq, symSeq}, "unknown": {{}, {}}} {
		if got := PredictPorts(c[0], c[1], public); got != nil {
			t.Errorf("%s: predicted %v", name, got)
		}
	}
	if got := PredictPorts(portRest, symSeq, netip.MustParseAddrPort("203.0.113.20:65530")); len(got) != 5 {
		t.Errorf("near the top of the port range: %v", got)
	}
}

func TestRegister(t *testing.T) {
	key := RegisterKey([]byte("exporter of the control session"))
	req, err := RegisterRequest("c1d2", key)
	if err != nil {
		t.Fatal(err)
	}
	id, msg, ok := ParseRegister(req.Raw)
	if !ok || id != "c1d2" || !CheckRegister(msg, key) {
		t.Fatalf("ParseRegister = %q %v, check %v", id, ok, ok && CheckRegister(msg, key))
	}
	if CheckRegister(msg, RegisterKey([]byte("another session"))) {
		t.Error("a registration checked out with another session's key")
	}
	from := netip.MustParseAddrPort("[2001:db8:1::2]:40000")
	resp, err := RegisterAnswer(msg, from, key)
	if err != nil {
		t.Fatal(err)
	}
	tx, public, ok := ParseRegisterAnswer(resp, key)
	if !ok || tx != req.TransactionID || public != from {
		t.Errorf("answer: %v %v %v, want %v %v", tx, public, ok, req.TransactionID, from)
	}
	if _, _, ok := ParseRegisterAnswer(resp, RegisterKey([]byte("x"))); ok {
		t.Error("an answer checked out with another key")
	}
	// Not registrations: a plain binding request, a probe of a P2P session, garbage.
	plain, _ := stun.Build(stun.TransactionID, stun.BindingRequest)
	probe, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername("00ff:visitor"))
	for _, b := range [][]byte{plain.Raw, probe.Raw, []byte("hello"), nil} {
		if _, _, ok := ParseRegister(b); ok {
			t.Errorf("ParseRegister(%x) took it", b)
		}
	}
}

func FuzzParseRegister(f *testing.F) {
	key := RegisterKey([]byte("k"))
	req, _ := RegisterRequest("abc", key)
	f.Add(req.Raw)
	resp, _ := RegisterAnswer(req, netip.MustParseAddrPort("1.2.3.4:5"), key)
	f.Add(resp)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, msg, ok := ParseRegister(b); ok {
			CheckRegister(msg, key)
		}
		ParseRegisterAnswer(b, key)
	})
}
