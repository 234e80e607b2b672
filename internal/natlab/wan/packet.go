package wan

import "encoding/binary"

const (
	ethHeader     = 14
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	ipv6Header    = 40
	// minMTU6 bounds an ICMPv6 error: it must fit IPv6's minimum MTU (RFC 4443 2.4).
	minMTU6 = 1280
)

// ipLength is the length of the IP packet a frame carries (its frame length less the Ethernet
// header; 0 for a frame that is not IP, which no MTU stops: ARP and the like are small).
func ipLength(frame []byte) int {
	if len(frame) < ethHeader {
		return 0
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeIPv4, etherTypeIPv6:
		return len(frame) - ethHeader
	}
	return 0
}

// tooBig builds the Ethernet frame of the ICMP error that answers an oversized packet: for IPv4
// with DF set "fragmentation needed" (type 3 code 4) with the next hop's MTU, for IPv6 "packet
// too big" (type 2); nil for a packet that gets none (IPv4 without DF: a router would fragment
// it, this link drops it; ICMP errors themselves; anything not IP). The frame goes back to the
// sender's MAC from the MAC the packet was sent to, quoting the packet's start.
func tooBig(frame []byte, mtu int, from4 [4]byte, from6 [16]byte) []byte {
	if len(frame) < ethHeader+20 {
		return nil
	}
	ip := frame[ethHeader:]
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeIPv4:
		ihl := int(ip[0]&0x0f) * 4
		if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl || ip[6]&0x40 == 0 || ip[9] == 1 && icmpIsError4(ip[ihl:]) {
			return nil
		}
		quote := min(ihl+8, len(ip)) // the header and 8 bytes of payload (RFC 792)
		out := make([]byte, ethHeader+20+8+quote)
		ethernetBack(out, frame, etherTypeIPv4)
		h := out[ethHeader:]
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:4], uint16(20+8+quote))
		h[8] = 64 // TTL
		h[9] = 1  // ICMP
		copy(h[12:16], from4[:])
		copy(h[16:20], ip[12:16]) // back to the packet's source
		binary.BigEndian.PutUint16(h[10:12], checksum(0, h[:20]))
		m := h[20:]
		m[0], m[1] = 3, 4
		binary.BigEndian.PutUint16(m[6:8], uint16(mtu))
		copy(m[8:], ip[:quote])
		binary.BigEndian.PutUint16(m[2:4], checksum(0, m))
		return out
	case etherTypeIPv6:
		if ip[0]>>4 != 6 || len(ip) < ipv6Header || ip[6] == 58 && len(ip) > ipv6Header && ip[ipv6Header] < 128 {
			return nil // not IPv6, or an ICMPv6 error (types below 128) that must not be answered
		}
		quote := min(len(ip), minMTU6-ipv6Header-8)
		out := make([]byte, ethHeader+ipv6Header+8+quote)
		ethernetBack(out, frame, etherTypeIPv6)
		h := out[ethHeader:]
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:6], uint16(8+quote))
		h[6] = 58 // ICMPv6
		h[7] = 64 // hop limit
		copy(h[8:24], from6[:])
		copy(h[24:40], ip[8:24])
		m := h[ipv6Header:]
		m[0] = 2
		binary.BigEndian.PutUint32(m[4:8], uint32(mtu))
		copy(m[8:], ip[:quote])
		// The checksum covers a pseudo-header: both addresses, the length and the next header.
		var pseudo [40]byte
		copy(pseudo[0:32], h[8:40])
		binary.BigEndian.PutUint32(pseudo[32:36], uint32(len(m)))
		pseudo[39] = 58
		binary.BigEndian.PutUint16(m[2:4], checksum(sum(0, pseudo[:]), m))
		return out
	}
	return nil
}

// icmpIsError4 reports whether an ICMPv4 message is an error (which must not be answered with
// another, RFC 1122 3.2.2): everything but echo, timestamp, information and mask messages.
func icmpIsError4(m []byte) bool {
	if len(m) == 0 {
		return true
	}
	switch m[0] {
	case 0, 8, 13, 14, 15, 16, 17, 18:
		return false
	}
	return true
}

// ethernetBack fills out's Ethernet header to send a frame back where frame came from.
func ethernetBack(out, frame []byte, etherType uint16) {
	copy(out[0:6], frame[6:12])
	copy(out[6:12], frame[0:6])
	binary.BigEndian.PutUint16(out[12:14], etherType)
}

// sum adds b to a running ones'-complement sum (RFC 1071).
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// checksum is the Internet checksum of b after a running sum s.
func checksum(s uint32, b []byte) uint16 {
	s = sum(s, b)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
