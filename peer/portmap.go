package peer

import (
	"net/netip"
	"time"

	"github.com/xp2p/xp2p/nat"
)

// portMapLifetime is the lifetime asked of the router (RFC 6886 recommends two hours); the
// mapping is renewed at half of what the router granted.
const portMapLifetime = 2 * time.Hour

// portMapRetry is the wait after a router did not grant a mapping.
const portMapRetry = 5 * time.Minute

// portMapLoop keeps a NAT-PMP mapping of the client's UDP port while the client runs
// (transport.portMapping), reports it to the servers as a candidate for peers, and removes it
// when the client stops.
func (c *Client) portMapLoop() {
	m := &nat.PortMapper{}
	if gw := c.cfg.Transport.PortMappingGateway; gw != "" {
		m.Gateway, _ = netip.ParseAddr(gw)
	}
	port := c.UDPAddr().Port
	warned := false
	for {
		wait := portMapRetry
		mp, err := m.Map(port, portMapLifetime)
		switch {
		case err != nil:
			if !warned {
				c.log.Warn("port mapping failed; peers use the other candidates", "err", err, "retry_in", portMapRetry)
				warned = true
			}
			c.setMapped(netip.AddrPort{})
		default:
			warned = false
			wait = max(mp.Lifetime/2, 30*time.Second)
			c.setMapped(mp.Public)
		}
		select {
		case <-c.ctx.Done():
			if c.mappedAddr().IsValid() {
				if err := m.Unmap(port); err != nil {
					c.log.Debug("port unmapping", "err", err)
				}
			}
			return
		case <-time.After(wait):
		}
	}
}

// setMapped records the router's mapping of the socket and tells the servers when it changed.
func (c *Client) setMapped(a netip.AddrPort) {
	if old := c.mapped.Swap(&a); old != nil && *old == a || old == nil && !a.IsValid() {
		return
	}
	if a.IsValid() {
		c.log.Info("port mapped by the router (NAT-PMP)", "public", a, "local_port", c.UDPAddr().Port)
	}
	c.reportNAT()
}

// mappedAddr is the router's mapping of the socket (invalid: none).
func (c *Client) mappedAddr() netip.AddrPort {
	if a := c.mapped.Load(); a != nil {
		return *a
	}
	return netip.AddrPort{}
}

// mappedString is mappedAddr for the wire ("" for none).
func (c *Client) mappedString() string {
	if a := c.mappedAddr(); a.IsValid() {
		return a.String()
	}
	return ""
}
