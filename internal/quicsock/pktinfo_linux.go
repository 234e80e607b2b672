package quicsock

import (
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EnablePacketInfo asks the kernel to report each received packet's local destination address
// (IP_PKTINFO, IPV6_RECVPKTINFO), read with PacketDst. quic-go turns this on for the sockets it
// owns; a socket outside quic-go needs it set here.
func EnablePacketInfo(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		// A dual-stack socket takes both; an IPv4 socket refuses the IPv6 option.
		e4 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		e6 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		if e4 != nil && e6 != nil {
			serr = fmt.Errorf("set IP_PKTINFO: %w", e4)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// PacketDst returns the local address a received packet was sent to, from its control
// messages, or the zero Addr when they do not say. IPv4-mapped addresses are unmapped.
func PacketDst(oob []byte) netip.Addr {
	if b := cmsgData(oob, unix.IPPROTO_IP, unix.IP_PKTINFO); len(b) >= unix.SizeofInet4Pktinfo {
		info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&b[0]))
		return netip.AddrFrom4(info.Addr)
	}
	if b := cmsgData(oob, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO); len(b) >= unix.SizeofInet6Pktinfo {
		info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&b[0]))
		return netip.AddrFrom16(info.Addr).Unmap()
	}
	return netip.Addr{}
}

// SourceOOB returns control messages that make a sent packet leave from local address src
// (which must be an address of this host), for answering from the address a request came to.
func SourceOOB(src netip.Addr) []byte {
	if !src.IsValid() {
		return nil
	}
	if src.Is4() || src.Is4In6() {
		oob := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
		info.Spec_dst = src.Unmap().As4()
		return oob
	}
	oob := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
	info.Addr = src.As16()
	return oob
}
