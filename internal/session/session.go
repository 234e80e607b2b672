// Package session gives xp2p one shape for a multiplexed TLS 1.3 connection, whether it runs
// over QUIC (UDP) or over TLS and yamux (TCP), so that the control, proxy and relay code above
// it never asks which one it has; on QUIC it also carries udp flows' datagrams beside their
// streams (FlowDatagrams).
package session

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/quic-go/quic-go"
)

// InitialPacketSize is the first QUIC packet size of client↔server sessions, before quic-go's
// path MTU discovery grows it: IPv6's minimum MTU (1280) less the IPv6 and UDP headers, so that
// a session starts on any path (quic-go's default of 1280 does not fit an IPv6 path of 1280).
const InitialPacketSize = 1232

// Transport names as reported by Session.Transport.
const (
	TransportQUIC = "quic"
	TransportTCP  = "tcp"
)

// Stream is one bidirectional byte stream of a session.
type Stream interface {
	io.Reader
	io.Writer
	// CloseWrite ends the sending direction (FIN); reading goes on.
	CloseWrite() error
	// Close ends both directions and releases the stream.
	Close() error
	// Reset aborts the stream: the peer's reads fail instead of seeing a clean end.
	Reset()
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// Session is an authenticated-transport connection carrying many streams.
type Session interface {
	OpenStream(ctx context.Context) (Stream, error)
	AcceptStream(ctx context.Context) (Stream, error)
	// TLS returns the session's TLS state (for exporter-bound proofs).
	TLS() tls.ConnectionState
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	// Transport is TransportQUIC or TransportTCP.
	Transport() string
	// RTT is the latest smoothed round-trip time estimate (0 if unknown).
	RTT() time.Duration
	// Close tears the session down, telling the peer why.
	Close(reason string) error
	// Done is closed when the session has ended, for whatever reason.
	Done() <-chan struct{}
}

// QUIC wraps a QUIC connection.
func QUIC(c *quic.Conn) Session { return quicSession{c} }

type quicSession struct{ c *quic.Conn }

func (s quicSession) OpenStream(ctx context.Context) (Stream, error) {
	st, err := s.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return quicStream{st}, nil
}

func (s quicSession) AcceptStream(ctx context.Context) (Stream, error) {
	st, err := s.c.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return quicStream{st}, nil
}

func (s quicSession) TLS() tls.ConnectionState { return s.c.ConnectionState().TLS }
func (s quicSession) LocalAddr() net.Addr      { return s.c.LocalAddr() }
func (s quicSession) RemoteAddr() net.Addr     { return s.c.RemoteAddr() }
func (s quicSession) Transport() string        { return TransportQUIC }
func (s quicSession) RTT() time.Duration       { return s.c.ConnectionStats().SmoothedRTT }
func (s quicSession) Done() <-chan struct{}    { return s.c.Context().Done() }
func (s quicSession) Close(reason string) error {
	return s.c.CloseWithError(0, reason)
}

// Conn returns the QUIC connection under a session, or nil.
func Conn(s Session) *quic.Conn {
	if q, ok := s.(quicSession); ok {
		return q.c
	}
	return nil
}

type quicStream struct{ *quic.Stream }

func (s quicStream) CloseWrite() error { return s.Stream.Close() }
func (s quicStream) Close() error {
	s.Stream.CancelRead(0)
	return s.Stream.Close()
}
func (s quicStream) Reset() {
	s.Stream.CancelWrite(1)
	s.Stream.CancelRead(1)
}

// Yamux wraps a yamux session over a TLS connection.
func Yamux(tc *tls.Conn, m *yamux.Session) Session { return &yamuxSession{tc: tc, m: m} }

type yamuxSession struct {
	tc *tls.Conn
	m  *yamux.Session
	// release frees the listener's admission of the connection (nil: none, or freed).
	release func()
}

// ReleaseAdmission frees the admission (ListenConfig.Admit) that s was accepted under, if it
// has one: its owner calls it once the session proved itself or was refused. Sessions of QUIC
// and dialled sessions have none.
func ReleaseAdmission(s Session) {
	if ys, ok := s.(*yamuxSession); ok && ys.release != nil {
		ys.release()
	}
}

func (s *yamuxSession) OpenStream(ctx context.Context) (Stream, error) {
	type result struct {
		st  *yamux.Stream
		err error
	}
	// yamux's OpenStream has no context; it is bounded by StreamOpenTimeout and session close.
	ch := make(chan result, 1)
	go func() {
		st, err := s.m.OpenStream()
		ch <- result{st, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		return yamuxStream{r.st, s.m}, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.st != nil {
				r.st.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (s *yamuxSession) AcceptStream(ctx context.Context) (Stream, error) {
	st, err := s.m.AcceptStreamWithContext(ctx)
	if err != nil {
		return nil, err
	}
	return yamuxStream{st, s.m}, nil
}

func (s *yamuxSession) TLS() tls.ConnectionState { return s.tc.ConnectionState() }
func (s *yamuxSession) LocalAddr() net.Addr      { return s.tc.LocalAddr() }
func (s *yamuxSession) RemoteAddr() net.Addr     { return s.tc.RemoteAddr() }
func (s *yamuxSession) Transport() string        { return TransportTCP }
func (s *yamuxSession) Done() <-chan struct{}    { return s.m.CloseChan() }
func (s *yamuxSession) RTT() time.Duration {
	rtt, err := s.m.Ping()
	if err != nil {
		return 0
	}
	return rtt
}
func (s *yamuxSession) Close(string) error {
	err := s.m.Close()
	s.tc.Close()
	return err
}

type yamuxStream struct {
	*yamux.Stream
	m *yamux.Session
}

// Read is the stream's, except that an end because the session ended is an error: yamux
// reports the forced close of its streams as io.EOF, their clean end, so a transfer cut by a
// dying TCP path or control session passed on as complete to its user (who got a FIN where an
// error was due), and a pipe waited for the other direction to end on its own.
func (s yamuxStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if err == io.EOF && s.m.IsClosed() {
		err = yamux.ErrSessionShutdown
	}
	return n, err
}

// yamux's Close is a half close (it sends FIN and keeps reading).
func (s yamuxStream) CloseWrite() error { return s.Stream.Close() }
func (s yamuxStream) Close() error {
	err := s.Stream.Close()
	// Unblock local readers; yamux frees the stream on the peer's FIN or StreamCloseTimeout.
	s.Stream.SetReadDeadline(time.Now())
	return err
}
func (s yamuxStream) Reset() { s.Close() }

// YamuxConfig is the yamux configuration of control sessions over TCP.
func YamuxConfig(keepAlive time.Duration) *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = io.Discard
	c.AcceptBacklog = 1024
	c.MaxStreamWindowSize = 6 << 20
	c.StreamCloseTimeout = 30 * time.Second
	c.StreamOpenTimeout = 30 * time.Second
	if keepAlive > 0 {
		c.KeepAliveInterval = keepAlive
	}
	return c
}

// IsClosed reports whether err means the session or stream ended (rather than failed).
func IsClosed(err error) bool {
	if err == nil {
		return false
	}
	var appErr *quic.ApplicationError
	var idleErr *quic.IdleTimeoutError
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, yamux.ErrSessionShutdown) ||
		errors.Is(err, context.Canceled) || errors.As(err, &appErr) || errors.As(err, &idleErr)
}

// QUICStream adapts a raw QUIC stream (of a P2P connection) to Stream.
func QUICStream(s *quic.Stream) Stream { return quicStream{s} }
