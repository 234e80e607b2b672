package quicsock

import "golang.org/x/sys/unix"

// ipv4DstInfo is the control message that carries an IPv4 packet's local address.
const ipv4DstInfo = unix.IP_PKTINFO
