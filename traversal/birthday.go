package traversal

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/nat"
)

// Birthday punching, for a random-port symmetric NAT facing a port-restricted one (plan.go):
// the symmetric side ("hard") opens birthdaySockets extra sockets that all probe the peer's
// public address, each leaving a mapping on its NAT that lets that address in; the other side
// ("easy") probes birthdaySpray random ports of the symmetric NAT's address from its own
// socket. A probe that meets a mapping gets through (1-(1-256/64512)^1024 ≈ 98%, as frp's xtcp
// counts), and the path runs on that extra socket from then on.
const (
	birthdaySockets   = 256
	birthdaySpray     = 1024
	birthdaySprayTick = 128 // probes per punching step (every 100-250 ms)
	// birthdayRespray is the pause before the next round of birthdaySpray probes, for as long
	// as the attempt lasts: a round that went out before the hard side's mappings existed (its
	// sockets open when it has measured its NAT, which may come later than ours) meets none.
	birthdayRespray    = 2 * time.Second
	sideProbeInterval  = 250 * time.Millisecond
	birthdayMinPort    = 1024
	birthdayPortsRange = 65536 - birthdayMinPort
	// maxBirthdays bounds the attempts that hold extra sockets at once, per client (each holds
	// birthdaySockets descriptors for up to punchTimeout).
	maxBirthdays = 4
)

// birthdayHard is the symmetric side: many sockets, each probing the peer's public address.
type birthdayHard struct {
	s       *Session
	sides   *sideSockets   // this attempt's
	retired []*sideSockets // earlier attempts', waited for when the session ends
	skipped bool           // this attempt goes without (no slot free)
	last    time.Time      // last probe round
}

// sideSockets are the extra sockets of one attempt. Their readers belong to it; close stops and
// waits for them.
type sideSockets struct {
	socks   []Socket
	wg      sync.WaitGroup
	once    sync.Once
	release func() // gives the client's birthday slot back, once
}

func (b *birthdayHard) step(now time.Time) {
	s := b.s
	if !s.peerPublic.IsValid() {
		return
	}
	if b.sides == nil && !b.skipped && !b.open() {
		b.skipped = true
		s.log.Info("birthday punching skipped: the client runs as many as it may", "max", maxBirthdays)
	}
	if b.sides == nil || now.Sub(b.last) < sideProbeInterval {
		return
	}
	b.last = now
	msg, err := s.request(nil, 0)
	if err != nil {
		return
	}
	// One transaction for the round: the answer to any socket's probe proves the peer.
	s.trackLocked(msg.TransactionID, sentProbe{at: now})
	for _, c := range b.sides.socks {
		c.WriteTo(msg.Raw, s.peerPublic)
	}
}

// open opens the extra sockets and starts their readers; false when the client already runs
// maxBirthdays of them.
func (b *birthdayHard) open() bool {
	s := b.s
	release, ok := s.e.takeBirthdaySlot()
	if !ok {
		return false
	}
	ss := &sideSockets{release: release}
	for range birthdaySockets {
		c, err := s.e.client.Listen()
		if err != nil {
			break // out of descriptors: fewer sockets, smaller odds
		}
		ss.socks = append(ss.socks, c)
	}
	for _, c := range ss.socks {
		ss.wg.Add(1)
		go func() { defer ss.wg.Done(); b.read(c) }()
	}
	b.sides = ss
	s.log.Info("birthday punching: probing from extra sockets", "sockets", len(ss.socks), "peer", s.peerPublic)
	return true
}

func (b *birthdayHard) endAttempt() {
	b.skipped = false
	if b.sides == nil {
		return
	}
	var keep Socket
	if p := b.s.path; p != nil {
		keep = p.Via
	}
	b.sides.keepOnly(keep)
	b.retired = append(b.retired, b.sides)
	b.sides = nil
}

func (b *birthdayHard) close() {
	b.s.mu.Lock()
	all := b.retired
	b.retired = nil
	b.s.mu.Unlock()
	for _, ss := range all {
		ss.close()
	}
}

// keepOnly closes every extra socket but keep (without waiting: readers may be waiting for the
// session's lock).
func (ss *sideSockets) keepOnly(keep Socket) {
	ss.release()
	if rs, ok := keep.(runSocket); ok {
		rs.coalesce() // the path's packets now come in runs: see read
	}
	for _, c := range ss.socks {
		if c != keep {
			c.Close()
		}
	}
}

// close closes them all and waits for the readers (the session's lock must not be held).
func (ss *sideSockets) close() {
	ss.release()
	ss.once.Do(func() {
		for _, c := range ss.socks {
			c.Close()
		}
	})
	ss.wg.Wait()
}

// read reads one extra socket: the peer's probes and answers, and once the path runs on this
// socket, its packets for the session. The socket the path runs on reads runs of packets (GRO,
// see keepOnly) and hands each run over in one Deliver, which the client feeds back into its
// own socket as one GSO write.
func (b *birthdayHard) read(c Socket) {
	s := b.s
	rs, runs := c.(runSocket)
	buf := make([]byte, 64<<10)
	for {
		var n, size int
		var from netip.AddrPort
		var err error
		if runs {
			n, size, from, err = rs.readRun(buf)
		} else {
			n, from, err = c.ReadFrom(buf)
			size = n
		}
		if err != nil {
			return
		}
		p := s.cur.Load()
		ours := p != nil && p.Via == c && p.Remote == from // only the locked peer talks here
		start, end := -1, 0                                // the run of the session's packets in buf
		for off := 0; off < n && size > 0; off += size {
			data := buf[off:min(off+size, n)]
			if stun.IsMessage(data) {
				msg, id, role, ok := parseProbe(data)
				if ok && id == s.idHex && role != s.cfg.Role && s.authentic(msg) {
					b.handle(c, msg, from)
				}
				continue
			}
			if ours && data[0]&0xC0 != 0 && (start < 0 || off == end) { // QUIC's first byte
				if start < 0 {
					start = off
				}
				end = off + len(data)
			}
		}
		if start >= 0 {
			s.cfg.Activity.Received(time.Now())
			s.host.Deliver(buf[start:end], size)
		}
	}
}

// handle takes an authenticated probe or answer of the peer on an extra socket: that socket's
// mapping meets the peer, so the path runs on it.
func (b *birthdayHard) handle(c Socket, msg *stun.Message, from netip.AddrPort) {
	s := b.s
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	onPath := s.path != nil && s.path.Via == c && s.path.Remote == from
	switch msg.Type {
	case stun.BindingRequest:
		if resp, err := s.answer(msg, from); err == nil {
			c.WriteTo(resp, from)
		}
	case stun.BindingSuccess:
		if onPath && s.directMTU != nil && s.directMTU.answeredLocked(s, msg.TransactionID) {
			s.cfg.Activity.Received(now)
			return
		}
		if !s.takesLocked(msg.TransactionID) {
			return // not an answer to a probe of ours (a replay)
		}
		if onPath {
			s.cfg.Activity.Received(now)
			if sent := s.txs[msg.TransactionID]; sent.to == from {
				s.heardLocked(from, now.Sub(sent.at), sent.size, now)
			}
		}
	default:
		return
	}
	if s.path == nil && b.sides != nil {
		b.sides.keepOnly(c)
		b.retired = append(b.retired, b.sides)
		b.sides = nil
		s.lockLocked(&Path{Remote: from, Kind: nat.KindBirthday, Via: c}, now)
		// A triggered check through the socket found: the peer may have heard nothing from it
		// yet (its probe met our mapping first), and learns our address from this one.
		s.probeLocked(from, now)
	}
}

// birthdayEasy is the other side: random ports of the symmetric NAT's address, from our socket.
type birthdayEasy struct {
	s       *Session
	sprayed int                          // probes of this round
	done    time.Time                    // when the last round ended
	tx      [stun.TransactionIDSize]byte // one transaction for the whole attempt
	msg     []byte
}

func (b *birthdayEasy) step(now time.Time) {
	s := b.s
	if !s.peerPublic.IsValid() {
		return
	}
	if b.sprayed >= birthdaySpray {
		if b.done.IsZero() {
			b.done = now
		}
		if now.Sub(b.done) < birthdayRespray {
			return
		}
		b.sprayed, b.done = 0, time.Time{}
	}
	if b.msg == nil {
		// One transaction for the whole spray: an answer to it is as good as any (it proves the
		// peer), and 1024 entries would crowd the table of open transactions.
		msg, err := s.request(nil, 0)
		if err != nil {
			return
		}
		b.tx, b.msg = msg.TransactionID, msg.Raw
	}
	ip := s.peerPublic.Addr()
	for range birthdaySprayTick {
		port := uint16(birthdayMinPort + rand.IntN(birthdayPortsRange))
		s.e.client.Send(b.msg, netip.AddrPortFrom(ip, port))
		b.sprayed++
	}
}

func (b *birthdayEasy) takes(tx [stun.TransactionIDSize]byte) bool { return b.msg != nil && tx == b.tx }

func (b *birthdayEasy) endAttempt() { b.sprayed, b.msg, b.done = 0, nil, time.Time{} }
func (b *birthdayEasy) close()      {}

// predictor probes the next ports of a symmetric NAT with sequential ports (nat.PredictPorts).
type predictor struct{ s *Session }

func (p predictor) candidates(o Offer) []netip.AddrPort {
	ours, _ := p.s.e.client.NAT()
	return nat.PredictPorts(ours, o.NAT, o.public4())
}

func (predictor) step(time.Time) {}
func (predictor) endAttempt()    {}
func (predictor) close()         {}
