//go:build linux

package natlab

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// ServePortMapping makes a side's NAT a NAT-PMP gateway (RFC 6886) on its LAN address, port
// 5351: a host's mapping request becomes a real nftables DNAT rule from the NAT's public
// address to that host, as a home router's does; lifetime 0 removes it. It runs until the test
// ends.
//
// Written here because the Debian packages the lab may use have no NAT-PMP daemon (miniupnpd is
// not among them), and the server side of the protocol is a few fixed-size messages.
func (l *Lab) ServePortMapping(side string) {
	l.t.Helper()
	nat := "nat" + side
	lanIP := l.lanGateway(side)
	pc := l.ListenPacket(nat, "udp4", net.JoinHostPort(lanIP, "5351"))
	g := &pmpGateway{lab: l, nat: nat, public: netip.MustParseAddr(l.NATIP(side)), started: time.Now(),
		maps: map[pmpKey]netip.AddrPort{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); g.serve(pc) }()
	l.t.Cleanup(func() { pc.Close(); wg.Wait() })
}

// lanGateway is a side's NAT address on its LAN (the hosts' default gateway).
func (l *Lab) lanGateway(side string) string {
	host := l.IP(side + "1")
	return host[:strings.LastIndex(host, ".")] + ".1"
}

type pmpKey struct {
	proto string
	ext   uint16
}

type pmpGateway struct {
	lab     *Lab
	nat     string
	public  netip.Addr
	started time.Time

	mu   sync.Mutex
	maps map[pmpKey]netip.AddrPort // external port → internal host:port
}

func (g *pmpGateway) serve(pc net.PacketConn) {
	buf := make([]byte, 64)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := g.handle(buf[:n], from.(*net.UDPAddr)); resp != nil {
			pc.WriteTo(resp, from)
		}
	}
}

// handle answers one request (RFC 6886 section 3): opcode 0 asks for the external address,
// 1 and 2 map a UDP or TCP port.
func (g *pmpGateway) handle(req []byte, from *net.UDPAddr) []byte {
	if len(req) < 2 || req[0] != 0 {
		return nil
	}
	op := req[1]
	epoch := uint32(time.Since(g.started).Seconds())
	switch {
	case op == 0 && len(req) == 2:
		resp := make([]byte, 12)
		resp[1] = 128
		binary.BigEndian.PutUint32(resp[4:], epoch)
		ip := g.public.As4()
		copy(resp[8:], ip[:])
		return resp
	case (op == 1 || op == 2) && len(req) == 12:
		proto := map[byte]string{1: "udp", 2: "tcp"}[op]
		internal := binary.BigEndian.Uint16(req[4:6])
		ext := binary.BigEndian.Uint16(req[6:8])
		lifetime := binary.BigEndian.Uint32(req[8:12])
		host, _ := netip.AddrFromSlice(from.IP.To4())
		if ext == 0 {
			ext = internal
		}
		result := uint16(0)
		if err := g.setMapping(proto, ext, netip.AddrPortFrom(host, internal), lifetime > 0); err != nil {
			g.lab.t.Logf("natlab: NAT-PMP in %s: %v", g.nat, err)
			result = 3 // network failure
		}
		if lifetime == 0 {
			ext = 0
		}
		resp := make([]byte, 16)
		resp[1] = 128 + op
		binary.BigEndian.PutUint16(resp[2:], result)
		binary.BigEndian.PutUint32(resp[4:], epoch)
		binary.BigEndian.PutUint16(resp[8:], internal)
		binary.BigEndian.PutUint16(resp[10:], ext)
		binary.BigEndian.PutUint32(resp[12:], lifetime)
		return resp
	}
	return nil
}

// setMapping adds or removes a mapping and reloads the NAT's port-mapping table from the set.
func (g *pmpGateway) setMapping(proto string, ext uint16, to netip.AddrPort, add bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := pmpKey{proto, ext}
	if add {
		g.maps[k] = to
	} else {
		delete(g.maps, k)
	}
	var rules []string
	for k, to := range g.maps {
		rules = append(rules, fmt.Sprintf(`iifname "wan0" %s dport %d dnat to %s`, k.proto, k.ext, to))
	}
	sort.Strings(rules)
	// Its own table, declared then flushed, so that a reload replaces every rule at once.
	ruleset := "table ip pmp {}\nflush table ip pmp\ntable ip pmp {\n  chain pre {\n    type nat hook prerouting priority -110;\n    " +
		strings.Join(rules, "\n    ") + "\n  }\n}\n"
	return g.lab.nft(g.nat, ruleset)
}

// PortMappings returns a side's NAT-PMP mappings as nftables lists its table (empty if none).
func (l *Lab) PortMappings(side string) string {
	out, _ := l.Exec("nat"+side, "nft", "list", "table", "ip", "pmp")
	return out
}
