// Package netx joins two byte streams: it copies both directions at once, carries each
// direction's end over as a half close, counts bytes, and aborts both sides when one fails.
package netx

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// HalfConn is a byte stream that can end its sending direction alone: *net.TCPConn,
// session.Stream and the like.
type HalfConn interface {
	io.Reader
	io.Writer
	CloseWrite() error
	Close() error
}

// Resetter is a HalfConn that can abort instead of closing cleanly, so the far end sees an error
// rather than a clean end of stream.
type Resetter interface {
	Reset()
}

// BufferSize is the copy buffer of each direction: large enough that QUIC streams move data in
// big writes, small enough for thousands of idle connections to cost little (buffers are
// pooled and held only while data moves).
const BufferSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

// Pipe copies a→b and b→a until both directions have ended, then closes both. A clean end of
// one direction is passed on as CloseWrite; an error in either direction resets both sides.
// The counters (which may be nil) receive the bytes moved a→b and b→a as they move.
func Pipe(a, b HalfConn, aToB, bToA *atomic.Int64) error {
	var once sync.Once
	// Whichever direction fails first aborts both, so that the other direction's blocked read
	// returns at once.
	fail := func(err error) error {
		if err != nil {
			once.Do(func() { abort(a, b) })
		}
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- fail(copyHalf(b, a, aToB)) }()
	err1 := fail(copyHalf(a, b, bToA))
	err2 := <-errc
	a.Close()
	b.Close()
	return errors.Join(err1, err2)
}

func abort(cs ...HalfConn) {
	for _, c := range cs {
		if r, ok := c.(Resetter); ok {
			r.Reset()
		} else {
			c.Close()
		}
	}
}

// copyHalf copies src to dst, then half-closes dst. It returns nil on a clean end of src.
func copyHalf(dst, src HalfConn, n *atomic.Int64) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			if n != nil {
				n.Add(int64(nw))
			}
			if werr != nil {
				return werr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				dst.CloseWrite()
				return nil
			}
			return rerr
		}
	}
}

// TCP adapts a *net.TCPConn so that Reset sends an RST (SO_LINGER 0), which is what a remote
// user should see when the service behind the tunnel refused or failed.
type TCP struct{ *net.TCPConn }

// Reset aborts the connection with an RST.
func (c TCP) Reset() {
	c.TCPConn.SetLinger(0)
	c.TCPConn.Close()
}

// TLSConn adapts a TLS connection over TCP: CloseWrite sends close_notify and half-closes the
// TCP connection under it; Reset aborts the TCP connection with an RST. Made over Raw watched by
// WatchEnd (Under), its Read tells the peer's end of the stream from a cut one.
type TLSConn struct {
	*tls.Conn
	Raw   *net.TCPConn
	Under *EndWatch // nil: an end of the TCP connection reads as the stream's end
}

// ErrCut is the end of a TLS stream whose TCP connection ended without TLS's close_notify: the
// connection was cut (a man in the middle's FIN, a crash), not ended by the peer, which always
// sends close_notify first (CloseWrite).
var ErrCut = errors.New("tls: the connection ended without close_notify: cut")

// Read is the TLS connection's, except that an end of the TCP connection under it without
// close_notify is ErrCut: Go's TLS takes such an end at a record boundary for the stream's end
// (RFC 8446 6.1 would have it an error), so an on-path attacker's FIN cut a transfer that its
// user then took as complete.
func (c TLSConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == io.EOF && c.Under != nil && c.Under.ended.Load() {
		err = ErrCut
	}
	return n, err
}

// EndWatch is a TCP connection that notes when its peer's bytes ended: a TLS session made over
// it reaches the end only after close_notify if the peer closed it properly, since Go's TLS
// reads no further than the record it needs.
type EndWatch struct {
	*net.TCPConn
	ended atomic.Bool
}

// WatchEnd watches c's end, for a TLSConn made over it (Under).
func WatchEnd(c *net.TCPConn) *EndWatch { return &EndWatch{TCPConn: c} }

func (c *EndWatch) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if errors.Is(err, io.EOF) {
		c.ended.Store(true)
	}
	return n, err
}

// CloseWrite ends the sending direction: TLS close_notify, then a TCP half close.
func (c TLSConn) CloseWrite() error {
	err := c.Conn.CloseWrite()
	c.Raw.CloseWrite()
	return err
}

// Reset aborts the connection with an RST.
func (c TLSConn) Reset() {
	c.Raw.SetLinger(0)
	c.Raw.Close()
}
