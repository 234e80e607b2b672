package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGuideConfigsRunUnchanged(t *testing.T) {
	s, warnings, err := LoadServer("testdata/frps.toml")
	if err != nil {
		t.Fatalf("frps.toml of the guide: %v", err)
	}
	if s.BindPort != 7000 || s.Auth.Token != "123456" || s.WebServer.Port != 7500 || s.WebServer.User != "admin" {
		t.Errorf("frps.toml decoded wrong: %+v", s)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings for the guide's frps.toml: %v", warnings)
	}
	c, _, err := LoadClient("testdata/frpc.toml")
	if err != nil {
		t.Fatalf("frpc.toml of the guide: %v", err)
	}
	p := c.Proxies[0]
	if c.ServerAddr != "127.0.0.1" || c.ServerPort != 7000 || p.Name != "nginx" || p.LocalPort != 80 || p.RemotePort != 80 {
		t.Errorf("frpc.toml decoded wrong: %+v", c)
	}
	if Kind(mustRead(t, "testdata/frpc.toml")) != "client" || Kind(mustRead(t, "testdata/frps.toml")) != "server" {
		t.Error("Kind does not tell the guide's client and server configs apart")
	}
}

func TestTemplatingServersAndWarnings(t *testing.T) {
	t.Setenv("XP2P_TEST_TOKEN", "from-env")
	c, warnings, err := LoadClient("testdata/p2p.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Token != "from-env" {
		t.Errorf("{{ .Envs.XP2P_TEST_TOKEN }} gave %q", c.Auth.Token)
	}
	eps := c.Endpoints()
	if len(eps) != 2 || eps[0].Addr != "vps.example.com:7000" || eps[1].Addr != "5.6.7.8:7000" || eps[1].Token != "from-env" {
		t.Errorf("endpoints %+v", eps)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "p2p.toml:13:1: proxies[0].transport.useEncryption is not needed: xp2p always encrypts") {
		t.Errorf("want one warning for transport.useEncryption at 13:1 saying why, got %q", warnings)
	}
	_, warnings, err = ParseClient("c.toml", []byte("serverAddr = \"a\"\nkcpBindPort = 1\n"))
	if err == nil {
		t.Fatal("kcpBindPort is a server key: want an unknown-key error in a client config")
	}
	_, warnings, err = ParseServer("s.toml", []byte("kcpBindPort = 7000\n"))
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "s.toml:1:1: kcpBindPort is an frp option that xp2p does not implement; ignored") {
		t.Errorf("kcpBindPort: %v, warnings %q", err, warnings)
	}
	if v := c.Visitors[0]; v.BindAddr != "127.0.0.1" || v.Protocol != "tcp" || !v.KeepTunnelOpen {
		t.Errorf("visitor defaults: %+v", v)
	}

	os.Unsetenv("XP2P_TEST_TOKEN")
	_, _, err = LoadClient("testdata/p2p.toml")
	if err == nil || !strings.Contains(err.Error(), "XP2P_TEST_TOKEN") || !strings.Contains(err.Error(), "not set") {
		t.Errorf("unset variable: %v", err)
	}
}

// TestErrors checks that every kind of mistake is reported with its file, line, column and key.
func TestErrors(t *testing.T) {
	cases := []struct {
		name   string
		server bool
		toml   string
		want   []string // each must appear in the error text
	}{
		{"slash comment", false, "serverAddr = \"1.2.3.4\"  //之前搭建好的服务器\n",
			[]string{"c.toml:1:25: syntax error", `TOML comments start with "#", not "//"`}},
		{"wrong type", false, "serverAddr = \"a\"\nserverPort = \"7000\"\n",
			[]string{"c.toml:2:14: serverPort: expected an integer, got a string"}},
		{"unknown key with frp INI name", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nlocal_port = 22\nlocalPort = 22\n",
			[]string{"c.toml:5:1: proxies.local_port: unknown key (did you mean \"localPort\"?)"}},
		{"unknown key typo", true, "bindPortt = 7000\n",
			[]string{"c.toml:1:1: bindPortt: unknown key (did you mean \"bindPort\"?)"}},
		{"missing serverAddr", false, "serverPort = 7000\n",
			[]string{"c.toml: serverAddr: required"}},
		{"port out of range", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nlocalPort = 70000\n",
			[]string{"c.toml:5:1: proxies[0].localPort: port 70000 is out of range 1-65535"}},
		{"missing localPort", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\n",
			[]string{"c.toml:2:3: proxies[0].localPort: required"}},
		{"duplicate names", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nlocalPort = 1\n[[visitors]]\nname = \"x\"\ntype = \"xp2p\"\nserverName = \"s\"\nsecretKey = \"k\"\nbindPort = 2\n",
			[]string{"c.toml:7:1: visitors[0].name: \"x\" is already the name of proxies[0]"}},
		{"duplicate visitor ports", false, "serverAddr = \"a\"\n[[visitors]]\nname = \"a\"\ntype = \"xp2p\"\nserverName = \"s\"\nsecretKey = \"k\"\nbindPort = 2\n[[visitors]]\nname = \"b\"\ntype = \"xp2p\"\nserverName = \"s\"\nsecretKey = \"k\"\nbindPort = 2\n",
			[]string{"c.toml:13:1: visitors[1].bindPort: tcp 127.0.0.1:2 is already bound by visitors[0]"}},
		{"xp2p without secretKey", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"xtcp\"\nlocalPort = 1\n",
			[]string{"c.toml:2:3: proxies[0].secretKey: required for xtcp services"}},
		{"http without domains", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"http\"\nlocalPort = 1\n",
			[]string{"c.toml:2:3: proxies[0].customDomains: set customDomains or subdomain: the host names users reach this http proxy by"}},
		{"http with remotePort", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"http\"\nlocalPort = 1\ncustomDomains = [\"a.example\"]\nremotePort = 80\n",
			[]string{"c.toml:7:1: proxies[0].remotePort: http proxies have no remotePort: users reach them by host name on the server's vhostHTTPPort"}},
		{"web key on tcp", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nlocalPort = 1\ncustomDomains = [\"a.example\"]\n",
			[]string{"c.toml:6:1: proxies[0].customDomains: not a key of tcp proxies: it is for http, https or tcpmux proxies"}},
		{"http key on https", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"https\"\nlocalPort = 1\nsubdomain = \"a\"\nlocations = [\"/x\"]\n",
			[]string{"c.toml:7:1: proxies[0].locations: not a key of https proxies: it is for http proxies"}},
		{"bad domain", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"http\"\nlocalPort = 1\ncustomDomains = [\"ok.example\", \"exa mple.com\"]\n",
			[]string{"c.toml:6:32: proxies[0].customDomains[1]: \"exa mple.com\" is not a host name (' ')"}},
		{"subdomain with a dot", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"http\"\nlocalPort = 1\nsubdomain = \"a.b\"\n",
			[]string{"c.toml:6:1: proxies[0].subdomain: \"a.b\" is not one label of a host name"}},
		{"location without slash", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"http\"\nlocalPort = 1\nsubdomain = \"a\"\nlocations = [\"api\"]\n",
			[]string{"c.toml:7:14: proxies[0].locations[0]: \"api\" must start with /"}},
		{"bad header name", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"http\"\nlocalPort = 1\nsubdomain = \"a\"\nrequestHeaders.set.\"x y\" = \"1\"\n",
			[]string{"c.toml:7:1: proxies[0].requestHeaders.set.x y: \"x y\" is not a header name"}},
		{"header value with a line break", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"http\"\nlocalPort = 1\nsubdomain = \"a\"\nresponseHeaders.set.x-a = \"1\\r\\nSet-Cookie: a=b\"\n",
			[]string{"c.toml:7:1: proxies[0].responseHeaders.set.x-a: not a valid header value"}},
		{"tcpmux without multiplexer", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcpmux\"\nlocalPort = 1\nsubdomain = \"a\"\n",
			[]string{"c.toml:2:3: proxies[0].multiplexer: required: \"httpconnect\""}},
		{"unknown type", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"kcp\"\nlocalPort = 1\n",
			[]string{"c.toml:4:1: proxies[0].type: unknown type \"kcp\"; use tcp, udp, http, https, tcpmux or xp2p"}},
		{"unsupported frp transport", false, "serverAddr = \"a\"\ntransport.protocol = \"kcp\"\n",
			[]string{"c.toml:2:1: transport.protocol: \"kcp\" is an frp transport that xp2p does not have"}},
		{"bad allowPorts", true, "allowPorts = [{ start = 7000, end = 6000 }, { single = 0, start = 0 }, { single = 8080, start = 1 }]\n",
			[]string{"c.toml:1:31: allowPorts[0].end: end 6000 is below start 7000", "allowPorts[1]: empty range", "allowPorts[2]: set either single or start/end"}},
		{"oidc", true, "auth.method = \"oidc\"\n", []string{"c.toml:1:1: auth.method: oidc is not supported by xp2p; use token"}},
		{"web tls half", true, "webServer.port = 7500\nwebServer.tls.certFile = \"a.pem\"\n", []string{"webServer.tls: certFile and keyFile must be set together"}},
		{"heartbeat order", false, "serverAddr = \"a\"\ntransport.heartbeatInterval = 40\ntransport.heartbeatTimeout = 30\n",
			[]string{"c.toml:2:1: transport.heartbeatInterval: 40 s must be below transport.heartbeatTimeout (30 s)"}},
		{"start names", false, "serverAddr = \"a\"\nstart = [\"nope\"]\n", []string{"c.toml:2:10: start[0]: no proxy or visitor is named \"nope\""}},
		{"proxy protocol version", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nlocalPort = 1\ntransport.proxyProtocolVersion = \"v3\"\n",
			[]string{"c.toml:6:1: proxies[0].transport.proxyProtocolVersion: unknown version \"v3\""}},
		{"proxy protocol on udp", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"udp\"\nlocalPort = 1\ntransport.proxyProtocolVersion = \"v2\"\n",
			[]string{"c.toml:6:1: proxies[0].transport.proxyProtocolVersion: the PROXY protocol is for tcp services"}},
		{"proxy protocol on a visitor", false, "serverAddr = \"a\"\n[[visitors]]\nname = \"v\"\ntype = \"xp2p\"\nserverName = \"s\"\nsecretKey = \"k\"\nbindPort = 2\ntransport.proxyProtocolVersion = \"v1\"\n",
			[]string{"c.toml:8:1: visitors[0].transport.proxyProtocolVersion: set it on the provider's [[proxies]] entry"}},
		{"bandwidth limit", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nlocalPort = 1\ntransport.bandwidthLimit = \"10Mbps\"\ntransport.bandwidthLimitMode = \"both\"\n",
			[]string{"c.toml:6:1: proxies[0].transport.bandwidthLimit: \"10MBPS\": use a number with KB or MB", "c.toml:7:1: proxies[0].transport.bandwidthLimitMode: unknown mode \"both\""}},
		{"bandwidth limit on the server for udp", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"udp\"\nlocalPort = 1\ntransport.bandwidthLimit = \"1MB\"\ntransport.bandwidthLimitMode = \"server\"\n",
			[]string{"c.toml:7:1: proxies[0].transport.bandwidthLimitMode: \"server\" is for tcp proxies"}},
		{"health check", false, "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nlocalPort = 1\nhealthCheck.type = \"icmp\"\n[[proxies]]\nname = \"y\"\ntype = \"tcp\"\nlocalPort = 2\nhealthCheck.type = \"http\"\nhealthCheck.path = \"health\"\nhealthCheck.maxFailed = -1\n",
			[]string{"c.toml:6:1: proxies[0].healthCheck.type: unknown type \"icmp\"", "c.toml:12:1: proxies[1].healthCheck.path: \"health\" must start with /", "c.toml:13:1: proxies[1].healthCheck.maxFailed: must not be negative"}},
		{"duplicate servers", false, "serverAddr = \"a\"\n[[servers]]\naddr = \"a\"\n", []string{"c.toml:3:1: servers[0].addr: a:7000 is already named by serverAddr"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.server {
				_, _, err = ParseServer("c.toml", []byte(tc.toml))
			} else {
				_, _, err = ParseClient("c.toml", []byte(tc.toml))
			}
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.toml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestAllErrorsAtOnce: one run reports every problem, in file order.
func TestAllErrorsAtOnce(t *testing.T) {
	_, _, err := ParseClient("c.toml", []byte("serverAddr = \"a\"\nbogus = 1\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nlocalPort = 0\nremotePort = 99999\n"))
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Line < es[i-1].Line {
			t.Errorf("errors out of file order: %v", err)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, _, err := ParseClient("c.toml", []byte("serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nlocalPort = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerPort != DefaultBindPort || c.Transport.Protocol != "auto" || c.Transport.HeartbeatInterval != DefaultHeartbeatInterval ||
		c.Transport.P2PKeepalive != DefaultP2PKeepalive || c.Proxies[0].LocalIP != "127.0.0.1" || c.Auth.Method != "token" {
		t.Errorf("defaults not applied: %+v", c)
	}
	s, _, err := ParseServer("s.toml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	if s.BindAddr != "0.0.0.0" || s.BindPort != DefaultBindPort || s.ProxyBindAddr != "0.0.0.0" || s.Transport.MaxRelaySessions != 64 {
		t.Errorf("server defaults not applied: %+v", s)
	}
	if !s.PortAllowed(1) {
		t.Error("no allowPorts must allow every port")
	}
	s, _, _ = ParseServer("s.toml", []byte("allowPorts = [{ start = 6000, end = 6010 }, { single = 8080 }]"))
	for port, want := range map[int]bool{6000: true, 6010: true, 6011: false, 8080: true, 0: true, 22: false} {
		if got := s.PortAllowed(port); got != want {
			t.Errorf("PortAllowed(%d) = %v, want %v", port, got, want)
		}
	}
}

func TestParseBandwidth(t *testing.T) {
	for in, want := range map[string]int64{"10MB": 10 << 20, "512KB": 512 << 10, " 1mb ": 1 << 20} {
		if got, err := ParseBandwidth(in); err != nil || got != want {
			t.Errorf("ParseBandwidth(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10", "MB", "-1MB", "1.5MB", "10GB"} {
		if _, err := ParseBandwidth(in); err == nil {
			t.Errorf("ParseBandwidth(%q) accepted", in)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseClient: any input gives a config or errors that say where and what; never a panic.
func FuzzParseClient(f *testing.F) {
	for _, p := range []string{"testdata/frpc.toml", "testdata/p2p.toml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("serverAddr = \"1.2.3.4\"  //comment\n"))
	f.Add([]byte("[[proxies]]\nname = 1\n[[proxies]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, err := ParseClient("f.toml", data)
		checkErr(t, err)
	})
}

// FuzzParseServer: likewise for server configs.
func FuzzParseServer(f *testing.F) {
	b, err := os.ReadFile("testdata/frps.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("allowPorts = [{ start = 1, end = 2 }]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, err := ParseServer("f.toml", data)
		checkErr(t, err)
	})
}

// FuzzParseFormats: a YAML, JSON or legacy INI config (client or server), and its conversion
// to TOML, gives a config or errors that say where and what; never a panic.
func FuzzParseFormats(f *testing.F) {
	for _, p := range []string{"testdata/frp/frpc.yaml", "testdata/frp/frpc.json", "testdata/frp/frpc.ini", "testdata/frp/frps.ini"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(len(f.Name())))
	}
	f.Add([]byte("a: &x [*x, *x]\nb: *x\n<<: *x\n"), uint8(0))
	f.Add([]byte("{\"proxies\": [{\"name\": 1e400}]}"), uint8(1))
	f.Add([]byte("[common]\nserver_port = 7000\n[range:web]\nlocal_port = 6000-6001\n"), uint8(2))
	exts := []string{".yaml", ".json", ".ini"}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		name := "f" + exts[int(which)%len(exts)]
		if which&4 == 0 {
			_, _, err := ParseClient(name, data)
			checkErrIn(t, name, err)
		} else {
			_, _, err := ParseServer(name, data)
			checkErrIn(t, name, err)
		}
		if _, err := ConvertToTOML(name, data); err != nil && err.Error() == "" {
			t.Fatal("a conversion error without a message")
		}
	})
}

func checkErr(t *testing.T, err error) { checkErrIn(t, "f.toml", err) }

// checkErrIn fails unless err is nil or config errors that each name file and say what.
func checkErrIn(t *testing.T, file string, err error) {
	if err == nil {
		return
	}
	var es Errors
	if errors.As(err, &es) {
		for _, e := range es {
			if e.Msg == "" || e.File != file {
				t.Fatalf("error without a message or file: %#v", e)
			}
		}
		return
	}
	var e *Error
	if errors.As(err, &e) && e.Msg != "" {
		return
	}
	t.Fatalf("unexpected error type %T: %v", err, fmt.Sprint(err))
}

// TestIncludes: frp's includes add the [[proxies]] and [[visitors]] of more files; a mistake in
// one of them names that file and line, and names must be unique across all of them.
func TestIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	main := write("client.toml", "serverAddr = \"a\"\nincludes = [\"conf.d/*.toml\"]\n[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\n")
	write("conf.d/web.toml", "[[proxies]]\nname = \"web\"\ntype = \"tcp\"\nlocalPort = 80\nremotePort = 8080\n")
	write("conf.d/nas.toml", "[[visitors]]\nname = \"nas\"\ntype = \"xp2p\"\nserverName = \"nas\"\nsecretKey = \"k\"\nbindPort = 8096\n")
	c, _, err := LoadClient(main)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.Proxies {
		got = append(got, p.Name)
	}
	for _, v := range c.Visitors {
		got = append(got, v.Name)
	}
	if strings.Join(got, " ") != "ssh web nas" || c.Visitors[0].BindAddr != "127.0.0.1" {
		t.Errorf("entries %v (visitor %+v), want ssh web nas with defaults applied", got, c.Visitors[0])
	}

	cases := []struct {
		name, file, content string
		want                []string
	}{
		{"error in an included file", "conf.d/web.toml", "[[proxies]]\nname = \"web\"\ntype = \"tcp\"\nlocalPort = 80\nremotePort = 99999\n",
			[]string{filepath.Join(dir, "conf.d/web.toml") + ":5:1: proxies[0].remotePort: port 99999 is out of range"}},
		{"unknown key in an included file", "conf.d/web.toml", "[[proxies]]\nname = \"web\"\ntype = \"tcp\"\nlocalPort = 80\nremote_port = 1\n",
			[]string{filepath.Join(dir, "conf.d/web.toml") + ":5:1: proxies.remote_port: unknown key"}},
		{"name taken in another file", "conf.d/web.toml", "[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 80\n",
			[]string{filepath.Join(dir, "conf.d/web.toml") + ":2:1: proxies[0].name: \"ssh\" is already the name of " + filepath.Join(dir, "client.toml") + ": proxies[0]"}},
		{"server key in an included file", "conf.d/web.toml", "serverAddr = \"b\"\n",
			[]string{filepath.Join(dir, "conf.d/web.toml") + ":1:1: serverAddr: unknown key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.file, tc.content)
			_, _, err := LoadClient(main)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	write("conf.d/web.toml", "")
	write("client.toml", "serverAddr = \"a\"\nincludes = [\"nowhere/*.toml\"]\n")
	if _, _, err := LoadClient(main); err == nil || !strings.Contains(err.Error(), "client.toml:2:13: includes[0]:") || !strings.Contains(err.Error(), "matches no file") {
		t.Errorf("a pattern that matches nothing: %v", err)
	}
}

// TestTokenSource: frp's auth.tokenSource of type "file" reads the token from a file (trimmed);
// the other ways to get it wrong say what and where.
func TestTokenSource(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := "auth.tokenSource.type = \"file\"\nauth.tokenSource.file.path = " + fmt.Sprintf("%q", tokenFile) + "\n"
	s, _, err := ParseServer("s.toml", []byte(src))
	if err != nil || s.Auth.Token != "s3cret-from-file" {
		t.Fatalf("server token %q, %v", s.Auth.Token, err)
	}
	c, _, err := ParseClient("c.toml", []byte("serverAddr = \"a\"\n"+src))
	if err != nil || c.Auth.Token != "s3cret-from-file" {
		t.Fatalf("client token %q, %v", c.Auth.Token, err)
	}
	cases := []struct{ toml, want string }{
		{"auth.token = \"x\"\n" + src, "s.toml:2:6: auth.tokenSource: set auth.token or auth.tokenSource, not both"},
		{"auth.tokenSource.type = \"file\"\nauth.tokenSource.file.path = \"/nonexistent/token\"\n", "s.toml:2:1: auth.tokenSource.file.path: open /nonexistent/token: no such file or directory"},
		{"auth.tokenSource.type = \"file\"\n", "auth.tokenSource.file.path: required"},
		{"auth.tokenSource.type = \"file\"\nauth.tokenSource.file.path = \"/dev/zero\"\n", "s.toml:2:1: auth.tokenSource.file.path: /dev/zero is not a regular file"},
		{"auth.tokenSource.type = \"exec\"\nauth.tokenSource.exec.command = \"pass\"\n", "s.toml:1:1: auth.tokenSource.type: \"exec\" is not supported by xp2p"},
	}
	for _, tc := range cases {
		if _, _, err := ParseServer("s.toml", []byte(tc.toml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.toml, err, tc.want)
		}
	}
}

// TestEveryErrorOfAGuide: a config as guides write them, with "//" comments on several lines, a
// port written as a string and a port out of range: one run reports each of them, in file
// order, and nothing twice.
func TestEveryErrorOfAGuide(t *testing.T) {
	doc := `serverAddr = "1.2.3.4"   // the VPS
serverPort = "7000"
auth.token = "x"     // from the server

[[proxies]]
name = "ssh"
type = "tcp"
localPort = "22"
remotePort = 80800   // public port
`
	_, _, err := ParseClient("frpc.toml", []byte(doc))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		"frpc.toml:1:26: syntax error",
		"frpc.toml:2:14: serverPort: expected an integer, got a string",
		"frpc.toml:3:22: syntax error",
		"frpc.toml:8:13: proxies[0].localPort: expected an integer, got a string",
		"frpc.toml:9:1: proxies[0].remotePort: port 80800 is out of range",
		"frpc.toml:9:22: syntax error",
	}
	if len(es) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(es), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(es[i].Error(), w) {
			t.Errorf("error %d: %q, want %q...", i, es[i].Error(), w)
		}
	}
	// A value of the wrong type that spans lines: reported, and the rest is not guessed at.
	_, _, err = ParseClient("c.toml", []byte("serverAddr = \"a\"\nauth.token = [\n  1,\n  2]\nserverPort = 99999\n"))
	if err == nil || !strings.Contains(err.Error(), "c.toml:2") || strings.Contains(err.Error(), "syntax") {
		t.Errorf("multi-line value of the wrong type: %v", err)
	}
}

// TestServerWebPorts: the server's web keys (frp's) are taken and checked with positions.
func TestServerWebPorts(t *testing.T) {
	s, warnings, err := ParseServer("s.toml", []byte("vhostHTTPPort = 80\nvhostHTTPSPort = 443\ntcpmuxHTTPConnectPort = 1337\nsubDomainHost = \"Frps.Example.com\"\n"))
	if err != nil || len(warnings) != 0 {
		t.Fatalf("%v, warnings %q", err, warnings)
	}
	if s.VhostHTTPPort != 80 || s.VhostHTTPSPort != 443 || s.TCPMuxHTTPConnectPort != 1337 || s.SubDomainHost != "frps.example.com" || s.VhostHTTPTimeout != 60 {
		t.Errorf("decoded %+v", s)
	}
	for _, tc := range []struct{ toml, want string }{
		{"vhostHTTPPort = 7000\n", "s.toml:1:1: vhostHTTPPort: port 7000 is already bindPort: give each its own port"},
		{"vhostHTTPPort = 8080\nvhostHTTPSPort = 8080\n", "s.toml:2:1: vhostHTTPSPort: port 8080 is already vhostHTTPPort"},
		{"vhostHTTPSPort = 70000\n", "s.toml:1:1: vhostHTTPSPort: port 70000 is out of range 1-65535"},
		{"subDomainHost = \"bad host\"\n", "s.toml:1:1: subDomainHost: \"bad host\" is not a host name"},
		{"vhostHTTPTimeout = -1\n", "s.toml:1:1: vhostHTTPTimeout: must not be negative"},
		{"custom404Page = \"/nonexistent/404.html\"\n", "s.toml:1:1: custom404Page: stat /nonexistent/404.html: no such file or directory"},
		{"custom404Page = \"/dev\"\n", "s.toml:1:1: custom404Page: /dev is not a regular file"},
		{"acme.enable = true\n", "s.toml:1:1: acme.enable: needs vhostHTTPPort (the CA's HTTP-01 checks) and vhostHTTPSPort"},
		{"vhostHTTPPort = 80\nvhostHTTPSPort = 443\nacme.enable = true\nacme.caURL = \"http://ca\"\n", "s.toml:4:1: acme.caURL: \"http://ca\": an ACME directory is an https:// URL"},
		{"acme.email = \"a@b\"\n", "s.toml:1:1: acme: set acme.enable = true"},
	} {
		if _, _, err := ParseServer("s.toml", []byte(tc.toml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.toml, err, tc.want)
		}
	}
}

// TestPluginErrors: [proxies.plugin] tables are checked like everything else: what, where.
func TestPluginErrors(t *testing.T) {
	head := "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nremotePort = 1\n[proxies.plugin]\n"
	c, _, err := ParseClient("c.toml", []byte(head+"type = \"socks5\"\nusername = \"u\"\npassword = \"p\"\n"))
	if err != nil || c.Proxies[0].Plugin == nil || c.Proxies[0].Plugin.Username != "u" {
		t.Fatalf("a socks5 plugin without localPort: %v", err)
	}
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"type = \"kcp\"\n", "c.toml:7:1: proxies[0].plugin.type: unknown plugin \"kcp\"; use socks5, http_proxy, static_file"},
		{"username = \"u\"\n", "proxies[0].plugin.type: required"},
		{"type = \"virtual_net\"\n", "frp's virtual_net is not supported"},
		{"type = \"socks5\"\nusername = \"u\"\n", "c.toml:8:1: proxies[0].plugin.username: set username and password together"},
		{"type = \"socks5\"\nlocalPath = \"/\"\n", "c.toml:8:1: proxies[0].plugin.localPath: not a key of the socks5 plugin: it is for static_file"},
		{"type = \"static_file\"\n", "proxies[0].plugin.localPath: required: the directory to serve"},
		{"type = \"static_file\"\nlocalPath = \"/nonexistent\"\n", "c.toml:8:1: proxies[0].plugin.localPath: stat /nonexistent: no such file or directory"},
		{"type = \"https2http\"\nlocalAddr = \"nowhere\"\n", "c.toml:8:1: proxies[0].plugin.localAddr: \"nowhere\" is not HOST:PORT"},
		{"type = \"tls2raw\"\nlocalAddr = \"127.0.0.1:80\"\ncrtPath = \"" + dir + "/c.crt\"\n", "proxies[0].plugin.crtPath: set crtPath and keyPath together"},
		{"type = \"http2http\"\nlocalAddr = \"127.0.0.1:80\"\nrequestHeaders.set.\"a b\" = \"1\"\n", "proxies[0].plugin.requestHeaders.set.a b: \"a b\" is not a header name"},
	} {
		if _, _, err := ParseClient("c.toml", []byte(head+tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.body, err, tc.want)
		}
	}
	// An open socks5 or http_proxy on a port of the server is refused; behind a secretKey it
	// may go without a password.
	for _, tc := range []struct{ cfg, want string }{
		{head + "type = \"socks5\"\n", "c.toml:7:1: proxies[0].plugin.type: a socks5 plugin of a tcp proxy without username and password is an open proxy"},
		{head + "type = \"http_proxy\"\n", "c.toml:7:1: proxies[0].plugin.type: an http_proxy plugin of a tcp proxy without httpUser and httpPassword is an open proxy"},
		{"serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"http\"\ncustomDomains = [\"a.test\"]\n[proxies.plugin]\ntype = \"http_proxy\"\n", "proxies[0].plugin.type: an http_proxy plugin of a http proxy without httpUser"},
	} {
		if _, _, err := ParseClient("c.toml", []byte(tc.cfg)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	for _, typ := range []string{"xp2p", "stcp"} {
		cfg := "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"" + typ + "\"\nsecretKey = \"s\"\n[proxies.plugin]\ntype = \"socks5\"\n"
		if _, _, err := ParseClient("c.toml", []byte(cfg)); err != nil {
			t.Errorf("a socks5 plugin of an %s service without a password: %v", typ, err)
		}
	}
	udp := "serverAddr = \"a\"\n[[proxies]]\nname = \"x\"\ntype = \"udp\"\nremotePort = 1\nplugin.type = \"socks5\"\n"
	if _, _, err := ParseClient("c.toml", []byte(udp)); err == nil || !strings.Contains(err.Error(), "a plugin serves tcp connections; this proxy is udp") {
		t.Errorf("plugin on udp: %v", err)
	}
}

// TestFrpFormats: frp's configs in each format it reads (legacy INI, YAML, JSON, chosen by
// extension) decode to the same proxies; their mistakes are named at their own lines.
func TestFrpFormats(t *testing.T) {
	for _, f := range []string{"frpc.ini", "frpc.yaml", "frpc.json"} {
		c, warnings, err := LoadClient("testdata/frp/" + f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(warnings) != 0 {
			t.Errorf("%s: warnings %q", f, warnings)
		}
		ssh, web := c.Proxies[0], c.Proxies[1]
		if c.ServerAddr != "x.x.x.x" || c.ServerPort != 7000 || c.Auth.Token != "12345678" ||
			ssh.Name != "ssh" || ssh.Type != "tcp" || ssh.LocalPort != 22 || ssh.RemotePort != 6000 ||
			web.Type != "http" || len(web.CustomDomains) != 1 || web.CustomDomains[0] != "www.yourdomain.com" {
			t.Errorf("%s decoded as %+v", f, c)
		}
		if f == "frpc.ini" {
			if len(c.Proxies) != 7 || c.Proxies[5].Name != "tcp_port_3" || c.Proxies[5].RemotePort != 6022 ||
				c.Proxies[6].Plugin == nil || c.Proxies[6].Plugin.Username != "abc" ||
				len(c.Visitors) != 1 || c.Visitors[0].Type != "stcp" || c.Visitors[0].SecretKey != "abcdefg" || c.Visitors[0].BindPort != 6002 {
				t.Errorf("frpc.ini: proxies %+v visitors %+v", c.Proxies, c.Visitors)
			}
		}
	}
	s, _, err := LoadServer("testdata/frp/frps.ini")
	if err != nil || s.BindPort != 7000 || s.VhostHTTPPort != 8080 || s.Auth.Token != "12345678" {
		t.Errorf("frps.ini: %+v, %v", s, err)
	}
	if Kind(mustRead(t, "testdata/frp/frpc.ini")) != "client" || Kind(mustRead(t, "testdata/frp/frps.ini")) != "server" {
		t.Error("Kind does not tell frp's INI client and server apart")
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"c.yaml", "serverAddr: a\nserverPort: \"7000\"\n", "c.yaml:2:1: serverPort: expected an integer, got a string"},
		{"c.yaml", "serverAddr: a\nproxies:\n  - name: x\n    type: tcp\n    localPort: 1\n  - name: y\n    type: tcp\n    localPort: 2\n    remotPort: 3\n", "c.yaml:9:5: proxies[1].remotPort: unknown key (did you mean \"remotePort\"?)"},
		{"c.yaml", "serverAddr: a\nproxies:\n  - name: x\n    type: tcp\n    localPort: 70000\n", "c.yaml:5:5: proxies[0].localPort: port 70000 is out of range"},
		{"c.yaml", "serverAddr: a\n  bad: [\n", "c.yaml:2:1: syntax error:"},
		{"c.yml", ".base: &b\n  type: tcp\n  localPort: 1\nserverAddr: a\nproxies:\n  - <<: *b\n    name: x\n    remotePort: 99999\n", "c.yml:8:5: proxies[0].remotePort: port 99999 is out of range"},
		{"c.json", "{\"serverAddr\": \"a\",\n \"proxies\": [{\"name\": \"x\", \"type\": \"tcp\", \"localPort\": true}]}", "c.json:2:43: proxies[0].localPort: expected an integer, got a boolean"},
		{"c.json", "{\"serverAddr\": \"a\",\n \"serverAddr\": \"b\"}", "c.json:2:2: serverAddr: duplicate key"},
		{"c.json", "{\"serverAddr\": \"a\",\n \"transport\": {\"protocol\": \"kcp\"}}", "c.json:2:16: transport.protocol: \"kcp\" is an frp transport"},
		{"c.json", "{\"serverAddr\": \"a\",\n", "c.json:2:1: syntax error: unexpected end of the document"},
		{"c.ini", "[common]\nserver_addr = a\n[ssh]\ntype = tcp\nlocal_port = x22\n", "c.ini:5:1: local_port: expected an integer, got \"x22\""},
		{"c.ini", "[common]\nserver_addr = a\n[ssh]\ntype = tcp\nlocal_port = 22\nremote_port = 70000\n", "c.ini:6:1: proxies[0].remotePort: port 70000 is out of range"},
		{"c.ini", "[common]\nserver_addr = a\n[ssh]\ntype = tcp\nlocal_prt = 22\n", "c.ini:5:1: local_prt: unknown key of frp's INI format (section [ssh])"},
		{"c.conf", "[common]\nserver_addr = a\n[ssh]\ntype = tcp\nlocal_port = 22\nremote_port = x\n", "c.conf:6:1: remote_port: expected an integer"},
	} {
		if _, _, err := ParseClient(tc.name, []byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q:\n got %v\nwant %q", tc.name, tc.doc, err, tc.want)
		}
	}
}

// TestTemplateRanges: frp's parseNumberRangePair and parseNumberRange write many proxies at
// once; a bad range says where.
func TestTemplateRanges(t *testing.T) {
	doc := `serverAddr = "a"
{{- range $_, $v := parseNumberRangePair "6000-6006,6007" "7000-7006,7100" }}
[[proxies]]
name = "tcp-{{ $v.First }}"
type = "tcp"
localPort = {{ $v.First }}
remotePort = {{ $v.Second }}
{{- end }}
{{- range $i, $p := parseNumberRange "9000-9001" }}
[[proxies]]
name = "udp-{{ $p }}"
type = "udp"
localPort = {{ $p }}
{{- end }}
`
	c, _, err := ParseClient("c.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Proxies) != 10 || c.Proxies[0].Name != "tcp-6000" || c.Proxies[0].RemotePort != 7000 ||
		c.Proxies[7].Name != "tcp-6007" || c.Proxies[7].RemotePort != 7100 || c.Proxies[9].Name != "udp-9001" {
		t.Errorf("proxies %+v", c.Proxies)
	}
	for _, tc := range []struct{ doc, want string }{
		{"{{ parseNumberRangePair \"1-3\" \"1-2\" }}", "c.toml:1:3: template: executing \"c.toml\" at <parseNumberRangePair \"1-3\" \"1-2\">: error calling parseNumberRangePair: parseNumberRangePair: \"1-3\" has 3 numbers, \"1-2\" 2"},
		{"serverAddr = \"a\"\n{{ parseNumberRange \"1-x\" }}", "c.toml:2:3: template:"},
		{"{{ parseNumberRange \"0-999999\" }}", "more than 65536 numbers"},
		{"{{ range }}", "c.toml:1:1: template:"},
	} {
		if _, _, err := ParseClient("c.toml", []byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

// TestHTTPVisitors: http visitors share a port, told apart by customDomains; their keys are
// theirs only.
func TestHTTPVisitors(t *testing.T) {
	v := func(name, extra string) string {
		return "\n[[visitors]]\nname = \"" + name + "\"\ntype = \"xp2p\"\nserverName = \"s\"\nsecretKey = \"k\"\nbindPort = 8080\n" + extra
	}
	c, _, err := ParseClient("c.toml", []byte("serverAddr = \"a\"\n"+v("a", "protocol = \"http\"\ncustomDomains = [\"NAS.localhost\"]\n")+v("b", "protocol = \"http\"\ncustomDomains = [\"media.localhost\"]\n")))
	if err != nil || c.Visitors[0].CustomDomains[0] != "nas.localhost" {
		t.Fatalf("two http visitors on one port: %v", err)
	}
	for _, tc := range []struct{ doc, want string }{
		{v("a", "protocol = \"http\"\n") + v("b", ""), "c.toml:16:1: visitors[1].bindPort: tcp 127.0.0.1:8080 is already bound by visitors[0]"},
		{v("a", "customDomains = [\"x.localhost\"]\n"), "c.toml:9:1: visitors[0].customDomains: for http visitors (protocol = \"http\")"},
		{v("a", "protocol = \"http\"\ncustomDomains = [\"a b\"]\n"), "visitors[0].customDomains[0]: \"a b\" is not a host name"},
		{v("a", "protocol = \"http\"\nrequestHeaders.set.\"x y\" = \"1\"\n"), "\"x y\" is not a header name"},
	} {
		if _, _, err := ParseClient("c.toml", []byte("serverAddr = \"a\"\n"+tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

// BenchmarkParseProxies: parsing grows with the config, not with its square (each key's
// position used to be found by counting the document's lines from its start: 6000 proxies from
// an INI [range:] section took 42 s). Compare the per-proxy time of the two sizes.
func BenchmarkParseProxies(b *testing.B) {
	for _, n := range []int{1000, 4000} {
		var doc strings.Builder
		doc.WriteString("serverAddr = \"1.2.3.4\"\n")
		for i := range n {
			fmt.Fprintf(&doc, "[[proxies]]\nname = \"p%d\"\ntype = \"tcp\"\nlocalPort = %d\nremotePort = %d\n", i, 1+i%60000, 1+i%60000)
		}
		data := []byte(doc.String())
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := ParseClient("c.toml", data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/proxy")
		})
	}
}
