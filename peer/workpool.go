package peer

import (
	"context"
	"crypto/tls"
	"errors"
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
	tlsConf, err := tlsconf.Client(l.c.cfg.Transport.TLS.ServerName, l.c.cfg.Transport.TLS.TrustedCaFile)
	if err != nil {
		return
	}
	tlsConf = tlsconf.Work(tlsConf)
	refill := rate.NewLimiter(workRefillRate, max(workRefillBurst, 2*n))
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); l.workWorker(ctx, tlsConf, refill) }()
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
func (l *serverLink) workWorker(ctx context.Context, tlsConf *tls.Config, refill *rate.Limiter) {
	b := backoff{min: time.Second, max: 30 * time.Second}
	for ctx.Err() == nil {
		if err := refill.Wait(ctx); err != nil {
			return
		}
		w, err := l.dialWork(ctx, tlsConf)
		if err != nil {
			l.c.log.Debug("work connection", "server", l.ep.Addr, "err", err)
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

// dialWork opens one work connection and proves the token on it.
func (l *serverLink) dialWork(ctx context.Context, tlsConf *tls.Config) (netx.TLSConn, error) {
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
	if tc.ConnectionState().NegotiatedProtocol != tlsconf.ALPNWork {
		w.Close()
		return netx.TLSConn{}, errors.New("server does not take work connections")
	}
	exporter, err := auth.Exporter(tc.ConnectionState(), "work")
	if err != nil {
		w.Close()
		return netx.TLSConn{}, err
	}
	if err := wire.Write(w, &wire.WorkConn{RunID: l.c.runID, Proof: auth.Proof(l.token, exporter, auth.RoleClient)}); err != nil {
		w.Close()
		return netx.TLSConn{}, err
	}
	return w, nil
}
