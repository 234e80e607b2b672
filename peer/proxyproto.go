package peer

import (
	"net"
	"net/netip"

	proxyproto "github.com/pires/go-proxyproto"
)

// proxyHeader returns the PROXY protocol header (version "v1" or "v2") that tells a local tcp
// service which user address src reached which address dst, so that the service logs and
// filters the real user instead of the client (frp's transport.proxyProtocolVersion). It
// returns nil when no version is set. A service that expects the header must always get one:
// when src is not an address the header says so (v1 "PROXY UNKNOWN", v2 LOCAL), and an
// unknown dst (an older peer) is sent as the unspecified address of src's family.
func proxyHeader(version, src, dst string) []byte {
	var v byte
	switch version {
	case "v1":
		v = 1
	case "v2":
		v = 2
	default:
		return nil
	}
	s, err := netip.ParseAddrPort(src)
	if err != nil {
		return formatHeader(&proxyproto.Header{Version: v, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC})
	}
	s = netip.AddrPortFrom(s.Addr().Unmap(), s.Port())
	d, err := netip.ParseAddrPort(dst)
	if err != nil || d.Addr().Unmap().Is4() != s.Addr().Is4() {
		d = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		if s.Addr().Is6() {
			d = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
	}
	d = netip.AddrPortFrom(d.Addr().Unmap(), d.Port())
	return formatHeader(proxyproto.HeaderProxyFromAddrs(v, net.TCPAddrFromAddrPort(s), net.TCPAddrFromAddrPort(d)))
}

func formatHeader(h *proxyproto.Header) []byte {
	b, err := h.Format()
	if err != nil {
		return nil // only for a header built wrong here; the service then sees none
	}
	return b
}
