package e2e

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/xp2p/xp2p/config"
)

func TestReload(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	svcA, svcB, svcC := startTCPService(t, echoHandler), startTCPService(t, idHandler("B")), startTCPService(t, idHandler("C"))
	portA, portB, portC := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	header := clientHeader(srv.Port(), testToken, "")
	before := header + tcpProxy("a", svcA.Port(), portA) + tcpProxy("b", svcB.Port(), portB)
	c := startClient(t, before)
	addrA := waitRunning(t, c, "a")
	addrB := waitRunning(t, c, "b")

	// A long-lived connection through "a", which the reload leaves untouched.
	conn := dial(t, addrA)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if err := echoOnce(conn, "before"); err != nil {
		t.Fatal(err)
	}

	after := header + tcpProxy("a", svcA.Port(), portA) + tcpProxy("c", svcC.Port(), portC)
	cfg, _, err := config.ParseClient("reload.toml", []byte(after))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Reload(cfg)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if fmt.Sprint(res.Added, res.Removed, res.Unchanged) != "[proxy c] [proxy b] [proxy a]" {
		t.Errorf("reload result %+v", res)
	}
	addrC := waitRunning(t, c, "c")
	if got, err := askID(addrC); err != nil || got != "C" {
		t.Fatalf("added proxy: %q, %v", got, err)
	}
	eventually(t, 5*time.Second, func() bool { _, err := askID(addrB); return err != nil },
		func() string { return "removed proxy " + addrB + " still answers" })
	if err := echoOnce(conn, "after"); err != nil {
		t.Fatalf("untouched proxy lost its open connection: %v", err)
	}

	// A config that changes what only a restart can change is refused as a whole.
	bad := strings.Replace(after, "auth.token", "user = \"someone\"\nauth.token", 1)
	badCfg, _, err := config.ParseClient("bad.toml", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reload(badCfg); err == nil || !strings.Contains(err.Error(), "user") {
		t.Fatalf("reload changing user: err = %v, want a refusal naming user", err)
	}
	if got, err := askID(addrC); err != nil || got != "C" {
		t.Fatalf("after a refused reload the running config must stay: %q, %v", got, err)
	}
}

// echoOnce writes msg on an echo connection and reads it back.
func echoOnce(c io.ReadWriter, msg string) error {
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}
