package traversal

import (
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/nat"
)

// recorder is a Client and Host that counts what a session does in answer to a packet.
type recorder struct{ acts atomic.Int64 }

func (r *recorder) Send([]byte, netip.AddrPort) error   { r.acts.Add(1); return nil }
func (r *recorder) Listen() (Socket, error)             { return nil, errNoKey }
func (r *recorder) NAT() (nat.Behavior, netip.AddrPort) { return nat.Behavior{}, netip.AddrPort{} }
func (r *recorder) IPv6() bool                          { return false }
func (r *recorder) SetPath(*Path)                       { r.acts.Add(1) }
func (r *recorder) AddKnown(netip.AddrPort)             { r.acts.Add(1) }
func (r *recorder) Deliver([]byte, int)                 { r.acts.Add(1) }
func (r *recorder) Repunch()                            {}
func (r *recorder) SendRelay([]byte)                    { r.acts.Add(1) }

// FuzzHandleSTUN: whatever arrives on the client's socket or through the relay, a session
// never panics, and a packet without the session's integrity (anyone's but the peer's, or on
// the relay the relay's) makes it send, learn, lock or answer nothing.
func FuzzHandleSTUN(f *testing.F) {
	id := []byte("0123456789abcdef")
	key := []byte("probe key of the session")
	rec := &recorder{}
	e := NewEngine(rec)
	s := e.NewSession(SessionConfig{ID: id, Role: "provider", Key: key}, rec, Offer{})
	defer s.Close()
	// The peer's probes and answers, as seeds to mutate.
	peer := NewEngine(&recorder{}).NewSession(SessionConfig{ID: id, Role: "visitor", Key: key}, &recorder{}, Offer{})
	defer peer.Close()
	req, err := peer.request(nil, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(req.Raw, true)
	padded, err := peer.request(nil, 1200)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(padded.Raw, false)
	ans, err := peer.answer(req, netip.MustParseAddrPort("192.0.2.1:4000"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ans, true)
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42}, true)
	from := netip.MustParseAddrPort("198.51.100.7:5000")
	f.Fuzz(func(t *testing.T, data []byte, direct bool) {
		before := rec.acts.Load()
		if direct {
			e.HandleSTUN(data, from)
		} else {
			e.HandleRelayed(data)
		}
		// Direct probes carry the peers' key; relayed ones (the relay's MTU, which the relay
		// may forge as it may drop any packet) one from the session id.
		msg := &stun.Message{Raw: append([]byte(nil), data...)}
		authentic := msg.Decode() == nil && (direct && peer.authentic(msg) ||
			!direct && stun.NewShortTermIntegrity(peer.relayKey).Check(msg) == nil && stun.Fingerprint.Check(msg) == nil)
		if !authentic && rec.acts.Load() != before {
			t.Fatalf("a packet without the session's integrity made the session act: %x", data)
		}
	})
}
