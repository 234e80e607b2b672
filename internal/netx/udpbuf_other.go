//go:build !linux

package netx

import "net"

func forceUDPBuffers(*net.UDPConn, int) {}
