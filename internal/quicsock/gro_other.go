//go:build !linux

package quicsock

import (
	"errors"
	"net"

	"golang.org/x/net/ipv4"
)

// groReader exists only on Linux.
type groReader struct{}

// EnableGRO reports false: UDP GRO is Linux's.
func (c *Conn) EnableGRO() bool { return false }

func (c *Conn) readGRO(ms []ipv4.Message, flags int) (int, error) {
	return 0, errors.New("quicsock: no GRO on this system")
}

// SetGRO reports false: UDP GRO is Linux's.
func SetGRO(*net.UDPConn) bool { return false }

// GROSegmentSize is 0: without GRO every datagram is a single one.
func GROSegmentSize([]byte) int { return 0 }
