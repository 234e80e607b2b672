//go:build linux

package natlab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a process running in a lab namespace; its output is kept for the test.
type Proc struct {
	Name string
	lab  *Lab
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// Start runs argv in host's namespace. The process is stopped when the test ends, and its
// output is shown if the test failed.
func (l *Lab) Start(host, name string, argv ...string) *Proc {
	l.t.Helper()
	p := &Proc{Name: name, lab: l, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", l.NS(host)}, argv...)...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	// No Pdeathsig: it follows the OS thread that forked the child, not the test process, and Go
	// may retire that thread while the test runs. t.Cleanup stops the process instead.
	if err := p.cmd.Start(); err != nil {
		l.t.Fatalf("natlab: start %s in %s: %v", name, host, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	l.t.Cleanup(func() {
		p.Stop()
		if l.t.Failed() {
			l.t.Logf("--- %s (in %s) output, last lines ---\n%s", name, host, tail(p.out.String(), 80))
		}
	})
	return p
}

// Stop ends the process with SIGTERM, or SIGKILL after 5 s, and waits for it.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill ends the process at once, as a crash or power loss would.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Output returns everything the process wrote so far.
func (p *Proc) Output() string { return p.out.String() }

// WaitLog waits until the output has a line matching pattern and returns that line's
// submatches; it fails the test after timeout.
func (p *Proc) WaitLog(pattern string, timeout time.Duration) []string {
	p.lab.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			p.lab.t.Fatalf("natlab: %s printed no line matching %q within %s; last lines:\n%s", p.Name, pattern, timeout, tail(p.out.String(), 30))
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.out.String()); m != nil {
				return m
			}
			p.lab.t.Fatalf("natlab: %s exited (%v) before printing %q; last lines:\n%s", p.Name, p.err, pattern, tail(p.out.String(), 30))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Count returns how many lines of the output match pattern.
func (p *Proc) Count(pattern string) int {
	return len(regexp.MustCompile(pattern).FindAllStringIndex(p.out.String(), -1))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// In runs fn on an OS thread that has entered host's namespace: sockets fn creates live there
// (and stay there whoever uses them later). The thread returns to its own namespace afterwards;
// if it cannot, it stays locked and Go retires it, so no other goroutine ever runs in the lab.
func (l *Lab) In(host string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		f, err := os.Open("/var/run/netns/" + l.NS(host))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace of %s: %w", host, err)
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Listen opens a listener in host's namespace (network "tcp" or "udp" via ListenPacket).
func (l *Lab) Listen(host, network, addr string) net.Listener {
	l.t.Helper()
	var ln net.Listener
	err := l.In(host, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		l.t.Fatalf("natlab: listen %s %s in %s: %v", network, addr, host, err)
	}
	l.t.Cleanup(func() { ln.Close() })
	return ln
}

// ListenPacket opens a packet socket in host's namespace.
func (l *Lab) ListenPacket(host, network, addr string) net.PacketConn {
	l.t.Helper()
	var pc net.PacketConn
	err := l.In(host, func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		l.t.Fatalf("natlab: listen %s %s in %s: %v", network, addr, host, err)
	}
	l.t.Cleanup(func() { pc.Close() })
	return pc
}

// Dial connects from host's namespace.
func (l *Lab) Dial(host, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := l.In(host, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds ./cmd/xp2p of the module under test once per test binary and returns its path.
func Binary(t TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		sum := sha256.Sum256([]byte(root))
		dir := filepath.Join(os.TempDir(), "xp2p-lab-"+hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "xp2p")
		// Built as scripts/install.sh builds the shipped binary (and the bench builds frp): static,
		// without cgo, so that memory figures compare like with like.
		cmd := exec.Command("go", "build", "-trimpath", "-o", buildPath, "./cmd/xp2p")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/xp2p: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("natlab: %v", buildErr)
	}
	return buildPath
}

// WriteFile writes a config file into the test's temporary directory and returns its path.
func WriteFile(t TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// PID is the process id (the xp2p process itself: `ip netns exec` replaces itself with it).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Tool returns the path of an external program a test needs (from Debian package pkg). It skips
// the test when the program is missing, or fails it when XP2P_LAB_REQUIRED=1 (as in CI).
func Tool(t TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("XP2P_LAB_REQUIRED") == "1" {
		t.Fatalf("XP2P_LAB_REQUIRED=1 but %q is missing (apt-get install %s)", name, pkg)
	}
	t.Skipf("skipping %s: %q is missing (apt-get install %s)", testName(t), name, pkg)
	return ""
}
