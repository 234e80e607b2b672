//go:build linux

package labtest

import (
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// BenchmarkP2P measures P2P in easy × easy: time to first byte and to the direct path over 20
// fresh sessions (median), and the throughput of one stream on the direct path and through the
// relay, each against direct TCP through the same NAT in the same run, with the CPU the two
// clients spend per Gbit/s.
//
//	go test -run XXX -bench P2P -benchtime 1x ./internal/labtest
//
// XP2P_BENCH_NATS=sym,easy picks other NAT kinds (provider, visitor), XP2P_BENCH_SESSIONS the
// number of fresh sessions timed (0 skips them).
func BenchmarkP2P(b *testing.B) {
	provNAT, visNAT := natlab.Easy, natlab.Easy
	if kinds := os.Getenv("XP2P_BENCH_NATS"); kinds != "" {
		provNAT, visNAT, _ = strings.Cut(kinds, ",")
	}
	sessions := 20
	if n, err := strconv.Atoi(os.Getenv("XP2P_BENCH_SESSIONS")); err == nil {
		sessions = n
	}
	l := natlab.New(b, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: provNAT}, {Name: "V", NAT: visNAT}}})
	server := l.Start("srv", "server", natlab.Binary(b), "server", "-c", natlab.WriteFile(b, "server.toml", serverConfig))
	server.WaitLog("xp2p server listening", 10*time.Second)
	sink(b, l, "P1", "127.0.0.1:9000")
	sink(b, l, "srv", natlab.ServerIP+":9100")
	provider := l.Start("P1", "provider", natlab.Binary(b), "client", "-c", natlab.WriteFile(b, "p.toml", clientConfig("", `[[proxies]]
name = "sink"
type = "xp2p"
secretKey = "k"
localPort = 9000
[[proxies]]
name = "sink-relayed"
type = "stcp"
secretKey = "k"
localPort = 9000
`)))
	provider.WaitLog("xp2p service published.*sink-relayed|sink-relayed.*published", 15*time.Second)

	// Time to first byte and to direct: each iteration a new visitor process, first connection.
	var ttfb, toDirect []time.Duration
	for i := range sessions {
		v := l.Start("V1", "visitor-"+strconv.Itoa(i), natlab.Binary(b), "client", "-c", natlab.WriteFile(b, "v.toml", clientConfig("", `[[visitors]]
name = "v"
type = "xp2p"
serverName = "sink"
secretKey = "k"
bindPort = 9001
`)))
		v.WaitLog("logged in to server", 10*time.Second)
		start := time.Now()
		c, err := l.Dial("V1", "tcp4", visitorAddr, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c.Write([]byte{1})
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil { // the sink answers one byte
			b.Fatal(err)
		}
		ttfb = append(ttfb, time.Since(start))
		c.Close()
		line := v.WaitLog(`direct path locked.*role=visitor.*`, 10*time.Second)[0]
		d, err := time.ParseDuration(field(line, "time_to_direct"))
		if err != nil {
			b.Fatal(err)
		}
		toDirect = append(toDirect, d)
		v.Stop()
	}
	if sessions > 0 {
		b.ReportMetric(float64(median(ttfb).Microseconds())/1000, "ms_first_byte_p50")
		b.ReportMetric(float64(median(toDirect).Microseconds())/1000, "ms_to_direct_p50")
		b.Logf("time to first byte: median %s (min %s, max %s) over %d sessions; time to direct: median %s (min %s, max %s)",
			median(ttfb), ttfb[0], ttfb[len(ttfb)-1], sessions, median(toDirect), toDirect[0], toDirect[len(toDirect)-1])
	}

	visitor := l.Start("V1", "visitor", natlab.Binary(b), "client", "-c", natlab.WriteFile(b, "v2.toml", clientConfig("", `[[visitors]]
name = "direct"
type = "xp2p"
serverName = "sink"
secretKey = "k"
bindPort = 9001
[[visitors]]
name = "relayed"
type = "stcp"
serverName = "sink-relayed"
secretKey = "k"
bindPort = 9002
`)))
	visitor.WaitLog("logged in to server", 10*time.Second)
	const size = 512 << 20
	tcp := push(b, l, "V1", natlab.ServerIP+":9100", size, nil)
	push(b, l, "V1", "127.0.0.1:9001", 1<<20, nil) // opens the session; wait for its direct path
	visitor.WaitLog(`direct path locked.*role=visitor`, 30*time.Second)
	pids := []int{pidOf(provider), pidOf(visitor)}
	direct := push(b, l, "V1", "127.0.0.1:9001", size, pids)
	relayed := push(b, l, "V1", "127.0.0.1:9002", size/4, pids)
	b.ReportMetric(tcp.gbps, "tcp_Gbps")
	b.ReportMetric(direct.gbps, "direct_Gbps")
	b.ReportMetric(relayed.gbps, "relayed_Gbps")
	b.ReportMetric(direct.gbps/tcp.gbps, "direct_x_tcp")
	b.ReportMetric(relayed.gbps/tcp.gbps, "relayed_x_tcp")
	b.ReportMetric(direct.cpuPerGbps, "cpu_s_per_Gbit")
	b.Logf("one stream: direct TCP through the NAT %.2f Gbit/s; xp2p direct %.2f Gbit/s (%.2fx), relayed %.2f Gbit/s (%.2fx); CPU of both clients %.2f s per Gbit (direct), %.2f (relayed)",
		tcp.gbps, direct.gbps, direct.gbps/tcp.gbps, relayed.gbps, relayed.gbps/tcp.gbps, direct.cpuPerGbps, relayed.cpuPerGbps)
}

// sink accepts connections on addr in host: it answers the first byte with one byte, then reads
// everything.
func sink(t testing.TB, l *natlab.Lab, host, addr string) {
	ln := l.Listen(host, "tcp4", addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var one [1]byte
				if _, err := io.ReadFull(c, one[:]); err != nil {
					return
				}
				c.Write(one[:])
				io.Copy(io.Discard, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
}

type pushResult struct {
	gbps       float64
	cpuPerGbps float64 // CPU seconds of the given processes per Gbit moved
}

// push sends n bytes to a sink through addr and measures the rate (and the CPU of pids).
func push(b *testing.B, l *natlab.Lab, host, addr string, n int, pids []int) pushResult {
	c, err := l.Dial(host, "tcp4", addr, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{1})
	io.ReadFull(c, make([]byte, 1))
	buf := make([]byte, 256<<10)
	cpu0 := cpuSeconds(pids)
	start := time.Now()
	for sent := 0; sent < n; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c) // the sink closes once it has read everything
	elapsed := time.Since(start).Seconds()
	gbits := float64(n) * 8 / 1e9
	r := pushResult{gbps: gbits / elapsed}
	if len(pids) > 0 {
		r.cpuPerGbps = (cpuSeconds(pids) - cpu0) / gbits
	}
	return r
}

func pidOf(p *natlab.Proc) int { return p.PID() }

// cpuSeconds sums user and system time of processes (/proc/PID/stat, clock ticks of 100 Hz).
func cpuSeconds(pids []int) float64 {
	var total float64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseFloat(fields[11], 64)
		st, _ := strconv.ParseFloat(fields[12], 64)
		total += (ut + st) / 100
	}
	return total
}

func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}
