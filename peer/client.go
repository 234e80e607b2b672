// Package peer is the xp2p client: it owns the client's one UDP socket, its session to the
// server (with reconnects), the proxies it publishes, the visitors it binds, and its P2P
// sessions: probing, path selection, keepalives and the QUIC connections to peers.
package peer

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/time/rate"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/identity"
	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/quicsock"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/tlsconf"
	"github.com/xp2p/xp2p/nat"
	"github.com/xp2p/xp2p/plugin"
	"github.com/xp2p/xp2p/portmap"
	"github.com/xp2p/xp2p/relay"
	"github.com/xp2p/xp2p/traversal"
)

// Version is the client's version string, reported to the server (set by cmd).
var Version = "dev"

// Client is a running xp2p client.
type Client struct {
	cfg *config.Client
	log *slog.Logger
	// runKey identifies this client to the servers (auth.RunKey), across restarts when its
	// state directory keeps it; runID is its hash; releaseKey unlocks the key file.
	runKey     auth.RunKey
	releaseKey func()
	runID      string
	links      []*serverLink

	udp      *net.UDPConn
	sock     *quicsock.Conn
	paths    *paths
	tr       *quic.Transport
	injector *net.UDPConn

	peerServerTLS, peerClientTLS *tls.Config
	peerLn                       *quic.Listener

	anyChange chan struct{} // closed and replaced whenever a link connects or disconnects

	// set holds the running proxies and visitors; Reload swaps it.
	set      atomic.Pointer[clientSet]
	reloadMu sync.Mutex
	p2p      *p2pSessions

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	fatal  chan error

	mu sync.Mutex // guards anyChange

	// nat is the NAT behaviour natLoop measured last (nil: not yet, or discovery is off).
	nat atomic.Pointer[nat.Behavior]
	// mapped is the router's mapping of the UDP socket (portMapLoop).
	mapped atomic.Pointer[portmap.Mapping]
	// mapErr is why portMapLoop's last attempt failed (nil: it did not).
	mapErr atomic.Pointer[portMapFailure]
	// trav runs the traversal of the P2P sessions.
	trav *traversal.Engine
	// httpBinds are the ports http visitors share.
	httpBinds httpBinds
	// natRecheck and portMapRecheck ask natLoop and portMapLoop to start over at once (the
	// network changed: netwatch.go).
	natRecheck, portMapRecheck chan struct{}
	// publicAlt is the socket's public address of the other family than the sessions to the
	// servers run on, as a server saw it (addrs.go; nil: none).
	publicAlt atomic.Pointer[netip.AddrPort]
}

// clientSet is an immutable snapshot of the client's proxies and visitors.
type clientSet struct {
	proxies  map[string]*localProxy
	visitors []*visitor
}

// proxy returns the running proxy of that name (nil if none).
func (c *Client) proxy(name string) *localProxy { return c.set.Load().proxies[name] }

// visitorList returns the running visitors.
func (c *Client) visitorList() []*visitor { return c.set.Load().visitors }

// localProxy is a [[proxies]] entry and its state as each server last reported it.
type localProxy struct {
	cfg      config.Proxy
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
	conns    atomic.Int64
	// limit caps the proxy's traffic here (bandwidthLimitMode "client"; nil: none), shared by
	// all its connections on every server.
	limit *rate.Limiter
	// unhealthy is why the last health checks failed (nil: healthy, or no check); the proxy is
	// then not registered on any server.
	unhealthy atomic.Pointer[string]
	// plugin serves the proxy's users inside the client ([proxies.plugin]; nil: localIP:localPort).
	plugin plugin.Plugin
	// stop ends the proxy's health checks (closed when a reload removes or replaces it).
	stop     chan struct{}
	stopOnce sync.Once

	mu     sync.Mutex
	status map[int]proxyStatus // by link index
}

type proxyStatus struct {
	state  string // "running", "error: ..." or "unhealthy: ..."; "waiting: ..." with retryAt
	remote string // where the server published it
	// retryAt is when the client asks again for a proxy whose name or port another holds.
	retryAt time.Time
}

// text is the status for people; a waiting proxy says when it asks again.
func (st proxyStatus) text() string {
	if st.retryAt.IsZero() {
		return st.state
	}
	return fmt.Sprintf("%s; asking again in %s", st.state, max(0, time.Until(st.retryAt)).Round(time.Second))
}

// localAddr is where the proxy's local service listens.
func (lp *localProxy) localAddr() string {
	return net.JoinHostPort(lp.cfg.LocalIP, strconv.Itoa(lp.cfg.LocalPort))
}

// local is the proxy's local service, reached over network ("tcp" or "udp") for one user from
// src that reached dst: its address, the PROXY protocol header it wants, the proxy's limiter.
func (lp *localProxy) local(network, src, dst string) relay.Local {
	l := relay.Local{Network: network, Addr: lp.localAddr(),
		Preamble: proxyHeader(lp.cfg.Transport.ProxyProtocolVersion, src, dst), Limit: lp.limit}
	if lp.plugin != nil {
		l.Serve, l.Src, l.Dst = lp.plugin.Serve, src, dst
	}
	return l
}

// startHealth starts the proxy's health checks, if it has any.
func (c *Client) startHealth(lp *localProxy) {
	if lp.cfg.HealthCheck.Type == "" {
		return
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.healthLoop(lp) }()
}

// stopHealth ends the proxy's health checks.
func (lp *localProxy) stopHealth() { lp.stopOnce.Do(func() { close(lp.stop) }) }

// stopAll ends the proxy's health checks and its plugin (the proxy is gone).
func (lp *localProxy) stopAll() {
	lp.stopHealth()
	if lp.plugin != nil {
		lp.plugin.Close()
	}
}

// forget drops what l's server said (its session ended): the proxy is pending there again.
func (lp *localProxy) forget(l *serverLink) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	delete(lp.status, l.index)
}

func (lp *localProxy) setStatus(l *serverLink, state, remote string) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	lp.status[l.index] = proxyStatus{state: state, remote: remote}
}

// setRetry records that l's server refused the proxy because its name or port is held, and
// when the client asks again.
func (lp *localProxy) setRetry(l *serverLink, why string, at time.Time) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	lp.status[l.index] = proxyStatus{state: "waiting: " + why, retryAt: at}
}

// summary describes the proxy's state on all n servers: "running", "pending", an error, or
// "running on 1 of 2 servers; ...: error".
func (lp *localProxy) summary(n int) (state string, remotes []string) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	running := 0
	var errs []string
	for i := 0; i < n; i++ {
		st, ok := lp.status[i]
		switch {
		case !ok:
		case st.state == "running":
			running++
			if st.remote != "" {
				remotes = append(remotes, st.remote)
			}
		default:
			errs = append(errs, st.text())
		}
	}
	switch {
	case running == n:
		return "running", remotes
	case len(errs) > 0 && running == 0 && n == 1:
		return errs[0], remotes
	case len(errs) > 0:
		return fmt.Sprintf("running on %d of %d servers; %s", running, n, strings.Join(errs, "; ")), remotes
	case running > 0:
		return fmt.Sprintf("running on %d of %d servers", running, n), remotes
	}
	return "pending", remotes
}

// LoginError is a login the server refused (wrong token, too many failures): Code is the
// server's wire.Code*, Reason its words.
type LoginError struct{ Code, Reason string }

func (e *LoginError) Error() string { return "login refused by server: " + e.Reason }

// New prepares a client; Start opens its socket and begins connecting.
func New(cfg *config.Client, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.Default()
	}
	runKey, releaseKey := loadRunKey(cfg, log)
	c := &Client{
		releaseKey: releaseKey,
		cfg:        cfg,
		log:        log,
		runKey:     runKey,
		runID:      runKey.ID(),
		paths:      newPaths(),
		anyChange:  make(chan struct{}),
		fatal:      make(chan error, 1),

		natRecheck:     make(chan struct{}, 1),
		portMapRecheck: make(chan struct{}, 1),
	}
	for i, ep := range cfg.Endpoints() {
		c.links = append(c.links, newLink(c, i, ep))
	}
	c.p2p = newP2PSessions(c)
	c.trav = traversal.NewEngine(travClient{c})
	c.paths.onSTUN = c.onSTUN
	set := &clientSet{proxies: map[string]*localProxy{}}
	for _, p := range selectedProxies(cfg) {
		lp, err := newLocalProxy(p, log)
		if err != nil {
			for _, lp := range set.proxies {
				lp.stopAll()
			}
			return nil, fmt.Errorf("proxy %q: %w", p.Name, err)
		}
		set.proxies[p.Name] = lp
	}
	for _, v := range selectedVisitors(cfg) {
		set.visitors = append(set.visitors, newVisitor(c, v))
	}
	c.set.Store(set)
	return c, nil
}

func newLocalProxy(p config.Proxy, log *slog.Logger) (*localProxy, error) {
	lp := &localProxy{cfg: p, status: map[int]proxyStatus{}, stop: make(chan struct{})}
	if bw, mode := p.BandwidthBytes(); mode == "client" {
		lp.limit = netx.NewByteLimiter(bw)
	}
	if p.Plugin != nil {
		pl, err := plugin.New(p.Plugin, plugin.Options{ViaVhost: p.Type == config.TypeHTTP, Log: log.With("proxy", p.Name)})
		if err != nil {
			return nil, err
		}
		lp.plugin = pl
	}
	return lp, nil
}

// selectedProxies returns the proxies the config runs (all, or those named in start).
func selectedProxies(cfg *config.Client) []config.Proxy {
	run := startSet(cfg)
	var out []config.Proxy
	for _, p := range cfg.Proxies {
		if len(run) == 0 || run[p.Name] {
			out = append(out, p)
		}
	}
	return out
}

// selectedVisitors returns the visitors the config runs.
func selectedVisitors(cfg *config.Client) []config.Visitor {
	run := startSet(cfg)
	var out []config.Visitor
	for _, v := range cfg.Visitors {
		if len(run) == 0 || run[v.Name] {
			out = append(out, v)
		}
	}
	return out
}

func startSet(cfg *config.Client) map[string]bool {
	run := map[string]bool{}
	for _, s := range cfg.Start {
		run[s] = true
	}
	return run
}

// Start opens the client's UDP socket and visitor ports, then connects in the background.
func (c *Client) Start() (err error) {
	defer func() {
		if err != nil {
			c.releaseKey() // a client that did not start does not hold its key
		}
	}()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	// One socket for both families (IPv6 with IPv4-mapped addresses, where the system has
	// IPv6; IPv4 alone elsewhere): whichever family reaches the server, peers are punched over
	// both (see addrs.go).
	c.udp, err = net.ListenUDP("udp", &net.UDPAddr{Port: c.cfg.Transport.UDPPort})
	if err != nil {
		return fmt.Errorf("open UDP socket: %w", err)
	}
	c.injector, err = net.ListenUDP("udp4", mustUDPAddr("127.0.0.1:0"))
	if err != nil {
		c.injector, err = net.ListenUDP("udp6", mustUDPAddr("[::1]:0"))
	}
	if err != nil {
		c.udp.Close()
		return fmt.Errorf("open loopback socket: %w", err)
	}
	c.paths.injector.Store(c.injector.LocalAddr().(*net.UDPAddr))
	c.sock = quicsock.New(c.udp, c.paths)
	if os.Getenv("XP2P_DISABLE_GRO") == "" {
		c.sock.EnableGRO()
	}
	c.tr = &quic.Transport{Conn: c.sock}
	c.peerServerTLS, c.peerClientTLS, err = tlsconf.Peer()
	if err != nil {
		c.closeSockets()
		return err
	}
	c.peerLn, err = c.tr.Listen(c.peerServerTLS, c.peerQUICConfig())
	if err != nil {
		c.closeSockets()
		return fmt.Errorf("listen for peers: %w", err)
	}
	set := c.set.Load()
	if err := listenAll(set.visitors); err != nil {
		c.closeSockets()
		return err
	}
	var servers []string
	for _, l := range c.links {
		servers = append(servers, l.ep.Addr)
	}
	c.log.Info("xp2p client started", "udp", c.udp.LocalAddr().String(), "servers", servers, "proxies", len(set.proxies), "visitors", len(set.visitors))
	c.wg.Add(1 + len(c.links))
	for _, l := range c.links {
		go func() { defer c.wg.Done(); l.connectLoop() }()
	}
	go func() { defer c.wg.Done(); c.p2p.acceptLoop() }()
	for _, lp := range set.proxies {
		c.startHealth(lp)
	}
	if c.cfg.Transport.NATDiscovery == nil || *c.cfg.Transport.NATDiscovery {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.natLoop() }()
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.netWatchLoop() }()
	if c.cfg.Transport.PortMapping {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.portMapLoop() }()
	}
	c.startVisitors(set.visitors)
	return nil
}

// listenAll binds every visitor's port, or none: on an error the ones bound are closed again.
func listenAll(vs []*visitor) error {
	for i, v := range vs {
		if err := v.listen(); err != nil {
			for _, w := range vs[:i] {
				w.close()
			}
			return err
		}
	}
	return nil
}

func (c *Client) startVisitors(vs []*visitor) {
	for _, v := range vs {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); v.serve() }()
	}
}

func mustUDPAddr(s string) *net.UDPAddr {
	a, _ := net.ResolveUDPAddr("udp", s)
	return a
}

func (c *Client) closeSockets() {
	if c.tr != nil {
		c.tr.Close()
	}
	c.udp.Close()
	c.injector.Close()
}

// Run starts the client and runs it until ctx ends or it cannot go on (a refused login with
// loginFailExit set).
func (c *Client) Run(ctx context.Context) error {
	if err := c.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return c.Close()
	case err := <-c.fatal:
		c.Close()
		return err
	}
}

// Close disconnects, closes every socket and waits for every goroutine of the client.
func (c *Client) Close() error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	for _, v := range c.visitorList() {
		v.close()
	}
	c.p2p.closeAll()
	for _, ctl := range c.controls() {
		ctl.sess.Close("client shutting down")
	}
	c.peerLn.Close()
	// Plugins end the users they serve, whose goroutines the wait below counts.
	for _, lp := range c.set.Load().proxies {
		lp.stopAll()
	}
	c.wg.Wait()
	c.closeSockets()
	c.releaseKey()
	c.log.Info("xp2p client stopped")
	return nil
}

// loadRunKey returns the client's run key from its state directory (identity.LoadClient), so
// that a restarted client logs in as the same client and its servers give it its names back
// at once. Where that fails (no state directory it may write, or another process of the same
// client runs on it) the process gets a key of its own, and says so: its names then come back
// after the server's liveness check of the old session (rendezvous.holderGrace).
func loadRunKey(cfg *config.Client, log *slog.Logger) (auth.RunKey, func()) {
	if cfg.StateDir != "" {
		key, release, err := identity.LoadClient(cfg.StateDir)
		if err == nil {
			return auth.RunKeyOf(key), sync.OnceFunc(release)
		}
		log.Warn("client key not kept across restarts: this run has a key of its own", "err", err)
	}
	return auth.NewRunKey(), func() {}
}

// Done is closed when the client is closing.
func (c *Client) Done() <-chan struct{} { return c.ctx.Done() }

// UDPAddr is the client's socket address.
func (c *Client) UDPAddr() *net.UDPAddr { return c.udp.LocalAddr().(*net.UDPAddr) }

// privateAddrs are the client's LAN candidates.
func (c *Client) privateAddrs() []string {
	port := uint16(c.UDPAddr().Port)
	var out []string
	for _, a := range nat.LocalAddrs(port, !c.dualStack(), 8) {
		out = append(out, a.String())
	}
	return out
}

func (c *Client) controlQUICConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout: time.Duration(c.cfg.Transport.DialServerTimeout) * time.Second,
		MaxIdleTimeout:       c.cfg.HeartbeatTimeout(),
		// No QUIC PINGs: the heartbeat sends a keepalive datagram (or a Ping) every interval;
		// quic-go's would come every min(KeepAlivePeriod, MaxIdleTimeout/2) after the last
		// packet received, that is more often than the heartbeat's 20 s.
		KeepAlivePeriod:            0,
		MaxIncomingStreams:         1 << 16,
		MaxIncomingUniStreams:      -1,
		InitialStreamReceiveWindow: 1 << 20,
		MaxStreamReceiveWindow:     16 << 20,
		MaxConnectionReceiveWindow: 64 << 20,
		EnableDatagrams:            true, // udp proxies' datagrams (session.FlowDatagrams)
		InitialPacketSize:          session.InitialPacketSize,
	}
}

func (c *Client) peerQUICConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout: 10 * time.Second,
		MaxIdleTimeout:       30 * time.Second,
		KeepAlivePeriod:      time.Duration(c.cfg.Transport.P2PKeepalive) * time.Second,
		// P2P sessions start at a size every path carries, relayed or direct, and let quic-go's
		// path MTU discovery grow it as far as every path of the session carries (the socket
		// filter drops its probes beyond that: see traversal's mtu.go).
		InitialPacketSize:          traversal.MinPacket,
		MaxIncomingStreams:         1 << 14,
		MaxIncomingUniStreams:      -1,
		InitialStreamReceiveWindow: 1 << 20,
		MaxStreamReceiveWindow:     32 << 20,
		MaxConnectionReceiveWindow: 64 << 20,
		EnableDatagrams:            true,
	}
}

// inject feeds a relay-framed packet into the client's own socket, as if the server had sent it.
func (c *Client) inject(pkt []byte) {
	c.injector.WriteToUDPAddrPort(pkt, c.injectAddr())
}

// injectSegments feeds a run of relay-framed packets of segSize bytes each (the last may be
// shorter) into the client's socket, as one GSO write where the system takes it.
func (c *Client) injectSegments(b []byte, segSize int) {
	quicsock.WriteSegmented(c.injector, b, segSize, net.UDPAddrFromAddrPort(c.injectAddr()))
}

// injectAddr is where the injector sends: the client's socket, at the injector's loopback.
func (c *Client) injectAddr() netip.AddrPort {
	return netip.AddrPortFrom(c.injector.LocalAddr().(*net.UDPAddr).AddrPort().Addr(), uint16(c.UDPAddr().Port))
}

// dualStack reports whether the client's socket takes both families.
func (c *Client) dualStack() bool {
	ip := c.UDPAddr().IP
	return ip.IsUnspecified() && ip.To4() == nil
}

// travClient is the client as traversal sees it (traversal.Client).
type travClient struct{ c *Client }

var _ traversal.Client = travClient{}

func (t travClient) Send(b []byte, to netip.AddrPort) error {
	return t.c.sock.WriteRaw(b, nil, net.UDPAddrFromAddrPort(to))
}

func (t travClient) Listen() (traversal.Socket, error) { return traversal.ListenUDP("udp") }

func (t travClient) NAT() (nat.Behavior, netip.AddrPort) { return t.c.natBehavior(), t.c.mappedAddr() }

func (t travClient) IPv6() bool { return t.c.hasIPv6() }

// hostname for the server's logs and dashboard.
func hostname() string {
	h, _ := os.Hostname()
	return h
}

// Transport returns the transport of the session to the first server ("" when disconnected).
func (c *Client) Transport() string {
	if ctl := c.links[0].ctl.Load(); ctl != nil {
		return ctl.sess.Transport()
	}
	return ""
}

var _ session.Session // the control type holds one
