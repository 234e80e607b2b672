package netx

import "net"

// Kernel buffer sizes of xp2p's plain UDP sockets. A burst of datagrams waits there while the
// goroutine that reads them is off the CPU: at 500 Mbit/s a 4 MiB buffer holds 64 ms, a
// scheduling hiccup on a busy machine; Linux's 208 KiB default holds 3 ms, and drops the rest.
const (
	// UDPSocketBuffer is for a socket that many flows share (a udp proxy's public port, a udp
	// visitor's local port).
	UDPSocketBuffer = 4 << 20
	// UDPFlowBuffer is for a socket of one flow (a provider's socket to its local service).
	UDPFlowBuffer = 1 << 20
)

// SizeUDPBuffers asks for size-byte receive and send buffers on c. The plain setsockopt is
// capped by net.core.rmem_max and wmem_max; where the kernel gave less, a process with
// CAP_NET_ADMIN (root, or a systemd unit that grants it) forces the size, as quic-go does for
// its own socket. Best effort: a smaller buffer still works, it just drops sooner.
func SizeUDPBuffers(c *net.UDPConn, size int) {
	c.SetReadBuffer(size)
	c.SetWriteBuffer(size)
	forceUDPBuffers(c, size)
}
