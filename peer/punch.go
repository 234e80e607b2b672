package peer

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/nat"
)

// Punching schedule: all candidates at once, fast at first, then slower, then give up and stay
// relayed until the next attempt (which both sides start together, through the server). The
// first retries come soon, so that a relayed session moves to a direct path soon after one
// becomes possible (a firewall rule lifted, a NAT mapping back); later ones back off to keep
// hopeless pairs (symmetric × symmetric) quiet.
const (
	punchTimeout = 10 * time.Second
	// hopelessTimeout bounds an attempt the two NATs' behaviours say cannot succeed (symmetric
	// facing symmetric or port-restricted): still tried, briefly, for the private candidates of
	// peers on one LAN and in case a behaviour changed since it was measured.
	hopelessTimeout = 3 * time.Second
	retryFirst      = 5 * time.Second
	retryMax        = 2 * time.Minute
	maxCandidates   = 48 // private, public, mapped and up to 32 predicted
	maxKnownAddrs   = 16
	maxOpenTxs      = 512
	monitorInterval = 500 * time.Millisecond
)

// puncher finds and keeps a direct path for one session: it probes every candidate with
// authenticated STUN binding requests, answers the peer's probes, locks onto the first address
// that answers, keeps the NAT mapping alive and notices when the path dies.
type puncher struct {
	s         *p2pSession
	key       string // MESSAGE-INTEGRITY key, derived from the secretKey and the session id
	username  string // "<session id>:<our role>"
	keepalive time.Duration
	disabled  bool
	// hopeless says why a direct path is unlikely for this pair of NATs ("" when it is likely
	// or unknown): attempts are short and rare then.
	hopeless string

	wake chan struct{}

	mu         sync.Mutex
	cands      map[netip.AddrPort]nat.Kind
	known      map[netip.AddrPort]bool
	txs        map[[stun.TransactionIDSize]byte]time.Time
	locked     *net.UDPAddr
	lockedKind nat.Kind
	// lockedVia is the extra socket the locked path runs on (birthday punching), nil: ours.
	lockedVia *net.UDPConn

	// Birthday punching (birthday.go): our role, the peer's public address, the hard side's
	// extra sockets of this attempt and of earlier ones (waited for when the session ends).
	birthday      string
	peerPublic    netip.AddrPort
	sides         *sideSockets
	retired       []*sideSockets
	lastSideProbe time.Time
	sprayed       int
	sprayTx       [stun.TransactionIDSize]byte
	birthdayBusy  bool
	punching      bool
	punchStart    time.Time
	retryAt       time.Time
	retryWait     time.Duration
	lastProbe     time.Time
}

func newPuncher(s *p2pSession, ps *wire.PeerSession, relayOnly bool) *puncher {
	c := s.m.c
	p := &puncher{
		s:         s,
		key:       string(auth.Derive(s.secret, "xp2p probe", s.id)),
		username:  s.idHex + ":" + s.role,
		keepalive: time.Duration(c.cfg.Transport.P2PKeepalive) * time.Second,
		wake:      make(chan struct{}, 1),
		cands:     map[netip.AddrPort]nat.Kind{},
		known:     map[netip.AddrPort]bool{},
		txs:       map[[stun.TransactionIDSize]byte]time.Time{},
		retryWait: retryFirst,
	}
	p.disabled = c.cfg.Transport.DisableP2P || relayOnly
	p.addCandidates(ps)
	p.planLocked(ps)
	return p
}

// planLocked chooses the punching strategy from the NAT behaviours both sides measured (the
// peer's arrives with the session; see nat.DirectLikely).
func (p *puncher) planLocked(ps *wire.PeerSession) {
	peerNAT, err := nat.ParseBehavior(ps.PeerNAT)
	if err != nil {
		return
	}
	ours := p.s.m.c.natBehavior()
	likely, why := nat.DirectLikely(ours, peerNAT)
	if role := nat.BirthdayRole(ours, peerNAT); role != "" && !p.disabled {
		if p.birthday == "" {
			p.s.log.Info("birthday punching planned", "part", role, "nat", ours.Name(), "peer_nat", peerNAT.Name())
		}
		p.birthday = role
		likely, why = true, ""
	}
	if ps.PeerMapped != "" || p.s.m.c.mappedAddr().IsValid() {
		// A router's port mapping lets every probe in, whatever its NAT's filtering.
		likely, why = true, ""
	}
	was := p.hopeless
	p.hopeless = why
	switch {
	case likely && was != "":
		p.retryWait = retryFirst
	case !likely && was == "":
		p.retryWait = retryMax
	}
	if !likely && was == "" && !p.disabled {
		p.s.log.Info("direct path unlikely; short attempts only", "why", why, "nat", ours.Name(), "peer_nat", peerNAT.Name(),
			"attempt", hopelessTimeout, "retry_every", retryMax)
	}
}

// attemptLimit is how long one punching attempt lasts.
func (p *puncher) attemptLimit() time.Duration {
	if p.hopeless != "" {
		return hopelessTimeout
	}
	return punchTimeout
}

func (p *puncher) addCandidates(ps *wire.PeerSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	add := func(s string, k nat.Kind) {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || len(p.cands) >= maxCandidates {
			return
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if _, ok := p.cands[ap]; !ok {
			p.cands[ap] = k
		}
	}
	for _, a := range ps.PeerPrivate {
		add(a, nat.KindPrivate)
	}
	if ps.PeerPublic != "" {
		add(ps.PeerPublic, nat.KindPublic)
		if ap, err := netip.ParseAddrPort(ps.PeerPublic); err == nil {
			p.peerPublic = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	if ps.PeerMapped != "" {
		add(ps.PeerMapped, nat.KindMapped)
	}
	// A symmetric peer with sequential ports: its probes will come from one of its next ports;
	// probing those opens our filter for it (and, once its mapping exists, reaches it).
	if peerNAT, err := nat.ParseBehavior(ps.PeerNAT); err == nil {
		public, _ := netip.ParseAddrPort(ps.PeerPublic)
		for _, ap := range nat.PredictPorts(p.s.m.c.natBehavior(), peerNAT, public) {
			add(ap.String(), nat.KindPredicted)
		}
	}
}

// update takes fresh candidates from the server and punches again if there is no direct path.
func (p *puncher) update(ps *wire.PeerSession) {
	p.addCandidates(ps)
	p.mu.Lock()
	p.planLocked(ps)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *puncher) run() {
	if p.disabled {
		return
	}
	defer p.waitSides()
	p.mu.Lock()
	p.startLocked(time.Now())
	p.mu.Unlock()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-p.s.done:
			return
		case <-p.wake:
			p.mu.Lock()
			if p.locked == nil {
				p.startLocked(time.Now())
			}
			p.mu.Unlock()
		case <-t.C:
		}
		t.Reset(p.step(time.Now()))
	}
}

func (p *puncher) startLocked(now time.Time) {
	if !p.punching {
		p.punching = true
		p.punchStart = now
	}
}

// step does what is due now and returns when to come back.
func (p *puncher) step(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.locked != nil {
		return p.monitorLocked(now)
	}
	if !p.punching {
		if now.Before(p.retryAt) {
			return p.retryAt.Sub(now)
		}
		// Both sides should probe at the same time: ask the server to send both fresh candidates.
		if ctl := p.s.link.ctl.Load(); ctl != nil {
			go ctl.send(&wire.Repunch{SessionID: p.s.id})
		}
		p.retryWait = min(p.retryWait*2, retryMax)
		p.retryAt = now.Add(p.retryWait)
		p.startLocked(now)
	}
	elapsed := now.Sub(p.punchStart)
	if elapsed > p.attemptLimit() {
		p.retireSidesLocked()
		p.sprayed = 0
		p.sprayTx = [stun.TransactionIDSize]byte{}
		p.birthdayBusy = false
		p.punching = false
		p.retryAt = now.Add(p.retryWait)
		p.s.log.Info("no direct path found; staying on relay", "tried", len(p.cands), "next_try_in", p.retryWait)
		return p.retryWait
	}
	for ap := range p.cands {
		p.probeLocked(ap, now)
	}
	switch p.birthday {
	case "hard":
		if p.sides == nil && p.peerPublic.IsValid() && !p.birthdayBusy {
			if !p.openSidesLocked() {
				p.birthdayBusy = true // this attempt goes without; the next one tries again
				p.s.log.Info("birthday punching skipped: the client runs as many as it may", "max", maxBirthdays)
			}
		}
		p.probeSidesLocked(now)
	case "easy":
		p.sprayLocked()
	}
	switch {
	case elapsed < time.Second:
		return 100 * time.Millisecond
	case elapsed < 5*time.Second:
		return 250 * time.Millisecond
	default:
		return time.Second
	}
}

// monitorLocked keeps the locked path alive and declares it dead when the peer falls silent.
func (p *puncher) monitorLocked(now time.Time) time.Duration {
	path := p.s.path
	lastRecv := time.Unix(0, path.lastRecv.Load())
	lastSend := time.Unix(0, path.lastSend.Load())
	silence := now.Sub(lastRecv)
	// We are sending but hear nothing back: the path may have died under us.
	suspect := lastSend.After(lastRecv) && silence > time.Second
	dead := silence > 2*p.keepalive+2*time.Second || (suspect && silence > 3*time.Second)
	if dead {
		dst := p.locked
		p.locked = nil
		p.s.m.c.paths.setDirect(path, nil)
		if p.lockedVia != nil {
			p.lockedVia.Close()
			p.lockedVia = nil
		}
		p.s.log.Warn("direct path lost; back to relay", "remote", dst.String(), "silence", silence.Round(time.Millisecond))
		p.retryWait = retryFirst
		p.retryAt = now
		p.punching = false
		return 0
	}
	if now.Sub(p.lastProbe) >= p.keepalive || (suspect && now.Sub(p.lastProbe) >= monitorInterval) {
		p.probeLocked(key(p.locked), now)
	}
	return monitorInterval
}

// probeLocked sends one binding request to ap.
func (p *puncher) probeLocked(ap netip.AddrPort, now time.Time) {
	msg, err := stun.Build(stun.TransactionID, stun.BindingRequest,
		stun.NewUsername(p.username), stun.NewShortTermIntegrity(p.key), stun.Fingerprint)
	if err != nil {
		return
	}
	if len(p.txs) >= maxOpenTxs {
		for id, t := range p.txs {
			if now.Sub(t) > punchTimeout {
				delete(p.txs, id)
			}
		}
	}
	if len(p.txs) < maxOpenTxs {
		p.txs[msg.TransactionID] = now
	}
	p.lastProbe = now
	if p.lockedVia != nil && p.locked != nil && key(p.locked) == ap {
		p.lockedVia.WriteToUDP(msg.Raw, p.locked)
		return
	}
	p.s.m.c.sock.WriteRaw(msg.Raw, nil, net.UDPAddrFromAddrPort(ap))
}

// retireSidesLocked closes the attempt's extra sockets but the one the path runs on, if any;
// their readers are waited for when the session ends.
func (p *puncher) retireSidesLocked() {
	if p.sides == nil {
		return
	}
	if p.lockedVia != nil {
		p.sides.keepOnly(p.lockedVia)
	} else {
		p.sides.keepOnly(nil)
	}
	p.retired = append(p.retired, p.sides)
	p.sides = nil
}

// waitSides closes every extra socket and waits for their readers (the session is over).
func (p *puncher) waitSides() {
	p.mu.Lock()
	p.retireSidesLocked()
	all := p.retired
	p.retired = nil
	if p.lockedVia != nil {
		p.lockedVia.Close()
	}
	p.mu.Unlock()
	for _, ss := range all {
		ss.close()
	}
}

// handleSTUN is the socket's STUN handler: it finds the session a probe or answer belongs to.
func (m *p2pSessions) handleSTUN(data []byte, from *net.UDPAddr) {
	if !stun.IsMessage(data) {
		return
	}
	msg := &stun.Message{Raw: append([]byte(nil), data...)}
	if err := msg.Decode(); err != nil {
		return
	}
	var user stun.Username
	if err := user.GetFrom(msg); err != nil {
		return
	}
	idHex, role, ok := strings.Cut(user.String(), ":")
	if !ok {
		return
	}
	s := m.byHex(idHex)
	if s == nil || role == s.role {
		// Unknown session, or our own probe reflected back at us.
		return
	}
	s.punch.handle(msg, from)
}

// authentic reports whether a probe carries the session's integrity and a valid fingerprint.
func (p *puncher) authentic(msg *stun.Message) bool {
	return stun.NewShortTermIntegrity(p.key).Check(msg) == nil && stun.Fingerprint.Check(msg) == nil
}

// answer builds the authenticated success response to the peer's probe from from.
func (p *puncher) answer(req *stun.Message, from *net.UDPAddr) ([]byte, error) {
	resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.IP, Port: from.Port},
		stun.NewUsername(p.username), stun.NewShortTermIntegrity(p.key), stun.Fingerprint)
	if err != nil {
		return nil, err
	}
	return resp.Raw, nil
}

func (p *puncher) handle(msg *stun.Message, from *net.UDPAddr) {
	if p.disabled {
		return
	}
	if !p.authentic(msg) {
		return
	}
	ap := key(from)
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch msg.Type {
	case stun.BindingRequest:
		resp, err := p.answer(msg, from)
		if err != nil {
			return
		}
		p.s.m.c.sock.WriteRaw(resp, nil, from)
		p.learnLocked(ap, from)
		if _, ok := p.cands[ap]; !ok && len(p.cands) < maxCandidates {
			// Peer-reflexive: the peer's NAT gave it an address the server never saw (it is
			// symmetric, or behind a second NAT).
			p.cands[ap] = nat.KindPeer
		}
		if p.locked == nil {
			// A triggered check (as in ICE): the path towards us works, so probe it back at once
			// instead of waiting for our schedule; our NAT now has a mapping for it too.
			p.probeLocked(ap, now)
		}
	case stun.BindingSuccess:
		if _, ok := p.txs[msg.TransactionID]; !ok && (p.sprayTx == [stun.TransactionIDSize]byte{} || msg.TransactionID != p.sprayTx) {
			return
		}
		delete(p.txs, msg.TransactionID)
		p.learnLocked(ap, from)
		if p.locked == nil {
			p.lockLocked(from, now)
		}
	default:
		return
	}
	if p.locked != nil && key(p.locked) == ap {
		p.s.path.lastRecv.Store(now.UnixNano())
	}
}

// learnLocked records an address that proved to be the peer: QUIC packets from it now reach
// the session even before (or without) it being the locked one.
func (p *puncher) learnLocked(ap netip.AddrPort, from *net.UDPAddr) {
	if p.known[ap] || len(p.known) >= maxKnownAddrs {
		return
	}
	p.known[ap] = true
	p.s.m.c.paths.addKnown(p.s.path, from)
}

func (p *puncher) lockLocked(addr *net.UDPAddr, now time.Time) { p.lockViaLocked(addr, nil, now) }

// lockViaLocked locks the path onto addr, reached through via (nil: the client's socket).
func (p *puncher) lockViaLocked(addr *net.UDPAddr, via *net.UDPConn, now time.Time) {
	ap := key(addr)
	p.locked = &net.UDPAddr{IP: addr.IP, Port: addr.Port}
	p.lockedKind = p.cands[ap]
	switch {
	case via != nil:
		p.lockedKind = nat.KindBirthday
	case p.lockedKind == "":
		p.lockedKind = nat.KindPeer // answered a probe no candidate list named (a sprayed port)
	}
	p.lockedVia = via
	p.punching = false
	p.retryWait = retryFirst
	p.s.m.c.paths.setDirectVia(p.s.path, p.locked, via)
	first := p.s.directAt.CompareAndSwap(0, int64(now.Sub(p.s.created)))
	args := []any{"remote", ap.String(), "candidate", string(p.lockedKind), "local", p.s.m.c.UDPAddr().String()}
	if first {
		args = append(args, "time_to_direct", time.Duration(p.s.directAt.Load()).Round(time.Microsecond))
	}
	p.s.log.Info("direct path locked", args...)
}
