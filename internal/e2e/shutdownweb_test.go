package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/peer"
)

// TestCleanShutdownOfNewPaths: the web ports (an http site with a keep-alive connection left
// open, an https site by SNI, a tcpmux tunnel left open), the plugins (a socks5 tunnel left
// open, static_file) and a P2P session with its direct TCP path all in use; then the clients
// and the server close, and no goroutine of xp2p is left behind.
func TestCleanShutdownOfNewPaths(t *testing.T) {
	base := goroutines()
	srv := startWebServer(t, "")
	site := startWebService(t, "site")
	echo := startTCPService(t, echoHandler)
	portA, poolA := tlsService(t, "a", "a.test")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	socksPort := freeTCPPort(t)
	provider := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("site", "http", site.Port(), `customDomains = ["site.test"]`)+
		webProxy("tls-a", "https", portA, `customDomains = ["a.test"]`)+
		webProxy("mux", "tcpmux", echo.Port(), `multiplexer = "httpconnect"`, `customDomains = ["echo.test"]`)+
		pluginProxy("socks", "tcp", []string{fmt.Sprintf("remotePort = %d", socksPort)}, `type = "socks5"`, `username = "u"`, `password = "socks-pass"`)+
		pluginProxy("files", "http", []string{`customDomains = ["files.test"]`}, `type = "static_file"`, fmt.Sprintf("localPath = %q", dir))+
		p2pService("echo", "xp2p", "s3cret", echo.Port()))
	for _, n := range []string{"site", "tls-a", "mux", "socks", "files"} {
		waitRunning(t, provider, n)
	}
	vport := freeTCPPort(t)
	visitor := startClient(t, clientHeader(srv.Port(), testToken, "")+p2pVisitor("v", "xp2p", "echo", "s3cret", vport))

	hc := vhostClient(srv.WebAddr(wire.ProxyHTTP).String())
	if _, seen, _ := get(t, hc, "http://site.test/"); seen.Service != "site" {
		t.Fatalf("site: %q", seen.Service)
	}
	if _, _, body := get(t, hc, "http://files.test/f.txt"); body != "a file" {
		t.Fatalf("files: %q", body)
	}
	if got, err := tlsAsk(srv.WebAddr(wire.ProxyHTTPS).String(), "a.test", poolA); got != "a:hi" {
		t.Fatalf("https: %q %v", got, err)
	}
	mux := dial(t, srv.WebAddr(wire.ProxyTCPMux).String())
	mux.Write([]byte("CONNECT echo.test:1 HTTP/1.1\r\nHost: echo.test\r\n\r\nping"))
	mux.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(io.LimitReader(mux, int64(len("HTTP/1.1 200 Connection established\r\n\r\nping")))); !strings.HasSuffix(string(b), "ping") {
		t.Fatalf("tcpmux: %q", b)
	}
	d, err := proxy.SOCKS5("tcp", fmt.Sprintf("127.0.0.1:%d", socksPort), &proxy.Auth{User: "u", Password: "socks-pass"}, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tunnel, err := d.Dial("tcp", echo.Addr())
	if err != nil {
		t.Fatalf("socks5: %v", err)
	}
	defer tunnel.Close()
	tunnel.Write([]byte("ping"))
	tunnel.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(tunnel, make([]byte, 4)); err != nil {
		t.Fatalf("socks5 echo: %v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", vport)
	echoThrough(t, addr, 1<<20)
	sessionTo(t, visitor, "echo", func(s peer.SessionInfo) bool { return s.TCP != "" })
	echoThrough(t, addr, 1<<20)
	open := dial(t, addr) // a P2P stream left open
	open.Write([]byte("x"))

	visitor.Close()
	provider.Close()
	srv.Close()
	hc.CloseIdleConnections()
	for _, c := range []net.Conn{mux, tunnel, open} {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("a user connection to %s still open after the shutdown", c.RemoteAddr())
			}
		}
	}
	res, err := hc.Get("http://site.test/")
	if err == nil {
		res.Body.Close()
		t.Errorf("the http port still answers after the shutdown: %s", res.Status)
	}
	echo.Close()
	checkNoLeaks(t, base, 5*time.Second)
}
