package dashboard

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/testnet"
)

const (
	testUser     = "operator"
	testPassword = "a-long-test-password-91c2"
)

// startDashboard starts a dashboard for src on a free loopback port.
func startDashboard(t testing.TB, src Source, cfg config.WebServer, opts Options) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1"
	}
	if opts.Log == nil {
		opts.Log, _ = testnet.Logger(t, "dashboard")
	}
	if opts.Tick == 0 {
		opts.Tick = 100 * time.Millisecond
	}
	d, err := New(cfg, src, opts)
	if err != nil {
		t.Fatalf("dashboard.New: %v", err)
	}
	if err := d.Start(); err != nil {
		t.Fatalf("dashboard start: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func authCfg() config.WebServer {
	return config.WebServer{Addr: "127.0.0.1", User: testUser, Password: testPassword}
}

// api is a test client of the dashboard's API.
type api struct {
	t    testing.TB
	base string
	hc   *http.Client
	user string
	pass string
}

func newAPI(t testing.TB, d *Server) *api {
	return &api{t: t, base: d.URL(), hc: &http.Client{Timeout: 10 * time.Second}, user: testUser, pass: testPassword}
}

// get fetches path and decodes the JSON answer into out; it returns the status.
func (a *api) get(path string, out any) int {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.base+path, nil)
	if a.user != "" {
		req.SetBasicAuth(a.user, a.pass)
	}
	res, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			a.t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return res.StatusCode
}

func (a *api) mustGet(path string, out any) {
	a.t.Helper()
	if code := a.get(path, out); code != http.StatusOK {
		a.t.Fatalf("GET %s: status %d", path, code)
	}
}

// metrics scrapes /metrics into name{labels} → value.
func (a *api) metrics() map[string]float64 {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.base+"/metrics", nil)
	req.SetBasicAuth(a.user, a.pass)
	res, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		a.t.Fatalf("GET /metrics: status %d", res.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			a.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func findProxy(ps []Proxy, name string) *Proxy {
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i]
		}
	}
	return nil
}

// TestTrafficThroughRealProxy pushes a known number of bytes through a tcp proxy of a real
// server and client, and checks that the API and /metrics count exactly those bytes, also
// after the client reconnected.
func TestTrafficThroughRealProxy(t *testing.T) {
	const (
		send1, reply1 = 3<<20 + 123, 1<<20 + 7
		send2, reply2 = 512<<10 + 5, 64<<10 + 3
	)
	svc := testnet.StartService(t, testnet.ReplyHandler(reply1))
	srv := testnet.StartServer(t, "")
	d := startDashboard(t, srv, authCfg(), Options{})
	a := newAPI(t, d)
	toml := testnet.ClientTOML(srv, testnet.TCPProxy("web", svc.Port(), 0))
	c := testnet.StartClient(t, toml)
	testnet.WaitRunning(t, c, "web")

	var p Proxy
	a.mustGet("/api/proxies/web", &p)
	if p.Status != "online" || p.Type != "tcp" || p.RemotePort == 0 || len(p.Owners) != 1 {
		t.Fatalf("proxy before traffic: %+v", p)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.RemotePort))
	got, err := testnet.Exchange(addr, send1, 20*time.Second)
	if err != nil || got != reply1 {
		t.Fatalf("exchange through the proxy: got %d bytes back, err %v", got, err)
	}
	testnet.Eventually(t, 10*time.Second, func() bool {
		a.mustGet("/api/proxies/web", &p)
		return p.Connections == 0 && p.BytesIn == send1 && p.BytesOut == reply1
	}, func() string {
		return fmt.Sprintf("proxy figures %+v, want in %d out %d, no open connection", p, send1, reply1)
	})
	if p.TotalConnections != 1 || p.TodayIn != send1 || p.TodayOut != reply1 {
		t.Errorf("proxy figures %+v: want 1 connection, today in %d out %d", p, send1, reply1)
	}

	var o Overview
	a.mustGet("/api/overview", &o)
	if o.Traffic.In != send1 || o.Traffic.Out != reply1 || o.Traffic.TodayIn != send1 || o.Traffic.TodayOut != reply1 {
		t.Errorf("overview traffic %+v, want in %d out %d", o.Traffic, send1, reply1)
	}
	if o.ClientsOnline != 1 || o.Proxies.Online != 1 || o.Proxies.ByType["tcp"] != 1 || o.Connections != 0 {
		t.Errorf("overview %+v", o)
	}
	m := a.metrics()
	for key, want := range map[string]float64{
		`xp2p_proxy_traffic_bytes_total{direction="in",proxy="web",type="tcp"}`:  send1,
		`xp2p_proxy_traffic_bytes_total{direction="out",proxy="web",type="tcp"}`: reply1,
		`xp2p_proxy_connections_total{proxy="web",type="tcp"}`:                   1,
		`xp2p_proxy_connections{proxy="web",type="tcp"}`:                         0,
		`xp2p_clients_online`:                      1,
		`xp2p_proxies{status="online",type="tcp"}`: 1,
	} {
		if m[key] != want {
			t.Errorf("metric %s = %v, want %v", key, m[key], want)
		}
	}

	// The history has recorded the traffic: the proxy's series over the last hour adds up to it
	// (the series is in bytes per second over steps; the running step divides by its elapsed part).
	testnet.Eventually(t, 5*time.Second, func() bool {
		var s Series
		a.mustGet("/api/proxies/web/traffic?range=1h", &s)
		var in float64
		for _, v := range s.In {
			in += v
		}
		return len(s.T) >= 1 && len(s.T) <= 60 && len(s.In) == len(s.T) && s.Step == 60 && in > 0
	}, func() string { return "the proxy's traffic series stays empty" })

	// The client goes away: the proxy stays known, offline, with its figures.
	c.Close()
	testnet.Eventually(t, 10*time.Second, func() bool {
		a.mustGet("/api/proxies/web", &p)
		return p.Status == "offline"
	}, func() string { return fmt.Sprintf("proxy after the client left: %+v", p) })
	if p.BytesIn != send1 || p.BytesOut != reply1 {
		t.Errorf("offline proxy lost its figures: %+v", p)
	}

	// It comes back (a new process with the same config): the counters go on from there.
	svc2 := testnet.StartService(t, testnet.ReplyHandler(reply2))
	c2 := testnet.StartClient(t, testnet.ClientTOML(srv, testnet.TCPProxy("web", svc2.Port(), p.RemotePort)))
	testnet.WaitRunning(t, c2, "web")
	if got, err := testnet.Exchange(addr, send2, 20*time.Second); err != nil || got != reply2 {
		t.Fatalf("exchange after the reconnect: got %d bytes back, err %v", got, err)
	}
	testnet.Eventually(t, 10*time.Second, func() bool {
		a.mustGet("/api/proxies/web", &p)
		return p.Status == "online" && p.Connections == 0 && p.BytesIn == send1+send2 && p.BytesOut == reply1+reply2
	}, func() string {
		return fmt.Sprintf("after the reconnect: %+v, want in %d out %d", p, send1+send2, reply1+reply2)
	})
	if p.TotalConnections != 2 || p.TodayIn != send1+send2 {
		t.Errorf("after the reconnect: %+v", p)
	}
	m = a.metrics()
	if v := m[`xp2p_proxy_traffic_bytes_total{direction="in",proxy="web",type="tcp"}`]; v != send1+send2 {
		t.Errorf("metric bytes in after the reconnect = %v, want %d", v, send1+send2)
	}
	var clients []Client
	a.mustGet("/api/clients", &clients)
	if len(clients) != 1 || len(clients[0].Proxies) != 1 || clients[0].Proxies[0] != "web" || clients[0].Transport == "" || clients[0].Address == "" {
		t.Errorf("clients: %+v", clients)
	}
	// The client measures its NAT in the background and reports it: on loopback, none.
	for deadline := time.Now().Add(10 * time.Second); len(clients) == 1 && clients[0].NAT == "" && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		a.mustGet("/api/clients", &clients)
	}
	if len(clients) != 1 || clients[0].NAT != "open" {
		t.Errorf("client NAT on loopback = %+v, want open", clients)
	}
	t.Logf("measured: %d+%d bytes in, %d+%d out through a real tcp proxy; API and /metrics agree to the byte", send1, send2, reply1, reply2)
}

// TestP2PSessionFigures runs a provider and a visitor of an xp2p service and checks the P2P
// session as the dashboard reports it: pairing, path, RTT, timings, bytes, and the metrics of
// attempts, outcomes and punch time.
func TestP2PSessionFigures(t *testing.T) {
	const send, reply = 1<<20 + 11, 256<<10 + 1
	svc := testnet.StartService(t, testnet.ReplyHandler(reply))
	srv := testnet.StartServer(t, "")
	d := startDashboard(t, srv, authCfg(), Options{})
	a := newAPI(t, d)
	provider := testnet.StartClient(t, testnet.ClientTOML(srv, fmt.Sprintf(`
[[proxies]]
name = "nas"
type = "xp2p"
secretKey = "p2p-secret-for-tests"
localIP = "127.0.0.1"
localPort = %d
`, svc.Port())))
	testnet.WaitRunning(t, provider, "nas")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bindPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	testnet.StartClient(t, testnet.ClientTOML(srv, fmt.Sprintf(`
[[visitors]]
name = "nas-visitor"
type = "xp2p"
serverName = "nas"
secretKey = "p2p-secret-for-tests"
bindAddr = "127.0.0.1"
bindPort = %d
`, bindPort)))
	got, err := testnet.Exchange(net.JoinHostPort("127.0.0.1", strconv.Itoa(bindPort)), send, 30*time.Second)
	if err != nil || got != reply {
		t.Fatalf("exchange through the P2P session: got %d, err %v", got, err)
	}
	// Clients report every 5 s.
	var ss Sessions
	testnet.Eventually(t, 20*time.Second, func() bool {
		a.mustGet("/api/sessions", &ss)
		return len(ss.Active) == 1 && ss.Active[0].Visitor.Reported && ss.Active[0].Provider.Reported &&
			ss.Active[0].RelayBytes+ss.Active[0].DirectBytes >= send+reply
	}, func() string { return fmt.Sprintf("sessions %+v", ss) })
	s := ss.Active[0]
	if s.Service != "nas" || s.TimeToReadyMs <= 0 || s.RTTMs <= 0 || s.Visitor.Addr == "" || s.Provider.Addr == "" {
		t.Errorf("session %+v", s)
	}
	if s.Path != "direct" && s.Path != "relay" {
		t.Errorf("session path %q", s.Path)
	}
	var p Proxy
	a.mustGet("/api/proxies/nas", &p)
	if p.Type != "xp2p" || p.P2P == nil || p.P2P.Sessions != 1 || p.P2P.RelayBytes+p.P2P.DirectBytes < send+reply {
		t.Errorf("xp2p service %+v (p2p %+v)", p, p.P2P)
	}
	m := a.metrics()
	if m["xp2p_p2p_attempts_total"] != 1 || m["xp2p_p2p_sessions_active"] != 1 {
		t.Errorf("p2p metrics: attempts %v active %v", m["xp2p_p2p_attempts_total"], m["xp2p_p2p_sessions_active"])
	}
	if s.Path == "direct" {
		if m[`xp2p_p2p_outcomes_total{path="direct"}`] != 1 || m["xp2p_p2p_time_to_direct_seconds_count"] != 1 || s.TimeToDirectMs <= 0 {
			t.Errorf("direct session: outcomes %v, punch histogram count %v, time to direct %v ms",
				m[`xp2p_p2p_outcomes_total{path="direct"}`], m["xp2p_p2p_time_to_direct_seconds_count"], s.TimeToDirectMs)
		}
	}
	if m["xp2p_p2p_time_to_ready_seconds_count"] != 1 {
		t.Errorf("time to ready histogram count %v", m["xp2p_p2p_time_to_ready_seconds_count"])
	}
	p2pBytes := m[`xp2p_p2p_traffic_bytes_total{path="direct",service="nas"}`] + m[`xp2p_p2p_traffic_bytes_total{path="relay",service="nas"}`]
	if p2pBytes < send+reply {
		t.Errorf("p2p traffic metric %v, want at least %d", p2pBytes, send+reply)
	}
	t.Logf("measured: session %s path %s, ready in %.2f ms, direct in %.2f ms, rtt %.3f ms, %d bytes relayed + %d direct for %d payload bytes",
		s.ID[:8], s.Path, s.TimeToReadyMs, s.TimeToDirectMs, s.RTTMs, s.RelayBytes, s.DirectBytes, send+reply)
}

// do sends a request and returns the status, headers and decoded error message.
func do(t testing.TB, req *http.Request) (int, http.Header, string) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var e struct {
		Error string `json:"error"`
	}
	if res.StatusCode >= 400 {
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: status %d with body %q, want a JSON error", req.Method, req.URL, res.StatusCode, body)
		}
	}
	return res.StatusCode, res.Header, e.Error
}

func request(t testing.TB, method, u string, body string, hdr ...string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// fromAddr returns an HTTP client whose connections leave from the loopback address ip.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

func TestAuthentication(t *testing.T) {
	srv := testnet.StartServer(t, "")
	d := startDashboard(t, srv, authCfg(), Options{})
	base := d.URL()

	// No credentials: 401 with a basic challenge for API clients, none for the page's own calls.
	code, hdr, msg := do(t, request(t, "GET", base+"/api/overview", ""))
	if code != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), "Basic") || msg != "authentication required" {
		t.Errorf("no credentials: %d %q %q", code, hdr.Get("WWW-Authenticate"), msg)
	}
	code, hdr, _ = do(t, request(t, "GET", base+"/api/overview", "", "X-Requested-With", "xp2p-dashboard"))
	if code != 401 || hdr.Get("WWW-Authenticate") != "" {
		t.Errorf("no credentials from the page: %d, challenge %q", code, hdr.Get("WWW-Authenticate"))
	}
	for _, path := range []string{"/api/clients", "/api/proxies", "/api/sessions", "/api/traffic", "/metrics", "/api/proxies/x", "/api/proxies/x/traffic"} {
		if code, _, _ := do(t, request(t, "GET", base+path, "")); code != 401 {
			t.Errorf("GET %s without credentials: %d, want 401", path, code)
		}
	}
	// The page itself and its assets carry no data and need no login.
	for _, path := range []string{"/", "/static/app.js", "/static/xp2p.css", "/favicon.svg", "/healthz", "/api/me"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s: %d", path, res.StatusCode)
		}
	}

	wrong := request(t, "GET", base+"/api/overview", "")
	wrong.SetBasicAuth(testUser, "wrong")
	if code, _, msg := do(t, wrong); code != 401 || msg != "wrong user or password" {
		t.Errorf("wrong password: %d %q", code, msg)
	}
	empty := request(t, "GET", base+"/api/overview", "")
	empty.SetBasicAuth(testUser, "")
	if code, _, _ := do(t, empty); code != 401 {
		t.Errorf("empty password: %d", code)
	}
	right := request(t, "GET", base+"/api/overview", "")
	right.SetBasicAuth(testUser, testPassword)
	if code, _, _ := do(t, right); code != 200 {
		t.Errorf("right password: %d", code)
	}

	// Login sessions: a cookie, accepted until logout.
	res, err := http.Post(base+"/api/login", "application/json", strings.NewReader(`{"user":"`+testUser+`","password":"`+testPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "xp2p_session" {
			cookie = c
		}
	}
	if res.StatusCode != 200 || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %d, cookie %+v", res.StatusCode, cookie)
	}
	withCookie := func(method, path string) *http.Request {
		r := request(t, method, base+path, "")
		r.AddCookie(cookie)
		return r
	}
	if code, _, _ := do(t, withCookie("GET", "/api/proxies")); code != 200 {
		t.Errorf("with the session cookie: %d", code)
	}
	if code, _, _ := do(t, withCookie("POST", "/api/logout")); code != 200 {
		t.Errorf("logout: %d", code)
	}
	if code, _, _ := do(t, withCookie("GET", "/api/proxies")); code != 401 {
		t.Errorf("after logout: %d, want 401", code)
	}
	forged := request(t, "GET", base+"/api/proxies", "")
	forged.AddCookie(&http.Cookie{Name: "xp2p_session", Value: strings.Repeat("ab", 32)})
	if code, _, _ := do(t, forged); code != 401 {
		t.Errorf("forged cookie: %d", code)
	}
	if code, _, msg := do(t, request(t, "POST", base+"/api/login", `{"user":"`+testUser+`","password":"nope"}`, "Content-Type", "application/json")); code != 401 || msg != "wrong user or password" {
		t.Errorf("login with a wrong password: %d %q", code, msg)
	}
}

// TestLoginFlood floods the dashboard with wrong passwords from one address: it is limited
// (429, right password included), while another address and the API keep working.
func TestLoginFlood(t *testing.T) {
	srv := testnet.StartServer(t, "")
	d := startDashboard(t, srv, authCfg(), Options{})
	attacker := fromAddr("127.0.0.2")
	other := fromAddr("127.0.0.1")
	send := func(hc *http.Client, pass string) (int, http.Header) {
		req := request(t, "GET", d.URL()+"/api/overview", "")
		req.SetBasicAuth(testUser, pass)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, res.Header
	}
	counts := map[int]int{}
	start := time.Now()
	const flood = 300
	for i := range flood {
		code, hdr := send(attacker, fmt.Sprintf("guess-%d", i))
		counts[code]++
		if code == 429 && hdr.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	elapsed := time.Since(start)
	if counts[401] != 5 || counts[429] != flood-5 {
		t.Errorf("flood answers %v: want 5 × 401 then 429", counts)
	}
	if code, _ := send(attacker, testPassword); code != 429 {
		t.Errorf("limited address with the right password: %d, want 429", code)
	}
	if code, _ := send(other, testPassword); code != 200 {
		t.Errorf("another address with the right password: %d, want 200", code)
	}
	if code, _ := send(other, "wrong"); code != 401 {
		t.Errorf("another address with a wrong password: %d, want 401 (not limited)", code)
	}
	// The login form is limited too.
	req := request(t, "POST", d.URL()+"/api/login", `{"user":"`+testUser+`","password":"`+testPassword+`"}`, "Content-Type", "application/json")
	res, err := attacker.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 429 {
		t.Errorf("login form from the limited address: %d", res.StatusCode)
	}
	a := newAPI(t, d)
	m := a.metrics()
	if m[`xp2p_auth_failures_total{endpoint="dashboard"}`] != 6 || m["xp2p_dashboard_logins_limited_total"] < flood-5 {
		t.Errorf("metrics: failures %v, limited %v", m[`xp2p_auth_failures_total{endpoint="dashboard"}`], m["xp2p_dashboard_logins_limited_total"])
	}
	t.Logf("measured: %d bad logins answered in %s (%.0f/s), %v", flood, elapsed.Round(time.Millisecond), flood/elapsed.Seconds(), counts)
}

func TestMalformedRequests(t *testing.T) {
	srv := testnet.StartServer(t, "")
	d := startDashboard(t, srv, authCfg(), Options{})
	auth := func(r *http.Request) *http.Request { r.SetBasicAuth(testUser, testPassword); return r }
	cases := []struct {
		method, path, body, ctype string
		code                      int
		msg                       string
	}{
		{"GET", "/api/nothing", "", "", 404, "no such page"},
		{"GET", "/nothing", "", "", 404, "no such page"},
		{"GET", "/static/", "", "", 404, "no such page"},
		{"POST", "/api/overview", "", "", 405, "not allowed"},
		{"DELETE", "/api/proxies", "", "", 405, "not allowed"},
		{"GET", "/api/login", "", "", 405, "use POST"},
		{"GET", "/api/overview?x=1", "", "", 400, `unknown query parameter "x"`},
		{"GET", "/api/proxies?type=kcp", "", "", 400, `type "kcp"`},
		{"GET", "/api/proxies?status=maybe", "", "", 400, `status "maybe"`},
		{"GET", "/api/proxies?type=tcp&type=udp", "", "", 400, "given 2 times"},
		{"GET", "/api/proxies?%zz", "", "", 400, "malformed query"},
		{"GET", "/api/traffic?range=forever", "", "", 400, `range "forever"`},
		{"GET", "/api/traffic?range=48h", "", "", 400, "from 1m to 24h"},
		{"GET", "/api/traffic?range=1s", "", "", 400, "from 1m to 24h"},
		{"GET", "/api/proxies/nosuch", "", "", 404, `no proxy named "nosuch"`},
		{"GET", "/api/proxies/nosuch/traffic", "", "", 404, `no proxy named "nosuch"`},
		{"POST", "/api/login", `{"user":`, "application/json", 400, "malformed login"},
		{"POST", "/api/login", `{"user":"a","password":"b","x":1}`, "application/json", 400, "unknown field"},
		{"POST", "/api/login", `{"user":"a","password":"b"} {}`, "application/json", 400, "after the JSON"},
		{"POST", "/api/login", ``, "application/json", 400, "empty body"},
		{"POST", "/api/login", `user=a`, "text/plain", 415, "application/json"},
		{"POST", "/api/login", `{"user":"` + strings.Repeat("a", 8000) + `"}`, "application/json", 400, "larger than"},
	}
	for _, tc := range cases {
		req := auth(request(t, tc.method, d.URL()+tc.path, tc.body, "Content-Type", tc.ctype))
		code, hdr, msg := do(t, req)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, code, msg, tc.code, tc.msg)
		}
		if code == 405 && hdr.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
	// None of it hurt: the API still answers.
	a := newAPI(t, d)
	var o Overview
	a.mustGet("/api/overview", &o)
	// Cross-site requests are refused.
	code, _, _ := do(t, auth(request(t, "GET", d.URL()+"/api/overview", "", "Origin", "http://evil.example")))
	if code != 403 {
		t.Errorf("cross-origin request: %d", code)
	}
	code, _, _ = do(t, auth(request(t, "POST", d.URL()+"/api/login", "{}", "Content-Type", "application/json", "Sec-Fetch-Site", "cross-site")))
	if code != 403 {
		t.Errorf("cross-site login: %d", code)
	}
}

func TestExposureChecks(t *testing.T) {
	srv := testnet.StartServer(t, "")
	if _, err := New(config.WebServer{Addr: "0.0.0.0", Port: 7500}, srv, Options{}); err == nil || !strings.Contains(err.Error(), "webServer.password is not set") {
		t.Errorf("no password on 0.0.0.0: err = %v", err)
	}
	log, lb := testnet.Logger(t, "dashboard")
	d := startDashboard(t, srv, config.WebServer{Addr: "0.0.0.0", User: "admin", Password: "admin"}, Options{Log: log})
	if !strings.Contains(lb.String(), "SECURITY WARNING") || !strings.Contains(lb.String(), `well-known password \"admin\"`) {
		t.Errorf("admin/admin on 0.0.0.0: no loud warning in\n%s", lb.String())
	}
	// The guide's config runs, and every signed-in page gets the warning for its red banner
	// (not the sign-in page: a stranger is not told the password is a well-known one).
	body := func(req *http.Request) string {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	if b := body(request(t, "GET", d.URL()+"/api/me", "")); strings.Contains(b, "warning") {
		t.Errorf("/api/me tells a stranger of the weak password: %s", b)
	}
	loginReq := func(pass string) *http.Request {
		return request(t, "POST", d.URL()+"/api/login", `{"user":"admin","password":"`+pass+`"}`, "Content-Type", "application/json")
	}
	if b := body(loginReq("admin")); !strings.Contains(b, "SECURITY WARNING") {
		t.Errorf("login with admin/admin: %s, want the warning for the banner", b)
	}
	// Failed logins and lockouts are logged.
	for range 7 {
		do(t, loginReq("guess"))
	}
	if n := lb.Count("dashboard login failed"); n != 5 {
		t.Errorf("%d failed logins logged, want 5 (then the address is locked out)", n)
	}
	if lb.Count("too many failures from this address (429)") == 0 {
		t.Errorf("the lockout was not logged:\n%s", lb.String())
	}
	d.Close()

	// No password on loopback: allowed, but only for requests addressed to a loopback name.
	d = startDashboard(t, srv, config.WebServer{Addr: "127.0.0.1"}, Options{})
	code, _, _ := do(t, request(t, "GET", d.URL()+"/api/overview", ""))
	if code != 200 {
		t.Errorf("open loopback dashboard: %d", code)
	}
	req := request(t, "GET", d.URL()+"/api/overview", "")
	req.Host = "attacker.example"
	if code, _, msg := do(t, req); code != http.StatusMisdirectedRequest || !strings.Contains(msg, "localhost") {
		t.Errorf("rebound host name: %d %q", code, msg)
	}
}

func TestHTTPS(t *testing.T) {
	certFile, keyFile := writeCert(t)
	srv := testnet.StartServer(t, "")
	cfg := authCfg()
	cfg.TLS = config.WebTLS{CertFile: certFile, KeyFile: keyFile}
	d := startDashboard(t, srv, cfg, Options{})
	if !strings.HasPrefix(d.URL(), "https://") {
		t.Fatalf("URL %s", d.URL())
	}
	hc := insecureClient()
	res, err := hc.Post(d.URL()+"/api/login", "application/json", strings.NewReader(`{"user":"`+testUser+`","password":"`+testPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || len(res.Cookies()) != 1 || !res.Cookies()[0].Secure {
		t.Errorf("login over HTTPS: %d %+v", res.StatusCode, res.Cookies())
	}
	// Plain HTTP to the HTTPS port gets nothing.
	u, _ := url.Parse(d.URL())
	plain, err := http.Get("http://" + u.Host + "/api/me")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode == 200 {
			t.Error("plain HTTP answered on the HTTPS port")
		}
	}
}

// TestPprof: webServer.pprofEnable serves Go's profiles behind the login; without it there are none.
func TestPprof(t *testing.T) {
	srv := testnet.StartServer(t, "")
	on := authCfg()
	on.PprofEnable = true
	enabled := startDashboard(t, srv, on, Options{}).URL()
	disabled := startDashboard(t, srv, authCfg(), Options{}).URL()
	cases := []struct {
		name, method, url string
		login             bool
		code              int
		body              string
	}{
		{"heap, logged in", "GET", enabled + "/debug/pprof/heap?debug=1", true, 200, "heap profile"},
		{"goroutines, logged in", "GET", enabled + "/debug/pprof/goroutine?debug=1", true, 200, "goroutine profile"},
		{"index, logged in", "GET", enabled + "/debug/pprof/", true, 200, "Types of profiles available"},
		{"no login", "GET", enabled + "/debug/pprof/heap?debug=1", false, 401, "authentication required"},
		{"wrong method", "POST", enabled + "/debug/pprof/heap", true, 405, "use GET"},
		{"not enabled", "GET", disabled + "/debug/pprof/heap?debug=1", true, 404, "no such page"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := request(t, tc.method, tc.url, "")
			if tc.login {
				req.SetBasicAuth(testUser, testPassword)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.code || !strings.Contains(string(body), tc.body) {
				t.Fatalf("%s %s: %d %.200q, want %d with %q", tc.method, tc.url, res.StatusCode, body, tc.code, tc.body)
			}
		})
	}
}
