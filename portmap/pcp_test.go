package portmap

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// pcpMapAnswer is miniupnpd 2.3.1's answer to a MAP of udp port 40124 (seen in the lab):
// lifetime 3600, epoch 92, external 192.0.3.10:40124.
const pcpMapAnswer = "0281000000000e100000005c000000000000000000000000e502ef38de4ed0df1d5856d9110000009cbc9cbc00000000000000000000ffffc000030a"

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodePCP(t *testing.T) {
	good := unhex(t, pcpMapAnswer)
	withResult := func(code byte) []byte {
		b := bytes.Clone(good[:pcpHeaderLen])
		b[3] = code
		return b
	}
	cases := []struct {
		name    string
		msg     []byte
		want    pcpResponse
		wantErr string
	}{
		{name: "map answer", msg: good, want: pcpResponse{Op: pcpOpMap, Lifetime: 3600, Epoch: 92,
			Nonce: [12]byte(good[24:36]), Protocol: protoUDP, Internal: 40124, External: netip.MustParseAddrPort("192.0.3.10:40124")}},
		{name: "announce answer", msg: unhex(t, "02800000000000000000005c000000000000000000000000"), want: pcpResponse{Op: pcpOpAnnounce, Epoch: 92}},
		{name: "refusal without the opcode's fields", msg: withResult(2), want: pcpResponse{Op: pcpOpMap, Result: 2, Lifetime: 3600, Epoch: 92}},
		{name: "NAT-PMP server: unsupported version", msg: []byte{0, 0x81, 0, 1, 0, 0, 0, 9}, wantErr: "speaks NAT-PMP only"},
		{name: "short", msg: good[:20], wantErr: "20-byte"},
		{name: "truncated map", msg: good[:48], wantErr: "MAP response of 48 bytes"},
		{name: "not a multiple of 4", msg: append(bytes.Clone(good), 0), wantErr: "61-byte"},
		{name: "too long", msg: make([]byte, pcpMaxLen+4), wantErr: "1104-byte"},
		{name: "version 1", msg: append([]byte{1}, good[1:]...), wantErr: "version 1"},
		{name: "a request", msg: append([]byte{2, 1}, good[2:]...), wantErr: "not a response"},
		{name: "empty", msg: nil, wantErr: "0-byte"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodePCP(tc.msg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decodePCP: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("decodePCP = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestDecodePMP(t *testing.T) {
	cases := []struct {
		name    string
		msg     []byte
		want    pmpResponse
		wantErr string
	}{
		// miniupnpd 2.3.1's answers (the lab): external 192.0.3.10; udp 40123 mapped for 3600 s.
		{name: "external address", msg: unhex(t, "0080000000000053c000030a"), want: pmpResponse{Op: pmpOpExternal, Epoch: 0x53, External: netip.MustParseAddr("192.0.3.10")}},
		{name: "mapping", msg: unhex(t, "00810000000000539cbb9cbb00000e10"), want: pmpResponse{Op: pmpOpMapUDP, Epoch: 0x53, Internal: 40123, Mapped: 40123, Lifetime: 3600}},
		{name: "refusal", msg: []byte{0, 0x81, 0, 2, 0, 0, 0, 1}, want: pmpResponse{Op: pmpOpMapUDP, Result: 2, Epoch: 1}},
		{name: "PCP server: unsupported version", msg: unhex(t, "028000010000000000000000000000000000000000000000"), wantErr: "speaks PCP only"},
		{name: "short mapping", msg: unhex(t, "00810000000000539cbb9cbb"), wantErr: "12-byte answer to opcode 1"},
		{name: "request", msg: []byte{0, 0}, wantErr: "not a response"},
		{name: "unknown opcode", msg: unhex(t, "00ff0000000000539cbb9cbb00000e10"), wantErr: "answer to opcode 127"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodePMP(tc.msg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decodePMP: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("decodePMP = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// FuzzDecode: whatever a router (or anyone on the LAN) sends, the decoders return an error or a
// response whose fields come from the message, and never panic.
func FuzzDecode(f *testing.F) {
	f.Add(unhex(f, pcpMapAnswer))
	f.Add(unhex(f, "02800000000000000000005c000000000000000000000000"))
	f.Add(unhex(f, "00810000000000539cbb9cbb00000e10"))
	f.Add([]byte{0, 0x80, 0, 0, 0, 0, 0, 1, 192, 0, 3, 10})
	f.Add([]byte{0, 0x81, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodePCP(b); err == nil {
			if len(b) < pcpHeaderLen || len(b)%4 != 0 || b[0] != pcpVersion || r.Op != b[1]&^opReply {
				t.Fatalf("decodePCP accepted %x as %+v", b, r)
			}
			if r.Op == pcpOpMap && r.Result == 0 && (len(b) < pcpHeaderLen+pcpMapLen || r.External.Port() != binary.BigEndian.Uint16(b[42:44])) {
				t.Fatalf("decodePCP MAP %x as %+v", b, r)
			}
		}
		if r, err := decodePMP(b); err == nil {
			if len(b) < 8 || b[0] != pmpVersion || r.Op != b[1]-opReply {
				t.Fatalf("decodePMP accepted %x as %+v", b, r)
			}
		}
	})
}

func TestPCPMapRequest(t *testing.T) {
	c := newPCPClient(netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2"))
	sent := make(chan []byte, 8)
	c.server = serve(t, func(req []byte) [][]byte { sent <- bytes.Clone(req); return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	go c.mapRequest(ctx, 40123, 7200, netip.AddrPort{})
	want := "02010000" + "00001c20" + "00000000000000000000ffff0a010002" + // header: MAP, 7200 s, 10.1.0.2
		hex.EncodeToString(c.nonce[:]) + "11000000" + "9cbb" + "9cbb" + "00000000000000000000ffff00000000" // udp, 40123 → 40123, any IPv4
	if got := hex.EncodeToString(<-sent); got != want {
		t.Errorf("MAP request\n got %s\nwant %s", got, want)
	}
}

// serve answers each datagram sent to a loopback socket with what answer returns, and
// returns the socket's address.
func serve(t *testing.T, answer func(req []byte) [][]byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			for _, a := range answer(buf[:n]) {
				pc.WriteToUDPAddrPort(a, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// pcpAnswer makes the router's answer to a MAP request req.
func pcpAnswer(req []byte, result byte, lifetime uint32, external netip.AddrPort) []byte {
	b := make([]byte, pcpHeaderLen+pcpMapLen)
	b[0], b[1], b[3] = pcpVersion, opReply|pcpOpMap, result
	binary.BigEndian.PutUint32(b[4:8], lifetime)
	copy(b[24:40], req[24:40]) // nonce, protocol, reserved
	copy(b[40:42], req[40:42]) // internal port
	binary.BigEndian.PutUint16(b[42:44], external.Port())
	ip := external.Addr().As16()
	copy(b[44:60], ip[:])
	return b
}

// TestPCPAnswers: the PCP client takes the router's answer to its own request, and waits past
// garbage and answers to another request (a wrong nonce: another client, or someone on the LAN
// forging a mapping); a refusal ends the request with its result code.
func TestPCPAnswers(t *testing.T) {
	public := netip.MustParseAddrPort("192.0.3.10:40123")
	forged := netip.MustParseAddrPort("192.0.3.66:1")
	cases := []struct {
		name    string
		answer  func(req []byte) [][]byte
		want    netip.AddrPort
		wantErr string
	}{
		{name: "answer", answer: func(req []byte) [][]byte { return [][]byte{pcpAnswer(req, 0, 7200, public)} }, want: public},
		{name: "garbage, then the answer", answer: func(req []byte) [][]byte {
			return [][]byte{[]byte("HTTP/1.1 200 OK\r\n\r\n"), {2, 0x81}, make([]byte, 60), pcpAnswer(req, 0, 7200, public)}
		}, want: public},
		{name: "another nonce, then the answer", answer: func(req []byte) [][]byte {
			other := pcpAnswer(req, 0, 7200, forged)
			other[24] ^= 0xff
			return [][]byte{other, pcpAnswer(req, 0, 7200, public)}
		}, want: public},
		{name: "another port, then the answer", answer: func(req []byte) [][]byte {
			other := pcpAnswer(req, 0, 7200, forged)
			other[41]++
			return [][]byte{other, pcpAnswer(req, 0, 7200, public)}
		}, want: public},
		{name: "refused", answer: func(req []byte) [][]byte { return [][]byte{pcpAnswer(req, 2, 0, netip.AddrPort{})} }, wantErr: "PCP result 2 (NOT_AUTHORIZED)"},
		{name: "granted nothing", answer: func(req []byte) [][]byte { return [][]byte{pcpAnswer(req, 0, 0, public)} }, wantErr: "granted no mapping"},
		{name: "NAT-PMP only", answer: func(req []byte) [][]byte { return [][]byte{{0, 0x81, 0, 1, 0, 0, 0, 5}} }, wantErr: "speaks NAT-PMP only"},
		{name: "garbage only", answer: func(req []byte) [][]byte { return [][]byte{[]byte("garbage!")} }, wantErr: "no answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newPCPClient(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1"))
			c.server = serve(t, tc.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			mp, err := c.add(ctx, 40123, 2*time.Hour, Mapping{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("add: %v, %v; want an error with %q", mp, err, tc.wantErr)
				}
				return
			}
			if err != nil || mp.External != tc.want || mp.Lifetime != 2*time.Hour || mp.Protocol != PCP {
				t.Fatalf("add = %+v, %v; want %s for 2h", mp, err, tc.want)
			}
		})
	}
}

// TestExchangeBounds: a router that answers nothing costs the context's time; one whose port is
// closed (ICMP port unreachable) fails at once; a lost request is sent again.
func TestExchangeBounds(t *testing.T) {
	t.Parallel()
	accept := func(b []byte) ([]byte, error) { return b, nil }

	silent := serve(t, func([]byte) [][]byte { return nil })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := exchange(ctx, silent, []byte{0, 0}, accept)
	cancel()
	if took := time.Since(start); err == nil || !strings.Contains(err.Error(), "no answer from") || took > time.Second {
		t.Errorf("silent server: %v after %s, want no answer after 300 ms", err, took)
	}

	closed := func() netip.AddrPort {
		pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).AddrPort()
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	start = time.Now()
	_, err = exchange(ctx, closed, []byte{0, 0}, accept)
	cancel()
	if took := time.Since(start); err == nil || !strings.Contains(err.Error(), "refused") || took > time.Second {
		t.Errorf("closed port: %v after %s, want refused at once", err, took)
	}

	n := 0
	lossy := serve(t, func(req []byte) [][]byte {
		if n++; n == 1 {
			return nil // the first request is lost
		}
		return [][]byte{req}
	})
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	got, err := exchange(ctx, lossy, []byte("ping"), accept)
	cancel()
	if err != nil || string(got) != "ping" {
		t.Errorf("lost request: %q, %v", got, err)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := exchange(cancelled, silent, []byte{0, 0}, accept); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
