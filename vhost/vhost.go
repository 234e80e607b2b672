// Package vhost publishes the server's web proxies on its shared web ports, where many proxies
// are told apart by host name (frp's vhosts): http on vhostHTTPPort, a reverse proxy
// (net/http/httputil) routed by Host, path and user; https on vhostHTTPSPort, routed by the
// server name of the TLS ClientHello and passed through untouched (the client's service holds
// the certificate); tcpmux on tcpmuxHTTPConnectPort, routed by the host of an HTTP CONNECT.
// A route leads to one proxy, or round robin to a load-balancing group of them.
package vhost

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/relay"
)

// Config is what the server's config says about its web ports.
type Config struct {
	BindAddr string
	// HTTPPort, HTTPSPort and TCPMuxPort are the ports to listen on (0: off; tests may ask for
	// any free port with -1).
	HTTPPort, HTTPSPort, TCPMuxPort int
	// TCPMuxPassthrough hands the CONNECT request itself to the service instead of answering it.
	TCPMuxPassthrough bool
	// ResponseHeaderTimeout bounds the wait for a service's response header (default 60 s).
	ResponseHeaderTimeout time.Duration
	// SubDomainHost is the domain subdomains are put under ("": subdomains are refused).
	SubDomainHost string
	// NotFoundPage is served for an unknown host or path (nil: the built-in page).
	NotFoundPage []byte
	// TerminateTLS, when set, ends on HTTPSPort the TLS of users who ask for a host of an http
	// proxy that no https proxy has, and serves them as on HTTPPort (package acmecert's
	// certificates); WrapHTTP wraps the http port's handler (the CA's HTTP-01 checks).
	TerminateTLS *tls.Config
	WrapHTTP     func(http.Handler) http.Handler
	Log          *slog.Logger
}

// routeTimeout bounds how long a connection may take to say where it goes (its ClientHello,
// its CONNECT or its request header); maxPending (limit.go) bounds the connections doing so
// at once.
const (
	routeTimeout = 10 * time.Second
	// maxRoutes bounds the routes (domains × locations) one proxy may hold.
	maxRoutes = 256
)

// Server is the set of web proxies and the listeners of the web ports. It is the publisher of
// the wire kinds http, https and tcpmux.
type Server struct {
	cfg    Config
	stats  *relay.StatsBook
	fronts map[string]front // by wire kind; only the ports that listen

	mu      sync.Mutex
	proxies map[proxyKey]*webProxy
	closed  bool
}

// front is one web port: it routes what arrives to the routes of its router.
type front interface {
	router() *router
	// addr is where users reach the port.
	addr() net.Addr
	close()
}

// nextProxyID numbers web proxies (webProxy.id).
var nextProxyID atomic.Uint64

type proxyKey struct {
	owner relay.Owner
	name  string
}

// webProxy is one web proxy of one client.
type webProxy struct {
	member *relay.Member
	req    wire.NewProxy
	front  front
	routes []*route
	// id keys the HTTP transport's idle connections to this proxy's client.
	id uint64
	// dial opens a connection to the proxy's service for a user (http).
	dial func(src, dst net.Addr) (net.Conn, error)
}

// New listens on the configured web ports.
func New(cfg Config, stats *relay.StatsBook) (*Server, error) {
	if cfg.ResponseHeaderTimeout == 0 {
		cfg.ResponseHeaderTimeout = 60 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, stats: stats, fronts: map[string]front{}, proxies: map[proxyKey]*webProxy{}}
	listen := func(port int) (net.Listener, error) {
		if port < 0 {
			port = 0
		}
		return net.Listen("tcp", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(port)))
	}
	for _, p := range []struct {
		kind string
		port int
		make func(net.Listener) front
	}{
		{wire.ProxyHTTP, cfg.HTTPPort, func(ln net.Listener) front { return newHTTPFront(ln, &s.cfg) }},
		{wire.ProxyHTTPS, cfg.HTTPSPort, func(ln net.Listener) front { return newMuxFront(ln, &s.cfg, sniRoute) }},
		{wire.ProxyTCPMux, cfg.TCPMuxPort, func(ln net.Listener) front {
			return newMuxFront(ln, &s.cfg, connectRoute(cfg.TCPMuxPassthrough))
		}},
	} {
		if p.port == 0 {
			continue
		}
		ln, err := listen(p.port)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%s port: %w", p.kind, err)
		}
		s.fronts[p.kind] = p.make(ln)
		cfg.Log.Info("web port listening", "type", p.kind, "addr", ln.Addr().String())
	}
	hf, _ := s.fronts[wire.ProxyHTTP].(*httpFront)
	mf, _ := s.fronts[wire.ProxyHTTPS].(*muxFront)
	if cfg.TerminateTLS != nil && hf != nil && mf != nil {
		hf.serveTLS(cfg.TerminateTLS, mf.addr())
		// Before the first connection: the fronts were just started.
		mf.fallback = func(c net.Conn, host string) bool {
			if !hf.rt.hasHost(canonicalHost(host)) {
				return false
			}
			return hf.tlsIn.Put(c)
		}
	}
	return s, nil
}

// HTTPHost says whether an http proxy holds name itself (not by a wildcard): nil if it does.
func (s *Server) HTTPHost(name string) error {
	if hf, _ := s.fronts[wire.ProxyHTTP].(*httpFront); hf != nil && hf.rt.hasHost(canonicalHost(name)) {
		return nil
	}
	return fmt.Errorf("no http proxy has the host %q", name)
}

// Addr is where the web port of a kind listens (nil: it does not).
func (s *Server) Addr(kind string) net.Addr {
	if f := s.fronts[kind]; f != nil {
		return f.addr()
	}
	return nil
}

// portKey is the server key that turns the port of a kind on.
var portKey = map[string]string{wire.ProxyHTTP: "vhostHTTPPort", wire.ProxyHTTPS: "vhostHTTPSPort", wire.ProxyTCPMux: "tcpmuxHTTPConnectPort"}

// Add publishes a web proxy on its kind's port and returns where users reach it: one URL-ish
// address per route ("nas.example.com:80").
func (s *Server) Add(owner relay.Owner, req *wire.NewProxy) (string, error) {
	f := s.fronts[req.Type]
	if f == nil {
		return "", fmt.Errorf("%s proxies need the server's %s, which is not set", req.Type, portKey[req.Type])
	}
	domains, err := s.domains(req)
	if err != nil {
		return "", err
	}
	locations := req.Locations
	if len(locations) == 0 || req.Type != wire.ProxyHTTP {
		locations = []string{""}
	}
	if len(domains)*len(locations) > maxRoutes {
		return "", fmt.Errorf("%d domains × %d locations: at most %d routes per proxy", len(domains), len(locations), maxRoutes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errors.New("server shutting down")
	}
	key := proxyKey{owner, req.Name}
	if _, dup := s.proxies[key]; dup {
		return "", fmt.Errorf("proxy %q is already registered by this client", req.Name)
	}
	stats := s.stats.Acquire(req.Name, req.Type, owner.Identity())
	wp := &webProxy{member: relay.NewMember(owner, req.Name, stats, netx.NewByteLimiter(req.BandwidthLimit)), req: *req, front: f, id: nextProxyID.Add(1)}
	wp.dial = wp.member.Dial
	rt := f.router()
	var addrs []string
	_, port, _ := net.SplitHostPort(f.addr().String())
	for _, d := range domains {
		for _, loc := range locations {
			k := routeKey{domain: d, location: loc, user: req.RouteByHTTPUser}
			r, err := rt.add(k, wp, req.Group, req.GroupKey)
			if err != nil {
				for _, r := range wp.routes {
					rt.remove(r.key, wp)
				}
				s.stats.Discard(stats)
				return "", err
			}
			wp.routes = append(wp.routes, r)
		}
		addrs = append(addrs, net.JoinHostPort(d, port))
	}
	stats.SetPort(0)
	s.proxies[key] = wp
	return strings.Join(addrs, ","), nil
}

// domains are the host names a proxy asks for, its subdomain under subDomainHost included,
// checked against the server's rules (frp's).
func (s *Server) domains(req *wire.NewProxy) ([]string, error) {
	var out []string
	sub := s.cfg.SubDomainHost
	for _, d := range req.CustomDomains {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if d == "" {
			continue
		}
		if sub != "" && strings.HasSuffix(d, "."+sub) {
			return nil, fmt.Errorf("customDomains %q is under the server's subDomainHost %s: ask for it with subdomain", d, sub)
		}
		out = append(out, d)
	}
	if req.SubDomain != "" {
		if sub == "" {
			return nil, errors.New("subdomain needs the server's subDomainHost, which is not set; use customDomains")
		}
		out = append(out, strings.ToLower(req.SubDomain)+"."+sub)
	}
	if len(out) == 0 {
		return nil, errors.New("no customDomains and no subdomain")
	}
	return out, nil
}

// Holders returns the owners of the web proxies that hold a host req asks for (so that a
// client asking for the hosts of a dead one can take them over).
func (s *Server) Holders(req *wire.NewProxy) []relay.Owner {
	f := s.fronts[req.Type]
	domains, err := s.domains(req)
	if f == nil || err != nil {
		return nil
	}
	// A host belongs to the clients of all its routes (router.add), whatever the location.
	var out []relay.Owner
	for _, d := range domains {
		for _, o := range f.router().owners(d) {
			if !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	return out
}

// owner is the client of the proxy (nil in the router's own tests, which have no members).
func (wp *webProxy) owner() relay.Owner {
	if wp.member == nil {
		return nil
	}
	return wp.member.Owner()
}

// Remove withdraws a web proxy of owner: its routes go, its connections close.
func (s *Server) Remove(owner relay.Owner, name string) {
	s.mu.Lock()
	wp := s.proxies[proxyKey{owner, name}]
	delete(s.proxies, proxyKey{owner, name})
	s.mu.Unlock()
	if wp == nil {
		return
	}
	for _, r := range wp.routes {
		wp.front.router().remove(r.key, wp)
	}
	wp.member.Close()
	s.stats.Release(wp.member.Stats())
}

// RemoveOwner withdraws every web proxy of owner.
func (s *Server) RemoveOwner(owner relay.Owner) {
	s.mu.Lock()
	var names []string
	for k := range s.proxies {
		if k.owner == owner {
			names = append(names, k.name)
		}
	}
	s.mu.Unlock()
	for _, n := range names {
		s.Remove(owner, n)
	}
}

// Close withdraws every proxy and closes the web ports.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	keys := make([]proxyKey, 0, len(s.proxies))
	for k := range s.proxies {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	for _, k := range keys {
		s.Remove(k.owner, k.name)
	}
	for _, f := range s.fronts {
		f.close()
	}
}
