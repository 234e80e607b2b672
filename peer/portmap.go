package peer

import (
	"context"
	"net/netip"
	"time"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/portmap"
)

// portMapLifetime is the lifetime asked of the router (RFC 6886 recommends two hours); the
// mapping is renewed at half of what the router granted.
const portMapLifetime = 2 * time.Hour

// portMapRetry is the wait after a router did not grant a mapping.
const portMapRetry = 5 * time.Minute

// portMapLoop keeps a mapping of the client's UDP port at its router while the client runs
// (transport.portMapping) in whichever of PCP, NAT-PMP and UPnP-IGD the router speaks (package
// portmap), reports it to the servers as a candidate for peers, and removes it when the client
// stops.
func (c *Client) portMapLoop() {
	m := &portmap.Mapper{}
	if gw := c.cfg.Transport.PortMappingGateway; gw != "" {
		m.Gateway, _ = netip.ParseAddr(gw)
	}
	port := uint16(c.UDPAddr().Port)
	for {
		wait := portMapRetry
		start := time.Now()
		mp, err := m.Map(c.ctx, port, portMapLifetime)
		took := time.Since(start).Round(time.Millisecond)
		switch {
		case c.ctx.Err() != nil:
		case err != nil:
			if c.mapErr.Swap(&portMapFailure{err.Error()}) == nil {
				c.log.Warn("port mapping failed; peers use the other candidates", "err", err, "took", took, "retry_in", portMapRetry)
			}
			c.setMapped(portmap.Mapping{}, took)
		default:
			c.mapErr.Store(nil)
			wait = max(mp.Lifetime/2, 30*time.Second)
			c.setMapped(mp, took)
		}
		select {
		case <-c.ctx.Done():
			// The client's context is over; the removal gets its own (the Mapper bounds it).
			if err := m.Unmap(context.Background()); err != nil {
				c.log.Warn("port unmapping", "err", err)
			}
			return
		case <-time.After(wait):
		case <-c.portMapRecheck:
		}
	}
}

// portMapFailure is why the last attempt to map the port failed.
type portMapFailure struct{ why string }

// setMapped records the router's mapping of the socket and tells the servers when it changed.
func (c *Client) setMapped(mp portmap.Mapping, took time.Duration) {
	old := c.mapped.Swap(&mp)
	if old != nil && old.External == mp.External && old.Protocol == mp.Protocol || old == nil && !mp.External.IsValid() {
		return
	}
	if mp.External.IsValid() {
		c.log.Info("port mapped by the router", "protocol", mp.Protocol, "public", mp.External,
			"local_port", mp.Internal.Port(), "router", mp.Gateway, "lifetime", mp.Lifetime, "took", took)
	} else {
		c.log.Info("port mapping lost", "protocol", old.Protocol, "public", old.External)
	}
	c.reportNAT()
}

// mapping is the router's mapping of the socket (zero: none).
func (c *Client) mapping() portmap.Mapping {
	if mp := c.mapped.Load(); mp != nil {
		return *mp
	}
	return portmap.Mapping{}
}

// mappedAddr is the router's mapping of the socket (invalid: none).
func (c *Client) mappedAddr() netip.AddrPort { return c.mapping().External }

// mappedWire is the mapping for the wire: its address and protocol ("" for none).
func (c *Client) mappedWire() (addr, by string) {
	if mp := c.mapping(); mp.External.IsValid() {
		return mp.External.String(), string(mp.Protocol)
	}
	return "", ""
}

// natReport is what the client knows of its NAT (behaviour, router mapping), for the servers.
func (c *Client) natReport() *wire.NATReport {
	r := &wire.NATReport{NAT: c.natBehavior().Code()}
	r.Mapped, r.MappedBy = c.mappedWire()
	return r
}

// PortMapInfo describes the router's mapping of the client's UDP port, for status pages.
type PortMapInfo struct {
	// Protocol, Public, Local, Router and Lifetime describe the mapping held ("" while none).
	Protocol string        `json:"protocol,omitempty"`
	Public   string        `json:"public,omitempty"`
	Local    string        `json:"local,omitempty"`
	Router   string        `json:"router,omitempty"`
	Lifetime time.Duration `json:"lifetime,omitempty"`
	// Error is why the last attempt mapped nothing (it is tried again every few minutes).
	Error string `json:"error,omitempty"`
}

// PortMapping describes the router's mapping of the client's UDP port (nil when
// transport.portMapping is off).
func (c *Client) PortMapping() *PortMapInfo {
	if !c.cfg.Transport.PortMapping {
		return nil
	}
	info := &PortMapInfo{}
	if mp := c.mapping(); mp.External.IsValid() {
		info.Protocol, info.Public, info.Local = string(mp.Protocol), mp.External.String(), mp.Internal.String()
		info.Router, info.Lifetime = mp.Gateway.String(), mp.Lifetime
	} else if f := c.mapErr.Load(); f != nil {
		info.Error = f.why
	}
	return info
}
