package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The xp2p binary under test, built once per test run from this package.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	if h := os.Getenv("XP2P_TEST_HELPER"); h != "" {
		os.Exit(testHelper(h))
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func xp2pBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "xp2p-cmd-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "xp2p")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runXP2P runs the binary to completion and returns its exit code and output.
func runXP2P(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runXP2PIn(t, "", args...)
}

// runXP2PIn runs the binary in directory dir ("": the test's).
func runXP2PIn(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(xp2pBinary(t), args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("xp2p %s did not finish", strings.Join(args, " "))
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// daemon is a long-running xp2p process.
type daemon struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(xp2pBinary(t), args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	d.cmd.Stdout = io.Discard
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("xp2p %s stderr:\n%s", strings.Join(args, " "), d.stderr.String())
		}
	})
	return d
}

// waitLog waits until the process has logged sub.
func (d *daemon) waitLog(t *testing.T, sub string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.stderr.String(), sub) {
		select {
		case <-d.done:
			t.Fatalf("process exited (%v) before logging %q", d.cmd.ProcessState, sub)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("process never logged %q", sub)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// interrupt sends SIGINT and requires exit code 0 within 2 s.
func (d *daemon) interrupt(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(2 * time.Second):
		t.Fatal("no exit within 2 s of SIGINT")
	}
	took := time.Since(start)
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0", code)
	}
	return took
}

// freePort returns a port that was free for both UDP and TCP on all addresses a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", ":"+strconv.Itoa(port))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// portFree binds the port on UDP and TCP (wildcard address) and releases it.
func portFree(port int, udp, tcp bool) error {
	if udp {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		if err != nil {
			return err
		}
		u.Close()
	}
	if tcp {
		l, err := net.Listen("tcp4", ":"+strconv.Itoa(port))
		if err != nil {
			return err
		}
		l.Close()
	}
	return nil
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version", "-v"} {
		code, out, _ := runXP2P(t, arg)
		if code != 0 || !strings.HasPrefix(out, "xp2p "+version+"\n  commit  ") || !strings.Contains(out, "\n  built   ") {
			t.Errorf("xp2p %s: exit %d, output %q", arg, code, out)
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"-h"},
		{"server", "--help"}, {"client", "--help"}, {"verify", "--help"}, {"demo", "--help"},
		{"server", "-h"},
	} {
		code, out, errOut := runXP2P(t, args...)
		if code != 0 || !strings.Contains(out+errOut, "Usage") {
			t.Errorf("xp2p %s: exit %d, output %q", strings.Join(args, " "), code, out+errOut)
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"server"}, {"server", "-x"}, {"verify", "-c", "a", "extra"}} {
		if code, _, errOut := runXP2P(t, args...); code != 2 || errOut == "" {
			t.Errorf("xp2p %s: exit %d (want 2), stderr %q", strings.Join(args, " "), code, errOut)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, content string
		code          int
		want          []string // each in the output
	}{
		{"server.toml", "bindPort = 7000\nauth.method = \"token\"\nauth.token = \"x\"\nallowPorts = [{ start = 6000, end = 7000 }, { single = 8080 }]\n", 0,
			[]string{"server.toml: valid server config"}},
		{"client.toml", "serverAddr = \"1.2.3.4\"\nserverPort = 7000\n\n[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n", 0,
			[]string{"client.toml: valid client config"}},
		{"frp-ignored.toml", "serverAddr = \"1.2.3.4\"\nlog.disablePrintColor = true\n", 0,
			[]string{"warning:", "log.disablePrintColor", "valid client config"}},
		{"unknown-key.toml", "bindPort = 7000\n  bindPortt = 3\n[webServer]\nprot = 7500\n", 1,
			[]string{`unknown-key.toml:2:3: bindPortt: unknown key (did you mean "bindPort"?)`, `unknown-key.toml:4:1: webServer.prot: unknown key (did you mean "port"?)`}},
		{"slashes.toml", "bindPort = 7000\n// a comment\n", 1,
			[]string{"slashes.toml:2:1:", `TOML comments start with "#", not "//"`}},
		{"wrong-type.toml", "bindPort = \"7000\"\n", 1,
			[]string{"wrong-type.toml:1:12: bindPort: expected an integer, got a string"}},
		{"client-errors.toml", "serverAddr = \"1.2.3.4\"\n[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 70000\n[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPort = 23\n", 1,
			[]string{"client-errors.toml:6:1: proxies[0].remotePort: port 70000 is out of range 0-65535", `client-errors.toml:8:1: proxies[1].name: "a" is already the name of proxies[0]`}},
		// The frp guides' dashboard: runs, but verify says it loudly.
		{"guide-dashboard.toml", "bindPort = 7000\nwebServer.addr = \"0.0.0.0\"\nwebServer.port = 7500\nwebServer.user = \"admin\"\nwebServer.password = \"admin\"\n", 0,
			[]string{"warning: !!! SECURITY WARNING: the dashboard listens on 0.0.0.0:7500", `well-known password "admin"`, "valid server config"}},
		{"kcp.toml", "serverAddr = \"1.2.3.4\"\ntransport.protocol = \"kcp\"\n", 1,
			[]string{`kcp.toml:2:1: transport.protocol: "kcp" is an frp transport`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.name, tc.content)
			code, out, errOut := runXP2P(t, "verify", "-c", path)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			all := out + errOut
			for _, w := range tc.want {
				if !strings.Contains(all, filepath.Dir(path)+"/"+w) && !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		code, _, errOut := runXP2P(t, "verify", "-c", filepath.Join(t.TempDir(), "nope.toml"))
		if code != 1 || !strings.Contains(errOut, "xp2p verify: config file ") || !strings.Contains(errOut, "nope.toml does not exist") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
}

// TestServerAndClientSignals runs `xp2p server` and `xp2p client` as processes: the client's
// tcp proxy works through the server; SIGINT ends each with exit code 0 within 2 s and its ports
// are free at once.
func TestServerAndClientSignals(t *testing.T) {
	t.Parallel()
	serverPort, udpPort := freePort(t), freePort(t)
	for udpPort == serverPort {
		udpPort = freePort(t)
	}
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello from the service"))
			c.Close()
		}
	}()

	srvConf := writeFile(t, "server.toml", fmt.Sprintf("bindAddr = \"127.0.0.1\"\nbindPort = %d\nauth.token = \"signal-test\"\n", serverPort))
	cliConf := writeFile(t, "client.toml", fmt.Sprintf(`serverAddr = "127.0.0.1"
serverPort = %d
auth.token = "signal-test"
transport.udpPort = %d

[[proxies]]
name = "svc"
type = "tcp"
localIP = "127.0.0.1"
localPort = %d
remotePort = 0
`, serverPort, udpPort, svc.Addr().(*net.TCPAddr).Port))

	server := startDaemon(t, "server", "-c", srvConf)
	server.waitLog(t, "xp2p server listening")
	client := startDaemon(t, "client", "-c", cliConf)
	client.waitLog(t, "proxy published")
	_, rest, _ := strings.Cut(client.stderr.String(), "proxy published")
	_, rest, _ = strings.Cut(rest, "remote=")
	remote, _, _ := strings.Cut(rest, " ")
	c, err := net.DialTimeout("tcp", remote, 5*time.Second)
	if err != nil {
		t.Fatalf("dial the published proxy %q: %v", remote, err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "hello from the service" {
		t.Fatalf("through the proxy: %q", got)
	}

	took := client.interrupt(t)
	t.Logf("client exited %s after SIGINT", took.Round(time.Millisecond))
	if err := portFree(udpPort, true, false); err != nil {
		t.Errorf("client's UDP port still bound after exit: %v", err)
	}
	remotePort, _ := strconv.Atoi(remote[strings.LastIndex(remote, ":")+1:])
	deadline := time.Now().Add(2 * time.Second)
	for portFree(remotePort, false, true) != nil {
		if time.Now().After(deadline) {
			t.Errorf("the server kept the proxy port %d of a client that left", remotePort)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	took = server.interrupt(t)
	t.Logf("server exited %s after SIGINT", took.Round(time.Millisecond))
	if err := portFree(serverPort, true, true); err != nil {
		t.Errorf("server port still bound after exit: %v", err)
	}
	if !strings.Contains(server.stderr.String(), "xp2p server stopped") {
		t.Error("server did not log its stop")
	}
}

// TestClientLoginFailExit: a client with the wrong token and loginFailExit exits 1 and says why.
func TestClientLoginFailExit(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	srvConf := writeFile(t, "server.toml", fmt.Sprintf("bindAddr = \"127.0.0.1\"\nbindPort = %d\nauth.token = \"right\"\n", port))
	server := startDaemon(t, "server", "-c", srvConf)
	server.waitLog(t, "xp2p server listening")
	cliConf := writeFile(t, "client.toml", fmt.Sprintf("serverAddr = \"127.0.0.1\"\nserverPort = %d\nauth.token = \"wrong\"\nloginFailExit = true\n", port))
	code, _, errOut := runXP2P(t, "client", "-c", cliConf)
	if code != 1 || !strings.Contains(errOut, "authentication failed: wrong auth.token") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	server.interrupt(t)
}

func TestMissingConfig(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"server", "client"} {
		code, _, errOut := runXP2P(t, cmd, "-c", filepath.Join(t.TempDir(), "nope.toml"))
		if code != 1 || !strings.Contains(errOut, "xp2p "+cmd+": config file ") || !strings.Contains(errOut, "nope.toml does not exist") {
			t.Errorf("xp2p %s with a missing file: exit %d, stderr %q", cmd, code, errOut)
		}
	}
}

// TestConfigSearch: without -c a command takes the config from the usual places and says which
// it took, or says where it looked; a config of the other kind says what it is.
func TestConfigSearch(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	for _, cmd := range []string{"server", "client", "status", "reload", "verify"} {
		code, _, errOut := runXP2PIn(t, empty, cmd)
		if code != 2 || !strings.Contains(errOut, "no config file: give one with -c FILE") || !strings.Contains(errOut, "/etc/xp2p/") || !strings.Contains(errOut, "./") {
			t.Errorf("xp2p %s without a config anywhere: exit %d, stderr %q", cmd, code, errOut)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "frpc.toml"), []byte("serverAddr = \"1.2.3.4\"\nauth.token = \"x\"\n"), 0o600)
	code, out, errOut := runXP2PIn(t, dir, "verify")
	if code != 0 || !strings.Contains(errOut, "using ./frpc.toml (no -c given)") || !strings.Contains(out, "valid client config") {
		t.Errorf("verify with ./frpc.toml: exit %d, %q %q", code, out, errOut)
	}

	client := writeFile(t, "client.toml", "serverAddr = \"1.2.3.4\"\nauth.token = \"x\"\n[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\n")
	code, _, errOut = runXP2P(t, "server", "-c", client)
	if code != 1 || !strings.Contains(errOut, "is a client config") || !strings.Contains(errOut, "xp2p client -c "+client) {
		t.Errorf("a client config given to xp2p server: exit %d, %q", code, errOut)
	}
	server := writeFile(t, "server.toml", "bindPort = 7000\nauth.token = \"x\"\n")
	code, _, errOut = runXP2P(t, "client", "-c", server)
	if code != 1 || !strings.Contains(errOut, "looks like a server config") || !strings.Contains(errOut, "xp2p server -c "+server) {
		t.Errorf("a server config given to xp2p client: exit %d, %q", code, errOut)
	}
}

// TestPortTaken: a bindPort in use says which key, once, with a hint.
func TestPortTaken(t *testing.T) {
	t.Parallel()
	u, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	port := u.LocalAddr().(*net.UDPAddr).Port
	cfg := writeFile(t, "server.toml", fmt.Sprintf("bindPort = %d\nauth.token = \"x\"\n", port))
	code, _, errOut := runXP2P(t, "server", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("bindPort %d is taken", port)) || strings.Count(errOut, "listen udp") != 1 {
		t.Errorf("xp2p server on a taken port: exit %d, stderr %q", code, errOut)
	}
}

// TestUnreachableServer: a client whose server is not running says so at once (TCP refused,
// with a hint, while QUIC still waits for an answer), on one line, and keeps trying.
func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	cfg := writeFile(t, "client.toml", fmt.Sprintf("serverAddr = \"127.0.0.1\"\nserverPort = %d\nauth.token = \"x\"\ntransport.dialServerTimeout = 3\n", port))
	xp2pBinary(t) // built before the clock starts
	start := time.Now()
	d := startDaemon(t, "client", "-c", cfg)
	d.waitLog(t, "cannot reach the server yet")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the first word on an unreachable server came after %s", took)
	}
	d.waitLog(t, `msg="cannot reach the server" `)
	out := d.stderr.String()
	for _, want := range []string{"connection refused", "still_trying=quic", "hint=", "is xp2p server running there", "no answer from 127.0.0.1:" + strconv.Itoa(port) + " over UDP", "retry_in="} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `\n`) {
		t.Errorf("a log line holds a literal \\n:\n%s", out)
	}
	select {
	case <-d.done:
		t.Fatalf("the client gave up: %v", d.cmd.ProcessState)
	default:
	}
	d.interrupt(t)
}
