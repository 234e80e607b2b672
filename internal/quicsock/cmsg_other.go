//go:build !linux

package quicsock

import "net"

// Off Linux there is no UDP GSO: packets go one by one.

// SegmentSize returns the UDP GSO segment size carried in oob: none off Linux.
func SegmentSize(oob []byte) int { return 0 }

func appendSegmentSize(oob []byte, size int) []byte { return oob }

const gsoSystem = false

func gsoSupported(c *net.UDPConn) bool { return false }

func isGSOError(err error) bool { return false }

// WithSegmentSize returns a copy of oob (no GSO off Linux).
func WithSegmentSize(oob []byte, size int) []byte { return append([]byte(nil), oob...) }
