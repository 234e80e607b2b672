// Package rendezvous is the xp2p server: it accepts clients on bindPort (QUIC on UDP, TLS+yamux
// on TCP), authenticates them by token, keeps the registry of their proxies and xp2p services,
// answers STUN binding requests, pairs visitors with providers and hands relaying to package
// relay.
package rendezvous

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/time/rate"

	"github.com/xp2p/xp2p/acmecert"
	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/auth"
	serverid "github.com/xp2p/xp2p/internal/identity"
	"github.com/xp2p/xp2p/internal/quicsock"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/tlsconf"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/nat"
	"github.com/xp2p/xp2p/relay"
	"github.com/xp2p/xp2p/vhost"
)

// Version is the server's version string, reported to clients (set by cmd).
var Version = "dev"

// Limits on clients that connect but do not behave.
const (
	loginTimeout = 10 * time.Second
	// maxPendingLogins bounds the connections that have not proved the token yet (TLS
	// handshakes, logins and work connections in progress; 72-78 KiB each when a stranger
	// makes each one hold as much as it may, so about 40 MiB in all: TestUnauthenticatedMemoryBound
	// measures it), maxPendingPerSource those of one
	// source (an IPv4 address or an IPv6 /64), so that one source cannot lock out the others,
	// and maxPendingOverBudget the TCP connections of a source that has used up its failed
	// logins (checked at accept, before any TLS work): it may still log in, a client with a
	// login ticket behind the same address, a few at a time. (QUIC logins come after quic-go's
	// handshake; they are not squeezed, and the ticket is checked at the login.)
	maxPendingLogins     = 512
	maxPendingPerSource  = 64
	maxPendingOverBudget = 8
	controlWriteLimit    = 10 * time.Second
)

// Server is a running xp2p server.
type Server struct {
	cfg   *config.Server
	log   *slog.Logger
	token []byte

	udp      *net.UDPConn
	sock     *quicsock.Conn
	tr       *quic.Transport
	tcp      net.Listener
	listener *session.Listener

	Stats      *relay.StatsBook
	publishers publishers
	web        *vhost.Server
	certs      *acmecert.Manager // nil without acme.enable
	packets    *relay.PacketRelay
	limiter    *auth.FailureLimiter
	// id is the server's persistent identity; fingerprint the fingerprint of the key its TLS
	// presents (id's, or transport.tls.certFile's).
	id          *serverid.Server
	fingerprint string
	pending     *auth.SourceSlots // unauthenticated connections (see maxPendingLogins)
	stun        *stunService
	Events      *Events
	// refusals logs refused logins and connections, with a bound on the lines per second.
	refusals *refusalLog

	mu      sync.Mutex
	clients map[string]*client // by run id
	byID    map[string]*client // by client id (address registrations name it)
	// addrs are the server's own addresses on bindPort, for clients' address registrations.
	addrs    []string
	names    map[proxyKey]*nameEntry // every proxy and service name → who holds it
	quotas   *quotas                 // what each client identity holds
	sessions map[string]*p2pSession  // by session id

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started time.Time
}

// New validates what it can and prepares a server; Start binds its sockets.
func New(cfg *config.Server, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		token:    []byte(cfg.Auth.Token),
		Stats:    relay.NewStatsBook(),
		limiter:  auth.NewFailureLimiter(),
		refusals: newRefusalLog(log),
		pending:  auth.NewSourceSlots(maxPendingPerSource, maxPendingLogins),
		Events:   newEvents(),
		clients:  map[string]*client{},
		byID:     map[string]*client{},
		names:    map[proxyKey]*nameEntry{},
		quotas:   newQuotas(cfg.MaxProxiesPerClient, cfg.MaxPortsPerClient),
		sessions: map[string]*p2pSession{},
	}
	s.Stats.OnForget = s.Events.forgetService
	ports := relay.NewProxies(relay.ProxiesConfig{
		BindAddr:   cfg.ProxyBindAddr,
		AllowPorts: cfg.AllowPorts,
		Log:        log,
	}, s.Stats)
	s.publishers = publishers{wire.ProxyTCP: ports, wire.ProxyUDP: ports}
	s.packets = &relay.PacketRelay{}
	if cfg.Transport.RelayBandwidthLimit != "" {
		bw, err := config.ParseBandwidth(cfg.Transport.RelayBandwidthLimit)
		if err != nil {
			return nil, fmt.Errorf("transport.relayBandwidthLimit: %w", err)
		}
		s.packets.BytesPerSecond = bw
	}
	return s, nil
}

// Start binds bindPort on UDP and TCP and starts serving.
func (s *Server) Start() error {
	id, created, err := serverid.LoadServer(s.cfg.StateDir)
	if err != nil {
		return err
	}
	s.id = id
	cert := id.Certificate()
	tlsConf, err := tlsconf.Server(tlsconf.ServerFiles{CertFile: s.cfg.Transport.TLS.CertFile, KeyFile: s.cfg.Transport.TLS.KeyFile, Identity: &cert})
	if err != nil {
		return err
	}
	s.fingerprint = id.Fingerprint()
	if leaf, err := x509.ParseCertificate(tlsConf.Certificates[0].Certificate[0]); err == nil {
		s.fingerprint = serverid.Fingerprint(leaf) // transport.tls.certFile's key, if set
	}
	if created {
		s.log.Info("made a new server identity", "file", filepath.Join(s.cfg.StateDir, serverid.KeyFile))
	}
	if err := s.listen(); err != nil {
		return err
	}
	s.addrs = ownAddrs(s.cfg.BindAddr, s.Port())
	var web *vhost.Server
	var terminate *tls.Config
	var wrap func(http.Handler) http.Handler
	if a := s.cfg.ACME; a.Enable {
		certs, err := acmecert.New(acmecert.Options{CA: a.CAURL, Email: a.Email, RootsFile: a.CARootsFile, Storage: a.Storage,
			HTTPPort: s.cfg.VhostHTTPPort,
			Allow:    func(name string) error { return web.HTTPHost(name) }})
		if err != nil {
			s.udp.Close()
			s.tcp.Close()
			return fmt.Errorf("acme: %w", err)
		}
		s.certs = certs
		terminate, wrap = certs.TLSConfig(), certs.HTTPHandler
	}
	web, err = vhost.New(vhost.Config{
		BindAddr:              s.cfg.ProxyBindAddr,
		HTTPPort:              s.cfg.VhostHTTPPort,
		HTTPSPort:             s.cfg.VhostHTTPSPort,
		TCPMuxPort:            s.cfg.TCPMuxHTTPConnectPort,
		TCPMuxPassthrough:     s.cfg.TCPMuxPassthrough,
		ResponseHeaderTimeout: time.Duration(s.cfg.VhostHTTPTimeout) * time.Second,
		SubDomainHost:         s.cfg.SubDomainHost,
		NotFoundPage:          s.cfg.Custom404(),
		TerminateTLS:          terminate,
		WrapHTTP:              wrap,
		Log:                   s.log,
	}, s.Stats)
	if err != nil {
		s.udp.Close()
		s.tcp.Close()
		return err
	}
	s.web = web
	for _, kind := range []string{wire.ProxyHTTP, wire.ProxyHTTPS, wire.ProxyTCPMux} {
		s.publishers[kind] = web
	}
	if err := quicsock.EnablePacketInfo(s.udp); err != nil {
		s.log.Warn("stun: no packet info on the UDP socket: answers on a multi-homed host may leave from the wrong address", "err", err)
	}
	s.stun = newSTUNService(s.log, s.cfg.BindAddr, s.Port(), s.cfg.STUN.AltPort, s.cfg.STUN.AltAddr)
	s.sock = quicsock.New(s.udp, &serverFilter{s: s})
	if os.Getenv("XP2P_DISABLE_GRO") == "" {
		// Relayed packets arrive in runs from one peer: GRO reads a run in one go, and the
		// relay forwards it as one GSO write.
		s.sock.EnableGRO()
	}
	s.stun.main = s.sock
	s.stun.start()
	s.packets.Send = func(pkt []byte, to *net.UDPAddr) error { return s.sock.WriteRaw(pkt, nil, to) }
	s.packets.SendSegments = s.sock.WriteSegments
	s.tr = &quic.Transport{Conn: s.sock, StatelessResetKey: s.resetKey()}
	qln, err := s.tr.Listen(tlsConf, s.quicConfig())
	if err != nil {
		s.stun.close()
		s.web.Close()
		s.udp.Close()
		s.tcp.Close()
		return fmt.Errorf("listen quic: %w", err)
	}
	s.listener = session.Listen(qln, s.tcp, session.ListenConfig{
		TLS:              tlsConf,
		Yamux:            session.YamuxConfig(s.heartbeatTimeout() / 3),
		HandshakeTimeout: loginTimeout,
		Admit:            s.admitTCP,
		Refused: func(remote net.Addr, transport, reason string) {
			s.refusals.log("connection refused", remote.String(), transport, reason)
		},
		HandshakeFailed: func(remote net.Addr, err error) {
			s.log.Debug("TLS handshake failed", "remote", remote.String(), "err", err)
		},
	})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.started = time.Now()
	s.wg.Add(2)
	go s.acceptLoop()
	go s.workLoop()
	s.log.Info("xp2p server listening", "udp", s.udp.LocalAddr().String(), "tcp", s.tcp.Addr().String(), "stunAltPort", s.stun.responder.AltPort, "version", Version,
		"fingerprint", s.fingerprint)
	s.log.Info("server identity: clients trust it on first use, or pin it up front with transport.tls.serverFingerprint",
		"fingerprint", s.fingerprint)
	if len(s.token) == 0 {
		s.log.Warn("auth.token is empty: any client can use this server")
	}
	return nil
}

// listen binds bindPort on UDP and the same port number on TCP. With bindPort 0 (tests) the
// system picks the UDP port, and another is tried if its TCP twin is taken.
func (s *Server) listen() error {
	addr := net.JoinHostPort(s.cfg.BindAddr, strconv.Itoa(s.cfg.BindPort))
	for try := 0; ; try++ {
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		if err != nil {
			return bindError("bindPort", s.cfg.BindPort, err)
		}
		tcpAddr := net.JoinHostPort(s.cfg.BindAddr, strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port))
		tcp, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			udp.Close()
			if s.cfg.BindPort == 0 && try < 20 {
				continue
			}
			return bindError("bindPort", s.cfg.BindPort, err)
		}
		s.udp, s.tcp = udp, tcp
		return nil
	}
}

// bindError says which key's port could not be bound (the error itself names the address, as
// in "listen udp 0.0.0.0:7000: bind: address already in use"), and what to look for when it is
// taken.
func bindError(key string, port int, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s %d is taken (is another xp2p server or frps running?): %w", key, port, err)
	}
	return fmt.Errorf("%s %d: %w", key, port, err)
}

// resetKey is the key of the server's QUIC stateless resets. It derives from the server's
// identity key, a secret no client knows (a key derived from the token would let any token
// holder reset every other client's session), and it outlives a restart, so that a restarted
// server resets the connections of its previous run at their clients' next keepalive: they
// reconnect at once instead of waiting for their idle timeout.
func (s *Server) resetKey() *quic.StatelessResetKey {
	var k quic.StatelessResetKey
	copy(k[:], s.id.Derive("quic stateless reset"))
	return &k
}

// ticketKey is the key of login ticket id: it derives from a secret of this server (its identity
// key, so tickets outlive a restart, when every client logs in again at once) and from the
// token, so that a changed token voids every ticket.
func (s *Server) ticketKey(id []byte) []byte {
	tok := sha256.Sum256(s.token)
	return auth.Derive(s.id.Derive("login ticket v1"), "ticket", append(append([]byte{}, id...), tok[:]...))
}

// Fingerprint is the fingerprint of the server's identity key (what clients pin), once started.
func (s *Server) Fingerprint() string { return s.fingerprint }

func (s *Server) heartbeatTimeout() time.Duration {
	return time.Duration(s.cfg.Transport.HeartbeatTimeout) * time.Second
}

func (s *Server) quicConfig() *quic.Config {
	return &quic.Config{
		MaxIdleTimeout:       s.heartbeatTimeout(),
		HandshakeIdleTimeout: loginTimeout,
		// A client opens its control stream and nothing more on QUIC (users' streams are the
		// server's to open; relay streams run over TCP only), and nobody accepts more: a few
		// streams bound what a misbehaving client can leave queued.
		MaxIncomingStreams:         4,
		MaxIncomingUniStreams:      -1,
		InitialStreamReceiveWindow: 1 << 20,
		MaxStreamReceiveWindow:     16 << 20,
		MaxConnectionReceiveWindow: 64 << 20,
		EnableDatagrams:            true, // udp proxies' datagrams (session.FlowDatagrams)
		InitialPacketSize:          session.InitialPacketSize,
	}
}

// UDPAddr is the server's bound UDP address.
func (s *Server) UDPAddr() *net.UDPAddr { return s.udp.LocalAddr().(*net.UDPAddr) }

// WebAddr is where the web port of a proxy kind (http, https, tcpmux) listens (nil: off).
func (s *Server) WebAddr(kind string) net.Addr { return s.web.Addr(kind) }

// STUNAltAddr is the bound second STUN port (nil: none).
func (s *Server) STUNAltAddr() *net.UDPAddr { return s.stun.altAddr() }

// Port is the server's bindPort as bound.
func (s *Server) Port() int { return s.UDPAddr().Port }

// Started is when the server started.
func (s *Server) Started() time.Time { return s.started }

// Run starts the server and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// Close stops accepting, disconnects every client, releases every port and waits for all of the
// server's goroutines.
func (s *Server) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.listener.Close()
	s.mu.Lock()
	clients := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.sess.Close("server shutting down")
	}
	s.wg.Wait()
	for _, pub := range s.publishers.all() {
		pub.Close()
	}
	if s.certs != nil {
		s.certs.Close()
	}
	s.stun.close()
	s.tr.Close()
	s.udp.Close()
	s.log.Info("xp2p server stopped")
	return nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		sess, err := s.listener.Accept(s.ctx)
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveSession(sess)
		}()
	}
}

// admitTCP takes a slot for unauthenticated work from addr before its TLS handshake (see
// maxPendingLogins); the limiter of failed logins is consulted here already.
func (s *Server) admitTCP(addr netip.Addr) (release func(), ok bool) {
	limit := 0
	if ok, _ := s.limiter.Check(addr); !ok {
		limit = maxPendingOverBudget
	}
	return s.pending.Acquire(addr, limit)
}

// admit takes a slot for unauthenticated work from addr (a QUIC session before its login).
func (s *Server) admit(addr netip.Addr) (release func(), ok bool) {
	return s.pending.Acquire(addr, 0)
}

// serveSession authenticates a new session and runs it until it ends.
func (s *Server) serveSession(sess session.Session) {
	remote := addrPort(sess.RemoteAddr())
	// A TCP session was admitted before its TLS handshake (listener); a QUIC one is now.
	release := func() { session.ReleaseAdmission(sess) }
	if sess.Transport() == session.TransportQUIC {
		var ok bool
		if release, ok = s.admit(remote.Addr()); !ok {
			// The client comes back later (session.IsBusy).
			s.refusals.log("login refused", remote.String(), sess.Transport(), "server busy: too many logins under way (from this source, or in all)")
			session.Conn(sess).CloseWithError(session.CloseBusy, "server busy")
			return
		}
	}
	c, err := s.login(sess, remote)
	release()
	if err != nil {
		s.refusals.log("login refused", remote.String(), sess.Transport(), err.Error())
		if sess.Transport() == session.TransportQUIC {
			// Give the refusal time to reach the client: closing the connection at once would
			// drop the stream data still in flight. (A QUIC connection waiting here costs
			// quic-go a few KB; over TCP, the refusal is in the kernel's send buffer already
			// and the session is freed at once.)
			select {
			case <-time.After(200 * time.Millisecond):
			case <-s.ctx.Done():
			}
		}
		sess.Close("login refused")
		return
	}
	c.run()
}

// login reads the client's Login within loginTimeout and checks its proof.
func (s *Server) login(sess session.Session, remote netip.AddrPort) (*client, error) {
	ctx, cancel := context.WithTimeout(s.ctx, loginTimeout)
	defer cancel()
	ctrl, err := sess.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("no control stream: %w", err)
	}
	ctrl.SetReadDeadline(time.Now().Add(loginTimeout))
	msg, err := wire.ReadHello[*wire.Login](ctrl)
	if err != nil {
		ctrl.Reset()
		return nil, fmt.Errorf("read login: %w", err)
	}
	ctrl.SetReadDeadline(time.Time{})
	refuse := func(code, why string) error {
		// No half close after it: a half-closed yamux stream keeps its session for
		// StreamCloseTimeout (30 s), which is what let a tokenless flood fill the memory.
		ctrl.SetWriteDeadline(time.Now().Add(time.Second))
		wire.Write(ctrl, &wire.LoginResult{Code: code, Error: why})
		return errors.New(why)
	}
	exporter, err := auth.Exporter(sess.TLS(), "control")
	if err != nil {
		return nil, refuse(wire.CodeInternal, "internal error: "+err.Error())
	}
	// A client that logged in before passes the limit of its address with its ticket: a
	// neighbour behind the same address who guesses tokens locks out only logins without one.
	// (Its failures still count against the address.)
	ticketed := msg.Ticket != nil && auth.Verify(s.ticketKey(msg.Ticket.ID), exporter, auth.RoleClient, msg.Ticket.Proof)
	if ok, wait := s.limiter.Check(remote.Addr()); !ok && !ticketed {
		return nil, refuse(wire.CodeRateLimited, fmt.Sprintf("too many failed logins from %s; retry in %s", remote.Addr(), wait.Round(time.Second)))
	}
	if !auth.Verify(s.token, exporter, auth.RoleClient, msg.Proof) {
		s.limiter.Fail(remote.Addr())
		s.Events.authFailure()
		return nil, refuse(wire.CodeAuth, "authentication failed: wrong auth.token")
	}
	// The run ID is the hash of the run key, and the key signed this session: only the process
	// that made the key can log in under its run ID (and so replace its session, below).
	if msg.RunID != auth.RunID(msg.RunKey) || !auth.VerifyRun(msg.RunKey, exporter, msg.RunSig) {
		s.limiter.Fail(remote.Addr())
		s.Events.authFailure()
		return nil, refuse(wire.CodeRunKey, "run id "+msg.RunID+" does not belong to this run key")
	}
	workKey, err := auth.Exporter(sess.TLS(), "work key")
	if err != nil {
		return nil, refuse(wire.CodeInternal, "internal error: "+err.Error())
	}
	c := newClient(s, sess, ctrl, msg, remote)
	c.workKey = workKey
	c.addrKey = nat.RegisterKey(exporter)
	ticketID := make([]byte, wire.TicketIDLen)
	if ticketed {
		copy(ticketID, msg.Ticket.ID) // one ticket per client process, kept across reconnects
	} else {
		rand.Read(ticketID)
	}
	result := &wire.LoginResult{
		Proof:         auth.Proof(s.token, exporter, auth.RoleServer),
		ServerVersion: Version,
		ClientID:      c.id,
		ServerAddrs:   s.addrs,
		Ticket:        &wire.Ticket{ID: ticketID, Key: s.ticketKey(ticketID)},
	}
	if sess.Transport() == session.TransportQUIC {
		result.ObservedAddr = remote.String()
	}
	ctrl.SetWriteDeadline(time.Now().Add(controlWriteLimit))
	if err := wire.Write(ctrl, result); err != nil {
		return nil, fmt.Errorf("write login result: %w", err)
	}
	ctrl.SetWriteDeadline(time.Time{})
	return c, nil
}

// refusalLog logs refused logins and connections, each with its reason, but at most
// refusalLogRate lines a second after a burst of refusalLogBurst (more than a restart storm of
// a few hundred clients or a scan makes): a sustained flood (a token guesser, slowloris) must
// not flood the log. The next line logged counts the ones left out.
type refusalLog struct {
	logger  *slog.Logger
	lim     *rate.Limiter
	dropped atomic.Int64
}

const (
	refusalLogRate  = 20
	refusalLogBurst = 500
)

func newRefusalLog(log *slog.Logger) *refusalLog {
	return &refusalLog{logger: log, lim: rate.NewLimiter(refusalLogRate, refusalLogBurst)}
}

func (r *refusalLog) log(msg, remote, transport, reason string) {
	if !r.lim.Allow() {
		r.dropped.Add(1)
		return
	}
	if n := r.dropped.Swap(0); n > 0 {
		r.logger.Info(msg, "remote", remote, "transport", transport, "reason", reason, "not_logged_before", n)
		return
	}
	r.logger.Info(msg, "remote", remote, "transport", transport, "reason", reason)
}

// addrPort converts a net.Addr of a session into a netip.AddrPort.
func addrPort(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// serverFilter sorts the packets of the server's UDP socket: STUN to the responder, relayed P2P
// packets to the packet relay, everything else to QUIC.
type serverFilter struct{ s *Server }

func (f *serverFilter) Receive(data []byte, from *net.UDPAddr, oob []byte) ([]byte, net.Addr, bool) {
	if len(data) == 0 || data[0]&0xC0 != 0 {
		return data, nil, false // QUIC
	}
	if data[0] == wire.RelayMagic {
		f.s.packets.HandleUDP(data, from)
		return nil, nil, true
	}
	if !f.s.registerAddr(data, from, oob) {
		f.s.stun.handle(data, from, oob, f.s.stun.mainPort)
	}
	return nil, nil, true
}

// EndBatch sends the relayed packets of the batch just read.
func (f *serverFilter) EndBatch() { f.s.packets.Flush() }

func (f *serverFilter) Send(_ *quicsock.Conn, _, _ []byte, _ int, to *net.UDPAddr) (*net.UDPAddr, bool, error) {
	return to, false, nil
}
