package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/testnet"
	"github.com/xp2p/xp2p/peer"
)

// fake is a Controller that records reloads.
type fake struct {
	mu       sync.Mutex
	reloaded []*config.Client
	refuse   error
}

func (f *fake) Servers() []peer.ServerInfo {
	return []peer.ServerInfo{{Addr: "127.0.0.1:7000", Connected: true, Transport: "quic", RTT: 1500 * time.Microsecond, Since: time.Now()}}
}
func (f *fake) NAT() string {
	return "port-restricted cone (mapping endpoint-independent, filtering address-and-port-dependent)"
}
func (f *fake) PortMapping() *peer.PortMapInfo {
	return &peer.PortMapInfo{Protocol: "PCP", Public: "192.0.3.10:40123", Local: "10.1.0.2:40123", Router: "10.1.0.1", Lifetime: 2 * time.Hour}
}
func (f *fake) Proxies() []peer.ProxyInfo {
	return []peer.ProxyInfo{{Name: "ssh", Type: "tcp", Local: "127.0.0.1:22", Remote: "0.0.0.0:6000", Status: "running", BytesIn: 1536, BytesOut: 5 << 20, Conns: 2}}
}
func (f *fake) Visitors() []peer.VisitorInfo {
	return []peer.VisitorInfo{{Name: "nas-visitor", Type: "xp2p", Service: "nas", Bind: "127.0.0.1:8096", Protocol: "tcp", Path: "direct", Sessions: 1}}
}
func (f *fake) Sessions() []peer.SessionInfo {
	return []peer.SessionInfo{{ID: "0123abcd", Service: "nas", Role: "visitor", Path: "direct", Remote: "203.0.113.5:4000", RTT: 12 * time.Millisecond, TimeToReady: 30 * time.Millisecond, DirectBytes: 1 << 30}}
}
func (f *fake) Reload(cfg *config.Client) (*peer.ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return nil, f.refuse
	}
	f.reloaded = append(f.reloaded, cfg)
	res := &peer.ReloadResult{Unchanged: []string{}}
	for _, p := range cfg.Proxies {
		res.Added = append(res.Added, "proxy "+p.Name)
	}
	return res, nil
}

func startAdmin(t *testing.T, cfg config.WebServer, ctl Controller, opts Options) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1"
	}
	if opts.Log == nil {
		opts.Log, _ = testnet.Logger(t, "admin")
	}
	// This test process is the endpoint's caller as well as its client.
	opts.SameProcessOwner = true
	s, err := New(cfg, ctl, opts)
	if err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clientFor returns an admin client for a started endpoint.
func clientFor(t *testing.T, s *Server, user, pass string) *Client {
	t.Helper()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.URL(), "http://"))
	var p int
	fmt.Sscan(port, &p)
	c, err := NewClient(config.WebServer{Addr: "127.0.0.1", Port: p, User: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const validConfig = `serverAddr = "127.0.0.1"
serverPort = 7000
auth.token = "x"

[[proxies]]
name = "web"
type = "tcp"
localIP = "127.0.0.1"
localPort = 8080
remotePort = 6080
`

func TestStatusAndReload(t *testing.T) {
	f := &fake{}
	s := startAdmin(t, config.WebServer{User: "admin", Password: "a-long-admin-password"}, f, Options{})
	c := clientFor(t, s, "admin", "a-long-admin-password")
	ctx := context.Background()

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Proxies) != 1 || len(st.Visitors) != 1 || len(st.Sessions) != 1 || len(st.Servers) != 1 {
		t.Fatalf("status %+v", st)
	}
	var out bytes.Buffer
	WriteStatus(&out, st)
	for _, want := range []string{"NAT: port-restricted cone", "port mapping: 192.0.3.10:40123 → 10.1.0.2:40123 by PCP (router 10.1.0.1, lifetime 2h0m0s)", "servers: 1 of 1 connected", "PROXIES (1)", "ssh", "0.0.0.0:6000", "running", "1.50 KB", "5.00 MB",
		"VISITORS (1)", "nas-visitor", "127.0.0.1:8096/tcp", "P2P SESSIONS (1)", "203.0.113.5:4000", "12.0ms", "1.00 GB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status table lacks %q:\n%s", want, out.String())
		}
	}

	res, err := c.Reload(ctx, "/etc/xp2p/client.toml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.reloaded) != 1 || f.reloaded[0].Proxies[0].Name != "web" || len(res.Result.Added) != 1 {
		t.Fatalf("reload: %+v, applied %d", res, len(f.reloaded))
	}
	out.Reset()
	WriteReload(&out, res)
	if !strings.Contains(out.String(), "added     proxy web") {
		t.Errorf("reload output:\n%s", out.String())
	}

	// An invalid config is refused with its position, and nothing is applied.
	_, err = c.Reload(ctx, "/etc/xp2p/client.toml", []byte(validConfig+"\n[[proxies]]\nname = \"web\"\ntype = \"tcp\"\nlocalPort = 99999\n"))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 400 || !strings.Contains(err.Error(), "client.toml:") {
		t.Errorf("invalid config: %v", err)
	}
	// A reload the client refuses (restart-only change).
	f.refuse = errors.New("reload refused: serverAddr changed; restart the client to apply")
	_, err = c.Reload(ctx, "client.toml", []byte(validConfig))
	if !errors.As(err, &se) || se.Code != 409 || !strings.Contains(err.Error(), "serverAddr changed") {
		t.Errorf("refused reload: %v", err)
	}
	if len(f.reloaded) != 1 {
		t.Errorf("applied %d configs, want 1", len(f.reloaded))
	}

	// Wrong password: 401 with a hint.
	_, err = clientFor(t, s, "admin", "wrong").Status(ctx)
	if !errors.As(err, &se) || se.Code != 401 || !strings.Contains(err.Error(), "webServer.password") {
		t.Errorf("wrong password: %v", err)
	}
}

func TestReloadFromConfigPath(t *testing.T) {
	f := &fake{}
	path := filepath.Join(t.TempDir(), "client.toml")
	if err := os.WriteFile(path, []byte(validConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startAdmin(t, config.WebServer{}, f, Options{ConfigPath: path})
	res, err := http.Post(s.URL()+"/api/reload", "application/toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || len(f.reloaded) != 1 {
		t.Errorf("reload of the started-with file: %d, applied %d", res.StatusCode, len(f.reloaded))
	}
}

func TestMalformedAndCrossSite(t *testing.T) {
	f := &fake{}
	s := startAdmin(t, config.WebServer{}, f, Options{})
	cases := []struct {
		method, path, ctype, body string
		hdr                       []string
		code                      int
		msg                       string
	}{
		{"GET", "/api/reload", "", "", nil, 405, "use POST"},
		{"POST", "/api/status", "", "", nil, 405, "use GET"},
		{"GET", "/api/nothing", "", "", nil, 404, "no such page or endpoint"},
		{"GET", "/api/status?x=1", "", "", nil, 400, "unknown query parameter"},
		{"POST", "/api/reload?y=2", "application/toml", validConfig, nil, 400, `unknown query parameter`},
		{"POST", "/api/reload", "", "", nil, 400, "empty body"},
		// A browser may send text/plain across sites without asking first: refused.
		{"POST", "/api/reload", "text/plain", validConfig, nil, 415, "application/toml"},
		{"POST", "/api/reload", "application/toml", "serverAddr = 1\n", nil, 400, "client.toml:1"},
		{"POST", "/api/reload", "application/toml", "// not toml\n", nil, 400, "client.toml"},
		{"POST", "/api/reload", "application/toml", strings.Repeat("#", MaxConfigSize+1), nil, 413, "larger than"},
		{"POST", "/api/reload", "application/toml", validConfig, []string{"Origin", "http://evil.example"}, 403, "cross-origin"},
		{"POST", "/api/reload", "application/toml", validConfig, []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-site"},
		{"GET", "/api/status", "", "", []string{"Host", "rebound.example:7400"}, 421, "localhost"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, s.URL()+tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			if tc.hdr[i] == "Host" {
				req.Host = tc.hdr[i+1]
			} else {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.code || !strings.Contains(string(body), tc.msg) || !strings.HasPrefix(string(body), `{"error":`) {
			t.Errorf("%s %s (%s): %d %s, want %d with %q", tc.method, tc.path, tc.ctype, res.StatusCode, body, tc.code, tc.msg)
		}
	}
	if len(f.reloaded) != 0 {
		t.Errorf("%d configs applied by malformed requests", len(f.reloaded))
	}
	// The endpoint still works.
	if _, err := clientFor(t, s, "", "").Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestExposure(t *testing.T) {
	for _, addr := range []string{"0.0.0.0", "::", "192.0.2.1"} {
		_, err := New(config.WebServer{Addr: addr, Port: 7400}, &fake{}, Options{})
		if err == nil || !strings.Contains(err.Error(), "webServer.password is not set") {
			t.Errorf("%s without a password: err = %v", addr, err)
		}
	}
	if _, err := New(config.WebServer{Addr: "127.0.0.1", Port: 7400}, &fake{}, Options{}); err != nil {
		t.Errorf("loopback without a password: %v", err)
	}
	if _, err := New(config.WebServer{Addr: "0.0.0.0", Port: 7400, User: "admin", Password: "a-long-admin-password"}, &fake{}, Options{}); err != nil {
		t.Errorf("0.0.0.0 with a password: %v", err)
	}
	if _, err := NewClient(config.WebServer{}); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("client of a config without webServer.port: %v", err)
	}
}

func TestLoginFlood(t *testing.T) {
	s := startAdmin(t, config.WebServer{User: "admin", Password: "a-long-admin-password"}, &fake{}, Options{})
	ctx := context.Background()
	bad := clientFor(t, s, "admin", "guess")
	codes := map[int]int{}
	for range 50 {
		_, err := bad.Status(ctx)
		var se *StatusError
		if !errors.As(err, &se) {
			t.Fatalf("bad login: %v", err)
		}
		codes[se.Code]++
	}
	if codes[401] != 5 || codes[429] != 45 {
		t.Errorf("flood answers %v, want 5 × 401 then 429", codes)
	}
	// Only loopback here, so the right password from the same address is limited too.
	if _, err := clientFor(t, s, "admin", "a-long-admin-password").Status(ctx); err == nil || !strings.Contains(err.Error(), "too many failed logins") {
		t.Errorf("right password from the limited address: %v", err)
	}
}

// TestRealClient drives a real client through its admin endpoint: status, then a reload that
// adds a proxy, which the server then publishes.
func TestRealClient(t *testing.T) {
	svc := testnet.StartService(t, testnet.SinkHandler)
	srv := testnet.StartServer(t, "")
	before := testnet.ClientTOML(srv, testnet.TCPProxy("a", svc.Port(), 0))
	c := testnet.StartClient(t, before)
	testnet.WaitRunning(t, c, "a")
	s := startAdmin(t, config.WebServer{User: "admin", Password: "a-long-admin-password"}, c.Client, Options{})
	ac := clientFor(t, s, "admin", "a-long-admin-password")
	ctx := context.Background()
	st, err := ac.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Servers) != 1 || !st.Servers[0].Connected || len(st.Proxies) != 1 || st.Proxies[0].Status != "running" {
		t.Fatalf("status %+v", st)
	}
	after := before + testnet.TCPProxy("b", svc.Port(), 0)
	res, err := ac.Reload(ctx, "client.toml", []byte(after))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Result.Added) != "[proxy b]" || fmt.Sprint(res.Result.Unchanged) != "[proxy a]" {
		t.Errorf("reload result %+v", res.Result)
	}
	testnet.WaitRunning(t, c, "b")
	// A change only a restart can make is refused as a whole.
	_, err = ac.Reload(ctx, "client.toml", []byte(strings.Replace(after, "serverAddr = \"127.0.0.1\"", "serverAddr = \"127.0.0.2\"", 1)))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 409 || !strings.Contains(err.Error(), "serverAddr") {
		t.Errorf("restart-only change: %v", err)
	}
	st, _ = ac.Status(ctx)
	if len(st.Proxies) != 2 {
		t.Errorf("after the refused reload: %d proxies, want 2", len(st.Proxies))
	}
}

// TestPprof: webServer.pprofEnable in the client config serves Go's profiles on the admin
// endpoint (loopback only when it has no password, like the rest of it).
func TestPprof(t *testing.T) {
	on := startAdmin(t, config.WebServer{PprofEnable: true}, &fake{}, Options{})
	off := startAdmin(t, config.WebServer{}, &fake{}, Options{})
	cases := []struct {
		url, host string
		code      int
		body      string
	}{
		{on.URL() + "/debug/pprof/heap?debug=1", "", 200, "heap profile"},
		{on.URL() + "/debug/pprof/heap?debug=1", "rebound.example", 421, "localhost"},
		{off.URL() + "/debug/pprof/heap?debug=1", "", 404, "no such page or endpoint"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("GET", tc.url, nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.code || !strings.Contains(string(body), tc.body) {
			t.Errorf("GET %s (Host %q): %d %.200q, want %d with %q", tc.url, tc.host, res.StatusCode, body, tc.code, tc.body)
		}
	}
}
