package peer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/identity"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/nat"
	"github.com/xp2p/xp2p/relay"
)

// control is one logged-in session to a server.
type control struct {
	c        *Client
	link     *serverLink
	sess     session.Session
	ctrl     session.Stream
	observed string
	since    time.Time

	writeMu sync.Mutex

	reqID   atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan *wire.ConnectResult

	// relayOut queues relay frames for the TCP relay stream (clients without UDP).
	relayOut chan []byte
	// lastPong is when the server last answered a heartbeat (unix nanos); pong is signalled
	// at each answer too (the work pool's check that the server lives).
	lastPong atomic.Int64
	pong     chan struct{}
	// pool keeps the session's idle work connections (nil: the client needs none).
	pool *workPool
	// dgrams carries udp proxies' datagrams when the session is QUIC and the server takes them.
	dgrams *session.FlowDatagrams
	// workKey is the session's key that its work connections prove (both ways), exported from
	// its TLS once the server proved the token: only this client and that server know it.
	workKey []byte
	// retries asks again for the proxies the server refused because their name or port was held.
	retries *proxyRetries
	// reg registers the socket's address of the other family with the server (addrs.go).
	reg *registration
}

// heartbeat keeps the session alive every heartbeatInterval and ends it when the server fell
// silent for heartbeatTimeout. On QUIC a keepalive datagram does it: the server drops it on
// arrival and its ACK resets the session's idle timer, whose timeout (heartbeatTimeout) then
// ends a session with a silent server; a restarted server answers it with a stateless reset.
// That costs the server a fraction of a Ping and its Pong (measured: 100 idle clients took
// 0.45 CPU-s a minute with Pings every 10 s, of which the Pings were 0.26). Over TCP, or to a
// server without datagrams, it pings.
func (ctl *control) heartbeat(ctx context.Context) {
	cfg := ctl.c.cfg
	ctl.lastPong.Store(time.Now().UnixNano())
	t := time.NewTicker(cfg.HeartbeatInterval())
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctl.dgrams != nil {
			if err := ctl.dgrams.SendKeepalive(); err != nil {
				return
			}
			continue
		}
		if silent := time.Since(time.Unix(0, ctl.lastPong.Load())); silent > cfg.HeartbeatTimeout() {
			ctl.c.log.Warn("server stopped answering heartbeats", "server", ctl.link.ep.Addr, "silent", silent.Round(time.Second))
			ctl.sess.Close("heartbeat timeout")
			return
		}
		seq++
		if err := ctl.send(&wire.Ping{Seq: seq}); err != nil {
			return
		}
	}
}

// sendRelayFrame queues a relay frame for the TCP relay stream; false if it had to be dropped.
func (ctl *control) sendRelayFrame(frame []byte) bool {
	select {
	case ctl.relayOut <- frame:
		return true
	default:
		return false
	}
}

// relayRoute says how the relayed packets of sessions paired by this server leave.
func (ctl *control) relayRoute() *relayRoute {
	if ctl.sess.Transport() == session.TransportTCP {
		return &relayRoute{tcp: ctl.sendRelayFrame}
	}
	return &relayRoute{udp: ctl.link.udpAddr.Load()}
}

// send writes one control message.
func (ctl *control) send(m wire.Message) error {
	ctl.writeMu.Lock()
	defer ctl.writeMu.Unlock()
	ctl.ctrl.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err := wire.Write(ctl.ctrl, m)
	ctl.ctrl.SetWriteDeadline(time.Time{})
	return err
}

// connect asks the server for a P2P session to a service.
func (ctl *control) connect(ctx context.Context, service, user string) (*wire.PeerSession, error) {
	id := ctl.reqID.Add(1)
	ch := make(chan *wire.ConnectResult, 1)
	ctl.mu.Lock()
	ctl.pending[id] = ch
	ctl.mu.Unlock()
	defer func() {
		ctl.mu.Lock()
		delete(ctl.pending, id)
		ctl.mu.Unlock()
	}()
	if err := ctl.send(&wire.Connect{ReqID: id, Service: service, User: user}); err != nil {
		return nil, fmt.Errorf("ask server for %q: %w", service, err)
	}
	select {
	case r := <-ch:
		if r.Error != "" {
			return nil, errors.New(r.Error)
		}
		return r.Session, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-ctl.sess.Done():
		return nil, errors.New("server session ended")
	}
}

// backoff yields growing, jittered delays.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	// ±20% jitter so that many clients of a restarted server do not come back in lockstep.
	j := time.Duration(rand.Int64N(int64(b.cur)/5*2+1)) - b.cur/5
	return b.cur + j
}

func (b *backoff) reset() { b.cur = 0 }

// reconnectSpread bounds the wait before a client logs in again after a session that worked
// ended: a random moment within it, so that the clients of a restarted server come back spread
// over it instead of all in the same millisecond.
const reconnectSpread = 500 * time.Millisecond

// reconnectShortLived: a session that lived less than this after a spread wait counts as a
// failure, and the next wait backs off.
const reconnectShortLived = 10 * time.Second

// connectLoop keeps a session to the link's server, reconnecting with backoff.
func (l *serverLink) connectLoop() {
	c := l.c
	netBackoff := backoff{min: time.Second, max: 30 * time.Second}
	busyBackoff := backoff{min: 2 * time.Second, max: time.Minute}
	authBackoff := backoff{min: 10 * time.Second, max: 5 * time.Minute}
	spread := false // the last wait was a spread one
	for {
		start := time.Now()
		served, err := l.connectOnce()
		if c.ctx.Err() != nil {
			return
		}
		var le *LoginError
		var mismatch *identity.MismatchError
		var wait time.Duration
		switch {
		case errors.As(err, &mismatch):
			netBackoff.reset()
			wait, spread = authBackoff.next(), false
			c.log.Error("SERVER IDENTITY CHANGED: not connecting", "server", l.ep.Addr, "presented", mismatch.Got, "pinned", mismatch.Want,
				"pinned_by", mismatch.Source, "err", mismatch.Error(), "retry_in", wait.Round(time.Second))
		case session.IsBusy(err) || (errors.As(err, &le) && le.Code == wire.CodeBusy):
			// The server sheds load (a restart storm): come back later, at a random moment.
			netBackoff.reset()
			wait, spread = busyBackoff.next(), false
			c.log.Warn("server busy; logging in later", "server", l.ep.Addr, "err", errString(err), "retry_in", wait.Round(100*time.Millisecond))
		case le != nil:
			netBackoff.reset()
			busyBackoff.reset()
			if c.cfg.LoginFailExit != nil && *c.cfg.LoginFailExit {
				c.log.Error("login refused; exiting (loginFailExit = true)", "reason", le.Reason)
				select {
				case c.fatal <- err:
				default:
				}
				return
			}
			wait, spread = authBackoff.next(), false
			c.log.Error("login refused by server; check auth.token", "server", l.ep.Addr, "reason", le.Reason, "retry_in", wait.Round(time.Second))
		default:
			authBackoff.reset()
			busyBackoff.reset()
			// A session that worked gets a spread wait; one that ended soon after the last
			// spread wait (a server that keeps closing it) backs off.
			if served && (!spread || time.Since(start) > reconnectShortLived) {
				netBackoff.reset()
				wait, spread = rand.N(reconnectSpread), true
			} else {
				wait, spread = netBackoff.next(), false
			}
			var de *session.DialError
			if errors.As(err, &de) {
				c.log.Warn("cannot reach the server", "server", l.ep.Addr, "err", errString(err), "retry_in", wait.Round(100*time.Millisecond))
			} else {
				c.log.Warn("server session ended", "server", l.ep.Addr, "err", errString(err), "retry_in", wait.Round(time.Millisecond))
			}
		}
		select {
		case <-time.After(wait):
		case <-c.ctx.Done():
			return
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

// connectOnce dials, logs in, registers everything and serves the session until it ends;
// served says whether it got that far.
func (l *serverLink) connectOnce() (served bool, err error) {
	c := l.c
	tlsConf, err := l.tlsConfig(false)
	if err != nil {
		return false, err
	}
	d := &session.Dialer{
		Transport: c.tr,
		TLS:       tlsConf,
		QUIC:      c.controlQUICConfig(),
		Yamux:     session.YamuxConfig(c.cfg.HeartbeatInterval()),
		Protocol:  c.cfg.Transport.Protocol,
		TCPDelay:  l.tcpDelay(),
		Failed: func(err error, stillTrying string) {
			args := []any{"server", l.ep.Addr, "err", err, "still_trying", stillTrying}
			if errors.Is(err, syscall.ECONNREFUSED) {
				args = append(args, "hint", "nothing listens on that TCP port: is xp2p server running there, with this bindPort (serverPort here)?")
			}
			c.log.Warn("cannot reach the server yet", args...)
		},
	}
	dialTimeout := time.Duration(c.cfg.Transport.DialServerTimeout) * time.Second
	ctx, cancel := context.WithTimeout(c.ctx, dialTimeout)
	defer cancel()
	// Relayed packets and the server's answers come from this address.
	l.resolve()
	sess, err := d.Dial(ctx, l.ep.Addr)
	if err != nil {
		if l.pin != nil {
			if m := l.pin.Mismatch(); m != nil {
				return false, m // the TLS libraries keep only its text
			}
		}
		return false, fmt.Errorf("connect to %s: %w", l.ep.Addr, err)
	}
	ctl, err := l.login(ctx, sess)
	if err != nil {
		sess.Close("login failed")
		return false, err
	}
	l.confirmIdentity()
	l.quicWorked.Store(sess.Transport() == session.TransportQUIC)
	cancel()
	return true, l.serve(ctl)
}

func (l *serverLink) login(ctx context.Context, sess session.Session) (*control, error) {
	c := l.c
	ctrl, err := sess.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("open control stream: %w", err)
	}
	exporter, err := auth.Exporter(sess.TLS(), "control")
	if err != nil {
		return nil, err
	}
	login := &wire.Login{
		Version:      Version,
		RunID:        c.runID,
		RunKey:       c.runKey.Public(),
		RunSig:       c.runKey.Sign(exporter),
		Hostname:     hostname(),
		User:         c.cfg.User,
		Proof:        auth.Proof(l.token, exporter, auth.RoleClient),
		PrivateAddrs: c.privateAddrs(),
		NAT:          c.natBehavior().Code(),
	}
	login.Mapped, login.MappedBy = c.mappedWire()
	if t := l.ticket.Load(); t != nil {
		login.Ticket = &wire.TicketProof{ID: t.ID, Proof: auth.Proof(t.Key, exporter, auth.RoleClient)}
	}
	// A server that refuses the login closes the session at once over TCP, sometimes before
	// the write here has seen its frame go out: the refusal may still be read.
	writeErr := wire.Write(ctrl, login)
	if dl, ok := ctx.Deadline(); ok {
		ctrl.SetReadDeadline(dl)
	}
	res, err := wire.ReadAs[*wire.LoginResult](ctrl)
	if err != nil {
		if writeErr != nil {
			return nil, fmt.Errorf("send login: %w", writeErr)
		}
		return nil, fmt.Errorf("read login result: %w", err)
	}
	ctrl.SetReadDeadline(time.Time{})
	if res.Error != "" {
		return nil, &LoginError{Code: res.Code, Reason: res.Error}
	}
	if !auth.Verify(l.token, exporter, auth.RoleServer, res.Proof) {
		return nil, errors.New("the server could not prove it knows auth.token: wrong server address, or someone in the middle")
	}
	if res.Ticket != nil {
		l.ticket.Store(res.Ticket) // for the next login (after the server proved the token)
	}
	workKey, err := auth.Exporter(sess.TLS(), "work key")
	if err != nil {
		return nil, err
	}
	ctl := &control{
		c:        c,
		link:     l,
		sess:     sess,
		ctrl:     ctrl,
		observed: res.ObservedAddr,
		since:    time.Now(),
		pending:  map[uint64]chan *wire.ConnectResult{},
		relayOut: make(chan []byte, 1024),
		pong:     make(chan struct{}, 1),
		workKey:  workKey,
	}
	ctl.dgrams = session.NewFlowDatagrams(session.Conn(sess))
	ctl.retries = newProxyRetries(ctl)
	ctl.pool = l.newWorkPool(ctl)
	ctl.reg = newRegistration(ctl, res.ClientID, nat.RegisterKey(exporter), res.ServerAddrs)
	return ctl, nil
}

// serve runs a logged-in session: registers proxies, handles control messages and work streams.
func (l *serverLink) serve(ctl *control) error {
	c := l.c
	sess := ctl.sess
	args := []any{"server", l.ep.Addr, "transport", sess.Transport(), "public_addr", ctl.observed}
	if mapped, by := c.mappedWire(); mapped != "" {
		args = append(args, "mapped", mapped, "mapped_by", by)
	}
	c.log.Info("logged in to server", args...)
	// The session's goroutines are waited for after ctx is cancelled (defers run last-in
	// first-out): reportLoop ends only with ctx, so waiting first would never return and the
	// client would never reconnect after the server went away.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	wg.Add(2)
	go func() { defer wg.Done(); c.acceptWork(ctx, ctl) }()
	if ctl.dgrams != nil {
		wg.Add(1)
		go func() { defer wg.Done(); ctl.dgrams.Run(ctx) }()
	}
	go func() {
		defer wg.Done()
		select {
		case <-sess.Done():
		case <-ctx.Done():
		}
		ctl.ctrl.Reset()
		sess.Close("bye")
	}()
	if sess.Transport() == session.TransportTCP {
		wg.Add(1)
		go func() { defer wg.Done(); c.runTCPRelay(ctx, ctl) }()
	}
	wg.Add(3)
	go func() { defer wg.Done(); ctl.retries.run(ctx) }()
	go func() { defer wg.Done(); ctl.heartbeat(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); ctl.reg.run(ctx) }()
	go func() { defer wg.Done(); c.reportLoop(ctx, ctl) }()
	if ctl.pool != nil {
		wg.Add(1)
		go func() { defer wg.Done(); ctl.pool.run(ctx) }()
	}

	// Registration and Reload are serialised, so that a reload during a reconnect is neither
	// lost nor sent twice.
	c.reloadMu.Lock()
	for _, lp := range c.set.Load().proxies {
		if why := lp.unhealthy.Load(); why != nil {
			lp.setStatus(l, "unhealthy: "+*why, "")
			continue
		}
		if err := ctl.send(newProxyMsg(lp.cfg)); err != nil {
			c.reloadMu.Unlock()
			return err
		}
	}
	l.setControl(ctl)
	c.reloadMu.Unlock()
	// The NAT measurement runs on its own: if it ended between the Login (which carried what was
	// known then) and setControl, its report went to the controls of that moment, not this one.
	if r := c.natReport(); r.NAT != "" || r.Mapped != "" {
		ctl.send(r)
	}
	defer func() {
		l.setControl(nil)
		for _, lp := range c.set.Load().proxies {
			lp.forget(l)
		}
	}()
	c.p2p.serverReconnected(l)

	for {
		msg, err := wire.Read(ctl.ctrl)
		if err != nil {
			if session.IsClosed(err) {
				// Say how a QUIC session ended: the server closed it (with its reason), it went
				// silent (idle timeout), or a restarted server reset it (stateless reset).
				if q := session.Conn(sess); q != nil && context.Cause(q.Context()) != nil {
					return fmt.Errorf("session ended: %w", context.Cause(q.Context()))
				}
				return errors.New("server closed the session")
			}
			return fmt.Errorf("control stream: %w", err)
		}
		switch m := msg.(type) {
		case *wire.NewProxyResult:
			c.proxyResult(ctl, m)
		case *wire.ConnectResult:
			ctl.mu.Lock()
			ch := ctl.pending[m.ReqID]
			ctl.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		case *wire.PeerSession:
			c.p2p.offer(ctl, m)
		case *wire.EndSession:
			c.p2p.end(m.SessionID, "server: "+m.Reason, false)
		case *wire.Pong:
			ctl.lastPong.Store(time.Now().UnixNano())
			select {
			case ctl.pong <- struct{}{}:
			default:
			}
		case *wire.Ping:
			// The server checks we are alive (another client wants one of our names).
			ctl.send(&wire.Pong{Seq: m.Seq})
		default:
			c.log.Warn("unexpected control message from server", "type", msg.MessageType())
		}
	}
}

func newProxyMsg(p config.Proxy) *wire.NewProxy {
	m := &wire.NewProxy{Name: p.Name, Type: p.ProxyType().Wire, RemotePort: p.RemotePort, Group: p.LoadBalancer.Group,
		CustomDomains: p.CustomDomains, SubDomain: p.SubDomain, Locations: p.Locations,
		HTTPUser: p.HTTPUser, HTTPPassword: p.HTTPPassword, RouteByHTTPUser: p.RouteByHTTPUser,
		HostHeaderRewrite: p.HostHeaderRewrite, RequestHeaders: p.RequestHeaders.Set, ResponseHeaders: p.ResponseHeaders.Set,
		Multiplexer: p.Multiplexer, ProxyProtocol: p.Transport.ProxyProtocolVersion != ""}
	if g := p.LoadBalancer; g.Group != "" {
		m.GroupKey = auth.GroupKey(g.GroupKey, g.Group)
	}
	if bw, mode := p.BandwidthBytes(); mode == "server" {
		m.BandwidthLimit = bw
	}
	return m
}

func (c *Client) proxyResult(ctl *control, m *wire.NewProxyResult) {
	l := ctl.link
	lp := c.proxy(m.Name)
	if lp == nil {
		return
	}
	if m.Error != "" {
		if m.Code == wire.CodeInUse || m.Code == wire.CodeQuota {
			// Held by someone else, or over a limit that counts other sessions of ours: ask
			// again until it is ours (see proxyRetries).
			at := ctl.retries.schedule(lp)
			lp.setRetry(l, m.Error, at)
			why := "in use"
			if m.Code == wire.CodeQuota {
				why = "over this client's limit"
			}
			c.log.Warn("server refused proxy: "+why+"; asking again", "server", l.ep.Addr, "proxy", m.Name, "err", m.Error, "retry_in", time.Until(at).Round(100*time.Millisecond))
			return
		}
		ctl.retries.forget(m.Name)
		lp.setStatus(l, "error: "+m.Error, "")
		c.log.Error("server refused proxy", "server", l.ep.Addr, "proxy", m.Name, "err", m.Error)
		return
	}
	ctl.retries.forget(m.Name)
	lp.setStatus(l, "running", m.RemoteAddr)
	local := lp.localAddr()
	if m.RemoteAddr != "" {
		c.log.Info("proxy published", "server", l.ep.Addr, "proxy", m.Name, "type", lp.cfg.Type, "remote", m.RemoteAddr, "local", local)
	} else {
		c.log.Info("xp2p service published", "server", l.ep.Addr, "service", m.Name, "local", local)
	}
}

// acceptWork serves the streams the server opens: one per user connection or udp source.
// Each stream's goroutine lives as long as its user connection (the stream failing with the
// session aborts it); it is not waited for here, so that a local service slow to answer a
// half-closed connection never holds up a reconnect.
func (c *Client) acceptWork(ctx context.Context, ctl *control) {
	for {
		st, err := ctl.sess.AcceptStream(ctx)
		if err != nil {
			return
		}
		go c.serveWork(ctl, st)
	}
}

func (c *Client) serveWork(ctl *control, st session.Stream) {
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr, err := wire.ReadAs[*wire.WorkStream](st)
	if err != nil {
		st.Reset()
		return
	}
	st.SetReadDeadline(time.Time{})
	if hdr.Datagrams && ctl.dgrams != nil {
		st = ctl.dgrams.WithFlow(st)
		defer st.Close() // unregisters the flow also when the service cannot be reached
	}
	if lp := c.proxy(c.shortName(hdr.Proxy)); lp != nil && lp.cfg.ProxyType().Pooled {
		// A user of a pooled proxy on a session stream: the pool was empty, and grows.
		ctl.pool.userStarted()
		defer ctl.pool.userDone()
	}
	c.serveUser(st, hdr)
}

// shortName is a proxy's name without the user prefix the server gives it.
func (c *Client) shortName(name string) string {
	if u := c.cfg.User; u != "" {
		return strings.TrimPrefix(name, u+".")
	}
	return name
}

// serveUser connects the user a work stream or work connection carries to the proxy's local
// service.
func (c *Client) serveUser(st relay.Conn, hdr *wire.WorkStream) {
	name := c.shortName(hdr.Proxy)
	lp := c.proxy(name)
	if lp == nil || lp.cfg.ProxyType().P2P {
		st.Reset()
		return
	}
	lp.conns.Add(1)
	defer lp.conns.Add(-1)
	if err := relay.ServeStream(st, lp.local(lp.cfg.Network(), hdr.Src, hdr.Dst), relay.Counters{ToLocal: &lp.bytesIn, FromLocal: &lp.bytesOut}); err != nil {
		c.log.Warn("local service unreachable", "proxy", name, "src", hdr.Src, "err", err)
	}
}

// runTCPRelay carries relayed P2P packets over the TCP session: frames out from relayOut,
// frames in are fed back into the UDP socket so that QUIC sees them like any relayed packet.
func (c *Client) runTCPRelay(ctx context.Context, ctl *control) {
	st, err := ctl.sess.OpenStream(ctx)
	if err != nil {
		return
	}
	if err := wire.Write(st, &wire.RelayStream{}); err != nil {
		st.Reset()
		return
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, wire.MaxRelayFrame)
		for {
			n, err := wire.ReadDatagram(st, buf)
			if err != nil {
				return
			}
			c.inject(buf[:n])
		}
	}()
	defer func() {
		st.Close() // unblocks the reader
		<-readerDone
	}()
	for {
		select {
		case f := <-ctl.relayOut:
			if err := wire.WriteDatagram(st, f); err != nil {
				return
			}
		case <-ctx.Done():
			return
		case <-readerDone:
			return
		}
	}
}
