package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

var (
	id16  = bytes.Repeat([]byte{7}, SessionIDLen)
	tok8  = bytes.Repeat([]byte{9}, RelayTokenLen)
	proof = bytes.Repeat([]byte{1}, proofLen)
	rkey  = bytes.Repeat([]byte{2}, runKeyLen)
	rsig  = bytes.Repeat([]byte{3}, runSigLen)
)

// validMessages has one valid example of every message type.
func validMessages() []Message {
	ps := &PeerSession{SessionID: id16, Service: "nas", Role: RoleProvider, PeerPublic: "1.2.3.4:5", PeerPublicAlt: "[2001:db8::5]:5", PeerPrivate: []string{"10.0.0.2:5"}, RelayToken: tok8}
	return []Message{
		&Login{Version: "1", RunID: "r", RunKey: rkey, RunSig: rsig, Proof: proof, PrivateAddrs: []string{"10.0.0.2:40000"}, Ticket: &TicketProof{ID: id16, Proof: proof}},
		&LoginResult{Proof: proof, ObservedAddr: "1.2.3.4:5", ServerAddrs: []string{"1.2.3.4:7000", "[2001:db8::1]:7000"}, Ticket: &Ticket{ID: id16, Key: proof}},
		&LoginResult{Code: CodeAuth, Error: "authentication failed"},
		&NewProxy{Name: "ssh", Type: ProxyTCP, RemotePort: 6000, Group: "g", GroupKey: make([]byte, groupKeyLen)},
		&NewProxyResult{Name: "ssh", RemoteAddr: "0.0.0.0:6000"},
		&CloseProxy{Name: "ssh"},
		&WorkStream{Proxy: "ssh", Src: "9.9.9.9:1"},
		&Connect{ReqID: 3, Service: "nas"},
		&ConnectResult{ReqID: 3, Session: ps},
		&ConnectResult{ReqID: 4, Error: "no service"},
		ps,
		&PeerHello{Service: "nas", SessionID: id16, Share: proof},
		&PeerHelloResult{Share: proof, Proof: proof, Kind: "tcp"},
		&PeerHelloResult{Code: CodeRateLimited, Error: "too many"},
		&PeerConfirm{Proof: proof},
		&PeerStream{Src: "127.0.0.1:1"},
		&TCPPath{Addrs: []string{"203.0.113.10:40000", "10.1.0.2:40000"}},
		&Traffic{Sessions: []SessionTraffic{{SessionID: id16, Path: "direct", RelayBytes: 1}}},
		&EndSession{SessionID: id16, Reason: "bye"},
		&Repunch{SessionID: id16},
		&RelayStream{},
		&WorkConn{RunID: "r", Proof: proof},
		&WorkConnResult{Proof: proof},
		&WorkConnResult{Code: CodeUnknownRun, Error: "no session of run r"},
		&Ping{Seq: 1},
		&Pong{Seq: 1},
		&NATReport{NAT: "m=ei f=apd pp", Mapped: "203.0.113.10:40000"},
		&NATReport{NAT: "m=ei f=apd pp", Mapped: "192.0.3.10:40000", MappedBy: "UPnP-IGD"},
	}
}

func TestRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range validMessages() {
		seen[m.MessageType()] = true
		var buf bytes.Buffer
		if err := Write(&buf, m); err != nil {
			t.Fatalf("write %s: %v", m.MessageType(), err)
		}
		got, err := Read(&buf)
		if err != nil {
			t.Fatalf("read %s: %v", m.MessageType(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%s: round trip gave %+v, want %+v", m.MessageType(), got, m)
		}
	}
	for name := range registry {
		if !seen[name] {
			t.Errorf("message type %q has no round-trip example", name)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []struct {
		m    Message
		want string
	}{
		{&Login{RunID: "", Proof: proof}, "runId"},
		{&Login{RunID: "r", RunKey: rkey, RunSig: rsig, Proof: []byte{1}}, "proof"},
		{&Login{RunID: "r", RunKey: rkey, Proof: proof}, "runSig"},
		{&Login{RunID: "r", RunKey: rkey, RunSig: rsig, Proof: proof, PrivateAddrs: []string{"nope"}}, "privateAddrs"},
		{&Login{RunID: "r", RunKey: rkey, RunSig: rsig, Proof: proof, PrivateAddrs: make([]string, MaxCandidates+1)}, "more than"},
		{&LoginResult{}, "proof"},
		{&NewProxy{Name: "", Type: ProxyTCP}, "name is empty"},
		{&NewProxy{Name: strings.Repeat("x", MaxNameLen+1), Type: ProxyTCP}, "longer than"},
		{&NewProxy{Name: "a", Type: "kcp"}, "unknown proxy type"},
		{&NewProxy{Name: "a", Type: "http"}, "no customDomains and no subdomain"},
		{&NewProxy{Name: "a", Type: "http", CustomDomains: []string{"a.test:80"}}, "not a host name"},
		{&NewProxy{Name: "a", Type: "https", SubDomain: "a.b"}, "one label"},
		{&NewProxy{Name: "a", Type: "http", SubDomain: "a", Locations: []string{"api"}}, "must start with /"},
		{&NewProxy{Name: "a", Type: "http", SubDomain: "a", RequestHeaders: map[string]string{"X-A": "1\r\nSet-Cookie: x"}}, "not a valid name and value"},
		{&NewProxy{Name: "a", Type: "http", SubDomain: "a", ResponseHeaders: map[string]string{"X A": "1"}}, "not a valid name and value"},
		{&NewProxy{Name: "a", Type: "http", SubDomain: "a", HostHeaderRewrite: "a b"}, "not a Host header"},
		{&NewProxy{Name: "a", Type: "tcpmux", SubDomain: "a", RemotePort: 80}, "has no remotePort"},
		{&NewProxy{Name: "a", Type: ProxyUDP, RemotePort: 70000}, "out of range"},
		{&NewProxy{Name: "nas", Type: ProxyXP2P, Group: "x"}, "a xp2p proxy has no load-balancing group"},
		{&NewProxy{Name: "a", Type: ProxyUDP, Group: "x"}, "a udp proxy has no load-balancing group"},
		{&NewProxy{Name: "a", Type: ProxyTCP, Group: "x", GroupKey: []byte("sesame")}, "groupKey must be 32 bytes"},
		{&NewProxy{Name: "a", Type: ProxyTCP, GroupKey: make([]byte, groupKeyLen)}, "with a group"},
		{&ConnectResult{}, "session missing"},
		{&PeerSession{SessionID: []byte{1}, Service: "s", Role: RoleVisitor, RelayToken: tok8}, "sessionId"},
		{&PeerSession{SessionID: id16, Service: "s", Role: "spy", RelayToken: tok8}, "role"},
		{&PeerSession{SessionID: id16, Service: "s", Role: RoleVisitor, RelayToken: []byte{1}}, "relayToken"},
		{&PeerSession{SessionID: id16, Service: "s", Role: RoleVisitor, RelayToken: tok8, PeerPublic: "x"}, "peerPublic"},
		{&PeerHello{Service: "s", SessionID: id16, Share: nil}, "share"},
		{&PeerHelloResult{Proof: proof}, "share"},
		{&PeerConfirm{}, "proof"},
		{&Traffic{Sessions: []SessionTraffic{{SessionID: nil}}}, "sessionId"},
		{&Traffic{Sessions: make([]SessionTraffic, 1025)}, "too many"},
		{&WorkConn{RunID: "r"}, "proof"},
		{&WorkConnResult{}, "proof"},
		{&Login{RunID: "r", RunKey: rkey, RunSig: rsig, Proof: proof, NAT: strings.Repeat("m", 65)}, "at most 64"},
		{&NATReport{NAT: "m=ei\x00"}, "printable"},
		{&NATReport{Mapped: "1.2.3.4"}, "mapped"},
		{&NATReport{Mapped: "1.2.3.4:5", MappedBy: "upnp"}, "mappedBy"},
		{&NATReport{MappedBy: "PCP"}, "mappedBy"},
		{&Login{RunID: "r", RunKey: rkey, RunSig: rsig, Proof: proof, Mapped: "x:1"}, "mapped"},
		{&PeerSession{SessionID: id16, Service: "s", Role: RoleVisitor, RelayToken: tok8, PeerMapped: "nope"}, "peerMapped"},
		{&PeerSession{SessionID: id16, Service: "s", Role: RoleVisitor, RelayToken: tok8, PeerPublicAlt: "[::1]"}, "peerPublicAlt"},
		{&LoginResult{Proof: proof, ServerAddrs: []string{"203.0.113.1"}}, "serverAddrs"},
	}
	for _, b := range bad {
		err := b.m.Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s %+v: Validate() = %v, want an error about %q", b.m.MessageType(), b.m, err, b.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]string{
		`{"t":"nope","b":{}}`:                            "unknown message type",
		`{"t":"ping"}`:                                   "missing body",
		`{"t":"ping","b":null}`:                          "missing body",
		`{"t":"ping","b":{"seq":1},"x":1}`:               "unknown field",
		`{"t":"ping","b":{"seq":1}} {"t":"ping"}`:        "trailing data",
		`{"t":"login","b":{"runId":"r","proof":"AAA="}}`: "invalid login",
		`{"t":"ping","b":{"seq":"one"}}`:                 "decode ping",
		`[1,2,3]`:                                        "decode control frame",
	}
	for in, want := range cases {
		if _, err := Decode([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%s) = %v, want an error about %q", in, err, want)
		}
	}
}

func TestFrameLimits(t *testing.T) {
	// A frame announcing more than MaxFrameSize is refused before anything is allocated.
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxFrameSize+1)
	if _, err := Read(bytes.NewReader(hdr[:])); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
	// Truncated body.
	binary.BigEndian.PutUint32(hdr[:], 100)
	if _, err := Read(io.MultiReader(bytes.NewReader(hdr[:]), strings.NewReader("{"))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v", err)
	}
	// A clean end before any frame is io.EOF.
	if _, err := Read(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("empty stream: %v", err)
	}
	// Encode refuses what Read would refuse.
	big := &Login{RunID: "r", Proof: proof, Hostname: strings.Repeat("h", MaxFrameSize)}
	if err := Write(io.Discard, big); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("encoding an oversized message: %v", err)
	}
}

func TestReadAs(t *testing.T) {
	var buf bytes.Buffer
	Write(&buf, &Ping{Seq: 1})
	if _, err := ReadAs[*Pong](&buf); err == nil || !strings.Contains(err.Error(), "expected pong, got ping") {
		t.Errorf("ReadAs of the wrong type: %v", err)
	}
}

func TestRelayHeader(t *testing.T) {
	var tok RelayToken
	copy(tok[:], tok8)
	pkt := make([]byte, RelayHeaderLen+3)
	PutRelayHeader(pkt, tok)
	copy(pkt[RelayHeaderLen:], "abc")
	got, payload, ok := ParseRelay(pkt)
	if !ok || got != tok || string(payload) != "abc" {
		t.Fatalf("ParseRelay = %x %q %v", got, payload, ok)
	}
	if _, _, ok := ParseRelay(pkt[:RelayHeaderLen]); ok {
		t.Error("a header without payload parsed")
	}
	pkt[0] = 0x01 // STUN's first byte
	if _, _, ok := ParseRelay(pkt); ok {
		t.Error("a packet without the relay magic parsed")
	}
}

func TestDatagrams(t *testing.T) {
	var buf bytes.Buffer
	for _, d := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte{5}, MaxDatagram)} {
		if err := WriteDatagram(&buf, d); err != nil {
			t.Fatal(err)
		}
	}
	out := make([]byte, MaxDatagram)
	for _, want := range []int{0, 1, MaxDatagram} {
		n, err := ReadDatagram(&buf, out)
		if err != nil || n != want {
			t.Fatalf("ReadDatagram = %d, %v; want %d", n, err, want)
		}
	}
	if _, err := ReadDatagram(&buf, out); err != io.EOF {
		t.Errorf("end of stream: %v", err)
	}
	if err := WriteDatagram(io.Discard, make([]byte, MaxDatagram+1)); err == nil {
		t.Error("oversized datagram written")
	}
	// A frame longer than the reader's buffer is an error, not an overflow.
	buf.Reset()
	WriteDatagram(&buf, make([]byte, 100))
	if _, err := ReadDatagram(&buf, make([]byte, 10)); err == nil {
		t.Error("datagram larger than the buffer accepted")
	}
}

// FuzzDecode: any frame payload decodes to a valid message or an error; a decoded message
// encodes and decodes again to the same message.
func FuzzDecode(f *testing.F) {
	for _, m := range validMessages() {
		frame, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame[4:])
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := Decode(payload)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Decode returned an invalid %s: %v", m.MessageType(), err)
		}
		frame, err := Encode(m)
		if err != nil {
			t.Fatalf("re-encode %s: %v", m.MessageType(), err)
		}
		// Compared in canonical (encoded) form: [] and an absent list are the same message.
		again, err := Decode(frame[4:])
		if err != nil {
			t.Fatalf("%s does not decode after a round trip: %v", m.MessageType(), err)
		}
		frame2, err := Encode(again)
		if err != nil || !bytes.Equal(frame, frame2) {
			t.Fatalf("%s changes in a round trip: %s vs %s", m.MessageType(), frame[4:], frame2[4:])
		}
	})
}

// FuzzRead: a stream of framed bytes never makes Read panic or return both a message and an error.
func FuzzRead(f *testing.F) {
	for _, m := range validMessages()[:4] {
		frame, _ := Encode(m)
		f.Add(frame)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for range 16 {
			m, err := Read(r)
			if err != nil {
				if m != nil {
					t.Fatal("message and error together")
				}
				return
			}
		}
	})
}

// FuzzRelayAndDatagram: the relay header parser and the datagram reader on arbitrary input.
func FuzzRelayAndDatagram(f *testing.F) {
	f.Add([]byte{RelayMagic, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0, 3, 'a', 'b', 'c'})
	f.Fuzz(func(t *testing.T, data []byte) {
		if tok, payload, ok := ParseRelay(data); ok {
			if len(payload) == 0 || data[0] != RelayMagic || !bytes.Equal(tok[:], data[1:RelayHeaderLen]) {
				t.Fatal("ParseRelay accepted a malformed packet")
			}
		}
		buf := make([]byte, 64)
		r := bytes.NewReader(data)
		for range 8 {
			n, err := ReadDatagram(r, buf)
			if err != nil {
				return
			}
			if n > len(buf) {
				t.Fatal("datagram longer than the buffer")
			}
		}
	})
}
