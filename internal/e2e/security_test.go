package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/identity"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/tlsconf"
	"github.com/xp2p/xp2p/internal/wire"
)

// loginAs sends a Login on a raw session with the given run ID and key (signing with signer;
// a zero signer sends a random signature) and returns the server's answer.
func loginAs(t testing.TB, sess session.Session, runID string, key []byte, signer *auth.RunKey) (session.Stream, *wire.LoginResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctrl, err := sess.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exporter, err := auth.Exporter(sess.TLS(), "control")
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, auth.RunSigSize)
	rand.Read(sig)
	if signer != nil {
		sig = signer.Sign(exporter)
	}
	// (A refusal may close the session before the write saw its frame go out: read anyway.)
	writeErr := wire.Write(ctrl, &wire.Login{
		Version: "e2e",
		RunID:   runID,
		RunKey:  key,
		RunSig:  sig,
		Proof:   auth.Proof([]byte(testToken), exporter, auth.RoleClient),
	})
	ctrl.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := wire.ReadAs[*wire.LoginResult](ctrl)
	if err != nil {
		t.Fatalf("login result: %v (write: %v)", err, writeErr)
	}
	ctrl.SetReadDeadline(time.Time{})
	return ctrl, res
}

// TestRunIDTakeover is the flapping attack: a client that knows the token and another client's
// run ID (the dashboard lists it; a man in the middle sees it) logs in under it again and again.
// Each login used to replace the victim's session. Now the run ID is the hash of a key the
// victim alone holds, each login signs its session with it, and the work connections of a run
// prove the key of its own control session: the attacker is refused every time, the victim's
// session stays up and its users are served throughout.
func TestRunIDTakeover(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	echo := startTCPService(t, echoHandler)
	victim := startClient(t, clientHeader(srv.Port(), testToken, "")+tcpProxy("echo", echo.Port(), 0))
	remote := waitRunning(t, victim, "echo")
	snap := srv.Snapshot()
	if len(snap.Clients) != 1 {
		t.Fatalf("%d clients, want 1", len(snap.Clients))
	}
	victimRun := snap.Clients[0].RunID

	own := auth.NewRunKey()
	stolenKey := make([]byte, auth.RunKeySize) // as if the attacker had copied the victim's public key
	for i := range 10 {
		for _, try := range []struct {
			name   string
			key    []byte
			signer *auth.RunKey
		}{
			{"its own key", own.Public(), &own},
			{"the victim's public key", stolenKey, nil},
		} {
			// From another address than the victim's: after five failures its source is
			// limited (TestLoginLimiterSharedAddress is about sharing one).
			sess := rawSessionFrom(t, srv.Port(), []string{session.ProtocolQUIC, session.ProtocolTCP}[i%2], net.IPv4(127, 0, 0, 5))
			_, res := loginAs(t, sess, victimRun, try.key, try.signer)
			// After five failures the source is rate limited instead.
			if res.Code != wire.CodeRunKey && (i < 2 || res.Code != wire.CodeRateLimited) {
				t.Fatalf("login under the victim's run id with %s: code %q (%s), want %q", try.name, res.Code, res.Error, wire.CodeRunKey)
			}
			sess.Close("done")
		}
		// A work connection filed under the victim's run, proving the token (what sufficed
		// before): refused, so the attacker never receives the victim's users.
		if code := workConnAs(t, srv.Port(), victimRun, []byte(testToken)); code != wire.CodeAuth {
			t.Fatalf("work connection under the victim's run with a token proof: code %q, want %q", code, wire.CodeAuth)
		}
		if err := roundTrip(remote, []byte("victim still served "+strconv.Itoa(i))); err != nil {
			t.Fatalf("victim's proxy during the attack: %v", err)
		}
	}
	if n := srv.log.Count("replaced by a new session"); n > 0 {
		t.Errorf("the victim's session was replaced %d times", n)
	}
	if n := srv.log.Count("client logged in"); n != 1 {
		t.Errorf("%d logins accepted, want only the victim's", n)
	}
	if n := victim.log.Count("server session ended"); n > 0 {
		t.Errorf("the victim lost its session %d times", n)
	}
	if online := srv.Events.ClientsOnline.Load(); online != 1 {
		t.Errorf("%d clients online, want 1", online)
	}
}

// workConnAs opens a work connection under runID proving key over its TLS exporter and returns
// the server's refusal code ("" if it accepted).
func workConnAs(t testing.TB, port int, runID string, key []byte) string {
	t.Helper()
	conf, err := tlsconf.Client("", "")
	if err != nil {
		t.Fatal(err)
	}
	conf = tlsconf.Work(conf)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port), conf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	exporter, err := auth.Exporter(c.ConnectionState(), "work")
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.Write(c, &wire.WorkConn{RunID: runID, Proof: auth.Proof(key, exporter, auth.RoleClient)}); err != nil {
		t.Fatal(err)
	}
	res, err := wire.ReadAs[*wire.WorkConnResult](c)
	if err != nil {
		t.Fatalf("work connection answer: %v", err)
	}
	return res.Code
}

// udpForward relays UDP between the first peer that writes to ln and target (one peer only),
// showing each of the peer's packets to seen (nil: none) first, and returns the peer's address
// as it learns it.
// middleOf is a port in the middle of the way to srv: its UDP (the QUIC control sessions) goes
// on to the server; its TCP listener (work connections) is the caller's, a man in the middle's.
func middleOf(t testing.TB, srv *testServer) (port int, tcp net.Listener) {
	t.Helper()
	port = freeUDPTCPPort(t)
	udpLn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	udpForward(t, udpLn, srv.UDPAddr(), nil)
	tcp, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	return port, tcp
}

func udpForward(t testing.TB, ln *net.UDPConn, target *net.UDPAddr, seen func([]byte)) *atomic.Pointer[net.UDPAddr] {
	up, err := net.DialUDP("udp", nil, target)
	if err != nil {
		t.Fatal(err)
	}
	peer := new(atomic.Pointer[net.UDPAddr])
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := ln.ReadFromUDP(buf)
			if err != nil {
				return
			}
			peer.Store(from)
			if seen != nil {
				seen(buf[:n])
			}
			up.Write(buf[:n])
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			if p := peer.Load(); p != nil {
				ln.WriteToUDP(buf[:n], p)
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); up.Close(); wg.Wait() })
	return peer
}

// TestWorkConnMITM: a man in the middle lets the client's QUIC control session through to the
// real server and terminates the TCP work connections on bindPort itself (the client has no
// trustedCaFile). It used to send WorkStream{proxy:"echo"} at once and read the client's local
// service, and it collected token proofs for an offline guess. Now the client pinned the
// server's identity key at its login: a man in the middle with a key of its own fails the TLS
// handshake and never sees a byte of the work connection. One that holds the server's identity
// key itself (a stolen state directory) gets through TLS, but the server must prove the control
// session's key on each work connection before the client takes a user: it reaches nothing
// either, and the proofs it holds do not test the token. Users who come through the real server
// are served all along (on QUIC streams while the pool cannot fill).
func TestWorkConnMITM(t *testing.T) {
	t.Parallel()
	for _, stolen := range []bool{false, true} {
		name := map[bool]string{false: "own key", true: "stolen identity key"}[stolen]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			workConnMITM(t, stolen)
		})
	}
}

func workConnMITM(t *testing.T, stolenKey bool) {
	srv := startServer(t, "")
	var reached atomic.Int64
	secret := startTCPService(t, func(c *net.TCPConn) {
		reached.Add(1)
		echoHandler(c)
	})

	port, tcpLn := middleOf(t, srv)
	files := tlsconf.ServerFiles{}
	if stolenKey {
		id, _, err := identity.LoadServer(srv.cfg.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		cert := id.Certificate()
		files.Identity = &cert
	}
	mitmTLS, err := tlsconf.Server(files)
	if err != nil {
		t.Fatal(err)
	}
	var handshakes, attempts, leaked atomic.Int64
	var proofsMu sync.Mutex
	var proofs []struct{ exporter, proof []byte }
	var wg sync.WaitGroup
	var stopOnce sync.Once
	stopMITM := func() { stopOnce.Do(func() { tcpLn.Close(); wg.Wait() }) }
	t.Cleanup(stopMITM)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			raw, err := tcpLn.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer raw.Close()
				raw.SetDeadline(time.Now().Add(5 * time.Second))
				handshakes.Add(1)
				tc := tls.Server(raw, mitmTLS)
				if tc.Handshake() != nil {
					return
				}
				hello, err := wire.ReadAs[*wire.WorkConn](tc)
				if err != nil {
					return
				}
				attempts.Add(1)
				exporter, _ := auth.Exporter(tc.ConnectionState(), "work")
				proofsMu.Lock()
				proofs = append(proofs, struct{ exporter, proof []byte }{exporter, hello.Proof})
				proofsMu.Unlock()
				if i%2 == 1 {
					// A forged answer first, for a client that waits for one.
					fake := make([]byte, auth.ProofSize)
					rand.Read(fake)
					wire.Write(tc, &wire.WorkConnResult{Proof: fake})
				}
				wire.Write(tc, &wire.WorkStream{Proxy: "echo", Src: "203.0.113.66:666"})
				msg := []byte("hello, service\n")
				tc.Write(msg)
				tc.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _ := io.ReadFull(tc, msg)
				leaked.Add(int64(n))
			}()
		}
	}()

	c := startClient(t, clientHeader(port, testToken, `transport.protocol = "quic"`)+tcpProxy("echo", secret.Port(), 0))
	remote := waitRunning(t, c, "echo")
	// Two handshakes try both of the man in the middle's tricks (the pool dials one connection,
	// and after a failed one waits 1 s, 2 s, ...).
	eventually(t, 5*time.Second, func() bool { return handshakes.Load() >= 2 },
		func() string { return "the client never opened work connections to the man in the middle" })
	for i := range 5 {
		if err := roundTrip(remote, []byte("a real user "+strconv.Itoa(i))); err != nil {
			t.Fatalf("user through the real server: %v", err)
		}
	}
	stopMITM() // its connections end within 2 s
	if n := leaked.Load(); n > 0 {
		t.Errorf("the man in the middle read %d bytes of the local service", n)
	}
	if n := reached.Load(); n != 5 {
		t.Errorf("the local service saw %d connections, want the 5 real users'", n)
	}
	proofsMu.Lock()
	for _, p := range proofs {
		if auth.Verify([]byte(testToken), p.exporter, auth.RoleClient, p.proof) {
			t.Fatal("a work connection's proof verifies against the token: the man in the middle can test guesses offline")
		}
	}
	n := len(proofs)
	proofsMu.Unlock()
	switch {
	case !stolenKey && n > 0:
		t.Errorf("the man in the middle read %d work connection hellos through a key the client had not pinned", n)
	case stolenKey && c.log.Count("someone in the middle") == 0:
		t.Error("the client did not warn of the man in the middle")
	}
	t.Logf("%d work connections to the man in the middle (%d past TLS), none served; 5 users served through the real server", handshakes.Load(), n)
}

// TestServerIdentityPinned: the client trusts the server's identity key on first use and
// records it; a server on the same address with another key (a man in the middle that
// terminates TLS, or a server whose state was lost) is refused loudly, naming both
// fingerprints, and learns nothing (no login reaches it). A fingerprint pinned in the config up
// front passes its own server and refuses any other from the first connection on.
func TestServerIdentityPinned(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	port := srv.Port()
	echo := startTCPService(t, echoHandler)
	state := t.TempDir()
	c := startClient(t, clientHeader(port, testToken, `stateDir = "`+state+`"`)+tcpProxy("echo", echo.Port(), 0))
	waitRunning(t, c, "echo")
	known, err := os.ReadFile(filepath.Join(state, identity.KnownFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.0.1:" + strconv.Itoa(port) + " " + srv.Fingerprint() + "\n"; string(known) != want {
		t.Fatalf("known servers: %q, want %q", known, want)
	}
	if fi, _ := os.Stat(filepath.Join(state, identity.KnownFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("known servers file mode %v, want 0600", fi.Mode().Perm())
	}

	// Another server, another key, on the same address.
	srv.Close()
	impostor := startServerOn(t, port, "")
	eventually(t, 5*time.Second, func() bool { return c.log.Count("SERVER IDENTITY CHANGED") > 0 },
		func() string { return "the client did not refuse the changed identity" })
	line := c.log.String()[strings.Index(c.log.String(), "SERVER IDENTITY CHANGED"):]
	if !strings.Contains(line, impostor.Fingerprint()) || !strings.Contains(line, srv.Fingerprint()) {
		t.Errorf("the refusal does not name both fingerprints: %.400s", line)
	}
	time.Sleep(500 * time.Millisecond)
	if n := impostor.log.Count("client logged in") + impostor.log.Count("login refused"); n > 0 {
		t.Errorf("the impostor saw %d logins", n)
	}

	// Pinned up front: the right fingerprint passes, another is refused at once.
	good := startClient(t, clientHeader(port, testToken, `transport.tls.serverFingerprint = "`+impostor.Fingerprint()+`"`)+tcpProxy("echo2", echo.Port(), 0))
	if err := roundTrip(waitRunning(t, good, "echo2"), []byte("pinned up front")); err != nil {
		t.Fatal(err)
	}
	bad := startClient(t, clientHeader(port, testToken, `transport.tls.serverFingerprint = "`+srv.Fingerprint()+`"`)+tcpProxy("echo3", echo.Port(), 0))
	eventually(t, 5*time.Second, func() bool { return bad.log.Count("SERVER IDENTITY CHANGED") > 0 },
		func() string { return "a client with another pinned fingerprint connected" })
	if !strings.Contains(bad.log.String(), "transport.tls.serverFingerprint") {
		t.Error("the refusal does not say the pin comes from transport.tls.serverFingerprint")
	}
	if n := impostor.log.Count("client logged in"); n != 1 {
		t.Errorf("%d logins on the second server, want the one client that pinned its key", n)
	}
}

// resetTap relays UDP between one client and the server, as udpForward does, and records the
// connection IDs the client's short-header packets carry to the server: what anyone on the path
// sees, and all a stateless reset needs besides the server's reset key.
type resetTap struct {
	ln     *net.UDPConn
	client *atomic.Pointer[net.UDPAddr]
	mu     sync.Mutex
	cids   map[string]bool
}

func startResetTap(t *testing.T, server *net.UDPAddr) *resetTap {
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: freeUDPTCPPort(t)})
	if err != nil {
		t.Fatal(err)
	}
	tap := &resetTap{ln: ln, cids: map[string]bool{}}
	tap.client = udpForward(t, ln, server, func(pkt []byte) {
		if len(pkt) > 5 && pkt[0]&0xc0 == 0x40 { // QUIC short header: the server's 4-byte connection ID follows
			tap.mu.Lock()
			tap.cids[string(pkt[1:5])] = true
			tap.mu.Unlock()
		}
	})
	return tap
}

func (tap *resetTap) port() int { return tap.ln.LocalAddr().(*net.UDPAddr).Port }

// seen is how many of the server's connection IDs the tap has seen.
func (tap *resetTap) seen() int {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return len(tap.cids)
}

// reset sends the client a stateless reset for every connection ID seen, made with key (quic-go's
// tokens: HMAC-SHA256(key, connection ID), first 16 bytes), from the server's side of the tap.
func (tap *resetTap) reset(key []byte) {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	for cid := range tap.cids {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(cid))
		pkt := make([]byte, 43)
		rand.Read(pkt)
		pkt[0] = 0x40 | pkt[0]&0x3f
		copy(pkt[len(pkt)-16:], mac.Sum(nil)[:16])
		tap.ln.WriteToUDP(pkt, tap.client.Load())
	}
}

// TestStatelessResetNeedsTheServersSecret: the server's QUIC stateless-reset key used to be
// derived from auth.token, so any token holder on the path could end every other client's
// session with a forged reset. It derives from the server's identity key now: the token-derived
// reset does nothing, while one made with the server's own secret (the positive control: what a
// restarted server sends) ends the session at once.
func TestStatelessResetNeedsTheServersSecret(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	tap := startResetTap(t, srv.UDPAddr())
	c := startClient(t, clientHeader(tap.port(), testToken, `transport.protocol = "quic"`))
	eventually(t, 5*time.Second, func() bool { return c.log.Count("logged in to server") > 0 && tap.seen() > 0 },
		func() string { return "no login, or no short-header packet from the client" })

	tokenKey := auth.Derive([]byte(testToken), "xp2p stateless reset", nil)
	for range 5 { // (the client may move to a connection ID seen only later)
		tap.reset(tokenKey)
		time.Sleep(200 * time.Millisecond)
	}
	if n := c.log.Count("server session ended"); n > 0 {
		t.Fatalf("a reset made from the token ended the client's session (%d times)", n)
	}

	id, _, err := identity.LoadServer(srv.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		tap.reset(id.Derive("quic stateless reset"))
		return c.log.Count("server session ended") > 0
	}, func() string {
		return fmt.Sprintf("a reset made with the server's secret did not end the session (%d connection IDs seen): the test cannot tell", tap.seen())
	})
}

// TestLoginLimiterSharedAddress: a neighbour behind the client's address (a CGNAT, an office)
// guesses tokens as fast as it can. The limit on failed logins of that address (5, then one
// per 10 s) used to lock the real client out too, right token and all. Now a client that logged
// in before proves the ticket the server gave it and passes, even across a restart of the
// server (tickets derive from its identity), while the guesser stays at the limit: it measures
// the guesser's rate and the real client's way back.
func TestLoginLimiterSharedAddress(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	port := srv.Port()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	echo := startTCPService(t, echoHandler)
	remotePort := freeTCPPort(t)
	victim := startClient(t, clientHeader(port, testToken, `transport.protocol = "quic"`)+tcpProxy("echo", echo.Port(), remotePort))
	remote := waitRunning(t, victim, "echo")

	conf, err := tlsconf.Client("", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	guess := func() {
		defer wg.Done()
		for ctx.Err() == nil {
			code := "shed"
			var refused *loginRefused
			if err := wrongLoginTCP(addr, net.IPv4(127, 0, 0, 1), conf); errors.As(err, &refused) {
				code = refused.code
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}
	}
	for range 4 {
		wg.Add(1)
		go guess()
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	eventually(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return codes[wire.CodeRateLimited] > 0 },
		func() string { return "the guesser was never limited" })

	// The server restarts while the guesser goes on: every client logs in again, the victim
	// among them, from an address over its limit.
	srv.Close()
	attackStart := time.Now()
	mu.Lock()
	clear(codes)
	mu.Unlock()
	srv2 := startServerOn(t, port, sameIdentity(srv))
	eventually(t, 15*time.Second, func() bool { return roundTrip(remote, []byte("back despite the neighbour")) == nil },
		func() string { return "the client with the right token was locked out by its neighbour" })
	back := time.Since(attackStart)

	// A client that never logged in from that address waits its turn with the guesser.
	fresh := startClient(t, clientHeader(port, testToken, `transport.protocol = "quic"`))
	eventually(t, 5*time.Second, func() bool {
		return fresh.log.Count("rateLimited") > 0 || fresh.log.Count("too many failed logins") > 0
	},
		func() string { return "a client without a ticket was not limited: the guesser is not either" })

	time.Sleep(2 * time.Second)
	stop()
	wg.Wait()
	elapsed := time.Since(attackStart)
	checked := srv2.log.Count("wrong auth.token")
	mu.Lock()
	t.Logf("guesser from the victim's address for %s: %d guesses checked (%.2f/s; %v), the victim back in %s",
		elapsed.Round(100*time.Millisecond), checked, float64(checked)/elapsed.Seconds(), codes, back.Round(100*time.Millisecond))
	mu.Unlock()
	if limit := 5 + int(elapsed.Seconds()/10) + 1; checked > limit {
		t.Errorf("%d guesses checked in %s, want at most %d (5, then one per 10 s)", checked, elapsed.Round(time.Second), limit)
	}
}
