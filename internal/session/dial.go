package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/quic-go/quic-go"

	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/tlsconf"
)

// Protocols a client may ask for.
const (
	ProtocolAuto = "auto"
	ProtocolQUIC = "quic"
	ProtocolTCP  = "tcp"
)

// Dialer opens control sessions to a server: QUIC over the client's own UDP transport, TLS+yamux
// over TCP on the same port number, or both raced with QUIC given a head start.
type Dialer struct {
	// Transport is the client's UDP transport. QUIC sessions run on it so that the server sees the
	// NAT mapping that P2P peers will use.
	Transport *quic.Transport
	TLS       *tls.Config
	QUIC      *quic.Config
	Yamux     *yamux.Config
	Protocol  string
	// TCPDelay is QUIC's head start in auto mode before TCP is tried as well.
	TCPDelay time.Duration
	// Failed, if set, hears at once of an attempt that failed while the other one still runs
	// (in auto mode: "tcp: connection refused" while QUIC waits for an answer), so that a user
	// learns what is known without waiting for the whole dial to time out.
	Failed func(err error, stillTrying string)
}

// DialError is every failed attempt of a Dial (QUIC, TCP), in the order they failed.
type DialError struct {
	Attempts []error
}

func (e *DialError) Error() string {
	msgs := make([]string, len(e.Attempts))
	for i, err := range e.Attempts {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the attempts' errors.
func (e *DialError) Unwrap() []error { return e.Attempts }

// Dial connects to the server at addr (host:port) and returns the first session that completes.
func (d *Dialer) Dial(ctx context.Context, addr string) (Session, error) {
	switch d.Protocol {
	case ProtocolQUIC:
		return d.dialQUIC(ctx, addr)
	case ProtocolTCP:
		return d.dialTCP(ctx, addr)
	case ProtocolAuto, "":
	default:
		return nil, fmt.Errorf("unknown transport protocol %q", d.Protocol)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		s   Session
		err error
		via string // "quic" or "tcp"
	}
	results := make(chan result, 2)
	go func() {
		s, err := d.dialQUIC(ctx, addr)
		results <- result{s, err, "quic"}
	}()
	inFlight := map[string]bool{"quic": true}
	delay := time.NewTimer(d.TCPDelay)
	defer delay.Stop()
	startTCP := func() {
		inFlight["tcp"] = true
		go func() {
			s, err := d.dialTCP(ctx, addr)
			results <- result{s, err, "tcp"}
		}()
	}
	pending, tcpStarted := 1, false
	var errs []error
	for pending > 0 {
		select {
		case <-delay.C:
			if !tcpStarted {
				tcpStarted = true
				pending++
				startTCP()
			}
		case r := <-results:
			pending--
			if r.err == nil {
				cancel()
				// Close whichever other attempt completes late.
				go func(left int) {
					for ; left > 0; left-- {
						if late := <-results; late.s != nil {
							late.s.Close("superseded")
						}
					}
				}(pending)
				return r.s, nil
			}
			errs = append(errs, r.err)
			delete(inFlight, r.via)
			if !tcpStarted {
				tcpStarted = true
				pending++
				startTCP()
			}
			if pending > 0 && d.Failed != nil {
				for other := range inFlight {
					d.Failed(r.err, other)
				}
			}
		}
	}
	return nil, &DialError{Attempts: errs}
}

func (d *Dialer) dialQUIC(ctx context.Context, addr string) (Session, error) {
	if d.Transport == nil {
		return nil, errors.New("quic: no UDP transport")
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quic: resolve %s: %w", addr, err)
	}
	start := time.Now()
	c, err := d.Transport.Dial(ctx, ua, d.TLS, d.QUIC)
	if err != nil {
		var idle *quic.IdleTimeoutError
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &idle) {
			return nil, fmt.Errorf("quic: no answer from %s over UDP in %s: %w", addr, time.Since(start).Round(100*time.Millisecond), err)
		}
		return nil, fmt.Errorf("quic: dial %s: %w", addr, err)
	}
	return QUIC(c), nil
}

func (d *Dialer) dialTCP(ctx context.Context, addr string) (Session, error) {
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: %w", err)
	}
	tc := tls.Client(raw, d.TLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tcp: tls handshake with %s: %w", addr, err)
	}
	m, err := yamux.Client(YamuxConn(tc), d.Yamux)
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("tcp: yamux: %w", err)
	}
	return Yamux(tc, m), nil
}

// Listener accepts control sessions on a QUIC listener and a TCP listener at once.
type Listener struct {
	sessions chan Session
	work     chan Work
	closing  chan struct{}
	done     chan struct{}
	qln      *quic.Listener
	tln      net.Listener

	mu      sync.Mutex
	pending map[net.Conn]struct{} // TCP connections still in their TLS handshake
	wg      sync.WaitGroup        // handshake goroutines
	refused func(remote net.Addr, transport, reason string)
}

// ListenConfig bounds the TCP side: a TLS handshake must finish within HandshakeTimeout, and
// each connection must be admitted first, so idle connections that never speak cost little.
type ListenConfig struct {
	TLS              *tls.Config
	Yamux            *yamux.Config
	HandshakeTimeout time.Duration
	// Admit decides, before any TLS work, whether a new TCP connection from addr may start its
	// handshake (the server caps pending handshakes per source and in all); release is called
	// when the handshake is over. Nil admits MaxPending at once from anywhere.
	Admit      func(addr netip.Addr) (release func(), ok bool)
	MaxPending int
	// Refused, if set, is told of every connection the listener turns away and why (the server
	// logs them): a QUIC session of the wrong kind or beyond MaxPending (default 1024) sessions
	// waiting for Accept, a TCP connection that Admit refused.
	Refused func(remote net.Addr, transport, reason string)
	// HandshakeFailed, if set, is told of TCP connections whose TLS handshake failed (a
	// client's TLS settings, a scanner, or a client that dialled QUIC and TCP at once and
	// dropped the loser).
	HandshakeFailed func(remote net.Addr, err error)
}

// defaultSessionQueue is how many sessions wait for Accept at most when MaxPending is not set.
const defaultSessionQueue = 1024

// CloseBusy is the QUIC application error code of a session the server closed unserved
// because it sheds load: the client tries again later (IsBusy).
const CloseBusy quic.ApplicationErrorCode = 0x62

// IsBusy reports whether err says the server turned the session away for load: it closed it
// with CloseBusy, or quic-go's accept queue was full (CONNECTION_REFUSED).
func IsBusy(err error) bool {
	var appErr *quic.ApplicationError
	if errors.As(err, &appErr) && appErr.Remote && appErr.ErrorCode == CloseBusy {
		return true
	}
	var trErr *quic.TransportError
	return errors.As(err, &trErr) && trErr.Remote && trErr.ErrorCode == quic.ConnectionRefused
}

// Listen starts accepting on qln and tln (either may be nil). Close stops both.
func Listen(qln *quic.Listener, tln net.Listener, cfg ListenConfig) *Listener {
	queue := cfg.MaxPending
	if queue <= 0 {
		queue = defaultSessionQueue
	}
	if cfg.Refused == nil {
		cfg.Refused = func(net.Addr, string, string) {}
	}
	if cfg.HandshakeFailed == nil {
		cfg.HandshakeFailed = func(net.Addr, error) {}
	}
	l := &Listener{
		// Sessions wait here for Accept, so that quic-go's own accept queue (32 sessions, then
		// CONNECTION_REFUSED with nobody told) is always drained at once.
		sessions: make(chan Session, queue),
		work:     make(chan Work),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		qln:      qln,
		tln:      tln,
		pending:  make(map[net.Conn]struct{}),
		refused:  cfg.Refused,
	}
	loops := 0
	finished := make(chan struct{}, 2)
	if qln != nil {
		loops++
		go func() { defer func() { finished <- struct{}{} }(); l.acceptQUIC() }()
	}
	if tln != nil {
		loops++
		go func() { defer func() { finished <- struct{}{} }(); l.acceptTCP(cfg) }()
	}
	go func() {
		for range loops {
			<-finished
		}
		close(l.done)
	}()
	return l
}

// deliver hands s to Accept; false if the listener closed first (s is closed then).
func (l *Listener) deliver(s Session) bool {
	select {
	case l.sessions <- s:
		return true
	case <-l.closing:
		s.Close("server shutting down")
		return false
	}
}

func (l *Listener) acceptQUIC() {
	for {
		c, err := l.qln.Accept(context.Background())
		if err != nil {
			return
		}
		if c.ConnectionState().TLS.NegotiatedProtocol != tlsconf.ALPNControl {
			c.CloseWithError(0, "only control sessions run on QUIC")
			l.refused(c.RemoteAddr(), TransportQUIC, "not a control session (ALPN "+c.ConnectionState().TLS.NegotiatedProtocol+")")
			continue
		}
		select {
		case l.sessions <- QUIC(c):
		case <-l.closing:
			c.CloseWithError(0, "server shutting down")
		default:
			c.CloseWithError(CloseBusy, "server busy")
			l.refused(c.RemoteAddr(), TransportQUIC, "server busy: too many sessions waiting to log in")
		}
	}
}

func (l *Listener) acceptTCP(cfg ListenConfig) {
	admit := cfg.Admit
	if admit == nil {
		pending := make(chan struct{}, cfg.MaxPending)
		admit = func(netip.Addr) (func(), bool) {
			select {
			case pending <- struct{}{}:
				return func() { <-pending }, true
			default:
				return nil, false
			}
		}
	}
	for {
		raw, err := l.tln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		release, ok := admit(raw.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())
		if !ok {
			// Too many handshakes in flight (from this source, or in all): shed this one at
			// once, before any TLS work, instead of queueing it.
			raw.(*net.TCPConn).SetLinger(0)
			raw.Close()
			l.refused(raw.RemoteAddr(), TransportTCP, "server busy: too many TLS handshakes pending (from this source, or in all)")
			continue
		}
		l.mu.Lock()
		l.pending[raw] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			handedOver := false // the admission travels with what is delivered
			defer func() {
				l.mu.Lock()
				delete(l.pending, raw)
				l.mu.Unlock()
				if !handedOver {
					release()
				}
				l.wg.Done()
			}()
			raw.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
			under := netx.WatchEnd(raw.(*net.TCPConn))
			tc := tls.Server(under, cfg.TLS)
			if err := tc.Handshake(); err != nil {
				raw.Close()
				cfg.HandshakeFailed(raw.RemoteAddr(), err)
				return
			}
			raw.SetDeadline(time.Time{})
			if tc.ConnectionState().NegotiatedProtocol == tlsconf.ALPNWork {
				w := Work{TLSConn: netx.TLSConn{Conn: tc, Raw: under.TCPConn, Under: under}, Release: release}
				select {
				case l.work <- w:
					handedOver = true
				case <-l.closing:
					raw.Close()
				}
				return
			}
			m, err := yamux.Server(YamuxConn(tc), cfg.Yamux)
			if err != nil {
				raw.Close()
				return
			}
			handedOver = l.deliver(&yamuxSession{tc: tc, m: m, release: release})
		}()
	}
}

// Accept returns the next session.
func (l *Listener) Accept(ctx context.Context) (Session, error) {
	select {
	case s := <-l.sessions:
		return s, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Work is a work connection (a TCP+TLS connection with ALPN xp2p-work/1) whose handshake is
// done and whose owner still has to prove itself on it. Release frees its admission (see
// ListenConfig.Admit): call it once the connection proved itself or was refused.
type Work struct {
	netx.TLSConn
	Release func()
}

// AcceptWork returns the next work connection.
func (l *Listener) AcceptWork(ctx context.Context) (Work, error) {
	select {
	case w := <-l.work:
		return w, nil
	case <-l.done:
		return Work{}, net.ErrClosed
	case <-ctx.Done():
		return Work{}, ctx.Err()
	}
}

// Close stops accepting. Sessions already delivered stay open.
func (l *Listener) Close() error {
	select {
	case <-l.closing:
		return nil
	default:
	}
	close(l.closing)
	if l.qln != nil {
		l.qln.Close()
	}
	if l.tln != nil {
		l.tln.Close()
	}
	<-l.done
	l.mu.Lock()
	for c := range l.pending {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}
