package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/peer"
	"github.com/xp2p/xp2p/rendezvous"
)

// TestFrpFormatsRun: a server from an frps.ini and clients from an frpc.ini, an frpc.yaml and
// an frpc.json as frp's docs write them (addresses and ports made local) run, and users reach
// each client's tcp and http proxies.
func TestFrpFormatsRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bind, vhost := freeUDPTCPPort(t), freeTCPPort(t)
	cfg, _, err := config.LoadServer(write("frps.ini", fmt.Sprintf("[common]\nbind_addr = 127.0.0.1\nbind_port = %d\nvhost_http_port = %d\ntoken = 12345678\n", bind, vhost)))
	if err != nil {
		t.Fatal(err)
	}
	log, _ := newLogger(t, "server")
	srv, err := rendezvous.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if srv.WebAddr(wire.ProxyHTTP) == nil {
		t.Fatal("vhost_http_port of frps.ini not listening")
	}
	hc := vhostClient(fmt.Sprintf("127.0.0.1:%d", vhost))

	for _, f := range []struct{ name, text string }{
		{"frpc.ini", "[common]\nserver_addr = 127.0.0.1\nserver_port = %[1]d\ntoken = 12345678\n\n[ssh-ini]\ntype = tcp\nlocal_ip = 127.0.0.1\nlocal_port = %[2]d\nremote_port = %[3]d\n\n[web-ini]\ntype = http\nlocal_port = %[4]d\ncustom_domains = ini.test\n"},
		{"frpc.yaml", "serverAddr: \"127.0.0.1\"\nserverPort: %[1]d\nauth:\n  token: \"12345678\"\nproxies:\n  - name: \"ssh-yaml\"\n    type: \"tcp\"\n    localIP: \"127.0.0.1\"\n    localPort: %[2]d\n    remotePort: %[3]d\n  - name: \"web-yaml\"\n    type: \"http\"\n    localPort: %[4]d\n    customDomains: [\"yaml.test\"]\n"},
		{"frpc.json", "{\"serverAddr\": \"127.0.0.1\", \"serverPort\": %[1]d, \"auth\": {\"token\": \"12345678\"},\n \"proxies\": [\n  {\"name\": \"ssh-json\", \"type\": \"tcp\", \"localIP\": \"127.0.0.1\", \"localPort\": %[2]d, \"remotePort\": %[3]d},\n  {\"name\": \"web-json\", \"type\": \"http\", \"localPort\": %[4]d, \"customDomains\": [\"json.test\"]}\n ]}\n"},
	} {
		format := strings.TrimPrefix(filepath.Ext(f.name), ".")
		id := startTCPService(t, idHandler("ssh-"+format))
		web := startWebService(t, "web-"+format)
		remote := freeTCPPort(t)
		ccfg, _, err := config.LoadClient(write(f.name, fmt.Sprintf(f.text, bind, id.Port(), remote, web.Port())))
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		clog, _ := newLogger(t, f.name)
		c, err := peer.New(ccfg, clog)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		tc := &testClient{Client: c, cfg: ccfg}
		waitRunning(t, tc, "ssh-"+format)
		waitRunning(t, tc, "web-"+format)
		if got, err := askID(net.JoinHostPort("127.0.0.1", fmt.Sprint(remote))); got != "ssh-"+format {
			t.Errorf("%s: tcp proxy answered %q, %v", f.name, got, err)
		}
		if _, seen, _ := get(t, hc, "http://"+format+".test/"); seen.Service != "web-"+format {
			t.Errorf("%s: http proxy served by %q", f.name, seen.Service)
		}
	}
}
