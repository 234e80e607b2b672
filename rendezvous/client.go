package rendezvous

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/nat"
	"github.com/xp2p/xp2p/relay"
	"github.com/xp2p/xp2p/vhost"
)

// client is one logged-in client session on the server.
type client struct {
	s      *Server
	sess   session.Session
	ctrl   session.Stream
	login  *wire.Login
	id     string
	ident  identity // for per-client limits (quotas.go)
	remote netip.AddrPort
	since  time.Time
	log    *slog.Logger

	writeMu sync.Mutex

	// nat is the client's NAT behaviour code as it last reported it (Login, then NATReport).
	nat atomic.Pointer[string]
	// addrKey checks the client's address registrations (nat.RegisterKey); publicAlt is the
	// public address of the other family than its session's they showed (nil: none).
	addrKey   []byte
	publicAlt atomic.Pointer[netip.AddrPort]
	// private are the client's LAN candidates: its login's, or those of its last report
	// (it moved to another network).
	private atomic.Pointer[[]string]
	// mapped is the address the client's router maps to its UDP socket, "" if none.
	mapped atomic.Pointer[string]

	// udpAddr caches the client's current UDP address for the packet relay (nil over TCP).
	udpAddr atomic.Pointer[net.UDPAddr]
	// relayFrames queues relayed packets for a client without UDP (its TCP relay stream; nil
	// over QUIC, where they go on the UDP socket).
	relayFrames chan []byte

	work workPool
	// workKey is the control session's key its work connections prove (both ways): exported
	// from the session's TLS, so only this client and this server know it.
	workKey []byte

	// dgrams carries udp proxies' datagrams on a QUIC session whose client takes them (nil: none).
	dgrams *session.FlowDatagrams

	// done is closed when the session is over and its proxies and sessions are gone.
	done   chan struct{}
	pingMu sync.Mutex
	pings  map[uint64]chan struct{}
	pingN  uint64
	probe  *livenessProbe // the liveness check running now (nil: none)
	// aliveAt is when the client last answered a liveness check (unix nanos).
	aliveAt atomic.Int64

	// Guarded by s.mu: the names the client claimed (without user prefix) → kind, its P2P
	// sessions by id, and whether its session is ending (it may claim nothing more); asking
	// holds the names it asked for that wait for the liveness check of their holders.
	proxies  map[string]string
	sessions map[string]*p2pSession
	left     bool
	asking   map[string]bool
	// unproven bounds the sessions to this client as a provider that wait for their visitor's
	// proof (handshakes.go).
	unproven *auth.SourceSlots
}

// p2pSession is a visitor↔provider session the server paired and may relay.
type p2pSession struct {
	id       []byte
	service  string
	visitor  *client
	provider *client
	relay    *relay.RelaySession
	created  time.Time

	// Guarded by s.mu: whether the provider reported the visitor's proof, and what the session
	// holds until then (handshakes.go).
	proven          bool
	releaseUnproven func()
	expiry          *time.Timer
}

func newClient(s *Server, sess session.Session, ctrl session.Stream, login *wire.Login, remote netip.AddrPort) *client {
	idb := make([]byte, 6)
	rand.Read(idb)
	c := &client{
		s:        s,
		sess:     sess,
		ctrl:     ctrl,
		login:    login,
		id:       hex.EncodeToString(idb),
		ident:    identityOf(login.User, remote.Addr()),
		remote:   remote,
		since:    time.Now(),
		done:     make(chan struct{}),
		pings:    map[uint64]chan struct{}{},
		proxies:  map[string]string{},
		sessions: map[string]*p2pSession{},
		asking:   map[string]bool{},
	}
	c.log = s.log.With("client", c.id, "remote", remote.String())
	if _, err := nat.ParseBehavior(login.NAT); err == nil {
		c.nat.Store(&login.NAT)
	}
	c.mapped.Store(&login.Mapped)
	c.dgrams = session.NewFlowDatagrams(session.Conn(sess))
	c.unproven = s.newUnprovenSlots()
	c.work.max = s.cfg.Transport.MaxPoolCount
	if c.work.max <= 0 {
		c.work.max = defaultMaxIdleWork
	}
	if sess.Transport() == session.TransportQUIC {
		c.udpAddr.Store(net.UDPAddrFromAddrPort(remote))
	} else {
		c.relayFrames = make(chan []byte, 512)
	}
	return c
}

// ID names the client in logs.
func (c *client) ID() string { return c.id }

// Identity is who the client is for per-client limits and the figures it leaves (relay.Owner).
func (c *client) Identity() string { return c.ident.String() }

// OpenStream opens a work stream to the client (relay.Owner).
func (c *client) OpenStream(ctx context.Context) (session.Stream, error) {
	return c.sess.OpenStream(ctx)
}

// FlowDatagrams carries udp flows' datagrams beside their streams, or is nil (relay.Owner).
func (c *client) FlowDatagrams() *session.FlowDatagrams { return c.dgrams }

// RelayUDPAddr is the client's current UDP address (relay.Endpoint). QUIC may have migrated the
// session to a new address after a NAT rebinding, so it is read from the session each time.
func (c *client) RelayUDPAddr() *net.UDPAddr {
	if c.sess.Transport() != session.TransportQUIC {
		return nil
	}
	cur := c.udpAddr.Load()
	if ra, ok := c.sess.RemoteAddr().(*net.UDPAddr); ok && (cur == nil || !ra.IP.Equal(cur.IP) || ra.Port != cur.Port) {
		c.udpAddr.Store(ra)
		return ra
	}
	return cur
}

// SendRelayFrame queues a relayed packet for a client on TCP (relay.Endpoint).
func (c *client) SendRelayFrame(pkt []byte) bool {
	select {
	case c.relayFrames <- pkt:
		return true
	default:
		return false
	}
}

// send writes one control message; writes from several goroutines are serialised.
func (c *client) send(m wire.Message) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.ctrl.SetWriteDeadline(time.Now().Add(controlWriteLimit))
	err := wire.Write(c.ctrl, m)
	c.ctrl.SetWriteDeadline(time.Time{})
	return err
}

// privateAddrs are the client's LAN candidates as it last reported them.
func (c *client) privateAddrs() []string {
	if p := c.private.Load(); p != nil {
		return *p
	}
	return c.login.PrivateAddrs
}

// publicAddr is the client's public UDP candidate as the server observes it ("" over TCP).
func (c *client) publicAddr() string {
	if a := c.RelayUDPAddr(); a != nil {
		return addrPort(a).String()
	}
	return ""
}

func (c *client) run() {
	s := c.s
	s.mu.Lock()
	old := s.clients[c.login.RunID]
	s.clients[c.login.RunID] = c
	s.byID[c.id] = c
	s.mu.Unlock()
	if old != nil {
		// The same client reconnected, or restarted (its key survives in its state directory),
		// while its old session may not have timed out yet.
		// Its names and quota are freed before this session claims them again.
		c.log.Info("replacing the session of the same client", "old_client", old.id)
		old.sess.Close("replaced by a new session of the same client")
		select {
		case <-old.done:
		case <-time.After(holderTakeoverWait):
		}
	}
	args := []any{"transport", c.sess.Transport(), "hostname", c.login.Hostname, "version", c.login.Version}
	if c.login.Mapped != "" {
		args = append(args, "mapped", c.login.Mapped, "mapped_by", c.login.MappedBy)
	}
	c.log.Info("client logged in", args...)
	s.Events.clientOnline(c)

	ctx, cancel := context.WithCancel(s.ctx)
	var wg sync.WaitGroup
	if c.sess.Transport() == session.TransportTCP {
		// Over QUIC a client opens no stream after its control stream (quicConfig admits few).
		wg.Add(1)
		go func() { defer wg.Done(); c.acceptStreams(ctx) }()
	}
	if c.dgrams != nil {
		wg.Add(1)
		go func() { defer wg.Done(); c.dgrams.Run(ctx) }()
	}
	// The control loop's read ends with the session; the server's shutdown ends it here.
	stopReset := context.AfterFunc(ctx, c.ctrl.Reset)
	err := c.controlLoop()
	cancel()
	stopReset()
	c.sess.Close("bye")
	wg.Wait()
	c.cleanup()
	close(c.done)
	c.log.Info("client disconnected", "reason", errString(err))
}

func errString(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

func (c *client) cleanup() {
	s := c.s
	c.closeWork()
	s.mu.Lock()
	c.left = true
	if s.clients[c.login.RunID] == c {
		delete(s.clients, c.login.RunID)
	}
	if s.byID[c.id] == c {
		delete(s.byID, c.id)
	}
	for short := range c.proxies {
		s.releaseLocked(c, proxyKey{c.login.User, short})
	}
	s.mu.Unlock()
	// After the names: a registration under way finds its claim gone and withdraws what it
	// published itself, if this comes too early to withdraw it.
	s.unpublishOwner(c)
	s.mu.Lock()
	var ended []*p2pSession
	for _, ps := range c.sessions {
		ended = append(ended, ps)
	}
	s.mu.Unlock()
	for _, ps := range ended {
		s.endSession(ps, c, "peer disconnected")
	}
	s.Events.clientOffline(c)
}

// controlLoop handles the client's control messages until the stream ends.
func (c *client) controlLoop() error {
	for {
		msg, err := wire.Read(c.ctrl)
		if err != nil {
			if session.IsClosed(err) {
				return nil
			}
			// A malformed message ends this client's session only.
			return fmt.Errorf("control stream: %w", err)
		}
		switch m := msg.(type) {
		case *wire.NewProxy:
			c.newProxy(m)
		case *wire.CloseProxy:
			c.closeProxy(m.Name)
		case *wire.Connect:
			c.connect(m)
		case *wire.EndSession:
			c.s.mu.Lock()
			ps := c.sessions[string(m.SessionID)]
			c.s.mu.Unlock()
			if ps != nil {
				c.s.endSession(ps, c, m.Reason)
			}
		case *wire.Repunch:
			c.repunch(m.SessionID)
		case *wire.Traffic:
			c.noteProven(m)
			c.s.Events.traffic(c, m)
		case *wire.NATReport:
			c.setNAT(m.NAT)
			if old := c.mapped.Swap(&m.Mapped); *old != m.Mapped {
				c.log.Info("client port mapping", "mapped", m.Mapped, "mapped_by", m.MappedBy)
			}
			if m.PrivateAddrs != nil {
				addrs := m.PrivateAddrs
				c.private.Store(&addrs)
				c.log.Info("client addresses changed", "private", addrs, "public", c.publicAddr())
			}
		case *wire.Ping:
			c.send(&wire.Pong{Seq: m.Seq})
		case *wire.Pong:
			c.pingMu.Lock()
			if ch := c.pings[m.Seq]; ch != nil {
				close(ch)
				delete(c.pings, m.Seq)
			}
			c.pingMu.Unlock()
		default:
			return fmt.Errorf("unexpected %s on the control stream", msg.MessageType())
		}
	}
}

func (c *client) newProxy(m *wire.NewProxy) { c.newProxyTry(m, true) }

// newProxyTry registers a proxy. If another client holds its name alone, or its port, that
// client must prove it is alive (takeOver): a provider that crashed and restarted gets its
// names back a few seconds after it asks instead of after the dead session's timeout, while a
// live one keeps them. mayEvict limits this to one check per request. A load-balancing group
// never takes a name held alone, whether its holder is alive or not.
func (c *client) newProxyTry(m *wire.NewProxy, mayEvict bool) {
	s := c.s
	key := proxyKey{c.login.User, m.Name}
	name := key.String()
	s.mu.Lock()
	holder, err := s.claimLocked(c, key, m.Type, m.Group)
	s.mu.Unlock()
	if err != nil {
		c.refuseProxy(m.Name, err, claimCode(err))
		return
	}
	if holder != nil {
		inUse := fmt.Errorf("proxy name %q is %w", name, errNameHeld)
		if !mayEvict {
			c.refuseProxy(m.Name, inUse, wire.CodeInUse)
			return
		}
		c.takeOver(m, []*client{holder}, inUse)
		return
	}
	reply := &wire.NewProxyResult{Name: m.Name}
	if !wire.IsP2PKind(m.Type) {
		req := *m
		req.Name = name
		addr, err := s.publish(c, &req)
		if err != nil {
			s.mu.Lock()
			s.releaseLocked(c, key)
			s.mu.Unlock()
			if holders := c.holdersOf(&req); mayEvict && len(holders) > 0 && errors.Is(err, relay.ErrPortInUse) {
				c.takeOver(m, holders, fmt.Errorf("remotePort %d: %w by another client", m.RemotePort, relay.ErrPortInUse))
				return
			}
			if holders := c.holdersOf(&req); mayEvict && len(holders) > 0 && errors.Is(err, vhost.ErrRouteInUse) {
				c.takeOver(m, holders, err)
				return
			}
			c.refuseProxy(m.Name, err, refusalCode(err))
			return
		}
		reply.RemoteAddr = addr
	}
	s.mu.Lock()
	ok := s.confirmLocked(c, key)
	s.mu.Unlock()
	if !ok {
		s.unpublish(c, name) // the session ended while publishing
		return
	}
	if wire.IsP2PKind(m.Type) {
		c.log.Info("xp2p service online", "service", name)
	} else {
		c.log.Info("proxy online", "proxy", name, "type", m.Type, "addr", reply.RemoteAddr)
	}
	c.send(reply)
}

func (c *client) closeProxy(short string) {
	s := c.s
	key := proxyKey{c.login.User, short}
	s.unpublish(c, key.String())
	s.mu.Lock()
	s.releaseLocked(c, key)
	delete(c.asking, short)
	s.mu.Unlock()
	c.log.Info("proxy closed", "proxy", key.String())
}

// connect pairs this client (a visitor) with the provider of an xp2p service and tells both.
func (c *client) connect(m *wire.Connect) {
	s := c.s
	user := m.User
	if user == "" {
		user = c.login.User
	}
	name := proxyKey{user, m.Service}.String()
	fail := func(format string, args ...any) {
		c.send(&wire.ConnectResult{ReqID: m.ReqID, Error: fmt.Sprintf(format, args...)})
	}
	s.mu.Lock()
	prov := s.providerLocked(proxyKey{user, m.Service})
	if prov == nil {
		s.mu.Unlock()
		fail("no xp2p service named %q is online", name)
		return
	}
	if len(c.sessions) >= s.cfg.Transport.MaxRelaySessions || len(prov.sessions) >= s.cfg.Transport.MaxRelaySessions*4 {
		s.mu.Unlock()
		fail("too many P2P sessions (transport.maxRelaySessions)")
		return
	}
	id := make([]byte, wire.SessionIDLen)
	rand.Read(id)
	ps := &p2pSession{id: id, service: name, visitor: c, provider: prov, created: time.Now()}
	if err := s.holdUnprovenLocked(ps); err != nil {
		s.mu.Unlock()
		fail("%v", err)
		return
	}
	ps.relay = s.packets.NewSession(c, prov)
	s.sessions[string(id)] = ps
	c.sessions[string(id)] = ps
	prov.sessions[string(id)] = ps
	s.mu.Unlock()

	s.Events.p2pPaired(ps)
	// The provider learns of the session first: the visitor's first relayed packet may follow
	// its ConnectResult by one hop only.
	if err := prov.send(ps.offer(wire.RoleProvider)); err != nil {
		s.endSession(ps, nil, "provider unreachable")
		fail("provider of %q unreachable: %v", name, err)
		return
	}
	c.send(&wire.ConnectResult{ReqID: m.ReqID, Session: ps.offer(wire.RoleVisitor)})
	c.log.Info("p2p session paired", "service", name, "session", hex.EncodeToString(id[:4]),
		"visitor", c.publicAddr(), "provider", prov.publicAddr())
}

// offer describes the session to one side: the other side's candidates and this side's token.
func (ps *p2pSession) offer(role string) *wire.PeerSession {
	peer, leg := ps.provider, ps.relay.Visitor
	if role == wire.RoleProvider {
		peer, leg = ps.visitor, ps.relay.Provider
	}
	return &wire.PeerSession{
		SessionID:     ps.id,
		Service:       ps.service,
		Role:          role,
		PeerPublic:    peer.publicAddr(),
		PeerIP:        peer.remote.Addr().String(),
		PeerPrivate:   peer.privateAddrs(),
		PeerNAT:       peer.natCode(),
		PeerMapped:    *peer.mapped.Load(),
		PeerPublicAlt: peer.publicAltString(),
		RelayToken:    leg.Token[:],
	}
}

func (c *client) repunch(id []byte) {
	c.s.mu.Lock()
	ps := c.sessions[string(id)]
	c.s.mu.Unlock()
	if ps == nil {
		c.send(&wire.EndSession{SessionID: id, Reason: "unknown session"})
		return
	}
	ps.provider.send(ps.offer(wire.RoleProvider))
	ps.visitor.send(ps.offer(wire.RoleVisitor))
}

// endSession forgets a P2P session and tells the side that did not end it.
func (s *Server) endSession(ps *p2pSession, by *client, reason string) {
	s.mu.Lock()
	if _, ok := s.sessions[string(ps.id)]; !ok {
		s.mu.Unlock()
		return
	}
	delete(s.sessions, string(ps.id))
	delete(ps.visitor.sessions, string(ps.id))
	delete(ps.provider.sessions, string(ps.id))
	ps.endUnprovenLocked()
	s.mu.Unlock()
	s.packets.Remove(ps.relay)
	s.Events.p2pEnded(ps)
	for _, side := range []*client{ps.visitor, ps.provider} {
		if side != by {
			side.send(&wire.EndSession{SessionID: ps.id, Reason: reason})
		}
	}
}

// acceptStreams serves the streams a client opens: its TCP relay stream. It returns when the
// session ends, after the streams it served.
func (c *client) acceptStreams(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := c.sess.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.serveStream(ctx, st) }()
	}
}

func (c *client) serveStream(ctx context.Context, st session.Stream) {
	st.SetReadDeadline(time.Now().Add(loginTimeout))
	hdr, err := wire.ReadAs[*wire.RelayStream](st)
	if err != nil {
		st.Reset()
		return
	}
	st.SetReadDeadline(time.Time{})
	_ = hdr
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case pkt := <-c.relayFrames:
				if err := wire.WriteDatagram(st, pkt); err != nil {
					st.Reset()
					return
				}
			case <-ctx.Done():
				st.Close()
				return
			}
		}
	}()
	buf := make([]byte, wire.MaxRelayFrame)
	for {
		n, err := wire.ReadDatagram(st, buf)
		if err != nil {
			break
		}
		c.s.packets.HandleFrame(buf[:n], c)
	}
	cancel()
	<-done
}

// setNAT records the client's report of its NAT behaviour. A code this server cannot read
// (a newer client's, or garbage) is logged and kept out of what peers are told.
func (c *client) setNAT(code string) {
	b, err := nat.ParseBehavior(code)
	if err != nil {
		c.log.Warn("client sent an unreadable NAT report", "err", err)
		return
	}
	c.nat.Store(&code)
	c.log.Info("client NAT", "nat", b.String())
}

// natCode is the client's NAT behaviour code ("" if it did not report one).
func (c *client) natCode() string {
	if p := c.nat.Load(); p != nil {
		return *p
	}
	return ""
}

// natName is the client's NAT behaviour for people: "port-restricted cone (mapping
// endpoint-independent, filtering address-and-port-dependent)"; "" if not reported.
func (c *client) natName() string {
	b, _ := nat.ParseBehavior(c.natCode())
	if !b.Known() {
		return ""
	}
	return b.String()
}
