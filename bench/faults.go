//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// The faults section: N clients of 2 tcp proxies each (spread over four hosts behind four easy
// NATs, so that they do not all share one source address), a user on the public side probing
// every public port. Figures: how long until every port works after the clients start; the
// server killed with SIGKILL and started again at once (the time until 50, 90 and 100 % of
// the ports work again, the new server's CPU until then); the server's memory per client and
// CPU while idle; a client killed with SIGKILL (how long its ports keep accepting users it can
// no longer serve, and how long until another client that asks for those ports gets them).

// faultSides are the NATs the clients sit behind.
var faultSides = []string{"A", "B", "C", "D"}

// faultRows are the section's rows, with their unit.
var faultRows = []struct{ name, unit string }{
	{"all 2N ports online after start", "s"},
	{"server restart: 50 % of ports back", "s"},
	{"server restart: 90 % of ports back", "s"},
	{"server restart: 100 % of ports back", "s"},
	{"server CPU from restart to 100 %", "CPU-s"},
	{"clients' CPU from restart to 100 %", "CPU-s"},
	{"server RSS per client (idle)", "KiB"},
	{"server CPU per minute idle", "CPU-s"},
	{"client RSS (idle, median)", "MiB"},
	{"client CPU per minute idle (sum of all)", "CPU-s"},
	{"client killed: its ports refuse users", "s"},
	{"client killed: another client gets its ports", "s"},
}

// Port bases of the clients' proxies: client i publishes base+2i and base+2i+1.
const (
	xp2pFaultBase = 20000
	frpFaultBase  = 40000
)

// faultProbeDeadline bounds every wait of the section for ports.
const faultProbeDeadline = 60 * time.Second

// faultRow is the results key of a row for n clients.
func faultRow(row string, n int) string { return fmt.Sprintf("%s|N=%d", row, n) }

// faults measures the section for every client count, frp and xp2p each on their own (the other
// system's processes are stopped meanwhile).
func faults(o *options, bins *binaries, p *progress) (*results, error) {
	res := newResults()
	err := run("faults", o.logw, func(t *step) {
		var sides []natlab.Side
		for _, s := range faultSides {
			sides = append(sides, natlab.Side{Name: s, NAT: natlab.Easy})
		}
		l := natlab.New(t, natlab.Config{Sides: sides})
		addServerAlt(t, l)
		for _, s := range faultSides {
			serve(l, s+"1", fmt.Sprintf("127.0.0.1:%d", servicePort))
		}
		for _, n := range o.faultClients {
			for _, s := range o.systems(bins) {
				faultsOnce(t, l, s, n, o, res, p)
			}
		}
	})
	return res, err
}

// faultClient is one client process of the section and the ports it publishes.
type faultClient struct {
	proc  *natlab.Proc
	side  string
	ports []int
}

func faultsOnce(t *step, l *natlab.Lab, s system, n int, o *options, res *results, p *progress) {
	base := xp2pFaultBase
	if s.name == "frp" {
		base = frpFaultBase
	}
	add := func(row string, v float64) { res.add(faultRow(row, n), s.name, v) }
	srv := s.startServer(t, l)
	defer func() { srv.Stop() }()
	time.Sleep(300 * time.Millisecond)
	rssEmpty := rssMiB(srv.PID())

	// Start: every client at once, as after a power cut of their site.
	p.set("faults: %s, %d clients starting", s.name, n)
	clients := make([]*faultClient, n)
	start := time.Now()
	for i := range clients {
		clients[i] = startFaultClient(t, l, s, fmt.Sprintf("c%d", i), faultSides[i%len(faultSides)], base+2*i)
	}
	defer func() {
		for _, c := range clients {
			c.proc.Stop()
		}
	}()
	var all []int
	for _, c := range clients {
		all = append(all, c.ports...)
	}
	back := watchPorts(l, all, start, faultProbeDeadline, servesUsers)
	add("all 2N ports online after start", percentileOf(back, len(all), 100))
	if len(back) < len(all) {
		res.notes = append(res.notes, fmt.Sprintf("%s N=%d: %d of %d ports online %s after start", s.name, n, len(back), len(all), faultProbeDeadline))
	}

	if s.name == "xp2p" {
		// "auto" falls back to TCP when a QUIC handshake takes over a second: on a loaded
		// machine some do, and a TCP session costs the server more (TLS, yamux, a relay stream).
		if n := srv.Count(`client logged in.* transport=tcp`); n > 0 {
			res.notes = append(res.notes, fmt.Sprintf("xp2p N=%d: %d clients logged in over TCP at start (their QUIC handshake took over a second)", len(clients), n))
		}
	}

	// Idle.
	time.Sleep(5 * time.Second)
	p.set("faults: %s, %d clients idle for %s", s.name, n, o.faultIdle)
	pids := make([]int, n)
	for i, c := range clients {
		pids[i] = c.proc.PID()
	}
	srvCPU, cliCPU := cpuNanos(srv.PID()), cpuNanos(pids...)
	time.Sleep(o.faultIdle)
	perMinute := time.Minute.Seconds() / o.faultIdle.Seconds()
	add("server CPU per minute idle", float64(cpuNanos(srv.PID())-srvCPU)/1e9*perMinute)
	add("client CPU per minute idle (sum of all)", float64(cpuNanos(pids...)-cliCPU)/1e9*perMinute)
	add("server RSS per client (idle)", (rssMiB(srv.PID())-rssEmpty)*1024/float64(n))
	var rss Sample
	for _, pid := range pids {
		rss = append(rss, rssMiB(pid))
	}
	add("client RSS (idle, median)", rss.Median())

	// Server crash and immediate restart.
	for rep := range o.faultReps {
		p.set("faults: %s, %d clients, server kill -9 and restart %d/%d", s.name, n, rep+1, o.faultReps)
		cli0 := cpuSeconds(pids...)
		srv.Kill()
		killed := time.Now()
		srv = s.startServer(t, l)
		back := watchPorts(l, all, killed, faultProbeDeadline, servesUsers)
		add("server CPU from restart to 100 %", cpuSeconds(srv.PID()))
		add("clients' CPU from restart to 100 %", cpuSeconds(pids...)-cli0)
		for _, pct := range []float64{50, 90, 100} {
			add(fmt.Sprintf("server restart: %.0f %% of ports back", pct), percentileOf(back, len(all), pct))
		}
		if len(back) < len(all) {
			res.notes = append(res.notes, fmt.Sprintf("%s N=%d restart %d: %d of %d ports back within %s", s.name, n, rep+1, len(back), len(all), faultProbeDeadline))
		}
		time.Sleep(3 * time.Second)
	}

	// A client dies: how long its ports still take users, then how long until another client
	// that wants the same ports gets them.
	p.set("faults: %s, %d clients, a client killed", s.name, n)
	victim := clients[0]
	victim.proc.Kill()
	refused := watchPorts(l, victim.ports, time.Now(), 40*time.Second, refusesUsers)
	add("client killed: its ports refuse users", percentileOf(refused, len(victim.ports), 100))
	for rep := range o.faultReps {
		p.set("faults: %s, %d clients, a client killed and its ports wanted %d/%d", s.name, n, rep+1, o.faultReps)
		victim := clients[1+rep]
		victim.proc.Kill()
		killed := time.Now()
		taker := startFaultClient(t, l, s, fmt.Sprintf("taker%d", rep), victim.side, victim.ports[0])
		clients = append(clients, taker)
		got := watchPorts(l, victim.ports, killed, 40*time.Second, servesUsers)
		add("client killed: another client gets its ports", percentileOf(got, len(victim.ports), 100))
		if len(got) < len(victim.ports) {
			res.notes = append(res.notes, fmt.Sprintf("%s N=%d: the client that asked for a dead client's ports got %d of 2 in 40 s; its last lines: %s",
				s.name, n, len(got), truncate(strings.ReplaceAll(lastLines(taker.proc.Output(), 3), "\n", " / "), 400)))
		}
	}
}

// lastLines returns the last n lines of a process's output.
func lastLines(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// startFaultClient starts a client (named name: its proxies are name-a and name-b) behind
// side's NAT, publishing ports port and port+1.
func startFaultClient(t *step, l *natlab.Lab, s system, name, side string, port int) *faultClient {
	var b strings.Builder
	for i, suffix := range []string{"a", "b"} {
		fmt.Fprintf(&b, "[[proxies]]\nname = \"%s-%s\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\nremotePort = %d\n\n", name, suffix, servicePort, port+i)
	}
	host := side + "1"
	cfg := natlab.WriteFile(t, s.name+"-"+name+".toml", s.clientConfig("")+b.String())
	var proc *natlab.Proc
	if s.name == "xp2p" {
		proc = l.Start(host, s.name+"-"+name, s.bins.xp2p, "client", "-c", cfg)
	} else {
		proc = l.Start(host, s.name+"-"+name, s.bins.frpc, "-c", cfg)
	}
	return &faultClient{proc: proc, side: side, ports: []int{port, port + 1}}
}

// probeOutcome is what one user connection to a public port found.
type probeOutcome int

const (
	probeServes  probeOutcome = iota // the service echoed a byte
	probeRefused                     // the connection was refused: nothing listens
	probeFailed                      // accepted, but no answer (reset, closed or silent)
)

func servesUsers(o probeOutcome) bool  { return o == probeServes }
func refusesUsers(o probeOutcome) bool { return o == probeRefused }

// probeWorkers is how many user connections the prober has open at once.
const probeWorkers = 16

// watchPorts probes ports from the public host until want holds for each (or until deadline
// after from) and returns, per port, when it first held, as an offset from from.
func watchPorts(l *natlab.Lab, ports []int, from time.Time, deadline time.Duration, want func(probeOutcome) bool) map[int]time.Duration {
	var mu sync.Mutex
	got := map[int]time.Duration{}
	var wg sync.WaitGroup
	for w := range probeWorkers {
		var mine []int
		for i := w; i < len(ports); i += probeWorkers {
			mine = append(mine, ports[i])
		}
		if len(mine) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Sockets made on this thread live in the public host's namespace.
			l.In("pub", func() error {
				for len(mine) > 0 && time.Since(from) < deadline {
					left := mine[:0]
					for _, port := range mine {
						if want(probePort(port)) {
							mu.Lock()
							got[port] = time.Since(from)
							mu.Unlock()
							continue
						}
						left = append(left, port)
					}
					mine = left
					if len(mine) > 0 {
						time.Sleep(10 * time.Millisecond)
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	return got
}

// probePort is one user connection through a public port of the server: an echoed byte within
// half a second counts as served.
func probePort(port int) probeOutcome {
	c, err := net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", natlab.ServerIP, port), 500*time.Millisecond)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return probeRefused
		}
		return probeFailed
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte{'E', 'x'}); err != nil {
		return probeFailed
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'x' {
		return probeFailed
	}
	return probeServes
}

// percentileOf is the time by which pct % of total ports had got there, in seconds; NaN if
// fewer did.
func percentileOf(times map[int]time.Duration, total int, pct float64) float64 {
	need := int(math.Ceil(pct / 100 * float64(total)))
	if need == 0 || len(times) < need {
		return math.NaN()
	}
	v := make([]time.Duration, 0, len(times))
	for _, d := range times {
		v = append(v, d)
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[need-1].Seconds()
}
