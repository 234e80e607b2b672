package peer

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/nat"
	"github.com/xp2p/xp2p/relay"
	"github.com/xp2p/xp2p/traversal"
)

// Limits on the sessions offered to a provider before their visitor proved the secretKey (the
// server has the same: rendezvous/handshakes.go).
const (
	unprovenTimeout      = 10 * time.Second
	maxUnprovenPerSource = 8
	maxUnproven          = 256
)

// Path names as logged and reported.
const (
	PathRelay  = "relay"
	PathDirect = "direct"
)

// p2pSessions are the client's P2P sessions, as provider and as visitor.
type p2pSessions struct {
	c *Client
	// secretFailures slows down visitors that guess a service's secretKey, by their address.
	secretFailures *auth.FailureLimiter
	// unproven bounds the sessions offered to this provider whose visitor has not proved the
	// secretKey yet, per visitor source and in all: any token holder can ask the server for
	// sessions, and a server (or several, or an impersonated one) need not bound them.
	unproven *auth.SourceSlots

	mu        sync.Mutex
	byID      map[string]*p2pSession
	byVirtual map[netip.AddrPort]*p2pSession

	// pins are the certificates of providers that proved a service's secretKey to this visitor,
	// by pinKey: see dialProvider.
	pins sync.Map
}

// pinKey names a provider's pin: the service, under the secret it proved.
func pinKey(service string, secret []byte) string { return service + "\x00" + string(secret) }

// p2pSession is one visitor↔provider session: its path, its prober and its QUIC connection.
type p2pSession struct {
	m       *p2pSessions
	id      []byte
	idHex   string
	role    string
	service string
	secret  []byte
	path    *path
	link    *serverLink // the server that paired (and relays) the session
	created time.Time
	// requested is when the visitor asked the server for the session (zero on the provider).
	requested time.Time
	log       *slog.Logger

	// Provider side: the service behind the session, where the visitor comes from, and the
	// slot the session holds among the unproven ones until the visitor proved the secretKey.
	local           relay.Local
	peerIP          netip.Addr
	releaseUnproven func()

	// punch finds and keeps the direct path (package traversal).
	punch *traversal.Session

	// pipeline: a visitor of a tcp service may send its first stream before the provider's
	// answer when it knows the provider (see dialProvider); pipelined: it did.
	pipeline  bool
	pipelined atomic.Bool

	conn atomic.Pointer[quic.Conn]
	// tcp is the direct TCP path, while one is up (tcppath.go): new streams take it.
	tcp atomic.Pointer[tcpPath]
	// tcpPunching: the provider is answering a TCPPath request (one at a time).
	tcpPunching atomic.Bool
	// dgrams carries udp flows' datagrams when both ends take them (udp services).
	dgrams  atomic.Pointer[session.FlowDatagrams]
	ready   chan struct{} // closed once both ends proved the secret
	done    chan struct{}
	endOnce sync.Once
	wg      sync.WaitGroup
	readyAt atomic.Int64 // nanoseconds from created to ready
	streams atomic.Int64
	// tcpStreams counts the streams that took the TCP path (visitor side).
	tcpStreams atomic.Int64
}

func newP2PSessions(c *Client) *p2pSessions {
	return &p2pSessions{c: c, byID: map[string]*p2pSession{}, byVirtual: map[netip.AddrPort]*p2pSession{},
		secretFailures: auth.NewFailureLimiter(), unproven: auth.NewSourceSlots(maxUnprovenPerSource, maxUnproven)}
}

// sessionOpts are this side's settings of a session.
type sessionOpts struct {
	secret    string
	relayOnly bool
	// local is the provider's service behind the session.
	local relay.Local
	// pipeline lets a visitor open streams before a known provider's answer (tcp services:
	// a udp flow needs the answer's datagram settings first).
	pipeline bool
	// releaseUnproven frees the provider's slot for the session once it is proven or over.
	releaseUnproven func()
}

// newSession registers a session that ctl's server paired, from its description. Once it
// returns, the session is visible to the socket filter and the accept loop.
func (m *p2pSessions) newSession(ctl *control, ps *wire.PeerSession, o sessionOpts) *p2pSession {
	var tok wire.RelayToken
	copy(tok[:], ps.RelayToken)
	s := &p2pSession{
		m:        m,
		id:       ps.SessionID,
		idHex:    hex.EncodeToString(ps.SessionID),
		role:     ps.Role,
		service:  ps.Service,
		secret:   []byte(o.secret),
		local:    o.local,
		pipeline: o.pipeline,
		link:     ctl.link,
		created:  time.Now(),
		ready:    make(chan struct{}),
		done:     make(chan struct{}),

		releaseUnproven: o.releaseUnproven,
	}
	s.peerIP, _ = netip.ParseAddr(ps.PeerIP) // invalid (an older server): one shared bucket
	s.log = m.c.log.With("service", ps.Service, "session", s.idHex[:8], "role", ps.Role)
	s.path = m.c.paths.add(tok)
	s.path.route.Store(ctl.relayRoute())
	s.punch = m.c.trav.NewSession(traversal.SessionConfig{
		ID:        s.id,
		Role:      s.role,
		Keepalive: time.Duration(m.c.cfg.Transport.P2PKeepalive) * time.Second,
		Disabled:  m.c.cfg.Transport.DisableP2P || o.relayOnly,
		Activity:  &s.path.act,
		Log:       s.log,
		Created:   s.created,
	}, sessionHost{s}, offerOf(ps))
	m.mu.Lock()
	m.byID[string(s.id)] = s
	m.byVirtual[s.path.vkey] = s
	m.mu.Unlock()
	// Relayed packets that arrived before this registration are fed back now.
	for _, pkt := range m.c.paths.held.take(tok) {
		m.c.inject(pkt)
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.punch.Run() }()
	return s
}

func (m *p2pSessions) get(id []byte) *p2pSession {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[string(id)]
}

func (m *p2pSessions) byHex(idHex string) *p2pSession {
	id, err := hex.DecodeString(idHex)
	if err != nil {
		return nil
	}
	return m.get(id)
}

// offer handles a PeerSession from the server: a new session for a provider, or fresh
// candidates for a session of either side (after a repunch).
func (m *p2pSessions) offer(ctl *control, ps *wire.PeerSession) {
	if s := m.get(ps.SessionID); s != nil {
		s.punch.Update(offerOf(ps))
		return
	}
	if ps.Role != wire.RoleProvider {
		return
	}
	name := ps.Service
	if u := m.c.cfg.User; u != "" {
		name = strings.TrimPrefix(name, u+".")
	}
	lp := m.c.proxy(name)
	if lp == nil || !lp.cfg.ProxyType().P2P {
		ctl.send(&wire.EndSession{SessionID: ps.SessionID, Reason: "no such service here"})
		return
	}
	peerIP, _ := netip.ParseAddr(ps.PeerIP) // invalid (an older server): one shared bucket
	release, ok := m.unproven.Acquire(peerIP, 0)
	if !ok {
		m.c.log.Warn("p2p session refused: too many sessions from one address wait for their handshake",
			"service", ps.Service, "visitor_ip", peerIP, "max", maxUnprovenPerSource)
		ctl.send(&wire.EndSession{SessionID: ps.SessionID, Reason: fmt.Sprintf(
			"too many sessions from %s wait for their handshake with %q", auth.Source(peerIP), ps.Service)})
		return
	}
	s := m.newSession(ctl, ps, sessionOpts{
		secret:          lp.cfg.SecretKey,
		relayOnly:       lp.cfg.ProxyType().RelayOnly,
		local:           relay.Local{Network: lp.cfg.Network(), Addr: lp.localAddr()},
		releaseUnproven: release,
	})
	s.log.Info("p2p session offered", "peer_public", ps.PeerPublic, "peer_private", ps.PeerPrivate)
	// A visitor that never completes its handshake must not hold the session long.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.ready:
		case <-s.done:
		case <-time.After(unprovenTimeout):
			s.end("visitor did not complete the handshake within "+unprovenTimeout.String(), true)
		}
	}()
}

// end closes a session; tellServer reports it so the server frees its relay and tells the peer.
func (m *p2pSessions) end(id []byte, reason string, tellServer bool) {
	if s := m.get(id); s != nil {
		s.end(reason, tellServer)
	}
}

func (s *p2pSession) end(reason string, tellServer bool) {
	s.endOnce.Do(func() {
		m := s.m
		m.mu.Lock()
		delete(m.byID, string(s.id))
		delete(m.byVirtual, s.path.vkey)
		m.mu.Unlock()
		close(s.done)
		s.punch.Close()
		if s.releaseUnproven != nil {
			s.releaseUnproven()
		}
		var stats []any
		if c := s.conn.Load(); c != nil {
			st := c.ConnectionStats()
			stats = []any{"packets_sent", st.PacketsSent, "bytes_sent", st.BytesSent, "packets_lost", st.PacketsLost,
				"packets_received", st.PacketsReceived, "bytes_received", st.BytesReceived, "min_rtt", st.MinRTT}
			c.CloseWithError(0, reason)
		}
		m.c.paths.remove(s.path)
		if tellServer {
			if ctl := s.link.ctl.Load(); ctl != nil {
				ctl.send(&wire.EndSession{SessionID: s.id, Reason: reason})
			}
		}
		if d := s.dgrams.Load(); d != nil {
			sent, received, dropped := d.Counts()
			stats = append(stats, "datagrams_sent", sent, "datagrams_received", received, "datagrams_dropped", dropped)
		}
		s.log.Info("p2p session ended", append([]any{"reason", reason, "streams", s.streams.Load(), "tcp_streams", s.tcpStreams.Load(),
			"relay_bytes", s.path.relayBytes.Load(), "direct_bytes", s.path.directByte.Load(),
			"largest_packet", s.path.act.Largest(), "packet_limit", s.path.act.Limit()}, stats...)...)
	})
}

// wait waits for the session's goroutines after end.
func (s *p2pSession) wait() { s.wg.Wait() }

// Path returns the session's current path name and the direct peer address, if any.
func (s *p2pSession) Path() (string, *net.UDPAddr) {
	if d := s.path.direct.Load(); d != nil {
		return PathDirect, d
	}
	return PathRelay, nil
}

func (m *p2pSessions) closeAll() {
	m.mu.Lock()
	all := make([]*p2pSession, 0, len(m.byID))
	for _, s := range m.byID {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		s.end("client closing", true)
		s.wait()
	}
}

// natLearned is called when the client has measured its NAT anew: sessions still relayed ask
// the server to re-offer candidates, which carry both sides' NAT reports now, so that both
// punch again at once with the strategy the pair allows (port prediction, or short attempts).
// Sessions start before the first measurement ends (it takes a second or two).
func (m *p2pSessions) natLearned() {
	m.mu.Lock()
	var relayed []*p2pSession
	for _, s := range m.byID {
		if s.path.direct.Load() == nil && !s.punch.Disabled() {
			relayed = append(relayed, s)
		}
	}
	m.mu.Unlock()
	for _, s := range relayed {
		if ctl := s.link.ctl.Load(); ctl != nil {
			ctl.send(&wire.Repunch{SessionID: s.id})
		}
	}
}

// networkChanged has every session probe from the client's new network at once, and asks the
// servers for fresh candidates on both sides; TCP paths, tied to the old network, are punched
// anew.
func (m *p2pSessions) networkChanged() {
	for _, s := range m.list() {
		s.punch.NetworkChanged()
		s.retcp("the client's network changed")
	}
	m.repunchAll()
}

// repunchAll asks the servers to send both sides of every session fresh candidates.
func (m *p2pSessions) repunchAll() {
	for _, s := range m.list() {
		if !s.punch.Disabled() {
			sessionHost{s}.Repunch()
		}
	}
}

// list returns the sessions.
func (m *p2pSessions) list() []*p2pSession {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*p2pSession, 0, len(m.byID))
	for _, s := range m.byID {
		out = append(out, s)
	}
	return out
}

// serverReconnected is called when a new session to l's server is up. Sessions whose relay
// the old session held keep their direct paths; those without one cannot relay any more and
// end, so that visitors build fresh ones through the new session.
func (m *p2pSessions) serverReconnected(l *serverLink) {
	m.mu.Lock()
	var stale []*p2pSession
	for _, s := range m.byID {
		if s.link == l && s.path.direct.Load() == nil {
			stale = append(stale, s)
		}
	}
	m.mu.Unlock()
	for _, s := range stale {
		s.end("server session was replaced", false)
	}
}

// acceptLoop accepts the QUIC connections of visitors (provider side).
func (m *p2pSessions) acceptLoop() {
	for {
		conn, err := m.c.peerLn.Accept(m.c.ctx)
		if err != nil {
			return
		}
		m.mu.Lock()
		s := m.byVirtual[key(conn.RemoteAddr().(*net.UDPAddr))]
		m.mu.Unlock()
		if s == nil || s.role != wire.RoleProvider || !s.conn.CompareAndSwap(nil, conn) {
			conn.CloseWithError(1, "no such session")
			continue
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.serveVisitor(conn) }()
	}
}

// serveVisitor runs the provider's end of a session: check the visitor's proof, answer with its
// own, then serve every stream the visitor opens.
func (s *p2pSession) serveVisitor(conn *quic.Conn) {
	defer s.end("connection closed", true)
	ctx, cancel := context.WithTimeout(s.m.c.ctx, 10*time.Second)
	st, err := conn.AcceptStream(ctx)
	cancel()
	if err != nil {
		return
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	hello, err := wire.ReadHello[*wire.PeerHello](st)
	if err != nil {
		s.log.Warn("bad hello from visitor", "err", err)
		return
	}
	exporter, err := auth.Exporter(conn.ConnectionState().TLS, "peer")
	if err != nil {
		return
	}
	refuse := func(code, why string) {
		wire.Write(st, &wire.PeerHelloResult{Code: code, Error: why})
		st.Close()
		time.Sleep(100 * time.Millisecond) // let the refusal reach the visitor
	}
	if string(hello.SessionID) != string(s.id) {
		refuse(wire.CodeAuth, "not this session")
		return
	}
	// The provider confirms the key first, so a visitor that guessed learns whether it did
	// from the answer and may leave without confirming: its guess is counted up front, and
	// given back only when its own confirmation checks out.
	done, ok, wait := s.m.secretFailures.Attempt(s.peerIP)
	if !ok {
		s.log.Warn("visitor refused: too many wrong secretKeys", "visitor_ip", s.peerIP, "retry_in", wait.Round(time.Second))
		refuse(wire.CodeRateLimited, fmt.Sprintf("too many wrong secretKeys from %s for service %q; retry in %s", s.peerIP, s.service, wait.Round(time.Second)))
		return
	}
	defer done(false) // (does nothing once done(true) ran)
	pake, share := auth.CPaceStart(s.secret, peerChannel(s.service), exporter)
	isk, err := pake.Key(hello.Share, false)
	if err != nil {
		s.log.Warn("visitor refused: invalid key share", "visitor_ip", s.peerIP)
		refuse(wire.CodeAuth, "invalid key share")
		return
	}
	// A visitor that knows this provider's TLS key from an earlier session proves secretKey in
	// its hello (wire.PeerHello.Proof): its streams are served at once.
	proven := hello.Proof != nil && auth.Verify(s.secret, exporter, auth.RoleVisitor, hello.Proof)
	if hello.Proof != nil && !proven {
		s.log.Warn("visitor refused: wrong secretKey", "service", s.service, "visitor_ip", s.peerIP)
		refuse(wire.CodeAuth, fmt.Sprintf("wrong secretKey for service %q", s.service))
		return
	}
	kind := s.local.Network
	udp := kind == "udp" && s.startDatagrams(conn)
	if err := wire.Write(st, &wire.PeerHelloResult{Share: share, Proof: auth.CPaceConfirm(isk, auth.RoleProvider), Kind: kind, Datagrams: udp}); err != nil {
		return
	}
	confirmed := func() bool {
		confirm, err := wire.ReadHello[*wire.PeerConfirm](st)
		st.Close()
		return err == nil && auth.CPaceVerify(isk, auth.RoleVisitor, confirm.Proof)
	}
	if proven {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); confirmed() }() // (read to the end; the proof sufficed)
	} else if !confirmed() {
		s.log.Warn("visitor refused: wrong secretKey", "service", s.service, "visitor_ip", s.peerIP)
		return
	}
	done(true)
	s.keyed(isk)
	s.markReady()
	for {
		st, err := conn.AcceptStream(s.m.c.ctx)
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.servePeerStream(session.QUICStream(st))
		}()
	}
}

// startDatagrams begins dealing the connection's datagrams to udp flows, if the peer takes
// datagrams at all.
func (s *p2pSession) startDatagrams(conn *quic.Conn) bool {
	d := session.NewFlowDatagrams(conn)
	if d == nil {
		return false
	}
	s.dgrams.Store(d)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); d.Run(conn.Context()) }()
	return true
}

// servePeerStream serves a stream the visitor opened, on the QUIC session or the TCP path: a
// user's connection to the service, or the setting up of a TCP path.
func (s *p2pSession) servePeerStream(st session.Stream) {
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	msg, err := wire.Read(st)
	if err != nil {
		st.Reset()
		return
	}
	st.SetReadDeadline(time.Time{})
	var hdr *wire.PeerStream
	switch m := msg.(type) {
	case *wire.PeerStream:
		hdr = m
	case *wire.TCPPath:
		if _, onQUIC := session.StreamID(st); !onQUIC {
			st.Reset()
			return
		}
		// The visitor asks for a TCP path only when it has none: one we still hold is dead on
		// its side (it noticed first), and goes.
		if old := s.tcp.Load(); old != nil {
			old.sess.Close("the visitor punches a new tcp path")
		}
		s.answerTCP(st, m)
		return
	default:
		st.Reset()
		return
	}
	if d := s.dgrams.Load(); d != nil && hdr.Datagrams {
		st = d.WithFlow(st)
		defer st.Close() // unregisters the flow also when the service cannot be reached
	}
	s.streams.Add(1)
	lp := s.m.c.proxy(s.localName())
	var ctr relay.Counters
	local := s.local
	if lp != nil {
		ctr = relay.Counters{ToLocal: &lp.bytesIn, FromLocal: &lp.bytesOut}
		lp.conns.Add(1)
		defer lp.conns.Add(-1)
		local = lp.local(local.Network, hdr.Src, hdr.Dst)
	}
	if err := relay.ServeStream(st, local, ctr); err != nil {
		s.log.Warn("local service unreachable", "src", hdr.Src, "err", err)
	}
}

func (s *p2pSession) localName() string {
	if u := s.m.c.cfg.User; u != "" {
		return strings.TrimPrefix(s.service, u+".")
	}
	return s.service
}

func (s *p2pSession) markReady() {
	start := s.created
	if !s.requested.IsZero() {
		start = s.requested
	}
	s.readyAt.Store(int64(time.Since(start)))
	close(s.ready)
	if s.role == wire.RoleProvider {
		s.releaseUnproven()
		// The server holds the session as unproven (and ends it soon) until told otherwise.
		if ctl := s.link.ctl.Load(); ctl != nil {
			ctl.send(&wire.Traffic{Sessions: []wire.SessionTraffic{s.traffic()}})
		}
	}
	p, d := s.Path()
	args := []any{"path", p, "time_to_ready", time.Duration(s.readyAt.Load()).Round(time.Microsecond), "pipelined", s.pipelined.Load()}
	if d != nil {
		args = append(args, "remote", d.String())
	}
	s.log.Info("p2p session ready", args...)
	if s.role == wire.RoleVisitor {
		s.startTCP()
	}
}

// dialProvider runs the visitor's end of the handshake: QUIC to the session's virtual address
// (relayed at first), then the mutual secret proof.
//
// A provider met before saves a round trip: once a provider has proved the secretKey, the
// visitor pins its TLS certificate (a key of the provider process, random, so it tells an
// eavesdropper nothing about the secret). A later session whose handshake shows the same
// certificate is end to end with that provider already, so the session is ready as soon as the
// visitor's proof is sent: the first stream follows the proof in the same flight instead of a
// round trip later. The provider still serves no stream before it has checked the proof, and
// its answer is still checked (a refusal ends the session).
func (s *p2pSession) dialProvider(ctx context.Context) error {
	c := s.m.c
	conn, err := c.tr.Dial(ctx, s.path.virtual, c.peerClientTLS, c.peerQUICConfig())
	if err != nil {
		return fmt.Errorf("quic handshake with provider of %q: %w", s.service, err)
	}
	s.conn.Store(conn)
	var cert []byte
	if certs := conn.ConnectionState().TLS.PeerCertificates; len(certs) > 0 {
		cert = certs[0].Raw
	}
	pin := pinKey(s.service, s.secret)
	known, _ := s.m.pins.Load(pin)
	pinned := cert != nil && known != nil && bytes.Equal(known.([]byte), cert)
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("open hello stream: %w", err)
	}
	exporter, err := auth.Exporter(conn.ConnectionState().TLS, "peer")
	if err != nil {
		return err
	}
	pake, share := auth.CPaceStart(s.secret, peerChannel(s.service), exporter)
	hello := &wire.PeerHello{Service: s.service, SessionID: s.id, Share: share}
	if pinned && s.pipeline {
		// Only the provider that proved secretKey before holds this TLS key: it may see a proof
		// of the secret, and serves our streams without waiting for our confirmation.
		hello.Proof = auth.Proof(s.secret, exporter, auth.RoleVisitor)
	}
	if err := wire.Write(st, hello); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		st.SetReadDeadline(dl)
	} else {
		st.SetReadDeadline(time.Now().Add(visitorWait))
	}
	result := func() error {
		defer st.Close()
		res, err := wire.ReadAs[*wire.PeerHelloResult](st)
		if err != nil {
			return fmt.Errorf("read hello result: %w", err)
		}
		if res.Error != "" {
			return &SecretError{Code: res.Code, Reason: res.Error}
		}
		isk, err := pake.Key(res.Share, true)
		if err != nil || !auth.CPaceVerify(isk, auth.RoleProvider, res.Proof) {
			// Either side may hold the wrong key: the visitor cannot tell which, and neither can
			// a provider that would tell it (it never learns our key). Final, as a refusal is.
			return &SecretError{Code: wire.CodeAuth, Reason: "the provider could not prove the secretKey: wrong secretKey (on either side), or not the provider"}
		}
		if err := wire.Write(st, &wire.PeerConfirm{Proof: auth.CPaceConfirm(isk, auth.RoleVisitor)}); err != nil {
			return fmt.Errorf("send confirmation: %w", err)
		}
		if cert != nil {
			s.m.pins.Store(pin, cert)
		}
		if res.Datagrams && res.Kind == "udp" {
			s.startDatagrams(conn)
		}
		s.keyed(isk)
		s.markReady()
		return nil
	}
	if pinned && s.pipeline {
		// The provider is known: streams may go now; its answer is checked when it comes.
		s.pipelined.Store(true)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := result(); err != nil {
				s.log.Warn("provider's answer refused", "err", err)
				s.end(err.Error(), true)
			}
		}()
	} else if err := result(); err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-conn.Context().Done():
			s.end("connection to provider closed", true)
		case <-s.done:
		}
	}()
	return nil
}

// SecretError is a refused secretKey: by the provider (Code says why), or a provider that could
// not prove it.
type SecretError struct{ Code, Reason string }

// peerChannel is the CPace channel identifier of a service's sessions: what the key is for.
func peerChannel(service string) []byte { return []byte("xp2p peer v1\x00" + service) }

// keyed takes the key the peers' PAKE agreed on: the probes' integrity key derives from it, so
// that a probe gives no offline test of secretKey to whoever receives one.
func (s *p2pSession) keyed(isk []byte) {
	s.punch.SetKey(auth.Derive(isk, "xp2p probe v2", s.id))
}

func (e *SecretError) Error() string { return "provider refused: " + e.Reason }

// openStream opens a stream to the provider for one local user.
func (s *p2pSession) openStream(ctx context.Context, src, dst string) (session.Stream, error) {
	if tp := s.tcp.Load(); tp != nil {
		// The direct TCP path first; a path that just died leaves the stream to QUIC.
		if st, err := tp.sess.OpenStream(ctx); err == nil {
			if err := wire.Write(st, &wire.PeerStream{Src: src, Dst: dst}); err == nil {
				s.streams.Add(1)
				s.tcpStreams.Add(1)
				return st, nil
			}
			st.Reset()
		}
	}
	conn := s.conn.Load()
	if conn == nil {
		return nil, errors.New("session not connected")
	}
	qs, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	st := session.QUICStream(qs)
	hdr := &wire.PeerStream{Src: src, Dst: dst}
	if d := s.dgrams.Load(); d != nil {
		// Registered before the header goes out: the provider's first answer may follow it at once.
		st = d.WithFlow(st)
		hdr.Datagrams = true
	}
	if err := wire.Write(st, hdr); err != nil {
		st.Reset()
		return nil, err
	}
	s.streams.Add(1)
	return st, nil
}

func (s *p2pSession) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return s.conn.Load() != nil
	}
}

// sessionHost is the session as its traversal sees it (traversal.Host).
type sessionHost struct{ s *p2pSession }

var _ traversal.Host = sessionHost{}

func (h sessionHost) SetPath(p *traversal.Path) {
	h.s.m.c.paths.setDirect(h.s.path, p)
	if p != nil && p.Moved {
		h.s.retcp("the peer's network changed")
	}
}
func (h sessionHost) AddKnown(addr netip.AddrPort) { h.s.m.c.paths.addKnown(h.s.path, addr) }

// Deliver feeds a run of packets that came in on an extra socket into the client's socket as
// the session's, relay-framed (so that they reach the session's virtual address), in one GSO
// write that the socket reads back with GRO as one.
func (h sessionHost) Deliver(run []byte, segSize int) {
	var hdr [wire.RelayHeaderLen]byte
	wire.PutRelayHeader(hdr[:], h.s.path.token)
	framed := make([]byte, 0, len(run)+(len(run)/segSize+1)*wire.RelayHeaderLen)
	for off := 0; off < len(run); off += segSize {
		framed = append(append(framed, hdr[:]...), run[off:min(off+segSize, len(run))]...)
	}
	h.s.m.c.injectSegments(framed, wire.RelayHeaderLen+segSize)
}

func (h sessionHost) SendRelay(b []byte) { h.s.m.c.paths.sendRelayRaw(h.s.m.c.sock, h.s.path, b) }

func (h sessionHost) Repunch() {
	if ctl := h.s.link.ctl.Load(); ctl != nil {
		ctl.send(&wire.Repunch{SessionID: h.s.id})
	}
}

// offerOf reads the server's description of the peer. What does not parse is left out (the
// server validated the message; an address it let through that we cannot read is no candidate).
func offerOf(ps *wire.PeerSession) traversal.Offer {
	var o traversal.Offer
	o.Public, _ = netip.ParseAddrPort(ps.PeerPublic)
	o.PublicAlt, _ = netip.ParseAddrPort(ps.PeerPublicAlt)
	o.Mapped, _ = netip.ParseAddrPort(ps.PeerMapped)
	for _, a := range ps.PeerPrivate {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			o.Private = append(o.Private, ap)
		}
	}
	o.NAT, _ = nat.ParseBehavior(ps.PeerNAT)
	return o
}
