//go:build linux

// Command bench measures xp2p against frp and direct TCP in the NAT lab, in one run: the tcp
// proxy through the server (throughput, round trips, new connections, CPU, memory), P2P in
// easy × easy (time to first byte, time to direct, throughput), the NAT matrix of easy, open, sym, noudp and symseq NATs (who connects,
// directly or relayed), server memory per proxy, and faults (server and client crashes with
// 100 and 200 clients: recovery times, CPU, memory and idle cost per client). It writes a markdown report and SVG plots
// to a results folder and a summary to the terminal. Run as root (network namespaces):
//
//	go run ./bench [-quick] [-reps N] [-out bench/results]
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// options are the bench's settings.
type options struct {
	reps        int
	bytes       int64
	rtts        int
	connFor     time.Duration
	proxyCounts []int
	out         string
	logw        io.Writer
	only        string
	// faults: client counts, idle window and repetitions of the kills.
	faultClients []int
	faultIdle    time.Duration
	faultReps    int
	// real paths: seconds a throughput figure may take, and the quick run's fewer repetitions.
	pathSecs int
	pathReps int
	// tailscale: build Tailscale and measure it beside xp2p (p2p and real paths sections).
	tailscale bool
	// pathCases and pathSystems keep only these real-path cases and columns (keys, names;
	// empty: all).
	pathCases, pathSystems string
}

// systems are the implementations compared: frp first, so that xp2p never has a warm cache
// advantage in a section's first run.
func (o *options) systems(b *binaries) []system {
	return []system{{name: "frp", bins: b}, {name: "xp2p", bins: b}}
}

func main() {
	o := &options{}
	quick := flag.Bool("quick", false, "fewer repetitions and smaller transfers (about 3 minutes)")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of each figure")
	mib := flag.Int("mib", 256, "MiB moved by each throughput figure")
	flag.StringVar(&o.out, "out", "bench/results", "folder for results.md and the plots")
	verbose := flag.Bool("v", false, "log the lab's steps")
	flag.StringVar(&o.only, "only", "", "run only these sections (comma-separated: tcp,p2p,matrix,memory,faults,paths,web,udp)")
	flag.IntVar(&o.pathSecs, "pathsecs", pathMaxSecond, "real paths: the most seconds one throughput figure may take")
	flag.IntVar(&o.pathReps, "pathreps", 7, "real paths: repetitions of each TCP figure (P2P figures need 7 or more)")
	flag.BoolVar(&o.tailscale, "tailscale", true, "measure Tailscale "+tailscaleVersion+" too (built through the Go module proxy, with a control plane in the lab)")
	flag.StringVar(&o.pathCases, "pathcases", "", "real paths: only these cases (comma-separated: 20ms,20ms-loss,80ms,80ms-loss,home)")
	flag.StringVar(&o.pathSystems, "pathsystems", "", `real paths: only these columns (comma-separated names, e.g. "direct TCP,frp xtcp,xp2p")`)
	flag.Parse()
	o.rtts, o.connFor, o.proxyCounts = 2000, 2*time.Second, []int{1, 100, 1000}
	o.faultClients, o.faultIdle, o.faultReps = []int{100, 200}, 60*time.Second, 2
	if *quick {
		o.reps, *mib, o.rtts, o.connFor = 3, 64, 500, time.Second
		o.faultClients, o.faultIdle, o.faultReps = []int{100}, 20*time.Second, 1
		o.pathSecs, o.pathReps = 2, 3
	}
	o.bytes = int64(*mib) << 20
	if *verbose {
		o.logw = os.Stderr
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: the NAT lab needs root (network namespaces, nftables): run it as root")
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\nbench: interrupted, tearing the lab down")
		cleanupCurrent()
		os.Exit(130)
	}()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	os.Exit(benchmark(o))
}

func benchmark(o *options) int {
	p := newProgress(os.Stderr)
	defer p.done()
	started := time.Now()
	bins := &binaries{}
	cache, _ := os.UserCacheDir()
	cache = filepath.Join(cache, "xp2p-bench")
	p.set("building frp %s (go module proxy; cached in %s)", frpVersion, cache)
	dir, err := buildFRP(cache)
	if err != nil {
		p.done()
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	bins.frps, bins.frpc = filepath.Join(dir, "frps"), filepath.Join(dir, "frpc")
	var tsNote string
	if o.tailscale && (listed(o.only, "p2p") || listed(o.only, "paths")) {
		p.set("building tailscale %s (go module proxy; cached in %s)", tailscaleVersion, cache)
		if dir, err := buildTailscale(cache); err != nil {
			tsNote = fmt.Sprintf("Tailscale left out: %v", err)
		} else {
			bins.tailscaled, bins.tailscale, bins.tscontrol = filepath.Join(dir, "tailscaled"), filepath.Join(dir, "tailscale"), filepath.Join(dir, "tscontrol")
		}
	}
	p.set("building xp2p")
	if err := run("build", o.logw, func(t *step) { bins.xp2p = natlab.Binary(t) }); err != nil {
		p.done()
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}

	rep := &report{opts: o, started: started}
	if tsNote != "" {
		rep.notes = append(rep.notes, tsNote)
	}
	want := func(s string) bool { return listed(o.only, s) }
	if want("tcp") {
		rep.classic, rep.classicErr = classic(o, bins, p)
	}
	if want("p2p") {
		rep.p2p, rep.p2pErr = p2p(o, bins, p)
	}
	if want("matrix") {
		rep.matrix = matrix(o, bins, p)
	}
	if want("memory") {
		rep.memory, rep.memoryErr = memory(o, bins, p)
	}
	if want("faults") {
		rep.faults, rep.faultsErr = faults(o, bins, p)
	}
	if want("paths") {
		rep.paths, rep.pathsErr = realPaths(o, bins, p)
	}
	if want("web") {
		rep.web, rep.webErr = webVhost(o, bins, p)
	}
	if want("udp") {
		rep.udp, rep.udpErr = udpLoss(o, bins, p)
	}
	p.set("writing %s", o.out)
	md := rep.markdown()
	if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(md), 0o644); err != nil {
		p.done()
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	plotErr := rep.plots(o.out)
	p.done()
	fmt.Print(rep.summary())
	fmt.Printf("\nreport: %s (took %s)\n", filepath.Join(o.out, "results.md"), time.Since(started).Round(time.Second))
	if plotErr != nil {
		fmt.Fprintln(os.Stderr, "bench: plots:", plotErr)
	}
	if rep.failed() {
		return 1
	}
	return 0
}

// listed reports whether name is in the comma-separated list, or the list is empty.
func listed(list, name string) bool {
	return list == "" || strings.Contains(","+list+",", ","+name+",")
}

// progress keeps one status line on a terminal.
type progress struct {
	w     io.Writer
	mu    sync.Mutex
	start time.Time
	last  string
}

func newProgress(w io.Writer) *progress { return &progress{w: w, start: time.Now()} }

func (p *progress) set(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = fmt.Sprintf(format, args...)
	fmt.Fprintf(p.w, "\r\033[K[%s] %s", time.Since(p.start).Round(time.Second), p.last)
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\033[K")
}

// machine describes where the figures were measured.
func machine() string {
	model := ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
