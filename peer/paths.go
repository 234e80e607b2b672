package peer

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/internal/holdq"
	"github.com/xp2p/xp2p/internal/quicsock"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/traversal"
)

// paths is the filter on the client's one UDP socket (see package quicsock). It gives every P2P
// session a virtual peer address and carries the session's QUIC packets to whichever real path
// is current: the locked direct address, or the server relay (UDP, or the TCP session when the
// client has no UDP). QUIC only ever sees the virtual address, so switching paths never touches
// the QUIC connection: streams survive, and the direct path keeps quic-go's GSO and batching.
//
// Why by hand: this is xp2p's own idea (magicsock-like), no library offers it for quic-go.
type paths struct {
	// servers are the UDP addresses of the client's servers: QUIC and relayed packets from them
	// are accepted.
	servers atomic.Pointer[map[netip.AddrPort]bool]
	// injector is the loopback source of packets fed back into the socket (TCP relay, held packets).
	injector atomic.Pointer[net.UDPAddr]
	// onSTUN handles probes and their answers (package traversal); from is invalid for those
	// that came through the relay.
	onSTUN func(data []byte, from netip.AddrPort)

	mu    sync.Mutex // serialises table writers
	table atomic.Pointer[pathTable]
	next  uint32 // last virtual address index handed out

	held heldPackets

	bufs sync.Pool
}

type pathTable struct {
	byVirtual map[netip.AddrPort]*path
	byToken   map[wire.RelayToken]*path
	byDirect  map[netip.AddrPort]*path
}

// path is the routing state of one P2P session.
type path struct {
	virtual *net.UDPAddr
	vkey    netip.AddrPort
	token   wire.RelayToken
	route   atomic.Pointer[relayRoute] // how relayed packets leave: the pairing server

	direct atomic.Pointer[net.UDPAddr] // nil: relayed
	// via is the socket the direct path runs on when it is not the client's own: one of the
	// extra sockets of birthday punching (nil: the client's socket).
	via atomic.Pointer[viaSocket]
	// act is the direct path's traffic, which traversal watches to see the path die.
	act        traversal.Activity
	relayBytes atomic.Int64 // bytes sent and received over the relay
	directByte atomic.Int64 // bytes sent and received on the direct path
}

// viaSocket holds the extra socket a direct path runs on.
type viaSocket struct{ traversal.Socket }

// relayRoute is how a session's relayed packets reach its server: over UDP to udp, or, for a
// client whose session to that server runs on TCP, through tcp.
type relayRoute struct {
	udp *net.UDPAddr
	tcp func(frame []byte) bool
}

// setServers replaces the set of server addresses.
func (t *paths) setServers(addrs []netip.AddrPort) {
	m := make(map[netip.AddrPort]bool, len(addrs))
	for _, a := range addrs {
		m[a] = true
	}
	t.servers.Store(&m)
}

func newPaths() *paths {
	p := &paths{}
	p.held.q = holdq.Queue[wire.RelayToken]{Max: 32, TTL: 2 * time.Second}
	p.table.Store(&pathTable{byVirtual: map[netip.AddrPort]*path{}, byToken: map[wire.RelayToken]*path{}, byDirect: map[netip.AddrPort]*path{}})
	p.bufs.New = func() any { b := make([]byte, 0, 32<<10); return &b }
	return p
}

// virtualNet is the first octet of virtual peer addresses: 240.0.0.0/8 is reserved and never
// routed, so a virtual address that escaped translation could not reach anybody.
const virtualNet = 240

func isVirtual(a *net.UDPAddr) bool {
	ip4 := a.IP.To4()
	return ip4 != nil && ip4[0] == virtualNet
}

func key(a *net.UDPAddr) netip.AddrPort {
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// add registers a session's path (relayed until a direct address is locked).
func (t *paths) add(token wire.RelayToken) *path {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	n := t.next
	v := &net.UDPAddr{IP: net.IPv4(virtualNet, byte(n>>16), byte(n>>8), byte(n)).To4(), Port: 1}
	p := &path{virtual: v, vkey: key(v), token: token}
	t.update(func(nt *pathTable) {
		nt.byVirtual[p.vkey] = p
		nt.byToken[token] = p
	})
	return p
}

// remove forgets a session's path.
func (t *paths) remove(p *path) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.update(func(nt *pathTable) {
		delete(nt.byVirtual, p.vkey)
		delete(nt.byToken, p.token)
		for k, v := range nt.byDirect {
			if v == p {
				delete(nt.byDirect, k)
			}
		}
	})
}

// addKnown maps an authenticated peer address to the session, so that QUIC packets from it are
// delivered as coming from the session's virtual address.
func (t *paths) addKnown(p *path, addr netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.update(func(nt *pathTable) { nt.byDirect[addr] = p })
}

// setDirect makes tp the session's path (nil goes back to the relay). Known addresses stay
// known: packets from them still reach the session. A path on an extra socket (birthday
// punching) gets its packets through that socket's reader instead (traversal.Host.Deliver).
func (t *paths) setDirect(p *path, tp *traversal.Path) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tp == nil {
		p.via.Store(nil)
		p.direct.Store(nil)
		return
	}
	addr := net.UDPAddrFromAddrPort(tp.Remote)
	if tp.Via != nil {
		p.via.Store(&viaSocket{tp.Via})
	} else {
		p.via.Store(nil)
		t.update(func(nt *pathTable) { nt.byDirect[key(addr)] = p })
	}
	p.act.Received(time.Now())
	p.direct.Store(addr)
}

// update applies fn to a copy of the table and publishes it (t.mu held).
func (t *paths) update(fn func(*pathTable)) {
	old := t.table.Load()
	nt := &pathTable{
		byVirtual: make(map[netip.AddrPort]*path, len(old.byVirtual)+1),
		byToken:   make(map[wire.RelayToken]*path, len(old.byToken)+1),
		byDirect:  make(map[netip.AddrPort]*path, len(old.byDirect)+1),
	}
	for k, v := range old.byVirtual {
		nt.byVirtual[k] = v
	}
	for k, v := range old.byToken {
		nt.byToken[k] = v
	}
	for k, v := range old.byDirect {
		nt.byDirect[k] = v
	}
	fn(nt)
	t.table.Store(nt)
}

func (t *paths) lookupVirtual(a *net.UDPAddr) *path { return t.table.Load().byVirtual[key(a)] }

func (t *paths) isServer(a *net.UDPAddr) bool {
	m := t.servers.Load()
	return m != nil && (*m)[key(a)]
}

func (t *paths) isInjector(a *net.UDPAddr) bool {
	s := t.injector.Load()
	return s != nil && s.Port == a.Port && a.IP.IsLoopback()
}

// Receive implements quicsock.Filter.
func (t *paths) Receive(data []byte, from *net.UDPAddr, _ []byte) ([]byte, net.Addr, bool) {
	if len(data) == 0 || from == nil {
		return nil, nil, true
	}
	b0 := data[0]
	if b0&0xC0 != 0 { // QUIC
		tab := t.table.Load()
		if len(tab.byDirect) > 0 {
			if p := tab.byDirect[key(from)]; p != nil {
				p.act.Received(time.Now())
				p.directByte.Add(int64(len(data)))
				return data, p.virtual, false
			}
		}
		if !t.isServer(from) {
			// Only the server and authenticated peers talk QUIC to this socket: a stranger's
			// handshake is dropped, and so is a peer's packet from an address it has not proved
			// (QUIC would otherwise migrate the connection off its virtual address).
			return nil, nil, true
		}
		return data, nil, false
	}
	if b0 == wire.RelayMagic {
		if !t.isServer(from) && !t.isInjector(from) {
			return nil, nil, true
		}
		tok, payload, ok := wire.ParseRelay(data)
		if !ok {
			return nil, nil, true
		}
		p := t.table.Load().byToken[tok]
		if p == nil {
			// The session may be a moment from being registered (its offer is still on the
			// control stream): hold the packet and feed it back then.
			t.held.hold(tok, data)
			return nil, nil, true
		}
		if len(payload) > 0 && payload[0]&0xC0 == 0 {
			// Not QUIC: the relay's path MTU probes and their answers (package traversal).
			if t.onSTUN != nil {
				t.onSTUN(payload, netip.AddrPort{})
			}
			return nil, nil, true
		}
		if p.via.Load() != nil && t.isInjector(from) {
			// Fed in by the reader of the extra socket the direct path runs on (birthday).
			p.directByte.Add(int64(len(payload)))
		} else {
			p.relayBytes.Add(int64(len(payload)))
		}
		return payload, p.virtual, false
	}
	if t.onSTUN != nil {
		t.onSTUN(data, key(from))
	}
	return nil, nil, true
}

// Send implements quicsock.Filter.
func (t *paths) Send(c *quicsock.Conn, b, oob []byte, segSize int, to *net.UDPAddr) (*net.UDPAddr, bool, error) {
	if !isVirtual(to) {
		return to, false, nil
	}
	p := t.lookupVirtual(to)
	if p == nil {
		return nil, true, nil // the session is gone: drop
	}
	size := len(b) // of each packet: a GSO run's segments are segSize bytes, the last may be shorter
	if segSize > 0 && segSize < size {
		size = segSize
	}
	if !p.act.Fits(size) {
		// Larger than a path of the session carries: quic-go's path MTU probe, lost to it, so
		// that its packets fit the relay and the direct path alike (see traversal's mtu.go).
		return nil, true, nil
	}
	if d := p.direct.Load(); d != nil {
		p.act.Sent(time.Now())
		p.directByte.Add(int64(len(b)))
		if via := p.via.Load(); via != nil {
			// Another socket (birthday-punched): QUIC's GSO run goes out as one write there
			// too. A failed write is a lost packet to QUIC.
			traversal.WriteRun(via, b, segSize, key(d))
			return nil, true, nil
		}
		return d, false, nil
	}
	p.relayBytes.Add(int64(len(b)))
	return nil, true, t.sendRelay(c, p, b, oob, segSize)
}

// sendRelay prefixes every packet (every GSO segment) with the session's relay header and
// sends it to the server: still as one GSO write on UDP, or frame by frame over TCP.
func (t *paths) sendRelay(c *quicsock.Conn, p *path, b, oob []byte, segSize int) error {
	if segSize <= 0 || segSize >= len(b) {
		segSize = len(b)
	}
	route := p.route.Load()
	if route == nil {
		return nil // no relay right now: QUIC will retransmit
	}
	if route.tcp != nil {
		for off := 0; off < len(b); off += segSize {
			seg := b[off:min(off+segSize, len(b))]
			frame := make([]byte, wire.RelayHeaderLen+len(seg))
			wire.PutRelayHeader(frame, p.token)
			copy(frame[wire.RelayHeaderLen:], seg)
			route.tcp(frame)
		}
		return nil
	}
	srv := route.udp
	bp := t.bufs.Get().(*[]byte)
	defer t.bufs.Put(bp)
	out := (*bp)[:0]
	for off := 0; off < len(b); off += segSize {
		seg := b[off:min(off+segSize, len(b))]
		var hdr [wire.RelayHeaderLen]byte
		wire.PutRelayHeader(hdr[:], p.token)
		out = append(out, hdr[:]...)
		out = append(out, seg...)
	}
	*bp = out
	if segSize < len(b) {
		oob = quicsock.WithSegmentSize(oob, segSize+wire.RelayHeaderLen)
	}
	// A send error on the relay is like a lost packet: QUIC recovers; reporting it would make
	// quic-go treat the socket as broken.
	c.WriteRaw(out, oob, srv)
	return nil
}

// sendRelayRaw sends b to the session's peer through the relay, with the session's header
// (traversal's probes of the relay's MTU).
func (t *paths) sendRelayRaw(c *quicsock.Conn, p *path, b []byte) {
	route := p.route.Load()
	if route == nil {
		return
	}
	frame := make([]byte, wire.RelayHeaderLen+len(b))
	wire.PutRelayHeader(frame, p.token)
	copy(frame[wire.RelayHeaderLen:], b)
	if route.tcp != nil {
		route.tcp(frame)
		return
	}
	c.WriteRaw(frame, nil, route.udp)
}

// heldPackets keeps a few relayed packets whose session is not registered yet, for a short time.
type heldPackets struct {
	mu sync.Mutex
	q  holdq.Queue[wire.RelayToken]
}

func (h *heldPackets) hold(tok wire.RelayToken, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.q.Hold(tok, append([]byte(nil), data...), time.Now()) // data is the socket's buffer
}

// take removes and returns the held packets of tok.
func (h *heldPackets) take(tok wire.RelayToken) [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.q.Take(tok)
}
