package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/testnet"
	"github.com/xp2p/xp2p/peer"
	"github.com/xp2p/xp2p/rendezvous"
)

// testToken is the auth.token of every test server and of the clients that log in correctly.
const testToken = "e2e-test-token-3f7a9c"

// logBuffer collects a component's slog output so that a test can count what it logged.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count returns how many logged lines contain sub.
func (l *logBuffer) Count(sub string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

// tail returns the last n lines.
func (l *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func newLogger(t testing.TB, role string) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- %s log (tail) ---\n%s", role, lb.tail(60))
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// testServer is a running rendezvous server on loopback.
type testServer struct {
	*rendezvous.Server
	cfg  *config.Server
	log  *logBuffer
	once sync.Once
}

// Close stops the server once; later calls do nothing.
func (s *testServer) Close() {
	s.once.Do(func() { s.Server.Close() })
}

// startServer starts a server on a port the system picks; extra is appended to its TOML.
func startServer(t testing.TB, extra string) *testServer {
	return startServerOn(t, 0, extra)
}

// serverTOML is a test server's config. The port written here is a placeholder: config rejects
// bindPort = 0, which the server itself accepts (the system then picks one), so the test sets
// the real port after parsing.
func serverTOML(extra string) string {
	return `# e2e test server
bindAddr = "127.0.0.1"
bindPort = 7000
auth.method = "token"
auth.token = "` + testToken + `"
` + extra
}

// startServerOn starts a server on port (0: any free port).
func startServerOn(t testing.TB, port int, extra string) *testServer {
	t.Helper()
	return startServerWith(t, port, extra, nil)
}

// startServerWith starts a server on port whose parsed config adjust changes first (nil:
// none), for what TOML cannot say (e.g. -1: web ports on any free port).
func startServerWith(t testing.TB, port int, extra string, adjust func(*config.Server)) *testServer {
	t.Helper()
	cfg, _, err := config.ParseServer("e2e/server.toml", []byte(serverTOML(extra)))
	if err != nil {
		t.Fatalf("server config: %v", err)
	}
	cfg.BindPort = port
	if !strings.Contains(extra, "stateDir") {
		cfg.StateDir = t.TempDir() // its own identity (the default is beside the config file)
	}
	if adjust != nil {
		adjust(cfg)
	}
	log, lb := newLogger(t, "server")
	var srv *rendezvous.Server
	for try := 0; ; try++ {
		srv, err = rendezvous.New(cfg, log)
		if err != nil {
			t.Fatalf("rendezvous.New: %v", err)
		}
		err = srv.Start()
		// With bindPort 0 the system picks the UDP port and the TCP side takes the same number,
		// which another socket of the test run may hold: then try another.
		if err == nil || port != 0 || try == 20 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatalf("server start: %v", err)
	}
	ts := &testServer{Server: srv, cfg: cfg, log: lb}
	t.Cleanup(ts.Close)
	return ts
}

// sameIdentity is the config line that gives a restarted server srv's identity (its state
// directory): clients that pinned srv's key accept the new server as the same one.
func sameIdentity(srv *testServer) string {
	return fmt.Sprintf("stateDir = %q\n", srv.cfg.StateDir)
}

// clientHeader is the top of a client config; top holds further top-level keys.
func clientHeader(serverPort int, token, top string) string {
	return fmt.Sprintf(`# e2e test client
serverAddr = "127.0.0.1"
serverPort = %d
auth.token = %q
%s
`, serverPort, token, top)
}

func tcpProxy(name string, localPort, remotePort int, extra ...string) string {
	return fmt.Sprintf(`
[[proxies]]
name = %q
type = "tcp"
localIP = "127.0.0.1"
localPort = %d
remotePort = %d
%s
`, name, localPort, remotePort, strings.Join(extra, "\n"))
}

func udpProxy(name string, localPort, remotePort int) string {
	return fmt.Sprintf(`
[[proxies]]
name = %q
type = "udp"
localIP = "127.0.0.1"
localPort = %d
remotePort = %d
`, name, localPort, remotePort)
}

// testClient is a running peer client.
type testClient struct {
	*peer.Client
	cfg  *config.Client
	log  *logBuffer
	once sync.Once
}

// Close stops the client once.
func (c *testClient) Close() {
	c.once.Do(func() { c.Client.Close() })
}

// newClient parses a client config and creates (but does not start) the client.
func newClient(t testing.TB, toml string) *testClient {
	t.Helper()
	cfg, _, err := config.ParseClient("e2e/client.toml", []byte(toml))
	if err != nil {
		t.Fatalf("client config: %v\n%s", err, toml)
	}
	if !strings.Contains(toml, "stateDir") {
		cfg.StateDir = t.TempDir() // its own known servers (the default is beside the config file)
	}
	log, lb := newLogger(t, "client")
	c, err := peer.New(cfg, log)
	if err != nil {
		t.Fatalf("peer.New: %v", err)
	}
	return &testClient{Client: c, cfg: cfg, log: lb}
}

// startClient starts a client from its config text.
func startClient(t testing.TB, toml string) *testClient {
	t.Helper()
	c := newClient(t, toml)
	if err := c.Start(); err != nil {
		t.Fatalf("client start: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// eventually polls cond until it holds (testnet.Eventually).
var eventually = testnet.Eventually

// proxyInfo returns the client's view of one proxy.
func proxyInfo(c *testClient, name string) (peer.ProxyInfo, bool) {
	for _, p := range c.Proxies() {
		if p.Name == name {
			return p, true
		}
	}
	return peer.ProxyInfo{}, false
}

// waitProxyStatus waits until the server has answered for the proxy and returns its status.
func waitProxyStatus(t testing.TB, c *testClient, name string) peer.ProxyInfo {
	t.Helper()
	var pi peer.ProxyInfo
	eventually(t, 10*time.Second, func() bool {
		var ok bool
		pi, ok = proxyInfo(c, name)
		return ok && pi.Status != "pending"
	}, func() string { return fmt.Sprintf("proxy %q still pending", name) })
	return pi
}

// waitRunning waits for a proxy to be published and returns its public address.
func waitRunning(t testing.TB, c *testClient, name string) string {
	t.Helper()
	pi := waitProxyStatus(t, c, name)
	if pi.Status != "running" {
		t.Fatalf("proxy %q: status %q, want running", name, pi.Status)
	}
	if pi.Remote == "" {
		t.Fatalf("proxy %q runs without a remote address", name)
	}
	return pi.Remote
}

// tcpService is a local service on loopback run by a test (testnet.Service).
type tcpService = testnet.Service

// startTCPService serves each connection with handle, which need not close it.
var startTCPService = testnet.StartService

// echoHandler copies everything back and passes the end of input on as a half close.
func echoHandler(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// idHandler answers every connection with id and closes it.
func idHandler(id string) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		c.Write([]byte(id))
		c.CloseWrite()
		io.Copy(io.Discard, c)
	}
}

// digestReplySize is what digestHandler sends after the request has ended.
const digestReplySize = 1 << 20

// digestHandler reads the whole request (until the user's half close), then answers with its
// SHA-256, its length (8 bytes, big endian) and digestReplySize bytes of seeded random data.
func digestHandler(c *net.TCPConn) {
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		return
	}
	var hdr [40]byte
	copy(hdr[:32], h.Sum(nil))
	for i := range 8 {
		hdr[32+i] = byte(uint64(n) >> (56 - 8*i))
	}
	c.Write(hdr[:])
	io.Copy(c, io.LimitReader(seeded(99), digestReplySize))
	c.CloseWrite()
}

// seeded returns a reader of deterministic pseudo-random bytes.
func seeded(seed uint64) io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

// sha256Of returns the digest of n bytes of seeded(seed).
func sha256Of(seed uint64, n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, io.LimitReader(seeded(seed), n))
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// udpEcho is a local UDP service that sends every datagram back to its source.
type udpEcho struct {
	conn *net.UDPConn
	done chan struct{}
	mu   sync.Mutex
	srcs map[string]int // datagrams per source address
}

func startUDPEcho(t testing.TB) *udpEcho {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	e := &udpEcho{conn: conn, done: make(chan struct{}), srcs: map[string]int{}}
	go func() {
		defer close(e.done)
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			e.mu.Lock()
			e.srcs[from.String()]++
			e.mu.Unlock()
			conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() { conn.Close(); <-e.done })
	return e
}

func (e *udpEcho) Port() int { return e.conn.LocalAddr().(*net.UDPAddr).Port }

// sources returns how many distinct source addresses the service has seen.
func (e *udpEcho) sources() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.srcs)
}

// freeTCPPort returns a TCP port that was free a moment ago on 127.0.0.1.
func freeTCPPort(t testing.TB) int {
	t.Helper()
	return testnet.FreePort(t)
}

// freeUDPTCPPort returns a port free on 127.0.0.1 for both UDP and TCP a moment ago.
func freeUDPTCPPort(t testing.TB) int {
	t.Helper()
	for range 50 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// dial connects a user to addr.
func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// askID connects to addr and returns what the service says before closing.
func askID(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return string(b), err
	}
	if len(b) == 0 {
		return "", io.ErrUnexpectedEOF
	}
	return string(b), nil
}

// roundTrip sends msg over a fresh connection to an echo service behind addr and checks the echo.
func roundTrip(addr string, msg []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: got %d bytes %.20q, want %d bytes %.20q", len(got), got, len(msg), msg)
	}
	return nil
}

// goroutines returns the stacks of all goroutines, keyed by their "goroutine N" header.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		hdr, _, _ := strings.Cut(g, " [")
		out[hdr] = g
	}
	return out
}

// ownedByXP2P reports whether a goroutine's stack runs xp2p's code or the libraries under it.
func ownedByXP2P(stack string) bool {
	for _, line := range strings.Split(stack, "\n") {
		if strings.HasPrefix(line, "\t") {
			continue // file:line
		}
		if strings.Contains(line, "github.com/xp2p/xp2p/internal/e2e") {
			continue
		}
		if strings.Contains(line, "github.com/xp2p/xp2p/") || strings.Contains(line, "quic-go") || strings.Contains(line, "hashicorp/yamux") {
			return true
		}
	}
	return false
}

// leakedSince returns the stacks of xp2p goroutines that did not exist in base.
func leakedSince(base map[string]string) []string {
	var out []string
	for hdr, st := range goroutines() {
		if _, old := base[hdr]; !old && ownedByXP2P(st) {
			out = append(out, st)
		}
	}
	return out
}

// checkNoLeaks waits up to timeout for every xp2p goroutine started after base to end.
func checkNoLeaks(t testing.TB, base map[string]string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		leaked := leakedSince(base)
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of xp2p left after Close:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
