package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/peer"
	"github.com/xp2p/xp2p/rendezvous"
)

// The tests of crashes and stalls need a server or a client in a process of its own, to kill
// (SIGKILL: no goodbye on any socket) or stop (SIGSTOP) it. The test binary plays that part
// itself: run with XP2P_E2E_ROLE set, it runs one server or client from a config file instead
// of the tests.
const (
	roleEnv   = "XP2P_E2E_ROLE"
	configEnv = "XP2P_E2E_CONFIG"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(playRole(role, os.Getenv(configEnv)))
	}
	os.Exit(m.Run())
}

// playRole runs a server or a client from the config at path until SIGTERM.
func playRole(role, path string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	switch role {
	case "server":
		var cfg *config.Server
		if cfg, _, err = config.LoadServer(path); err == nil {
			var srv *rendezvous.Server
			if srv, err = rendezvous.New(cfg, log); err == nil {
				err = srv.Run(ctx)
			}
		}
	case "client":
		var cfg *config.Client
		if cfg, _, err = config.LoadClient(path); err == nil {
			var c *peer.Client
			if c, err = peer.New(cfg, log); err == nil {
				err = c.Run(ctx)
			}
		}
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e", role+":", err)
		return 1
	}
	return 0
}

// proc is a server or client in a child process; it is stopped when the test ends, and its
// output is shown if the test failed.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{}
}

// startProc runs role ("server" or "client") with config text in a child process.
func startProc(t testing.TB, role, name, configText string) *proc {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".toml")
	if err := os.WriteFile(path, []byte(configText), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, out: &logBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), roleEnv+"="+role, configEnv+"="+path)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGCONT) // a stopped process cannot take SIGTERM
		p.stop()
		if t.Failed() {
			t.Logf("--- %s output (tail) ---\n%s", name, p.out.tail(60))
		}
	})
	return p
}

func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
	}
}

// stop ends the process with SIGTERM (SIGKILL after 5 s) and waits for it.
func (p *proc) stop() {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.kill()
	}
}

// kill ends the process at once, as a crash or a power cut would, and waits for it.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// waitLog waits for a line of output that matches pattern.
func (p *proc) waitLog(pattern string, timeout time.Duration) {
	p.t.Helper()
	re := regexp.MustCompile(pattern)
	eventually(p.t, timeout, func() bool { return re.MatchString(p.out.String()) },
		func() string { return fmt.Sprintf("%s logged no line matching %q", p.name, pattern) })
}

// serverProc starts a server in a child process on port (UDP and TCP) and waits until it
// listens.
func serverProc(t testing.TB, name string, port int, extra string) *proc {
	t.Helper()
	p := startProc(t, "server", name, strings.Replace(serverTOML(extra), "bindPort = 7000", fmt.Sprintf("bindPort = %d", port), 1))
	p.waitLog("xp2p server listening", 10*time.Second)
	return p
}
