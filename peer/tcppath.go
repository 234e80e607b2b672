package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/traversal"
)

// The direct TCP path of a session (TCP hole punching, traversal.TCPPuncher): TLS 1.3 over one
// TCP connection straight between the two clients, carrying yamux streams. Bulk streams then
// ride the kernel's TCP and its congestion control (BBR or cubic, as the host has it) instead of
// quic-go's: quic-go's loss-based cubic falls to a few percent of a TCP path's rate at 0.5 %
// random loss, and costs about four times the CPU per byte of TLS over TCP (FACTS.md).
//
// The QUIC session stays: it carries the first bytes (relayed while punching), udp flows'
// datagrams, and the streams opened while no TCP path is up. A stream never moves: new streams
// take the TCP path once it is up; if it dies, its streams end with it, new streams go back to
// QUIC, and the visitor punches a new TCP path (startTCP).
//
// Authentication: the TCP path is the QUIC session's, which both ends already proved (the
// secretKey proof, bound to QUIC's TLS session). Each end proves over the new TLS session that
// it holds a key exported from the QUIC session's (high entropy, known to the two ends alone),
// bound to the new session's exporter: a man in the middle of the TCP path cannot answer, and a
// transcript gives nothing to test a secret against.

const (
	tcpPunchTimeout = 8 * time.Second
	tcpExporter     = "xp2p tcp path"
)

// tcpPath is a session's TCP path once it is up.
type tcpPath struct {
	sess   session.Session
	remote netip.AddrPort
	upAt   time.Duration // from the session's start
}

// tcpWanted reports whether the session tries a TCP path: a tcp service, P2P allowed, and no
// NAT on either side that maps a new port per destination.
func (s *p2pSession) tcpWanted() bool {
	if s.punch.Disabled() || s.m.c.cfg.Transport.DisableTCPPath {
		return false
	}
	if s.role == wire.RoleProvider && s.local.Network != "tcp" || s.role == wire.RoleVisitor && !s.pipeline {
		return false // udp flows keep QUIC's datagrams
	}
	plan := s.punch.Plan()
	return traversal.TCPWorth(plan.Ours, plan.Peer)
}

// tcpCandidates is the address this side's punching port may be reached at: when the peer is
// behind the same public address (the same NAT), its first LAN address; else its public
// address as the server saw its session (unspecified when the session runs over TCP: the server
// reports it for UDP only, and the peer takes the address the server paired it with anyway, see
// peerTCPAddr); with the punching port. One address a side: both connects are then the two ends
// of one connection (with several, each side could pick a different one).
func (s *p2pSession) tcpCandidates(port int) []string {
	public := s.ourPublic()
	if s.behindOurNAT() {
		for _, a := range s.m.c.privateAddrs() {
			if ap, err := netip.ParseAddrPort(a); err == nil {
				return []string{netip.AddrPortFrom(ap.Addr(), uint16(port)).String()}
			}
		}
	}
	return []string{netip.AddrPortFrom(public, uint16(port)).String()}
}

// ourPublic is this side's public address as the server saw its session (unspecified when
// unknown).
func (s *p2pSession) ourPublic() netip.Addr {
	public := netip.IPv4Unspecified()
	if s.punchNetwork() == "tcp6" {
		public = netip.IPv6Unspecified()
	}
	if ctl := s.link.ctl.Load(); ctl != nil {
		if ap, err := netip.ParseAddrPort(ctl.observed); err == nil {
			public = ap.Addr().Unmap()
		}
	}
	return public
}

// behindOurNAT reports whether the peer comes from our own public address: one NAT, one LAN.
func (s *p2pSession) behindOurNAT() bool {
	return s.peerIP.IsValid() && s.ourPublic() == s.peerIP.Unmap()
}

// peerTCPAddr is where to connect to the peer's punching port: its LAN address when it sent one
// and it is behind our NAT, else the public address the server paired us with, whatever the
// peer believes its own to be. A LAN address from a peer elsewhere is not ours to connect to:
// the peer (which proved the secretKey, but may want more than the service) would have this
// side open connections to any host and port of its own LAN, or its loopback.
func (s *p2pSession) peerTCPAddr(m *wire.TCPPath) []netip.AddrPort {
	for _, a := range m.Addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || ap.Port() == 0 {
			continue
		}
		addr := ap.Addr().Unmap()
		local := addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLoopback()
		if !local || addr.IsUnspecified() || !s.behindOurNAT() {
			peer := s.peerIP
			if p := s.punch.Path(); p != nil && p.Remote.Addr().Unmap().Is4() == peer.Unmap().Is4() {
				// The direct path's: where the peer is now, if it moved since the pairing.
				peer = p.Remote.Addr()
			}
			if !peer.IsValid() {
				return nil
			}
			addr = peer.Unmap()
		}
		return []netip.AddrPort{netip.AddrPortFrom(addr, ap.Port())}
	}
	return nil
}

// punchNetwork is the family of the punch: the peer's, as the server paired it (its session to
// the server may run on either family of a dual-stack socket).
func (s *p2pSession) punchNetwork() string {
	if s.peerIP.IsValid() && !s.peerIP.Unmap().Is4() {
		return "tcp6"
	}
	return "tcp4"
}

// punchContext bounds a punch by d, the client's life and the session's.
func (s *p2pSession) punchContext(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(s.m.c.ctx, d)
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// Re-punching (visitor side): a TCP path that dies (a NAT that dropped its mapping, a reset, a
// peer's network change) is punched again, its streams ending with it and new streams on QUIC
// meanwhile; a punch that fails is tried again later, backing off, and given up after
// tcpPunchTries failures in a row (a pair whose NATs will not let TCP through costs five tries,
// and an attacker in the way of the TCP leg, who can never prove the session, no more).
const (
	tcpPunchTries    = 5
	tcpRepunchDelay  = time.Second // after a path died
	tcpRetryFirstGap = 2 * time.Second
)

// startTCP keeps a TCP path up (visitor side, once the session is ready): it punches one, waits
// for it to die, and punches again, until the session ends or the punches keep failing.
func (s *p2pSession) startTCP() {
	if !s.tcpWanted() {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		failures, wait := 0, time.Duration(0)
		for {
			if wait > 0 {
				select {
				case <-time.After(wait):
				case <-s.done:
					return
				case <-s.m.c.ctx.Done():
					return
				}
			}
			ctx, cancel := s.punchContext(tcpPunchTimeout + 5*time.Second)
			tp, err := s.punchTCP(ctx)
			cancel()
			if err != nil {
				failures++
				s.log.Info("no direct tcp path", "err", err, "tries", failures)
				if failures >= tcpPunchTries {
					return
				}
				wait = tcpRetryFirstGap << (failures - 1)
				continue
			}
			select {
			case <-tp.sess.Done():
			case <-s.done:
				return
			}
			failures, wait = 0, tcpRepunchDelay
		}
	}()
}

// punchTCP is the visitor's side: offer our addresses on a new stream of the session, read the
// provider's, punch, and bring the path up.
func (s *p2pSession) punchTCP(ctx context.Context) (*tcpPath, error) {
	conn := s.conn.Load()
	if conn == nil {
		return nil, errors.New("session not connected")
	}
	p, err := traversal.ListenTCPPunch(s.punchNetwork())
	if err != nil {
		return nil, err
	}
	defer p.Close()
	qs, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	st := session.QUICStream(qs)
	defer st.Close()
	if err := wire.Write(st, &wire.TCPPath{Addrs: s.tcpCandidates(p.Port())}); err != nil {
		return nil, err
	}
	st.SetReadDeadline(time.Now().Add(tcpPunchTimeout))
	answer, err := wire.ReadAs[*wire.TCPPath](st)
	if err != nil {
		return nil, fmt.Errorf("provider's tcp addresses: %w", err)
	}
	peers := s.peerTCPAddr(answer)
	if len(peers) == 0 {
		return nil, errors.New("the provider punches no tcp path")
	}
	pctx, cancel := context.WithTimeout(ctx, tcpPunchTimeout)
	defer cancel()
	tc, err := p.Connect(pctx, peers)
	if err != nil {
		return nil, err
	}
	return s.upgradeTCP(ctx, tc)
}

// tcpRepunch is how long a visitor waits before punching a TCP path again after a side's
// network changed: the session's own path settles first.
const tcpRepunch = 2 * time.Second

// retcp drops the session's TCP path, which leads from or to an address a side left (its
// network changed): its streams end with it, new ones take QUIC. The visitor punches a new one
// once the session's path has settled.
func (s *p2pSession) retcp(why string) {
	tp := s.tcp.Swap(nil)
	if tp == nil {
		return
	}
	tp.sess.Close(why)
	s.log.Info("direct tcp path dropped", "why", why)
	if s.role != wire.RoleVisitor {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-time.After(tcpRepunch):
			s.startTCP()
		case <-s.done:
		}
	}()
}

// answerTCP is the provider's side of a TCPPath stream: answer with our addresses, punch.
func (s *p2pSession) answerTCP(st session.Stream, offer *wire.TCPPath) {
	defer st.Close()
	// One punch at a time per session: a visitor that asks again and again holds one port.
	if !s.tcpWanted() || !s.tcpPunching.CompareAndSwap(false, true) {
		wire.Write(st, &wire.TCPPath{})
		return
	}
	defer s.tcpPunching.Store(false)
	p, err := traversal.ListenTCPPunch(s.punchNetwork())
	if err != nil {
		wire.Write(st, &wire.TCPPath{})
		return
	}
	defer p.Close()
	if err := wire.Write(st, &wire.TCPPath{Addrs: s.tcpCandidates(p.Port())}); err != nil {
		return
	}
	ctx, cancel := s.punchContext(tcpPunchTimeout)
	defer cancel()
	tc, err := p.Connect(ctx, s.peerTCPAddr(offer))
	if err == nil {
		_, err = s.upgradeTCP(ctx, tc)
	}
	if err != nil {
		s.log.Info("no direct tcp path", "err", err)
	}
}

// upgradeTCP runs TLS and the mutual proof on a punched connection, then yamux, and makes it
// the session's path for new streams.
func (s *p2pSession) upgradeTCP(ctx context.Context, tc *net.TCPConn) (*tcpPath, error) {
	c := s.m.c
	conn := s.conn.Load()
	if conn == nil {
		tc.Close()
		return nil, errors.New("session not connected")
	}
	tc.SetKeepAlivePeriod(15 * time.Second) // also keeps both NATs' mappings
	if cc := os.Getenv("XP2P_TCP_CONGESTION"); cc != "" {
		setCongestion(tc, cc)
	}
	var tlsConn *tls.Conn
	if s.role == wire.RoleVisitor {
		tlsConn = tls.Client(tc, c.peerClientTLS)
	} else {
		tlsConn = tls.Server(tc, c.peerServerTLS)
	}
	fail := func(err error) (*tcpPath, error) { tlsConn.Close(); return nil, err }
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tlsConn.HandshakeContext(hctx); err != nil {
		return fail(fmt.Errorf("tls over the tcp path: %w", err))
	}
	key, err := auth.Exporter(conn.ConnectionState().TLS, tcpExporter)
	if err != nil {
		return fail(err)
	}
	exp, err := auth.Exporter(tlsConn.ConnectionState(), tcpExporter)
	if err != nil {
		return fail(err)
	}
	theirRole := wire.RoleProvider
	if s.role == wire.RoleProvider {
		theirRole = wire.RoleVisitor
	}
	tlsConn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := tlsConn.Write(auth.Proof(key, exp, s.role)); err != nil {
		return fail(err)
	}
	theirs := make([]byte, len(auth.Proof(key, exp, theirRole)))
	if _, err := io.ReadFull(tlsConn, theirs); err != nil {
		return fail(fmt.Errorf("peer's proof on the tcp path: %w", err))
	}
	if !auth.Verify(key, exp, theirRole, theirs) {
		return fail(errors.New("the peer on the tcp path could not prove the session"))
	}
	tlsConn.SetDeadline(time.Time{})
	cfg := session.YamuxConfig(15 * time.Second)
	cfg.MaxStreamWindowSize = 16 << 20 // a bulk stream fills a long path: 16 MiB is 1.6 Gbit/s at 80 ms
	var m *yamux.Session
	if s.role == wire.RoleVisitor {
		m, err = yamux.Client(session.YamuxConn(tlsConn), cfg)
	} else {
		m, err = yamux.Server(session.YamuxConn(tlsConn), cfg)
	}
	if err != nil {
		return fail(err)
	}
	tp := &tcpPath{sess: session.Yamux(tlsConn, m), remote: tc.RemoteAddr().(*net.TCPAddr).AddrPort(), upAt: time.Since(s.created)}
	s.tcp.Store(tp)
	s.log.Info("direct tcp path up", "remote", tp.remote.String(), "time_to_tcp", tp.upAt.Round(time.Microsecond))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-tp.sess.Done():
			s.log.Info("direct tcp path closed: new streams take the session's QUIC paths")
		case <-s.done:
		}
		s.tcp.CompareAndSwap(tp, nil)
		tp.sess.Close("session ended")
	}()
	if s.role == wire.RoleProvider {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				st, err := tp.sess.AcceptStream(s.m.c.ctx)
				if err != nil {
					return
				}
				s.wg.Add(1)
				go func() { defer s.wg.Done(); s.servePeerStream(st) }()
			}
		}()
	}
	return tp, nil
}

// setCongestion sets a TCP connection's congestion control (TCP_CONGESTION; Linux).
func setCongestion(c *net.TCPConn, cc string) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { setsockoptCongestion(int(fd), cc) })
}
