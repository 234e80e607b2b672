package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestP2PTCPPathCutIsNoCleanEnd: a download over a session's direct TCP path, cut by a reset of
// that TCP connection (what a man in the middle of the path can send, or a NAT that forgot the
// mapping), must reach its user as an error, never as the download's end: before, yamux
// reported its streams' forced close as a clean end, so the user got a FIN after part of the
// file and took it as complete. Needs root (ss -K aborts the connection).
func TestP2PTCPPathCutIsNoCleanEnd(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("TestP2PTCPPathCutIsNoCleanEnd (internal/e2e): needs root for ss -K")
	}
	ssBin, err := exec.LookPath("ss")
	if err != nil {
		t.Skip("TestP2PTCPPathCutIsNoCleanEnd (internal/e2e): no ss (iproute2)")
	}
	const size = 512 << 20
	file := startTCPService(t, func(c *net.TCPConn) {
		io.Copy(c, io.LimitReader(seeded(7), size))
		c.CloseWrite()
		io.Copy(io.Discard, c)
	})
	srv := startServer(t, "")
	provider := startClient(t, clientHeader(srv.Port(), testToken, "")+
		p2pService("file", "xp2p", "s3cret", file.Port()))
	waitProxyStatus(t, provider, "file")
	fport := freeTCPPort(t)
	visitor := startClient(t, clientHeader(srv.Port(), testToken, "")+p2pVisitor("f", "xp2p", "file", "s3cret", fport))
	// The file's session: its first stream rides QUIC while the TCP path is punched; a later
	// one takes the path.
	first := dial(t, fmt.Sprintf("127.0.0.1:%d", fport))
	first.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(first, make([]byte, 1<<10)); err != nil {
		t.Fatal(err)
	}
	first.Close()
	var tcpPath string
	eventually(t, 10*time.Second, func() bool {
		for _, s := range visitor.Sessions() {
			if s.Service == "file" && s.TCP != "" {
				tcpPath = s.TCP
				return true
			}
		}
		return false
	}, func() string { return "the file's session has no TCP path" })

	c := dial(t, fmt.Sprintf("127.0.0.1:%d", fport))
	_, port, _ := net.SplitHostPort(tcpPath)
	got, rerr := readCut(t, c, 4<<20, func() {
		if out, err := exec.Command(ssBin, "-K", "dport", "=", ":"+port).CombinedOutput(); err != nil {
			t.Fatalf("ss -K: %v: %s", err, out)
		}
	})
	if got < size && errors.Is(rerr, io.EOF) {
		t.Errorf("a download cut after %d of %d bytes ended cleanly (EOF): its user takes it as complete", got, size)
	}
	t.Logf("cut after %d of %d bytes: %v", got, size, rerr)
}
