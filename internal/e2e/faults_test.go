package e2e

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// portsBack probes every port from from on until each serves a user (the service's answer is
// not empty) or until deadline, and returns when each first did, as offsets from from.
func portsBack(ports []int, from time.Time, deadline time.Duration) map[int]time.Duration {
	var mu sync.Mutex
	back := map[int]time.Duration{}
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		var mine []int
		for i := w; i < len(ports); i += workers {
			mine = append(mine, ports[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(mine) > 0 && time.Since(from) < deadline {
				left := mine[:0]
				for _, port := range mine {
					if servesUser(port) {
						mu.Lock()
						back[port] = time.Since(from)
						mu.Unlock()
						continue
					}
					left = append(left, port)
				}
				if mine = left; len(mine) > 0 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	return back
}

// servesUser reports whether a user connection through port gets an answer within a second.
func servesUser(port int) bool {
	c, err := net.DialTimeout("tcp", localhost(port), 500*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	var b [1]byte
	_, err = c.Read(b[:])
	return err == nil
}

// backBy is the time by which pct % of n ports were back (the deadline if fewer were).
func backBy(back map[int]time.Duration, n int, pct int, deadline time.Duration) time.Duration {
	times := make([]time.Duration, 0, len(back))
	for _, d := range back {
		times = append(times, d)
	}
	slices.Sort(times)
	need := (n*pct + 99) / 100
	if need == 0 || len(times) < need {
		return deadline
	}
	return times[need-1]
}

// TestServerCrashRestart: 50 clients (10 with -short) of 2 tcp proxies each; the server is killed (SIGKILL: no
// goodbye on any socket) and started again at once. Every port must work again within a bound
// that frp meets (./bench's faults section: frp has 200 ports back in 2.6 s), each client must
// log in once (no storm of retries), and nobody may be refused.
func TestServerCrashRestart(t *testing.T) {
	t.Parallel()
	clients := 50
	if testing.Short() {
		clients = 10 // the race detector's run: every client is several times slower there
	}
	const bound = 6 * time.Second
	port := freeUDPTCPPort(t)
	// Both runs of the server share its state: its identity, which the clients pinned, and
	// from which its QUIC stateless-reset key derives.
	state := fmt.Sprintf("stateDir = %q\n", t.TempDir())
	srv := serverProc(t, "server", port, state)
	svc := startTCPService(t, idHandler("up"))
	seen := map[int]bool{port: true}
	var ports []int
	for range 2 * clients {
		p := freeTCPPort(t)
		for seen[p] {
			p = freeTCPPort(t)
		}
		seen[p] = true
		ports = append(ports, p)
	}
	head := clientHeader(port, testToken, "transport.natDiscovery = false")
	for i := range clients {
		startClient(t, head+tcpProxy(fmt.Sprintf("c%d-a", i), svc.Port(), ports[2*i])+tcpProxy(fmt.Sprintf("c%d-b", i), svc.Port(), ports[2*i+1]))
	}
	// A client without tcp proxies has no work connection to tell it of the crash: its next
	// keepalive (every second here) draws the new server's stateless reset.
	uecho := startUDPEcho(t)
	udpOnly := startClient(t, clientHeader(port, testToken, "transport.natDiscovery = false\ntransport.heartbeatInterval = 1")+
		udpProxy("u", uecho.Port(), freeUDPTCPPort(t)))
	waitRunning(t, udpOnly, "u")
	started := time.Now()
	if back := portsBack(ports, started, 30*time.Second); len(back) < len(ports) {
		t.Fatalf("%d of %d ports up 30 s after the clients started", len(back), len(ports))
	}
	t.Logf("%d ports up %s after %d clients started", len(ports), time.Since(started).Round(time.Millisecond), clients)

	srv.kill()
	killed := time.Now()
	srv2 := serverProc(t, "server-2", port, state)
	t.Logf("new server listening %s after the kill", time.Since(killed).Round(time.Millisecond))
	back := portsBack(ports, killed, 30*time.Second)
	p50, p90, p100 := backBy(back, len(ports), 50, 30*time.Second), backBy(back, len(ports), 90, 30*time.Second), backBy(back, len(ports), 100, 30*time.Second)
	t.Logf("ports back after the kill: 50 %% in %s, 90 %% in %s, 100 %% in %s",
		p50.Round(time.Millisecond), p90.Round(time.Millisecond), p100.Round(time.Millisecond))
	if p100 > bound {
		t.Errorf("%d of %d ports back %s after the kill; want all within %s", len(back), len(ports), p100.Round(time.Millisecond), bound)
	}
	eventually(t, 5*time.Second, func() bool { return udpOnly.log.Count("logged in to server") == 2 },
		func() string { return "the client without tcp proxies did not log in again within 5 s" })
	if n := udpOnly.log.Count("stateless reset"); n != 1 {
		t.Errorf("the client without tcp proxies logged %d stateless resets, want 1 (its keepalives must draw one):\n%s", n, grepLines(udpOnly.log.String(), "session ended", 5))
	}
	if n := srv2.out.Count("client logged in"); n != clients+1 {
		t.Errorf("the new server saw %d logins, want %d (one per client)", n, clients+1)
	}
	if n := srv2.out.Count("server busy"); n != 0 {
		t.Errorf("the new server turned %d logins or connections away as busy:\n%s", n, grepLines(srv2.out.String(), "server busy", 10))
	}
	if n := srv2.out.Count("level=WARN") + srv2.out.Count("level=ERROR"); n != 0 {
		t.Errorf("the new server logged %d warnings or errors:\n%s", n, grepLines(srv2.out.String(), "level=WARN", 10))
	}
}

// grepLines returns the first n lines of out that contain sub.
func grepLines(out, sub string, n int) string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, sub) && len(lines) < n {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// TestRestartedClientReclaimsAtOnce: a provider killed and started again on the same state
// directory logs in under the same run key, so the server replaces its dead session at once
// and it has its port back without the liveness check that another client would wait for.
func TestRestartedClientReclaimsAtOnce(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	svc := startTCPService(t, idHandler("provider"))
	port := freeTCPPort(t)
	cfg := clientHeader(srv.Port(), testToken, fmt.Sprintf("transport.natDiscovery = false\nstateDir = %q", t.TempDir())) +
		tcpProxy("ssh", svc.Port(), port)
	first := startProc(t, "client", "provider", cfg)
	eventually(t, 10*time.Second, func() bool { id, _ := askID(localhost(port)); return id == "provider" },
		func() string { return "the provider's port never answered" })
	first.kill()
	restarted := time.Now()
	second := startProc(t, "client", "provider-again", cfg)
	eventually(t, 10*time.Second, func() bool { id, _ := askID(localhost(port)); return id == "provider" },
		func() string { return "the restarted provider's port never answered" })
	took := time.Since(restarted)
	t.Logf("the restarted provider had its port back %s after it started", took.Round(time.Millisecond))
	if took > holderGraceForTests {
		t.Errorf("the restarted provider waited %s: as long as a stranger's liveness check", took.Round(time.Millisecond))
	}
	if n := srv.log.Count("replacing the session of the same client"); n != 1 {
		t.Errorf("the server replaced %d sessions of the same client, want 1:\n%s", n, grepLines(srv.log.String(), "client", 12))
	}
	if n := srv.log.Count("taking over"); n != 0 {
		t.Errorf("the server checked the dead session's liveness %d times; the same client needs none", n)
	}
	if n := second.out.Count("client key not kept"); n != 0 {
		t.Errorf("the restarted client could not use its key:\n%s", grepLines(second.out.String(), "client key", 3))
	}
}

// holderGraceForTests is the server's grace for a holder of a name that someone else wants
// (rendezvous.holderGrace).
const holderGraceForTests = 5 * time.Second

// TestDeadClientPortsRefuse: a client killed with SIGKILL (its QUIC session says nothing) leaves
// its ports taking users it cannot serve until the server learns it died. Its kernel closes its
// idle work connection, the server then checks the client's liveness, and its ports refuse users
// a grace later instead of after the session's 30 s idle timeout, with nobody asking for them.
func TestDeadClientPortsRefuse(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	svc := startTCPService(t, idHandler("up"))
	port := freeTCPPort(t)
	c := startProc(t, "client", "doomed", clientHeader(srv.Port(), testToken, "transport.natDiscovery = false")+tcpProxy("web", svc.Port(), port))
	eventually(t, 10*time.Second, func() bool { id, _ := askID(localhost(port)); return id == "up" },
		func() string { return "the client's port never answered" })
	time.Sleep(200 * time.Millisecond) // its idle work connection is parked
	c.kill()
	killed := time.Now()
	eventually(t, 20*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", localhost(port), time.Second)
		if err == nil {
			conn.Close()
			return false
		}
		return true
	}, func() string { return "the dead client's port still takes users" })
	took := time.Since(killed)
	t.Logf("a dead client's port refused users %s after the kill", took.Round(time.Millisecond))
	if took > holderGraceForTests+3*time.Second {
		t.Errorf("the dead client's port took users for %s", took.Round(time.Millisecond))
	}
	if n := srv.log.Count("client unresponsive after it closed a work connection"); n != 1 {
		t.Errorf("the server logged %d liveness failures, want 1", n)
	}
}
