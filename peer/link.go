package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/identity"
	"github.com/xp2p/xp2p/internal/tlsconf"
	"github.com/xp2p/xp2p/internal/wire"
)

// serverLink is the client's relation with one server: its current control session (nil while
// disconnected) and the reconnect loop that keeps one. A client has one link per server it
// names; proxies register on every link, P2P sessions belong to the link that paired them.
type serverLink struct {
	c     *Client
	index int
	ep    config.Endpoint
	token []byte

	ctl    atomic.Pointer[control]
	mu     sync.Mutex
	change chan struct{} // closed and replaced whenever ctl changes

	// udpAddr is the server's resolved UDP address: relayed packets go there.
	udpAddr atomic.Pointer[net.UDPAddr]

	// pin checks the server's identity key on every TLS connection to it (nil: the config's
	// trustedCaFile authenticates the server instead).
	pin *identity.Pin
	// ticket is the server's login ticket from the last login (nil: none yet): later logins
	// prove it, which lets them past the limit on failed logins of a shared address.
	ticket atomic.Pointer[wire.Ticket]
	// quicWorked: a QUIC session to this server logged in before, so UDP gets through (see
	// quicHeadStart).
	quicWorked atomic.Bool
}

// QUIC's head start before an "auto" dial tries TCP too: a second at first, longer once QUIC
// has worked with this server. After a restart every client logs in at once and the server's
// QUIC handshakes may take more than a second; the clients would then fall back to TCP (TLS,
// yamux and a relay stream cost the server more than a QUIC session) and stay there.
const (
	quicHeadStart      = time.Second
	quicHeadStartKnown = 4 * time.Second
)

// tcpDelay is QUIC's head start for the next dial.
func (l *serverLink) tcpDelay() time.Duration {
	if l.quicWorked.Load() {
		return quicHeadStartKnown
	}
	return quicHeadStart
}

func newLink(c *Client, i int, ep config.Endpoint) *serverLink {
	l := &serverLink{c: c, index: i, ep: ep, token: []byte(ep.Token), change: make(chan struct{})}
	if ep.Fingerprint != "" || c.cfg.Transport.TLS.TrustedCaFile == "" {
		key := "transport.tls.serverFingerprint" // the first server's, serverAddr
		switch {
		case c.cfg.ServerAddr == "":
			key = fmt.Sprintf("servers[%d].fingerprint", i)
		case i > 0:
			key = fmt.Sprintf("servers[%d].fingerprint", i-1)
		}
		l.pin = &identity.Pin{Addr: ep.Addr, Configured: ep.Fingerprint, ConfigKey: key, Known: identity.OpenKnown(c.cfg.StateDir)}
	}
	return l
}

// tlsConfig is the TLS configuration of connections to the link's server: control sessions, or
// work connections (tlsconf.Work) with work set.
func (l *serverLink) tlsConfig(work bool) (*tls.Config, error) {
	conf, err := tlsconf.Client(l.c.cfg.Transport.TLS.ServerName, l.c.cfg.Transport.TLS.TrustedCaFile)
	if err != nil {
		return nil, err
	}
	if l.pin != nil {
		conf.VerifyConnection = l.pin.VerifyConnection
	}
	if work {
		conf = tlsconf.Work(conf)
	}
	return conf, nil
}

// confirmIdentity records the server's key once it proved the token (trust on first use).
func (l *serverLink) confirmIdentity() {
	if l.pin == nil {
		return
	}
	fp, err := l.pin.Confirm()
	switch {
	case err != nil:
		l.c.log.Warn("server identity trusted for this run only: cannot record it", "server", l.ep.Addr, "fingerprint", fp, "err", err)
	case fp != "":
		l.c.log.Info("server identity trusted on first use", "server", l.ep.Addr, "fingerprint", fp, "file", l.pin.Known.Path())
	}
}

func (l *serverLink) setControl(ctl *control) {
	l.mu.Lock()
	l.ctl.Store(ctl)
	close(l.change)
	l.change = make(chan struct{})
	l.mu.Unlock()
	l.c.linkChanged()
}

func (l *serverLink) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.change
}

// waitControl returns the link's control session, waiting for one until ctx ends.
func (l *serverLink) waitControl(ctx context.Context) (*control, error) {
	for {
		ch := l.changed()
		if ctl := l.ctl.Load(); ctl != nil {
			return ctl, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("not connected to %s: %w", l.ep.Addr, context.Cause(ctx))
		case <-l.c.ctx.Done():
			return nil, errors.New("client closing")
		}
	}
}

// resolve looks the server's UDP address up again and records it as a known server address.
func (l *serverLink) resolve() {
	ua, err := net.ResolveUDPAddr("udp", l.ep.Addr)
	if err != nil {
		return
	}
	l.udpAddr.Store(ua)
	l.c.paths.setServers(l.c.serverAddrs())
}

// serverAddrs lists the resolved UDP addresses of all the client's servers.
func (c *Client) serverAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, l := range c.links {
		if ua := l.udpAddr.Load(); ua != nil {
			out = append(out, key(ua))
		}
	}
	return out
}

// linkChanged wakes everyone waiting for a connected link.
func (c *Client) linkChanged() {
	c.mu.Lock()
	close(c.anyChange)
	c.anyChange = make(chan struct{})
	c.mu.Unlock()
}

// controls returns the live control sessions, one per connected server.
func (c *Client) controls() []*control {
	var out []*control
	for _, l := range c.links {
		if ctl := l.ctl.Load(); ctl != nil {
			out = append(out, ctl)
		}
	}
	return out
}

// bestControl returns the connected server with the lowest round-trip time, waiting for one
// until ctx ends. Visitors rendezvous there.
func (c *Client) bestControl(ctx context.Context) (*control, error) {
	for {
		c.mu.Lock()
		ch := c.anyChange
		c.mu.Unlock()
		var best *control
		var bestRTT time.Duration
		for _, ctl := range c.controls() {
			rtt := ctl.sess.RTT()
			if best == nil || (rtt > 0 && rtt < bestRTT) {
				best, bestRTT = ctl, rtt
			}
		}
		if best != nil {
			return best, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("not connected to any server: %w", context.Cause(ctx))
		case <-c.ctx.Done():
			return nil, errors.New("client closing")
		}
	}
}
