//go:build !linux

package quicsock

import "net"

// SetDontFragment reports false: elsewhere the system's default stands (packets may be
// fragmented, so a path's MTU measured on them is an upper bound).
func SetDontFragment(*net.UDPConn) bool { return false }
