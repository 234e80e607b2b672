package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/testnet"
	"github.com/xp2p/xp2p/web/admin"
)

// nobody is the uid and gid the attacks run as.
const nobody = 65534

// testHelper runs what a test asks a copy of this test binary to do as another user:
// "http" makes one request (XP2P_METHOD, XP2P_URL, XP2P_CTYPE, XP2P_BODY) and prints the
// status and the body; "listen" binds XP2P_ADDR, says "ready", and prints how many bytes the
// first connection sent.
func testHelper(what string) int {
	switch what {
	case "http":
		req, err := http.NewRequest(os.Getenv("XP2P_METHOD"), os.Getenv("XP2P_URL"), strings.NewReader(os.Getenv("XP2P_BODY")))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if ct := os.Getenv("XP2P_CTYPE"); ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		body, _ := io.ReadAll(res.Body)
		fmt.Printf("%d\n%s", res.StatusCode, body)
		return 0
	case "listen":
		ln, err := net.Listen("tcp", os.Getenv("XP2P_ADDR"))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("ready")
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(15 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			fmt.Println("no connection")
			return 0
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _ := io.Copy(io.Discard, io.LimitReader(c, 1<<20))
		fmt.Printf("got %d bytes\n", n)
		return 0
	}
	return 2
}

// asNobody prepares a directory that nobody can read with copies of this test binary and of
// xp2p, and returns a function that makes a command run as nobody.
func asNobody(t *testing.T) (dir string, cmd func(name string, args ...string) *exec.Cmd) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("not root: cannot run the attacker as nobody")
	}
	dir, err := os.MkdirTemp("", "xp2p-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{self: "helper.test", xp2pBinary(t): "xp2p"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(dir, name), args...)
		c.Dir = dir
		c.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		return c
	}
}

// TestAdminLocalUser performs issue 11's attack of a local user on a client's machine: a client
// runs as root with its admin endpoint on loopback and no password, and user nobody tries to
// publish a local service of root's through it (a reload), to read its config (the token), to
// take its status, and to wait on its port for `xp2p reload` to send it the config. Each is
// refused, while root (the client's own user) keeps status and reload and the proxy keeps
// carrying data. Then root itself (or anyone with the page's password) cannot read root-only
// files through a reload's includes: the errors name the file but show nothing of it.
func TestAdminLocalUser(t *testing.T) {
	dir, nobodyCmd := asNobody(t)
	sink := testnet.StartService(t, testnet.SinkHandler)
	secretSvc := testnet.StartService(t, testnet.ReplyHandler(1<<10)) // root's private 127.0.0.1 service
	srv := testnet.StartServer(t, "")
	port := adminPort(t)
	adminKeys := fmt.Sprintf("webServer.port = %d\n", port)
	cfgText := testnet.ClientTOML(srv, adminKeys+testnet.TCPProxy("a", sink.Port(), 0))
	cfgPath := writeFile(t, "client.toml", cfgText) // 0600 in a root-only directory
	d := startDaemon(t, "client", "-c", cfgPath)
	d.waitLog(t, "admin endpoint listening")

	status := func() *admin.Status {
		t.Helper()
		code, out, errOut := runXP2P(t, "status", "-json", "-c", cfgPath)
		if code != 0 {
			t.Fatalf("root's xp2p status: exit %d: %s", code, errOut)
		}
		var st admin.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		return &st
	}
	var remote string
	testnet.Eventually(t, 10*time.Second, func() bool {
		st := status()
		if len(st.Proxies) == 1 && st.Proxies[0].Status == "running" {
			remote = st.Proxies[0].Remote
			return true
		}
		return false
	}, func() string { return "proxy a not running" })
	_, remotePort, _ := net.SplitHostPort(remote)
	flows := func(when string) {
		t.Helper()
		if n, err := testnet.Exchange(net.JoinHostPort("127.0.0.1", remotePort), 1<<20, 10*time.Second); err != nil || n != 0 {
			// The sink sends nothing back: Exchange returns once everything was written.
			if err != nil {
				t.Fatalf("%s: data through proxy a: %v", when, err)
			}
		}
	}
	flows("before the attacks")

	// The attacker's config: root's private service on a port of the server.
	evilPort := freePort(t)
	evil := testnet.ClientTOML(srv, adminKeys+testnet.TCPProxy("a", sink.Port(), 0)+testnet.TCPProxy("loot", secretSvc.Port(), evilPort))
	evilPath := filepath.Join(dir, "evil.toml")
	if err := os.WriteFile(evilPath, []byte(evil), 0o644); err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	attacks := []struct {
		name, method, path, ctype, body string
	}{
		{"reload publishing root's service", "POST", "/api/reload?file=evil.toml", "application/toml", evil},
		{"reload of the started-with file", "POST", "/api/reload", "", ""},
		{"read the config (token)", "GET", "/api/config", "", ""},
		{"status", "GET", "/api/status", "", ""},
		{"sign-in state", "GET", "/api/me", "", ""},
		{"logs", "GET", "/api/logs", "", ""},
	}
	for _, a := range attacks {
		c := nobodyCmd("helper.test")
		c.Env = append(c.Env, "XP2P_TEST_HELPER=http", "XP2P_METHOD="+a.method, "XP2P_URL="+base+a.path, "XP2P_CTYPE="+a.ctype, "XP2P_BODY="+a.body)
		out, err := c.Output()
		if err != nil {
			t.Fatalf("%s: helper as nobody: %v: %s", a.name, err, out)
		}
		code, body, _ := strings.Cut(string(out), "\n")
		if code != "403" || !strings.Contains(body, "answers only its own user") || strings.Contains(body, testnet.Token) {
			t.Errorf("nobody's %s: %s %s, want 403 and nothing of the client's", a.name, code, body)
		}
	}
	// The page's own files are the same for everyone: nobody's browser gets the page, whose
	// sign-in card then shows the refusal above.
	page := nobodyCmd("helper.test")
	page.Env = append(page.Env, "XP2P_TEST_HELPER=http", "XP2P_METHOD=GET", "XP2P_URL="+base+"/")
	if out, err := page.Output(); err != nil || !strings.HasPrefix(string(out), "200\n<!doctype html>") || strings.Contains(string(out), testnet.Token) {
		t.Errorf("nobody's GET /: %v %.100q", err, out)
	}
	for _, verb := range []string{"reload", "status"} {
		c := nobodyCmd("xp2p", verb, "-c", evilPath)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		if err := c.Run(); err == nil || !strings.Contains(stderr.String(), "answers only its own user") {
			t.Errorf("nobody's xp2p %s: %v, stderr %s", verb, err, stderr.String())
		}
	}
	if st := status(); len(st.Proxies) != 1 {
		t.Errorf("after the attacks the client has %d proxies, want 1 (a): %+v", len(st.Proxies), st.Proxies)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(evilPort)), time.Second); err == nil {
		c.Close()
		t.Errorf("root's service was published on port %d", evilPort)
	}
	flows("after the attacks")

	// nobody waits on a port for root's `xp2p reload` (the client down, its port free): root's
	// command sees who listens and sends nothing, token or password.
	squat := freePort(t)
	sq := nobodyCmd("helper.test")
	sq.Env = append(sq.Env, "XP2P_TEST_HELPER=listen", "XP2P_ADDR=127.0.0.1:"+strconv.Itoa(squat))
	sqOut, _ := sq.StdoutPipe()
	if err := sq.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sq.Process.Kill(); sq.Wait() }()
	ready := make([]byte, 6)
	if _, err := io.ReadFull(sqOut, ready); err != nil || string(ready) != "ready\n" {
		t.Fatalf("squatter: %q %v", ready, err)
	}
	squatCfg := writeFile(t, "squat.toml", strings.Replace(cfgText, adminKeys, fmt.Sprintf("webServer.port = %d\nwebServer.user = \"admin\"\nwebServer.password = \"root-admin-password-1\"\n", squat), 1))
	code, _, errOut := runXP2P(t, "reload", "-c", squatCfg)
	if code == 0 || !strings.Contains(errOut, "runs as uid 65534") || !strings.Contains(errOut, "nothing sent") {
		t.Errorf("root's reload to nobody's port: exit %d, stderr %s", code, errOut)
	}
	rest, _ := io.ReadAll(sqOut)
	if !strings.Contains(string(rest), "got 0 bytes") && !strings.Contains(string(rest), "no connection") {
		t.Errorf("the squatter received: %s", rest)
	}

	// Root's own reload works, and the proxy it adds carries data.
	good := cfgText + testnet.TCPProxy("b", sink.Port(), 0)
	os.WriteFile(cfgPath, []byte(good), 0o600)
	if code, out, errOut := runXP2P(t, "reload", "-c", cfgPath); code != 0 || !strings.Contains(out, "added     proxy b") {
		t.Fatalf("root's reload: exit %d: %s %s", code, out, errOut)
	}

	// A root-only file named in includes: the answer names it and shows none of its content.
	secret := writeFile(t, "secret.toml", "root:$y$j9T$Xq1:19000:0:99999:7:::\nZ = [\n")
	body := fmt.Sprintf("includes = [%q]\n", secret) + good
	res, err := http.Post(base+"/api/reload?file=client.toml", "application/toml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || !strings.Contains(string(answer), secret) {
		t.Errorf("reload including a root-only file: %d %s", res.StatusCode, answer)
	}
	// Not its characters, nor its structure (a line and column, what the parser expected).
	shown := strings.ReplaceAll(string(answer), secret, "FILE")
	for _, leak := range []string{"root", "$y$", "19000", "'r'", "U+", "FILE:1", "FILE:2", "Z", "expected", "syntax"} {
		if strings.Contains(shown, leak) {
			t.Errorf("the answer shows %q of the included file: %s", leak, answer)
		}
	}
	if st := status(); len(st.Proxies) != 2 {
		t.Errorf("after the refused include: %d proxies, want 2", len(st.Proxies))
	}
	flows("at the end")
}

// TestAdminThroughOwnProxy: a client that publishes its own password-less admin port through
// one of its proxies (a tcp proxy whose local service is that port) does not hand its owner's
// rights to the proxy's users: their connection comes from the client itself, which the
// endpoint refuses, while the owner's own `xp2p status` keeps working.
func TestAdminThroughOwnProxy(t *testing.T) {
	t.Parallel()
	srv := testnet.StartServer(t, "")
	port := adminPort(t)
	cfgPath := writeFile(t, "client.toml", testnet.ClientTOML(srv, fmt.Sprintf("webServer.port = %d\n", port)+testnet.TCPProxy("adm", port, 0)))
	d := startDaemon(t, "client", "-c", cfgPath)
	d.waitLog(t, "admin endpoint listening")
	var remote string
	testnet.Eventually(t, 10*time.Second, func() bool {
		code, out, _ := runXP2P(t, "status", "-json", "-c", cfgPath)
		var st admin.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Proxies) != 1 || st.Proxies[0].Status != "running" {
			return false
		}
		remote = st.Proxies[0].Remote
		return true
	}, func() string { return "proxy adm not running, or the owner's status refused" })
	_, rp, _ := net.SplitHostPort(remote)
	for _, path := range []string{"/api/config", "/api/status", "/api/me"} {
		res, err := http.Get("http://127.0.0.1:" + rp + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 403 || !strings.Contains(string(body), "through one of the client's own proxies") || strings.Contains(string(body), testnet.Token) {
			t.Errorf("a proxy user's GET %s: %d %s", path, res.StatusCode, body)
		}
	}
}
