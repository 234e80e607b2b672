package peer

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackpal/gateway"

	"github.com/xp2p/xp2p/nat"
)

// Roaming: a laptop moves from home Wi-Fi to a phone's hotspot, a router renumbers. The
// client's socket is bound to all addresses and keeps working, its session to the server
// follows (QUIC migrates it at the server when packets come from the new address), but its P2P
// sessions' direct paths lead from an address that is gone, and the server and the peers know
// only the old addresses. So the client watches its addresses and default route (netlink on
// Linux, polling elsewhere and as a safety net), and when they change it tells the servers its
// new LAN candidates, measures its NAT and asks for a port mapping again, registers its other
// family anew, and has every P2P session probe from the new network at once (the relay carries
// the streams meanwhile; nothing is torn down).
const (
	netPoll     = 5 * time.Second        // polling where no change notification exists, and as a net
	netSettle   = 300 * time.Millisecond // the changes of one move come in a burst: wait it out
	repunchLate = time.Second            // a second repunch, once the server saw the new address
)

// netState is what the client knows of its network: its addresses and default gateway.
type netState struct {
	addrs   []netip.Addr
	gateway netip.Addr
}

func currentNet() netState {
	var st netState
	for _, a := range nat.LocalAddrs(0, false, 32) {
		st.addrs = append(st.addrs, a.Addr())
	}
	if !cheapGateway {
		return st // found by running a program (route, netstat): not every few seconds
	}
	if ip, err := gateway.DiscoverGateway(); err == nil {
		if a, ok := netip.AddrFromSlice(ip); ok {
			st.gateway = a.Unmap()
		}
	}
	return st
}

func (a netState) equal(b netState) bool {
	return a.gateway == b.gateway && slices.Equal(a.addrs, b.addrs)
}

func (a netState) String() string {
	var parts []string
	for _, ip := range a.addrs {
		parts = append(parts, ip.String())
	}
	return strings.Join(parts, " ") + " via " + a.gateway.String()
}

// netWatchLoop notices changes of the network and handles them until the client closes.
func (c *Client) netWatchLoop() {
	ctx := c.ctx
	notify := make(chan struct{}, 1)
	stop := subscribeNet(ctx, notify)
	defer stop()
	last := currentNet()
	poll := time.NewTicker(netPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-notify:
			select { // a move is a burst of changes
			case <-time.After(netSettle):
			case <-ctx.Done():
				return
			}
		case <-poll.C:
		}
		now := currentNet()
		if now.equal(last) {
			continue
		}
		c.log.Info("network changed", "was", last.String(), "now", now.String())
		last = now
		c.networkChanged(ctx)
	}
}

// networkChanged tells everyone who must know that the client's network changed.
func (c *Client) networkChanged(ctx context.Context) {
	private := c.privateAddrs()
	if private == nil {
		private = []string{}
	}
	for _, ctl := range c.controls() {
		// The report also tells the server where the session is now (QUIC migrates it there).
		r := c.natReport()
		r.PrivateAddrs = private
		ctl.send(r)
		ctl.reg.kick()
	}
	c.p2p.networkChanged()
	for _, ch := range []chan struct{}{c.natRecheck, c.portMapRecheck} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	// The server may still have the old address when the first repunch reaches it.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-time.After(repunchLate):
			c.p2p.repunchAll()
		case <-ctx.Done():
		}
	}()
}
