package peer

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/internal/quicsock"
	"github.com/xp2p/xp2p/internal/wire"
)

// Birthday punching (see nat.BirthdayRole): the symmetric side ("hard") opens birthdaySockets
// extra sockets that all probe the peer's public address, each leaving a mapping on its NAT
// that lets that address in; the other side ("easy") probes birthdaySpray random ports of the
// symmetric NAT's address from its own socket. A probe that meets a mapping gets through, and
// the path runs on that extra socket from then on.
const (
	birthdaySockets    = 256
	birthdaySpray      = 1024
	birthdaySprayTick  = 128 // probes per punching step (every 100-250 ms)
	sideProbeInterval  = 250 * time.Millisecond
	birthdayMinPort    = 1024
	birthdayPortsRange = 65536 - birthdayMinPort
	// maxBirthdays bounds the attempts that hold extra sockets at once, per client (each holds
	// birthdaySockets descriptors for up to punchTimeout).
	maxBirthdays = 4
)

// sideSockets are the hard side's extra sockets for one attempt. Their readers belong to it;
// close stops and waits for them.
type sideSockets struct {
	socks   []*net.UDPConn
	wg      sync.WaitGroup
	once    sync.Once
	kept    *net.UDPConn
	mu      sync.Mutex
	release func() // gives the client's birthday slot back, once
}

// openSidesLocked opens the extra sockets and starts their readers (p.mu held). It returns
// false when the client already runs maxBirthdays of them.
func (p *puncher) openSidesLocked() bool {
	slots := p.s.m.c.birthdaySlots
	select {
	case slots <- struct{}{}:
	default:
		return false
	}
	var once sync.Once
	ss := &sideSockets{release: func() { once.Do(func() { <-slots }) }}
	for range birthdaySockets {
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			break // out of descriptors: fewer sockets, smaller odds
		}
		ss.socks = append(ss.socks, c)
	}
	for _, c := range ss.socks {
		ss.wg.Add(1)
		go func() { defer ss.wg.Done(); p.readSide(c) }()
	}
	p.sides = ss
	p.s.log.Info("birthday punching: probing from extra sockets", "sockets", len(ss.socks), "peer", p.peerPublic)
	return true
}

// keepOnly closes every extra socket but keep (without waiting: readers may be waiting for p.mu).
func (ss *sideSockets) keepOnly(keep *net.UDPConn) {
	ss.release()
	ss.mu.Lock()
	ss.kept = keep
	ss.mu.Unlock()
	quicsock.SetGRO(keep) // the path's packets now come in runs: see readSide
	for _, c := range ss.socks {
		if c != keep {
			c.Close()
		}
	}
}

// close closes them all and waits for the readers (p.mu must not be held).
func (ss *sideSockets) close() {
	ss.release()
	ss.once.Do(func() {
		for _, c := range ss.socks {
			c.Close()
		}
	})
	ss.wg.Wait()
}

// closeSides ends the attempt's extra sockets, keeping none (p.mu must not be held).
func (p *puncher) closeSides() {
	p.mu.Lock()
	ss := p.sides
	p.sides = nil
	p.mu.Unlock()
	if ss != nil {
		ss.close()
	}
}

// probeSidesLocked sends a probe from every extra socket to the peer's public address.
func (p *puncher) probeSidesLocked(now time.Time) {
	if p.sides == nil || !p.peerPublic.IsValid() || now.Sub(p.lastSideProbe) < sideProbeInterval {
		return
	}
	p.lastSideProbe = now
	msg, err := p.probeMessage()
	if err != nil {
		return
	}
	to := net.UDPAddrFromAddrPort(p.peerPublic)
	for _, c := range p.sides.socks {
		c.WriteToUDP(msg.Raw, to)
	}
}

// sprayLocked sends the next random-port probes to the symmetric NAT's address.
func (p *puncher) sprayLocked() {
	if !p.peerPublic.IsValid() || p.sprayed >= birthdaySpray {
		return
	}
	msg, err := p.probeMessage()
	if err != nil {
		return
	}
	// One transaction for the whole spray: an answer to it is as good as any (it proves the
	// peer), and 1024 entries would crowd the table of open transactions.
	if p.sprayTx == ([stun.TransactionIDSize]byte{}) {
		p.sprayTx = msg.TransactionID
	}
	msg, err = stun.Build(stun.NewTransactionIDSetter(p.sprayTx), stun.BindingRequest,
		stun.NewUsername(p.username), stun.NewShortTermIntegrity(p.key), stun.Fingerprint)
	if err != nil {
		return
	}
	ip := p.peerPublic.Addr()
	for range birthdaySprayTick {
		port := uint16(birthdayMinPort + rand.IntN(birthdayPortsRange))
		p.s.m.c.sock.WriteRaw(msg.Raw, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port)))
		p.sprayed++
	}
}

// probeMessage is an authenticated binding request of this session.
func (p *puncher) probeMessage() (*stun.Message, error) {
	return stun.Build(stun.TransactionID, stun.BindingRequest,
		stun.NewUsername(p.username), stun.NewShortTermIntegrity(p.key), stun.Fingerprint)
}

// readSide reads one extra socket: the peer's probes and answers, and once the path runs on
// this socket, its QUIC packets, fed into the client's socket as the session's (relay-framed,
// so that they reach the session's virtual address). The socket the path runs on reads with
// GRO (see keepOnly) and feeds a whole run of packets back in one GSO write, which the client's
// socket reads with GRO as one: a few system calls per 64 KiB instead of three per packet.
func (p *puncher) readSide(c *net.UDPConn) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, 128)
	var framed []byte // relay-framed QUIC packets of one read, to inject
	for {
		n, oobn, _, from, err := c.ReadMsgUDP(buf, oob)
		if err != nil {
			return
		}
		size := quicsock.GROSegmentSize(oob[:oobn])
		if size <= 0 || size >= n {
			size = n
		}
		framed = framed[:0]
		quicOK := p.s.path.via.Load() == c
		if quicOK {
			d := p.s.path.direct.Load()
			quicOK = d != nil && key(d) == key(from) // only the locked peer address talks QUIC here
		}
		frameSize := 0
		for off := 0; off < n; off += size {
			data := buf[off:min(off+size, n)]
			switch {
			case stun.IsMessage(data):
				p.handleSide(c, data, from)
			case len(data) > 0 && data[0]&0xC0 != 0 && quicOK:
				var hdr [wire.RelayHeaderLen]byte
				wire.PutRelayHeader(hdr[:], p.s.path.token)
				framed = append(append(framed, hdr[:]...), data...)
				if frameSize == 0 {
					frameSize = wire.RelayHeaderLen + len(data)
				}
			}
		}
		if len(framed) > 0 {
			p.s.path.lastRecv.Store(time.Now().UnixNano())
			p.s.m.c.injectSegments(framed, frameSize)
		}
	}
}

// handleSide takes an authenticated probe or answer of the peer on an extra socket: that
// socket's mapping meets the peer, so the path runs on it.
func (p *puncher) handleSide(c *net.UDPConn, data []byte, from *net.UDPAddr) {
	msg := &stun.Message{Raw: append([]byte(nil), data...)}
	if msg.Decode() != nil {
		return
	}
	var user stun.Username
	if user.GetFrom(msg) != nil {
		return
	}
	idHex, role, ok := strings.Cut(user.String(), ":")
	if !ok || idHex != p.s.idHex || role == p.s.role {
		return
	}
	if !p.authentic(msg) {
		return
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch msg.Type {
	case stun.BindingRequest:
		if resp, err := p.answer(msg, from); err == nil {
			c.WriteToUDP(resp, from)
		}
	case stun.BindingSuccess:
	default:
		return
	}
	if p.locked == nil && p.sides != nil {
		p.sides.keepOnly(c)
		p.retired = append(p.retired, p.sides)
		p.sides = nil
		p.lockViaLocked(from, c, now)
		// A triggered check through the socket found: the peer may have heard nothing from it
		// yet (its probe met our mapping first), and learns our address from this one.
		p.probeLocked(key(from), now)
	}
	if p.lockedVia == c {
		p.s.path.lastRecv.Store(now.UnixNano())
	}
}
