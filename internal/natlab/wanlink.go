//go:build linux

package natlab

import (
	"fmt"

	"github.com/xp2p/xp2p/internal/natlab/wan"
)

// Link shapes a host's or a NAT's link to the public segment as a wide-area path would (package
// wan): Up is what it sends toward the WAN, Down what it receives from it. A NAT's link shapes
// every path of its hosts, to the server and to peers alike; a path between two shaped sides
// crosses both links (its round trip is twice the sum of the one-way delays).
type Link struct {
	Up, Down wan.Shape
}

// shapeLink splices a WAN emulator into host's link: dev is the host's interface on the public
// segment, whose veth peer v-host sits in the WAN bridge. The peer leaves the bridge, and the
// emulator joins it to a new veth pair w-host/e-host whose e-host end takes its place there.
func (l *Lab) shapeLink(host, dev string, link Link) error {
	Tool(l.t, "ethtool", "ethtool")
	wan0, peer, inner, outer := l.NS(host), "v-"+host, "w-"+host, "e-"+host
	wns := l.NS("wan")
	if err := run(
		[]string{"ip", "-n", wns, "link", "set", peer, "nomaster"},
		[]string{"ip", "-n", wns, "link", "add", inner, "type", "veth", "peer", "name", outer},
		[]string{"ip", "-n", wns, "link", "set", outer, "master", "br0"},
	); err != nil {
		return err
	}
	// Frames must reach the emulator as they would cross a wire: no segmentation or coalescing
	// offloads, complete checksums. Every device that transmits into it, and its own two.
	offloads := []string{"tso", "off", "gso", "off", "gro", "off", "tx", "off", "tx-udp-segmentation", "off"}
	for _, d := range []struct{ ns, dev string }{{wan0, dev}, {wns, peer}, {wns, inner}, {wns, outer}} {
		if err := run(append([]string{"ip", "netns", "exec", d.ns, "ethtool", "-K", d.dev}, offloads...)); err != nil {
			return fmt.Errorf("offloads off: %w", err)
		}
		// The emulator's ports are not the WAN namespace's own: no IPv6 chatter from them.
		if d.ns == wns {
			if err := run([]string{"ip", "netns", "exec", wns, "sysctl", "-qw", "net.ipv6.conf." + d.dev + ".disable_ipv6=1"}); err != nil {
				return err
			}
		}
	}
	if err := run(
		[]string{"ip", "-n", wns, "link", "set", inner, "up"},
		[]string{"ip", "-n", wns, "link", "set", outer, "up"},
	); err != nil {
		return err
	}
	var br *wan.Bridge
	err := l.In("wan", func() (err error) {
		br, err = wan.Start(peer, inner, link.Up, link.Down, wan.Options{})
		return err
	})
	if err != nil {
		return err
	}
	l.t.Cleanup(func() { br.Close() })
	l.links[host] = br
	return nil
}

// wanLink returns the emulator of host's link ("srv", "natA", ...); it fails the test if the lab
// gave that link none.
func (l *Lab) wanLink(host string) *wan.Bridge {
	l.t.Helper()
	br, ok := l.links[host]
	if !ok {
		l.t.Fatalf("natlab: %s has no shaped link (set Config.Server or Side.WAN)", host)
	}
	return br
}

// SetLink changes a shaped link at once ("srv", or "nat"+side; a side with NAT none has no link
// of its own); frames on their way keep the times they were given.
func (l *Lab) SetLink(host string, link Link) {
	l.t.Helper()
	if err := l.wanLink(host).Set(link.Up, link.Down); err != nil {
		l.t.Fatalf("natlab: link of %s: %v", host, err)
	}
}

// LinkStats returns the counters of a shaped link, up and down.
func (l *Lab) LinkStats(host string) (up, down wan.Stats) {
	l.t.Helper()
	return l.wanLink(host).Stats()
}
