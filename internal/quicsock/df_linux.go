package quicsock

import (
	"net"

	"golang.org/x/sys/unix"
)

// SetDontFragment makes the kernel send c's packets with the don't-fragment bit and never
// fragment them, as quic-go does on the sockets it owns: a packet too large for the path is then
// lost (or refused with EMSGSIZE once an ICMP "too big" came back) instead of split, so that a
// probe of a given size measures the path. It reports whether the system took it.
func SetDontFragment(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var err4, err6 error
	if err := rc.Control(func(fd uintptr) {
		err4 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		err6 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO)
	}); err != nil {
		return false
	}
	return err4 == nil || err6 == nil
}
