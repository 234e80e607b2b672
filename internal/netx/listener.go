package netx

import (
	"net"
	"sync"
)

// ConnListener hands connections accepted elsewhere to a server as a net.Listener: a plugin's
// users (package plugin), TLS connections the https port ends itself (package vhost).
type ConnListener struct {
	addr      net.Addr
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

// NewConnListener returns a listener whose Addr is addr (nil: an empty TCP address).
func NewConnListener(addr net.Addr) *ConnListener {
	if addr == nil {
		addr = &net.TCPAddr{}
	}
	return &ConnListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Put hands c to the server's Accept; false (c closed) once the listener is closed.
func (l *ConnListener) Put(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		c.Close()
		return false
	}
}

// Accept returns the next connection Put hands over.
func (l *ConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close makes Accept fail and Put refuse; it does not close connections handed over.
func (l *ConnListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// Closed is closed when the listener is.
func (l *ConnListener) Closed() <-chan struct{} { return l.closed }

func (l *ConnListener) Addr() net.Addr { return l.addr }
