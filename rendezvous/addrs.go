package rendezvous

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/xp2p/xp2p/internal/quicsock"
	"github.com/xp2p/xp2p/nat"
)

// ownAddrs lists the addresses clients reach this server at on bindPort (wire.LoginResult.
// ServerAddrs): bindAddr itself, or, bound to all interfaces, the global unicast addresses of
// the host's interfaces, both families. A client registers its socket's address of the other
// family than its session's at them (see nat.RegisterRequest). Behind a 1:1 NAT (cloud
// hosts) an interface's private address is listed, which clients cannot reach: they then
// register through what DNS has for the server's name.
func ownAddrs(bindAddr string, port int) []string {
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(bindAddr); err == nil && !ip.IsUnspecified() {
		ips = append(ips, ip.Unmap())
	} else {
		for _, ap := range nat.LocalAddrs(0, false, 16) {
			ip := ap.Addr()
			if !ip.IsPrivate() || ip.Is4() {
				ips = append(ips, ip)
			}
		}
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	}
	return out
}

// registerAddr takes a client's address registration that arrived on bindPort (false: the
// packet is none, and other STUN handling goes on). A valid one records its source as the
// client's public address of that family, if it is not the family of the client's session,
// and is answered with it.
func (s *Server) registerAddr(data []byte, from *net.UDPAddr, oob []byte) bool {
	id, msg, ok := nat.ParseRegister(data)
	if !ok {
		return false
	}
	s.mu.Lock()
	c := s.byID[id]
	s.mu.Unlock()
	if c == nil || !nat.CheckRegister(msg, c.addrKey) {
		return true // a registration, but not one we can take: nothing to answer
	}
	fromAP := addrPort(from)
	if !s.stun.limit.Allow(fromAP.Addr()) {
		return true
	}
	if session := c.remote.Addr(); session.Is4() != fromAP.Addr().Is4() {
		if old := c.publicAlt.Swap(&fromAP); old == nil || *old != fromAP {
			c.log.Info("client public address of its other family", "public_alt", fromAP.String())
		}
	}
	resp, err := nat.RegisterAnswer(msg, fromAP, c.addrKey)
	if err != nil {
		return true
	}
	oobOut := []byte(nil)
	if dst := quicsock.PacketDst(oob); dst.IsValid() {
		oobOut = quicsock.SourceOOB(dst)
	}
	s.sock.WriteRaw(resp, oobOut, from)
	return true
}

// publicAltString is the client's public address of the other family ("" if it registered none).
func (c *client) publicAltString() string {
	if a := c.publicAlt.Load(); a != nil {
		return a.String()
	}
	return ""
}
