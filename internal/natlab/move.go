//go:build linux

package natlab

import "fmt"

// Move takes a host off its network and onto side's, as a laptop that leaves home Wi-Fi for
// a phone's hotspot: its link goes away, and a new one to side's LAN comes up with the next
// free address there (IPv6 too, if side has it) and a default route through side's NAT. The
// host's namespace stays, and with it its processes and their sockets. The side must have a NAT.
func (l *Lab) Move(host, side string) {
	l.t.Helper()
	if err := l.move(host, side); err != nil {
		l.t.Fatalf("natlab: move %s to side %s: %v", host, side, err)
	}
}

func (l *Lab) move(host, side string) error {
	s, ok := l.sides[side]
	if !ok || s.NAT == None {
		return fmt.Errorf("no side %q with a NAT", side)
	}
	i := l.place[side]
	l.moved[side]++
	n := s.Hosts + l.moved[side] // hosts on that LAN, this one included
	lan := fmt.Sprintf("10.%d.0", i+1)
	addr := fmt.Sprintf("%s.%d", lan, n+1)
	nat := "nat" + side
	port := fmt.Sprintf("m%d", l.moved[side])
	cmds := [][]string{
		{"ip", "-n", l.NS(host), "link", "del", "eth0"}, // its veth peer, in the old NAT, goes too
		{"ip", "link", "add", "eth0", "netns", l.NS(host), "type", "veth", "peer", "name", port, "netns", l.NS(nat)},
		{"ip", "-n", l.NS(nat), "link", "set", port, "master", "lan0"},
		{"ip", "-n", l.NS(nat), "link", "set", port, "up"},
		{"ip", "-n", l.NS(host), "link", "set", "eth0", "up"},
	}
	if !s.NoIPv4 {
		cmds = append(cmds,
			[]string{"ip", "-n", l.NS(host), "addr", "add", addr + "/24", "dev", "eth0"},
			[]string{"ip", "-n", l.NS(host), "route", "add", "default", "via", lan + ".1"},
		)
		l.hosts[host] = addr
	}
	delete(l.hosts6, host)
	if s.IPv6 {
		lan6, _ := side6(i)
		addr6 := fmt.Sprintf("%s%d", lan6, n+1)
		cmds = append(cmds,
			[]string{"ip", "-n", l.NS(host), "addr", "add", addr6 + "/64", "dev", "eth0", "nodad"},
			[]string{"ip", "-n", l.NS(host), "-6", "route", "add", "default", "via", lan6 + "1"},
		)
		l.hosts6[host] = addr6
		if s.NoIPv4 {
			l.hosts[host] = addr6
		}
	}
	return run(cmds...)
}
