package peer

import (
	"context"
	"time"

	"github.com/xp2p/xp2p/nat"
)

// natRecheck is how often the client measures its NAT again: a laptop changes networks, a
// router reboots into another policy.
const natRecheck = 30 * time.Minute

// natLoop measures the NAT in front of this host at start and every natRecheck (package nat,
// RFC 5780 tests against the first server's STUN service, or natHoleStunServer), and tells
// every server what it found: the dashboard shows it, and the server hands it to the peers
// of P2P sessions, whose traversal plan depends on it (package traversal).
func (c *Client) natLoop() {
	t := time.NewTicker(natRecheck)
	defer t.Stop()
	for {
		c.measureNAT()
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.natRecheck:
		}
	}
}

func (c *Client) measureNAT() {
	server := c.cfg.NatHoleStunServer
	if server == "" {
		server = c.links[0].ep.Addr
	}
	ctx, cancel := context.WithTimeout(c.ctx, 20*time.Second)
	defer cancel()
	r, err := nat.Discover(ctx, nat.DiscoverConfig{Server: server})
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Warn("NAT discovery failed", "server", server, "err", err)
		}
		return
	}
	b := r.Behavior
	if old := c.nat.Swap(&b); old != nil && *old == b {
		return
	}
	c.log.Info("NAT behaviour", "nat", b.String(), "public", r.Public, "hairpinning", r.HairpinningText(), "server", server, "notes", r.Notes)
	c.reportNAT()
	c.p2p.natLearned()
}

// reportNAT sends what the client knows of its NAT (behaviour, router mapping) to every server.
func (c *Client) reportNAT() {
	report := c.natReport()
	for _, ctl := range c.controls() {
		ctl.send(report)
	}
}

// natBehavior is what the client last measured of its NAT (zero: not measured).
func (c *Client) natBehavior() nat.Behavior {
	if b := c.nat.Load(); b != nil {
		return *b
	}
	return nat.Behavior{}
}

// NAT describes the NAT in front of the client as natLoop last measured it ("" if not yet).
func (c *Client) NAT() string {
	b := c.natBehavior()
	if !b.Known() {
		return ""
	}
	return b.String()
}
