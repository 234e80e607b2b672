package netx

import (
	"net"

	"golang.org/x/sys/unix"
)

func forceUDPBuffers(c *net.UDPConn, size int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		// The kernel reports twice what was asked (its bookkeeping overhead).
		for _, o := range [][2]int{{unix.SO_RCVBUF, unix.SO_RCVBUFFORCE}, {unix.SO_SNDBUF, unix.SO_SNDBUFFORCE}} {
			if got, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, o[0]); err == nil && got < 2*size {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], size)
			}
		}
	})
}
