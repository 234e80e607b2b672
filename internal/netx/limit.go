package netx

import (
	"context"

	"golang.org/x/time/rate"
)

// Limit returns c with its reads paced by l, a limiter counted in bytes: wrapping both ends of
// a Pipe with one limiter caps the total of both directions (frp's bandwidthLimit). A read
// asks for at most l's burst, so that waiting never fails; l's burst must be positive.
func Limit(c HalfConn, l *rate.Limiter) HalfConn {
	if l == nil {
		return c
	}
	return limited{HalfConn: c, l: l}
}

type limited struct {
	HalfConn
	l *rate.Limiter
}

func (c limited) Read(p []byte) (int, error) {
	if b := c.l.Burst(); len(p) > b {
		p = p[:b]
	}
	n, err := c.HalfConn.Read(p)
	if n > 0 {
		// Waits at most burst/limit (a second with NewByteLimiter); the bytes are already read,
		// so the wait is not cancelled when the connection closes meanwhile.
		c.l.WaitN(context.Background(), n)
	}
	return n, err
}

// Reset aborts the underlying connection (Pipe aborts both sides when one fails).
func (c limited) Reset() { abort(c.HalfConn) }

// NewByteLimiter returns a limiter of bytesPerSecond with a burst of one second's worth (at
// least 16 KiB, so that reads stay efficient at low limits), or nil for no limit.
func NewByteLimiter(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSecond), int(max(bytesPerSecond, 16<<10)))
}
