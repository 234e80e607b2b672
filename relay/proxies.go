// Package relay owns everything that carries user traffic through the server: the public ports of
// classic tcp/udp proxies with their load-balancing groups (server side), the handling of the
// work streams those ports open towards a client (client side), and the forwarding of P2P
// packets between two clients when no direct path exists.
package relay

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/wire"
)

// Owner is the client a proxy belongs to: the server opens work streams on its session.
type Owner interface {
	OpenStream(ctx context.Context) (session.Stream, error)
	// TakeWorkConn takes an idle pooled work connection of the client, if it has one.
	TakeWorkConn() (Conn, bool)
	// ID names the client in logs and errors.
	ID() string
	// Identity is who the client is for what it leaves behind: its proxies' figures are kept
	// under this owner once offline (StatsBook).
	Identity() string
	// FlowDatagrams carries udp flows' datagrams beside their streams (nil: streams only).
	FlowDatagrams() *session.FlowDatagrams
}

// Conn is what carries one user connection to a client: a work stream of its session, or a
// pooled work connection.
type Conn interface {
	netx.HalfConn
	netx.Resetter
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// Errors the server sends back to a client that asked for a port.
var (
	ErrPortNotAllowed = errors.New("port not allowed by the server's allowPorts")
	ErrPortInUse      = errors.New("port already in use")
	ErrGroupKey       = errors.New("wrong loadBalancer.groupKey for this group")
	ErrGroupPort      = errors.New("a group's members share one remotePort")
)

// ProxiesConfig is what the server's config says about public ports.
type ProxiesConfig struct {
	BindAddr string
	// AllowPorts are the ports proxies may take (the server's allowPorts; empty: any).
	AllowPorts []config.PortRange
	// UDPIdleTimeout expires a udp proxy's per-source session.
	UDPIdleTimeout time.Duration
	Log            *slog.Logger
}

// Proxies is the server's set of public tcp/udp ports.
type Proxies struct {
	cfg     ProxiesConfig
	allowed portSet
	stats   *StatsBook

	mu       sync.Mutex
	tcpPorts map[int]*tcpPort
	groups   map[string]*tcpPort // load-balancing groups by name: one port each
	udpPorts map[int]*udpProxy
	byKey    map[memberKey]*Member
	closed   bool
}

type memberKey struct {
	owner Owner
	name  string
}

// NewProxies returns an empty set.
func NewProxies(cfg ProxiesConfig, stats *StatsBook) *Proxies {
	if cfg.UDPIdleTimeout == 0 {
		cfg.UDPIdleTimeout = 60 * time.Second
	}
	return &Proxies{
		cfg:      cfg,
		allowed:  portSet(cfg.AllowPorts),
		stats:    stats,
		tcpPorts: map[int]*tcpPort{},
		groups:   map[string]*tcpPort{},
		udpPorts: map[int]*udpProxy{},
		byKey:    map[memberKey]*Member{},
	}
}

// tcpPort is a public tcp port and the members (one, or a load-balancing group) behind it.
type tcpPort struct {
	port     int
	group    string
	groupKey []byte // as the members send it: derived from loadBalancer.groupKey (auth.GroupKey)
	ln       net.Listener
	members  atomic.Pointer[[]*Member]
	next     atomic.Uint64
	done     chan struct{}
}

// Add publishes a proxy and returns the address it is reachable on.
func (p *Proxies) Add(owner Owner, req *wire.NewProxy) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return "", errors.New("server shutting down")
	}
	key := memberKey{owner, req.Name}
	if _, dup := p.byKey[key]; dup {
		return "", fmt.Errorf("proxy %q is already registered by this client", req.Name)
	}
	if !p.allowed.allows(req.RemotePort) {
		return "", fmt.Errorf("remotePort %d: %w", req.RemotePort, ErrPortNotAllowed)
	}
	m := NewMember(owner, req.Name, p.stats.Acquire(req.Name, req.Type, owner.Identity()), netx.NewByteLimiter(req.BandwidthLimit))
	var port int
	var err error
	switch req.Type {
	case wire.ProxyTCP:
		port, err = p.addTCPLocked(m, req)
	case wire.ProxyUDP:
		port, err = p.addUDPLocked(m, req)
	default:
		err = fmt.Errorf("proxy type %q is not a public port", req.Type)
	}
	if err != nil {
		p.stats.Discard(m.stats)
		return "", err
	}
	m.stats.SetPort(port)
	p.byKey[key] = m
	return net.JoinHostPort(p.cfg.BindAddr, strconv.Itoa(port)), nil
}

func (p *Proxies) addTCPLocked(m *Member, req *wire.NewProxy) (int, error) {
	if req.Group != "" {
		if tp := p.groups[req.Group]; tp != nil {
			return tp.join(m, req)
		}
	}
	if _, busy := p.tcpPorts[req.RemotePort]; busy && req.RemotePort != 0 {
		return 0, fmt.Errorf("remotePort %d: %w", req.RemotePort, ErrPortInUse)
	}
	ln, err := p.listenTCPLocked(req.RemotePort)
	if err != nil {
		return 0, err
	}
	tp := &tcpPort{
		port:     ln.Addr().(*net.TCPAddr).Port,
		group:    req.Group,
		groupKey: req.GroupKey,
		ln:       ln,
		done:     make(chan struct{}),
	}
	members := []*Member{m}
	tp.members.Store(&members)
	p.tcpPorts[tp.port] = tp
	if tp.group != "" {
		p.groups[tp.group] = tp
	}
	go p.acceptTCP(tp)
	return tp.port, nil
}

// join adds m to the group on this port if it proves the group's key (compared in constant
// time, before anything else is said about the group) and asks for the group's port or any.
func (tp *tcpPort) join(m *Member, req *wire.NewProxy) (int, error) {
	if subtle.ConstantTimeCompare(tp.groupKey, req.GroupKey) != 1 {
		return 0, fmt.Errorf("group %q: %w", req.Group, ErrGroupKey)
	}
	if req.RemotePort != 0 && req.RemotePort != tp.port {
		return 0, fmt.Errorf("group %q is on remotePort %d, not %d: %w", req.Group, tp.port, req.RemotePort, ErrGroupPort)
	}
	old := *tp.members.Load()
	next := append(append([]*Member(nil), old...), m)
	tp.members.Store(&next)
	return tp.port, nil
}

// listenTCPLocked listens on port, or on a free allowed port when port is 0.
func (p *Proxies) listenTCPLocked(port int) (net.Listener, error) {
	listen := func(port int) (net.Listener, error) {
		return net.Listen("tcp", net.JoinHostPort(p.cfg.BindAddr, strconv.Itoa(port)))
	}
	if port != 0 {
		ln, err := listen(port)
		if err != nil {
			return nil, fmt.Errorf("remotePort %d: %w (%v)", port, ErrPortInUse, err)
		}
		return ln, nil
	}
	var ln net.Listener
	held := func(port int) bool { _, ok := p.tcpPorts[port]; return ok }
	err := p.allowed.pick(held, func(port int) (err error) { ln, err = listen(port); return err })
	if err != nil {
		return nil, fmt.Errorf("remotePort 0: %w", err)
	}
	return ln, nil
}

func (p *Proxies) acceptTCP(tp *tcpPort) {
	defer close(tp.done)
	for {
		c, err := tp.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		go p.serveTCP(tp, c.(*net.TCPConn))
	}
}

// serveTCP hands one user connection to a member, trying the next one of a group if a member's
// client cannot open a stream.
func (p *Proxies) serveTCP(tp *tcpPort, user *net.TCPConn) {
	members := *tp.members.Load()
	start := int(tp.next.Add(1))
	for i := range members {
		m := members[(start+i)%len(members)]
		if m.Serve(netx.TCP{TCPConn: user}, p.cfg.Log) {
			return
		}
	}
	netx.TCP{TCPConn: user}.Reset()
}

// Remove withdraws one proxy of owner; its open connections are closed.
func (p *Proxies) Remove(owner Owner, name string) {
	p.mu.Lock()
	m, ok := p.byKey[memberKey{owner, name}]
	if !ok {
		p.mu.Unlock()
		return
	}
	delete(p.byKey, memberKey{owner, name})
	p.stats.Release(m.stats)
	var closers []func()
	for port, tp := range p.tcpPorts {
		old := *tp.members.Load()
		var next []*Member
		for _, x := range old {
			if x != m {
				next = append(next, x)
			}
		}
		if len(next) == len(old) {
			continue
		}
		if len(next) == 0 {
			delete(p.tcpPorts, port)
			if tp.group != "" {
				delete(p.groups, tp.group)
			}
			closers = append(closers, func() { tp.ln.Close(); <-tp.done })
		} else {
			tp.members.Store(&next)
		}
	}
	for port, up := range p.udpPorts {
		if up.member == m {
			delete(p.udpPorts, port)
			closers = append(closers, up.close)
		}
	}
	p.mu.Unlock()
	for _, c := range closers {
		c()
	}
	m.Close()
}

// RemoveOwner withdraws every proxy of owner (its session ended).
func (p *Proxies) RemoveOwner(owner Owner) {
	p.mu.Lock()
	var names []string
	for k := range p.byKey {
		if k.owner == owner {
			names = append(names, k.name)
		}
	}
	p.mu.Unlock()
	for _, n := range names {
		p.Remove(owner, n)
	}
}

// Close withdraws every proxy and stops all listeners.
func (p *Proxies) Close() {
	p.mu.Lock()
	p.closed = true
	keys := make([]memberKey, 0, len(p.byKey))
	for k := range p.byKey {
		keys = append(keys, k)
	}
	p.mu.Unlock()
	for _, k := range keys {
		p.Remove(k.owner, k.name)
	}
}

// Holders returns the clients whose proxies hold the public port req asks for (kind
// wire.ProxyTCP or wire.ProxyUDP): the members of a tcp port (several for a load-balancing
// group), the owner of a udp port; none if xp2p does not hold it (another program may) or req
// asks for any port.
func (p *Proxies) Holders(req *wire.NewProxy) []Owner {
	port := req.RemotePort
	if port == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Owner
	switch req.Type {
	case wire.ProxyTCP:
		if tp := p.tcpPorts[port]; tp != nil {
			for _, m := range *tp.members.Load() {
				out = append(out, m.owner)
			}
		}
	case wire.ProxyUDP:
		if up := p.udpPorts[port]; up != nil {
			out = append(out, up.member.owner)
		}
	}
	return out
}

// Count returns the number of registered proxies.
func (p *Proxies) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byKey)
}
