package e2e

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// countHandler reads the whole request and answers with the number of bytes it got, as text.
func countHandler(c *net.TCPConn) {
	n, _ := io.Copy(io.Discard, c)
	fmt.Fprintf(c, "%d", n)
	c.CloseWrite()
}

// upload sends n seeded bytes through addr and returns how long until the service confirmed them.
func upload(t *testing.T, addr string, n int64) time.Duration {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := io.Copy(c, io.LimitReader(seeded(7), n)); err != nil {
		t.Fatalf("upload through %s: %v", addr, err)
	}
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != fmt.Sprint(n) {
		t.Fatalf("upload through %s: the service confirmed %q (%v), want %d", addr, got, err, n)
	}
	return time.Since(start)
}

// TestBandwidthLimit: transport.bandwidthLimit = "1MB" holds a tcp proxy to a megabyte a second
// (after a burst of one second's worth), enforced on the client or on the server; the same
// upload through an unlimited proxy of the same client is not held back.
func TestBandwidthLimit(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	svc := startTCPService(t, countHandler)
	client, server, free := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		tcpProxy("client", svc.Port(), client, `transport.bandwidthLimit = "1MB"`)+
		tcpProxy("server", svc.Port(), server, `transport.bandwidthLimit = "1MB"`, `transport.bandwidthLimitMode = "server"`)+
		tcpProxy("free", svc.Port(), free))
	for _, name := range []string{"client", "server", "free"} {
		waitRunning(t, c, name)
	}
	const size = 3 << 20 // 1 MiB of burst, then 2 s at 1 MiB/s
	unlimited := upload(t, fmt.Sprintf("127.0.0.1:%d", free), size)
	for _, mode := range []struct {
		name string
		port int
	}{{"client", client}, {"server", server}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			took := upload(t, fmt.Sprintf("127.0.0.1:%d", mode.port), size)
			t.Logf("3 MiB limited on the %s: %v (unlimited: %v)", mode.name, took.Round(time.Millisecond), unlimited.Round(time.Millisecond))
			if took < 1800*time.Millisecond {
				t.Errorf("3 MiB in %v through a 1 MB/s limit (the limiter allows at most 1 MiB + 1 MiB/s)", took)
			}
			if unlimited >= took {
				t.Errorf("the unlimited proxy (%v) was not faster than the limited one (%v)", unlimited, took)
			}
		})
	}
}
