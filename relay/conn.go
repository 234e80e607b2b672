package relay

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// StreamConn is a connection that carries one user (a work stream or a pooled work
// connection) as a net.Conn, for what speaks net.Conn: the server's HTTP transport to a client
// (Member.Dial), a plugin serving the user inside the client (Local.Serve). Bytes are counted
// and paced by the proxy's limiter as they move.
type StreamConn struct {
	Conn
	// Local and Remote are what LocalAddr and RemoteAddr say (the user's address is Remote on
	// the client's side).
	Local, Remote net.Addr
	// BytesRead and BytesWritten count the bytes read from and written to the connection (nil: not
	// counted).
	BytesRead, BytesWritten *atomic.Int64
	// Limit paces both directions together (nil: none).
	Limit *rate.Limiter
	// OnClose runs once, at the first Close (nil: nothing).
	OnClose func()

	closeOnce sync.Once
}

func (c *StreamConn) Read(p []byte) (int, error) {
	if c.Limit != nil && len(p) > c.Limit.Burst() {
		p = p[:c.Limit.Burst()]
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if c.BytesRead != nil {
			c.BytesRead.Add(int64(n))
		}
		if c.Limit != nil {
			c.Limit.WaitN(context.Background(), n)
		}
	}
	return n, err
}

func (c *StreamConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p
		if c.Limit != nil {
			chunk = p[:min(len(p), c.Limit.Burst())]
			c.Limit.WaitN(context.Background(), len(chunk))
		}
		n, err := c.Conn.Write(chunk)
		written += n
		if c.BytesWritten != nil {
			c.BytesWritten.Add(int64(n))
		}
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// Close closes the connection; OnClose runs once.
func (c *StreamConn) Close() error {
	c.closeOnce.Do(func() {
		if c.OnClose != nil {
			c.OnClose()
		}
	})
	return c.Conn.Close()
}

func (c *StreamConn) LocalAddr() net.Addr  { return c.Local }
func (c *StreamConn) RemoteAddr() net.Addr { return c.Remote }

// SetDeadline sets both deadlines.
func (c *StreamConn) SetDeadline(t time.Time) error {
	c.Conn.SetReadDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

// tcpAddr parses "ip:port" into a *net.TCPAddr (an empty one if it is not).
func tcpAddr(s string) net.Addr {
	if a, err := net.ResolveTCPAddr("tcp", s); err == nil && a.IP != nil {
		return a
	}
	return &net.TCPAddr{}
}
