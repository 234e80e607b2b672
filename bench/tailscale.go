//go:build linux

package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// Tailscale in the same lab and run: tailscaled and its CLI of tailscaleVersion, with a TUN
// device as a user runs it, and a control plane of the bench's own on the server host
// (tscontrol.go.txt: tailscale.com's testcontrol as a library, a DERP server and a STUN
// responder), so that the nodes behind the lab's NATs meet as they would through Tailscale's
// servers: the map from control, DERP first, then the direct path that disco finds.

// tailscaleVersion is the Tailscale release the bench compares with (the figures).
const tailscaleVersion = "v1.102.5"

//go:embed tscontrol.go.txt
var tscontrolSource string

// The control plane's ports on the server host, and each node's WireGuard port.
const (
	tsControlPort = 9911
	tsDERPPort    = 9912
	tsSTUNPort    = 3479
	tsNodePort    = 41641
	tsServicePort = 9020 // the bench service on the provider's host, on every address
)

// buildTailscale builds tailscaled, tailscale and tscontrol of tailscaleVersion through the Go
// module proxy into a cache directory and returns it: a temporary module outside the
// repository requires tailscale.com and holds tscontrol's source.
func buildTailscale(cacheDir string) (string, error) {
	dir := filepath.Join(cacheDir, "tailscale-"+tailscaleVersion)
	if isFile(filepath.Join(dir, "tailscaled")) && isFile(filepath.Join(dir, "tailscale")) && isFile(filepath.Join(dir, "tscontrol")) {
		return dir, nil
	}
	src := filepath.Join(dir, "src")
	os.RemoveAll(src)
	if err := os.MkdirAll(filepath.Join(src, "tscontrol"), 0o755); err != nil {
		return "", err
	}
	gomod := fmt.Sprintf("module xp2pbench/tailscale\n\ngo 1.26\n\nrequire tailscale.com %s\n", tailscaleVersion)
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "tscontrol", "main.go"), []byte(tscontrolSource), 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "tailscale.com/cmd/tailscaled", "tailscale.com/cmd/tailscale", "./tscontrol")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build tailscale %s: %v\n%s", tailscaleVersion, err, out)
	}
	os.RemoveAll(src)
	return dir, nil
}

// tailnet is the lab's Tailscale control plane.
type tailnet struct {
	l       *natlab.Lab
	bins    *binaries
	control *natlab.Proc
}

// startTailnet runs the control plane, DERP and STUN on the server host.
func startTailnet(t natlab.TB, l *natlab.Lab, bins *binaries) *tailnet {
	p := l.Start("srv", "tscontrol", bins.tscontrol, "-ip", natlab.ServerIP, "-control", fmt.Sprint(tsControlPort),
		"-derp", fmt.Sprint(tsDERPPort), "-stun", fmt.Sprint(tsSTUNPort))
	p.WaitLog("tscontrol ready", 15*time.Second)
	return &tailnet{l: l, bins: bins, control: p}
}

// tsNode is one tailscaled in the lab.
type tsNode struct {
	n    *tailnet
	host string
	sock string
	proc *natlab.Proc
}

// node starts a tailscaled on host with a fresh state (a new node of the tailnet) and a TUN
// device, and brings it up; it returns once the node runs.
func (n *tailnet) node(t natlab.TB, host, name string) *tsNode {
	dir := t.TempDir()
	node := &tsNode{n: n, host: host, sock: filepath.Join(dir, "tailscaled.sock")}
	node.proc = n.l.Start(host, name, "env", "TS_NO_LOGS_NO_SUPPORT=1", n.bins.tailscaled,
		"--statedir="+dir, "--socket="+node.sock, "--tun=tailscale0", fmt.Sprintf("--port=%d", tsNodePort), "--no-logs-no-support")
	for deadline := time.Now().Add(15 * time.Second); !isSocket(node.sock); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("tailscaled on %s: no socket after 15 s:\n%s", host, tail(node.proc.Output(), 2000))
		}
	}
	if out, err := node.cli("up", fmt.Sprintf("--login-server=http://%s:%d", natlab.ServerIP, tsControlPort), "--hostname="+name,
		"--accept-dns=false", "--netfilter-mode=off", "--timeout=30s"); err != nil {
		t.Fatalf("tailscale up on %s: %v: %s\n%s", host, err, out, tail(node.proc.Output(), 2000))
	}
	return node
}

func (node *tsNode) cli(args ...string) (string, error) {
	return node.n.l.Exec(node.host, append([]string{node.n.bins.tailscale, "--socket=" + node.sock}, args...)...)
}

// ip4 is the node's tailnet address.
func (node *tsNode) ip4(t natlab.TB) string {
	out, err := node.cli("ip", "-4")
	if err != nil {
		t.Fatalf("tailscale ip on %s: %v: %s", node.host, err, out)
	}
	return strings.TrimSpace(out)
}

// path is how the node reaches the peer of tailnet address peer: "direct" (disco found an
// address: CurAddr), "relayed" (DERP) or "" (not in its map yet).
func (node *tsNode) path(peer string) string {
	out, err := node.cli("status", "--json")
	if err != nil {
		return ""
	}
	var st struct {
		Peer map[string]struct {
			TailscaleIPs []netip.Addr
			CurAddr      string
			Relay        string
		}
	}
	if json.Unmarshal([]byte(out), &st) != nil {
		return ""
	}
	for _, p := range st.Peer {
		for _, ip := range p.TailscaleIPs {
			if ip.String() == peer {
				if p.CurAddr != "" {
					return "direct"
				}
				return "relayed"
			}
		}
	}
	return ""
}

// waitDirect polls until the node reaches peer directly, and says when it did.
func (node *tsNode) waitDirect(peer string, wait time.Duration) (time.Time, bool) {
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if node.path(peer) == "direct" {
			return time.Now(), true
		}
	}
	return time.Time{}, false
}

// waitPeer polls until the node has peer in its map (the control plane pushed it).
func (node *tsNode) waitPeer(t natlab.TB, peer string) {
	for deadline := time.Now().Add(15 * time.Second); node.path(peer) == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("tailscale on %s: peer %s not in its map after 15 s", node.host, peer)
		}
	}
}

// pids are the node's processes whose CPU it costs.
func (node *tsNode) pid() int { return node.proc.PID() }

func (node *tsNode) stop() { node.cli("down"); node.proc.Stop() }

func isSocket(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&os.ModeSocket != 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
