package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/config"
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
}

func newLink(c *Client, i int, ep config.Endpoint) *serverLink {
	return &serverLink{c: c, index: i, ep: ep, token: []byte(ep.Token), change: make(chan struct{})}
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
