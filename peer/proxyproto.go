package peer

import (
	"net"
	"net/netip"

	proxyproto "github.com/pires/go-proxyproto"
)

// proxyHeader returns the PROXY protocol header (version "v1" or "v2") that tells a local tcp
// service which user address src reached which address dst, so that the service logs and
// filters the real user instead of the client (frp's transport.proxyProtocolVersion). It
// returns nil when no version is set or src is not an address; an unknown dst (an older peer)
// is sent as the unspecified address of src's family.
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
		return nil
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
	b, err := proxyproto.HeaderProxyFromAddrs(v, net.TCPAddrFromAddrPort(s), net.TCPAddrFromAddrPort(d)).Format()
	if err != nil {
		return nil
	}
	return b
}
