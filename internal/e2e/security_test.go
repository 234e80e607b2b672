package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/auth"
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

// udpForward relays UDP between the first peer that writes to ln and target (one peer only).
func udpForward(t testing.TB, ln *net.UDPConn, target *net.UDPAddr) {
	up, err := net.DialUDP("udp", nil, target)
	if err != nil {
		t.Fatal(err)
	}
	var peer atomic.Pointer[net.UDPAddr]
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
}

// TestWorkConnMITM: a man in the middle lets the client's QUIC control session through to the
// real server and terminates the TCP work connections on bindPort itself (the client has no
// trustedCaFile). It used to send WorkStream{proxy:"echo"} at once and read the client's local
// service, and it collected token proofs for an offline guess. Now the server must prove the
// control session's key on each work connection before the client takes a user: the man in the
// middle reaches nothing, the proofs it holds do not test the token, and the users who come
// through the real server are served all along (on QUIC streams while the pool cannot fill).
func TestWorkConnMITM(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	var reached atomic.Int64
	secret := startTCPService(t, func(c *net.TCPConn) {
		reached.Add(1)
		echoHandler(c)
	})

	port := freeUDPTCPPort(t)
	udpLn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	udpForward(t, udpLn, srv.UDPAddr())
	tcpLn, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	mitmTLS, err := tlsconf.Server(tlsconf.ServerFiles{})
	if err != nil {
		t.Fatal(err)
	}
	var attempts, leaked atomic.Int64
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
	eventually(t, 5*time.Second, func() bool { return attempts.Load() >= 4 },
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
	if c.log.Count("someone in the middle") == 0 {
		t.Error("the client did not warn of the man in the middle")
	}
	t.Logf("%d work connections to the man in the middle, none served; 5 users served through the real server", n)
}
