// Package vnet is an in-memory internet for testing NAT traversal without root, as Tailscale's
// tstest/natlab does: hosts with UDP sockets on a public segment or behind NATs, the NATs
// keeping real mapping and filtering state of the kinds xp2p must handle (the kinds package
// natlab builds with network namespaces and nftables), links with an MTU. Packets are
// delivered at once, in order, into bounded per-socket queues.
//
// Why by hand: the model is the point (a NAT's mapping and filtering rules, stated in a few
// lines each), and no library models NATs for Go tests.
package vnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a NAT behaviour (RFC 4787 terms).
type Kind int

// NAT kinds.
const (
	// Easy: endpoint-independent mapping with port preservation, address-and-port-dependent
	// filtering (Linux masquerade, most home routers).
	Easy Kind = iota
	// Restricted: endpoint-independent mapping, address-dependent filtering.
	Restricted
	// FullCone: endpoint-independent mapping and filtering.
	FullCone
	// Sym: a new random public port per destination, address-and-port-dependent filtering.
	Sym
	// SymSeq: symmetric, each new mapping on the next port (many cheap routers and CGNATs).
	SymSeq
	// NoUDP drops all outbound UDP.
	NoUDP
	// Firewall translates nothing (the hosts' addresses are public, as IPv6 homes have) but
	// lets in only what answers a flow from inside (address-and-port-dependent), as a home
	// router's stateful firewall does.
	Firewall
)

var kindNames = map[Kind]string{Easy: "easy", Restricted: "restricted", FullCone: "fullcone", Sym: "sym", SymSeq: "symseq", NoUDP: "noudp", Firewall: "firewall"}

func (k Kind) String() string { return kindNames[k] }

// ErrTooBig is what a socket's WriteTo returns for a packet larger than its host's link allows
// (the local EMSGSIZE). Larger than a link further on, a packet is dropped silently.
var ErrTooBig = errors.New("vnet: packet larger than the link MTU")

// Network is the public segment and everything attached to it.
type Network struct {
	mu    sync.Mutex
	wan   map[netip.Addr]router // public addresses: hosts on the segment, NATs' outside
	nats  []*NAT
	stats Stats
}

// Stats counts what the network did.
type Stats struct {
	Delivered, Dropped atomic.Int64
}

// router is what owns a public address.
type router interface {
	// inbound takes a packet from the public segment for dst.
	inbound(src, dst netip.AddrPort, b []byte)
}

// New makes an empty network.
func New() *Network { return &Network{wan: map[netip.Addr]router{}} }

// Stats are the network's counters.
func (n *Network) Stats() *Stats { return &n.stats }

// Host is a machine with UDP sockets.
type Host struct {
	net  *Network
	addr netip.Addr
	nat  *NAT // nil: on the public segment
	// MTU is the largest IP packet its link carries (0: unlimited); IP and UDP headers count.
	mtu atomic.Int32

	mu       sync.Mutex
	socks    map[uint16]*Conn
	nextPort uint16
}

// NAT is a router with one public address and a LAN behind it.
type NAT struct {
	net    *Network
	kind   Kind
	public netip.Addr
	// Hairpin lets LAN hosts reach each other through the public address.
	Hairpin bool
	// Timeout forgets mappings idle for that long (0: never).
	Timeout time.Duration
	mtu     atomic.Int32 // the largest IP packet the NAT's public link carries (0: unlimited)
	lanMTU  atomic.Int32 // the largest IP packet between hosts of its LAN (0: unlimited)

	mu      sync.Mutex
	lan     map[netip.Addr]*Host
	maps    map[mapKey]*mapping
	byPort  map[uint16]*mapping
	nextSeq uint16
}

type mapKey struct {
	internal netip.AddrPort
	dst      netip.AddrPort // zero for endpoint-independent mapping
}

type mapping struct {
	internal netip.AddrPort
	public   uint16
	sentTo   map[netip.AddrPort]bool
	sentAddr map[netip.Addr]bool
	last     time.Time
}

// Host attaches a host to the public segment at addr.
func (n *Network) Host(addr string) *Host {
	a := netip.MustParseAddr(addr)
	h := newHost(n, a, nil)
	n.mu.Lock()
	n.wan[a] = h
	n.mu.Unlock()
	return h
}

// NAT adds a NAT of kind with public address public to the segment.
func (n *Network) NAT(kind Kind, public string) *NAT {
	t := &NAT{net: n, kind: kind, public: netip.MustParseAddr(public), lan: map[netip.Addr]*Host{},
		maps: map[mapKey]*mapping{}, byPort: map[uint16]*mapping{}, nextSeq: 30000}
	n.mu.Lock()
	n.wan[t.public] = t
	n.nats = append(n.nats, t)
	n.mu.Unlock()
	return t
}

// Host attaches a host behind the NAT at addr (a private address; for a Firewall, a public one).
func (t *NAT) Host(addr string) *Host {
	a := netip.MustParseAddr(addr)
	h := newHost(t.net, a, t)
	t.mu.Lock()
	t.lan[a] = h
	t.mu.Unlock()
	if t.kind == Firewall {
		t.net.mu.Lock()
		t.net.wan[a] = t // the firewall routes its hosts' public addresses
		t.net.mu.Unlock()
	}
	return h
}

// SetMTU sets the largest IP packet the NAT's public link carries, both ways (0: unlimited).
// Larger packets are dropped without a word (no ICMP: a black hole).
func (t *NAT) SetMTU(mtu int) { t.mtu.Store(int32(mtu)) }

// SetLANMTU sets the largest IP packet between the hosts behind the NAT (0: unlimited), e.g. a
// Wi-Fi bridge or a VPN between them; silent drops as with SetMTU.
func (t *NAT) SetLANMTU(mtu int) { t.lanMTU.Store(int32(mtu)) }

func (t *NAT) tooBig(n int, dst netip.Addr) bool {
	mtu := int(t.mtu.Load())
	return mtu > 0 && n+headerLen(dst) > mtu
}

// Public is the NAT's public address.
func (t *NAT) Public() netip.Addr { return t.public }

// Kind is the NAT's behaviour.
func (t *NAT) Kind() Kind { return t.kind }

// Mappings is the number of mappings the NAT holds.
func (t *NAT) Mappings() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.maps)
}

// Flush forgets every mapping, as a router reboot does.
func (t *NAT) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.maps = map[mapKey]*mapping{}
	t.byPort = map[uint16]*mapping{}
}

func newHost(n *Network, a netip.Addr, t *NAT) *Host {
	return &Host{net: n, addr: a, nat: t, socks: map[uint16]*Conn{}, nextPort: 40000}
}

// Addr is the host's address.
func (h *Host) Addr() netip.Addr { return h.addr }

// Sockets is the number of sockets open on the host.
func (h *Host) Sockets() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.socks)
}

// SetMTU sets the largest IP packet the host's link carries (0: unlimited).
func (h *Host) SetMTU(mtu int) { h.mtu.Store(int32(mtu)) }

// ListenUDP opens a socket on port (0: a free one).
func (h *Host) ListenUDP(port uint16) (*Conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if port == 0 {
		for i := 0; i < 20000; i++ {
			h.nextPort++
			if h.nextPort < 40000 {
				h.nextPort = 40000
			}
			if h.socks[h.nextPort] == nil {
				port = h.nextPort
				break
			}
		}
		if port == 0 {
			return nil, errors.New("vnet: no free port")
		}
	}
	if h.socks[port] != nil {
		return nil, fmt.Errorf("vnet: port %d in use on %s", port, h.addr)
	}
	c := &Conn{host: h, local: netip.AddrPortFrom(h.addr, port), rx: make(chan packet, 1024), closed: make(chan struct{})}
	h.socks[port] = c
	return c, nil
}

// headerLen is the IP and UDP header of a packet between addresses of a's family.
func headerLen(a netip.Addr) int {
	if a.Is4() {
		return 28
	}
	return 48
}

// send carries a packet a socket of the host wrote.
func (h *Host) send(src, dst netip.AddrPort, b []byte) error {
	if mtu := int(h.mtu.Load()); mtu > 0 && len(b)+headerLen(dst.Addr()) > mtu {
		return ErrTooBig
	}
	if dst.Addr() == h.addr {
		h.deliver(src, dst, b)
		return nil
	}
	if t := h.nat; t != nil {
		t.outbound(src, dst, b)
		return nil
	}
	h.net.route(src, dst, b)
	return nil
}

func (h *Host) inbound(src, dst netip.AddrPort, b []byte) { h.deliver(src, dst, b) }

// deliver puts a packet into the queue of the socket on dst's port (dropped if none, or full).
func (h *Host) deliver(src, dst netip.AddrPort, b []byte) {
	if mtu := int(h.mtu.Load()); mtu > 0 && len(b)+headerLen(dst.Addr()) > mtu {
		h.net.stats.Dropped.Add(1)
		return
	}
	h.mu.Lock()
	c := h.socks[dst.Port()]
	h.mu.Unlock()
	if c == nil {
		h.net.stats.Dropped.Add(1)
		return
	}
	select {
	case c.rx <- packet{from: src, data: append([]byte(nil), b...)}:
		h.net.stats.Delivered.Add(1)
	default:
		h.net.stats.Dropped.Add(1)
	}
}

// route carries a packet across the public segment.
func (n *Network) route(src, dst netip.AddrPort, b []byte) {
	n.mu.Lock()
	r := n.wan[dst.Addr()]
	n.mu.Unlock()
	if r == nil {
		n.stats.Dropped.Add(1)
		return
	}
	r.inbound(src, dst, b)
}

// outbound translates a packet from the LAN and sends it on.
func (t *NAT) outbound(src, dst netip.AddrPort, b []byte) {
	t.mu.Lock()
	if lh := t.lan[dst.Addr()]; lh != nil {
		t.mu.Unlock()
		if mtu := int(t.lanMTU.Load()); mtu > 0 && len(b)+headerLen(dst.Addr()) > mtu {
			t.net.stats.Dropped.Add(1)
			return
		}
		lh.deliver(src, dst, b) // on the LAN: no translation
		return
	}
	if t.kind == NoUDP || (t.tooBig(len(b), dst.Addr())) {
		t.mu.Unlock()
		t.net.stats.Dropped.Add(1)
		return
	}
	now := time.Now()
	t.expireLocked(now)
	k := mapKey{internal: src}
	if t.kind == Sym || t.kind == SymSeq {
		k.dst = dst
	}
	m := t.maps[k]
	if m == nil {
		m = &mapping{internal: src, sentTo: map[netip.AddrPort]bool{}, sentAddr: map[netip.Addr]bool{}}
		m.public = t.allocLocked(src.Port())
		t.maps[k] = m
		t.byPort[m.public] = m
	}
	m.sentTo[dst] = true
	m.sentAddr[dst.Addr()] = true
	m.last = now
	pub := netip.AddrPortFrom(t.public, m.public)
	if t.kind == Firewall {
		pub = src
	}
	t.mu.Unlock()
	if dst.Addr() == t.public {
		if t.Hairpin {
			t.inbound(pub, dst, b)
		}
		return
	}
	t.net.route(pub, dst, b)
}

// allocLocked picks the public port of a new mapping.
func (t *NAT) allocLocked(local uint16) uint16 {
	switch t.kind {
	case Firewall:
		return local
	case Easy, Restricted, FullCone:
		if t.byPort[local] == nil {
			return local // port preservation
		}
	case SymSeq:
		for range 65536 {
			p := t.nextSeq
			t.nextSeq++
			if t.nextSeq == 0 {
				t.nextSeq = 1024
			}
			if t.byPort[p] == nil {
				return p
			}
		}
	}
	for {
		p := uint16(1024 + rand.IntN(65536-1024))
		if t.byPort[p] == nil {
			return p
		}
	}
}

// inbound takes a packet from outside and lets it in if a mapping and the filter allow.
func (t *NAT) inbound(src, dst netip.AddrPort, b []byte) {
	if t.tooBig(len(b), dst.Addr()) {
		t.net.stats.Dropped.Add(1)
		return
	}
	t.mu.Lock()
	now := time.Now()
	t.expireLocked(now)
	var m *mapping
	var host *Host
	if t.kind == Firewall {
		host = t.lan[dst.Addr()]
		if mm := t.maps[mapKey{internal: dst}]; mm != nil {
			m = mm
		}
	} else if dst.Addr() == t.public {
		m = t.byPort[dst.Port()]
		if m != nil {
			host = t.lan[m.internal.Addr()]
		}
	}
	allowed := m != nil && host != nil
	if allowed {
		switch t.kind {
		case FullCone:
		case Restricted:
			allowed = m.sentAddr[src.Addr()]
		default:
			allowed = m.sentTo[src]
		}
	}
	if allowed {
		m.last = now
	}
	var to netip.AddrPort
	if m != nil {
		to = m.internal
	}
	t.mu.Unlock()
	if !allowed {
		t.net.stats.Dropped.Add(1)
		return
	}
	host.deliver(src, to, b)
}

func (t *NAT) expireLocked(now time.Time) {
	if t.Timeout <= 0 {
		return
	}
	for k, m := range t.maps {
		if now.Sub(m.last) > t.Timeout {
			delete(t.maps, k)
			delete(t.byPort, m.public)
		}
	}
}

// Conn is a UDP socket of a host.
type Conn struct {
	host      *Host
	local     netip.AddrPort
	rx        chan packet
	closed    chan struct{}
	closeOnce sync.Once
}

type packet struct {
	from netip.AddrPort
	data []byte
}

// ErrClosed is returned by a closed socket.
var ErrClosed = errors.New("vnet: socket closed")

// WriteTo sends b to to.
func (c *Conn) WriteTo(b []byte, to netip.AddrPort) error {
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	return c.host.send(c.local, netip.AddrPortFrom(to.Addr().Unmap(), to.Port()), b)
}

// ReadFrom waits for the next packet (until the socket closes).
func (c *Conn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case p := <-c.rx:
		return copy(b, p.data), p.from, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, ErrClosed
	}
}

// LocalAddr is the socket's address on its host.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Close closes the socket; its port is free again.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.host.mu.Lock()
		if c.host.socks[c.local.Port()] == c {
			delete(c.host.socks, c.local.Port())
		}
		c.host.mu.Unlock()
	})
	return nil
}
