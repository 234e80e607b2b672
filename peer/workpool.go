package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/tlsconf"
	"github.com/xp2p/xp2p/internal/wire"
)

// defaultPoolCount is how many idle work connections a client keeps per server: tcp proxy
// users are served on them (TLS over TCP costs a fraction of a QUIC stream's CPU per byte), and
// on session streams only while the pool is empty. Eight cover a browser's or a download
// manager's parallel connections (measured by ./bench: 8 streams on 4 pooled connections and
// 4 QUIC streams moved 0.75× frp's bytes).
const defaultPoolCount = 8

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

// runWorkPool keeps the pool of idle work connections to the link's server while ctl lives.
func (l *serverLink) runWorkPool(ctx context.Context, ctl *control) {
	n := l.c.cfg.Transport.PoolCount
	if n == 0 {
		n = defaultPoolCount
	}
	if n < 0 || !l.hasTCPProxies() {
		return
	}
	tlsConf, err := l.tlsConfig(true)
	if err != nil {
		return
	}
	refill := rate.NewLimiter(workRefillRate, max(workRefillBurst, 2*n))
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); l.workWorker(ctx, ctl, tlsConf, refill) }()
	}
	wg.Wait()
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

// workWorker keeps one idle work connection: dial it, wait for a user, hand the user to a new
// goroutine, dial the next.
func (l *serverLink) workWorker(ctx context.Context, ctl *control, tlsConf *tls.Config, refill *rate.Limiter) {
	b := backoff{min: time.Second, max: 30 * time.Second}
	for ctx.Err() == nil {
		if err := refill.Wait(ctx); err != nil {
			return
		}
		w, err := l.dialWork(ctx, ctl, tlsConf)
		if err != nil {
			if errors.Is(err, errWorkServerProof) {
				l.c.log.Warn("work connection refused", "server", l.ep.Addr, "err", err)
			} else {
				l.c.log.Debug("work connection", "server", l.ep.Addr, "err", err)
			}
			select {
			case <-time.After(b.next()):
				continue
			case <-ctx.Done():
				return
			}
		}
		b.reset()
		stop := context.AfterFunc(ctx, func() { w.Close() })
		recycle := workIdleRecycle + time.Duration(rand.Int64N(int64(30*time.Second)))
		w.SetReadDeadline(time.Now().Add(recycle))
		hdr, err := wire.ReadAs[*wire.WorkStream](w)
		stop()
		if err != nil {
			w.Close()
			continue
		}
		w.SetReadDeadline(time.Time{})
		// The user's connection outlives the pool (which ends with the control session); the
		// client owns it.
		l.c.wg.Add(1)
		go func() {
			defer l.c.wg.Done()
			l.c.serveUser(w, hdr)
		}()
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
	tc := tls.Client(raw, tlsConf)
	if err := tc.HandshakeContext(dctx); err != nil {
		raw.Close()
		return netx.TLSConn{}, err
	}
	w := netx.TLSConn{Conn: tc, Raw: raw.(*net.TCPConn)}
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
