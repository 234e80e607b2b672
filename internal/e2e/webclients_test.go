package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/browsertest"
	"github.com/xp2p/xp2p/internal/testnet"
	"github.com/xp2p/xp2p/internal/wire"
)

// curl runs curl with args and returns what it printed.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	bin := testnet.RequireTool(t, "curl", "curl")
	out, err := execCommand(bin, append([]string{"-sS", "--max-time", "20"}, args...)...)
	if err != nil {
		t.Errorf("curl %s: %v\n%.2000s", strings.Join(args, " "), err, out)
	}
	return out
}

// resolve is the value of curl's --resolve for host on the server's port to 127.0.0.1.
func resolve(host string, port int) string {
	return host + ":" + strconv.Itoa(port) + ":127.0.0.1"
}

// webSites starts nginx with two plain sites (b behind a PROXY protocol listener) and two TLS
// sites for a.test and b.test, and returns their ports and the TLS certificates' files.
type webSites struct {
	a, b, tlsA, tlsB int
	certA, certB     string
	spkiA, spkiB     string
}

func startWebSites(t *testing.T) webSites {
	t.Helper()
	var s webSites
	s.a, s.b, s.tlsA, s.tlsB = testnet.FreePort(t), testnet.FreePort(t), testnet.FreePort(t), testnet.FreePort(t)
	dir := t.TempDir()
	certA, keyA, cA := testnet.WriteCert(t, dir, "a.test")
	certB, keyB, cB := testnet.WriteCert(t, dir, "b.test")
	s.certA, s.certB = certA, certB
	spki := func(der []byte) string { h := sha256.Sum256(der); return base64.StdEncoding.EncodeToString(h[:]) }
	s.spkiA, s.spkiB = spki(cA.Leaf.RawSubjectPublicKeyInfo), spki(cB.Leaf.RawSubjectPublicKeyInfo)
	testnet.StartNginx(t, fmt.Sprintf(`
	server { listen 127.0.0.1:%d; location / { return 200 "site a, host $host, xff $http_x_forwarded_for\n"; } }
	server { listen 127.0.0.1:%d proxy_protocol; location / { return 200 "site b, user $proxy_protocol_addr, xff $http_x_forwarded_for\n"; } }
	server { listen 127.0.0.1:%d ssl; ssl_certificate %s; ssl_certificate_key %s; location / { return 200 "tls site a\n"; } }
	server { listen 127.0.0.1:%d ssl; ssl_certificate %s; ssl_certificate_key %s; location / { return 200 "tls site b\n"; } }
`, s.a, s.b, s.tlsA, certA, keyA, s.tlsB, certB, keyB), s.a, s.b, s.tlsA, s.tlsB)
	return s
}

// TestVhostWithCurlAndNginx: curl reaches two nginx sites through one vhostHTTPPort and two
// TLS sites through one vhostHTTPSPort, each by its host name, and sees the user's address
// arrive (X-Forwarded-For, PROXY protocol).
func TestVhostWithCurlAndNginx(t *testing.T) {
	sites := startWebSites(t)
	srv := startWebServer(t, "subDomainHost = \"example.com\"\n")
	httpPort := srv.WebAddr(wire.ProxyHTTP).(*net.TCPAddr).Port
	httpsPort := srv.WebAddr(wire.ProxyHTTPS).(*net.TCPAddr).Port
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("site-a", "http", sites.a, `customDomains = ["a.test"]`)+
		webProxy("site-b", "http", sites.b, `subdomain = "b"`, `transport.proxyProtocolVersion = "v2"`)+
		webProxy("tls-a", "https", sites.tlsA, `customDomains = ["a.test"]`)+
		webProxy("tls-b", "https", sites.tlsB, `customDomains = ["b.test"]`))
	for _, n := range []string{"site-a", "site-b", "tls-a", "tls-b"} {
		waitRunning(t, c, n)
	}
	if got := curl(t, "--resolve", resolve("a.test", httpPort), fmt.Sprintf("http://a.test:%d/", httpPort)); got != "site a, host a.test, xff 127.0.0.1\n" {
		t.Errorf("a.test: %q", got)
	}
	// From another loopback address: nginx sees it in the PROXY header and in X-Forwarded-For.
	if got := curl(t, "--interface", "127.0.0.2", "--resolve", resolve("b.example.com", httpPort), fmt.Sprintf("http://b.example.com:%d/", httpPort)); got != "site b, user 127.0.0.2, xff 127.0.0.2\n" {
		t.Errorf("b.example.com: %q", got)
	}
	if got := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "--resolve", resolve("c.test", httpPort), fmt.Sprintf("http://c.test:%d/", httpPort)); got != "404" {
		t.Errorf("unknown host: %q", got)
	}
	// curl checks each site's own certificate: the TLS session is nginx's, end to end.
	if got := curl(t, "--cacert", sites.certA, "--resolve", resolve("a.test", httpsPort), fmt.Sprintf("https://a.test:%d/", httpsPort)); got != "tls site a\n" {
		t.Errorf("https a.test: %q", got)
	}
	if got := curl(t, "--cacert", sites.certB, "--resolve", resolve("b.test", httpsPort), fmt.Sprintf("https://b.test:%d/", httpsPort)); got != "tls site b\n" {
		t.Errorf("https b.test: %q", got)
	}
}

// TestVhostWithChromium: a browser opens two sites on one vhostHTTPPort and two on one
// vhostHTTPSPort by host name (chromium's host-resolver-rules instead of DNS), and runs a
// WebSocket through the http vhost.
func TestVhostWithChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	sites := startWebSites(t)
	srv := startWebServer(t, "")
	httpPort := srv.WebAddr(wire.ProxyHTTP).(*net.TCPAddr).Port
	httpsPort := srv.WebAddr(wire.ProxyHTTPS).(*net.TCPAddr).Port
	ws := startWebService(t, "ws")
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("site-a", "http", sites.a, `customDomains = ["a.test"]`)+
		webProxy("site-ws", "http", ws.Port(), `customDomains = ["ws.test"]`)+
		webProxy("tls-a", "https", sites.tlsA, `customDomains = ["a.test"]`)+
		webProxy("tls-b", "https", sites.tlsB, `customDomains = ["b.test"]`))
	for _, n := range []string{"site-a", "site-ws", "tls-a", "tls-b"} {
		waitRunning(t, c, n)
	}
	ctx := browsertest.New(t,
		chromedp.Flag("host-resolver-rules", "MAP *.test 127.0.0.1"),
		// Trust exactly the two sites' keys, as a pinned certificate.
		chromedp.Flag("ignore-certificate-errors-spki-list", sites.spkiA+","+sites.spkiB))
	text := func(url string) string {
		if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		return strings.TrimSpace(s)
	}
	if got := text(fmt.Sprintf("http://a.test:%d/", httpPort)); got != "site a, host a.test, xff 127.0.0.1" {
		t.Errorf("http a.test: %q", got)
	}
	if got := text(fmt.Sprintf("https://a.test:%d/", httpsPort)); got != "tls site a" {
		t.Errorf("https a.test: %q", got)
	}
	if got := text(fmt.Sprintf("https://b.test:%d/", httpsPort)); got != "tls site b" {
		t.Errorf("https b.test: %q", got)
	}
	if got := text(fmt.Sprintf("http://nothing.test:%d/", httpPort)); !strings.Contains(got, "No service is published for nothing.test") {
		t.Errorf("unknown host: %q", got)
	}
	err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("http://ws.test:%d/wspage", httpPort)))
	var echoed string
	if err == nil {
		echoed, err = chromedp.Run(ctx, chromedp.Poll[string](`document.body.dataset.ws`, chromedp.WithPollingTimeout(10*time.Second)))
	}
	if err != nil || echoed != "ws:hello from chromium" {
		t.Errorf("WebSocket through the vhost: %q, %v", echoed, err)
	}
}

// wsPage opens a WebSocket to its own host, sends a message and keeps the echo in
// body's data-ws.
const wsPage = `<!DOCTYPE html><html><body><script>
const ws = new WebSocket("ws://" + location.host + "/ws");
ws.onopen = () => ws.send("hello from chromium");
ws.onmessage = e => { document.body.dataset.ws = e.data; };
ws.onerror = () => { document.body.dataset.ws = "error"; };
</script></body></html>`

// execCommand runs a program (30 s at most) and returns what it printed.
func execCommand(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// TestHTTPVisitorOverP2P: a NAS's and a media server's web UIs, xp2p services of a provider,
// fronted by two http visitors that share one port of the visitor's machine: a browser opens
// nas.localhost and media.localhost there (browsers resolve *.localhost to loopback) and gets
// each UI over the P2P session, the NAS seeing the Host it expects.
func TestHTTPVisitorOverP2P(t *testing.T) {
	srv := startServer(t, "")
	nas, media := startWebService(t, "nas"), startWebService(t, "media")
	provider := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("nas", "xp2p", nas.Port(), `secretKey = "nas-secret"`)+
		webProxy("media", "xp2p", media.Port(), `secretKey = "media-secret"`))
	for _, n := range []string{"nas", "media"} {
		if st := waitProxyStatus(t, provider, n).Status; st != "running" {
			t.Fatalf("%s: %q", n, st)
		}
	}
	bind := freeTCPPort(t)
	visitor := func(name, secret string, extra ...string) string {
		return fmt.Sprintf("\n[[visitors]]\nname = %q\ntype = \"xp2p\"\nserverName = %q\nsecretKey = %q\nbindPort = %d\nprotocol = \"http\"\n%s\n",
			name+"-visitor", name, secret, bind, strings.Join(extra, "\n"))
	}
	startClient(t, clientHeader(srv.Port(), testToken, "")+
		visitor("nas", "nas-secret", `customDomains = ["nas.localhost"]`, `hostHeaderRewrite = "nas.lan"`)+
		visitor("media", "media-secret", `customDomains = ["media.localhost"]`))
	hc := vhostClient(fmt.Sprintf("127.0.0.1:%d", bind))
	var seen seenRequest
	eventually(t, 15*time.Second, func() bool {
		_, seen, _ = get(t, hc, fmt.Sprintf("http://nas.localhost:%d/", bind))
		return seen.Service == "nas"
	}, func() string { return fmt.Sprintf("nas.localhost served by %q", seen.Service) })
	if seen.Host != "nas.lan" || seen.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("the NAS saw Host %q, X-Forwarded-For %q", seen.Host, seen.Header.Get("X-Forwarded-For"))
	}
	if _, s, _ := get(t, hc, fmt.Sprintf("http://media.localhost:%d/x", bind)); s.Service != "media" || s.Path != "/x" {
		t.Errorf("media.localhost: %+v", s)
	}
	if res, _, _ := get(t, hc, fmt.Sprintf("http://other.localhost:%d/", bind)); res.StatusCode != 404 {
		t.Errorf("an unknown host on the visitor's port: %d", res.StatusCode)
	}
	if testing.Short() {
		return
	}
	ctx := browsertest.New(t)
	for _, name := range []string{"nas", "media"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("http://%s.localhost:%d/ui", name, bind))); err != nil {
			t.Fatal(err)
		}
		body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil || !strings.Contains(body, `"service":"`+name+`"`) {
			t.Errorf("chromium at %s.localhost: %q, %v", name, body, err)
		}
	}
}

// TestReloadWebAndPlugins: a reload that changes a plugin and moves an http visitor to other
// hosts takes effect; the old plugin and routes are gone, a broken plugin refuses the reload
// as a whole and the running ones stay.
func TestReloadWebAndPlugins(t *testing.T) {
	srv := startServer(t, "")
	nas := startWebService(t, "nas")
	dir, other := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("first"), 0o644)
	os.WriteFile(filepath.Join(other, "a.txt"), []byte("second"), 0o644)
	head := clientHeader(srv.Port(), testToken, "")
	files := func(path string) string {
		return pluginProxy("files", "tcp", []string{"remotePort = 0"}, `type = "static_file"`, fmt.Sprintf("localPath = %q", path))
	}
	provider := startClient(t, head+files(dir)+webProxy("nas", "xp2p", nas.Port(), `secretKey = "k"`))
	addr := waitRunning(t, provider, "files")
	hc := &http.Client{Timeout: 10 * time.Second}
	read := func(url string) string {
		res, err := hc.Get(url)
		if err != nil {
			return err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	if got := read("http://" + addr + "/a.txt"); got != "first" {
		t.Fatalf("before the reload: %q", got)
	}
	bind := freeTCPPort(t)
	visitor := func(domain string) string {
		return fmt.Sprintf("\n[[visitors]]\nname = \"ui\"\ntype = \"xp2p\"\nserverName = \"nas\"\nsecretKey = \"k\"\nbindPort = %d\nprotocol = \"http\"\ncustomDomains = [%q]\n", bind, domain)
	}
	v := startClient(t, head+visitor("nas.localhost"))
	vc := vhostClient(fmt.Sprintf("127.0.0.1:%d", bind))
	eventually(t, 15*time.Second, func() bool { _, s, _ := get(t, vc, "http://nas.localhost/"); return s.Service == "nas" },
		func() string { return "the http visitor never served nas.localhost" })

	reload := func(c *testClient, text string) error {
		cfg, _, err := config.ParseClient("reload.toml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Reload(cfg)
		return err
	}
	if err := reload(provider, head+files(other)+webProxy("nas", "xp2p", nas.Port(), `secretKey = "k"`)); err != nil {
		t.Fatal(err)
	}
	addr = waitRunning(t, provider, "files")
	if got := read("http://" + addr + "/a.txt"); got != "second" {
		t.Errorf("after the reload the plugin serves %q", got)
	}
	// A plugin that cannot start (a certificate file that is not one) refuses the reload.
	bad := head + pluginProxy("tls", "tcp", []string{"remotePort = 0"}, `type = "tls2raw"`, `localAddr = "127.0.0.1:1"`,
		fmt.Sprintf("crtPath = %q", filepath.Join(dir, "a.txt")), fmt.Sprintf("keyPath = %q", filepath.Join(dir, "a.txt")))
	if err := reload(provider, bad); err == nil || !strings.Contains(err.Error(), "reload refused") {
		t.Errorf("a plugin that cannot start: %v", err)
	}
	if got := read("http://" + addr + "/a.txt"); got != "second" {
		t.Errorf("after a refused reload the plugin serves %q", got)
	}
	if err := reload(v, head+visitor("ui.localhost")); err != nil {
		t.Fatal(err)
	}
	if _, s, _ := get(t, vc, "http://ui.localhost/"); s.Service != "nas" {
		t.Errorf("after the reload ui.localhost served by %q", s.Service)
	}
	if res, _, _ := get(t, vc, "http://nas.localhost/"); res.StatusCode != http.StatusNotFound {
		t.Errorf("after the reload nas.localhost: %d, want 404", res.StatusCode)
	}
}
