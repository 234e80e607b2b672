package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/tlsconf"
	"github.com/xp2p/xp2p/internal/wire"
)

// startWebServer starts a server whose web ports (vhostHTTPPort, vhostHTTPSPort,
// tcpmuxHTTPConnectPort) listen on free ports.
func startWebServer(t testing.TB, extra string) *testServer {
	t.Helper()
	return startServerWith(t, 0, extra, func(c *config.Server) {
		c.VhostHTTPPort, c.VhostHTTPSPort, c.TCPMuxHTTPConnectPort = -1, -1, -1
	})
}

// webProxy is a [[proxies]] entry of a web type; extra holds its further keys.
func webProxy(name, typ string, localPort int, extra ...string) string {
	return fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = %q\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\n%s\n", name, typ, localPort, strings.Join(extra, "\n"))
}

// seenRequest is what the test's web services say about the request they got.
type seenRequest struct {
	Service string      `json:"service"`
	Host    string      `json:"host"`
	Path    string      `json:"path"`
	Remote  string      `json:"remote"`
	Header  http.Header `json:"header"`
}

// webService is a local HTTP service that answers with a seenRequest and counts the
// connections it accepted.
type webService struct {
	*httptest.Server
	mu    sync.Mutex
	conns int
}

func startWebService(t testing.TB, name string) *webService {
	t.Helper()
	ws := &webService{}
	mux := http.NewServeMux()
	mux.Handle("/ws", websocket.Handler(func(c *websocket.Conn) {
		// Echo each message with the service's name in front.
		for {
			var msg string
			if err := websocket.Message.Receive(c, &msg); err != nil {
				return
			}
			websocket.Message.Send(c, name+":"+msg)
		}
	}))
	mux.HandleFunc("/wspage", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, wsPage)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Service", name)
		json.NewEncoder(w).Encode(seenRequest{Service: name, Host: r.Host, Path: r.URL.Path, Remote: r.RemoteAddr, Header: r.Header})
	})
	ws.Server = httptest.NewUnstartedServer(mux)
	ws.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			ws.mu.Lock()
			ws.conns++
			ws.mu.Unlock()
		}
	}
	ws.Start()
	t.Cleanup(ws.Close)
	return ws
}

func (ws *webService) Port() int { return ws.Listener.Addr().(*net.TCPAddr).Port }

func (ws *webService) connCount() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.conns
}

// vhostClient is an HTTP client that reaches every host name at addr (curl --resolve).
func vhostClient(addr string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
	}}
}

// get asks url through c and decodes the service's answer (Service "" if it was not JSON).
func get(t testing.TB, c *http.Client, url string, setup ...func(*http.Request)) (*http.Response, seenRequest, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(req)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var seen seenRequest
	json.Unmarshal(body, &seen)
	return res, seen, string(body)
}

func TestHTTPVhost(t *testing.T) {
	srv := startWebServer(t, "subDomainHost = \"example.com\"\n")
	addr := srv.WebAddr(wire.ProxyHTTP).String()
	a, api, b, wild, alice, anyUser := startWebService(t, "a"), startWebService(t, "api"), startWebService(t, "b"),
		startWebService(t, "wild"), startWebService(t, "alice"), startWebService(t, "any")

	c1 := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("web-a", "http", a.Port(), `customDomains = ["a.test"]`, `hostHeaderRewrite = "internal.lan"`,
			`requestHeaders.set.x-from = "xp2p"`, `responseHeaders.set.x-served = "by-a"`)+
		webProxy("web-b", "http", b.Port(), `subdomain = "b"`, `httpUser = "u"`, `httpPassword = "secret-pass"`)+
		webProxy("web-wild", "http", wild.Port(), `customDomains = ["*.wild.test"]`)+
		webProxy("web-api", "http", api.Port(), `customDomains = ["a.test"]`, `locations = ["/api"]`))
	c2 := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("web-alice", "http", alice.Port(), `customDomains = ["u.test"]`, `routeByHTTPUser = "alice"`, `httpUser = "alice"`, `httpPassword = "alice-pass"`)+
		webProxy("web-any", "http", anyUser.Port(), `customDomains = ["u.test"]`))
	for _, n := range []string{"web-a", "web-b", "web-wild", "web-api"} {
		waitRunning(t, c1, n)
	}
	for _, n := range []string{"web-alice", "web-any"} {
		waitRunning(t, c2, n)
	}
	if remote := waitRunning(t, c1, "web-b"); !strings.HasPrefix(remote, "b.example.com:") {
		t.Errorf("web-b published at %q, want b.example.com:port", remote)
	}
	hc := vhostClient(addr)

	t.Run("routing", func(t *testing.T) {
		for _, tc := range []struct{ url, want string }{
			{"http://a.test/", "a"},
			{"http://A.Test./index.html", "a"},
			{"http://a.test/api", "api"},
			{"http://a.test/api/v1/users", "api"},
			{"http://a.test/ap", "a"},
			{"http://x.wild.test/", "wild"},
			{"http://y.x.wild.test/", "wild"},
			{"http://u.test/", "any"},
		} {
			if _, seen, body := get(t, hc, tc.url); seen.Service != tc.want {
				t.Errorf("%s: served by %q, want %q (%.200s)", tc.url, seen.Service, tc.want, body)
			}
		}
	})
	t.Run("unknown host gets a 404 page", func(t *testing.T) {
		res, _, body := get(t, hc, "http://nothing.test/x")
		if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "No service is published for nothing.test") || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Errorf("status %d, %q: %.300s", res.StatusCode, res.Header.Get("Content-Type"), body)
		}
		if res, _, _ := get(t, hc, "http://wild.test/"); res.StatusCode != http.StatusNotFound {
			t.Errorf("wild.test itself: status %d, want 404 (*.wild.test is its subdomains)", res.StatusCode)
		}
	})
	t.Run("headers", func(t *testing.T) {
		res, seen, _ := get(t, hc, "http://a.test/h", func(r *http.Request) { r.Header.Set("X-Forwarded-For", "203.0.113.7") })
		if seen.Host != "internal.lan" {
			t.Errorf("Host %q, want the rewrite internal.lan", seen.Host)
		}
		if got := seen.Header.Get("X-Forwarded-For"); got != "203.0.113.7, 127.0.0.1" {
			t.Errorf("X-Forwarded-For %q, want the user's appended", got)
		}
		if seen.Header.Get("X-Forwarded-Host") != "a.test" || seen.Header.Get("X-Forwarded-Proto") != "http" || seen.Header.Get("X-From") != "xp2p" {
			t.Errorf("headers %v", seen.Header)
		}
		if res.Header.Get("X-Served") != "by-a" || res.Header.Get("X-Service") != "a" {
			t.Errorf("response headers %v", res.Header)
		}
	})
	t.Run("httpUser and httpPassword", func(t *testing.T) {
		res, seen, _ := get(t, hc, "http://b.example.com/")
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(res.Header.Get("WWW-Authenticate"), "Basic") || seen.Service != "" {
			t.Errorf("no credentials: %d %v served by %q", res.StatusCode, res.Header, seen.Service)
		}
		if res, seen, _ := get(t, hc, "http://b.example.com/", func(r *http.Request) { r.SetBasicAuth("u", "wrong") }); res.StatusCode != http.StatusUnauthorized || seen.Service != "" {
			t.Errorf("wrong password: %d served by %q", res.StatusCode, seen.Service)
		}
		if _, seen, _ := get(t, hc, "http://b.example.com/", func(r *http.Request) { r.SetBasicAuth("u", "secret-pass") }); seen.Service != "b" {
			t.Errorf("right password: served by %q", seen.Service)
		}
	})
	t.Run("routeByHTTPUser", func(t *testing.T) {
		if _, seen, _ := get(t, hc, "http://u.test/", func(r *http.Request) { r.SetBasicAuth("alice", "alice-pass") }); seen.Service != "alice" {
			t.Errorf("alice: served by %q", seen.Service)
		}
		if _, seen, _ := get(t, hc, "http://u.test/", func(r *http.Request) { r.SetBasicAuth("bob", "x") }); seen.Service != "any" {
			t.Errorf("bob: served by %q, want the route for any user", seen.Service)
		}
		if res, seen, _ := get(t, hc, "http://u.test/", func(r *http.Request) { r.SetBasicAuth("alice", "wrong") }); res.StatusCode != http.StatusUnauthorized || seen.Service != "" {
			t.Errorf("alice with a wrong password: %d, served by %q", res.StatusCode, seen.Service)
		}
	})
	t.Run("keep-alive reuses connections to the service", func(t *testing.T) {
		before := wild.connCount()
		for i := range 30 {
			if _, seen, _ := get(t, hc, fmt.Sprintf("http://k.wild.test/%d", i)); seen.Service != "wild" {
				t.Fatalf("request %d served by %q", i, seen.Service)
			}
		}
		if n := wild.connCount() - before; n > 2 {
			t.Errorf("30 sequential requests opened %d connections to the service, want 1 (kept alive)", n)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := websocket.NewConfig("ws://z.wild.test/ws", "http://z.wild.test/")
		ws, err := websocket.NewClient(cfg, conn)
		if err != nil {
			t.Fatalf("websocket handshake through the vhost: %v", err)
		}
		defer ws.Close()
		for _, m := range []string{"one", strings.Repeat("x", 100000), "three"} {
			if err := websocket.Message.Send(ws, m); err != nil {
				t.Fatal(err)
			}
			var got string
			ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			if err := websocket.Message.Receive(ws, &got); err != nil || got != "wild:"+m {
				t.Fatalf("echo of %.20q: %.20q, %v", m, got, err)
			}
		}
	})
	t.Run("a route another client holds is refused", func(t *testing.T) {
		c3 := startClient(t, clientHeader(srv.Port(), testToken, "")+
			webProxy("thief", "http", a.Port(), `customDomains = ["a.test"]`)+
			webProxy("under-sub", "http", a.Port(), `customDomains = ["c.example.com"]`))
		if st := waitProxyStatus(t, c3, "thief").Status; !strings.Contains(st, "host a.test: already served by another proxy") {
			t.Errorf("thief: %q", st)
		}
		if st := waitProxyStatus(t, c3, "under-sub").Status; !strings.Contains(st, "under the server's subDomainHost") {
			t.Errorf("under-sub: %q", st)
		}
		if _, seen, _ := get(t, hc, "http://a.test/"); seen.Service != "a" {
			t.Errorf("a.test served by %q after the attempt", seen.Service)
		}
	})
	t.Run("a withdrawn proxy's host is gone", func(t *testing.T) {
		c2.Close()
		eventually(t, 5*time.Second, func() bool {
			res, _, _ := get(t, hc, "http://u.test/")
			return res.StatusCode == http.StatusNotFound
		}, func() string { return "u.test still served after its client left" })
		if _, seen, _ := get(t, hc, "http://a.test/api"); seen.Service != "api" {
			t.Errorf("a.test/api after another client left: served by %q, want api", seen.Service)
		}
	})
}

// tlsService is a local TLS service for names that answers each connection with its name.
func tlsService(t testing.TB, name string, names ...string) (port int, pool *x509.CertPool) {
	t.Helper()
	cert, err := tlsconf.SelfSigned(names...)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				fmt.Fprintf(c, "%s:%s", name, buf[:n])
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, pool
}

// tlsAsk connects to addr with server name sni, trusting pool, and returns the service's
// answer to "hi".
func tlsAsk(addr, sni string, pool *x509.CertPool) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: sni, RootCAs: pool})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hi")); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestHTTPSVhostBySNI(t *testing.T) {
	srv := startWebServer(t, "")
	addr := srv.WebAddr(wire.ProxyHTTPS).String()
	portA, poolA := tlsService(t, "a", "a.test")
	portB, poolB := tlsService(t, "b", "b.test", "*.b.test")
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("tls-a", "https", portA, `customDomains = ["a.test"]`)+
		webProxy("tls-b", "https", portB, `customDomains = ["b.test", "*.b.test"]`))
	waitRunning(t, c, "tls-a")
	waitRunning(t, c, "tls-b")
	for _, tc := range []struct {
		sni  string
		pool *x509.CertPool
		want string
	}{{"a.test", poolA, "a:hi"}, {"b.test", poolB, "b:hi"}, {"x.b.test", poolB, "b:hi"}} {
		// The certificate verifies: the bytes reached the service untouched, end to end.
		if got, err := tlsAsk(addr, tc.sni, tc.pool); got != tc.want || err != nil {
			t.Errorf("%s: %q, %v; want %q", tc.sni, got, err, tc.want)
		}
	}
	if _, err := tlsAsk(addr, "c.test", poolA); err == nil || !strings.Contains(err.Error(), "unrecognized name") {
		t.Errorf("unknown server name: %v, want the alert unrecognized_name", err)
	}
	// Silent connections that never send a ClientHello are closed after the route timeout
	// and never reach a service; meanwhile real users go on.
	for range 20 {
		dial(t, addr)
	}
	if got, err := tlsAsk(addr, "a.test", poolA); got != "a:hi" || err != nil {
		t.Errorf("with silent connections open: %q, %v", got, err)
	}
}

func TestTCPMuxHTTPConnect(t *testing.T) {
	srv := startWebServer(t, "")
	addr := srv.WebAddr(wire.ProxyTCPMux).String()
	echo := startTCPService(t, echoHandler)
	id := startTCPService(t, idHandler("locked"))
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("mux-echo", "tcpmux", echo.Port(), `multiplexer = "httpconnect"`, `customDomains = ["echo.test"]`)+
		webProxy("mux-locked", "tcpmux", id.Port(), `multiplexer = "httpconnect"`, `customDomains = ["locked.test"]`, `httpUser = "u"`, `httpPassword = "p4ss"`))
	waitRunning(t, c, "mux-echo")
	waitRunning(t, c, "mux-locked")
	connect := func(host, auth string) (string, *net.TCPConn) {
		conn := dial(t, addr)
		req := "CONNECT " + host + " HTTP/1.1\r\nHost: " + host + "\r\n"
		if auth != "" {
			req += "Proxy-Authorization: Basic " + auth + "\r\n"
		}
		conn.Write([]byte(req + "\r\nafter-the-request"))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, _ := io.ReadAtLeast(conn, buf, 12)
		return string(buf[:n]), conn
	}
	got, conn := connect("echo.test:22", "")
	if !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Fatalf("CONNECT echo.test: %q", got)
	}
	// Bytes the user sent right behind the request reach the service too.
	rest := strings.SplitN(got, "\r\n\r\n", 2)[1]
	for len(rest) < len("after-the-request") {
		b := make([]byte, 64)
		n, err := conn.Read(b)
		if err != nil {
			t.Fatalf("echo after CONNECT: %q, %v", rest, err)
		}
		rest += string(b[:n])
	}
	if rest != "after-the-request" {
		t.Errorf("echo %q", rest)
	}
	if got, _ := connect("nothing.test:22", ""); !strings.HasPrefix(got, "HTTP/1.1 404") {
		t.Errorf("unknown host: %q", got)
	}
	if got, _ := connect("locked.test:22", ""); !strings.HasPrefix(got, "HTTP/1.1 407") {
		t.Errorf("no credentials: %q", got)
	}
	got, conn = connect("locked.test:22", "dTpwNHNz") // u:p4ss
	more, _ := io.ReadAll(conn)
	if got += string(more); !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.HasSuffix(got, "\r\n\r\nlocked") {
		t.Errorf("right credentials: %q", got)
	}
}

func TestWebLoadBalancingGroup(t *testing.T) {
	srv := startWebServer(t, "")
	hc := vhostClient(srv.WebAddr(wire.ProxyHTTP).String())
	one, two := startWebService(t, "one"), startWebService(t, "two")
	group := func(key string) string {
		return `loadBalancer.group = "g"` + "\n" + `loadBalancer.groupKey = "` + key + `"`
	}
	c1 := startClient(t, clientHeader(srv.Port(), testToken, "")+webProxy("g-web", "http", one.Port(), `customDomains = ["g.test"]`, group("k")))
	c2 := startClient(t, clientHeader(srv.Port(), testToken, "")+webProxy("g-web", "http", two.Port(), `customDomains = ["g.test"]`, group("k")))
	waitRunning(t, c1, "g-web")
	waitRunning(t, c2, "g-web")
	c3 := startClient(t, clientHeader(srv.Port(), testToken, "")+webProxy("g-web2", "http", two.Port(), `customDomains = ["g.test"]`, group("wrong")))
	if st := waitProxyStatus(t, c3, "g-web2").Status; !strings.Contains(st, "wrong loadBalancer.groupKey") {
		t.Errorf("wrong group key: %q", st)
	}
	seen := map[string]int{}
	for range 20 {
		_, s, _ := get(t, hc, "http://g.test/")
		seen[s.Service]++
	}
	if seen["one"] < 5 || seen["two"] < 5 {
		t.Errorf("20 requests to the group: %v, want both members", seen)
	}
	c1.Close()
	for range 10 {
		if _, s, _ := get(t, hc, "http://g.test/"); s.Service != "two" {
			t.Fatalf("after one member left: served by %q", s.Service)
		}
	}
}

func TestVhostTimeoutAndCustom404(t *testing.T) {
	page := t.TempDir() + "/404.html"
	if err := os.WriteFile(page, []byte("<h1>our own 404</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startWebServer(t, "vhostHTTPTimeout = 1\ncustom404Page = \""+page+"\"\n")
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("slow", "http", slow.Listener.Addr().(*net.TCPAddr).Port, `customDomains = ["slow.test"]`)+
		webProxy("down", "http", freeTCPPort(t), `customDomains = ["down.test"]`))
	waitRunning(t, c, "slow")
	waitRunning(t, c, "down")
	hc := vhostClient(srv.WebAddr(wire.ProxyHTTP).String())
	start := time.Now()
	if res, _, _ := get(t, hc, "http://slow.test/"); res.StatusCode != http.StatusGatewayTimeout || time.Since(start) > 4*time.Second {
		t.Errorf("slow service: %d after %v, want 504 after vhostHTTPTimeout (1 s)", res.StatusCode, time.Since(start))
	}
	if res, _, body := get(t, hc, "http://down.test/"); res.StatusCode != http.StatusBadGateway || !strings.Contains(body, "down.test could not be reached") {
		t.Errorf("service down: %d %q", res.StatusCode, body)
	}
	if res, _, body := get(t, hc, "http://other.test/"); res.StatusCode != http.StatusNotFound || body != "<h1>our own 404</h1>" {
		t.Errorf("custom404Page: %d %q", res.StatusCode, body)
	}
}

// TestDeadClientsHostIsTakenOver: the host of a client that died (SIGKILL: its session says
// nothing) goes to the next client that asks for it once the server's liveness check fails,
// under another proxy name too, instead of after the dead session's timeout.
func TestDeadClientsHostIsTakenOver(t *testing.T) {
	t.Parallel()
	srv := startWebServer(t, "")
	hc := vhostClient(srv.WebAddr(wire.ProxyHTTP).String())
	victimSvc, heirSvc := startWebService(t, "victim"), startWebService(t, "heir")
	head := clientHeader(srv.Port(), testToken, "transport.natDiscovery = false")
	victim := startProc(t, "client", "victim", head+webProxy("site", "http", victimSvc.Port(), `customDomains = ["site.test"]`))
	eventually(t, 10*time.Second, func() bool { _, s, _ := get(t, hc, "http://site.test/"); return s.Service == "victim" },
		func() string { return "the victim's site never answered" })
	victim.kill()
	killed := time.Now()
	heir := startClient(t, head+webProxy("site-heir", "http", heirSvc.Port(), `customDomains = ["site.test"]`))
	waitRunning(t, heir, "site-heir")
	if took := time.Since(killed); took > 12*time.Second {
		t.Errorf("the dead client's host was free only %s after the crash", took.Round(time.Millisecond))
	}
	if _, s, _ := get(t, hc, "http://site.test/"); s.Service != "heir" {
		t.Errorf("after the takeover site.test is served by %q", s.Service)
	}
}
