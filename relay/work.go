package relay

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/wire"
)

// Local is the service behind a proxy, on the client's side.
type Local struct {
	// Network is "tcp" or "udp".
	Network string
	Addr    string
	// DialTimeout bounds reaching the local service.
	DialTimeout time.Duration
	// UDPIdle ends a udp stream after this much silence in both directions.
	UDPIdle time.Duration
	// Preamble is written to a tcp service before the user's bytes (a PROXY protocol header).
	Preamble []byte
	// Limit caps the traffic in bytes, both directions together (nil: none); shared by the
	// proxy's connections. udp datagrams over it are dropped.
	Limit *rate.Limiter
	// Serve, when set, is the service itself, inside the client (a plugin): it gets the user's
	// connection, whose RemoteAddr is the user, and closes it when done. Addr is not dialed.
	Serve func(net.Conn)
	// Src and Dst are the user's address and the one it reached (for Serve).
	Src, Dst string
}

// Counters receive the bytes a work stream moves; either may be nil.
type Counters struct {
	// ToLocal counts bytes from the remote user to the local service, FromLocal the way back.
	ToLocal, FromLocal *atomic.Int64
}

// ServeStream connects one work stream to the local service: a tcp connection whose bytes it
// pipes, or a udp socket it exchanges framed datagrams with. If the service cannot be reached
// the stream is reset at once, so the remote user sees the refusal promptly.
func ServeStream(st Conn, local Local, c Counters) error {
	if local.Serve != nil {
		local.Serve(&StreamConn{Conn: st, Local: tcpAddr(local.Dst), Remote: tcpAddr(local.Src), BytesRead: c.ToLocal, BytesWritten: c.FromLocal, Limit: local.Limit})
		return nil
	}
	switch local.Network {
	case "udp":
		return serveUDP(st, local, c)
	default:
		return serveTCP(st, local, c)
	}
}

func serveTCP(st Conn, local Local, c Counters) error {
	timeout := local.DialTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	conn, err := net.DialTimeout("tcp", local.Addr, timeout)
	if err != nil {
		st.Reset()
		return fmt.Errorf("dial local service %s: %w", local.Addr, err)
	}
	if len(local.Preamble) > 0 {
		conn.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := conn.Write(local.Preamble); err != nil {
			conn.Close()
			st.Reset()
			return fmt.Errorf("PROXY protocol header to %s: %w", local.Addr, err)
		}
		conn.SetWriteDeadline(time.Time{})
	}
	netx.Pipe(netx.Limit(st, local.Limit), netx.Limit(netx.TCP{TCPConn: conn.(*net.TCPConn)}, local.Limit), c.ToLocal, c.FromLocal)
	return nil
}

func serveUDP(st Conn, local Local, c Counters) error {
	c0, err := net.Dial("udp", local.Addr)
	if err != nil {
		st.Reset()
		return fmt.Errorf("dial local udp service %s: %w", local.Addr, err)
	}
	conn := c0.(*net.UDPConn)
	defer conn.Close()
	netx.SizeUDPBuffers(conn, netx.UDPFlowBuffer)
	idle := local.UDPIdle
	if idle == 0 {
		idle = 60 * time.Second
	}
	var lastActive atomic.Int64
	touch := func() { lastActive.Store(time.Now().UnixNano()) }
	touch()
	toLocal := func(b []byte) {
		touch()
		if local.Limit != nil && !local.Limit.AllowN(time.Now(), len(b)) {
			return // over the limit: dropped, as a router would
		}
		if c.ToLocal != nil {
			c.ToLocal.Add(int64(len(b)))
		}
		conn.Write(b)
	}
	dg := session.DatagramsOf(st)
	if dg != nil {
		dg.Receive(toLocal) // straight from the connection's receiving goroutine to the socket
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := netx.NewBatchReader(conn, 32, wire.MaxDatagram)
		var deadlineSet time.Time
		for {
			// The deadline only notices silence: moved now and then, not per datagram.
			if now := time.Now(); now.Sub(deadlineSet) > idle/8 {
				conn.SetReadDeadline(now.Add(idle))
				deadlineSet = now
			}
			b, _, err := r.Read()
			n := len(b)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, lastActive.Load())) < idle {
					continue
				}
				st.Close()
				return
			}
			touch()
			if local.Limit != nil && !local.Limit.AllowN(time.Now(), n) {
				continue
			}
			if c.FromLocal != nil {
				c.FromLocal.Add(int64(n))
			}
			if err := sendDatagram(dg, st, b); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, wire.MaxDatagram)
	for {
		n, err := wire.ReadDatagram(st, buf)
		if err != nil {
			break
		}
		toLocal(buf[:n])
	}
	conn.Close() // the datagrams' taker writes to it: a write after this fails, harmlessly
	<-done
	st.Close()
	return nil
}
