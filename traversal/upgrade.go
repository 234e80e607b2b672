package traversal

import (
	"net/netip"
	"time"

	"github.com/xp2p/xp2p/nat"
)

// The best path, not the first. A session locks the first candidate that answers, which is not
// always the best one (a public address before the LAN's, IPv4 before IPv6 that answers a
// moment later, or a path whose round trip is worse). So once locked it keeps probing the other
// candidates that answered or may answer, on a slowing schedule, and moves to one that is
// clearly better, as Tailscale's magicsock does with its best address: points for the round
// trip saved, for a LAN address, for IPv6, and some stickiness against flapping between
// equals. The probes are padded to the largest packet the session sent, so the path it moves
// to is known to carry it; QUIC sees nothing (its peer's virtual address stays), so no stream
// notices the move.
const (
	upgradeFirst    = time.Second      // the first round after the lock: who answers a moment later
	upgradeEarly    = 5 * time.Second  // rounds during the first upgradeEarlyFor
	upgradeEarlyFor = 30 * time.Second //
	upgradeLate     = time.Minute      // later rounds (magicsock's upgradeUDPDirectInterval)
	// trustHeard is how long an answer's round trip stands for its candidate (magicsock's
	// trustUDPAddrDuration): the locked path is compared only with what it did as recently.
	trustHeard = 6500 * time.Millisecond
	// A difference of round trips counts only from sameRTTAbs and sameRTTShare percent of the
	// larger on: below either it is noise.
	sameRTTAbs   = 2 * time.Millisecond
	sameRTTShare = 10
)

// addrQuality is how a candidate last answered.
type addrQuality struct {
	rtt  time.Duration
	size int       // the size of the probe it answered
	at   time.Time // when
}

// heardLocked records an answer of candidate ap to a probe of size bytes after rtt; while a
// path is locked, it may be the better one.
func (s *Session) heardLocked(ap netip.AddrPort, rtt time.Duration, size int, now time.Time) {
	q := s.heard[ap]
	if q == nil {
		if len(s.heard) >= maxCandidates {
			return
		}
		q = &addrQuality{}
		s.heard[ap] = q
	}
	*q = addrQuality{rtt: rtt, size: size, at: now}
	p := s.path
	if p == nil || p.Remote == ap || s.small[ap] || size < s.upgradeSize() {
		return
	}
	cur := s.heard[p.Remote]
	// The locked path fails: it has not answered since a side's network changed (a move to
	// another network: ours, or the peer's, which its new candidates and probes from a new
	// address tell), or its last answer is old and what the session sends goes unanswered. Any
	// candidate that answers does better then.
	failing := cur == nil ||
		(!s.changedAt.IsZero() && now.Sub(s.changedAt) < upgradeEarly && cur.at.Before(s.changedAt)) ||
		(now.Sub(cur.at) > time.Second && s.cfg.Activity.Unanswered(now) > 500*time.Millisecond)
	s.log.Debug("candidate answered", "candidate", ap.String(), "rtt", rtt, "path", p.Remote.String(), "failing", failing,
		"unanswered", s.cfg.Activity.Unanswered(now))
	if !failing && (cur == nil || now.Sub(cur.at) > trustHeard || !betterAddr(ap, q, p.Remote, cur)) {
		return
	}
	var rttFrom time.Duration
	if cur != nil {
		rttFrom = cur.rtt
	}
	s.log.Info("direct path upgraded", "from", p.Remote.String(), "to", ap.String(), "candidate", string(s.kindOf(ap)),
		"rtt_from", rttFrom.Round(time.Microsecond), "rtt_to", rtt.Round(time.Microsecond), "old_path_failing", failing)
	s.setPathLocked(&Path{Remote: ap, Kind: s.kindOf(ap), Moved: failing})
	if p.Via != nil {
		p.Via.Close() // the extra socket of the path left behind
	}
	s.cfg.Activity.Received(now)
}

// upgradeSize is the size of upgrade probes: the largest packet the session sent, rounded up
// to STUN's multiple of 4, so that a candidate that answers one carries the session.
func (s *Session) upgradeSize() int {
	return (max(s.cfg.Activity.Largest(), MinPacket) + 3) &^ 3
}

// upgradeLocked probes the locked path and the other candidates when a round is due, and
// returns when the next one is.
func (s *Session) upgradeLocked(now time.Time) time.Duration {
	if now.Before(s.nextUpgrade) {
		return s.nextUpgrade.Sub(now)
	}
	gap := upgradeLate
	if now.Sub(s.lockedAt) < upgradeEarlyFor {
		gap = upgradeEarly
	}
	s.nextUpgrade = now.Add(gap)
	size := s.upgradeSize()
	s.probeSizedLocked(s.path.Remote, now, size) // its round trip, to compare with
	sent := 1
	for ap, k := range s.cands {
		if sent >= maxKnownAddrs {
			break
		}
		if ap == s.path.Remote || s.small[ap] || k == nat.KindPredicted || k == nat.KindBirthday {
			continue
		}
		s.probeSizedLocked(ap, now, size)
		sent++
	}
	return gap
}

// betterAddr reports whether candidate a, as it answered, is clearly better than b: the
// points of magicsock's betterAddr (the share of round trip saved, 20 for a LAN address, 30
// link-local, 50 loopback, 10 for IPv6), with round trips within noise of each other equal, and
// a 1-point margin against flapping.
func betterAddr(a netip.AddrPort, aq *addrQuality, b netip.AddrPort, bq *addrQuality) bool {
	if a == b {
		return false
	}
	var aPoints, bPoints int
	slow, fast := aq.rtt, bq.rtt
	if slow < fast {
		slow, fast = fast, slow
	}
	if d := slow - fast; d >= sameRTTAbs && d*100/slow >= sameRTTShare {
		if aq.rtt > bq.rtt {
			bPoints = int(100 - bq.rtt*100/aq.rtt)
		} else if bq.rtt > 0 {
			aPoints = int(100 - aq.rtt*100/bq.rtt)
		}
	}
	aPoints += addrPoints(a.Addr())
	bPoints += addrPoints(b.Addr())
	if aPoints <= 1 && bPoints == 0 {
		return false
	}
	return aPoints > bPoints
}

// addrPoints are an address's points for what it is, beside its round trip.
func addrPoints(ip netip.Addr) int {
	ip = ip.Unmap()
	p := 0
	switch {
	case ip.IsLoopback():
		p = 50
	case ip.IsLinkLocalUnicast():
		p = 30
	case ip.IsPrivate():
		p = 20
	}
	if ip.Is6() {
		p += 10 // IPv6: no NAT whose mapping may change under the path
	}
	return p
}
