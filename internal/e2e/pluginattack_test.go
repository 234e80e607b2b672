package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/web/admin"
)

// TestPluginUsersCannotDriveTheClient: the users of a client's socks5 and http_proxy plugins
// (published on the server's ports; the attack needs only to be a user, with the plugins'
// passwords) ask to be connected to the client's own admin endpoint, which has no
// password and answers its owner's connections: the plugin's connection is the client's
// own, so before, they read /api/config (auth.token and every secretKey) and could reload the
// client with any config. Every attempt is refused; the owner's own requests and the plugins'
// users' other destinations keep working.
func TestPluginUsersCannotDriveTheClient(t *testing.T) {
	srv := startServer(t, "")
	site := startWebService(t, "lan-site")
	socksPort, proxyPort, adminPort := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	text := clientHeader(srv.Port(), testToken, fmt.Sprintf("webServer.port = %d", adminPort)) +
		pluginProxy("socks", "tcp", []string{fmt.Sprintf("remotePort = %d", socksPort)}, `type = "socks5"`, `username = "alice"`, `password = "s0cks-pass"`) +
		pluginProxy("web-proxy", "tcp", []string{fmt.Sprintf("remotePort = %d", proxyPort)}, `type = "http_proxy"`, `httpUser = "bob"`, `httpPassword = "pr0xy-pass"`)
	path := filepath.Join(t.TempDir(), "client.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startClient(t, text)
	waitRunning(t, c, "socks")
	waitRunning(t, c, "web-proxy")
	log, _ := newLogger(t, "admin")
	a, err := admin.New(c.cfg.WebServer, c.Client, admin.Options{Log: log, ConfigPath: path, SameProcessOwner: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	adminAddr := fmt.Sprintf("127.0.0.1:%d", adminPort)

	// The owner (this process's user) reads its config.
	get := func(c *http.Client, url string) (int, string) {
		res, err := c.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(&http.Client{Timeout: 5 * time.Second}, "http://"+adminAddr+"/api/config"); code != http.StatusOK || !strings.Contains(body, testToken) {
		t.Fatalf("the owner's own request: %d %.200s", code, body)
	}

	socks, err := proxy.SOCKS5("tcp", fmt.Sprintf("127.0.0.1:%d", socksPort), &proxy.Auth{User: "alice", Password: "s0cks-pass"}, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	viaSocks := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Dial: socks.Dial}}
	viaProxy := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, fmt.Sprintf("http://bob:pr0xy-pass@127.0.0.1:%d", proxyPort)))}}
	for _, target := range []string{adminAddr, fmt.Sprintf("localhost:%d", adminPort), fmt.Sprintf("0.0.0.0:%d", adminPort)} {
		for name, hc := range map[string]*http.Client{"socks5": viaSocks, "http_proxy": viaProxy} {
			if code, body := get(hc, "http://"+target+"/api/config"); code == http.StatusOK || strings.Contains(body, testToken) {
				t.Errorf("%s user to %s: %d %.200s", name, target, code, body)
			}
		}
		// CONNECT through http_proxy, then the request inside the tunnel.
		conn := dial(t, fmt.Sprintf("127.0.0.1:%d", proxyPort))
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic Ym9iOnByMHh5LXBhc3M=\r\n\r\n", target, target) // bob:pr0xy-pass
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("CONNECT %s through http_proxy: %v", target, err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			fmt.Fprintf(conn, "GET /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
			b, _ := io.ReadAll(br)
			t.Errorf("CONNECT %s through http_proxy: tunnel open, inside it: %.300q", target, b)
		} else if res.StatusCode != http.StatusBadGateway {
			t.Errorf("CONNECT %s through http_proxy: %s, want 502", target, res.Status)
		}
	}
	// The plugins still lead their users everywhere else on the client's side.
	for name, hc := range map[string]*http.Client{"socks5": viaSocks, "http_proxy": viaProxy} {
		if code, body := get(hc, "http://"+site.Listener.Addr().String()+"/"); code != http.StatusOK || !strings.Contains(body, "lan-site") {
			t.Errorf("%s to the LAN site: %d %.200s", name, code, body)
		}
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPluginPasswordGuessing: a user without the password of a client's socks5, http_proxy or
// static_file plugin (published on the server's ports, reachable by anyone) guesses it. Before,
// every guess was answered at once; now, as on the server's web ports, five wrong ones from an
// address, then one per 10 s: the right password from the guesser's address is refused for a
// while (it cannot tell a hit), while a user from another address gets in at once.
func TestPluginPasswordGuessing(t *testing.T) {
	srv := startWebServer(t, "")
	site := startWebService(t, "lan-site")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("the files"), 0o644); err != nil {
		t.Fatal(err)
	}
	socksPort, proxyPort := freeTCPPort(t), freeTCPPort(t)
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		pluginProxy("socks", "tcp", []string{fmt.Sprintf("remotePort = %d", socksPort)}, `type = "socks5"`, `username = "alice"`, `password = "s0cks-pass"`)+
		pluginProxy("web-proxy", "tcp", []string{fmt.Sprintf("remotePort = %d", proxyPort)}, `type = "http_proxy"`, `httpUser = "bob"`, `httpPassword = "pr0xy-pass"`)+
		pluginProxy("files", "http", []string{`customDomains = ["files.test"]`}, `type = "static_file"`, fmt.Sprintf("localPath = %q", dir), `httpUser = "carol"`, `httpPassword = "f1les-pass"`))
	for _, n := range []string{"socks", "web-proxy", "files"} {
		waitRunning(t, c, n)
	}
	target := "http://" + site.Listener.Addr().String() + "/"
	from := func(src string) *net.Dialer {
		return &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	}
	viaSocks := func(src, pass string) bool {
		d, err := proxy.SOCKS5("tcp", fmt.Sprintf("127.0.0.1:%d", socksPort), &proxy.Auth{User: "alice", Password: pass}, from(src))
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Dial: d.Dial}}
		res, err := hc.Get(target)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	viaProxy := func(src, pass string) bool {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: from(src).DialContext,
			Proxy: http.ProxyURL(mustURL(t, fmt.Sprintf("http://bob:%s@127.0.0.1:%d", pass, proxyPort)))}}
		res, err := hc.Get(target)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	webAddr := srv.WebAddr(wire.ProxyHTTP).String()
	files := func(src, pass string) bool {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return from(src).DialContext(ctx, "tcp", webAddr)
		}}}
		req, _ := http.NewRequest(http.MethodGet, "http://files.test/", nil)
		req.SetBasicAuth("carol", pass)
		res, err := hc.Do(req)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	for _, tc := range []struct {
		name  string
		try   func(src, pass string) bool
		right string
	}{{"socks5", viaSocks, "s0cks-pass"}, {"http_proxy", viaProxy, "pr0xy-pass"}, {"static_file", files, "f1les-pass"}} {
		for i := range 10 {
			if tc.try("127.0.0.3", fmt.Sprintf("guess-%d", i)) {
				t.Fatalf("%s: guess %d got in", tc.name, i)
			}
		}
		if tc.try("127.0.0.3", tc.right) {
			t.Errorf("%s: after 10 wrong guesses the guesser's next try was still answered (the right password got in)", tc.name)
		}
		if !tc.try("127.0.0.4", tc.right) {
			t.Errorf("%s: a user from another address with the right password was refused", tc.name)
		}
	}
}
