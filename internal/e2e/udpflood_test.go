package e2e

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestUDPFlowsFromManyPorts: anyone (no token) sends one datagram from each of 600 source
// ports to a client's udp proxy, so that the client opens 600 flows to its service. Before, each
// flow's reader held 32 datagram buffers of 64 KiB from the start (2 MiB a flow: 1.2 GiB of
// heap here, 2 GiB at the 1024 flows a proxy takes); now a flow holds what its traffic needs,
// while a busy user's flow still gets its whole burst back.
func TestUDPFlowsFromManyPorts(t *testing.T) {
	srv := startServer(t, "")
	echo := startUDPEcho(t)
	port := freeUDPTCPPort(t)
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+udpProxy("game", echo.Port(), port))
	waitRunning(t, c, "game")
	proxyAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var conns []*net.UDPConn
	t.Cleanup(func() {
		for _, u := range conns {
			u.Close()
		}
	})
	for range 600 {
		u, err := net.DialUDP("udp", nil, proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, u)
		u.Write(make([]byte, 1200))
	}
	// A burst of new flows loses some first datagrams (as UDP may): each source sends again.
	eventually(t, 10*time.Second, func() bool {
		for _, u := range conns {
			u.Write(make([]byte, 1200))
		}
		return echo.sources() >= 580
	},
		func() string { return fmt.Sprintf("the service saw %d of the 600 sources", echo.sources()) })
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d flows: heap in use %+d MiB", echo.sources(), grown>>20)
	if grown > 200<<20 {
		t.Errorf("%d flows from one host grew the heap by %d MiB", echo.sources(), grown>>20)
	}
	// A user with real traffic meanwhile: a burst of 200 datagrams, all echoed.
	u, err := net.DialUDP("udp", nil, proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 2048)
	eventually(t, 10*time.Second, func() bool { // the flow is up once its first datagram is echoed
		u.Write([]byte("hello"))
		u.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := u.Read(buf)
		return err == nil && string(buf[:n]) == "hello"
	}, func() string { return "a new user's flow never echoed" })
	for u.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); ; {
		if _, err := u.Read(buf); err != nil {
			break // the other hellos' echoes, drained
		}
	}
	u.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := 0
	for round := 0; round < 20 && got < 200; round++ {
		for i := range 10 {
			u.Write(bytes.Repeat([]byte{byte(round*10 + i)}, 1000))
		}
		for range 10 {
			n, err := u.Read(buf)
			if err != nil {
				t.Fatalf("burst: %d of 200 echoed: %v", got, err)
			}
			if n == 1000 {
				got++
			}
		}
	}
	if got != 200 {
		t.Errorf("burst: %d of 200 echoed", got)
	}
}
