//go:build darwin || freebsd

package quicsock

import "golang.org/x/sys/unix"

// stripPacketInfo removes the packet info quic-go asks for on these systems (IP_PKTINFO on
// macOS, IP_RECVDSTADDR on FreeBSD, IPV6_PKTINFO) from received control messages, in place:
// see the Linux version for why a packet from a virtual peer must not carry it.
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
