package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/testnet"
	"github.com/xp2p/xp2p/internal/wire"
)

// pluginProxy is a [[proxies]] entry of type typ whose users a plugin serves; extra holds the
// proxy's own keys, plugin the [proxies.plugin] keys.
func pluginProxy(name, typ string, extra []string, plugin ...string) string {
	return fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = %q\n%s\n[proxies.plugin]\n%s\n", name, typ, strings.Join(extra, "\n"), strings.Join(plugin, "\n"))
}

// TestSocks5AndHTTPProxyPlugins: curl reaches nginx through a client's socks5 plugin (with
// user and password) and its http_proxy plugin (plain and CONNECT to a TLS site), both
// published as tcp proxies on the server.
func TestSocks5AndHTTPProxyPlugins(t *testing.T) {
	sites := startWebSites(t)
	srv := startServer(t, "")
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		pluginProxy("socks", "tcp", []string{"remotePort = 0"}, `type = "socks5"`, `username = "alice"`, `password = "s0cks-pass"`)+
		pluginProxy("web-proxy", "tcp", []string{"remotePort = 0"}, `type = "http_proxy"`, `httpUser = "bob"`, `httpPassword = "pr0xy-pass"`))
	port := func(name string) int {
		a, err := net.ResolveTCPAddr("tcp", waitRunning(t, c, name))
		if err != nil {
			t.Fatal(err)
		}
		return a.Port
	}
	socksPort, proxyPort := port("socks"), port("web-proxy")
	target := fmt.Sprintf("http://127.0.0.1:%d/", sites.a)
	if got := curl(t, "--socks5-hostname", fmt.Sprintf("alice:s0cks-pass@127.0.0.1:%d", socksPort), target); !strings.HasPrefix(got, "site a") {
		t.Errorf("through socks5: %q", got)
	}
	bin := testnet.RequireTool(t, "curl", "curl")
	if out, err := curlExpectFail(bin, "--socks5-hostname", fmt.Sprintf("alice:wrong@127.0.0.1:%d", socksPort), target); err == nil {
		t.Errorf("socks5 with a wrong password got through: %q", out)
	}
	if got := curl(t, "-x", fmt.Sprintf("http://bob:pr0xy-pass@127.0.0.1:%d", proxyPort), target); !strings.HasPrefix(got, "site a") {
		t.Errorf("through http_proxy: %q", got)
	}
	// CONNECT: curl speaks TLS with nginx itself and checks its certificate.
	if got := curl(t, "-x", fmt.Sprintf("http://bob:pr0xy-pass@127.0.0.1:%d", proxyPort), "--cacert", sites.certA,
		"--connect-to", fmt.Sprintf("a.test:443:127.0.0.1:%d", sites.tlsA), "https://a.test/"); got != "tls site a\n" {
		t.Errorf("CONNECT through http_proxy: %q", got)
	}
	if got := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "-x", fmt.Sprintf("http://127.0.0.1:%d", proxyPort), target); got != "407" {
		t.Errorf("http_proxy without credentials: %q", got)
	}
}

func curlExpectFail(bin string, args ...string) (string, error) {
	out, err := execCommand(bin, append([]string{"-sS", "--max-time", "10"}, args...)...)
	return out, err
}

// TestSocks5PluginOverP2P: the classic use: a visitor on a laptop reaches a service of the
// provider's LAN through the provider's socks5 plugin, over the P2P session.
func TestSocks5PluginOverP2P(t *testing.T) {
	sites := startWebSites(t)
	srv := startServer(t, "")
	provider := startClient(t, clientHeader(srv.Port(), testToken, "")+
		pluginProxy("lan", "xp2p", []string{`secretKey = "lan-secret"`}, `type = "socks5"`))
	if st := waitProxyStatus(t, provider, "lan").Status; st != "running" {
		t.Fatalf("provider: %q", st)
	}
	bind := freeTCPPort(t)
	startClient(t, clientHeader(srv.Port(), testToken, "")+fmt.Sprintf(`
[[visitors]]
name = "lan-visitor"
type = "xp2p"
serverName = "lan"
secretKey = "lan-secret"
bindPort = %d
`, bind))
	var got string
	eventually(t, 15*time.Second, func() bool {
		out, err := execCommand(testnet.RequireTool(t, "curl", "curl"), "-sS", "--max-time", "5", "--socks5-hostname", fmt.Sprintf("127.0.0.1:%d", bind), fmt.Sprintf("http://127.0.0.1:%d/", sites.a))
		got = out
		return err == nil
	}, func() string { return "socks5 over P2P: " + got })
	if !strings.HasPrefix(got, "site a") {
		t.Errorf("socks5 over P2P: %q", got)
	}
}

// TestStaticFilePlugin: a static_file plugin behind an http vhost serves a 100 MB file intact
// to curl, under its stripPrefix and behind basic auth; nothing outside its directory.
func TestStaticFilePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB transfer: skipped with -short")
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, 100<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := hex.EncodeToString(h.Sum(nil))
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("secret"), 0o644)
	os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(dir, "escape.txt"))

	srv := startWebServer(t, "")
	port := srv.WebAddr(wire.ProxyHTTP).(*net.TCPAddr).Port
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		pluginProxy("files", "http", []string{`customDomains = ["files.test"]`},
			`type = "static_file"`, fmt.Sprintf("localPath = %q", dir), `stripPrefix = "static"`, `httpUser = "u"`, `httpPassword = "files-pass"`))
	waitRunning(t, c, "files")
	base := fmt.Sprintf("http://files.test:%d", port)
	res := "files.test:" + fmt.Sprint(port) + ":127.0.0.1"
	got := curl(t, "--resolve", res, "-u", "u:files-pass", base+"/static/big.bin", "-o", filepath.Join(t.TempDir(), "x"), "-w", "%{size_download}")
	if got != fmt.Sprint(100<<20) {
		t.Fatalf("downloaded %s bytes", got)
	}
	sum := curl(t, "--resolve", res, "-u", "u:files-pass", base+"/static/big.bin")
	if s := sha256.Sum256([]byte(sum)); hex.EncodeToString(s[:]) != want {
		t.Errorf("the 100 MB file arrived changed")
	}
	for _, tc := range []struct{ url, auth, want string }{
		{"/static/big.bin", "", "401"},
		{"/static/big.bin", "u:wrong", "401"},
		{"/big.bin", "u:files-pass", "404"},
		{"/static/escape.txt", "u:files-pass", "404"},
		// The vhost sends a path with dot segments on to its clean form (/etc/passwd), which
		// curl follows: no route leads out of the directory either.
		{"/static/../../../etc/passwd", "u:files-pass", "404"},
	} {
		args := []string{"--resolve", res, "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", "-L", base + tc.url}
		if tc.auth != "" {
			args = append(args, "-u", tc.auth)
		}
		if code := curl(t, args...); code != tc.want {
			t.Errorf("%s (%s): %s, want %s", tc.url, tc.auth, code, tc.want)
		}
	}
}

// TestBridgeAndSocketPlugins: https2http, http2https, https2https, http2http, tls2raw and
// unix_domain_socket, each published as a tcp proxy and used by curl (or a plain TCP user).
func TestBridgeAndSocketPlugins(t *testing.T) {
	sites := startWebSites(t)
	dir := t.TempDir()
	crt, key, _ := testnet.WriteCert(t, dir, "plugin.test")
	sock := filepath.Join(dir, "echo.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "unix:%s", line)
			}()
		}
	}()
	srv := startServer(t, "")
	ports := map[string]int{}
	cfg := clientHeader(srv.Port(), testToken, "")
	// remotePort 0: the server picks a free port (a port picked here could be taken meanwhile).
	add := func(name string, plugin ...string) {
		ports[name] = 0
		cfg += pluginProxy(name, "tcp", []string{"remotePort = 0"}, plugin...)
	}
	certs := []string{fmt.Sprintf("crtPath = %q", crt), fmt.Sprintf("keyPath = %q", key)}
	add("s2h", append([]string{`type = "https2http"`, fmt.Sprintf(`localAddr = "127.0.0.1:%d"`, sites.a), `hostHeaderRewrite = "rewritten.lan"`}, certs...)...)
	add("s2s", append([]string{`type = "https2https"`, fmt.Sprintf(`localAddr = "127.0.0.1:%d"`, sites.tlsA)}, certs...)...)
	add("h2s", `type = "http2https"`, fmt.Sprintf(`localAddr = "127.0.0.1:%d"`, sites.tlsA))
	add("h2h", `type = "http2http"`, fmt.Sprintf(`localAddr = "127.0.0.1:%d"`, sites.a), `requestHeaders.set.x-a = "1"`)
	add("raw", append([]string{`type = "tls2raw"`, fmt.Sprintf(`localAddr = "127.0.0.1:%d"`, sites.a)}, certs...)...)
	add("unix", `type = "unix_domain_socket"`, fmt.Sprintf("unixPath = %q", sock))
	c := startClient(t, cfg)
	for name := range ports {
		addr, err := net.ResolveTCPAddr("tcp", waitRunning(t, c, name))
		if err != nil {
			t.Fatal(err)
		}
		ports[name] = addr.Port
	}
	at := func(name string) string { return fmt.Sprintf("plugin.test:%d:127.0.0.1", ports[name]) }
	url := func(scheme, name string) string { return fmt.Sprintf("%s://plugin.test:%d/", scheme, ports[name]) }
	if got := curl(t, "--cacert", crt, "--resolve", at("s2h"), url("https", "s2h")); got != "site a, host rewritten.lan, xff 127.0.0.1\n" {
		t.Errorf("https2http: %q", got)
	}
	if got := curl(t, "--cacert", crt, "--resolve", at("s2s"), url("https", "s2s")); got != "tls site a\n" {
		t.Errorf("https2https: %q", got)
	}
	if got := curl(t, "--resolve", at("h2s"), url("http", "h2s")); got != "tls site a\n" {
		t.Errorf("http2https: %q", got)
	}
	if got := curl(t, "--resolve", at("h2h"), url("http", "h2h")); got != "site a, host plugin.test, xff 127.0.0.1\n" {
		t.Errorf("http2http: %q", got)
	}
	// tls2raw: curl speaks https to the plugin, nginx gets plain HTTP.
	if got := curl(t, "--cacert", crt, "--resolve", at("raw"), url("https", "raw")); got != "site a, host plugin.test, xff \n" {
		t.Errorf("tls2raw: %q", got)
	}
	conn := dial(t, localhost(ports["unix"]))
	conn.Write([]byte("hello\n"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(conn); string(b) != "unix:hello\n" {
		t.Errorf("unix_domain_socket: %q", b)
	}
}
