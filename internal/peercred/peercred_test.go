package peercred

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUID: a connection this process made is owned by this process's user, from either end;
// one made by a process running as nobody is owned by nobody (root only: it needs setuid).
func TestUID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	defer s.Close()
	me := uint32(os.Getuid())
	for name, conn := range map[string]net.Conn{"server side": s, "client side": c} {
		uid, err := UID(conn)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if uid != me || !Trusted(uid) {
			t.Errorf("%s: uid %d, want %d", name, uid, me)
		}
		if p, err := Owner(conn); err != nil || !p.Self {
			t.Errorf("%s: Owner %+v, %v: want this process itself", name, p, err)
		}
	}

	if os.Getuid() != 0 {
		t.Skip("not root: cannot run a process as nobody")
	}
	// A process as nobody connects (bash's /dev/tcp) and waits; its connection's owner is nobody.
	cmd := exec.Command("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)+" && sleep 5")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot run bash as nobody: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	select {
	case n := <-accepted:
		defer n.Close()
		uid, err := UID(n)
		if err != nil {
			t.Fatal(err)
		}
		if uid != 65534 || Trusted(uid) {
			t.Errorf("a connection of nobody's: uid %d (trusted %v), want 65534, untrusted", uid, Trusted(uid))
		}
		if p, _ := Owner(n); p.Self {
			t.Error("a connection of another process taken for this process's own")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the process running as nobody did not connect")
	}
}

// TestGuard: a guarded endpoint's address cannot be dialed through RefuseGuarded, by any
// address that reaches it; others can; a released guard refuses nothing.
func TestGuard(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	release := Guard(ln.Addr())
	d := net.Dialer{Timeout: time.Second, Control: RefuseGuarded}
	for _, addr := range []string{"127.0.0.1:" + port, "localhost:" + port, "0.0.0.0:" + port, "[::ffff:127.0.0.1]:" + port} {
		// localhost may resolve to ::1 first, refused by the kernel: never connected is the point.
		if c, err := d.Dial("tcp", addr); err == nil || !errors.Is(err, ErrGuarded) && !strings.HasPrefix(addr, "localhost") {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s: %v, want ErrGuarded", addr, err)
		}
	}
	if c, err := d.Dial("tcp", other.Addr().String()); err != nil {
		t.Errorf("an unguarded endpoint: %v", err)
	} else {
		c.Close()
	}
	release()
	release()
	if c, err := d.Dial("tcp", "127.0.0.1:"+port); err != nil {
		t.Errorf("after release: %v", err)
	} else {
		c.Close()
	}
}
