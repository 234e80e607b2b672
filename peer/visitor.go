package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/relay"
)

// visitorWait bounds how long a local user waits for a session (the provider may be
// reconnecting to the server).
const visitorWait = 20 * time.Second

// visitor is a [[visitors]] entry: a local port whose connections reach a provider's service.
type visitor struct {
	c   *Client
	cfg config.Visitor

	ln  net.Listener
	fan *relay.UDPFanout

	mu       sync.Mutex
	sess     map[*serverLink]*p2pSession // at most one session per server
	inflight map[*serverLink]*sessionCall
	next     int // round robin over relayed sessions

	bytesIn, bytesOut atomic.Int64 // to and from the provider
	conns             atomic.Int64
	lastErr           atomic.Pointer[string]

	wg        sync.WaitGroup
	stop      chan struct{} // closed by close
	closeOnce sync.Once
}

type sessionCall struct {
	done chan struct{}
	s    *p2pSession
	err  error
}

func newVisitor(c *Client, cfg config.Visitor) *visitor {
	return &visitor{c: c, cfg: cfg, stop: make(chan struct{}),
		sess: map[*serverLink]*p2pSession{}, inflight: map[*serverLink]*sessionCall{}}
}

func (v *visitor) addr() string {
	return net.JoinHostPort(v.cfg.BindAddr, strconv.Itoa(v.cfg.BindPort))
}

// listen binds the visitor's local port.
func (v *visitor) listen() error {
	if v.cfg.Protocol == "http" {
		return v.c.httpBinds.join(v)
	}
	if v.cfg.Protocol == "udp" {
		conn, err := net.ListenUDP("udp", mustUDPAddr(v.addr()))
		if err != nil {
			return fmt.Errorf("visitor %q: bind udp %s: %w", v.cfg.Name, v.addr(), err)
		}
		v.fan = &relay.UDPFanout{
			Conn: conn,
			In:   &v.bytesOut,
			Out:  &v.bytesIn,
			Open: func(ctx context.Context, src netip.AddrPort) (session.Stream, error) {
				ctx, cancel := context.WithTimeout(ctx, visitorWait)
				defer cancel()
				s, err := v.session(ctx)
				if err != nil {
					return nil, err
				}
				return s.openStream(ctx, src.String(), v.addr())
			},
			OnFlow: func(d int) { v.conns.Add(int64(d)) },
		}
		return nil
	}
	ln, err := net.Listen("tcp", v.addr())
	if err != nil {
		return fmt.Errorf("visitor %q: bind %s: %w", v.cfg.Name, v.addr(), err)
	}
	v.ln = ln
	return nil
}

// serve runs until the client closes.
func (v *visitor) serve() {
	v.c.log.Info("visitor listening", "visitor", v.cfg.Name, "service", v.cfg.ServerName, "addr", v.addr(), "protocol", v.cfg.Protocol)
	if v.cfg.KeepTunnelOpen {
		v.wg.Add(1)
		go func() { defer v.wg.Done(); v.keepOpen() }()
	}
	if v.fan != nil || v.cfg.Protocol == "http" {
		if v.fan != nil {
			v.fan.Start()
		}
		select {
		case <-v.c.ctx.Done():
		case <-v.stop:
		}
		v.wg.Wait()
		return
	}
	for {
		conn, err := v.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			break
		}
		v.wg.Add(1)
		go func() { defer v.wg.Done(); v.handle(conn.(*net.TCPConn)) }()
	}
	v.wg.Wait()
}

// close stops the visitor: its port is released and its session ended.
func (v *visitor) close() {
	v.closeOnce.Do(func() {
		close(v.stop)
		if v.ln != nil {
			v.ln.Close()
		}
		if v.cfg.Protocol == "http" {
			v.c.httpBinds.leave(v)
		}
		if v.fan != nil {
			v.fan.Close()
		}
		v.mu.Lock()
		var all []*p2pSession
		for _, s := range v.sess {
			all = append(all, s)
		}
		v.mu.Unlock()
		for _, s := range all {
			s.end("visitor stopped", true)
		}
	})
}

// handle carries one local connection to the provider.
func (v *visitor) handle(conn *net.TCPConn) {
	ctx, cancel := context.WithTimeout(v.c.ctx, visitorWait)
	s, err := v.session(ctx)
	var st session.Stream
	if err == nil {
		st, err = s.openStream(ctx, conn.RemoteAddr().String(), conn.LocalAddr().String())
	}
	cancel()
	if err != nil {
		msg := err.Error()
		v.lastErr.Store(&msg)
		v.c.log.Warn("visitor cannot reach service", "visitor", v.cfg.Name, "service", v.cfg.ServerName, "err", err)
		netx.TCP{TCPConn: conn}.Reset()
		return
	}
	v.conns.Add(1)
	defer v.conns.Add(-1)
	netx.Pipe(netx.TCP{TCPConn: conn}, st, &v.bytesOut, &v.bytesIn)
}

// session returns a ready session to the provider for the next stream, creating one if needed.
// A session with a direct path wins; without one, streams are spread round robin over relayed
// sessions through every connected server, so that several servers' uplinks add up. Concurrent
// callers share one creation per server.
func (v *visitor) session(ctx context.Context) (*p2pSession, error) {
	v.mu.Lock()
	var live []*p2pSession
	for l, s := range v.sess {
		if !s.alive() {
			delete(v.sess, l)
			continue
		}
		if s.path.direct.Load() != nil {
			v.mu.Unlock()
			return s, nil
		}
		live = append(live, s)
	}
	if len(live) > 0 {
		for _, ctl := range v.c.controls() {
			if v.sess[ctl.link] == nil {
				v.startLocked(ctl.link) // spread over this server too, in the background
			}
		}
		sort.Slice(live, func(i, j int) bool { return live[i].link.index < live[j].link.index })
		s := live[v.next%len(live)]
		v.next++
		v.mu.Unlock()
		return s, nil
	}
	v.mu.Unlock()
	ctl, err := v.c.bestControl(ctx)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	call := v.startLocked(ctl.link)
	v.mu.Unlock()
	select {
	case <-call.done:
		return call.s, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("no session to %q yet: %w", v.cfg.ServerName, context.Cause(ctx))
	}
}

// startLocked starts creating a session through l's server, unless one is being created.
func (v *visitor) startLocked(l *serverLink) *sessionCall {
	if call := v.inflight[l]; call != nil {
		return call
	}
	call := &sessionCall{done: make(chan struct{})}
	v.inflight[l] = call
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		// The creation outlives the caller that started it: other callers wait for it too.
		cctx, cancel := context.WithTimeout(v.c.ctx, visitorWait)
		go func() {
			select {
			case <-v.stop:
				cancel()
			case <-cctx.Done():
			}
		}()
		call.s, call.err = v.establish(cctx, l)
		cancel()
		v.mu.Lock()
		delete(v.inflight, l)
		if call.err == nil {
			select {
			case <-v.stop:
				call.s.end("visitor stopped", true)
				call.err = errors.New("visitor stopped")
			default:
				v.sess[l] = call.s
			}
		}
		v.mu.Unlock()
		close(call.done)
	}()
	return call
}

// establish asks l's server for a session and completes the handshake with the provider,
// retrying while the provider is not (yet) online.
func (v *visitor) establish(ctx context.Context, l *serverLink) (*p2pSession, error) {
	c := v.c
	wait := 250 * time.Millisecond
	for {
		requested := time.Now()
		ctl, err := l.waitControl(ctx)
		if err != nil {
			return nil, err
		}
		ps, err := ctl.connect(ctx, v.cfg.ServerName, v.cfg.ServerUser)
		if err == nil {
			s := c.p2p.newSession(ctl, ps, sessionOpts{secret: v.cfg.SecretKey, relayOnly: v.cfg.ProxyType().RelayOnly, pipeline: v.cfg.Protocol != "udp"})
			s.requested = requested
			s.log.Info("p2p session requested", "visitor", v.cfg.Name, "peer_public", ps.PeerPublic, "peer_private", ps.PeerPrivate)
			err = s.dialProvider(ctx)
			if err == nil {
				return s, nil
			}
			s.end(err.Error(), true)
			var se *SecretError
			if errors.As(err, &se) {
				return nil, err
			}
		} else if !strings.Contains(err.Error(), "is online") {
			// Anything but "the provider is not online (yet)" is final for this attempt.
			if ctx.Err() == nil && !strings.Contains(err.Error(), "session ended") {
				return nil, err
			}
		}
		select {
		case <-time.After(wait):
			wait = min(wait*2, 2*time.Second)
		case <-ctx.Done():
			return nil, fmt.Errorf("service %q: %w (last error: %v)", v.cfg.ServerName, context.Cause(ctx), err)
		}
	}
}

// keepOpen keeps a session up at all times (keepTunnelOpen), rebuilding it when it ends.
func (v *visitor) keepOpen() {
	b := backoff{min: time.Second, max: 30 * time.Second}
	for {
		ctx, cancel := context.WithTimeout(v.c.ctx, visitorWait)
		s, err := v.session(ctx)
		cancel()
		if v.c.ctx.Err() != nil {
			return
		}
		if err != nil {
			select {
			case <-time.After(b.next()):
				continue
			case <-v.c.ctx.Done():
				return
			case <-v.stop:
				return
			}
		}
		b.reset()
		select {
		case <-s.done:
		case <-v.c.ctx.Done():
			return
		case <-v.stop:
			return
		}
	}
}
