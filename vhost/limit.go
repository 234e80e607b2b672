package vhost

import (
	"net"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/netx"
)

// Bounds on what users of the web ports hold before any route's password or service has
// seen them. Each is per source (an IPv4 address, an IPv6 /64, auth.Source) and in all, so that
// one source cannot take every slot: 1024 silent connections from one address used to shut
// every user out of every https site, and the http port kept any number of idle keep-alive
// connections (about 20 KiB each) for two minutes.
const (
	// maxPending connections may be waiting to say where they go (ClientHello, CONNECT) on
	// the https and tcpmux ports, maxPendingPerSource of them from one source. A browser's
	// connection says it in its first packet, so a source rarely has more than a few at once.
	maxPending          = 1024
	maxPendingPerSource = 32
	// maxHTTPConns connections may be open on the http port, maxHTTPConnsPerSource of them
	// from one source (a browser opens 6 per host; a shared address has room for dozens of
	// such users): at most about 200 MiB in all.
	maxHTTPConns          = 10000
	maxHTTPConnsPerSource = 256
)

// sourceConn is a user's connection that holds a slot of its source until it closes.
type sourceConn struct {
	*net.TCPConn
	release func()
}

func (c *sourceConn) Close() error {
	c.release()
	return c.TCPConn.Close()
}

// Reset aborts the connection with an RST.
func (c *sourceConn) Reset() {
	c.release()
	netx.TCP{TCPConn: c.TCPConn}.Reset()
}

// limitListener accepts the connections whose source has a slot free, and resets the others
// at once, before reading a byte of them.
type limitListener struct {
	net.Listener
	slots *auth.SourceSlots
}

func newLimitListener(ln net.Listener, perSource, total int) *limitListener {
	return &limitListener{Listener: ln, slots: auth.NewSourceSlots(perSource, total)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := c.(*net.TCPConn)
		release, ok := l.slots.Acquire(addrOf(tc.RemoteAddr()), 0)
		if !ok {
			netx.TCP{TCPConn: tc}.Reset()
			continue
		}
		return &sourceConn{TCPConn: tc, release: release}, nil
	}
}
