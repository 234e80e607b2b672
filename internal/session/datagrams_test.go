package session

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/xp2p/xp2p/internal/tlsconf"
)

// quicPair connects two QUIC endpoints with datagrams over loopback, as a session does.
func quicPair(t *testing.T) (visitor, provider *quic.Conn) {
	t.Helper()
	srvTLS, cliTLS, err := tlsconf.Peer()
	if err != nil {
		t.Fatal(err)
	}
	qc := &quic.Config{EnableDatagrams: true, InitialPacketSize: 1400, DisablePathMTUDiscovery: true}
	ln, err := quic.ListenAddr("127.0.0.1:0", srvTLS, qc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	visitor, err = quic.DialAddr(ctx, ln.Addr().String(), cliTLS, qc)
	if err != nil {
		t.Fatal(err)
	}
	provider, err = ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { visitor.CloseWithError(0, ""); provider.CloseWithError(0, "") })
	return visitor, provider
}

// incoming sets f's taker to a channel (as a test reads it; a real taker writes to a socket).
func incoming(f Datagrams) <-chan []byte {
	ch := make(chan []byte, 16)
	f.Receive(func(b []byte) {
		select {
		case ch <- b:
		default:
		}
	})
	return ch
}

func recvWithin(t *testing.T, ch <-chan []byte, d time.Duration) ([]byte, bool) {
	t.Helper()
	select {
	case b := <-ch:
		return b, true
	case <-time.After(d):
		return nil, false
	}
}

func TestFlowDatagrams(t *testing.T) {
	vc, pc := quicPair(t)
	v, p := NewFlowDatagrams(vc), NewFlowDatagrams(pc)
	done := make(chan struct{}, 2)
	go func() { v.Run(vc.Context()); done <- struct{}{} }()
	go func() { p.Run(pc.Context()); done <- struct{}{} }()

	// A datagram that arrives before the provider registered its flow waits for it, and one
	// that cannot even name a flow is dropped without harm.
	vf := v.register(4)
	if err := vf.Send([]byte("early")); err != nil {
		t.Fatal(err)
	}
	if err := vc.SendDatagram(nil); err != nil {
		t.Fatal(err)
	}
	if err := vc.SendDatagram([]byte{0x40}); err != nil { // a two-byte varint cut short
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for p.dropped.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := p.dropped.Load(); got != 2 {
		t.Fatalf("%d malformed datagrams dropped, want 2", got)
	}
	pf := p.register(4)
	pIn := incoming(pf)
	if b, ok := recvWithin(t, pIn, 2*time.Second); !ok || string(b) != "early" {
		t.Fatalf("early datagram: %q, %v", b, ok)
	}
	// Both ways, and flows do not mix.
	other := v.register(8)
	p8 := p.register(8)
	vIn, p8In := incoming(vf), incoming(p8)
	if err := pf.Send([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	if err := other.Send([]byte("other flow")); err != nil {
		t.Fatal(err)
	}
	if b, ok := recvWithin(t, vIn, 2*time.Second); !ok || string(b) != "answer" {
		t.Fatalf("answer: %q, %v", b, ok)
	}
	if b, ok := recvWithin(t, p8In, 2*time.Second); !ok || string(b) != "other flow" {
		t.Fatalf("flow 8: %q, %v", b, ok)
	}
	// A datagram of a flow whose taker is not set yet waits for it (its socket is opening).
	v12, p12 := v.register(12), p.register(12)
	before := p.received.Load()
	if err := v12.Send([]byte("before the taker")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); p.received.Load() == before && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if b, ok := recvWithin(t, incoming(p12), 2*time.Second); !ok || string(b) != "before the taker" {
		t.Fatalf("datagram before the taker: %q, %v", b, ok)
	}
	// What the README promises: a VPN packet at MTU 1280 (WireGuard: 1312 bytes) is a datagram.
	if err := vf.Send(make([]byte, 1312)); err != nil {
		t.Fatalf("a 1312-byte datagram: %v", err)
	}
	if b, ok := recvWithin(t, pIn, 2*time.Second); !ok || len(b) != 1312 {
		t.Fatalf("the 1312-byte datagram arrived as %d bytes (%v)", len(b), ok)
	}
	// Too large for one packet: refused, so that the caller uses the stream.
	var tooLarge *quic.DatagramTooLargeError
	if err := vf.Send(make([]byte, 2000)); !errors.As(err, &tooLarge) {
		t.Fatalf("a 2000-byte datagram: %v, want DatagramTooLargeError", err)
	}
	// Datagrams for flows nobody registers are held within bounds, then dropped.
	stray := v.register(1 << 20)
	for range 3 * maxPendingDatagrams {
		stray.Send([]byte("stray"))
	}
	deadline = time.Now().Add(2 * time.Second)
	for p.dropped.Load() < 2+maxPendingDatagrams && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.mu.Lock()
	held := p.pending.Len()
	p.mu.Unlock()
	if held > maxPendingDatagrams {
		t.Fatalf("%d stray datagrams held, bound %d", held, maxPendingDatagrams)
	}
	// A closed flow takes no more.
	pf.close()
	vf.Send([]byte("after close"))
	if b, ok := recvWithin(t, pIn, 200*time.Millisecond); ok {
		t.Fatalf("closed flow received %.20q", b)
	}
	vc.CloseWithError(0, "done")
	for range 2 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("datagram readers did not stop when the connection closed")
		}
	}
}

// FuzzSplitFlowDatagram: any bytes a peer sends either fail to parse or split into an ID and a
// payload that encode back to the same bytes' payload under that ID.
func FuzzSplitFlowDatagram(f *testing.F) {
	f.Add([]byte{0x04, 'h', 'i'})
	f.Add([]byte{0x40})
	f.Add([]byte{0x7f, 0xff, 0})
	f.Add([]byte{0xc0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, payload, err := splitFlowDatagram(b)
		if err != nil {
			return
		}
		again, p2, err := splitFlowDatagram(appendFlowDatagram(nil, id, payload))
		if err != nil || again != id || !bytes.Equal(p2, payload) {
			t.Fatalf("%x: id %d payload %x; re-encoded: %d %x %v", b, id, payload, again, p2, err)
		}
		if len(payload) >= len(b) {
			t.Fatalf("%x: payload %x is not shorter than the datagram", b, payload)
		}
	})
}

// TestKeepaliveDatagram: a keepalive is big enough for a restarted peer's stateless reset,
// and the receiver drops it at once: it waits for no flow and counts as no datagram.
func TestKeepaliveDatagram(t *testing.T) {
	if n := len(keepaliveDatagram) + 1 + 4 + 1 + 16; n <= 43 {
		t.Fatalf("a keepalive's packet has about %d bytes, want more than quic-go's 43 for a stateless reset", n)
	}
	vc, pc := quicPair(t)
	v, p := NewFlowDatagrams(vc), NewFlowDatagrams(pc)
	go p.Run(pc.Context())
	for range 10 {
		if err := v.SendKeepalive(); err != nil {
			t.Fatal(err)
		}
	}
	// A flow datagram after them shows they were read.
	pf := p.register(4)
	pIn := incoming(pf)
	if err := v.register(4).Send([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if b, ok := recvWithin(t, pIn, 2*time.Second); !ok || string(b) != "after" {
		t.Fatalf("datagram after the keepalives: %q, %v", b, ok)
	}
	if sent, received, dropped := p.Counts(); received != 1 || dropped != 0 || sent != 0 {
		t.Errorf("receiver counted sent %d, received %d, dropped %d; want 0, 1, 0", sent, received, dropped)
	}
	p.mu.Lock()
	held := p.pending.Len()
	p.mu.Unlock()
	if held != 0 {
		t.Errorf("%d keepalives wait for a flow", held)
	}
}

// TestFlowDatagramsSlowTaker: a flow's taker that is slow for a while (a socket write held up on
// a busy machine) loses none of a burst of 600 datagrams, more than quic-go keeps received (128):
// they wait in FlowDatagrams' own bounded queue instead.
func TestFlowDatagramsSlowTaker(t *testing.T) {
	vc, pc := quicPair(t)
	v, p := NewFlowDatagrams(vc), NewFlowDatagrams(pc)
	go v.Run(vc.Context())
	go p.Run(pc.Context())
	vf, pf := v.register(4), p.register(4)
	const n = 600
	got := make(chan int, n)
	hold := make(chan struct{})
	pf.Receive(func(b []byte) {
		<-hold // the taker stalls until the whole burst was sent
		got <- len(b)
	})
	payload := make([]byte, 1000)
	for range n {
		if err := vf.Send(payload); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Microsecond) // a paced burst, as the sender's socket reads it
	}
	time.Sleep(200 * time.Millisecond) // all of it received while the taker is stalled
	close(hold)
	count := 0
	for deadline := time.After(5 * time.Second); count < n; {
		select {
		case <-got:
			count++
		case <-deadline:
			_, received, dropped := p.Counts()
			t.Fatalf("%d of %d datagrams reached the stalled taker (received %d, dropped %d)", count, n, received, dropped)
		}
	}
}
