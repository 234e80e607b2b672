package traversal

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/nat"
)

// Punching schedule: all candidates at once, fast at first, then slower, then give up and stay
// relayed until the next attempt (which both sides start together, through the server). The
// first retries come soon, so that a relayed session moves to a direct path soon after one
// becomes possible (a firewall rule lifted, a NAT mapping back); later ones back off to keep
// hopeless pairs (symmetric × symmetric) quiet.
const (
	punchTimeout = 10 * time.Second
	// hopelessTimeout bounds an attempt the plan calls hopeless: still tried, briefly, for the
	// private candidates of peers on one LAN and in case a behaviour changed since it was measured.
	hopelessTimeout = 3 * time.Second
	retryFirst      = 5 * time.Second
	retryMax        = 2 * time.Minute
	maxCandidates   = 48 // private, public, mapped and up to 32 predicted
	maxKnownAddrs   = 16
	maxOpenTxs      = 512
	monitorInterval = 500 * time.Millisecond
)

// SessionConfig describes one session to traversal.
type SessionConfig struct {
	ID   []byte // the session id the server gave
	Role string // ours: "visitor" or "provider"
	// Key is the probes' integrity key. It must not be derived from the service's secretKey
	// alone, which a probe would then give an offline test of to whoever receives one (a
	// server that hands out a candidate of its own); xp2p derives it from the key the peers'
	// PAKE agreed on. Nil: set later with SetKey, and until then the session sends no probe and
	// takes none.
	Key       []byte
	Keepalive time.Duration // probes on a locked path, well under the NATs' UDP timeout
	// Disabled: the session relays only; it sends no probes and answers none.
	Disabled bool
	// Activity is the locked path's traffic, as the client's socket filter sees it.
	Activity *Activity
	Log      *slog.Logger
	Created  time.Time // time_to_direct counts from here
}

// Session finds and keeps the direct path of one P2P session. Run does the work until Close.
type Session struct {
	e     *Engine
	host  Host
	cfg   SessionConfig
	log   *slog.Logger
	idHex string
	key   atomic.Pointer[string] // MESSAGE-INTEGRITY key (nil until known)
	// relayKey keys the probes of the relay's MTU, which go before the peers agreed on key:
	// derived from the session id, which the server knows too, and nothing secret (the relay
	// may forge their answers as it may drop any packet; nobody else knows the id).
	relayKey string
	keyed    chan struct{} // closed once key is set
	username string        // "<session id hex>:<our role>"

	wake      chan struct{} // punch now (fresh candidates)
	kick      chan struct{} // step now (a measurement's schedule moved)
	done      chan struct{}
	closeOnce sync.Once
	// timeToDirect is the time from Created to the first lock (0: never locked).
	timeToDirect atomic.Int64
	cur          atomic.Pointer[Path]

	mu         sync.Mutex
	cands      map[netip.AddrPort]nat.Kind
	known      map[netip.AddrPort]bool
	txs        map[[stun.TransactionIDSize]byte]sentProbe
	path       *Path // the locked path (nil: relayed); cur mirrors it for readers without mu
	peerPublic netip.AddrPort
	plan       Plan
	planned    bool // a plan was made from two known behaviours
	// strategies are the plan's strategies that have run (they keep what they found or hold
	// until the session ends).
	strategies map[string]strategy
	punching   bool
	punchStart time.Time
	retryAt    time.Time
	retryWait  time.Duration
	lastProbe  time.Time
	// relayMTU and directMTU measure what the relay and the locked path carry (mtu.go); small
	// are direct paths found to carry less than the session sends, never locked again.
	relayMTU, directMTU *mtuProbe
	small               map[netip.AddrPort]bool
	// heard are the candidates that answered, and how (upgrade.go); nextUpgrade is when the
	// locked session probes the others again, lockedAt when it locked.
	heard       map[netip.AddrPort]*addrQuality
	nextUpgrade time.Time
	lockedAt    time.Time
	changedAt   time.Time // a side's network changed (the locked path must answer anew)
}

// strategy is one way of finding a direct path, beside probing the candidates (which every
// attempt does); plan.go's table says which a session runs. The session calls it with its lock
// held (but close), and it must not block.
type strategy interface {
	// step does what is due at now in the current attempt.
	step(now time.Time)
	// endAttempt releases what the attempt holds, except a path it found.
	endAttempt()
	// close releases everything when the session ends, waiting for its goroutines (without
	// the session's lock).
	close()
}

// candidateSource is a strategy that adds candidates of its own to an offer's (prediction).
type candidateSource interface {
	candidates(o Offer) []netip.AddrPort
}

// answerTaker is a strategy whose probes share a transaction id (a spray), so that an answer
// to it is not found among the session's open transactions.
type answerTaker interface {
	takes(tx [stun.TransactionIDSize]byte) bool
}

// strategyMakers are the strategies the plan table may name.
var strategyMakers = map[string]func(*Session) strategy{
	StrategyPredict:      func(s *Session) strategy { return predictor{s} },
	StrategyBirthdayHard: func(s *Session) strategy { return &birthdayHard{s: s} },
	StrategyBirthdayEasy: func(s *Session) strategy { return &birthdayEasy{s: s} },
}

// NewSession registers a session with the engine; its probes are handled from now on. The
// owner runs Run and calls Close when the session ends.
func (e *Engine) NewSession(cfg SessionConfig, host Host, o Offer) *Session {
	s := &Session{
		e:          e,
		host:       host,
		cfg:        cfg,
		log:        cfg.Log,
		idHex:      idHex(cfg.ID),
		keyed:      make(chan struct{}),
		relayKey:   string(auth.Derive(cfg.ID, "xp2p relay probe", nil)),
		wake:       make(chan struct{}, 1),
		kick:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		cands:      map[netip.AddrPort]nat.Kind{},
		known:      map[netip.AddrPort]bool{},
		txs:        map[[stun.TransactionIDSize]byte]sentProbe{},
		strategies: map[string]strategy{},
		heard:      map[netip.AddrPort]*addrQuality{},
		small:      map[netip.AddrPort]bool{},
		retryWait:  retryFirst,
		relayMTU:   newMTUProbe(true, netip.AddrPort{}, nil),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.cfg.Activity == nil {
		s.cfg.Activity = &Activity{}
	}
	s.username = s.idHex + ":" + cfg.Role
	if cfg.Key != nil {
		s.SetKey(cfg.Key)
	}
	s.mu.Lock()
	s.planLocked(o)
	s.addCandidatesLocked(o)
	s.mu.Unlock()
	e.add(s)
	return s
}

// Disabled reports whether the session relays only.
func (s *Session) Disabled() bool { return s.cfg.Disabled }

// TimeToDirect is the time from the session's creation to its first direct path (0: none yet).
func (s *Session) TimeToDirect() time.Duration { return time.Duration(s.timeToDirect.Load()) }

// Plan is the session's current plan.
func (s *Session) Plan() Plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plan
}

// Path is the locked direct path (nil: relayed).
func (s *Session) Path() *Path { return s.cur.Load() }

// setPathLocked makes p the path (nil: the relay) and tells the host; a new direct path is
// measured (until then the session's packets stay within what the relay carries).
func (s *Session) setPathLocked(p *Path) {
	s.path = p
	s.cur.Store(p)
	s.cfg.Activity.directMTU.Store(0)
	s.directMTU = nil
	if p != nil {
		s.cfg.Activity.directMTU.Store(-1) // being measured
		s.directMTU = newMTUProbe(false, p.Remote, p.Via)
		s.kickLocked()
	}
	s.host.SetPath(p)
}

// dropPathLocked goes back to the relay and punches again soon.
func (s *Session) dropPathLocked() {
	lost := s.path
	s.setPathLocked(nil)
	if lost != nil && lost.Via != nil {
		lost.Via.Close()
	}
	s.retryWait = retryFirst
	s.retryAt = time.Now()
	s.punching = false
}

// planLocked chooses the plan from the NAT behaviours both sides measured (the peer's comes
// with the offer) and the router mappings either side has.
func (s *Session) planLocked(o Offer) {
	ours, mapped := s.e.client.NAT()
	plan := PlanFor(Classify(ours, mapped.IsValid()), Classify(o.NAT, o.Mapped.IsValid()))
	if plan.Hopeless != "" && o.hasIPv6() && s.e.client.IPv6() {
		// Both sides have IPv6: no NAT there, stateful firewalls that probes from both sides
		// open as they open a port-restricted NAT. Whatever their IPv4 NATs, that path is likely.
		plan.Hopeless = ""
		plan.IPv6 = true
	}
	if s.cfg.Disabled {
		s.plan = plan
		return
	}
	for _, name := range plan.Strategies {
		if _, ok := s.strategies[name]; !ok {
			if mk := strategyMakers[name]; mk != nil {
				s.strategies[name] = mk(s)
			}
		}
	}
	for name, st := range s.strategies {
		if !plan.Has(name) {
			st.endAttempt() // a strategy the plan no longer calls for
		}
	}
	was := s.plan
	s.plan = plan
	known := ours.Known() && o.NAT.Known()
	switch {
	case plan.Hopeless == "" && was.Hopeless != "":
		s.retryWait = retryFirst
	case plan.Hopeless != "" && was.Hopeless == "":
		s.retryWait = retryMax
	}
	if known && (!s.planned || plan.Hopeless != was.Hopeless || plan.IPv6 != was.IPv6 || !sameStrategies(plan, was)) {
		switch {
		case plan.Hopeless != "":
			s.log.Info("direct path unlikely; short attempts only", "why", plan.Hopeless, "nat", ours.Name(), "peer_nat", o.NAT.Name(),
				"attempt", hopelessTimeout, "retry_every", retryMax)
		case len(plan.Strategies) > 0 || plan.IPv6:
			s.log.Info("traversal planned", "strategies", plan.Strategies, "ipv6", plan.IPv6, "nat", plan.Ours.String(), "peer_nat", plan.Peer.String())
		}
	}
	s.planned = s.planned || known
}

func sameStrategies(a, b Plan) bool {
	if len(a.Strategies) != len(b.Strategies) {
		return false
	}
	for i := range a.Strategies {
		if a.Strategies[i] != b.Strategies[i] {
			return false
		}
	}
	return true
}

// active calls fn for each strategy the plan runs now.
func (s *Session) active(fn func(strategy)) {
	for _, name := range s.plan.Strategies {
		if st := s.strategies[name]; st != nil {
			fn(st)
		}
	}
}

func (s *Session) addCandidatesLocked(o Offer) {
	add := func(ap netip.AddrPort, k nat.Kind) {
		if !ap.IsValid() || len(s.cands) >= maxCandidates {
			return
		}
		ap = unmap(ap)
		if _, ok := s.cands[ap]; !ok {
			s.cands[ap] = k
		}
	}
	for _, a := range o.Private {
		k := nat.KindPrivate
		if a.Addr().Unmap().IsGlobalUnicast() && !a.Addr().Unmap().IsPrivate() {
			k = nat.KindPublic // a host's own public address (IPv6 behind a firewall, a host without NAT)
		}
		add(a, k)
	}
	add(o.Public, nat.KindPublic)
	add(o.PublicAlt, nat.KindPublic)
	if p4 := o.public4(); p4.IsValid() {
		s.peerPublic = p4
	}
	add(o.Mapped, nat.KindMapped)
	s.active(func(st strategy) {
		if cs, ok := st.(candidateSource); ok {
			for _, ap := range cs.candidates(o) {
				add(ap, nat.KindPredicted)
			}
		}
	})
}

// Update takes fresh candidates from the server and punches again if there is no direct path;
// with one, new candidates are probed at once (the peer may have moved).
func (s *Session) Update(o Offer) {
	s.mu.Lock()
	s.planLocked(o)
	before := len(s.cands)
	s.addCandidatesLocked(o)
	if s.path != nil && len(s.cands) > before {
		s.changedLocked(time.Now())
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run punches and keeps the path until Close. A session that relays only still measures the
// relay's MTU.
func (s *Session) Run() {
	defer s.closeStrategies()
	keyed := s.keyed // punching starts with the key; the relay's MTU is measured at once
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-keyed:
			keyed = nil
			s.mu.Lock()
			s.startLocked(time.Now())
			s.mu.Unlock()
		case <-s.wake:
			s.mu.Lock()
			if s.path == nil && s.key.Load() != nil {
				s.startLocked(time.Now())
			}
			s.mu.Unlock()
		case <-s.kick:
		case <-t.C:
		}
		t.Stop()
		t.Reset(s.step(time.Now()))
	}
}

// SetKey sets the probes' integrity key (once; later calls do nothing): the session starts
// probing, and takes the peer's probes.
func (s *Session) SetKey(key []byte) {
	k := string(key)
	if s.key.CompareAndSwap(nil, &k) {
		close(s.keyed)
	}
}

// integrityKey is the probes' integrity key ("" and false before SetKey).
func (s *Session) integrityKey() (string, bool) {
	if k := s.key.Load(); k != nil {
		return *k, true
	}
	return "", false
}

// NetworkChanged tells the session that the client's addresses or routes changed: its
// direct path may lead from an address that is gone. It probes the path and every candidate
// at once (moving to one that answers if the path does not), or punches at once without one.
func (s *Session) NetworkChanged() {
	if s.cfg.Disabled {
		return
	}
	s.mu.Lock()
	now := time.Now()
	if s.path != nil {
		s.changedLocked(now)
	} else if !s.punching && s.key.Load() != nil {
		s.retryWait = retryFirst
		s.retryAt = now
	}
	s.kickLocked()
	s.mu.Unlock()
}

// Close ends the session: its probes are no longer handled, and Run returns after releasing
// what the strategies hold.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.e.remove(s)
		close(s.done)
	})
}

func (s *Session) closeStrategies() {
	s.mu.Lock()
	all := make([]strategy, 0, len(s.strategies))
	for _, st := range s.strategies {
		st.endAttempt()
		all = append(all, st)
	}
	if s.path != nil && s.path.Via != nil {
		s.path.Via.Close()
	}
	s.mu.Unlock()
	for _, st := range all {
		st.close()
	}
}

// changedLocked notes that a side's network changed while a path is locked: an upgrade round
// now, in which the path must answer again or give way to a candidate that does.
func (s *Session) changedLocked(now time.Time) {
	s.changedAt = now
	s.nextUpgrade = now
	s.kickLocked()
}

// kickLocked makes Run step again at once.
func (s *Session) kickLocked() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Session) startLocked(now time.Time) {
	if !s.punching {
		s.punching = true
		s.punchStart = now
	}
}

// attemptLimit is how long one punching attempt lasts.
func (s *Session) attemptLimit() time.Duration {
	if s.plan.Hopeless != "" {
		return hopelessTimeout
	}
	return punchTimeout
}

// step does what is due now and returns when to come back.
func (s *Session) step(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.relayMTU.stepLocked(s, now)
	if s.cfg.Disabled || s.key.Load() == nil {
		return soonest(next, time.Hour)
	}
	if s.path != nil {
		next = soonest(next, s.monitorLocked(now))
		if s.directMTU != nil {
			next = soonest(next, s.directMTU.stepLocked(s, now))
		}
		return next
	}
	return soonest(next, s.punchLocked(now))
}

// soonest is the earlier of two waits, 0 standing for none.
func soonest(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return max(b, 0)
	case b <= 0:
		return a
	}
	return min(a, b)
}

// punchLocked runs the punching schedule while there is no direct path.
func (s *Session) punchLocked(now time.Time) time.Duration {
	if !s.punching {
		if now.Before(s.retryAt) {
			return s.retryAt.Sub(now)
		}
		// Both sides should probe at the same time: ask the server to send both fresh candidates.
		go s.host.Repunch()
		s.retryWait = min(s.retryWait*2, retryMax)
		s.retryAt = now.Add(s.retryWait)
		s.startLocked(now)
	}
	elapsed := now.Sub(s.punchStart)
	if elapsed > s.attemptLimit() {
		s.active(func(st strategy) { st.endAttempt() })
		s.punching = false
		s.retryAt = now.Add(s.retryWait)
		s.log.Info("no direct path found; staying on relay", "tried", len(s.cands), "next_try_in", s.retryWait)
		return s.retryWait
	}
	for ap := range s.cands {
		s.probeLocked(ap, now)
	}
	s.active(func(st strategy) { st.step(now) })
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
func (s *Session) monitorLocked(now time.Time) time.Duration {
	silence := now.Sub(s.cfg.Activity.LastReceived())
	// We have been sending for a while but hear nothing back: the path may have died under
	// us. (Counted from the first send since we last heard: an idle session that sends again
	// after a quiet spell is not suspect until its packets go unanswered.)
	unanswered := s.cfg.Activity.Unanswered(now)
	suspect := unanswered > time.Second
	dead := silence > 2*s.cfg.Keepalive+2*time.Second || unanswered > 3*time.Second
	if dead {
		s.log.Warn("direct path lost; back to relay", "remote", s.path.Remote.String(), "silence", silence.Round(time.Millisecond),
			"unanswered", unanswered.Round(time.Millisecond))
		s.dropPathLocked()
		return time.Millisecond
	}
	if now.Sub(s.lastProbe) >= s.cfg.Keepalive || (suspect && now.Sub(s.lastProbe) >= monitorInterval) {
		// Padded to what the path was measured to carry: a path whose MTU shrinks (a route
		// change) stops answering, and is given up before it swallows every large packet.
		s.probeSizedLocked(s.path.Remote, now, max(int(s.cfg.Activity.directMTU.Load()), 0)&^3)
	}
	return soonest(monitorInterval, s.upgradeLocked(now))
}

// probeLocked sends one binding request to ap (from the socket the path runs on, if ap is
// the locked path's peer).
func (s *Session) probeLocked(ap netip.AddrPort, now time.Time) { s.probeSizedLocked(ap, now, 0) }

// probeSizedLocked is probeLocked for a probe padded to size bytes (0: not padded).
func (s *Session) probeSizedLocked(ap netip.AddrPort, now time.Time, size int) {
	msg, err := s.request(nil, size)
	if err != nil {
		msg, err = s.request(nil, 0)
	}
	if err != nil {
		return
	}
	s.trackLocked(msg.TransactionID, sentProbe{at: now, to: ap, size: len(msg.Raw)})
	s.lastProbe = now
	var via Socket
	if s.path != nil && s.path.Remote == ap {
		via = s.path.Via
	}
	s.sendVia(via, msg.Raw, ap)
}

// sendVia sends b to to from via, or from the client's socket when via is nil.
func (s *Session) sendVia(via Socket, b []byte, to netip.AddrPort) error {
	if via != nil {
		return via.WriteTo(b, to)
	}
	return s.e.client.Send(b, to)
}

// sentProbe is an open transaction: when the probe went, where, and how large it was.
type sentProbe struct {
	at   time.Time
	to   netip.AddrPort // invalid: several (a round from the extra sockets)
	size int
}

// trackLocked remembers an open transaction, forgetting stale ones when the table is full.
func (s *Session) trackLocked(tx [stun.TransactionIDSize]byte, p sentProbe) {
	if len(s.txs) >= maxOpenTxs {
		for id, t := range s.txs {
			if p.at.Sub(t.at) > punchTimeout {
				delete(s.txs, id)
			}
		}
	}
	if len(s.txs) < maxOpenTxs {
		s.txs[tx] = p
	}
}

// handle takes the peer's authenticated probe or answer from from, received on the client's
// socket (invalid from: through the relay).
func (s *Session) handle(msg *stun.Message, from netip.AddrPort) {
	if !from.IsValid() {
		s.handleRelayed(msg)
		return
	}
	if !s.authentic(msg) {
		return
	}
	if s.cfg.Disabled {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch msg.Type {
	case stun.BindingRequest:
		resp, err := s.answer(msg, from)
		if err != nil {
			return
		}
		s.e.client.Send(resp, from)
		s.learnLocked(from)
		if _, ok := s.cands[from]; !ok && len(s.cands) < maxCandidates {
			// Peer-reflexive: the peer's NAT gave it an address the server never saw (it is
			// symmetric, or behind a second NAT, or it moved to another network).
			s.cands[from] = nat.KindPeer
			if s.path != nil && from != s.path.Remote {
				s.changedLocked(now) // the path may have moved with the peer: probe it back now
			}
		}
		if s.path == nil {
			// A triggered check (as in ICE): the path towards us works, so probe it back at once
			// instead of waiting for our schedule; our NAT now has a mapping for it too.
			s.probeLocked(from, now)
		}
	case stun.BindingSuccess:
		if s.directMTU != nil && s.path != nil && s.path.Remote == from && s.path.Via == nil &&
			s.directMTU.answeredLocked(s, msg.TransactionID) {
			s.cfg.Activity.Received(now)
			return
		}
		if !s.takesLocked(msg.TransactionID) {
			return
		}
		sent := s.txs[msg.TransactionID]
		delete(s.txs, msg.TransactionID)
		s.learnLocked(from)
		if sent.to == from {
			s.heardLocked(from, now.Sub(sent.at), sent.size, now)
		}
		if s.path == nil && !s.small[from] {
			s.lockLocked(&Path{Remote: from, Kind: s.kindOf(from)}, now)
		}
		if s.path != nil && s.path.Remote == from && s.path.Via == nil {
			// An answer to our probe on the path: it carries our packets and brings back the peer's.
			s.cfg.Activity.Received(now)
		}
	}
}

// handleRelayed takes a probe or answer that came through the relay: the path MTU
// measurements of the relay, ours (answers) and the peer's (probes, answered the same way).
func (s *Session) handleRelayed(msg *stun.Message) {
	if stun.NewShortTermIntegrity(s.relayKey).Check(msg) != nil || stun.Fingerprint.Check(msg) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch msg.Type {
	case stun.BindingRequest:
		if resp, err := s.answerWith(s.relayKey, msg, netip.AddrPort{}); err == nil {
			s.host.SendRelay(resp)
		}
	case stun.BindingSuccess:
		s.relayMTU.answeredLocked(s, msg.TransactionID)
	}
}

// takesLocked reports whether an answer's transaction is one of ours.
func (s *Session) takesLocked(tx [stun.TransactionIDSize]byte) bool {
	if _, ok := s.txs[tx]; ok {
		return true
	}
	taken := false
	s.active(func(st strategy) {
		if at, ok := st.(answerTaker); ok && at.takes(tx) {
			taken = true
		}
	})
	return taken
}

// kindOf is the kind of candidate an address was.
func (s *Session) kindOf(ap netip.AddrPort) nat.Kind {
	if k, ok := s.cands[ap]; ok {
		return k
	}
	return nat.KindPeer // answered a probe no candidate list named (a sprayed port)
}

// learnLocked records an address that proved to be the peer: QUIC packets from it now reach
// the session even before (or without) it being the locked one.
func (s *Session) learnLocked(ap netip.AddrPort) {
	if s.known[ap] || len(s.known) >= maxKnownAddrs {
		return
	}
	s.known[ap] = true
	s.host.AddKnown(ap)
}

// lockLocked makes p the session's path; the attempt's strategies end (what they hold, such as
// birthday punching's extra sockets, is given back, but the socket p runs on).
func (s *Session) lockLocked(p *Path, now time.Time) {
	s.punching = false
	s.retryWait = retryFirst
	s.cfg.Activity.Received(now)
	s.setPathLocked(p)
	s.active(func(st strategy) { st.endAttempt() })
	s.lockedAt = now
	s.nextUpgrade = now.Add(upgradeFirst)
	first := s.timeToDirect.CompareAndSwap(0, int64(max(now.Sub(s.cfg.Created), 1)))
	args := []any{"remote", p.Remote.String(), "candidate", string(p.Kind)}
	if p.Via != nil {
		args = append(args, "local", p.Via.LocalAddr().String())
	}
	if first {
		args = append(args, "time_to_direct", s.TimeToDirect().Round(time.Microsecond))
	}
	s.log.Info("direct path locked", args...)
}
