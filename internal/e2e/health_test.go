package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHealthCheck: a proxy whose local service fails its health check is withdrawn from the
// server (its port closes, the status says why) and comes back when the service recovers.
func TestHealthCheck(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")

	// A web service whose health page can be turned off, and an echo service that can go away.
	var sick atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && sick.Load() {
			http.Error(w, "sick", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	})}
	go web.Serve(ln)
	t.Cleanup(func() { web.Close() })
	echo := startTCPService(t, echoHandler)
	echoPort := echo.Port()

	webRemote, echoRemote := freeTCPPort(t), freeTCPPort(t)
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		tcpProxy("web", ln.Addr().(*net.TCPAddr).Port, webRemote,
			`healthCheck.type = "http"`, `healthCheck.path = "/health"`, `healthCheck.intervalSeconds = 1`, `healthCheck.maxFailed = 2`)+
		tcpProxy("echo", echoPort, echoRemote, `healthCheck.type = "tcp"`, `healthCheck.intervalSeconds = 1`))
	waitRunning(t, c, "web")
	waitRunning(t, c, "echo")

	reachable := func(port int) bool {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}
	withdrawn := func(name string, port int) func() bool {
		return func() bool {
			pi, _ := proxyInfo(c, name)
			return strings.HasPrefix(pi.Status, "unhealthy") && !reachable(port)
		}
	}
	back := func(name string, port int) func() bool {
		return func() bool {
			pi, _ := proxyInfo(c, name)
			return pi.Status == "running" && reachable(port)
		}
	}
	status := func(name string) func() string {
		return func() string { pi, _ := proxyInfo(c, name); return name + ": " + pi.Status }
	}

	sick.Store(true)
	echo.Close()
	eventually(t, 6*time.Second, withdrawn("web", webRemote), status("web"))
	eventually(t, 6*time.Second, withdrawn("echo", echoRemote), status("echo"))
	if pi, _ := proxyInfo(c, "web"); !strings.Contains(pi.Status, "503") {
		t.Errorf("web's status %q does not say why", pi.Status)
	}

	sick.Store(false)
	revived, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", echoPort))
	if err != nil {
		t.Fatalf("listen on the echo port again: %v", err)
	}
	t.Cleanup(func() { revived.Close() })
	eventually(t, 6*time.Second, back("web", webRemote), status("web"))
	eventually(t, 6*time.Second, back("echo", echoRemote), status("echo"))
}
