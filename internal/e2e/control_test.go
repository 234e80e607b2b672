package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xp2p/xp2p/peer"
)

// TestServerRestart stops the server under a connected client and starts a new one on the same
// port: the client must reconnect by itself (at a random moment within 500 ms, then backing off
// from 1 s), register its proxy again, and the proxy must work on the same public port.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"quic", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "")
			port := srv.Port()
			echo := startTCPService(t, echoHandler)
			uecho := startUDPEcho(t)
			remotePort, udpRemote := freeTCPPort(t), freeUDPTCPPort(t)
			c := startClient(t, clientHeader(port, testToken, `transport.protocol = "`+transport+`"`)+
				tcpProxy("echo", echo.Port(), remotePort)+udpProxy("uecho", uecho.Port(), udpRemote))
			addr := waitRunning(t, c, "echo")
			if err := roundTrip(addr, []byte("before restart")); err != nil {
				t.Fatal(err)
			}
			udpTo := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(waitRunning(t, c, "uecho")))
			src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { src.Close() })
			resent := false
			if err := udpAsk(src, udpTo, []byte("udp before the restart"), "udp", &resent); err != nil {
				t.Fatal(err)
			}

			// 1. Immediate restart.
			srv.Close()
			stopped := time.Now()
			if err := roundTrip(addr, []byte("while down")); err == nil {
				t.Fatal("the proxy port still answers with the server stopped")
			}
			srv2 := startServerOn(t, port, sameIdentity(srv))
			eventually(t, 10*time.Second, func() bool {
				err = roundTrip(addr, []byte("after restart"))
				return err == nil
			}, func() string { return fmt.Sprintf("proxy not back after the restart: %v", err) })
			took := time.Since(stopped)
			t.Logf("proxy back %s after an immediate restart", took.Round(time.Millisecond))
			if took > 4*time.Second {
				t.Errorf("client took %s to come back to a server that was up at once", took)
			}
			if n := srv2.log.Count("client logged in"); n != 1 {
				t.Errorf("new server saw %d logins, want 1", n)
			}
			if n := srv2.log.Count("proxy online"); n != 2 {
				t.Errorf("new server published %d proxies, want 2", n)
			}
			// The udp proxy is back on its port too, and the same source gets a fresh flow.
			if err := udpAsk(src, udpTo, []byte("udp after the restart"), "udp", &resent); err != nil {
				t.Errorf("udp proxy after the restart: %v", err)
			}
			if got := c.Transport(); got != transport {
				t.Errorf("transport after reconnect %q, want %q", got, transport)
			}

			// 2. The server stays away for a while: the client retries with growing delays,
			// without hammering, and comes back once the server does.
			ended := c.log.Count("server session ended")
			srv2.Close()
			down := 2500 * time.Millisecond
			time.Sleep(down) // the outage itself: nothing to wait for but time
			retries := c.log.Count("server session ended") - ended
			if retries < 1 || retries > 3 {
				t.Errorf("%d connection attempts ended in %s of outage, want 1 to 3 (backoff 1 s, 2 s, ...)", retries, down)
			}
			restarted := time.Now()
			startServerOn(t, port, sameIdentity(srv))
			eventually(t, 15*time.Second, func() bool {
				err = roundTrip(addr, []byte("after outage"))
				return err == nil
			}, func() string { return fmt.Sprintf("proxy not back after the outage: %v", err) })
			t.Logf("%d retries during a %s outage; proxy back %s after the server", retries, down, time.Since(restarted).Round(time.Millisecond))
		})
	}
}

// TestWrongToken: a client with the wrong token gets a clear error, stays alive, and retries
// slowly; with loginFailExit it stops with the error; repeated failures from one address are
// rate-limited.
func TestWrongToken(t *testing.T) {
	t.Parallel()
	const wantErr = "authentication failed: wrong auth.token"

	t.Run("retries with backoff", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, "")
		c := startClient(t, clientHeader(srv.Port(), "not-the-token", "")+tcpProxy("p", 1, 0))
		eventually(t, 5*time.Second, func() bool { return c.log.Count(wantErr) > 0 },
			func() string { return "client never logged " + wantErr })
		if n := c.log.Count("check auth.token"); n != 1 {
			t.Errorf("client logged %d refusals, want 1", n)
		}
		// Watch for a while: the retry must not come before the auth backoff (10 s).
		watch := 3 * time.Second
		time.Sleep(watch)
		if n := srv.log.Count("login refused"); n != 1 {
			t.Errorf("server refused %d logins in %s, want 1 (the client must back off)", n, watch)
		}
		if n := srv.Events.AuthFailures.Load(); n != 1 {
			t.Errorf("server counted %d auth failures, want 1", n)
		}
		if c.Transport() != "" {
			t.Errorf("client reports transport %q while refused", c.Transport())
		}
		if pi, _ := proxyInfo(c, "p"); pi.Status != "pending" {
			t.Errorf("proxy status %q, want pending", pi.Status)
		}
		select {
		case <-c.Done():
			t.Fatal("client stopped after a refused login without loginFailExit")
		default:
		}
	})

	runRefused := func(t *testing.T, port int, token string) error {
		t.Helper()
		c := newClient(t, clientHeader(port, token, "loginFailExit = true")+tcpProxy("p", 1, 0))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		select {
		case err := <-done:
			return err
		case <-time.After(8 * time.Second):
			cancel()
			<-done
			t.Fatal("Run did not return after a refused login with loginFailExit = true")
			return nil
		}
	}

	t.Run("loginFailExit", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, "")
		err := runRefused(t, srv.Port(), "not-the-token")
		var le *peer.LoginError
		if !errors.As(err, &le) {
			t.Fatalf("Run returned %v (%T), want a *peer.LoginError", err, err)
		}
		if le.Reason != wantErr || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("error %q, want reason %q", err, wantErr)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, "")
		for i := range 6 {
			err := runRefused(t, srv.Port(), "guess-"+strconv.Itoa(i))
			var le *peer.LoginError
			if !errors.As(err, &le) {
				t.Fatalf("attempt %d: Run returned %v, want a *peer.LoginError", i, err)
			}
			want := wantErr
			if i == 5 {
				want = "too many failed logins from 127.0.0.1"
			}
			if !strings.Contains(le.Reason, want) {
				t.Errorf("attempt %d: reason %q, want %q", i, le.Reason, want)
			}
		}
		if n := srv.Events.AuthFailures.Load(); n != 5 {
			t.Errorf("server counted %d auth failures, want 5 (the sixth is refused before the check)", n)
		}
	})
}

// TestPortConflicts: each proxy the server cannot publish is refused with a clear error that
// reaches the asking client, while that client's good proxy and the other client's proxies work.
func TestPortConflicts(t *testing.T) {
	t.Parallel()
	// Ports held by someone else than xp2p.
	heldTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { heldTCP.Close() })
	heldUDP, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { heldUDP.Close() })
	heldTCPPort := heldTCP.Addr().(*net.TCPAddr).Port
	heldUDPPort := heldUDP.LocalAddr().(*net.UDPAddr).Port

	ports := map[int]bool{heldTCPPort: true, heldUDPPort: true}
	distinct := func() int {
		for {
			if p := freeTCPPort(t); !ports[p] {
				ports[p] = true
				return p
			}
		}
	}
	good, taken, shared, notAllowed := distinct(), distinct(), distinct(), distinct()
	srv := startServer(t, fmt.Sprintf("allowPorts = [{ single = %d }, { single = %d }, { single = %d }, { single = %d }, { single = %d }]\n",
		good, taken, shared, heldTCPPort, heldUDPPort))

	svcA := startTCPService(t, idHandler("A"))
	svcB := startTCPService(t, idHandler("B"))
	b := startClient(t, clientHeader(srv.Port(), testToken, "")+
		tcpProxy("b-web", svcB.Port(), taken)+
		tcpProxy("shared", svcB.Port(), shared))
	waitRunning(t, b, "b-web")
	waitRunning(t, b, "shared")

	a := startClient(t, clientHeader(srv.Port(), testToken, "")+
		tcpProxy("good", svcA.Port(), good)+
		tcpProxy("not-allowed", svcA.Port(), notAllowed)+
		tcpProxy("bound-elsewhere", svcA.Port(), heldTCPPort)+
		tcpProxy("taken", svcA.Port(), taken)+
		tcpProxy("shared", svcA.Port(), shared)+
		udpProxy("udp-bound-elsewhere", svcA.Port(), heldUDPPort))
	// A port or name that someone holds may be free later: the client says it waits and asks
	// again; what the server's config forbids is an error.
	for _, tc := range []struct{ proxy, prefix, want string }{
		{"not-allowed", "error: ", fmt.Sprintf("remotePort %d: port not allowed by the server's allowPorts", notAllowed)},
		{"bound-elsewhere", "waiting: ", fmt.Sprintf("remotePort %d: port already in use", heldTCPPort)},
		{"taken", "waiting: ", fmt.Sprintf("remotePort %d: port already in use by another client, which answered", taken)},
		{"shared", "waiting: ", `proxy name "shared" is already in use by another client, which answered`},
		{"udp-bound-elsewhere", "waiting: ", fmt.Sprintf("remotePort %d/udp: port already in use", heldUDPPort)},
	} {
		pi := waitProxyStatus(t, a, tc.proxy)
		if !strings.HasPrefix(pi.Status, tc.prefix) || !strings.Contains(pi.Status, tc.want) {
			t.Errorf("proxy %q: status %q, want %q...%q", tc.proxy, pi.Status, tc.prefix, tc.want)
		}
		if tc.prefix == "waiting: " && !strings.Contains(pi.Status, "; asking again in ") {
			t.Errorf("proxy %q: status %q does not say when the client asks again", tc.proxy, pi.Status)
		}
		if pi.Remote != "" {
			t.Errorf("refused proxy %q has a remote address %q", tc.proxy, pi.Remote)
		}
	}
	if got := waitRunning(t, a, "good"); got != "127.0.0.1:"+strconv.Itoa(good) {
		t.Errorf("good proxy published on %s, want port %d", got, good)
	}
	for _, tc := range []struct {
		port int
		want string
	}{{good, "A"}, {taken, "B"}, {shared, "B"}} {
		got, err := askID("127.0.0.1:" + strconv.Itoa(tc.port))
		if err != nil || got != tc.want {
			t.Errorf("port %d answered %q (%v), want %q", tc.port, got, err, tc.want)
		}
	}
	if n := a.log.Count("server refused proxy\""); n != 1 {
		t.Errorf("client logged %d proxies refused for good, want 1", n)
	}
	if n := a.log.Count("server refused proxy: in use; asking again"); n < 4 {
		t.Errorf("client logged %d proxies refused for now, want at least 4", n)
	}
	if a.Transport() == "" || b.Transport() == "" {
		t.Error("a refused proxy cost a client its session")
	}
}

// groupHandler answers with its id and a newline, then echoes.
func groupHandler(id string) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		c.Write([]byte(id + "\n"))
		io.Copy(c, c)
		c.CloseWrite()
	}
}

// askGroup connects and returns the id of the member that answered.
func askGroup(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	id, ok := strings.CutSuffix(string(b), "\n")
	if !ok {
		return "", fmt.Errorf("answer %q", b)
	}
	return id, nil
}

// spread makes n connections and counts the answering members.
func spread(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := askGroup(addr)
			if err != nil {
				t.Errorf("connection %d: %v", i, err)
				return
			}
			mu.Lock()
			counts[id]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return counts
}

// TestLoadBalancingGroup: three clients share one remote port through loadBalancer.group; the
// connections spread over all three; a wrong groupKey and a proxy outside the group are refused;
// a member leaving does not break the others or their open connections.
func TestLoadBalancingGroup(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	group := []string{`loadBalancer.group = "web"`, `loadBalancer.groupKey = "sesame"`}
	var members []*testClient
	port := 0
	var addr string
	for i := range 3 {
		id := "m" + strconv.Itoa(i)
		svc := startTCPService(t, groupHandler(id))
		c := startClient(t, clientHeader(srv.Port(), testToken, "")+tcpProxy("web", svc.Port(), port, group...))
		got := waitRunning(t, c, "web")
		if i == 0 {
			addr = got
			_, ps, _ := net.SplitHostPort(addr)
			port, _ = strconv.Atoi(ps)
		} else if got != addr {
			t.Fatalf("member %d published on %s, want the group's %s", i, got, addr)
		}
		members = append(members, c)
	}

	intruder := startTCPService(t, groupHandler("intruder"))
	wrongKey := startClient(t, clientHeader(srv.Port(), testToken, "")+
		tcpProxy("web", intruder.Port(), port, `loadBalancer.group = "web"`, `loadBalancer.groupKey = "guess"`)+
		tcpProxy("squatter", intruder.Port(), port)+
		tcpProxy("elsewhere", intruder.Port(), freeTCPPort(t), group...))
	if pi := waitProxyStatus(t, wrongKey, "web"); !strings.Contains(pi.Status, "wrong loadBalancer.groupKey") {
		t.Errorf("wrong groupKey: status %q", pi.Status)
	}
	if pi := waitProxyStatus(t, wrongKey, "squatter"); !strings.Contains(pi.Status, "port already in use") {
		t.Errorf("plain proxy on a group's port: status %q", pi.Status)
	}
	if pi := waitProxyStatus(t, wrongKey, "elsewhere"); !strings.Contains(pi.Status, fmt.Sprintf(`group "web" is on remotePort %d`, port)) {
		t.Errorf("a member of the group on another port: status %q", pi.Status)
	}

	const n = 30
	counts := spread(t, addr, n)
	t.Logf("%d connections over 3 members: %v", n, counts)
	for i := range 3 {
		if id := "m" + strconv.Itoa(i); counts[id] < n/6 {
			t.Errorf("member %s got %d of %d connections", id, counts[id], n)
		}
	}
	if counts["intruder"] > 0 {
		t.Errorf("the wrong-key proxy got %d connections", counts["intruder"])
	}

	// An open connection to each remaining member, to check it survives m0 leaving.
	var open []*bufio.Reader
	var openConns []net.Conn
	for len(open) < 2 {
		c := dial(t, addr)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		id, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if id == "m0\n" {
			c.Close()
			continue
		}
		open, openConns = append(open, r), append(openConns, c)
	}

	online := srv.Events.ClientsOnline.Load()
	members[0].Close()
	eventually(t, 5*time.Second, func() bool { return srv.Events.ClientsOnline.Load() == online-1 },
		func() string {
			return fmt.Sprintf("server still counts %d clients online", srv.Events.ClientsOnline.Load())
		})
	counts = spread(t, addr, n)
	t.Logf("after m0 left: %v", counts)
	if counts["m0"] > 0 || counts["m1"] < n/4 || counts["m2"] < n/4 {
		t.Errorf("after m0 left: %v, want m1 and m2 only, evenly", counts)
	}
	for i, c := range openConns {
		msg := "still there " + strconv.Itoa(i) + "\n"
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatalf("open connection %d: %v", i, err)
		}
		if got, err := open[i].ReadString('\n'); err != nil || got != msg {
			t.Errorf("open connection %d after m0 left: %q, %v", i, got, err)
		}
	}
}

// TestUserPrefixAndPortQuota: frp's user prefixes proxy names, so two users may both have a
// proxy "web"; maxPortsPerClient refuses the ports beyond a client's quota.
func TestUserPrefixAndPortQuota(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "maxPortsPerClient = 2\n")
	var addrs []string
	for _, user := range []string{"alice", "bob"} {
		svc := startTCPService(t, idHandler(user))
		c := startClient(t, clientHeader(srv.Port(), testToken, `user = "`+user+`"`)+tcpProxy("web", svc.Port(), 0))
		addrs = append(addrs, waitRunning(t, c, "web"))
	}
	for i, user := range []string{"alice", "bob"} {
		if got, err := askID(addrs[i]); err != nil || got != user {
			t.Errorf("%s's web answered %q (%v)", user, got, err)
		}
	}
	if n := srv.log.Count(`proxy=alice.web`) + srv.log.Count(`proxy=bob.web`); n < 2 {
		t.Errorf("server did not register the proxies under their users' names")
	}

	svc := startTCPService(t, idHandler("quota"))
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		tcpProxy("q1", svc.Port(), 0)+tcpProxy("q2", svc.Port(), 0)+tcpProxy("q3", svc.Port(), 0))
	running, refused := 0, 0
	for _, name := range []string{"q1", "q2", "q3"} {
		pi := waitProxyStatus(t, c, name)
		switch {
		case pi.Status == "running":
			running++
			if got, err := askID(pi.Remote); err != nil || got != "quota" {
				t.Errorf("%s answered %q (%v)", name, got, err)
			}
		case strings.Contains(pi.Status, `over this client's limit: 2 ports of user "" from 127.0.0.1/32 (maxPortsPerClient = 2)`):
			refused++
		default:
			t.Errorf("%s: status %q", name, pi.Status)
		}
	}
	if running != 2 || refused != 1 {
		t.Errorf("%d proxies running and %d refused, want 2 and 1 (maxPortsPerClient = 2)", running, refused)
	}
}

// freeRangeBelowEphemeral returns n consecutive ports below the kernel's ephemeral range
// (32768 up on Linux) that were free for TCP and UDP a moment ago: allowPorts of the kind the
// frp guides use (e.g. 6000-7000), which the system's own choice of a free port never hits.
func freeRangeBelowEphemeral(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		base := 20000 + mrand.IntN(12000-n)
		free := true
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				break
			}
			u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			l.Close()
			if err != nil {
				free = false
				break
			}
			u.Close()
		}
		if free {
			return base
		}
	}
	t.Fatalf("no %d free ports in a row below 32768", n)
	return 0
}

// TestRemotePortZeroFromAllowPorts: remotePort = 0 takes a free port of allowPorts even when
// allowPorts lies outside the kernel's ephemeral range (it failed with "no free port within
// allowPorts" before), for tcp and udp, and says so clearly once every allowed port is taken.
func TestRemotePortZeroFromAllowPorts(t *testing.T) {
	t.Parallel()
	base := freeRangeBelowEphemeral(t, 4)
	srv := startServer(t, fmt.Sprintf("allowPorts = [{ start = %d, end = %d }, { single = %d }]\n", base, base+1, base+3))
	inRange := func(addr string) bool {
		_, ps, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(ps)
		return p == base || p == base+1 || p == base+3
	}
	echo := startTCPService(t, echoHandler)
	uecho := startUDPEcho(t)
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		tcpProxy("t1", echo.Port(), 0)+tcpProxy("t2", echo.Port(), 0)+udpProxy("u1", uecho.Port(), 0))
	tcpAddrs := map[string]bool{}
	for _, name := range []string{"t1", "t2"} {
		addr := waitRunning(t, c, name)
		if !inRange(addr) {
			t.Fatalf("%s published on %s, outside allowPorts", name, addr)
		}
		tcpAddrs[addr] = true
		if err := roundTrip(addr, []byte("through "+name)); err != nil {
			t.Fatal(err)
		}
	}
	if len(tcpAddrs) != 2 {
		t.Fatalf("two tcp proxies on one port: %v", tcpAddrs)
	}
	uaddr := waitRunning(t, c, "u1")
	if !inRange(uaddr) {
		t.Fatalf("u1 published on %s, outside allowPorts", uaddr)
	}
	src, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	resent := false
	if err := udpAsk(src, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(uaddr)), []byte("udp through u1"), "udp", &resent); err != nil {
		t.Fatal(err)
	}

	// The third allowed tcp port is taken by another program: a third tcp proxy gets a clear error.
	for p := base; p <= base+3; p++ {
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			t.Cleanup(func() { l.Close() })
		}
	}
	late := startClient(t, clientHeader(srv.Port(), testToken, "")+tcpProxy("t3", echo.Port(), 0))
	pi := waitProxyStatus(t, late, "t3")
	if want := "remotePort 0: no free port within allowPorts (3 ports;"; !strings.Contains(pi.Status, want) {
		t.Errorf("t3 with allowPorts full: status %q, want %q", pi.Status, want)
	}
	for addr := range tcpAddrs {
		if err := roundTrip(addr, []byte("still through")); err != nil {
			t.Errorf("a published proxy after the refusal: %v", err)
		}
	}
}
