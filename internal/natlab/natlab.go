//go:build linux

// Package natlab builds a NAT lab for tests: Linux network namespaces joined by veth pairs and
// bridges, with nftables NATs of the kinds xp2p must handle, hosts behind them, a public server
// and a public user. Tests run xp2p as real processes inside the namespaces and reach services
// there through sockets the test process opens in those namespaces.
//
// Topology (prefix P, one NAT per side, sides A, B, ...):
//
//	P-wan   bridge of the public segment 203.0.113.0/24
//	P-srv   203.0.113.1   the xp2p server
//	P-pub   203.0.113.2   a user on the internet side
//	P-natA  203.0.113.10 (wan0) and 10.1.0.1/24 (lan bridge)   side A's NAT
//	P-A1    10.1.0.2, P-A2 10.1.0.3, ...                      hosts behind it
//	P-natB  203.0.113.20 and 10.2.0.1/24; P-B1 10.2.0.2, ...
//
// A side marked Routable takes 192.0.3.N0 instead of 203.0.113.N0 on the same public segment
// (every public host routes it there): routers such as miniupnpd refuse to map ports behind an
// address of a documentation range, as they should (StartMiniUPnPd).
//
// NAT kinds follow ../shared/natlab.sh: easy (masquerade: endpoint-independent mapping with
// port preservation, address-and-port-dependent filtering), sym (masquerade random: a new random
// port per destination), symseq (symmetric with sequential ports: each new UDP flow gets the
// next port, as many cheap routers and CGNATs do), open (easy, plus every inbound port
// 1024-65535 forwarded to the first host: full cone), noudp (easy, all outbound UDP dropped),
// none (hosts on the public segment).
package natlab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/xp2p/xp2p/internal/natlab/wan"
)

// NAT kinds.
const (
	Easy = "easy"
	Sym  = "sym"
	// SymSeq is symmetric with sequential port allocation (predictable ports).
	SymSeq = "symseq"
	Open   = "open"
	NoUDP  = "noudp"
	None   = "none"
)

// Addresses of the public hosts (the IPv6 ones in a lab with IPv6).
const (
	ServerIP  = "203.0.113.1"
	PublicIP  = "203.0.113.2"
	ServerIP6 = "2001:db8::1"
	PublicIP6 = "2001:db8::2"
)

// TB is what the lab needs of its owner: a test's testing.TB, or the stand-in of a program
// that builds labs (the benchmark suite, ./bench). Fatal ends the owner's current piece of work;
// cleanups run when it ends.
type TB interface {
	Helper()
	Cleanup(func())
	Failed() bool
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
	TempDir() string
}

// Side is one NAT and the hosts behind it.
type Side struct {
	Name  string // "A", "B", ...: hosts are Name+"1", Name+"2", ...
	NAT   string
	Hosts int // default 1
	// WAN, if set, shapes the NAT's link to the public segment (delay, loss, rate, MTU): every
	// path of the side's hosts crosses it.
	WAN *Link
	// IPv6 gives the side's hosts global IPv6 addresses too (2001:db8:N::/64, N the side's
	// place from 1), which the NAT routes without translation and filters as a home router's
	// stateful firewall does: what answers a flow from inside gets in, nothing else (open lets
	// everything in, noudp drops UDP as for IPv4). The public hosts get IPv6 addresses then.
	IPv6 bool
	// NoIPv4 leaves the side's hosts with IPv6 only (it implies IPv6).
	NoIPv4 bool
	// Routable gives the NAT a public address outside the reserved ranges (192.0.3.N0, N the
	// side's place from 1) that a router daemon checks for: see StartMiniUPnPd.
	Routable bool
}

// Config describes a lab.
type Config struct {
	Sides []Side
	// UDPTimeout, if set, shortens the NATs' UDP mapping lifetime (conntrack timeouts).
	UDPTimeout time.Duration
	// Server, if set, shapes the server's link to the public segment (e.g. a VPS's uplink).
	Server *Link
}

// Lab is a running lab; it is torn down when the test ends.
type Lab struct {
	t      TB
	prefix string
	hosts  map[string]string // host name → IP
	sides  map[string]Side
	links  map[string]*wan.Bridge // shaped links by host ("srv", "natA", ...)
	states map[string]string      // state directories by process name (StateDir)
	hosts6 map[string]string      // host name → IPv6 address (labs with IPv6)
	wan6   []string               // hosts with an IPv6 address on the public segment
	v6     bool                   // the lab has IPv6
	wanDev map[string]string      // hosts on the public segment → their interface there
	place  map[string]int         // each side's place in Config.Sides (its addresses)
	moved  map[string]int         // hosts moved onto each side (Move)
}

// StateDir is a state directory (the stateDir key of an xp2p config) for the lab's process
// name that stays the same across its restarts within the lab: a restarted server keeps its
// identity key, which its clients pinned.
func (l *Lab) StateDir(name string) string {
	if d, ok := l.states[name]; ok {
		return d
	}
	if l.states == nil {
		l.states = map[string]string{}
	}
	d := filepath.Join(l.t.TempDir(), name+".state")
	l.states[name] = d
	return d
}

// Require skips the test when the lab cannot run here (not root, tools missing), or fails it
// when XP2P_LAB_REQUIRED=1 (as in CI), where a skipped lab would hide a broken environment.
func Require(t TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "the NAT lab needs root (network namespaces, nftables)"
	default:
		for _, tool := range []string{"ip", "nft"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = fmt.Sprintf("the NAT lab needs %q (apt-get install iproute2 nftables)", tool)
				break
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("XP2P_LAB_REQUIRED") == "1" {
		t.Fatalf("XP2P_LAB_REQUIRED=1 but %s", why)
	}
	t.Skipf("skipping NAT lab test %s: %s (run as root to include it; CI sets XP2P_LAB_REQUIRED=1)", testName(t), why)
}

// testName names the test a skip is about (go test -v lists skips; the name says which).
func testName(t TB) string {
	if n, ok := t.(interface{ Name() string }); ok {
		return n.Name()
	}
	return "(not a test)"
}

// New builds a lab; Require is called first.
func New(t TB, cfg Config) *Lab {
	t.Helper()
	Require(t)
	id := make([]byte, 3)
	rand.Read(id)
	l := &Lab{t: t, prefix: "xl" + hex.EncodeToString(id) + "-", hosts: map[string]string{}, sides: map[string]Side{}, links: map[string]*wan.Bridge{}, hosts6: map[string]string{}, wanDev: map[string]string{}}
	t.Cleanup(l.destroy)
	if err := l.build(cfg); err != nil {
		t.Fatalf("natlab: %v", err)
	}
	return l
}

// NS returns the namespace name of a host ("srv", "pub", "natA", "A1", ...).
func (l *Lab) NS(host string) string { return l.prefix + host }

// IP returns a host's address.
func (l *Lab) IP(host string) string {
	ip, ok := l.hosts[host]
	if !ok {
		l.t.Fatalf("natlab: no host %q", host)
	}
	return ip
}

// IP6 returns a host's IPv6 address (fails the test if it has none).
func (l *Lab) IP6(host string) string {
	ip, ok := l.hosts6[host]
	if !ok {
		l.t.Fatalf("natlab: no IPv6 on host %q", host)
	}
	return ip
}

// NATIP returns the public address of a side's NAT.
func (l *Lab) NATIP(side string) string { return l.IP("nat" + side) }

func (l *Lab) build(cfg Config) error {
	for i := range cfg.Sides {
		if cfg.Sides[i].NoIPv4 {
			cfg.Sides[i].IPv6 = true
		}
		l.v6 = l.v6 || cfg.Sides[i].IPv6
	}
	if err := l.netns("wan", "srv", "pub"); err != nil {
		return err
	}
	cmds := [][]string{
		{"ip", "-n", l.NS("wan"), "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", l.NS("wan"), "link", "set", "br0", "up"},
	}
	if err := run(cmds...); err != nil {
		return err
	}
	if err := l.attachPublic("srv", ServerIP); err != nil {
		return err
	}
	if err := l.attachPublic("pub", PublicIP); err != nil {
		return err
	}
	if l.v6 {
		if err := l.addPublic6("srv", ServerIP6); err != nil {
			return err
		}
		if err := l.addPublic6("pub", PublicIP6); err != nil {
			return err
		}
	}
	if cfg.Server != nil {
		if err := l.shapeLink("srv", "eth0", *cfg.Server); err != nil {
			return fmt.Errorf("server's link: %w", err)
		}
	}
	for i, s := range cfg.Sides {
		if s.Hosts == 0 {
			s.Hosts = 1
		}
		l.sides[s.Name] = s
		if l.place == nil {
			l.place, l.moved = map[string]int{}, map[string]int{}
		}
		l.place[s.Name] = i
		if err := l.buildSide(i, s, cfg.UDPTimeout); err != nil {
			return fmt.Errorf("side %s (%s): %w", s.Name, s.NAT, err)
		}
		if s.WAN != nil {
			if s.NAT == None {
				return fmt.Errorf("side %s: a WAN link needs a NAT (kind none puts its hosts on the public segment)", s.Name)
			}
			if err := l.shapeLink("nat"+s.Name, "wan0", *s.WAN); err != nil {
				return fmt.Errorf("side %s's WAN link: %w", s.Name, err)
			}
		}
	}
	if err := l.routeRoutable(cfg.Sides); err != nil {
		return err
	}
	if l.v6 {
		return l.route6(cfg.Sides)
	}
	return nil
}

// routableIP is the public address of the i-th side's NAT when the side is Routable.
func routableIP(i int) string { return fmt.Sprintf("192.0.3.%d", 10*(i+1)) }

// routeRoutable tells every other host on the public segment that a Routable NAT's address
// is on the segment too (it lies outside the segment's 203.0.113.0/24).
func (l *Lab) routeRoutable(sides []Side) error {
	for _, s := range sides {
		if !s.Routable || s.NAT == None {
			continue
		}
		nat := "nat" + s.Name
		for host, dev := range l.wanDev {
			if host == nat {
				continue
			}
			if err := run([]string{"ip", "-n", l.NS(host), "route", "add", l.hosts[nat] + "/32", "dev", dev}); err != nil {
				return err
			}
		}
	}
	return nil
}

// side6 is the IPv6 prefix of the i-th side's LAN (2001:db8:N::, N from 1) and its NAT's
// public IPv6 address.
func side6(i int) (lan, pub string) {
	return fmt.Sprintf("2001:db8:%d::", i+1), fmt.Sprintf("2001:db8::%d", 10*(i+1))
}

// addPublic6 gives a host on the public segment an IPv6 address too.
func (l *Lab) addPublic6(host, addr string) error {
	l.hosts6[host] = addr
	l.wan6 = append(l.wan6, host)
	return run([]string{"ip", "-n", l.NS(host), "addr", "add", addr + "/64", "dev", "eth0", "nodad"})
}

// route6 tells every router of the public segment (its hosts, the NATs with IPv6) where the
// sides' IPv6 prefixes are: behind their NATs.
func (l *Lab) route6(sides []Side) error {
	for i, s := range sides {
		if !s.IPv6 || s.NAT == None {
			continue
		}
		lan, pub := side6(i)
		for _, r := range l.wan6 {
			if r == "nat"+s.Name {
				continue
			}
			if err := run([]string{"ip", "-n", l.NS(r), "-6", "route", "add", lan + "/64", "via", pub}); err != nil {
				return err
			}
		}
	}
	return nil
}

// netns creates namespaces with their loopback up.
func (l *Lab) netns(names ...string) error {
	for _, n := range names {
		if err := run([]string{"ip", "netns", "add", l.NS(n)}, []string{"ip", "-n", l.NS(n), "link", "set", "lo", "up"}); err != nil {
			return err
		}
		if l.v6 {
			// No duplicate address detection: a link-local address stays tentative for a
			// second or two otherwise, and the first packets of a test wait for it.
			if err := run([]string{"ip", "netns", "exec", l.NS(n), "sysctl", "-qw",
				"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"}); err != nil {
				return err
			}
		}
	}
	return nil
}

// attachPublic puts a host on the public segment with addr.
func (l *Lab) attachPublic(host, addr string) error {
	l.hosts[host] = addr
	l.wanDev[host] = "eth0"
	peer := "v-" + host
	return run(
		[]string{"ip", "link", "add", "eth0", "netns", l.NS(host), "type", "veth", "peer", "name", peer, "netns", l.NS("wan")},
		[]string{"ip", "-n", l.NS("wan"), "link", "set", peer, "master", "br0"},
		[]string{"ip", "-n", l.NS("wan"), "link", "set", peer, "up"},
		[]string{"ip", "-n", l.NS(host), "addr", "add", addr + "/24", "dev", "eth0"},
		[]string{"ip", "-n", l.NS(host), "link", "set", "eth0", "up"},
	)
}

func (l *Lab) buildSide(i int, s Side, udpTimeout time.Duration) error {
	if s.NAT == None {
		for j := range s.Hosts {
			host := fmt.Sprintf("%s%d", s.Name, j+1)
			if err := l.netns(host); err != nil {
				return err
			}
			if err := l.attachPublic(host, fmt.Sprintf("203.0.113.%d", 10*(i+1)+j)); err != nil {
				return err
			}
			if s.IPv6 {
				if err := l.addPublic6(host, fmt.Sprintf("2001:db8::%d", 10*(i+1)+j)); err != nil {
					return err
				}
			}
			if s.NoIPv4 {
				if err := run([]string{"ip", "-n", l.NS(host), "addr", "flush", "dev", "eth0", "scope", "global", "to", "0.0.0.0/0"}); err != nil {
					return err
				}
				l.hosts[host] = l.hosts6[host]
			}
		}
		return nil
	}
	nat := "nat" + s.Name
	pub := fmt.Sprintf("203.0.113.%d", 10*(i+1))
	pubAddr := []string{"ip", "-n", l.NS(nat), "addr", "add", pub + "/24", "dev", "wan0"}
	if s.Routable {
		// Alone on the segment's prefix: an on-link route to the segment, from this address.
		pub = routableIP(i)
		pubAddr = []string{"ip", "-n", l.NS(nat), "addr", "add", pub + "/32", "dev", "wan0"}
	}
	lan := fmt.Sprintf("10.%d.0", i+1)
	if err := l.netns(nat); err != nil {
		return err
	}
	l.hosts[nat] = pub
	l.wanDev[nat] = "wan0"
	peer := "v-" + nat
	cmds := [][]string{
		{"ip", "link", "add", "wan0", "netns", l.NS(nat), "type", "veth", "peer", "name", peer, "netns", l.NS("wan")},
		{"ip", "-n", l.NS("wan"), "link", "set", peer, "master", "br0"},
		{"ip", "-n", l.NS("wan"), "link", "set", peer, "up"},
		pubAddr,
		{"ip", "-n", l.NS(nat), "link", "set", "wan0", "up"},
		{"ip", "-n", l.NS(nat), "link", "add", "lan0", "type", "bridge"},
		{"ip", "-n", l.NS(nat), "addr", "add", lan + ".1/24", "dev", "lan0"},
		{"ip", "-n", l.NS(nat), "link", "set", "lan0", "up"},
		{"ip", "netns", "exec", l.NS(nat), "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	}
	if s.Routable {
		cmds = append(cmds, []string{"ip", "-n", l.NS(nat), "route", "add", "203.0.113.0/24", "dev", "wan0", "src", pub})
	}
	if udpTimeout > 0 {
		secs := fmt.Sprint(int(udpTimeout.Seconds()))
		cmds = append(cmds, []string{"ip", "netns", "exec", l.NS(nat), "sysctl", "-qw",
			"net.netfilter.nf_conntrack_udp_timeout=" + secs, "net.netfilter.nf_conntrack_udp_timeout_stream=" + secs})
	}
	lan6, pub6 := side6(i)
	if s.IPv6 {
		l.hosts6[nat] = pub6
		l.wan6 = append(l.wan6, nat)
		cmds = append(cmds,
			[]string{"ip", "-n", l.NS(nat), "addr", "add", pub6 + "/64", "dev", "wan0", "nodad"},
			[]string{"ip", "-n", l.NS(nat), "addr", "add", lan6 + "1/64", "dev", "lan0", "nodad"},
			[]string{"ip", "netns", "exec", l.NS(nat), "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		)
	}
	for j := range s.Hosts {
		host := fmt.Sprintf("%s%d", s.Name, j+1)
		addr := fmt.Sprintf("%s.%d", lan, j+2)
		l.hosts[host] = addr
		hp := fmt.Sprintf("h%d", j+1)
		if err := l.netns(host); err != nil {
			return err
		}
		cmds = append(cmds,
			[]string{"ip", "link", "add", "eth0", "netns", l.NS(host), "type", "veth", "peer", "name", hp, "netns", l.NS(nat)},
			[]string{"ip", "-n", l.NS(nat), "link", "set", hp, "master", "lan0"},
			[]string{"ip", "-n", l.NS(nat), "link", "set", hp, "up"},
			[]string{"ip", "-n", l.NS(host), "link", "set", "eth0", "up"},
		)
		if !s.NoIPv4 {
			cmds = append(cmds,
				[]string{"ip", "-n", l.NS(host), "addr", "add", addr + "/24", "dev", "eth0"},
				[]string{"ip", "-n", l.NS(host), "route", "add", "default", "via", lan + ".1"},
			)
		}
		if s.IPv6 {
			addr6 := fmt.Sprintf("%s%d", lan6, j+2)
			l.hosts6[host] = addr6
			cmds = append(cmds,
				[]string{"ip", "-n", l.NS(host), "addr", "add", addr6 + "/64", "dev", "eth0", "nodad"},
				[]string{"ip", "-n", l.NS(host), "-6", "route", "add", "default", "via", lan6 + "1"},
			)
			if s.NoIPv4 {
				l.hosts[host] = addr6
			}
		}
	}
	if err := run(cmds...); err != nil {
		return err
	}
	rules := natRules(s.NAT, lan, pub)
	if s.IPv6 {
		rules += firewall6(s.NAT)
	}
	return l.nft(nat, rules)
}

// firewall6 is a NAT's IPv6 ruleset: no translation, and the stateful filter of a home router
// (RFC 6092): flows from inside and what answers them pass, ICMPv6 errors about them too
// (conntrack's related), the rest from outside is dropped. Kind open filters nothing; noudp
// drops UDP from inside as its IPv4 rules do.
func firewall6(kind string) string {
	policy, udpOut := "drop", ""
	switch kind {
	case Open:
		policy = "accept"
	case NoUDP:
		udpOut = `iifname "lan0" meta l4proto udp drop`
	}
	return `table ip6 filter6 {
  chain forward {
    type filter hook forward priority 0; policy ` + policy + `;
    ` + udpOut + `
    ct state established,related accept
    iifname "lan0" accept
  }
}
`
}

// natRules returns the nftables ruleset of a NAT kind, as in ../shared/natlab.sh.
func natRules(kind, lan, pub string) string {
	masq, extra, udpOut := "masquerade", "", ""
	switch kind {
	case Sym:
		masq = "masquerade random"
	case SymSeq:
		// NAT rules run once per new flow: numgen hands each new UDP flow the next port. (Through
		// a map: nftables puts a bare numgen value into the port in host byte order.)
		ports := make([]string, 256)
		for i := range ports {
			ports[i] = fmt.Sprintf("%d : %d", i, 30000+i)
		}
		masq = `meta l4proto udp snat to ` + pub + ` : numgen inc mod 256 map { ` + strings.Join(ports, ", ") + ` }
    oifname "wan0" masquerade`
	case Open:
		extra = `iifname "wan0" meta l4proto { tcp, udp } th dport 1024-65535 dnat to ` + lan + `.2`
	case NoUDP:
		udpOut = `iifname "lan0" meta l4proto udp drop`
	}
	return `table ip nat {
  chain pre {
    type nat hook prerouting priority -100;
    ` + extra + `
  }
  chain post {
    type nat hook postrouting priority 100;
    oifname "wan0" ` + masq + `
  }
}
table ip filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ` + udpOut + `
    ct state established,related accept
    ct status dnat accept
    iifname "lan0" accept
  }
  chain input {
    type filter hook input priority 0; policy accept;
    iifname "wan0" ct state new drop
  }
}
`
}

// nft loads rules into a namespace.
func (l *Lab) nft(host, rules string) error {
	cmd := exec.Command("ip", "netns", "exec", l.NS(host), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", host, err, out)
	}
	return nil
}

// NFT applies extra nftables rules in a host's namespace (e.g. to block a path for a while).
func (l *Lab) NFT(host, rules string) {
	l.t.Helper()
	if err := l.nft(host, rules); err != nil {
		l.t.Fatal(err)
	}
}

// Exec runs a command in a host's namespace and returns its combined output.
func (l *Lab) Exec(host string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.NS(host)}, args...)...).CombinedOutput()
	return string(out), err
}

// FlushConntrack forgets every connection a NAT tracks: its mappings go, as after a reboot or a
// timeout.
func (l *Lab) FlushConntrack(side string) {
	l.t.Helper()
	if out, err := l.Exec("nat"+side, "conntrack", "-F"); err != nil && !strings.Contains(out, "emptied") {
		l.t.Fatalf("conntrack -F in nat%s: %v: %s", side, err, out)
	}
}

func (l *Lab) destroy() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, l.prefix) {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
}

func run(cmds ...[]string) error {
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}
