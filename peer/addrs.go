package peer

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/nat"
)

// Registration of the other family (see nat.RegisterRequest): the client's session to a server
// runs over IPv4 or IPv6, and the server learns the socket's public address of the other
// family from a registration sent to its addresses of that family, so that peers of either
// family can punch to this client. It is sent at once, again until the server answers, then
// every registerRefresh, which also keeps a NAT's mapping of that family alive.
const (
	registerTries   = 5
	registerRetry   = 500 * time.Millisecond // doubles between tries
	registerRefresh = 25 * time.Second
	maxRegisterAt   = 4 // server addresses registered with, at most
)

// registration is one control session's registration of the other family.
type registration struct {
	ctl   *control
	id    string
	key   []byte
	addrs []string // the server's addresses, as its login result listed them

	now chan struct{} // kick: register again at once

	mu      sync.Mutex
	targets map[netip.AddrPort]bool
	txs     map[[stun.TransactionIDSize]byte]netip.AddrPort
	done    bool // the server answered
}

func newRegistration(ctl *control, id string, key []byte, addrs []string) *registration {
	return &registration{ctl: ctl, id: id, key: key, addrs: addrs, now: make(chan struct{}, 1),
		targets: map[netip.AddrPort]bool{}, txs: map[[stun.TransactionIDSize]byte]netip.AddrPort{}}
}

// run registers until ctx ends. Over TCP (no UDP to this server) there is nothing to register.
func (r *registration) run(ctx context.Context) {
	if r.ctl.sess.Transport() != session.TransportQUIC || r.id == "" || !r.ctl.c.dualStack() {
		return
	}
	targets := r.findTargets(ctx)
	if len(targets) == 0 {
		return
	}
	r.mu.Lock()
	for _, t := range targets {
		r.targets[t] = true
	}
	r.mu.Unlock()
	wait := registerRetry
	for try := 0; ; try++ {
		r.send(targets)
		r.mu.Lock()
		answered := r.done
		r.mu.Unlock()
		next := registerRefresh
		if !answered && try < registerTries {
			next, wait = wait, wait*2
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		case <-r.now:
			r.mu.Lock()
			r.done = false // a new network: until the server answers again
			r.mu.Unlock()
			try, wait = -1, registerRetry
		}
	}
}

// kick registers again at once (the client's network changed).
func (r *registration) kick() {
	if r == nil {
		return
	}
	select {
	case r.now <- struct{}{}:
	default:
	}
}

// findTargets lists the server's addresses of the other family than the session's: those its
// login result named, and those DNS has for its name.
func (r *registration) findTargets(ctx context.Context) []netip.AddrPort {
	remote, ok := r.ctl.sess.RemoteAddr().(*net.UDPAddr)
	if !ok {
		return nil
	}
	session4 := remote.AddrPort().Addr().Unmap().Is4()
	seen := map[netip.AddrPort]bool{}
	var out []netip.AddrPort
	add := func(ap netip.AddrPort) {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if ap.IsValid() && ap.Addr().Is4() != session4 && !seen[ap] && len(out) < maxRegisterAt {
			seen[ap] = true
			out = append(out, ap)
		}
	}
	for _, a := range r.addrs {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			add(ap)
		}
	}
	host, _, err := net.SplitHostPort(r.ctl.link.ep.Addr)
	if err == nil {
		if _, err := netip.ParseAddr(host); err != nil { // a name: what else does DNS have?
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ips, _ := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
			cancel()
			for _, ip := range ips {
				add(netip.AddrPortFrom(ip, uint16(remote.Port)))
			}
		}
	}
	return out
}

func (r *registration) send(targets []netip.AddrPort) {
	for _, t := range targets {
		msg, err := nat.RegisterRequest(r.id, r.key)
		if err != nil {
			return
		}
		r.mu.Lock()
		if len(r.txs) > 64 {
			clear(r.txs)
		}
		r.txs[msg.TransactionID] = t
		r.mu.Unlock()
		r.ctl.c.sock.WriteRaw(msg.Raw, nil, net.UDPAddrFromAddrPort(t))
	}
}

// take reports whether a STUN packet from from is the server's answer to a registration, and
// records the public address it shows.
func (r *registration) take(data []byte, from netip.AddrPort) bool {
	r.mu.Lock()
	isTarget := r.targets[from]
	r.mu.Unlock()
	if !isTarget {
		return false
	}
	tx, public, ok := nat.ParseRegisterAnswer(data, r.key)
	if !ok {
		return true // from the server's address, but not a valid answer: dropped
	}
	r.mu.Lock()
	_, ours := r.txs[tx]
	delete(r.txs, tx)
	if ours {
		r.done = true
	}
	r.mu.Unlock()
	if ours {
		r.ctl.c.setPublicAlt(public)
	}
	return true
}

// onSTUN sorts the STUN packets of the client's socket: answers to registrations, or probes
// of P2P sessions and their answers (package traversal).
func (c *Client) onSTUN(data []byte, from netip.AddrPort) {
	if from.IsValid() {
		for _, ctl := range c.controls() {
			if ctl.reg != nil && ctl.reg.take(data, from) {
				return
			}
		}
	}
	c.trav.HandleSTUN(data, from)
}

// setPublicAlt records the socket's public address of the other family.
func (c *Client) setPublicAlt(a netip.AddrPort) {
	if old := c.publicAlt.Swap(&a); old == nil || *old != a {
		c.log.Info("public address of the other family", "public_alt", a.String())
	}
}

// hasIPv6 reports whether the client can reach IPv6 peers: its socket takes IPv6, and it has a
// global IPv6 address or a server saw one.
func (c *Client) hasIPv6() bool {
	if !c.dualStack() {
		return false
	}
	if a := c.publicAlt.Load(); a != nil && a.Addr().Is6() {
		return true
	}
	for _, ctl := range c.controls() {
		if ap, err := netip.ParseAddrPort(ctl.observed); err == nil && ap.Addr().Unmap().Is6() {
			return true
		}
	}
	for _, a := range nat.LocalAddrs(0, false, 16) {
		if a.Addr().Is6() && a.Addr().IsGlobalUnicast() && !a.Addr().IsPrivate() {
			return true
		}
	}
	return false
}
