//go:build linux

package main

import (
	"fmt"
	"math"
	"os"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// results collects samples by row and column.
type results struct {
	samples map[string]map[string]Sample // row → system → sample
	notes   []string
}

func newResults() *results { return &results{samples: map[string]map[string]Sample{}} }

func (r *results) add(row, sys string, v float64) {
	if r.samples[row] == nil {
		r.samples[row] = map[string]Sample{}
	}
	r.samples[row][sys] = append(r.samples[row][sys], v)
}

func (r *results) get(row, sys string) Sample { return r.samples[row][sys] }

// classicRows are the rows of section 1, with their unit and whether more is better.
var classicRows = []struct {
	name, unit string
	higher     bool
}{
	{"throughput, 1 stream, up", "Gbit/s", true},
	{"throughput, 1 stream, down", "Gbit/s", true},
	{"throughput, 8 streams, up", "Gbit/s", true},
	{"throughput, 8 streams, down", "Gbit/s", true},
	{"round trip p50 (32 B)", "µs", false},
	{"round trip p99 (32 B)", "µs", false},
	{"new connections", "conn/s", true},
	{"CPU per GB moved (server + client)", "CPU-s/GB", false},
	{"client RSS, idle", "MiB", false},
	{"client RSS, under load", "MiB", false},
	{"server RSS, idle", "MiB", false},
	{"server RSS, under load", "MiB", false},
}

// classic measures section 1: a tcp service behind an easy NAT published through the server
// by frp and by xp2p, and the same service reached by direct TCP on the server host, from a
// user on the public side.
func classic(o *options, bins *binaries, p *progress) (*results, error) {
	res := newResults()
	err := run("tcp proxy", o.logw, func(t *step) {
		l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "A", NAT: natlab.Easy}}})
		addServerAlt(t, l)
		serve(l, "A1", fmt.Sprintf("127.0.0.1:%d", servicePort))
		serve(l, "srv", fmt.Sprintf("%s:%d", natlab.ServerIP, servicePort))
		procs := map[string][2]int{} // system → server, client pid
		for _, s := range o.systems(bins) {
			srv := s.startServer(t, l)
			extra := ""
			if s.name == "xp2p" {
				// For experiments: xp2p client keys to try, e.g. "transport.poolCount = 8".
				extra = os.Getenv("XP2P_BENCH_CLIENT")
			}
			cli := s.startClient(t, l, "A1", s.name+"-client", s.clientConfig(extra)+s.tcpProxies(1, s.remotePort()))
			if s.name == "xp2p" {
				srv.WaitLog("proxy online", 10*time.Second)
			} else {
				cli.WaitLog("start proxy success", 10*time.Second)
			}
			procs[s.name] = [2]int{srv.PID(), cli.PID()}
		}
		targets := map[string]dialer{"direct TCP": {lab: l, host: "pub", addr: fmt.Sprintf("%s:%d", natlab.ServerIP, servicePort)}}
		for _, s := range o.systems(bins) {
			targets[s.name] = dialer{lab: l, host: "pub", addr: fmt.Sprintf("%s:%d", natlab.ServerIP, s.remotePort())}
		}
		order := []string{"direct TCP", "frp", "xp2p"}
		for name, d := range targets { // warm up: pools, first connections
			if _, err := d.throughput(1<<20, 1, false); err != nil {
				t.Fatalf("%s: warm-up: %v", name, err)
			}
		}
		for name, pids := range procs {
			res.add("client RSS, idle", name, rssMiB(pids[1]))
			res.add("server RSS, idle", name, rssMiB(pids[0]))
		}
		for rep := range o.reps {
			for i := range order {
				name := order[(i+rep)%len(order)] // rotate, so no system always runs first
				d, ok := targets[name]
				if !ok {
					continue
				}
				pids := procs[name]
				p.set("tcp proxy: %s, rep %d/%d", name, rep+1, o.reps)
				cpu0 := cpuSeconds(pids[0], pids[1])
				for _, dir := range []struct {
					up   bool
					name string
				}{{true, "up"}, {false, "down"}} {
					g, err := d.throughput(o.bytes, 1, dir.up)
					if err != nil {
						t.Fatalf("%s 1 stream %s: %v", name, dir.name, err)
					}
					res.add("throughput, 1 stream, "+dir.name, name, g)
				}
				if name != "direct TCP" {
					res.add("CPU per GB moved (server + client)", name, (cpuSeconds(pids[0], pids[1])-cpu0)/(2*float64(o.bytes)/1e9))
				}
				for _, dir := range []struct {
					up   bool
					name string
				}{{true, "up"}, {false, "down"}} {
					g, err := d.throughput(o.bytes, 8, dir.up)
					if err != nil {
						t.Fatalf("%s 8 streams %s: %v", name, dir.name, err)
					}
					res.add("throughput, 8 streams, "+dir.name, name, g)
				}
				if name != "direct TCP" {
					res.add("client RSS, under load", name, rssMiB(pids[1]))
					res.add("server RSS, under load", name, rssMiB(pids[0]))
				}
				rtts, err := d.rtt(o.rtts)
				if err != nil {
					t.Fatalf("%s round trips: %v", name, err)
				}
				p50, p99 := percentiles(rtts)
				res.add("round trip p50 (32 B)", name, p50)
				res.add("round trip p99 (32 B)", name, p99)
				rate, err := d.connRate(o.connFor)
				if err != nil {
					t.Fatalf("%s connections: %v", name, err)
				}
				res.add("new connections", name, rate)
			}
		}
	})
	return res, err
}

// p2pRows are the rows of section 2.
var p2pRows = []struct {
	name, unit string
	higher     bool
}{
	{"time to first byte (new session)", "ms", false},
	{"time to direct path", "ms", false},
	{"throughput, 1 stream, down", "Gbit/s", true},
	{"throughput, 1 stream, up", "Gbit/s", true},
	{"CPU per GB moved (server, provider, visitor)", "CPU-s/GB", false},
	{"round trip p50 (32 B)", "µs", false},
}

// p2p measures section 2 in easy × easy: each repetition starts a fresh visitor, so that
// every first byte opens a new session.
func p2p(o *options, bins *binaries, p *progress) (*results, error) {
	res := newResults()
	err := run("p2p easy×easy", o.logw, func(t *step) {
		l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}}})
		addServerAlt(t, l)
		serve(l, "P1", fmt.Sprintf("127.0.0.1:%d", servicePort))
		serve(l, "srv", fmt.Sprintf("%s:%d", natlab.ServerIP, servicePort))
		systems := o.systems(bins)
		pids := map[string][]int{} // server and provider
		for _, s := range systems {
			pids[s.name] = []int{s.startServer(t, l).PID()}
		}
		// frp's xtcp needs the xp2p server's STUN service even when only frp runs.
		for _, s := range systems {
			pids[s.name] = append(pids[s.name], s.startClient(t, l, "P1", s.name+"-provider", s.clientConfig("")+s.p2pProvider()).PID())
		}
		var ts *tailnet
		var tsProvider *tsNode
		if bins.tailscaled != "" {
			serve(l, "P1", fmt.Sprintf("0.0.0.0:%d", tsServicePort))
			ts = startTailnet(t, l, bins)
			tsProvider = ts.node(t, "P1", "ts-provider")
		}
		time.Sleep(500 * time.Millisecond) // services registered
		direct := dialer{lab: l, host: "V1", addr: fmt.Sprintf("%s:%d", natlab.ServerIP, servicePort)}
		for rep := range o.reps {
			for i := range systems {
				s := systems[(i+rep)%len(systems)]
				p.set("p2p easy×easy: %s, rep %d/%d", s.name, rep+1, o.reps)
				v := s.startClient(t, l, "V1", fmt.Sprintf("%s-visitor-%d", s.name, rep), s.clientConfig("")+s.p2pVisitor())
				if s.name == "frp" {
					v.WaitLog("start visitor success", 10*time.Second)
				}
				d := dialer{lab: l, host: "V1", addr: s.visitorAddr()}
				dialed := time.Now()
				ttfb, err := d.firstByte()
				if err != nil {
					t.Fatalf("%s first byte: %v", s.name, err)
				}
				res.add("time to first byte (new session)", s.name, ttfb)
				path := s.path(v, 3*time.Second)
				if s.name == "xp2p" {
					if ms, ok := timeToDirect(v); ok {
						res.add("time to direct path", s.name, ms)
					}
				} else if at, ok := frpHoleTime(v); ok {
					res.add("time to direct path", s.name, float64(at.Sub(dialed).Microseconds())/1e3)
				}
				if path != "direct" {
					res.notes = append(res.notes, fmt.Sprintf("%s rep %d: the session stayed relayed in easy × easy", s.name, rep+1))
				}
				// xp2p's bulk streams take its direct TCP path, punched once the session is ready.
				for deadline := time.Now().Add(3 * time.Second); s.name == "xp2p" && v.Count("direct tcp path up") == 0; {
					if time.Now().After(deadline) {
						res.notes = append(res.notes, fmt.Sprintf("xp2p rep %d: no direct TCP path (QUIC figures)", rep+1))
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				p2pFigures(t, o, res, s.name, d, append(append([]int(nil), pids[s.name]...), v.PID()))
				v.Stop()
			}
			if ts != nil {
				p.set("p2p easy×easy: tailscale, rep %d/%d", rep+1, o.reps)
				tailscaleP2P(t, o, res, ts, tsProvider, rep)
			}
			p.set("p2p easy×easy: direct TCP baseline, rep %d/%d", rep+1, o.reps)
			for _, dir := range []struct {
				up   bool
				name string
			}{{false, "down"}, {true, "up"}} {
				g, err := direct.throughput(o.bytes, 1, dir.up)
				if err != nil {
					t.Fatalf("direct TCP %s: %v", dir.name, err)
				}
				res.add("throughput, 1 stream, "+dir.name, "direct TCP", g)
			}
			if ms, err := direct.firstByte(); err == nil {
				res.add("time to first byte (new session)", "direct TCP", ms)
			}
			rtts, err := direct.rtt(o.rtts)
			if err == nil {
				p50, _ := percentiles(rtts)
				res.add("round trip p50 (32 B)", "direct TCP", p50)
			}
		}
	})
	return res, err
}

// tailscaleP2P measures one repetition of section 2 for Tailscale: a fresh visitor node, its
// first connection to the provider (time to first byte and to the direct path), then the
// figures on its direct path.
func tailscaleP2P(t *step, o *options, res *results, ts *tailnet, provider *tsNode, rep int) {
	v := ts.node(t, "V1", fmt.Sprintf("ts-visitor-%d", rep))
	defer v.stop()
	peer := provider.ip4(t)
	v.waitPeer(t, peer)
	d := dialer{lab: ts.l, host: "V1", addr: fmt.Sprintf("%s:%d", peer, tsServicePort)}
	dialed := time.Now()
	ttfb, err := d.firstByte()
	if err != nil {
		t.Fatalf("tailscale first byte: %v", err)
	}
	res.add("time to first byte (new session)", "tailscale", ttfb)
	if at, ok := v.waitDirect(peer, 15*time.Second); ok {
		res.add("time to direct path", "tailscale", float64(at.Sub(dialed).Microseconds())/1e3)
	} else {
		res.notes = append(res.notes, fmt.Sprintf("tailscale rep %d: no direct path in easy × easy (DERP figures)", rep+1))
	}
	p2pFigures(t, o, res, "tailscale", d, []int{ts.control.PID(), provider.pid(), v.pid()})
}

// p2pFigures measures a P2P session's figures of section 2 on its direct path: one stream down
// and up, the CPU that procs spent per GB of it, and the round trip of small messages.
func p2pFigures(t *step, o *options, res *results, name string, d dialer, procs []int) {
	cpu0 := cpuSeconds(procs...)
	for _, dir := range []struct {
		up   bool
		name string
	}{{false, "down"}, {true, "up"}} {
		g, err := d.throughput(o.bytes, 1, dir.up)
		if err != nil {
			t.Fatalf("%s p2p %s: %v", name, dir.name, err)
		}
		res.add("throughput, 1 stream, "+dir.name, name, g)
	}
	res.add("CPU per GB moved (server, provider, visitor)", name, (cpuSeconds(procs...)-cpu0)/(2*float64(o.bytes)/1e9))
	rtts, err := d.rtt(o.rtts)
	if err != nil {
		t.Fatalf("%s p2p round trips: %v", name, err)
	}
	p50, _ := percentiles(rtts)
	res.add("round trip p50 (32 B)", name, p50)
}

// matrixKinds are the NAT kinds of section 3, on each side.
var matrixKinds = []string{natlab.Easy, natlab.Open, natlab.Sym, natlab.NoUDP, natlab.SymSeq}

// matrixCell is one system's outcome for one NAT pair.
type matrixCell struct {
	connected bool
	path      string
	ms        float64
	err       string
}

// matrix runs section 3: every pair of NAT kinds, a fresh lab each, both systems in it.
func matrix(o *options, bins *binaries, p *progress) map[[2]string]map[string]matrixCell {
	out := map[[2]string]map[string]matrixCell{}
	n := 0
	for _, prov := range matrixKinds {
		for _, vis := range matrixKinds {
			n++
			pair := [2]string{prov, vis}
			out[pair] = map[string]matrixCell{}
			err := run("matrix "+prov+"×"+vis, o.logw, func(t *step) {
				l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: prov}, {Name: "V", NAT: vis}}})
				addServerAlt(t, l)
				serve(l, "P1", fmt.Sprintf("127.0.0.1:%d", servicePort))
				systems := o.systems(bins)
				for _, s := range systems {
					s.startServer(t, l)
				}
				for _, s := range systems {
					s.startClient(t, l, "P1", s.name+"-provider", s.clientConfig("")+s.p2pProvider())
				}
				time.Sleep(300 * time.Millisecond)
				for _, s := range systems {
					p.set("NAT matrix %d/%d: %s × %s, %s", n, len(matrixKinds)*len(matrixKinds), prov, vis, s.name)
					cell := matrixCell{path: "—", ms: math.NaN()}
					v := s.startClient(t, l, "V1", s.name+"-visitor", s.clientConfig("")+s.p2pVisitor())
					if s.name == "frp" {
						v.WaitLog("start visitor success", 10*time.Second)
					}
					d := dialer{lab: l, host: "V1", addr: s.visitorAddr()}
					ms, err := d.firstByte()
					if err != nil {
						cell.err = err.Error()
					} else {
						cell.connected, cell.ms = true, ms
						cell.path = s.path(v, 8*time.Second) // xp2p may move to direct once both NATs are measured
					}
					out[pair][s.name] = cell
					v.Stop()
				}
			})
			if err != nil {
				for _, s := range o.systems(bins) {
					if _, ok := out[pair][s.name]; !ok {
						out[pair][s.name] = matrixCell{path: "—", ms: math.NaN(), err: err.Error()}
					}
				}
			}
		}
	}
	return out
}

// memory measures section 4: the server's RSS with 1, 100 and 1000 classic proxies of one
// client (idle), for each system, with a fresh server each repetition.
func memory(o *options, bins *binaries, p *progress) (*results, error) {
	res := newResults()
	err := run("memory", o.logw, func(t *step) {
		l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "A", NAT: natlab.Easy}}})
		addServerAlt(t, l)
		serve(l, "A1", fmt.Sprintf("127.0.0.1:%d", servicePort))
		for rep := range o.reps {
			for _, s := range o.systems(bins) {
				memoryOnce(t, l, s, o, res, p, rep)
			}
		}
	})
	return res, err
}

func memoryOnce(t *step, l *natlab.Lab, s system, o *options, res *results, p *progress, rep int) {
	srv := s.startServer(t, l)
	defer srv.Stop()
	time.Sleep(300 * time.Millisecond)
	res.add("server RSS, no proxy", s.name, rssMiB(srv.PID()))
	for _, n := range o.proxyCounts {
		p.set("memory: %s server with %d proxies, rep %d/%d", s.name, n, rep+1, o.reps)
		base := 20000
		if s.name == "frp" {
			base = 30000
		}
		online := srv.Count("proxy online")
		cli := s.startClient(t, l, "A1", fmt.Sprintf("%s-client-%d-%d", s.name, n, rep), s.clientConfig("")+s.tcpProxies(n, base))
		deadline := time.Now().Add(60 * time.Second)
		for {
			got := srv.Count("proxy online") - online
			if s.name == "frp" {
				got = cli.Count("start proxy success")
			}
			if got >= n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d proxies up after 60 s", s.name, got, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Second) // settle
		res.add(fmt.Sprintf("server RSS, %d proxies", n), s.name, rssMiB(srv.PID()))
		res.add(fmt.Sprintf("client RSS, %d proxies", n), s.name, rssMiB(cli.PID()))
		gone := srv.Count("client disconnected")
		cli.Stop()
		// The next client's ports must be free again: wait until the server let these go.
		for s.name == "xp2p" && srv.Count("client disconnected") == gone && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
