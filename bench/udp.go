//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// udpRates are the offered rates of the udp rows, Mbit/s.
var udpRates = []int{100, 300, 500}

// udpSystems are the udp rows' columns: iperf3 direct through both NATs, through frp's and
// xp2p's classic udp proxy (control over their tcp proxy), and over frp's sudp and an xp2p udp
// service (control over an stcp visitor and an xp2p tcp service).
var udpSystems = []string{"direct UDP", "frp udp", "xp2p udp", "frp sudp", "xp2p udp service"}

// udpLoss measures the udp section: iperf3 -u from the visitor's host to the provider's, both
// behind easy NATs on the lab's plain links (no WAN emulator: it drops past 300 Mbit/s itself,
// while plain links carry direct UDP at these rates without loss), at each rate, directly
// through the provider's NAT, through frp's and xp2p's classic udp proxies and over frp's sudp
// and an xp2p udp service; it records the datagrams lost (the receiver's count) and the CPU the
// systems' processes spent.
func udpLoss(o *options, bins *binaries, p *progress) (*results, error) {
	res := newResults()
	err := run("udp", o.logw, func(t *step) {
		udpLossIn(t, o, bins, res, p)
	})
	return res, err
}

func udpLossIn(t *step, o *options, bins *binaries, res *results, p *progress) {
	l := natlab.New(t, natlab.Config{
		Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}},
	})
	addServerAlt(t, l)
	l.NFT("natP", fmt.Sprintf(`table ip benchfwd {
  chain pre {
    type nat hook prerouting priority -101;
    iifname "wan0" meta l4proto { tcp, udp } th dport %d dnat to %s
  }
}`, iperfPort, l.IP("P1")))
	iperf := natlab.Tool(t, "iperf3", "iperf3")
	l.Start("P1", "iperf3-server", iperf, "-s", "-p", fmt.Sprint(iperfPort))
	pids := map[string][]int{}
	for _, s := range o.systems(bins) {
		srv := s.startServer(t, l)
		prov := s.startClient(t, l, "P1", s.name+"-udp-provider", s.clientConfig("")+s.iperfProviders())
		pids[s.name] = []int{srv.PID(), prov.PID()}
	}
	time.Sleep(time.Second) // proxies and services registered
	frpV := system{name: "frp", bins: bins}
	xV := system{name: "xp2p", bins: bins}
	fv := frpV.startClient(t, l, "V1", "frp-udp-visitor", frpV.clientConfig("")+frpV.iperfVisitors())
	fv.WaitLog("start visitor success", 10*time.Second)
	xv := xV.startClient(t, l, "V1", "xp2p-udp-visitor", xV.clientConfig("")+xV.iperfVisitors())
	procs := map[string][]int{
		"frp udp": pids["frp"], "xp2p udp": pids["xp2p"],
		"frp sudp": append([]int{fv.PID()}, pids["frp"]...), "xp2p udp service": append([]int{xv.PID()}, pids["xp2p"]...),
	}
	targets := map[string][2]string{ // host:port of the iperf3 server as the client sees it
		"direct UDP":       {l.NATIP("P"), fmt.Sprint(iperfPort)},
		"frp udp":          {natlab.ServerIP, fmt.Sprint(frpIperf)},
		"xp2p udp":         {natlab.ServerIP, fmt.Sprint(xp2pIperf)},
		"frp sudp":         {"127.0.0.1", fmt.Sprint(frpSUDPPort)},
		"xp2p udp service": {"127.0.0.1", fmt.Sprint(xp2pIperfP2P)},
	}
	secs := fmt.Sprint(min(o.pathSecs, 3))
	for rep := range o.reps {
		for _, rate := range udpRates {
			for _, name := range udpSystems {
				p.set("udp: iperf3 -u %d Mbit/s, %s, rep %d/%d", rate, name, rep+1, o.reps)
				tgt := targets[name]
				cpu0, drops0 := cpuSeconds(procs[name]...), udpSocketDrops(l)
				out, err := l.Exec("V1", iperf, "-c", tgt[0], "-p", tgt[1], "-u", "-b", fmt.Sprintf("%dM", rate),
					"-l", "1200", "-t", secs, "-J", "--connect-timeout", "5000", "-w", "4M")
				lost, perr := iperfLoss(out)
				if err != nil || perr != nil {
					res.notes = append(res.notes, fmt.Sprintf("iperf3 -u %d Mbit/s over %s: %v %v", rate, name, err, perr))
					continue
				}
				res.add(fmt.Sprintf("udp %d Mbit/s: datagrams lost", rate), name, lost)
				if len(procs[name]) > 0 {
					res.add(fmt.Sprintf("udp %d Mbit/s: CPU", rate), name, cpuSeconds(procs[name]...)-cpu0)
				}
				res.add(fmt.Sprintf("udp %d Mbit/s: socket drops", rate), name, float64(udpSocketDrops(l)-drops0))
				time.Sleep(500 * time.Millisecond) // let the flows' queues drain
			}
		}
	}
}

// udpSocketDrops is the datagrams the kernel dropped at full UDP socket buffers (RcvbufErrors)
// on the hosts a udp flow crosses: iperf3's, the clients' and the server's sockets alike.
func udpSocketDrops(l *natlab.Lab) int64 {
	var total int64
	for _, host := range []string{"V1", "P1", "srv"} {
		out, err := l.Exec(host, "cat", "/proc/net/snmp")
		if err != nil {
			continue
		}
		var names []string
		for _, line := range strings.Split(out, "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 || fields[0] != "Udp:" {
				continue
			}
			if names == nil {
				names = fields
				continue
			}
			for i, f := range fields {
				if i < len(names) && names[i] == "RcvbufErrors" {
					n, _ := strconv.ParseInt(f, 10, 64)
					total += n
				}
			}
		}
	}
	return total
}

// iperfLoss reads the receiver's loss in percent from iperf3's JSON output.
func iperfLoss(out string) (float64, error) {
	var r struct {
		End struct {
			Sum struct {
				LostPercent float64 `json:"lost_percent"`
				Packets     int     `json:"packets"`
			} `json:"sum"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, fmt.Errorf("iperf3 output: %v: %.200s", err, out)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.Sum.Packets == 0 {
		return 0, fmt.Errorf("iperf3 sent nothing")
	}
	return r.End.Sum.LostPercent, nil
}

// iperfProviders publishes the iperf3 server: classic tcp+udp proxies on one remote port, and
// P2P services (frp: stcp + sudp; xp2p: a tcp and a udp xp2p service).
func (s system) iperfProviders() string {
	remote, p2pType, p2pUDP := xp2pIperf, "xp2p", `protocol = "udp"`+"\n"
	tcpP2P := "xp2p"
	if s.name == "frp" {
		remote, p2pType, p2pUDP, tcpP2P = frpIperf, "sudp", "", "stcp"
	}
	return fmt.Sprintf(`
[[proxies]]
name = "iperf-ctl"
type = "tcp"
localIP = "127.0.0.1"
localPort = %[1]d
remotePort = %[2]d

[[proxies]]
name = "iperf-udp"
type = "udp"
localIP = "127.0.0.1"
localPort = %[1]d
remotePort = %[2]d

[[proxies]]
name = "iperf-p2p-ctl"
type = %[5]q
secretKey = %[3]q
localIP = "127.0.0.1"
localPort = %[1]d

[[proxies]]
name = "iperf-p2p"
type = %[4]q
secretKey = %[3]q
localIP = "127.0.0.1"
localPort = %[1]d
%[6]s
`, iperfPort, remote, secret, p2pType, tcpP2P, p2pUDP)
}

// iperfVisitors binds the P2P iperf3 services on the visitor's host, tcp and udp on one port.
func (s system) iperfVisitors() string {
	port, p2pType, tcpP2P := xp2pIperfP2P, "xp2p", "xp2p"
	udp := `protocol = "udp"`
	if s.name == "frp" {
		port, p2pType, tcpP2P, udp = frpSUDPPort, "sudp", "stcp", ""
	}
	return fmt.Sprintf(`
[[visitors]]
name = "iperf-ctl-v"
type = %[4]q
serverName = "iperf-p2p-ctl"
secretKey = %[2]q
bindAddr = "127.0.0.1"
bindPort = %[1]d

[[visitors]]
name = "iperf-v"
type = %[3]q
serverName = "iperf-p2p"
secretKey = %[2]q
bindAddr = "127.0.0.1"
bindPort = %[1]d
%[5]s
`, port, secret, p2pType, tcpP2P, udp)
}

// udpTables is the udp section's table: datagrams lost at each rate, and the CPU the systems
// spent on it.
func udpTables(res *results) []*Table {
	u := &Table{Title: "8. udp: iperf3 -u, visitor host → provider host, plain lab links",
		Note: "Datagrams lost (%, the receiver's count), 1200-byte datagrams, 4 MiB socket buffers on iperf3's ends (-w), " + "both sides behind easy NATs on the lab's plain " +
			"links (no WAN emulator: it drops at these rates itself). direct UDP: the provider's NAT forwards the port. Classic: a udp " +
			"proxy through the server (iperf3's control over a tcp proxy on the same port); P2P: frp's sudp (control over stcp) and " +
			"an xp2p udp service (control over an xp2p tcp service). Socket drops: datagrams the kernel dropped at full UDP " +
			"socket buffers on the three hosts (iperf3's sockets among them). CPU: seconds of the system's processes during the run.",
		Columns: append([]string{"offered", "unit"}, udpSystems...)}
	for _, rate := range udpRates {
		for _, kind := range []struct{ row, unit string }{{"datagrams lost", "%"}, {"socket drops", "datagrams"}, {"CPU", "CPU-s"}} {
			row := fmt.Sprintf("udp %d Mbit/s: %s", rate, kind.row)
			cells := []string{fmt.Sprintf("%d Mbit/s: %s", rate, kind.row), kind.unit}
			for _, sys := range udpSystems {
				cells = append(cells, formatSample(res.get(row, sys)))
			}
			u.Add(cells...)
		}
	}
	return []*Table{u}
}
