package peer

import (
	"context"

	"github.com/vishvananda/netlink"
)

// cheapGateway: the default gateway is read from /proc/net/route.
const cheapGateway = true

// subscribeNet signals notify on every change of the host's addresses, routes and links, from
// the kernel's netlink notifications (github.com/vishvananda/netlink). stop ends it.
func subscribeNet(ctx context.Context, notify chan<- struct{}) (stop func()) {
	done := make(chan struct{})
	addrs := make(chan netlink.AddrUpdate, 16)
	routes := make(chan netlink.RouteUpdate, 16)
	links := make(chan netlink.LinkUpdate, 16)
	// A subscription that fails leaves the polling.
	netlink.AddrSubscribe(addrs, done)
	netlink.RouteSubscribe(routes, done)
	netlink.LinkSubscribe(links, done)
	signal := func() {
		select {
		case notify <- struct{}{}:
		default:
		}
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case _, ok := <-addrs:
				if !ok {
					addrs = nil
				}
				signal()
			case _, ok := <-routes:
				if !ok {
					routes = nil
				}
				signal()
			case _, ok := <-links:
				if !ok {
					links = nil
				}
				signal()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
