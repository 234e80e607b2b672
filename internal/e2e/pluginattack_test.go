package e2e

import (
	"bufio"
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

	"github.com/xp2p/xp2p/web/admin"
)

// TestPluginUsersCannotDriveTheClient: the users of a client's socks5 and http_proxy plugins
// (published on the server's ports; with or without the plugins' passwords, the attack needs
// only to be a user) ask to be connected to the client's own admin endpoint, which has no
// password and answers its owner's connections: the plugin's connection is the client's
// own, so before, they read /api/config (auth.token and every secretKey) and could reload the
// client with any config. Every attempt is refused; the owner's own requests and the plugins'
// users' other destinations keep working.
func TestPluginUsersCannotDriveTheClient(t *testing.T) {
	srv := startServer(t, "")
	site := startWebService(t, "lan-site")
	socksPort, proxyPort, adminPort := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	text := clientHeader(srv.Port(), testToken, fmt.Sprintf("webServer.port = %d", adminPort)) +
		pluginProxy("socks", "tcp", []string{fmt.Sprintf("remotePort = %d", socksPort)}, `type = "socks5"`) +
		pluginProxy("web-proxy", "tcp", []string{fmt.Sprintf("remotePort = %d", proxyPort)}, `type = "http_proxy"`)
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

	socks, err := proxy.SOCKS5("tcp", fmt.Sprintf("127.0.0.1:%d", socksPort), nil, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	viaSocks := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Dial: socks.Dial}}
	viaProxy := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, fmt.Sprintf("http://127.0.0.1:%d", proxyPort)))}}
	for _, target := range []string{adminAddr, fmt.Sprintf("localhost:%d", adminPort), fmt.Sprintf("0.0.0.0:%d", adminPort)} {
		for name, hc := range map[string]*http.Client{"socks5": viaSocks, "http_proxy": viaProxy} {
			if code, body := get(hc, "http://"+target+"/api/config"); code == http.StatusOK || strings.Contains(body, testToken) {
				t.Errorf("%s user to %s: %d %.200s", name, target, code, body)
			}
		}
		// CONNECT through http_proxy, then the request inside the tunnel.
		conn := dial(t, fmt.Sprintf("127.0.0.1:%d", proxyPort))
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
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
