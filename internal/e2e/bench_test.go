package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// Benchmarks of the classic tcp proxy against direct TCP to the same local service, measured in
// the same run (and interleaved, so that both see the same machine load). Run with
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/e2e
//
// Each reports the proxy's figure, the direct figure and their ratio (x_direct).

// sinkHandler reads until the end of input and answers with the byte count (8 bytes).
func sinkHandler(c *net.TCPConn) {
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	c.Write(b[:])
	c.CloseWrite()
}

// sendBulk sends size bytes to a sink at addr and returns how long until the sink confirmed them.
func sendBulk(b *testing.B, addr string, size int64, chunk []byte) time.Duration {
	b.Helper()
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for left := size; left > 0; {
		n := min(left, int64(len(chunk)))
		if _, err := c.Write(chunk[:n]); err != nil {
			b.Fatal(err)
		}
		left -= n
	}
	c.(*net.TCPConn).CloseWrite()
	var got [8]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		b.Fatal(err)
	}
	if n := int64(binary.BigEndian.Uint64(got[:])); n != size {
		b.Fatalf("sink got %d bytes, want %d", n, size)
	}
	return time.Since(start)
}

// benchPaths are the ways a user connection can travel through the proxy: a pooled TLS-over-TCP
// work connection (the default), or a stream of the client's QUIC or TLS+yamux session.
var benchPaths = []struct{ name, transport, top string }{
	{"pool", "quic", ""},
	{"quic-stream", "quic", "transport.poolCount = -1"},
	{"yamux-stream", "tcp", "transport.poolCount = -1"},
}

// benchSetup starts a server, a client of the given transport and the local services.
func benchSetup(b *testing.B, transport, top string) (sinkDirect, sinkProxy, echoDirect, echoProxy string) {
	b.Helper()
	srv := startServer(b, "")
	sink := startTCPService(b, sinkHandler)
	echo := startTCPService(b, echoHandler)
	c := startClient(b, clientHeader(srv.Port(), testToken, `transport.protocol = "`+transport+`"`+"\n"+top)+
		tcpProxy("sink", sink.Port(), 0)+tcpProxy("echo", echo.Port(), 0))
	sp, ep := waitRunning(b, c, "sink"), waitRunning(b, c, "echo")
	if got := c.Transport(); got != transport {
		b.Fatalf("transport %q, want %q", got, transport)
	}
	return sink.Addr(), sp, echo.Addr(), ep
}

// BenchmarkTCPProxyThroughput moves one stream of 256 MiB (32 MiB with -short) one way.
func BenchmarkTCPProxyThroughput(b *testing.B) {
	size := int64(256 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	chunk := make([]byte, 256<<10)
	io.ReadFull(seeded(7), chunk)
	for _, p := range benchPaths {
		b.Run(p.name, func(b *testing.B) {
			sinkDirect, sinkProxy, _, _ := benchSetup(b, p.transport, p.top)
			sendBulk(b, sinkProxy, 8<<20, chunk) // warm up: windows, buffers
			var direct, proxied time.Duration
			b.ResetTimer()
			for range b.N {
				direct += sendBulk(b, sinkDirect, size, chunk)
				proxied += sendBulk(b, sinkProxy, size, chunk)
			}
			mb := float64(size) / (1 << 20) * float64(b.N)
			b.ReportMetric(mb/proxied.Seconds(), "MiB/s")
			b.ReportMetric(mb/direct.Seconds(), "direct_MiB/s")
			b.ReportMetric(direct.Seconds()/proxied.Seconds(), "x_direct")
		})
	}
}

// pingPong makes rounds round trips of size-byte messages on c and returns the mean.
func pingPong(b *testing.B, c net.Conn, msg, buf []byte, rounds int) time.Duration {
	start := time.Now()
	for range rounds {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start) / time.Duration(rounds)
}

// BenchmarkTCPProxyLatency measures the round trip of small messages on an open connection.
func BenchmarkTCPProxyLatency(b *testing.B) {
	for _, p := range benchPaths {
		for _, size := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/%dB", p.name, size), func(b *testing.B) {
				_, _, echoDirect, echoProxy := benchSetup(b, p.transport, p.top)
				direct, err := net.Dial("tcp", echoDirect)
				if err != nil {
					b.Fatal(err)
				}
				defer direct.Close()
				proxied, err := net.Dial("tcp", echoProxy)
				if err != nil {
					b.Fatal(err)
				}
				defer proxied.Close()
				msg, buf := make([]byte, size), make([]byte, size)
				pingPong(b, proxied, msg, buf, 200) // warm up
				pingPong(b, direct, msg, buf, 200)
				const rounds = 500
				var d, p time.Duration
				b.ResetTimer()
				for range b.N {
					d += pingPong(b, direct, msg, buf, rounds)
					p += pingPong(b, proxied, msg, buf, rounds)
				}
				b.ReportMetric(float64(p)/1e3/float64(b.N), "us/rtt")
				b.ReportMetric(float64(d)/1e3/float64(b.N), "direct_us/rtt")
				b.ReportMetric(float64(p)/float64(d), "x_direct")
			})
		}
	}
}

// heapNow returns the live heap plus goroutine stacks, and the number of goroutines, after
// garbage collection.
func heapNow() (heap uint64, goroutines int) {
	for range 3 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse, runtime.NumGoroutine()
}

// BenchmarkIdleProxyMemory registers 500 idle tcp proxies of one client and measures the memory
// (heap and goroutine stacks) and goroutines they cost (server and client sides together: both run in this process),
// against plain TCP listeners with an accept goroutine each.
func BenchmarkIdleProxyMemory(b *testing.B) {
	const n, listeners = 500, 1000
	// Direct: what a bare listening port costs, measured once before any xp2p work so that the
	// leftovers of earlier iterations do not blur it.
	h0, _ := heapNow()
	var lns []net.Listener
	done := make(chan struct{}, listeners)
	for range listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns = append(lns, ln)
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	h1, _ := heapNow()
	for _, ln := range lns {
		ln.Close()
	}
	for range listeners {
		<-done
	}
	perListener := float64(int64(h1)-int64(h0)) / listeners

	var perProxy, gPerProxy float64
	for range b.N {
		srv := startServer(b, "")
		echo := startTCPService(b, echoHandler)
		conf := clientHeader(srv.Port(), testToken, "")
		for i := range n {
			conf += tcpProxy(fmt.Sprintf("p%03d", i), echo.Port(), 0)
		}
		// A client with one proxy first, so that the fixed cost of a client and its session is
		// not counted per proxy.
		one := newClient(b, clientHeader(srv.Port(), testToken, "")+tcpProxy("one", echo.Port(), 0))
		h2, g2 := heapNow()
		if err := one.Start(); err != nil {
			b.Fatal(err)
		}
		waitRunning(b, one, "one")
		h3, g3 := heapNow()
		many := newClient(b, conf)
		if err := many.Start(); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			waitRunning(b, many, fmt.Sprintf("p%03d", i))
		}
		h4, g4 := heapNow()
		// many costs what one costs, plus n-1 proxies.
		perProxy += float64((int64(h4)-int64(h3))-(int64(h3)-int64(h2))) / (n - 1)
		gPerProxy += float64((g4-g3)-(g3-g2)) / (n - 1)
		many.Close()
		one.Close()
		srv.Close()
		echo.Close()
	}
	b.ReportMetric(perProxy/float64(b.N), "B/proxy")
	b.ReportMetric(perListener, "direct_B/listener")
	b.ReportMetric(perProxy/float64(b.N)/perListener, "x_direct")
	b.ReportMetric(gPerProxy/float64(b.N), "goroutines/proxy")
}

// BenchmarkP2PThroughput moves one stream of 256 MiB (32 MiB with -short) through an xp2p
// session on loopback (a direct path between two clients of this process) and, interleaved,
// straight to the service. With -cpuprofile it shows where a P2P byte's CPU goes.
func BenchmarkP2PThroughput(b *testing.B) {
	size := int64(256 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	chunk := make([]byte, 256<<10)
	io.ReadFull(seeded(7), chunk)
	srv := startServer(b, "")
	sink := startTCPService(b, sinkHandler)
	provider := startClient(b, clientHeader(srv.Port(), testToken, "")+p2pService("sink", "xp2p", "k", sink.Port()))
	waitProxyStatus(b, provider, "sink")
	vport := freeTCPPort(b)
	startClient(b, clientHeader(srv.Port(), testToken, "")+p2pVisitor("v", "xp2p", "sink", "k", vport))
	through := fmt.Sprintf("127.0.0.1:%d", vport)
	sendBulk(b, through, 8<<20, chunk) // warm up: the session, its direct path, windows
	var direct, p2p time.Duration
	b.ResetTimer()
	for range b.N {
		direct += sendBulk(b, sink.Addr(), size, chunk)
		p2p += sendBulk(b, through, size, chunk)
	}
	mb := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/p2p.Seconds(), "MiB/s")
	b.ReportMetric(mb/direct.Seconds(), "direct_MiB/s")
	b.ReportMetric(direct.Seconds()/p2p.Seconds(), "x_direct")
}
