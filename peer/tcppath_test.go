package peer

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/nat"
	"github.com/xp2p/xp2p/traversal"
)

// noClient is a traversal client that never sends: the sessions of these tests do not punch.
type noClient struct{}

func (noClient) Send([]byte, netip.AddrPort) error   { return nil }
func (noClient) Listen() (traversal.Socket, error)   { return nil, errors.ErrUnsupported }
func (noClient) NAT() (nat.Behavior, netip.AddrPort) { return nat.Behavior{}, netip.AddrPort{} }
func (noClient) IPv6() bool                          { return false }

// TestPeerTCPAddr: this side connects to the LAN address a peer names for its punching port
// only when the peer is behind this side's own public address; a peer elsewhere that names one
// (its secretKey proved, but wanting more than the service: 192.168.1.1:80, 127.0.0.1:22) is
// reached at its public address instead, on the port it named.
func TestPeerTCPAddr(t *testing.T) {
	for _, tc := range []struct {
		name, ours, peer, offer, want string
	}{
		{"one NAT: its LAN address", "203.0.113.5:4000", "203.0.113.5", "192.168.1.20:5000", "192.168.1.20:5000"},
		{"elsewhere: a LAN address of ours is not connected to", "203.0.113.5:4000", "198.51.100.9", "192.168.1.1:80", "198.51.100.9:80"},
		{"elsewhere: nor our loopback", "203.0.113.5:4000", "198.51.100.9", "127.0.0.1:22", "198.51.100.9:22"},
		{"elsewhere: its public address stands", "203.0.113.5:4000", "198.51.100.9", "198.51.100.9:5000", "198.51.100.9:5000"},
		{"a public address it claims: the one the server saw", "203.0.113.5:4000", "198.51.100.9", "192.0.2.77:5000", "198.51.100.9:5000"},
		{"our public address unknown", "", "198.51.100.9", "10.0.0.3:5000", "198.51.100.9:5000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &p2pSession{link: &serverLink{}, peerIP: netip.MustParseAddr(tc.peer),
				punch: traversal.NewEngine(noClient{}).NewSession(traversal.SessionConfig{ID: make([]byte, 16), Role: wire.RoleVisitor}, nil, traversal.Offer{})}
			defer s.punch.Close()
			s.link.ctl.Store(&control{observed: tc.ours})
			got := s.peerTCPAddr(&wire.TCPPath{Addrs: []string{tc.offer}})
			if len(got) != 1 || got[0].String() != tc.want {
				t.Errorf("offer %s from %s (ours %s): %v, want %s", tc.offer, tc.peer, tc.ours, got, tc.want)
			}
		})
	}
}
