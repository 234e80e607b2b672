//go:build linux

package natlab

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RouterProtocols are the port-mapping protocols a side's router daemon speaks.
type RouterProtocols struct {
	UPnP   bool // UPnP-IGD: SSDP discovery and the IGD's SOAP control on the LAN
	NATPMP bool // NAT-PMP (RFC 6886)
	PCP    bool // PCP (RFC 6887)
}

func (p RouterProtocols) String() string {
	var names []string
	for _, n := range []struct {
		on   bool
		name string
	}{{p.PCP, "PCP"}, {p.NATPMP, "NAT-PMP"}, {p.UPnP, "UPnP-IGD"}} {
		if n.on {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, "+")
}

// miniupnpdTable is the nftables table miniupnpd keeps its rules in (upnp_table_name).
const miniupnpdTable = "miniupnpd"

// MiniUPnPd is a side's running miniupnpd.
type MiniUPnPd struct {
	*Proc
	leaseFile string
}

// Leases returns miniupnpd's lease file: a line per mapping, "PROTO:EXTPORT:IADDR:IPORT:
// EXPIRES:DESCRIPTION" (EXPIRES in Unix seconds, 0 for a permanent mapping).
func (m *MiniUPnPd) Leases() string {
	b, _ := os.ReadFile(m.leaseFile)
	return string(b)
}

// StartMiniUPnPd runs Debian's miniupnpd (package miniupnpd-nftables), the router daemon of
// OpenWrt and many home routers, in a side's NAT: it listens on the LAN bridge, speaks the
// protocols asked for, and turns every mapping into real nftables rules (a DNAT in its own
// table's prerouting chain and an accept in its forward chain), which PortMappings lists. The
// side must be Routable: miniupnpd maps nothing behind an address of a reserved range, and
// refuses to be told such an address (ext_ip). It runs until the test ends.
//
// miniupnpd 2.3 has one switch for NAT-PMP and PCP together (enable_natpmp): when only one of
// the two is asked for, the NAT drops the other's requests at its input (the first byte of
// each is its version: 0 for NAT-PMP, 2 for PCP), so the daemon speaks that one alone.
func (l *Lab) StartMiniUPnPd(side string, protos RouterProtocols) *MiniUPnPd {
	l.t.Helper()
	bin := Tool(l.t, "miniupnpd", "miniupnpd-nftables")
	s, ok := l.sides[side]
	switch {
	case !ok || s.NAT == None:
		l.t.Fatalf("natlab: side %q has no NAT to run miniupnpd in", side)
	case !s.Routable:
		l.t.Fatalf("natlab: side %s is not Routable: miniupnpd maps no port behind %s (a reserved address)", side, l.NATIP(side))
	case !protos.UPnP && !protos.NATPMP && !protos.PCP:
		l.t.Fatalf("natlab: miniupnpd in nat%s with no protocol", side)
	}
	nat := "nat" + side
	// The tables and chains miniupnpd fills (its netfilter_nft/README.md): it creates none.
	rules := `table inet ` + miniupnpdTable + ` {
  chain forward {
    type filter hook forward priority 0; policy accept;
    jump miniupnpd
  }
  chain miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
`
	if protos.NATPMP != protos.PCP {
		version := 0 // NAT-PMP's requests are dropped
		if protos.NATPMP {
			version = 2 // PCP's are
		}
		rules += fmt.Sprintf(`  chain input {
    type filter hook input priority -10; policy accept;
    iifname "lan0" udp dport 5351 @th,64,8 %d drop
  }
`, version)
	}
	if err := l.nft(nat, rules+"}\n"); err != nil {
		l.t.Fatal(err)
	}

	dir := l.t.TempDir()
	yes := map[bool]string{true: "yes", false: "no"}
	id := make([]byte, 16)
	rand.Read(id)
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
	lan := l.lanGateway(side)
	conf := fmt.Sprintf(`ext_ifname=wan0
listening_ip=lan0
ipv6_disable=yes
http_port=0
enable_upnp=%s
enable_natpmp=%s
secure_mode=yes
system_uptime=no
min_lifetime=120
max_lifetime=86400
upnp_table_name=%[3]s
upnp_nat_table_name=%[3]s
lease_file=%[4]s
uuid=%[5]s
allow 1024-65535 %[6]s/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, yes[protos.UPnP], yes[protos.NATPMP || protos.PCP], miniupnpdTable, filepath.Join(dir, "leases"),
		uuid, lan[:strings.LastIndex(lan, ".")]+".0")
	path := filepath.Join(dir, "miniupnpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		l.t.Fatal(err)
	}
	// -d: in the foreground, logging to stderr; its own pid file, since labs run side by side.
	p := l.Start(nat, "miniupnpd", bin, "-f", path, "-d", "-P", filepath.Join(dir, "miniupnpd.pid"))
	ready := `HTTP listening on port`
	if protos.NATPMP || protos.PCP {
		ready = `Listening for NAT-PMP/PCP traffic on port 5351` // opened after the HTTP socket
	}
	p.WaitLog(ready, 10*time.Second)
	return &MiniUPnPd{Proc: p, leaseFile: filepath.Join(dir, "leases")}
}

// PortMappings lists the port mappings the side's miniupnpd installed: its nftables DNAT
// rules, one a line as `nft` prints them (e.g. `iif "wan0" @nh,72,8 0x11 th dport 40123 dnat
// ip to 10.1.0.2:40123`, 0x11 being UDP), or "" if there are none.
func (l *Lab) PortMappings(side string) string {
	l.t.Helper()
	out, err := l.Exec("nat"+side, "nft", "list", "chain", "inet", miniupnpdTable, "prerouting_miniupnpd")
	if err != nil {
		l.t.Fatalf("natlab: miniupnpd's rules in nat%s: %v: %s", side, err, out)
	}
	var rules []string
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); strings.Contains(line, " dnat ") {
			rules = append(rules, line)
		}
	}
	return strings.Join(rules, "\n")
}

// lanGateway is a side's NAT address on its LAN (the hosts' default gateway).
func (l *Lab) lanGateway(side string) string {
	host := l.IP(side + "1")
	return host[:strings.LastIndex(host, ".")] + ".1"
}
