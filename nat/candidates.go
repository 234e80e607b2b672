// Package nat owns xp2p's model of addresses behind NATs: the candidates a client offers its
// peers, and the discovery of its NAT's mapping and filtering behaviour (RFC 5780).
package nat

import (
	"net"
	"net/netip"
	"sort"
)

// Kind says where a candidate comes from.
type Kind string

// Candidate kinds, in the order a prober prefers them when several answer at once.
const (
	KindPrivate Kind = "private" // a LAN address of the host, with the UDP socket's port
	KindPublic  Kind = "public"  // the address the server observed on the socket
	KindPeer    Kind = "peer"    // the source of an authenticated probe (peer-reflexive)
	KindMapped  Kind = "mapped"  // an address mapped by the router (PCP, NAT-PMP or UPnP-IGD)
	// KindPredicted is a guess at the next port of a symmetric NAT with sequential ports.
	KindPredicted Kind = "predicted"
	// KindBirthday is a path found by birthday punching, on one of the hard side's extra sockets.
	KindBirthday Kind = "birthday"
)

// Candidate is one address:port at which a peer may be reachable.
type Candidate struct {
	Addr netip.AddrPort
	Kind Kind
}

func (c Candidate) String() string { return string(c.Kind) + " " + c.Addr.String() }

// LocalAddrs lists the host's usable unicast addresses with port: the private candidates of a
// socket bound to all interfaces. Loopback, link-local and, for an IPv4 socket, IPv6 addresses
// are left out. The result is sorted for stable output and capped at max entries.
func LocalAddrs(port uint16, ipv4Only bool, max int) []netip.AddrPort {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []netip.AddrPort
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
				continue
			}
			if ipv4Only && !ip.Is4() {
				continue
			}
			out = append(out, netip.AddrPortFrom(ip, port))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	if len(out) > max {
		out = out[:max]
	}
	return out
}
