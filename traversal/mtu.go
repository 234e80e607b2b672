package traversal

import (
	"errors"
	"net/netip"
	"syscall"
	"time"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/internal/wire"
)

// Path MTU. A session's QUIC connection moves between the relay and its direct paths under one
// virtual address (package peer's socket filter), and quic-go's path MTU discovery (DPLPMTUD)
// only ever grows the packet size it found, on whichever path carried its probes: a switch to a
// path that carries less would lose every packet from then on. So each side measures what each
// of its paths carries outbound (padded probes of a ladder of sizes; the largest that is answered
// fits), and its socket filter lets no QUIC packet out that is larger than the smallest of them
// (Activity.Fits). quic-go's probes above that are lost to it, and the size it settles on fits the
// relay and the direct path alike, ICMP or not. Until a path is measured it is taken to carry
// MinPacket, which every path does.
//
// A path that turns out to carry less than the packets the session already sends is left for
// the relay; a locked path whose MTU shrinks stops answering the keepalives (padded to the size
// it was measured at) and is given up as dead.
const (
	// MinPacket is the QUIC packet every path carries: IPv6's minimum MTU (1280) less the IPv6
	// and UDP headers (48) and the relay header.
	MinPacket = 1280 - 48 - wire.RelayHeaderLen
	// MaxPacket is the largest QUIC packet worth finding: quic-go receives into 1452-byte
	// buffers, and a relayed packet comes with its header.
	MaxPacket = 1452 - wire.RelayHeaderLen
)

// mtuLadder are the sizes probed, largest first: 20 bytes apart (the precision of quic-go's own
// search), multiples of 4 (a STUN message's size always is), and last what a direct IPv6 path
// of IPv6's minimum MTU carries (1280 less 48).
var mtuLadder = func() []int {
	var l []int
	for q := MaxPacket &^ 3; q > (1280-48)&^3; q -= 20 {
		l = append(l, q)
	}
	return append(l, (1280-48)&^3)
}()

const (
	mtuRounds = 2 // a size unanswered in both does not fit
	// mtuWait is how long a round waits for answers before the next: three round trips of the
	// path once an answer told its round trip (at least mtuMinWait), mtuWait before that.
	mtuWait    = 300 * time.Millisecond
	mtuMinWait = 20 * time.Millisecond
)

// mtuProbe measures one path: the relay (relay set) or a direct path to remote, from via (nil:
// the client's socket).
type mtuProbe struct {
	relay  bool
	remote netip.AddrPort
	via    Socket
	txs    map[[stun.TransactionIDSize]byte]int // open probes and their sizes
	best   int                                  // the largest size answered (0: none yet)
	tooBig int                                  // the smallest size the system refused to send (0: none)
	round  int
	sent   time.Time     // when the current round went out
	rtt    time.Duration // the path's round trip, from the first answer (0: none yet)
	next   time.Time
	done   bool
}

func newMTUProbe(relay bool, remote netip.AddrPort, via Socket) *mtuProbe {
	return &mtuProbe{relay: relay, remote: remote, via: via, txs: map[[stun.TransactionIDSize]byte]int{}}
}

// requestFor builds a probe of size q for m's path: keyed with the session's key on a direct
// path, with the relay's before the peers agreed on one.
func (s *Session) requestFor(m *mtuProbe, q int) (*stun.Message, error) {
	if m.relay {
		return s.requestWith(s.relayKey, nil, q)
	}
	return s.request(nil, q)
}

// stepLocked sends the next round of probes when it is due and returns when to come back
// (0: the measurement is over).
func (m *mtuProbe) stepLocked(s *Session, now time.Time) time.Duration {
	if m.done {
		return 0
	}
	if now.Before(m.next) {
		return m.next.Sub(now)
	}
	if m.round >= mtuRounds {
		s.mtuMeasuredLocked(m)
		return 0
	}
	for _, q := range mtuLadder {
		if q <= m.best {
			break
		}
		if m.tooBig != 0 && q >= m.tooBig {
			continue
		}
		msg, err := s.requestFor(m, q)
		if err != nil {
			return 0
		}
		m.txs[msg.TransactionID] = q
		if m.relay {
			s.host.SendRelay(msg.Raw)
			continue
		}
		if err := s.sendVia(m.via, msg.Raw, m.remote); isTooBig(err) {
			// The system knows the path's MTU already (an ICMP "too big" came back).
			m.tooBig = q
			delete(m.txs, msg.TransactionID)
		}
	}
	m.round++
	m.sent = now
	m.next = now.Add(m.wait())
	return m.next.Sub(now)
}

// wait is how long a round waits for its answers.
func (m *mtuProbe) wait() time.Duration {
	if m.rtt > 0 {
		return max(3*m.rtt, mtuMinWait)
	}
	return mtuWait << (m.round - 1)
}

// answeredLocked takes an answer: it reports whether it was one of this measurement's probes.
func (m *mtuProbe) answeredLocked(s *Session, tx [stun.TransactionIDSize]byte) bool {
	q, ok := m.txs[tx]
	if !ok {
		return false
	}
	delete(m.txs, tx)
	if q > m.best {
		m.best = q
		// A size answered fits: it is the path's limit already, before the measurement ends
		// (which can only raise it), so that quic-go's first probes meet it rather than MinPacket.
		s.provisionalLocked(m)
	}
	if m.rtt == 0 && !m.sent.IsZero() {
		m.rtt = time.Since(m.sent)
		m.next = m.sent.Add(m.wait()) // the round need not wait longer than the path takes
		s.kickLocked()
	}
	if !m.done && m.best == mtuLadder[0] {
		s.mtuMeasuredLocked(m) // the largest fits: nothing left to find
	}
	return true
}

// provisionalLocked publishes what a measurement found so far.
func (s *Session) provisionalLocked(m *mtuProbe) {
	switch {
	case m.relay:
		s.cfg.Activity.relayMTU.Store(int32(m.result()))
	case s.path != nil && s.path.Remote == m.remote && s.path.Via == m.via && m.result() >= s.cfg.Activity.Largest():
		s.cfg.Activity.directMTU.Store(int32(m.result()))
	}
}

// result is what the path was found to carry.
func (m *mtuProbe) result() int { return max(m.best, MinPacket) }

func isTooBig(err error) bool { return errors.Is(err, syscall.EMSGSIZE) }

// mtuMeasuredLocked takes a finished measurement.
func (s *Session) mtuMeasuredLocked(m *mtuProbe) {
	m.done = true
	q := m.result()
	if m.relay {
		s.cfg.Activity.relayMTU.Store(int32(q))
		s.log.Info("relay path MTU measured", "max_packet", q)
		if sent := s.cfg.Activity.Largest(); sent > q {
			s.log.Warn("the relay carries smaller packets than the session already sends: it could not take over from a direct path", "relay", q, "sent", sent)
		}
		return
	}
	p := s.path
	if p == nil || p.Remote != m.remote || p.Via != m.via {
		return // the path changed meanwhile
	}
	if sent := s.cfg.Activity.Largest(); sent > q {
		// The session's packets grew on paths that carry more (quic-go never shrinks them):
		// this one would lose them all. The relay carries them (nothing larger than it is sent).
		s.log.Warn("direct path carries smaller packets than the session sends; staying on relay", "remote", p.Remote.String(), "max_packet", q, "sent", sent)
		s.small[p.Remote] = true
		s.dropPathLocked()
		return
	}
	s.cfg.Activity.directMTU.Store(int32(q))
	s.log.Info("direct path MTU measured", "remote", p.Remote.String(), "max_packet", q)
}

// Fits reports whether a QUIC packet of n bytes may leave now: no larger than any path of the
// session carries, as far as they are measured (see MinPacket). It records the largest packet
// it let out: quic-go's packets never shrink, so every path the session takes must carry it.
func (a *Activity) Fits(n int) bool {
	if n > a.Limit() {
		return false
	}
	if int32(n) > a.largest.Load() {
		a.largest.Store(int32(n)) // one sender per connection: no lost update that matters
	}
	return true
}

// Limit is the largest QUIC packet the session's paths carry, as far as they are measured. A
// direct path that is not measured yet holds the packets where they are, so that they do not
// grow past what it carries while its measurement runs.
func (a *Activity) Limit() int {
	r := int(a.relayMTU.Load())
	if r == 0 {
		r = MinPacket
	}
	switch d := int(a.directMTU.Load()); {
	case d > 0:
		return min(r, d)
	case d < 0: // a direct path, not measured yet
		return min(r, max(int(a.largest.Load()), MinPacket))
	}
	return r
}

// Largest is the largest QUIC packet the session sent.
func (a *Activity) Largest() int { return int(a.largest.Load()) }
