package nat

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/jackpal/gateway"
	natpmp "github.com/jackpal/go-nat-pmp"
)

// PortMapper asks the router for a port mapping with NAT-PMP (RFC 6886), through
// github.com/jackpal/go-nat-pmp: a mapped public port forwards everything to the local socket,
// whatever the NAT's filtering, so peers behind NATs that could not otherwise reach it (a
// symmetric NAT facing a port-restricted one) get a direct path.
type PortMapper struct {
	// Gateway is the router (invalid: the default route's gateway).
	Gateway netip.Addr
	// Timeout bounds one request with its retransmissions (default 2 s: a router without
	// NAT-PMP never answers, and the library's own default is 128 s).
	Timeout time.Duration
}

// Mapping is a port mapping the router granted.
type Mapping struct {
	Public   netip.AddrPort // the router's external address and the mapped port
	Lifetime time.Duration  // renew before it runs out
	Gateway  netip.Addr
}

func (m *PortMapper) client() (*natpmp.Client, netip.Addr, error) {
	gw := m.Gateway
	if !gw.IsValid() {
		ip, err := gateway.DiscoverGateway()
		if err != nil {
			return nil, gw, fmt.Errorf("find the default gateway: %w", err)
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return nil, gw, fmt.Errorf("default gateway %v is not an IP address", ip)
		}
		gw = a.Unmap()
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return natpmp.NewClientWithTimeout(net.IP(gw.AsSlice()), timeout), gw, nil
}

// Map asks for UDP port localPort to be mapped (the router picks the external port, usually
// the same) for lifetime.
func (m *PortMapper) Map(localPort int, lifetime time.Duration) (Mapping, error) {
	c, gw, err := m.client()
	if err != nil {
		return Mapping{}, err
	}
	ext, err := c.GetExternalAddress()
	if err != nil {
		return Mapping{}, fmt.Errorf("NAT-PMP external address from %s: %w", gw, err)
	}
	res, err := c.AddPortMappingWithDuration("udp", localPort, localPort, lifetime)
	if err != nil {
		return Mapping{}, fmt.Errorf("NAT-PMP mapping of udp port %d at %s: %w", localPort, gw, err)
	}
	if res.MappedExternalPort == 0 || res.PortMappingLifetimeInSeconds == 0 {
		return Mapping{}, fmt.Errorf("NAT-PMP at %s granted no mapping for udp port %d", gw, localPort)
	}
	return Mapping{
		Public:   netip.AddrPortFrom(netip.AddrFrom4(ext.ExternalIPAddress), res.MappedExternalPort),
		Lifetime: time.Duration(res.PortMappingLifetimeInSeconds) * time.Second,
		Gateway:  gw,
	}, nil
}

// Unmap removes the mapping of localPort (lifetime 0, as RFC 6886 says).
func (m *PortMapper) Unmap(localPort int) error {
	c, gw, err := m.client()
	if err != nil {
		return err
	}
	if _, err := c.AddPortMapping("udp", localPort, 0, 0); err != nil {
		return fmt.Errorf("NAT-PMP unmapping udp port %d at %s: %w", localPort, gw, err)
	}
	return nil
}
