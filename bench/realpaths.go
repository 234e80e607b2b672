//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
	"github.com/xp2p/xp2p/internal/natlab/wan"
)

// pathCase is one emulated wide-area path between the provider's and the visitor's NATs (package
// natlab/wan on each NAT's link to the WAN, and on the server's): the round trip between the
// two sides, direct or through the server alike, the random loss each way, and the rates of a
// home case.
type pathCase struct {
	key        string // for -pathcases
	name       string
	rtt        time.Duration
	loss       float64 // on the provider's link, each way: every path crosses it once
	providerUp float64 // bit/s of the provider's uplink (0: unlimited)
	serverRate float64 // bit/s of the server's link, each way (0: unlimited)
}

var pathCases = []pathCase{
	{key: "20ms", name: "20 ms, 0 %", rtt: 20 * time.Millisecond},
	{key: "20ms-loss", name: "20 ms, 0.5 %", rtt: 20 * time.Millisecond, loss: 0.005},
	{key: "80ms", name: "80 ms, 0 %", rtt: 80 * time.Millisecond},
	{key: "80ms-loss", name: "80 ms, 0.5 %", rtt: 80 * time.Millisecond, loss: 0.005},
	{key: "home", name: "home: 20 ms, provider up 50, server 20 Mbit/s", rtt: 20 * time.Millisecond, providerUp: 50e6, serverRate: 20e6},
}

// apply shapes the lab's links for the case: each side's link adds a quarter of the round trip
// each way.
func (c pathCase) apply(l *natlab.Lab) {
	q := c.rtt / 4
	l.SetLink("natP", natlab.Link{Up: wan.Shape{Delay: q, Loss: c.loss, Rate: c.providerUp}, Down: wan.Shape{Delay: q, Loss: c.loss}})
	l.SetLink("natV", natlab.Link{Up: wan.Shape{Delay: q}, Down: wan.Shape{Delay: q}})
	l.SetLink("srv", natlab.Link{Up: wan.Shape{Rate: c.serverRate}, Down: wan.Shape{Rate: c.serverRate}})
}

// The systems of the real-paths section, in the columns' order.
var pathSystems = []string{"direct TCP", "direct TCP cubic", "frp tcp", "xp2p tcp", "frp xtcp", "tailscale", "xp2p", "xp2p cubic"}

// xp2pCubic: a second xp2p provider and its visitors run with cubic as their TCP path's
// congestion control (XP2P_TCP_CONGESTION), to report both kernels' choices.
const (
	cubicEnv         = "XP2P_TCP_CONGESTION=cubic"
	xp2pCubicVisitor = 9003
)

// Ports of the section: the service behind the provider's NAT is also forwarded on the NAT
// (direct TCP through both NATs), once more with cubic as its congestion control.
const (
	cubicPort     = 9010
	iperfPort     = 5201
	frpIperf      = 6201 // classic tcp+udp proxies of iperf3, frp
	xp2pIperf     = 6202 // and xp2p
	frpSUDPPort   = 5301 // visitor ports of iperf3 over frp's sudp (+stcp for its control)
	xp2pIperfP2P  = 5302 // and over an xp2p udp service (+ a tcp one for its control)
	pathMaxSecond = 5    // default: seconds a throughput figure may take on a slow path
)

// realPaths measures the real-paths section: for every path case, each system's throughput up
// and down (256 MiB or pathSecs, whichever ends first), its CPU per GB moved (all its processes)
// and the time to the first byte of a new connection (P2P: of a fresh visitor's new session).
func realPaths(o *options, bins *binaries, p *progress) (*results, error) {
	res := newResults()
	err := run("real paths", o.logw, func(t *step) {
		l := natlab.New(t, natlab.Config{
			Sides:  []natlab.Side{{Name: "P", NAT: natlab.Easy, WAN: &natlab.Link{}}, {Name: "V", NAT: natlab.Easy, WAN: &natlab.Link{}}},
			Server: &natlab.Link{},
		})
		addServerAlt(t, l)
		serve(l, "P1", fmt.Sprintf("0.0.0.0:%d", servicePort))
		serveWith(l, "P1", fmt.Sprintf("0.0.0.0:%d", cubicPort), "cubic")
		l.NFT("natP", fmt.Sprintf(`table ip benchfwd {
  chain pre {
    type nat hook prerouting priority -101;
    iifname "wan0" tcp dport { %d, %d } dnat to %s
  }
}`, servicePort, cubicPort, l.IP("P1")))

		procs := map[string][]int{} // system → the pids whose CPU it costs
		providers := map[string]*natlab.Proc{}
		servers := map[string]*natlab.Proc{}
		for _, s := range o.systems(bins) {
			servers[s.name] = s.startServer(t, l)
			cfg := s.clientConfig("") + s.tcpProxies(1, s.remotePort()) + s.p2pProvider()
			providers[s.name] = s.startClient(t, l, "P1", s.name+"-provider", cfg)
		}
		cubicProvider := l.Start("P1", "xp2p-cubic-provider", "env", cubicEnv, bins.xp2p, "client", "-c", natlab.WriteFile(t, "xp2p-cubic-provider.toml",
			system{name: "xp2p"}.clientConfig("")+fmt.Sprintf("[[proxies]]\nname = \"p2pc\"\ntype = \"xp2p\"\nsecretKey = %q\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\n", secret, servicePort)))
		cubicProvider.WaitLog("logged in to server", 15*time.Second)
		time.Sleep(time.Second) // proxies and services registered
		var ts *tailnet
		var tsProvider *tsNode
		if bins.tailscaled != "" && listed(o.pathSystems, "tailscale") {
			ts = startTailnet(t, l, bins)
			tsProvider = ts.node(t, "P1", "ts-provider")
		}
		procs["frp tcp"] = []int{servers["frp"].PID(), providers["frp"].PID()}
		procs["xp2p tcp"] = []int{servers["xp2p"].PID(), providers["xp2p"].PID()}
		nat := l.NATIP("P")
		targets := map[string]dialer{
			"direct TCP":       {lab: l, host: "V1", addr: fmt.Sprintf("%s:%d", nat, servicePort)},
			"direct TCP cubic": {lab: l, host: "V1", addr: fmt.Sprintf("%s:%d", nat, cubicPort), cc: "cubic"},
			"frp tcp":          {lab: l, host: "V1", addr: fmt.Sprintf("%s:%d", natlab.ServerIP, frpRemote)},
			"xp2p tcp":         {lab: l, host: "V1", addr: fmt.Sprintf("%s:%d", natlab.ServerIP, xp2pRemote)},
		}
		reps := o.pathReps
		for _, pc := range pathCases {
			if !listed(o.pathCases, pc.key) {
				continue
			}
			pc.apply(l)
			limit := time.Duration(o.pathSecs) * time.Second
			for rep := range reps {
				for i := range pathSystems {
					name := pathSystems[(i+rep)%len(pathSystems)]
					if !listed(o.pathSystems, name) || name == "tailscale" && ts == nil {
						continue
					}
					p.set("real paths: %s, %s, rep %d/%d", pc.name, name, rep+1, reps)
					d, pids := targets[name], procs[name]
					var visitor *natlab.Proc
					var tsVisitor *tsNode
					switch name {
					case "tailscale":
						tsVisitor = ts.node(t, "V1", fmt.Sprintf("ts-visitor-%d", rep))
						peer := tsProvider.ip4(t)
						tsVisitor.waitPeer(t, peer)
						d = dialer{lab: l, host: "V1", addr: fmt.Sprintf("%s:%d", peer, servicePort)}
						pids = []int{ts.control.PID(), tsProvider.pid(), tsVisitor.pid()}
					case "frp xtcp", "xp2p":
						s := system{name: "xp2p", bins: bins}
						if name == "frp xtcp" {
							s.name = "frp"
						}
						visitor = s.startClient(t, l, "V1", fmt.Sprintf("%s-visitor-%d", s.name, rep), s.clientConfig("")+s.p2pVisitor())
						if s.name == "frp" {
							visitor.WaitLog("start visitor success", 10*time.Second)
						}
						d = dialer{lab: l, host: "V1", addr: s.visitorAddr()}
						pids = []int{servers[s.name].PID(), providers[s.name].PID(), visitor.PID()}
					case "xp2p cubic":
						s := system{name: "xp2p"}
						cfg := s.clientConfig("") + fmt.Sprintf("[[visitors]]\nname = \"vc\"\ntype = \"xp2p\"\nserverName = \"p2pc\"\nsecretKey = %q\nbindAddr = \"127.0.0.1\"\nbindPort = %d\n", secret, xp2pCubicVisitor)
						visitor = l.Start("V1", fmt.Sprintf("xp2p-cubic-visitor-%d", rep), "env", cubicEnv, bins.xp2p, "client", "-c", natlab.WriteFile(t, "xp2p-cubic-visitor.toml", cfg))
						visitor.WaitLog("logged in to server", 15*time.Second)
						d = dialer{lab: l, host: "V1", addr: fmt.Sprintf("127.0.0.1:%d", xp2pCubicVisitor)}
						pids = []int{servers["xp2p"].PID(), cubicProvider.PID(), visitor.PID()}
					}
					ttfb, err := d.firstByte()
					if err != nil {
						t.Fatalf("%s, %s: first byte: %v", pc.name, name, err)
					}
					res.add(pc.name+": time to first byte", name, ttfb)
					if tsVisitor != nil {
						if _, ok := tsVisitor.waitDirect(tsProvider.ip4(t), 15*time.Second); !ok {
							res.notes = append(res.notes, fmt.Sprintf("%s, tailscale rep %d: no direct path (DERP figures)", pc.name, rep+1))
						}
					}
					if visitor != nil {
						// Throughput is the direct path's: wait for it (frp's hole, or xp2p's lock).
						s := system{name: "xp2p"}
						if name == "frp xtcp" {
							s.name = "frp"
						}
						if s.path(visitor, 15*time.Second) != "direct" {
							res.notes = append(res.notes, fmt.Sprintf("%s, %s rep %d: no direct path (relayed figures)", pc.name, name, rep+1))
						}
						// xp2p's bulk streams take its direct TCP path, punched once the session is ready.
						for deadline := time.Now().Add(5 * time.Second); s.name == "xp2p" && visitor.Count("direct tcp path up") == 0; {
							if time.Now().After(deadline) {
								res.notes = append(res.notes, fmt.Sprintf("%s, %s rep %d: no direct TCP path (QUIC figures)", pc.name, name, rep+1))
								break
							}
							time.Sleep(50 * time.Millisecond)
						}
					}
					cpu0 := cpuSeconds(pids...)
					var moved float64
					for _, dir := range []string{"down", "up"} {
						g, bytes, err := d.timedThroughput(o.bytes, limit, dir == "up")
						if err != nil {
							t.Fatalf("%s, %s %s: %v", pc.name, name, dir, err)
						}
						res.add(pc.name+": "+dir, name, g*1000) // Mbit/s
						moved += float64(bytes)
					}
					if len(pids) > 0 && moved > 0 {
						res.add(pc.name+": CPU per GB", name, (cpuSeconds(pids...)-cpu0)/(moved/1e9))
					}
					if visitor != nil {
						visitor.Stop()
					}
					if tsVisitor != nil {
						tsVisitor.stop()
					}
				}
			}
		}
	})
	return res, err
}

// serveWith serves the bench protocol; cc, if set, is every accepted connection's congestion
// control (TCP_CONGESTION: the service's side sends the downloads).
func serveWith(l *natlab.Lab, host, addr, cc string) {
	ln := l.Listen(host, "tcp4", addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if cc != "" {
				setCongestion(c.(*net.TCPConn), cc)
			}
			go handle(c.(*net.TCPConn))
		}
	}()
}

func setCongestion(c *net.TCPConn, cc string) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CONGESTION, cc)
	})
	return serr
}

// timedThroughput moves up to total bytes on one connection, up or down, for at most limit, and
// returns Gbit/s and the bytes moved. Uploads are timed by the service (what it received, from
// its first byte), downloads by the user.
func (d dialer) timedThroughput(total int64, limit time.Duration, up bool) (float64, int64, error) {
	c, err := d.dial()
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if !up {
		req := make([]byte, 9)
		req[0] = 'D'
		binary.BigEndian.PutUint64(req[1:], uint64(total))
		if _, err := c.Write(req); err != nil {
			return 0, 0, err
		}
		var first [1]byte
		if _, err := io.ReadFull(c, first[:]); err != nil {
			return 0, 0, fmt.Errorf("download: %w", err)
		}
		start := time.Now()
		c.SetReadDeadline(start.Add(limit))
		got, err := io.CopyN(io.Discard, c, total-1)
		took := time.Since(start)
		if err != nil && !isTimeout(err) {
			return 0, 0, fmt.Errorf("download: %w after %d bytes", err, got)
		}
		return float64(got) * 8 / took.Seconds() / 1e9, got + 1, nil
	}
	req := make([]byte, 17)
	req[0] = 'R'
	binary.BigEndian.PutUint64(req[1:], uint64(total))
	binary.BigEndian.PutUint64(req[9:], uint64(limit))
	if _, err := c.Write(req); err != nil {
		return 0, 0, err
	}
	type reply struct {
		bytes, nanos uint64
		err          error
	}
	done := make(chan reply, 1)
	go func() {
		var r [16]byte
		_, err := io.ReadFull(c, r[:])
		done <- reply{binary.BigEndian.Uint64(r[:8]), binary.BigEndian.Uint64(r[8:]), err}
	}()
	for sent := int64(0); sent < total; {
		k := min(total-sent, int64(len(zeros)))
		if _, err := c.Write(zeros[:k]); err != nil {
			break // the service stopped reading: its answer says how much it got
		}
		sent += k
		select {
		case r := <-done:
			done <- r
			sent = total
		default:
		}
	}
	r := <-done
	if r.err != nil {
		return 0, 0, fmt.Errorf("upload: no count back: %w", r.err)
	}
	return float64(r.bytes) * 8 / (float64(r.nanos) / 1e9) / 1e9, int64(r.bytes), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pathRows lists the real-paths rows of one kind ("down", "up", "CPU per GB", "time to first
// byte") for every case.
func pathRows(kind string) []string {
	var rows []string
	for _, pc := range pathCases {
		rows = append(rows, pc.name+": "+kind)
	}
	return rows
}

// pathTables are the real-paths section's tables: throughput, CPU per GB, first byte, udp loss.
func pathTables(res *results) []*Table {
	med := func(row, sys string) float64 { return res.get(row, sys).Median() }
	cols := append([]string{"path", "unit"}, pathSystems...)
	cols = append(cols, "xp2p / direct TCP", "xp2p / frp xtcp", "xp2p / tailscale", "xp2p / xp2p tcp", "xp2p tcp / frp tcp")
	table := func(title, note, kind, unit string) *Table {
		t := &Table{Title: title, Note: note, Columns: cols}
		for _, row := range pathRows(kind) {
			cells := []string{row, unit}
			for _, sys := range pathSystems {
				cells = append(cells, formatSample(res.get(row, sys)))
			}
			cells = append(cells, formatRatio(Ratio(med(row, "xp2p"), med(row, "direct TCP"))),
				formatRatio(Ratio(med(row, "xp2p"), med(row, "frp xtcp"))), formatRatio(Ratio(med(row, "xp2p"), med(row, "tailscale"))),
				formatRatio(Ratio(med(row, "xp2p"), med(row, "xp2p tcp"))),
				formatRatio(Ratio(med(row, "xp2p tcp"), med(row, "frp tcp"))))
			t.Add(cells...)
		}
		return t
	}
	paths := "Both sides behind easy NATs whose links to the WAN each add a quarter of the round trip each way (the direct " +
		"path and the path through the server have the same round trip); the loss is on the provider's link, each way; " +
		"the home case caps the provider's uplink and the server's link. direct TCP: the service forwarded on the provider's " +
		"NAT, through both NATs (the kernel's default congestion control, bbr here; cubic: TCP_CONGESTION on both ends). " +
		"P2P: a fresh visitor each repetition, measured on its direct path (xp2p: its direct TCP path; xp2p cubic: the same with cubic on that path's sockets, XP2P_TCP_CONGESTION; " +
		"tailscale: a fresh tailscaled node with a TUN device, once the provider is in its map, its first connection; CPU: its control plane and both nodes)."
	out := []*Table{
		table("6. Real paths: one stream, throughput", paths+" Each figure: 256 MiB or the time limit, whichever ends first.", "down", "Mbit/s"),
		table("6b. Real paths: one stream, upload", "", "up", "Mbit/s"),
		table("6c. Real paths: CPU per GB moved (all the system's processes: server, provider, visitor)", "", "CPU per GB", "CPU-s/GB"),
		table("6d. Real paths: time to the first byte of a new connection (P2P: of a new session)", "", "time to first byte", "ms"),
	}
	return out
}

// pathSummary is the terminal's lines of the real-paths section.
func pathSummary(res *results) string {
	var b strings.Builder
	b.WriteString(" real paths (one stream down, Mbit/s: direct TCP / frp xtcp / xp2p; ratio xp2p / direct):\n")
	for _, row := range pathRows("down") {
		d, f, x := res.get(row, "direct TCP").Median(), res.get(row, "frp xtcp").Median(), res.get(row, "xp2p").Median()
		fmt.Fprintf(&b, "  %-52s %8s %8s %8s  %s\n", row, formatValue(d), formatValue(f), formatValue(x), formatRatio(Ratio(x, d)))
	}
	return b.String()
}
