package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/tlsconf"
	"github.com/xp2p/xp2p/internal/wire"
)

// defaultPoolCount is how many idle work connections a client keeps per server at most: tcp
// proxy users are served on them (TLS over TCP costs a fraction of a QUIC stream's CPU per
// byte), and on session streams only while the pool is empty. Eight cover a browser's or a
// download manager's parallel connections (measured by ./bench: 8 streams on 4 pooled
// connections and 4 QUIC streams moved 0.75× frp's bytes).
const defaultPoolCount = 8

// The pool is lazy: it keeps workPoolMin idle connections, and as many as the users it served
// at once lately (up to transport.poolCount), for workPoolHold after the last such peak; then
// it halves. An idle client thus costs the server one TLS connection instead of eight (most
// of a client's memory on the server, and of the CPU of a restart, where every client logs
// in again at once), while a busy one keeps what its users need. The one connection also
// tells the client at once when the server's process dies (its kernel resets the TCP
// connection, where a QUIC session would hear nothing until its next keepalive).
const (
	workPoolMin  = 1
	workPoolHold = 2 * time.Minute
)

// Refills of the pool are paced: a TLS handshake costs both ends more CPU than a QUIC stream,
// so under a flood of short connections (hundreds a second) the pool would spend the CPU the
// connections need. Beyond this rate new users ride session streams, which open for free
// (./bench: 1585 new connections/s with unpaced refills, against 3280 on streams alone).
const (
	workRefillRate  = 200 // handshakes per second and server
	workRefillBurst = 2 * defaultPoolCount
)

// workIdleRecycle replaces an idle work connection after this long, so that NATs and
// firewalls that forget quiet TCP connections never leave a dead one in the pool.
const workIdleRecycle = 3 * time.Minute

// A work connection that the server closed, or that cannot be dialled, may mean the server
// restarted. The pool then stops dialling and checks the control session instead: pings at
// these growing, jittered intervals (a few packets a second while a server is down), each big enough for a restarted server to answer it with
// a QUIC stateless reset, which ends the session at once (connectLoop logs in again). A pong
// means the server lives, and the pool dials again, with backoff.
const (
	verifyMin = 100 * time.Millisecond
	verifyMax = 500 * time.Millisecond
)

// workPool keeps the idle work connections of one control session. One goroutine (run) owns
// its state; the connections' goroutines report to it.
type workPool struct {
	l      *serverLink
	ctl    *control
	tls    *tls.Config
	max    int
	refill *rate.Limiter
	events chan workEvent
	// users counts the users of pooled proxies this session serves now, on pooled connections
	// and on session streams (the pool's demand).
	users  atomic.Int64
	demand chan struct{}

	// Owned by run.
	idle     map[*workConn]struct{}
	dialing  int
	target   int
	peakAt   time.Time
	dialWait backoff
}

// workConn is one idle work connection and whether the pool itself closed it.
type workConn struct {
	w      netx.TLSConn
	closed atomic.Bool
}

// workEvent is what a dial or an idle connection reports to the pool.
type workEvent struct {
	conn  *workConn // the connection dialled, taken or ended
	taken bool      // a user arrived on conn
	err   error     // the dial failed, or conn ended
	dial  bool      // the event ends a dial
}

// newWorkPool prepares the pool of a control session (nil: the client publishes nothing whose
// users ride pooled connections, or transport.poolCount is -1).
func (l *serverLink) newWorkPool(ctl *control) *workPool {
	n := l.c.cfg.Transport.PoolCount
	if n == 0 {
		n = defaultPoolCount
	}
	if n < 0 || !l.hasTCPProxies() {
		return nil
	}
	tlsConf, err := l.tlsConfig(true)
	if err != nil {
		return nil
	}
	return &workPool{
		l: l, ctl: ctl, tls: tlsConf, max: n,
		refill:   rate.NewLimiter(workRefillRate, max(workRefillBurst, 2*n)),
		events:   make(chan workEvent),
		demand:   make(chan struct{}, 1),
		idle:     map[*workConn]struct{}{},
		target:   min(workPoolMin, n),
		dialWait: backoff{min: time.Second, max: 30 * time.Second},
	}
}

// hasTCPProxies reports whether the client publishes any proxy whose users ride pooled work
// connections (else a pool is useless).
func (l *serverLink) hasTCPProxies() bool {
	for _, lp := range l.c.set.Load().proxies {
		if lp.cfg.ProxyType().Pooled {
			return true
		}
	}
	return false
}

// userStarted and userDone count a user of a pooled proxy, wherever it rides.
func (p *workPool) userStarted() {
	if p == nil {
		return
	}
	p.users.Add(1)
	select {
	case p.demand <- struct{}{}:
	default:
	}
}

func (p *workPool) userDone() {
	if p != nil {
		p.users.Add(-1)
	}
}

// run keeps the pool until ctx ends (the control session's end), then closes its idle
// connections and waits for its dials.
func (p *workPool) run(ctx context.Context) {
	hold := time.NewTicker(workPoolHold / 4)
	defer hold.Stop()
	var next *time.Timer // the next dial, after a failure
	defer func() {
		if next != nil {
			next.Stop()
		}
		for wc := range p.idle {
			wc.closed.Store(true)
			wc.w.Close()
		}
		for p.dialing+len(p.idle) > 0 {
			p.handle(ctx, <-p.events)
		}
	}()
	for {
		if next == nil {
			if wait := p.fill(ctx); wait > 0 {
				next = time.NewTimer(wait)
			}
		}
		var due <-chan time.Time
		if next != nil {
			due = next.C
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-p.events:
			if !p.handle(ctx, ev) {
				// The server closed a connection or refused one: check it is still the same
				// server before dialling again.
				if !p.verify(ctx) {
					return
				}
				if next != nil {
					next.Stop()
				}
				next = time.NewTimer(p.dialWait.next())
			}
		case <-p.demand:
			p.grow()
		case <-due:
			next = nil
		case <-hold.C:
			p.shrink()
		}
	}
}

// fill starts the dials the pool lacks; it returns how long to wait when the refill pace
// holds the next one back.
func (p *workPool) fill(ctx context.Context) time.Duration {
	p.grow()
	for len(p.idle)+p.dialing < p.target {
		r := p.refill.Reserve()
		if d := r.Delay(); d > 0 {
			r.Cancel()
			return d
		}
		p.dialing++
		go func() {
			w, err := p.l.dialWork(ctx, p.ctl, p.tls)
			var wc *workConn
			if err == nil {
				wc = &workConn{w: w}
			}
			p.events <- workEvent{conn: wc, err: err, dial: true}
		}()
	}
	return 0
}

// handle takes one report; false if it is a sign that the server went away.
func (p *workPool) handle(ctx context.Context, ev workEvent) bool {
	switch {
	case ev.dial:
		p.dialing--
		if ev.err != nil {
			if ctx.Err() != nil {
				return true
			}
			if errors.Is(ev.err, errWorkServerProof) {
				p.l.c.log.Warn("work connection refused", "server", p.l.ep.Addr, "err", ev.err)
			} else {
				p.l.c.log.Debug("work connection", "server", p.l.ep.Addr, "err", ev.err)
			}
			return false
		}
		p.dialWait.reset()
		if ctx.Err() != nil {
			ev.conn.w.Close()
			return true
		}
		p.idle[ev.conn] = struct{}{}
		go p.wait(ctx, ev.conn)
	case ev.taken:
		delete(p.idle, ev.conn)
	default:
		delete(p.idle, ev.conn)
		var ne net.Error
		if ev.conn.closed.Load() || ctx.Err() != nil || (errors.As(ev.err, &ne) && ne.Timeout()) {
			return true // closed by the pool, or recycled
		}
		p.l.c.log.Debug("work connection closed by the server", "server", p.l.ep.Addr, "err", ev.err)
		return false
	}
	return true
}

// wait holds an idle connection until the server sends a user on it (the user is then served
// on its own goroutine, which the client owns: it outlives the pool), or the connection ends.
func (p *workPool) wait(ctx context.Context, wc *workConn) {
	stop := context.AfterFunc(ctx, func() { wc.closed.Store(true); wc.w.Close() })
	recycle := workIdleRecycle + time.Duration(rand.Int64N(int64(30*time.Second)))
	wc.w.SetReadDeadline(time.Now().Add(recycle))
	hdr, err := wire.ReadAs[*wire.WorkStream](wc.w)
	stop()
	if err != nil {
		wc.w.Close()
		p.events <- workEvent{conn: wc, err: err}
		return
	}
	wc.w.SetReadDeadline(time.Time{})
	p.userStarted()
	p.l.c.wg.Add(1)
	go func() {
		defer p.l.c.wg.Done()
		defer p.userDone()
		p.l.c.serveUser(wc.w, hdr)
	}()
	p.events <- workEvent{conn: wc, taken: true}
}

// grow raises the pool to the users served now (at most max).
func (p *workPool) grow() {
	if n := min(int(p.users.Load()), p.max); n >= p.target {
		p.target = max(n, min(workPoolMin, p.max))
		p.peakAt = time.Now()
	}
}

// shrink halves the pool once its last peak is workPoolHold old, and closes what it no longer
// needs.
func (p *workPool) shrink() {
	floor := min(workPoolMin, p.max)
	if p.target <= floor || time.Since(p.peakAt) < workPoolHold {
		return
	}
	p.target = max(floor, p.target/2)
	p.peakAt = time.Now()
	extra := len(p.idle) - p.target
	for wc := range p.idle {
		if extra <= 0 {
			break
		}
		wc.closed.Store(true)
		wc.w.Close() // its wait reports it
		extra--
	}
}

// verify checks that the control session still reaches a live server (see verifyMin): it
// returns true when the server answered, false when the session ended. A server that neither
// answers nor resets keeps it waiting until the heartbeat's timeout ends the session.
func (p *workPool) verify(ctx context.Context) bool {
	b := backoff{min: verifyMin, max: verifyMax}
	for {
		select {
		case <-p.ctl.pong:
		default:
		}
		if p.ctl.send(&wire.Ping{}) != nil {
			return false
		}
		t := time.NewTimer(b.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-p.ctl.pong:
			t.Stop()
			return true
		case <-t.C:
		case ev := <-p.events:
			t.Stop()
			p.handle(ctx, ev) // a dial or a connection ending meanwhile says nothing new
		}
	}
}

// errWorkServerProof: the other end of a work connection could not prove the control session's
// key: it is not the server the client logged in to.
var errWorkServerProof = errors.New("work connection: the other end could not prove the session's key: someone in the middle of the TCP connection")

// errWorkRefused is a work connection the server answered with a refusal (its Code says why).
type errWorkRefused struct{ code, reason string }

func (e *errWorkRefused) Error() string {
	return "work connection refused (" + e.code + "): " + e.reason
}

// dialWork opens one work connection: the client proves the control session's key, bound to
// this connection's TLS, and the server must prove it back before the connection may carry a
// user. A man in the middle of the TCP connection thus learns nothing it could test a token
// against and cannot hand the client a user of its own.
func (l *serverLink) dialWork(ctx context.Context, ctl *control, tlsConf *tls.Config) (netx.TLSConn, error) {
	dctx, cancel := context.WithTimeout(ctx, time.Duration(l.c.cfg.Transport.DialServerTimeout)*time.Second)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(dctx, "tcp", l.ep.Addr)
	if err != nil {
		return netx.TLSConn{}, err
	}
	under := netx.WatchEnd(raw.(*net.TCPConn))
	tc := tls.Client(under, tlsConf)
	if err := tc.HandshakeContext(dctx); err != nil {
		raw.Close()
		return netx.TLSConn{}, err
	}
	w := netx.TLSConn{Conn: tc, Raw: under.TCPConn, Under: under}
	fail := func(err error) (netx.TLSConn, error) {
		w.Close()
		return netx.TLSConn{}, err
	}
	if tc.ConnectionState().NegotiatedProtocol != tlsconf.ALPNWork {
		return fail(errors.New("server does not take work connections"))
	}
	exporter, err := auth.Exporter(tc.ConnectionState(), "work")
	if err != nil {
		return fail(err)
	}
	if dl, ok := dctx.Deadline(); ok {
		w.SetDeadline(dl)
	}
	if err := wire.Write(w, &wire.WorkConn{RunID: l.c.runID, Proof: auth.Proof(ctl.workKey, exporter, auth.RoleClient)}); err != nil {
		return fail(err)
	}
	res, err := wire.ReadAs[*wire.WorkConnResult](w)
	if err != nil {
		return fail(fmt.Errorf("work connection: %w", err))
	}
	if res.Code != "" {
		return fail(&errWorkRefused{code: res.Code, reason: res.Error})
	}
	if !auth.Verify(ctl.workKey, exporter, auth.RoleServer, res.Proof) {
		return fail(errWorkServerProof)
	}
	w.SetDeadline(time.Time{})
	return w, nil
}
