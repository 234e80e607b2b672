//go:build linux || darwin || freebsd

package quicsock

import "golang.org/x/sys/unix"

// stripPacketInfo removes the packet info quic-go asks for (IP_PKTINFO on Linux and macOS,
// IP_RECVDSTADDR on FreeBSD, IPV6_PKTINFO) from received control messages, in place, and
// returns what is left. A packet whose source the filter rewrote belongs to a virtual peer:
// the local address it happened to arrive on (loopback, for a packet fed back into the socket,
// or one interface of several) must not become the source of every reply, which is what
// quic-go does with packet info.
func stripPacketInfo(oob []byte) []byte {
	out := oob[:0]
	rest := oob
	for len(rest) > 0 {
		hdr, _, next, err := unix.ParseOneSocketControlMessage(rest)
		if err != nil {
			return out
		}
		msg := rest[:len(rest)-len(next)]
		if !(hdr.Level == unix.IPPROTO_IP && hdr.Type == ipv4DstInfo) &&
			!(hdr.Level == unix.IPPROTO_IPV6 && hdr.Type == unix.IPV6_PKTINFO) {
			out = append(out, msg...)
		}
		rest = next
	}
	return out
}
