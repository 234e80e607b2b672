package relay

import (
	"crypto/rand"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/xp2p/xp2p/internal/wire"
)

// Endpoint is a client as the packet relay sees it.
type Endpoint interface {
	// RelayUDPAddr is the client's current UDP address (that of its QUIC session to the
	// server), or nil when the client reaches the server over TCP only.
	RelayUDPAddr() *net.UDPAddr
	// SendRelayFrame queues a relayed packet (header included) on the client's TCP relay stream;
	// it reports false if the packet had to be dropped.
	SendRelayFrame(pkt []byte) bool
}

// PacketRelay forwards the packets of P2P sessions that have no direct path: what one side sends
// to the server with its token goes to the other side with the other side's token. It never
// looks past the header: the payload is the peers' end-to-end encrypted QUIC.
type PacketRelay struct {
	// Send writes a packet on the server's UDP socket.
	Send func(pkt []byte, to *net.UDPAddr) error
	// SendSegments writes packets of equal size (the last may be shorter) to one address, as
	// one GSO write where possible.
	SendSegments func(pkts [][]byte, to *net.UDPAddr) error
	// BytesPerSecond, if positive, caps each direction of each session.
	BytesPerSecond int64

	mu   sync.Mutex
	legs atomic.Pointer[map[wire.RelayToken]*Leg] // copy-on-write: read per packet without locks

	// queue holds the forwards of the receive batch being read; only the socket's read
	// goroutine (HandleUDP, Flush) touches it.
	queue []forward
	segs  [][]byte
}

type forward struct {
	pkt []byte
	to  *net.UDPAddr
}

// Leg is one side of a relayed session.
type Leg struct {
	Token wire.RelayToken
	owner Endpoint
	peer  *Leg
	lim   *rate.Limiter

	Packets atomic.Int64
	Bytes   atomic.Int64
	Dropped atomic.Int64
	last    atomic.Int64 // unix nanos of the last packet from this side
}

// LastActive is when this side last sent a relayed packet.
func (l *Leg) LastActive() time.Time { return time.Unix(0, l.last.Load()) }

// RelaySession is the pair of legs of one P2P session.
type RelaySession struct {
	Visitor, Provider *Leg
}

// NewSession creates the relay state of a session between two clients.
func (r *PacketRelay) NewSession(visitor, provider Endpoint) *RelaySession {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snapshot()
	v := &Leg{owner: visitor, Token: r.freshToken(old)}
	p := &Leg{owner: provider, Token: r.freshToken(old)}
	for p.Token == v.Token {
		p.Token = r.freshToken(old)
	}
	v.peer, p.peer = p, v
	if r.BytesPerSecond > 0 {
		burst := int(max(r.BytesPerSecond/10, 256<<10))
		v.lim = rate.NewLimiter(rate.Limit(r.BytesPerSecond), burst)
		p.lim = rate.NewLimiter(rate.Limit(r.BytesPerSecond), burst)
	}
	next := make(map[wire.RelayToken]*Leg, len(old)+2)
	for k, l := range old {
		next[k] = l
	}
	next[v.Token], next[p.Token] = v, p
	r.legs.Store(&next)
	return &RelaySession{Visitor: v, Provider: p}
}

// Remove forgets a session; its tokens stop working at once.
func (r *PacketRelay) Remove(s *RelaySession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snapshot()
	next := make(map[wire.RelayToken]*Leg, len(old))
	for k, l := range old {
		if l != s.Visitor && l != s.Provider {
			next[k] = l
		}
	}
	r.legs.Store(&next)
}

// Sessions returns the number of relayed sessions.
func (r *PacketRelay) Sessions() int { return len(r.snapshot()) / 2 }

func (r *PacketRelay) snapshot() map[wire.RelayToken]*Leg {
	if m := r.legs.Load(); m != nil {
		return *m
	}
	return nil
}

func (r *PacketRelay) freshToken(taken map[wire.RelayToken]*Leg) wire.RelayToken {
	for {
		var t wire.RelayToken
		rand.Read(t[:])
		if _, dup := taken[t]; !dup {
			return t
		}
	}
}

// HandleUDP takes a relayed packet that arrived on the server's UDP socket, to be forwarded at
// the next Flush (pkt must stay untouched until then). The packet must come from the address of
// the token's owner; anything else is dropped. pkt is modified in place.
func (r *PacketRelay) HandleUDP(pkt []byte, from *net.UDPAddr) {
	tok, _, ok := wire.ParseRelay(pkt)
	if !ok {
		return
	}
	leg := r.snapshot()[tok]
	if leg == nil {
		return
	}
	owner := leg.owner.RelayUDPAddr()
	if owner == nil || !sameAddr(owner, from) {
		leg.Dropped.Add(1)
		return
	}
	r.forward(leg, pkt, true)
}

// Flush sends the packets HandleUDP took since the last Flush. Runs of packets to one address,
// all of one size but the last, go out as one GSO write: one system call instead of one per
// packet is what lets a small server relay at line rate.
func (r *PacketRelay) Flush() {
	q := r.queue
	for i := 0; i < len(q); {
		size := len(q[i].pkt)
		total := size
		j := i + 1
		for j < len(q) && j-i < 64 && len(q[j-1].pkt) == size && len(q[j].pkt) <= size &&
			total+len(q[j].pkt) <= 65000 && sameAddr(q[j].to, q[i].to) {
			total += len(q[j].pkt)
			j++
		}
		segs := r.segs[:0]
		for k := i; k < j; k++ {
			segs = append(segs, q[k].pkt)
		}
		r.SendSegments(segs, q[i].to)
		clear(segs)
		r.segs = segs[:0]
		i = j
	}
	clear(q)
	r.queue = q[:0]
}

// HandleFrame forwards a relayed packet that arrived on a TCP relay stream of from. pkt is
// modified in place.
func (r *PacketRelay) HandleFrame(pkt []byte, from Endpoint) {
	tok, _, ok := wire.ParseRelay(pkt)
	if !ok {
		return
	}
	leg := r.snapshot()[tok]
	if leg == nil || leg.owner != from {
		return
	}
	r.forward(leg, pkt, false)
}

// forward sends (or, when queue is set, queues for Flush) a packet to the leg's peer.
func (r *PacketRelay) forward(leg *Leg, pkt []byte, queue bool) {
	leg.last.Store(time.Now().UnixNano())
	if leg.lim != nil && !leg.lim.AllowN(time.Now(), len(pkt)) {
		leg.Dropped.Add(1)
		return
	}
	peer := leg.peer
	wire.PutRelayHeader(pkt, peer.Token)
	sent := false
	if addr := peer.owner.RelayUDPAddr(); addr != nil {
		if queue {
			r.queue = append(r.queue, forward{pkt: pkt, to: addr})
			sent = true
		} else {
			sent = r.Send(pkt, addr) == nil
		}
	} else {
		sent = peer.owner.SendRelayFrame(append([]byte(nil), pkt...))
	}
	if !sent {
		leg.Dropped.Add(1)
		return
	}
	leg.Packets.Add(1)
	leg.Bytes.Add(int64(len(pkt) - wire.RelayHeaderLen))
}

func sameAddr(a, b *net.UDPAddr) bool {
	if a.Port != b.Port {
		return false
	}
	aa, ok1 := netip.AddrFromSlice(a.IP)
	bb, ok2 := netip.AddrFromSlice(b.IP)
	return ok1 && ok2 && aa.Unmap() == bb.Unmap()
}
