package session

import (
	"encoding/binary"
	"io"
)

// yamuxConn sits between yamux and its TLS connection. yamux's send loop writes a data frame's
// 12-byte header and its body in two calls: over TLS that is two records and two system calls
// per frame, the header's alone costing as much as a body's. yamuxConn holds a data frame's
// header back and writes it with the body that follows, in one call. Only yamux's send loop
// writes (one goroutine), so it needs no lock.
//
// Written here because yamux has no hook for it (its writer is the connection itself).
type yamuxConn struct {
	io.ReadWriteCloser
	held bool
	buf  []byte
}

// yamux's frame header (hashicorp/yamux spec.md): version, type, flags, stream ID, length.
const (
	yamuxHeaderSize = 12
	yamuxTypeData   = 0
)

// YamuxConn wraps c for yamux.Client or yamux.Server.
func YamuxConn(c io.ReadWriteCloser) io.ReadWriteCloser { return &yamuxConn{ReadWriteCloser: c} }

// maxJoined bounds the bodies joined to their header (the copy's buffer); a larger one follows
// its header in a write of its own.
const maxJoined = 256 << 10

func (c *yamuxConn) Write(p []byte) (int, error) {
	if c.held {
		c.held = false
		if len(p) != int(binary.BigEndian.Uint32(c.buf[8:yamuxHeaderSize])) || len(p) > maxJoined {
			if _, err := c.ReadWriteCloser.Write(c.buf[:yamuxHeaderSize]); err != nil {
				return 0, err
			}
			return c.ReadWriteCloser.Write(p)
		}
		c.buf = append(c.buf[:yamuxHeaderSize], p...)
		if _, err := c.ReadWriteCloser.Write(c.buf); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if len(p) == yamuxHeaderSize && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:]) > 0 {
		// A data frame with a body: the send loop's next write is that body.
		c.buf = append(c.buf[:0], p...)
		c.held = true
		return len(p), nil
	}
	return c.ReadWriteCloser.Write(p)
}
