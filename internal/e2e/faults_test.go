package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// countingIDHandler answers with id, like idHandler, and counts the connections it served.
func countingIDHandler(id string, n *atomic.Int64) func(*net.TCPConn) {
	h := idHandler(id)
	return func(c *net.TCPConn) {
		n.Add(1)
		h(c)
	}
}

// localhost is a port's address on loopback.
func localhost(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// TestStalledClientKeepsItsNames: a provider stops for 2 s (SIGSTOP: a laptop waking up, a
// GC pause under memory pressure), and another token holder asks for its proxy name and its
// port meanwhile. The provider must keep both (the server's liveness check waits longer than
// such a stall), the other client gets nothing (no port, no user connection) and is told to
// wait, and a user who connected during the stall is served by the provider once it runs
// again. Then the provider is killed (SIGKILL: its QUIC session says nothing): a third client
// that asks for its other port gets it a few seconds later, not after the session's timeout.
func TestStalledClientKeepsItsNames(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	var victimConns, attackerConns, heirConns atomic.Int64
	victimSvc := startTCPService(t, countingIDHandler("victim", &victimConns))
	attackerSvc := startTCPService(t, countingIDHandler("attacker", &attackerConns))
	heirSvc := startTCPService(t, countingIDHandler("heir", &heirConns))
	sshPort, webPort, otherPort := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	head := clientHeader(srv.Port(), testToken, "transport.natDiscovery = false")

	victim := startProc(t, "client", "victim", head+tcpProxy("ssh", victimSvc.Port(), sshPort)+tcpProxy("web", victimSvc.Port(), webPort))
	for _, port := range []int{sshPort, webPort} {
		eventually(t, 10*time.Second, func() bool { id, _ := askID(localhost(port)); return id == "victim" },
			func() string { return fmt.Sprintf("the victim's port %d never answered", port) })
	}

	victim.signal(syscall.SIGSTOP)
	stopped := time.Now()
	// The attacker wants the victim's name (on a port of its own) and the victim's port (under
	// a name of its own).
	attacker := startClient(t, head+tcpProxy("ssh", attackerSvc.Port(), otherPort)+tcpProxy("grab", attackerSvc.Port(), sshPort))
	// A user arrives during the stall: the connection must wait for the victim, not go astray.
	during := make(chan string, 1)
	go func() {
		id, err := askID(localhost(sshPort))
		if err != nil {
			id = "error: " + err.Error()
		}
		during <- id
	}()
	time.Sleep(time.Until(stopped.Add(2 * time.Second)))
	victim.signal(syscall.SIGCONT)

	for _, name := range []string{"ssh", "grab"} {
		pi := waitProxyStatus(t, attacker, name)
		if !strings.HasPrefix(pi.Status, "waiting: ") || !strings.Contains(pi.Status, "another client, which answered") {
			t.Errorf("attacker's proxy %q: status %q, want waiting for a live holder", name, pi.Status)
		}
	}
	select {
	case id := <-during:
		if id != "victim" {
			t.Errorf("a user who connected during the stall got %q, want the victim", id)
		}
	case <-time.After(10 * time.Second):
		t.Error("a user who connected during the stall got no answer 10 s later")
	}
	for _, port := range []int{sshPort, webPort} {
		if id, err := askID(localhost(port)); id != "victim" {
			t.Errorf("after the stall port %d answered %q (%v), want the victim", port, id, err)
		}
	}
	// The attacker keeps asking, and keeps being refused.
	eventually(t, 10*time.Second, func() bool { return attacker.log.Count("asking the server again") >= 2 },
		func() string { return "the refused client did not ask again" })
	if id, err := askID(localhost(sshPort)); id != "victim" {
		t.Errorf("after the attacker asked again port %d answered %q (%v), want the victim", sshPort, id, err)
	}
	if n := attackerConns.Load(); n != 0 {
		t.Errorf("the attacker's service got %d user connections", n)
	}
	if n := victim.out.Count("logged in to server"); n != 1 {
		t.Errorf("the victim logged in %d times, want once (it must not lose its session)", n)
	}
	if n := srv.log.Count("taking over"); n != 0 {
		t.Errorf("the server took names from a stalled client %d times", n)
	}

	// A crash: the victim's other port goes to the first client that asks, once the victim
	// fails the liveness check.
	victim.kill()
	killed := time.Now()
	heir := startClient(t, head+tcpProxy("heir-web", heirSvc.Port(), webPort))
	addr := waitRunning(t, heir, "heir-web")
	took := time.Since(killed)
	if addr != localhost(webPort) {
		t.Errorf("heir published on %s, want port %d", addr, webPort)
	}
	if id, err := askID(localhost(webPort)); id != "heir" {
		t.Errorf("after the victim died port %d answered %q (%v), want the heir", webPort, id, err)
	}
	t.Logf("a dead client's port went to the next client that asked %s after the crash", took.Round(time.Millisecond))
	// The liveness check waits 5 s; the session's idle timeout would take 30 s.
	if took > 12*time.Second {
		t.Errorf("the dead client's port was free only %s after the crash", took.Round(time.Millisecond))
	}
}

// TestRefusedProxyAsksAgain: a client whose port another client holds waits and asks again,
// with growing delays, until it gets the port; its status says so meanwhile.
func TestRefusedProxyAsksAgain(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	svcA := startTCPService(t, idHandler("A"))
	svcB := startTCPService(t, idHandler("B"))
	port := freeTCPPort(t)
	head := clientHeader(srv.Port(), testToken, "transport.natDiscovery = false")
	a := startClient(t, head+tcpProxy("a", svcA.Port(), port))
	waitRunning(t, a, "a")
	b := startClient(t, head+tcpProxy("b", svcB.Port(), port))
	pi := waitProxyStatus(t, b, "b")
	if !strings.HasPrefix(pi.Status, "waiting: ") || !strings.Contains(pi.Status, "; asking again in ") {
		t.Fatalf("status %q, want waiting with the time of the next question", pi.Status)
	}
	eventually(t, 10*time.Second, func() bool { return b.log.Count("asking the server again") >= 2 },
		func() string { return "b did not ask again" })
	a.Close()
	left := time.Now()
	eventually(t, 15*time.Second, func() bool { id, _ := askID(localhost(port)); return id == "B" },
		func() string { return "b never got the port after a left" })
	t.Logf("b got the port %s after a left", time.Since(left).Round(time.Millisecond))
	if pi, _ := proxyInfo(b, "b"); pi.Status != "running" {
		t.Errorf("b's status %q, want running", pi.Status)
	}
}
