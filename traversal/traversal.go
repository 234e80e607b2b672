// Package traversal finds and keeps a direct UDP path between the two clients of a P2P session.
// It probes the peer's candidates with authenticated STUN binding requests, answers the peer's
// probes, runs the strategies the two NATs call for (plan.go: a table of both NATs, as frp's
// nathole keeps one: port prediction, birthday punching), locks the first path that answers,
// keeps its NAT mappings alive and notices when it dies.
//
// It knows nothing of QUIC, the server or the client's socket filter: it reaches the client
// through two small interfaces, Client (write from the socket, open extra sockets, our NAT) and
// Host (set the session's path, let an address in, deliver a packet, ask the server to repunch).
// So the strategies run as well against the in-memory NAT model of package internal/vnet (tests
// without root) as against the real sockets of the client and the NAT lab.
package traversal

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/internal/quicsock"
	"github.com/xp2p/xp2p/nat"
)

// Client is what traversal needs of the client process that runs the sessions.
type Client interface {
	// Send writes b from the client's socket to to, beside QUIC (it must not block for long).
	Send(b []byte, to netip.AddrPort) error
	// Listen opens an extra UDP socket (the hard side of birthday punching).
	Listen() (Socket, error)
	// NAT is what the client last measured of its NAT (zero: unknown) and the public address
	// its router maps to the socket (invalid: none).
	NAT() (nat.Behavior, netip.AddrPort)
	// IPv6 reports whether the client's socket reaches IPv6 peers (it has global IPv6).
	IPv6() bool
}

// Host is what a session needs of its owner in the client.
type Host interface {
	// SetPath routes the session's traffic over p (nil: back to the relay). It is called with
	// the session's lock held and must not call back into the session.
	SetPath(p *Path)
	// AddKnown lets the peer's packets from addr (proven by an authenticated probe) reach the
	// session before, or without, addr being the path.
	AddKnown(addr netip.AddrPort)
	// Deliver hands the session a run of the peer's packets that arrived on an extra socket the
	// path runs on (birthday punching): segSize bytes each, the last may be shorter. run is only
	// valid during the call.
	Deliver(run []byte, segSize int)
	// Repunch asks the server to send both sides fresh candidates, so that they probe together.
	Repunch()
	// SendRelay sends b to the peer through the server's relay (with the session's relay
	// header), as the session's QUIC packets go while it has no direct path.
	SendRelay(b []byte)
}

// Socket is a UDP socket: the client's extra sockets (ListenUDP), or a virtual one in tests.
type Socket interface {
	WriteTo(b []byte, to netip.AddrPort) error
	ReadFrom(b []byte) (int, netip.AddrPort, error)
	LocalAddr() netip.AddrPort
	Close() error
}

// Path is a direct path the session locked.
type Path struct {
	Remote netip.AddrPort // the peer's address
	Kind   nat.Kind       // the kind of candidate that answered
	// Via is the extra socket the path runs on (nil: the client's socket).
	Via Socket
	// Moved says the session took this path because the one before stopped answering after a
	// side's network changed: what else led to the peer's old address (a TCP path) is gone too.
	Moved bool
}

// Activity is what the session's paths carry: when the direct path last carried packets each
// way, and how large a packet each path takes (mtu.go). The client's socket filter updates it
// for every QUIC packet of the session and asks it whether a packet fits (Fits); the session
// reads it to notice a path that died, and updates it for the answers to its probes.
type Activity struct {
	recv, send atomic.Int64 // unix nanoseconds
	// unanswered is when the session began sending on the path without hearing from it since
	// (0: it heard from it after its last send): a path is suspect from how long that lasts,
	// not from how long an idle session was quiet before it sent again.
	unanswered atomic.Int64
	// relayMTU and directMTU are the largest QUIC packets the relay and the locked direct path
	// were measured to carry (0: not measured); largest is the largest the session sent.
	relayMTU, directMTU, largest atomic.Int32
}

// Received records a packet from the path at t.
func (a *Activity) Received(t time.Time) {
	a.recv.Store(t.UnixNano())
	if a.unanswered.Load() != 0 { // most packets find it 0: no write to share the line
		a.unanswered.Store(0)
	}
}

// Sent records a packet sent on the path at t.
func (a *Activity) Sent(t time.Time) {
	a.send.Store(t.UnixNano())
	if a.unanswered.Load() == 0 {
		a.unanswered.CompareAndSwap(0, t.UnixNano())
	}
}

// Unanswered is how long the session has been sending on the path without hearing from it
// (0: it heard from it since its last send).
func (a *Activity) Unanswered(now time.Time) time.Duration {
	if u := a.unanswered.Load(); u != 0 {
		return now.Sub(time.Unix(0, u))
	}
	return 0
}

// LastReceived and LastSent are the last times recorded.
func (a *Activity) LastReceived() time.Time { return time.Unix(0, a.recv.Load()) }
func (a *Activity) LastSent() time.Time     { return time.Unix(0, a.send.Load()) }

// Offer is what the server tells a session about its peer: candidates and NAT.
type Offer struct {
	Public netip.AddrPort // the peer's socket as the server saw it (invalid: over TCP)
	// PublicAlt is the peer's socket as the server saw it in the other address family.
	PublicAlt netip.AddrPort
	Private   []netip.AddrPort // its LAN addresses
	Mapped    netip.AddrPort   // its router's port mapping (invalid: none)
	NAT       nat.Behavior     // its NAT as it measured it (zero: unknown)
}

// public4 is the peer's public IPv4 address: the one behind its NAT, which the NAT
// strategies (prediction, birthday punching) work on.
func (o Offer) public4() netip.AddrPort {
	for _, a := range []netip.AddrPort{o.Public, o.PublicAlt} {
		if a.IsValid() && a.Addr().Unmap().Is4() {
			return unmap(a)
		}
	}
	return netip.AddrPort{}
}

// hasIPv6 reports whether the offer names an IPv6 candidate of the peer.
func (o Offer) hasIPv6() bool {
	for _, a := range append([]netip.AddrPort{o.Public, o.PublicAlt}, o.Private...) {
		if a.IsValid() && a.Addr().Unmap().Is6() && a.Addr().IsGlobalUnicast() {
			return true
		}
	}
	return false
}

// runSocket is a Socket that reads and writes runs of equal-size packets in one system call
// (UDP GRO and GSO on Linux): a path on an extra socket then moves as fast as one on the
// client's own (a few system calls per 64 KiB instead of one or three per packet).
type runSocket interface {
	Socket
	// coalesce asks the system to hand received runs over as one (GRO).
	coalesce()
	// readRun reads a datagram or a run of them, segSize bytes each (the last may be shorter).
	readRun(b []byte) (n, segSize int, from netip.AddrPort, err error)
	writeRun(b []byte, segSize int, to netip.AddrPort) error
}

// WriteRun sends b, packets of segSize bytes each (the last may be shorter), to to from s: in
// one GSO write where s and the system allow it, else packet by packet.
func WriteRun(s Socket, b []byte, segSize int, to netip.AddrPort) error {
	if rs, ok := s.(runSocket); ok {
		return rs.writeRun(b, segSize, to)
	}
	if segSize <= 0 || segSize >= len(b) {
		segSize = len(b)
	}
	var first error
	for off := 0; off < len(b); off += segSize {
		if err := s.WriteTo(b[off:min(off+segSize, len(b))], to); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// udpSocket is a Socket on a real *net.UDPConn.
type udpSocket struct {
	c   *net.UDPConn
	oob []byte // readRun's control messages; one reader per socket
}

// ListenUDP opens a real UDP socket of network ("udp", "udp4" or "udp6") on an ephemeral port.
func ListenUDP(network string) (Socket, error) {
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, err
	}
	// As on the client's own socket (quic-go sets it there): probes of a size measure the path.
	quicsock.SetDontFragment(c)
	return &udpSocket{c: c, oob: make([]byte, 128)}, nil
}

func (s *udpSocket) WriteTo(b []byte, to netip.AddrPort) error {
	_, err := s.c.WriteToUDPAddrPort(b, to)
	return err
}

func (s *udpSocket) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, from, err := s.c.ReadFromUDPAddrPort(b)
	return n, unmap(from), err
}

func (s *udpSocket) LocalAddr() netip.AddrPort {
	return unmap(s.c.LocalAddr().(*net.UDPAddr).AddrPort())
}

func (s *udpSocket) Close() error { return s.c.Close() }

func (s *udpSocket) coalesce() { quicsock.SetGRO(s.c) }

func (s *udpSocket) readRun(b []byte) (int, int, netip.AddrPort, error) {
	n, oobn, _, from, err := s.c.ReadMsgUDPAddrPort(b, s.oob)
	if err != nil {
		return 0, 0, netip.AddrPort{}, err
	}
	size := quicsock.GROSegmentSize(s.oob[:oobn])
	if size <= 0 || size >= n {
		size = n
	}
	return n, size, unmap(from), nil
}

func (s *udpSocket) writeRun(b []byte, segSize int, to netip.AddrPort) error {
	return quicsock.WriteSegmented(s.c, b, segSize, net.UDPAddrFromAddrPort(to))
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
