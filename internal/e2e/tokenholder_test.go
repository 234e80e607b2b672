package e2e

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/peer"
	"github.com/xp2p/xp2p/rendezvous"
)

// Attacks by a client that knows the shared auth.token and wants what others registered: their
// names, their visitors' P2P sessions, the server's ports and memory.

// rawClient is a logged-in client that speaks the control protocol by hand, as an attacker's
// modified client would: it answers the server's liveness pings (so that it looks alive) and
// records every PeerSession the server sends it.
type rawClient struct {
	t    testing.TB
	sess session.Session
	ctrl session.Stream

	writeMu sync.Mutex
	results chan *wire.NewProxyResult
	connect chan *wire.ConnectResult
	done    chan struct{} // the server ended the session

	mu     sync.Mutex
	offers []*wire.PeerSession // every PeerSession received (as provider or visitor)
}

// newRawClient logs in from ip (QUIC) with the right token and starts reading.
func newRawClient(t testing.TB, srv *testServer, ip net.IP) *rawClient {
	t.Helper()
	sess := rawSessionFrom(t, srv.Port(), session.ProtocolQUIC, ip)
	r := &rawClient{t: t, sess: sess, ctrl: rawLogin(t, sess),
		results: make(chan *wire.NewProxyResult, 1<<15), connect: make(chan *wire.ConnectResult, 1024), done: make(chan struct{})}
	go r.read()
	return r
}

func (r *rawClient) read() {
	defer close(r.done)
	for {
		msg, err := wire.Read(r.ctrl)
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *wire.Ping:
			r.send(&wire.Pong{Seq: m.Seq})
		case *wire.NewProxyResult:
			r.results <- m
		case *wire.ConnectResult:
			if m.Session != nil {
				r.record(m.Session)
			}
			select {
			case r.connect <- m:
			default:
			}
		case *wire.PeerSession:
			r.record(m)
		}
	}
}

func (r *rawClient) record(ps *wire.PeerSession) {
	r.mu.Lock()
	r.offers = append(r.offers, ps)
	r.mu.Unlock()
}

// providerOffers counts the sessions the server offered this client as a provider.
func (r *rawClient) providerOffers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ps := range r.offers {
		if ps.Role == wire.RoleProvider {
			n++
		}
	}
	return n
}

func (r *rawClient) send(m wire.Message) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	return wire.Write(r.ctrl, m)
}

// register asks for a proxy and returns the server's answer ("" when published), or
// "session ended" when the server cut the session instead.
func (r *rawClient) register(m *wire.NewProxy) string {
	r.t.Helper()
	if err := r.send(m); err != nil {
		return "session ended"
	}
	select {
	case res := <-r.results:
		if res.Name != m.Name {
			r.t.Fatalf("answer for %q while waiting for %q", res.Name, m.Name)
		}
		return res.Error
	case <-r.done:
		return "session ended"
	case <-time.After(5 * time.Second):
		r.t.Fatalf("no answer to newProxy %q", m.Name)
		return ""
	}
}

// leave ends the session and waits until the server has seen it go.
func (r *rawClient) leave(srv *testServer) {
	r.t.Helper()
	before := srv.log.Count("client disconnected")
	r.sess.Close("attacker leaves")
	eventually(r.t, 5*time.Second, func() bool { return srv.log.Count("client disconnected") > before },
		func() string { return "the server did not see the attacker leave" })
}

// proxySnapshot is the server's (the dashboard's) view of one proxy name.
func proxySnapshot(t *testing.T, srv *testServer, name string) rendezvous.ProxySnapshot {
	t.Helper()
	for _, p := range srv.Snapshot().Proxies {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("the server does not list proxy %q", name)
	return rendezvous.ProxySnapshot{}
}

// ownerIDs returns the ids of the clients whose snapshot lists name among their proxies.
func clientIDsWith(srv *testServer, name string, version string) []string {
	var ids []string
	for _, c := range srv.Snapshot().Clients {
		if slices.Contains(c.Proxies, name) && (version == "" || c.Version == version) {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// TestNameTakeover: a token holder tries to take other clients' names through
// loadBalancer.group (of a tcp proxy and of an xp2p service), and through frp's user prefix
// (registering "bob.files" before user bob's "files" comes). It gets no name of theirs and no
// PeerSession of their visitors; the visitors and users keep reaching the real providers, and
// after the attacker leaves the server lists exactly the real owners.
func TestNameTakeover(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	echo := startTCPService(t, echoHandler)
	web := startTCPService(t, idHandler("real web"))
	webPort := freeTCPPort(t)
	prov := startClient(t, clientHeader(srv.Port(), testToken, "")+
		p2pService("nas", "xp2p", "nas-secret", echo.Port())+tcpProxy("web", web.Port(), webPort))
	webAddr := waitRunning(t, prov, "web")
	waitProxyStatus(t, prov, "nas")
	provID := clientIDsWith(srv, "web", "")

	// The attacker pre-registers the name that frp would give user bob's service "files".
	attacker := newRawClient(t, srv, net.IPv4(127, 0, 0, 1))
	if err := attacker.register(&wire.NewProxy{Name: "bob.files", Type: wire.ProxyXP2P}); err != "" {
		t.Fatalf("the attacker's own service bob.files: %s", err)
	}
	bob := startClient(t, clientHeader(srv.Port(), testToken, `user = "bob"`)+p2pService("files", "xp2p", "bob-secret", echo.Port()))
	if pi := waitProxyStatus(t, bob, "files"); pi.Status != "running" {
		t.Fatalf("bob's files after the attacker's bob.files: %q, want running", pi.Status)
	}

	key := auth.GroupKey("guess", "x")
	for _, tc := range []struct {
		req  *wire.NewProxy
		want string
	}{
		{&wire.NewProxy{Name: "nas", Type: wire.ProxyTCP, Group: "x", GroupKey: key}, `proxy name "nas" is already in use by another client, not in group "x"`},
		{&wire.NewProxy{Name: "web", Type: wire.ProxyTCP, Group: "x", GroupKey: key, RemotePort: webPort}, `proxy name "web" is already in use by another client, not in group "x"`},
		{&wire.NewProxy{Name: "web", Type: wire.ProxyTCP, Group: "x", GroupKey: key}, `proxy name "web" is already in use by another client, not in group "x"`},
	} {
		if got := attacker.register(tc.req); !strings.Contains(got, tc.want) {
			t.Errorf("attacker's %s %q in group %q: %q, want a refusal %q", tc.req.Type, tc.req.Name, tc.req.Group, got, tc.want)
		}
	}
	// An xp2p service has no group: a client that claims one is cut off.
	grabber := newRawClient(t, srv, net.IPv4(127, 0, 0, 1))
	if got := grabber.register(&wire.NewProxy{Name: "nas", Type: wire.ProxyXP2P, Group: "x"}); got != "session ended" {
		t.Errorf("xp2p service nas in group x: %q, want the session cut", got)
	}

	// Visitors of both services and users of web reach the real providers; the attackers are
	// offered nothing.
	for i, tc := range []struct{ service, user, secret string }{{"nas", "", "nas-secret"}, {"files", "bob", "bob-secret"}} {
		vport := freeTCPPort(t)
		extra := ""
		if tc.user != "" {
			extra = fmt.Sprintf("serverUser = %q", tc.user)
		}
		startClient(t, clientHeader(srv.Port(), testToken, "")+p2pVisitor(fmt.Sprintf("v%d", i), "xp2p", tc.service, tc.secret, vport, extra))
		echoThrough(t, fmt.Sprintf("127.0.0.1:%d", vport), 64<<10)
	}
	if got, err := askID(webAddr); err != nil || got != "real web" {
		t.Errorf("web answered %q (%v), want the real service", got, err)
	}
	if n := attacker.providerOffers() + grabber.providerOffers(); n > 0 {
		t.Errorf("the attackers received %d PeerSessions of other clients' visitors", n)
	}

	attacker.leave(srv)
	for _, tc := range []struct{ name, typ string }{{"nas", wire.ProxyXP2P}, {"web", wire.ProxyTCP}, {"bob.files", wire.ProxyXP2P}} {
		p := proxySnapshot(t, srv, tc.name)
		if !p.Online || p.Type != tc.typ || len(p.Owners) != 1 {
			t.Errorf("after the attacker left, %s is %+v, want online, of type %s, with its one real owner", tc.name, p, tc.typ)
		}
	}
	if p := proxySnapshot(t, srv, "nas"); !slices.Equal(p.Owners, provID) {
		t.Errorf("nas is owned by %v, want the real provider %v", p.Owners, provID)
	}
	// A visitor that comes now still reaches the real nas.
	vport := freeTCPPort(t)
	startClient(t, clientHeader(srv.Port(), testToken, "")+p2pVisitor("late", "xp2p", "nas", "nas-secret", vport))
	echoThrough(t, fmt.Sprintf("127.0.0.1:%d", vport), 64<<10)
}

// flood sends n Connects for service on each raw client and returns how many the server paired
// and how many it refused for waiting on their handshake.
func flood(t *testing.T, clients []*rawClient, service string, n int) (paired, refused int) {
	t.Helper()
	for _, r := range clients {
		for i := range n {
			if err := r.send(&wire.Connect{ReqID: uint64(i + 1), Service: service}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, r := range clients {
		for range n {
			select {
			case res := <-r.connect:
				switch {
				case res.Session != nil:
					paired++
				case strings.Contains(res.Error, "wait for their visitors' secretKey"):
					refused++
				default:
					t.Errorf("connect refused for another reason: %s", res.Error)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d connects answered", paired+refused, len(clients)*n)
			}
		}
	}
	return paired, refused
}

// TestP2PUnprovenFlood: a token holder without the service's secretKey asks for sessions to it,
// 5 logins × 64 Connects from one address through one server and 2 × 64 through another (a
// provider took 256 sessions, which never expired: this blocked every visitor). Each server
// holds at most 8 from that address at once, the provider (on both servers) takes 8 in all, a
// real visitor from another address gets through at once, and the attacker's sessions end
// after 10 s everywhere.
func TestP2PUnprovenFlood(t *testing.T) {
	t.Parallel()
	srvA, srvB := startServer(t, ""), startServer(t, "")
	echo := startTCPService(t, echoHandler)
	prov := startClient(t, clientHeader(srvA.Port(), testToken, "")+
		fmt.Sprintf("[[servers]]\naddr = \"127.0.0.1\"\nport = %d\n", srvB.Port())+
		p2pService("nas", "xp2p", "nas-secret", echo.Port()))
	eventually(t, 10*time.Second, func() bool { pi, _ := proxyInfo(prov, "nas"); return pi.Status == "running" },
		func() string { pi, _ := proxyInfo(prov, "nas"); return "nas: " + pi.Status })

	attackerIP := net.IPv4(127, 0, 0, 2)
	var onA, onB []*rawClient
	for range 5 {
		onA = append(onA, newRawClient(t, srvA, attackerIP))
	}
	for range 2 {
		onB = append(onB, newRawClient(t, srvB, attackerIP))
	}
	start := time.Now()
	pairedA, refusedA := flood(t, onA, "nas", 64)
	pairedB, refusedB := flood(t, onB, "nas", 64)
	t.Logf("flood: server A paired %d and refused %d, server B paired %d and refused %d", pairedA, refusedA, pairedB, refusedB)
	// A session the provider refused frees its server's slot at once, so a server may pair more
	// than 8 in all: what is bounded is how many wait at once.
	if a, b := len(srvA.Snapshot().Sessions), len(srvB.Snapshot().Sessions); a > 8 || b > 8 || pairedA+pairedB < 8 {
		t.Errorf("after the flood, the servers hold %d and %d unproven sessions from one address (%d paired), want at most 8 each",
			a, b, pairedA+pairedB)
	}
	eventually(t, 5*time.Second, func() bool { return prov.log.Count("p2p session offered") >= 8 },
		func() string {
			return fmt.Sprintf("the provider took %d sessions", prov.log.Count("p2p session offered"))
		})
	if n := prov.log.Count("p2p session offered"); n > 8 {
		t.Errorf("the provider took %d unproven sessions from one address, want at most 8", n)
	}
	eventually(t, 5*time.Second, func() bool { return prov.log.Count("p2p session refused") == pairedA+pairedB-8 },
		func() string {
			return fmt.Sprintf("the provider refused %d of the %d sessions beyond its 8", prov.log.Count("p2p session refused"), pairedA+pairedB-8)
		})

	// A real visitor, from another address, at once.
	vport := freeTCPPort(t)
	visitor := startClient(t, clientHeader(srvA.Port(), testToken, "")+p2pVisitor("v", "xp2p", "nas", "nas-secret", vport))
	begin := time.Now()
	echoThrough(t, fmt.Sprintf("127.0.0.1:%d", vport), 64<<10)
	t.Logf("the real visitor's first echo %s after it started", time.Since(begin).Round(time.Millisecond))

	if testing.Short() {
		return // the rest waits 10 s for the unproven sessions' deadline
	}
	// The attacker's sessions end at the handshake deadline; the real one stays.
	eventually(t, 15*time.Second, func() bool {
		return len(srvA.Snapshot().Sessions) == 1 && len(srvB.Snapshot().Sessions) == 0 && len(prov.Sessions()) == 1
	}, func() string {
		return fmt.Sprintf("%s after the flood: %d sessions on server A, %d on B, %d on the provider", time.Since(start).Round(time.Second),
			len(srvA.Snapshot().Sessions), len(srvB.Snapshot().Sessions), len(prov.Sessions()))
	})
	t.Logf("the attacker's sessions were gone %s after the flood", time.Since(start).Round(100*time.Millisecond))
	if elapsed := time.Since(start); elapsed < 9*time.Second {
		t.Errorf("unproven sessions ended after %s: before their deadline", elapsed)
	}
	echoThrough(t, fmt.Sprintf("127.0.0.1:%d", vport), 64<<10)
	if got := sessionTo(t, visitor, "nas", func(peer.SessionInfo) bool { return true }); got.TimeToReady <= 0 {
		t.Errorf("the real session has no time to ready: %+v", got)
	}
}

// countStatuses waits until the server answered every proxy of the clients and counts those
// running; the others must be waiting for room under the client's limits.
func countStatuses(t *testing.T, clients []*testClient, names [][]string) (running int) {
	t.Helper()
	for i, c := range clients {
		for _, name := range names[i] {
			pi := waitProxyStatus(t, c, name)
			switch {
			case pi.Status == "running":
				running++
			case strings.HasPrefix(pi.Status, "waiting: ") && strings.Contains(pi.Status, "over this client's limit"):
			default:
				t.Errorf("proxy %s: status %q", name, pi.Status)
			}
		}
	}
	return running
}

// TestQuotaPerIdentity: maxPortsPerClient holds per identity (one user from one address), not
// per session: four sessions of one client identity held 20 ports with maxPortsPerClient = 5.
// Inventing users from one address buys at most 4 identities' worth. A user that registered
// before keeps its ports working throughout.
func TestQuotaPerIdentity(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "maxPortsPerClient = 5\n")
	svc := startTCPService(t, idHandler("svc"))
	alice := startClient(t, clientHeader(srv.Port(), testToken, `user = "alice"`)+tcpProxy("a1", svc.Port(), 0)+tcpProxy("a2", svc.Port(), 0))
	aliceAddrs := []string{waitRunning(t, alice, "a1"), waitRunning(t, alice, "a2")}

	fiveProxies := func(prefix string) (string, []string) {
		var toml string
		var names []string
		for j := range 5 {
			name := fmt.Sprintf("%s%d", prefix, j)
			toml += tcpProxy(name, svc.Port(), 0)
			names = append(names, name)
		}
		return toml, names
	}
	// Four sessions of one identity (no user, this address), five ports each.
	var same []*testClient
	var sameNames [][]string
	for i := range 4 {
		toml, names := fiveProxies(fmt.Sprintf("s%d-", i))
		same = append(same, startClient(t, clientHeader(srv.Port(), testToken, "")+toml))
		sameNames = append(sameNames, names)
	}
	if n := countStatuses(t, same, sameNames); n != 5 {
		t.Errorf("4 sessions of one identity hold %d ports, want 5 (maxPortsPerClient)", n)
	}
	// A session that leaves frees its identity's ports: the others, waiting, get them.
	left := -1
	for i, c := range same {
		for _, name := range sameNames[i] {
			if pi, _ := proxyInfo(c, name); pi.Status == "running" && left < 0 {
				left = i
			}
		}
	}
	same[left].Close()
	begin := time.Now()
	// They ask again with backoff, at most every 30 s (+20 % jitter).
	eventually(t, 40*time.Second, func() bool {
		n := 0
		for i, c := range same {
			for _, name := range sameNames[i] {
				if pi, _ := proxyInfo(c, name); i != left && pi.Status == "running" {
					n++
				}
			}
		}
		return n == 5
	}, func() string { return "the identity's other sessions did not get the freed ports" })
	t.Logf("the other sessions held the freed ports %s after one left", time.Since(begin).Round(100*time.Millisecond))
	// Five invented users from the same address, five ports each: the address holds at most
	// 4 × 5 ports in all (alice's 2 and the 5 above count).
	var invented []*testClient
	var inventedNames [][]string
	for i := range 5 {
		toml, names := fiveProxies(fmt.Sprintf("u%d-", i))
		invented = append(invented, startClient(t, clientHeader(srv.Port(), testToken, fmt.Sprintf("user = \"u%d\"", i))+toml))
		inventedNames = append(inventedNames, names)
	}
	if n := countStatuses(t, invented, inventedNames); n != 20-5-2 {
		t.Errorf("5 invented users hold %d ports, want %d (4 × maxPortsPerClient from one address, less what is held)", n, 20-5-2)
	}
	for _, addr := range aliceAddrs {
		if got, err := askID(addr); err != nil || got != "svc" {
			t.Errorf("alice's proxy %s answered %q (%v)", addr, got, err)
		}
	}
}

// registerAll sends every NewProxy at once and returns how many the server published and how
// many it refused as over the client's limit.
func (r *rawClient) registerAll(reqs []*wire.NewProxy) (published, overLimit int) {
	r.t.Helper()
	for _, m := range reqs {
		if err := r.send(m); err != nil {
			r.t.Fatal(err)
		}
	}
	for range reqs {
		select {
		case res := <-r.results:
			switch {
			case res.Error == "":
				published++
			case res.Code == wire.CodeQuota:
				overLimit++
			default:
				r.t.Errorf("%s refused: %s", res.Name, res.Error)
			}
		case <-time.After(10 * time.Second):
			r.t.Fatalf("%d of %d newProxy answered", published+overLimit, len(reqs))
		}
	}
	return published, overLimit
}

// TestNameFlood: a token holder registers xp2p service names as fast as it can (37,000 in 3 s
// took 42 MB), then churns through them (10,000 offline names pushed real proxies' figures out
// of /api/proxies). It holds at most maxProxiesPerClient (1000) at once, its offline names
// push out only its own, and the real proxies, live or offline, keep their figures.
func TestNameFlood(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	echo := startTCPService(t, echoHandler)
	home := startClient(t, clientHeader(srv.Port(), testToken, `user = "home"`)+
		tcpProxy("web", echo.Port(), 0)+p2pService("nas", "xp2p", "k", echo.Port()))
	gone := startClient(t, clientHeader(srv.Port(), testToken, `user = "gone"`)+tcpProxy("old", echo.Port(), 0))
	if err := roundTrip(waitRunning(t, home, "web"), []byte("home's traffic")); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(waitRunning(t, gone, "old"), []byte("traffic of a proxy that goes offline")); err != nil {
		t.Fatal(err)
	}
	waitProxyStatus(t, home, "nas")
	gone.Close()
	eventually(t, 5*time.Second, func() bool { return !proxySnapshot(t, srv, "gone.old").Online },
		func() string { return "gone.old still online" })

	attacker := newRawClient(t, srv, net.IPv4(127, 0, 0, 2))
	round := func(r, n int) []*wire.NewProxy {
		var reqs []*wire.NewProxy
		for i := range n {
			reqs = append(reqs, &wire.NewProxy{Name: fmt.Sprintf("f%02d-%05d", r, i), Type: wire.ProxyXP2P})
		}
		return reqs
	}
	start := time.Now()
	published, over := attacker.registerAll(round(0, 1100))
	t.Logf("1100 names asked for in %s: %d published, %d over the limit", time.Since(start).Round(time.Millisecond), published, over)
	if published != 1000 || over != 100 {
		t.Fatalf("the attacker got %d names (%d refused), want 1000 (maxProxiesPerClient's default) and 100", published, over)
	}
	// Churn: drop them all, take 1000 new ones, 11 times: 11,000 offline names.
	for r := 1; r <= 11; r++ {
		for _, m := range round(r-1, 1000) {
			attacker.send(&wire.CloseProxy{Name: m.Name})
		}
		if published, _ := attacker.registerAll(round(r, 1000)); published != 1000 {
			t.Fatalf("round %d: %d names published, want 1000", r, published)
		}
	}
	all, offline := srv.Stats.Len()
	t.Logf("after the churn (%s): the server keeps %d names, %d offline", time.Since(start).Round(time.Millisecond), all, offline)
	if offline > 1001 {
		t.Errorf("the server keeps %d offline names, want the attacker's 1000 at most and gone.old", offline)
	}
	for _, tc := range []struct {
		name   string
		online bool
		bytes  bool
	}{{"home.web", true, true}, {"home.nas", true, false}, {"gone.old", false, true}} {
		p := proxySnapshot(t, srv, tc.name)
		if p.Online != tc.online || (tc.bytes && p.BytesIn == 0) {
			t.Errorf("%s after the flood: %+v, want online %v with its traffic", tc.name, p, tc.online)
		}
	}
	if err := roundTrip(waitRunning(t, home, "web"), []byte("home's traffic after the flood")); err != nil {
		t.Error(err)
	}
}
