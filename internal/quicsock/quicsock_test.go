//go:build linux

package quicsock

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/quic-go/quic-go"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/xp2p/xp2p/internal/tlsconf"
)

// markFilter consumes packets starting with 'C', strips the first byte of packets starting with
// 'S' and reports them from alias, and passes everything else untouched.
type markFilter struct {
	alias    *net.UDPAddr
	mu       sync.Mutex
	consumed [][]byte
	batches  int
}

func (f *markFilter) Receive(data []byte, from *net.UDPAddr, _ []byte) ([]byte, net.Addr, bool) {
	switch {
	case len(data) > 0 && data[0] == 'C':
		f.mu.Lock()
		f.consumed = append(f.consumed, append([]byte(nil), data...))
		f.mu.Unlock()
		return nil, nil, true
	case len(data) > 0 && data[0] == 'S':
		return data[1:], f.alias, false
	}
	return data, nil, false
}

func (f *markFilter) EndBatch() {
	f.mu.Lock()
	f.batches++
	f.mu.Unlock()
}

func (f *markFilter) Send(_ *Conn, _, _ []byte, _ int, to *net.UDPAddr) (*net.UDPAddr, bool, error) {
	return to, false, nil
}

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// slots mimics quic-go's receive slots: one buffer per message, paired by index.
func slots(n int) ([]ipv4.Message, [][]byte) {
	ms := make([]ipv4.Message, n)
	bufs := make([][]byte, n)
	for i := range ms {
		bufs[i] = make([]byte, 1452)
		ms[i].Buffers = [][]byte{bufs[i]}
		ms[i].OOB = make([]byte, 64)
	}
	return ms, bufs
}

// readAll reads until want packets came out of ReadBatch, checking that every returned slot
// still points into its own buffer.
func readAll(t *testing.T, c *Conn, want int) (data []string, addrs []string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(data) < want {
		ms, bufs := slots(8)
		n, err := c.ReadBatch(ms, 0)
		if err != nil {
			t.Fatalf("ReadBatch after %d packets: %v", len(data), err)
		}
		for i := range n {
			b := ms[i].Buffers[0][:ms[i].N]
			if len(b) > 0 && !within(b, bufs[i]) {
				t.Fatalf("slot %d's data left its own buffer (quic-go pairs buffers with slots)", i)
			}
			data = append(data, string(b))
			addrs = append(addrs, ms[i].Addr.String())
		}
	}
	return data, addrs
}

func within(b, buf []byte) bool {
	start := &buf[0]
	end := &buf[len(buf)-1]
	p := &b[0]
	return uintptrOf(p) >= uintptrOf(start) && uintptrOf(p) <= uintptrOf(end)
}

func TestFilterConsumesStripsAndKeepsSlots(t *testing.T) {
	for _, gro := range []bool{false, true} {
		t.Run(fmt.Sprintf("gro=%v", gro), func(t *testing.T) {
			alias := &net.UDPAddr{IP: net.IPv4(240, 0, 0, 7), Port: 1}
			f := &markFilter{alias: alias}
			c := New(listen(t), f)
			if gro && !c.EnableGRO() {
				t.Skip("UDP GRO not supported by this kernel")
			}
			sender := listen(t)
			sent := []string{"Cfirst", "plain-1", "Sstripped-1", "Csecond", "Csecond-b", "plain-2", "Sstripped-2", "plain-3", "Cthird", "plain-4"}
			for _, p := range sent {
				if _, err := sender.WriteToUDP([]byte(p), c.LocalAddr().(*net.UDPAddr)); err != nil {
					t.Fatal(err)
				}
			}
			got, addrs := readAll(t, c, 6)
			want := []string{"plain-1", "stripped-1", "plain-2", "stripped-2", "plain-3", "plain-4"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("quic-go would see %q, want %q", got, want)
			}
			for i, a := range addrs {
				wantAddr := sender.LocalAddr().String()
				if want[i][0] == 's' {
					wantAddr = alias.String()
				}
				if a != wantAddr {
					t.Errorf("packet %q from %s, want %s", got[i], a, wantAddr)
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.consumed) != 4 || f.batches == 0 {
				t.Errorf("filter consumed %d packets in %d batches, want 4 in at least 1", len(f.consumed), f.batches)
			}
		})
	}
}

func TestWriteSegmentsAndGROSplit(t *testing.T) {
	rc := listen(t)
	rc.SetReadBuffer(4 << 20) // everything is sent before anything is read
	recv := New(rc, &markFilter{})
	if !recv.EnableGRO() {
		t.Skip("UDP GRO not supported by this kernel")
	}
	send := New(listen(t), &markFilter{})
	to := recv.LocalAddr().(*net.UDPAddr)
	var want []string
	for round := range 20 {
		var pkts [][]byte
		for i := range 10 {
			p := bytes.Repeat([]byte{byte('a' + i)}, 1200)
			copy(p, fmt.Sprintf("r%02d-p%d", round, i))
			pkts = append(pkts, p)
			want = append(want, string(p))
		}
		last := []byte(fmt.Sprintf("r%02d-short", round)) // a shorter last segment is allowed
		pkts = append(pkts, last)
		want = append(want, string(last))
		if err := send.WriteSegments(pkts, to); err != nil {
			t.Fatalf("WriteSegments: %v", err)
		}
	}
	got, _ := readAll(t, recv, len(want))
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("packet %d: got %.12q (%d bytes), want %.12q (%d bytes)", i, got[i], len(got[i]), want[i], len(want[i]))
		}
	}
}

// passFilter lets everything through: QUIC over a quicsock.Conn must behave as over the socket.
type passFilter struct{}

func (passFilter) Receive(d []byte, _ *net.UDPAddr, _ []byte) ([]byte, net.Addr, bool) {
	return d, nil, false
}
func (passFilter) Send(_ *Conn, _, _ []byte, _ int, to *net.UDPAddr) (*net.UDPAddr, bool, error) {
	return to, false, nil
}

func TestQUICOverConnWithGRO(t *testing.T) {
	srvSock := New(listen(t), passFilter{})
	srvSock.EnableGRO()
	cliSock := New(listen(t), passFilter{})
	cliSock.EnableGRO()
	srvTr := &quic.Transport{Conn: srvSock}
	cliTr := &quic.Transport{Conn: cliSock}
	t.Cleanup(func() { cliTr.Close(); srvTr.Close() })
	cert, err := tlsconf.SelfSigned("test")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srvTr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"t"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const size = 32 << 20
	errc := make(chan error, 1)
	go func() {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			errc <- err
			return
		}
		st, err := conn.AcceptStream(context.Background())
		if err != nil {
			errc <- err
			return
		}
		_, err = io.Copy(st, st) // echo
		st.Close()
		errc <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := cliTr.Dial(ctx, srvSock.LocalAddr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"t"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	go func() {
		st.Write(data)
		st.Close()
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo over QUIC on quicsock: %d bytes back, want %d identical", len(got), len(data))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestSegmentSizeCmsg(t *testing.T) {
	oob := appendSegmentSize(nil, 1337)
	if got := SegmentSize(oob); got != 1337 {
		t.Fatalf("SegmentSize = %d, want 1337", got)
	}
	patched := WithSegmentSize(oob, 1346)
	if got := SegmentSize(patched); got != 1346 {
		t.Fatalf("patched SegmentSize = %d, want 1346", got)
	}
	if got := SegmentSize(oob); got != 1337 {
		t.Fatalf("WithSegmentSize changed its input: %d", got)
	}
	if got := SegmentSize(nil); got != 0 {
		t.Fatalf("SegmentSize(nil) = %d", got)
	}
}

func uintptrOf(p *byte) uintptr { return uintptr(unsafe.Pointer(p)) }

// TestRewrittenSourceLosesPacketInfo: a packet whose source the filter rewrites must reach quic-go
// without IP_PKTINFO, or quic-go would send every reply from the address it arrived on (loopback,
// for a packet fed back into the socket).
func TestRewrittenSourceLosesPacketInfo(t *testing.T) {
	for _, gro := range []bool{false, true} {
		t.Run(fmt.Sprintf("gro=%v", gro), func(t *testing.T) {
			uc, err := net.ListenUDP("udp4", &net.UDPAddr{}) // unspecified, as clients bind
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { uc.Close() })
			rc, _ := uc.SyscallConn()
			rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) })
			c := New(uc, &markFilter{alias: &net.UDPAddr{IP: net.IPv4(240, 0, 0, 9), Port: 1}})
			if gro && !c.EnableGRO() {
				t.Skip("UDP GRO not supported")
			}
			sender := listen(t)
			to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: uc.LocalAddr().(*net.UDPAddr).Port}
			sender.WriteToUDP([]byte("plain"), to)
			sender.WriteToUDP([]byte("Srewritten"), to)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var got int
			for got < 2 {
				ms, _ := slots(8)
				n, err := c.ReadBatch(ms, 0)
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					has := hasPacketInfo(ms[i].OOB[:ms[i].NN])
					switch string(ms[i].Buffers[0][:ms[i].N]) {
					case "plain":
						if !has {
							t.Error("a packet from a real peer lost its packet info")
						}
					case "rewritten":
						if has {
							t.Error("a packet with a rewritten source kept its packet info")
						}
					}
					got++
				}
			}
		})
	}
}

func hasPacketInfo(oob []byte) bool {
	for len(oob) > 0 {
		hdr, _, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return false
		}
		if hdr.Level == unix.IPPROTO_IP && hdr.Type == unix.IP_PKTINFO {
			return true
		}
		oob = rest
	}
	return false
}

// WriteSegmented sends a run of packets longer than one GSO write allows, and a receiver with
// or without GRO gets every packet whole and in order.
func TestWriteSegmented(t *testing.T) {
	for _, gro := range []bool{false, true} {
		recv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer recv.Close()
		recv.SetReadBuffer(4 << 20)
		if gro {
			SetGRO(recv)
		}
		send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer send.Close()
		const size, n = 1209, 150 // three GSO writes' worth, the last packet shorter
		b := make([]byte, 0, size*n)
		for i := range n {
			p := make([]byte, size)
			if i == n-1 {
				p = p[:500]
			}
			binary.BigEndian.PutUint32(p, uint32(i))
			b = append(b, p...)
		}
		if err := WriteSegmented(send, b, size, recv.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
		buf, oob := make([]byte, 64<<10), make([]byte, 128)
		got := 0
		recv.SetReadDeadline(time.Now().Add(2 * time.Second))
		for got < n {
			m, oobn, _, _, err := recv.ReadMsgUDP(buf, oob)
			if err != nil {
				t.Fatalf("gro %v: %d of %d packets, then %v", gro, got, n, err)
			}
			seg := GROSegmentSize(oob[:oobn])
			if seg <= 0 || seg >= m {
				seg = m
			}
			for off := 0; off < m; off += seg {
				p := buf[off:min(off+seg, m)]
				want := size
				if got == n-1 {
					want = 500
				}
				if i := binary.BigEndian.Uint32(p); int(i) != got || len(p) != want {
					t.Fatalf("gro %v: packet %d of %d bytes, want %d of %d", gro, i, len(p), got, want)
				}
				got++
			}
		}
	}
}
