package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xp2p/xp2p/internal/testnet"
)

// TestStatusAndReloadCommands runs `xp2p status` and `xp2p reload` against a running client.
func TestStatusAndReloadCommands(t *testing.T) {
	svc := testnet.StartService(t, testnet.SinkHandler)
	srv := testnet.StartServer(t, "")
	admin := fmt.Sprintf("webServer.port = %d\nwebServer.user = \"admin\"\nwebServer.password = \"a-long-admin-password\"\n", adminPort(t))
	before := testnet.ClientTOML(srv, admin+testnet.TCPProxy("a", svc.Port(), 0))
	path := filepath.Join(t.TempDir(), "client.toml")
	if err := os.WriteFile(path, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testnet.StartClient(t, before)
	log, _ := testnet.Logger(t, "admin")
	stop, err := startAdmin(c.Config, path, c.Client, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	testnet.WaitRunning(t, c, "a")

	var out, errb bytes.Buffer
	if code := run([]string{"status", "-c", path}, &out, &errb); code != 0 {
		t.Fatalf("status: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"NAT: ", "servers: 1 of 1 connected", "PROXIES (1)", "NAME", "running", "VISITORS: none", "P2P SESSIONS: none"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}

	// An edited file with an error: nothing is sent.
	bad := before + "\n[[proxies]]\nname = \"b\"\ntype = \"tcp\"\nlocalPort = 70000\n"
	os.WriteFile(path, []byte(bad), 0o600)
	out.Reset()
	errb.Reset()
	if code := run([]string{"reload", "-c", path}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "client.toml:") || !strings.Contains(errb.String(), "nothing sent") {
		t.Errorf("reload of an invalid file: exit %d, stderr %s", code, errb.String())
	}

	// A valid edit: the new proxy is applied.
	os.WriteFile(path, []byte(before+testnet.TCPProxy("b", svc.Port(), 0)), 0o600)
	out.Reset()
	errb.Reset()
	if code := run([]string{"reload", "-c", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), "added     proxy b") {
		t.Fatalf("reload: exit %d, stdout %s, stderr %s", code, out.String(), errb.String())
	}
	testnet.WaitRunning(t, c, "b")
	out.Reset()
	if code := run([]string{"status", "-c", path, "-json"}, &out, &errb); code != 0 || !strings.Contains(out.String(), `"name": "b"`) {
		t.Errorf("status -json: exit %d:\n%s", code, out.String())
	}

	// A config without an admin endpoint says how to turn it on.
	plain := filepath.Join(t.TempDir(), "plain.toml")
	os.WriteFile(plain, []byte(testnet.ClientTOML(srv, "")), 0o600)
	errb.Reset()
	if code := run([]string{"status", "-c", plain}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "set webServer.port") {
		t.Errorf("status without an admin endpoint: exit %d, %s", code, errb.String())
	}
	// A client that is not running.
	down := filepath.Join(t.TempDir(), "down.toml")
	os.WriteFile(down, []byte(testnet.ClientTOML(srv, fmt.Sprintf("webServer.port = %d\n", adminPort(t)))), 0o600)
	errb.Reset()
	if code := run([]string{"status", "-c", down}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "is the client running?") {
		t.Errorf("status of a stopped client: exit %d, %s", code, errb.String())
	}
}

func adminPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
