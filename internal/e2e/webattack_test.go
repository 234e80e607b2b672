package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/testnet"
	"github.com/xp2p/xp2p/internal/wire"
)

// TestWebHostHijack: a token holder asks for routes on another client's host that outrank its
// own (location "/" beats the route without location; a routeByHTTPUser route beats the route
// for anyone) to receive its users' requests and their passwords. Every attempt is refused,
// and so is a name under its wildcard; the site keeps answering its users, and the attacker's
// service sees no request.
func TestWebHostHijack(t *testing.T) {
	srv := startWebServer(t, "")
	hc := vhostClient(srv.WebAddr(wire.ProxyHTTP).String())
	site, loot := startWebService(t, "site"), startWebService(t, "loot")
	victim := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("site", "http", site.Port(), `customDomains = ["site.test"]`, `httpUser = "admin"`, `httpPassword = "victim-pass-123"`)+
		webProxy("site-api", "http", site.Port(), `customDomains = ["site.test"]`, `locations = ["/api"]`, `httpUser = "admin"`, `httpPassword = "victim-pass-123"`)+
		webProxy("apps", "http", site.Port(), `customDomains = ["*.apps.test"]`))
	waitRunning(t, victim, "site")
	waitRunning(t, victim, "site-api") // the holder's own proxies share its host

	attacker := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("root", "http", loot.Port(), `customDomains = ["site.test"]`, `locations = ["/"]`)+
		webProxy("deeper", "http", loot.Port(), `customDomains = ["site.test"]`, `locations = ["/api/v1"]`)+
		webProxy("by-user", "http", loot.Port(), `customDomains = ["site.test"]`, `routeByHTTPUser = "admin"`)+
		webProxy("under-wildcard", "http", loot.Port(), `customDomains = ["x.apps.test"]`)+
		webProxy("elsewhere", "http", loot.Port(), `customDomains = ["loot.test"]`))
	for _, name := range []string{"root", "deeper", "by-user", "under-wildcard"} {
		if st := waitProxyStatus(t, attacker, name).Status; !strings.Contains(st, "test") || !strings.Contains(st, "already served by another proxy") {
			t.Errorf("attacker's %s on site.test: %q, want refused", name, st)
		}
	}
	waitRunning(t, attacker, "elsewhere") // the attacker's own host works

	for _, path := range []string{"/", "/index.html", "/api", "/api/v1/users"} {
		res, seen, _ := get(t, hc, "http://site.test"+path, func(r *http.Request) { r.SetBasicAuth("admin", "victim-pass-123") })
		if res.StatusCode != http.StatusOK || seen.Service != "site" {
			t.Errorf("%s with the site's password: %d, served by %q", path, res.StatusCode, seen.Service)
		}
		if res, seen, _ := get(t, hc, "http://site.test"+path); res.StatusCode != http.StatusUnauthorized || seen.Service != "" {
			t.Errorf("%s without password: %d, served by %q", path, res.StatusCode, seen.Service)
		}
	}
	if _, seen, _ := get(t, hc, "http://x.apps.test/"); seen.Service != "site" {
		t.Errorf("x.apps.test: served by %q, want the wildcard's site", seen.Service)
	}
	if _, seen, _ := get(t, hc, "http://loot.test/"); seen.Service != "loot" {
		t.Errorf("the attacker's own host: served by %q", seen.Service)
	}
	if n := loot.connCount(); n != 1 {
		t.Errorf("the attacker's service got %d connections, want only its own host's one", n)
	}
}

// dialFrom connects to addr from the loopback address src (127.0.0.0/8 is all this host's):
// another source, as the server sees it.
func dialFrom(src, addr string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// openConns opens n connections from src to addr and returns how many the server still holds
// open a moment later (the others it closed or reset), after send was written on each.
func openConns(t *testing.T, src, addr string, n int, send string) int {
	t.Helper()
	conns := make([]*net.TCPConn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := dialFrom(src, addr)
		if err != nil {
			continue
		}
		conns = append(conns, c)
		if send != "" {
			c.Write([]byte(send))
		}
	}
	time.Sleep(300 * time.Millisecond)
	open := 0
	buf := make([]byte, 4096)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					open++
				}
				break
			}
		}
	}
	return open
}

// TestVhostConnectionFloods: one source without any token opens more connections to the web
// ports than the server allows in all: silent ones to the https and tcpmux ports (which wait
// for their ClientHello or CONNECT), idle keep-alive ones to the http port (one request each,
// to an unknown host, then nothing). Before, 1024 silent connections from one address shut
// every user out of every https site, and the http port held any number of idle connections
// for two minutes each. Now the flood holds its source's share, and users from another
// address are served throughout.
func TestVhostConnectionFloods(t *testing.T) {
	srv := startWebServer(t, "")
	portA, poolA := tlsService(t, "a", "a.test")
	site := startWebService(t, "site")
	echo := startTCPService(t, echoHandler)
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("tls-a", "https", portA, `customDomains = ["a.test"]`)+
		webProxy("site", "http", site.Port(), `customDomains = ["site.test"]`)+
		webProxy("mux", "tcpmux", echo.Port(), `multiplexer = "httpconnect"`, `customDomains = ["echo.test"]`))
	for _, n := range []string{"tls-a", "site", "mux"} {
		waitRunning(t, c, n)
	}
	httpsAddr, httpAddr, muxAddr := srv.WebAddr(wire.ProxyHTTPS).String(), srv.WebAddr(wire.ProxyHTTP).String(), srv.WebAddr(wire.ProxyTCPMux).String()

	for name, addr := range map[string]string{"https": httpsAddr, "tcpmux": muxAddr} {
		if held := openConns(t, "127.0.0.1", addr, 1100, ""); held > 64 {
			t.Errorf("%s port: one source holds %d silent connections", name, held)
		}
	}
	if held := openConns(t, "127.0.0.1", httpAddr, 1100, "GET / HTTP/1.1\r\nHost: nothing.test\r\n\r\n"); held > 256 {
		t.Errorf("http port: one source holds %d idle connections", held)
	}
	// A user elsewhere reaches each site meanwhile.
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	tc, err := tls.DialWithDialer(d, "tcp", httpsAddr, &tls.Config{ServerName: "a.test", RootCAs: poolA})
	if err != nil {
		t.Fatalf("https user from another address during the flood: %v", err)
	}
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	tc.Write([]byte("hi"))
	if b, _ := io.ReadAll(tc); string(b) != "a:hi" {
		t.Errorf("https user: %q", b)
	}
	tc.Close()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", httpAddr)
	}}}
	if _, seen, _ := get(t, hc, "http://site.test/"); seen.Service != "site" {
		t.Errorf("http user from another address during the flood: served by %q", seen.Service)
	}
	mc, err := dialFrom("127.0.0.2", muxAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	mc.SetDeadline(time.Now().Add(5 * time.Second))
	mc.Write([]byte("CONNECT echo.test:22 HTTP/1.1\r\nHost: echo.test\r\n\r\nping"))
	buf := make([]byte, 256)
	n, _ := io.ReadAtLeast(mc, buf, len("HTTP/1.1 200 Connection established\r\n\r\nping"))
	if !strings.HasSuffix(string(buf[:n]), "\r\n\r\nping") {
		t.Errorf("tcpmux user from another address during the flood: %q", buf[:n])
	}
}

// TestVhostPathTricks: a host whose /admin location is behind httpUser/httpPassword and whose
// other paths are public, both served by one nginx. A user without the password asks for
// /admin through a path the vhost's prefix match does not see as /admin but nginx does once it
// resolves it (/x/../admin, //admin, /x/%2e%2e/admin, /x%2f..%2fadmin). Before, each reached
// nginx's /admin through the public route; now the vhost routes the path nginx will see, and
// the public paths keep working.
func TestVhostPathTricks(t *testing.T) {
	port := testnet.FreePort(t)
	testnet.StartNginx(t, fmt.Sprintf(`
	server { listen 127.0.0.1:%d;
		location /admin { return 200 "admin secret\n"; }
		location / { return 200 "public page $uri\n"; } }
`, port), port)
	srv := startWebServer(t, "")
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("site", "http", port, `customDomains = ["site.test"]`)+
		webProxy("site-admin", "http", port, `customDomains = ["site.test"]`, `locations = ["/admin"]`, `httpUser = "admin"`, `httpPassword = "admin-pass-123"`))
	waitRunning(t, c, "site")
	waitRunning(t, c, "site-admin")
	addr := srv.WebAddr(wire.ProxyHTTP).String()
	raw := func(path, auth string) string {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		req := "GET " + path + " HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n"
		if auth != "" {
			req += "Authorization: Basic " + auth + "\r\n"
		}
		conn.Write([]byte(req + "\r\n"))
		b, _ := io.ReadAll(conn)
		return string(b)
	}
	for _, path := range []string{"/admin", "/admin/", "/x/../admin", "//admin", "/x/%2e%2e/admin", "/x%2f..%2fadmin", "/./admin", "/x/./../admin/y"} {
		if got := raw(path, ""); strings.Contains(got, "admin secret") {
			t.Errorf("%s without the password: %.200q", path, got)
		}
	}
	if got := raw("/admin/x", "YWRtaW46YWRtaW4tcGFzcy0xMjM="); !strings.Contains(got, "admin secret") { // admin:admin-pass-123
		t.Errorf("/admin with the password: %.200q", got)
	}
	if got := raw("/docs/page.html", ""); !strings.Contains(got, "public page /docs/page.html") {
		t.Errorf("a public page: %.200q", got)
	}
	// A sloppy link to a public page is sent on to its clean path.
	if got := raw("//docs/./page.html?q=1", ""); !strings.HasPrefix(got, "HTTP/1.1 301") || !strings.Contains(got, "\r\nLocation: /docs/page.html?q=1\r\n") {
		t.Errorf("//docs/./page.html: %.300q", got)
	}
}
