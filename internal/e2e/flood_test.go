package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/tlsconf"
	"github.com/xp2p/xp2p/internal/wire"
)

// serverProcess is a server in a child process (startProc), whose memory is measured alone.
type serverProcess struct {
	*proc
	port int
}

func startServerProcess(t *testing.T, extra string) *serverProcess {
	t.Helper()
	port := freeUDPTCPPort(t)
	return &serverProcess{proc: serverProc(t, "server", port, extra), port: port}
}

// floodTarget starts a server process to flood and returns its address, a client TLS config
// for it and its resident set size before the flood.
func floodTarget(t *testing.T) (srv *serverProcess, addr string, conf *tls.Config, baseMiB float64) {
	srv = startServerProcess(t, "")
	conf, err := tlsconf.Client("", "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	return srv, "127.0.0.1:" + strconv.Itoa(srv.port), conf, srv.rssMiB(t)
}

// yamuxFrom opens a TLS+yamux control session to addr from the source address src, as a client
// over TCP does, without logging in.
func yamuxFrom(ctx context.Context, addr string, src net.IP, conf *tls.Config) (*tls.Conn, *yamux.Session, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	conf = conf.Clone()
	conf.NextProtos = []string{tlsconf.ALPNControl}
	tc := tls.Client(raw, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, err
	}
	m, err := yamux.Client(tc, session.YamuxConfig(0))
	if err != nil {
		tc.Close()
		return nil, nil, err
	}
	return tc, m, nil
}

// rssMiB is the process's resident set size.
func (p *serverProcess) rssMiB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// wrongLoginTCP is one tokenless login attempt over TLS+yamux from src, as the flood of issue
// 11 made them: it sends a Login with a wrong proof, reads the answer and hangs up.
func wrongLoginTCP(addr string, src net.IP, conf *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tc, m, err := yamuxFrom(ctx, addr, src, conf)
	if err != nil {
		return err
	}
	defer tc.Close()
	defer m.Close()
	st, err := m.OpenStream()
	if err != nil {
		return err
	}
	key := auth.NewRunKey()
	if err := wire.Write(st, &wire.Login{Version: "flood", RunID: key.ID(), RunKey: key.Public(),
		RunSig: make([]byte, auth.RunSigSize), Proof: make([]byte, auth.ProofSize)}); err != nil {
		return err
	}
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := wire.ReadAs[*wire.LoginResult](st)
	if err == nil && res.Code != "" {
		return &loginRefused{code: res.Code}
	}
	return err
}

// loginRefused is the server's refusal of a login (wrongLoginTCP).
type loginRefused struct{ code string }

func (e *loginRefused) Error() string { return "login refused: " + e.code }

// TestTokenlessLoginFlood is the memory attack of issue 11: two sources log in over TCP with
// wrong tokens as fast as they can. A refused login used to keep its yamux session for 30 s
// (about 30 KB each), so the server's memory grew by hundreds of MiB within seconds. Now a
// refused login is freed at once and unauthenticated work has a fixed ceiling: the server's RSS
// stays within the bound README states while a real client from a third address logs in over TCP
// and uses its proxy.
func TestTokenlessLoginFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a server process for several seconds")
	}
	srv, addr, conf, base := floodTarget(t)

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var attempts, answered atomic.Int64
	var wg sync.WaitGroup
	for _, src := range []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 3)} {
		for range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					attempts.Add(1)
					var refused *loginRefused
					if errors.As(wrongLoginTCP(addr, src, conf), &refused) {
						answered.Add(1)
					}
				}
			}()
		}
	}
	var peak float64
	sample := func() {
		if r := srv.rssMiB(t); r > peak {
			peak = r
		}
	}
	// A real client from another address logs in over TCP during the flood.
	time.Sleep(2 * time.Second)
	sample()
	echo := startTCPService(t, echoHandler)
	c := startClient(t, clientHeader(srv.port, testToken, `transport.protocol = "tcp"`)+tcpProxy("echo", echo.Port(), 0))
	remote := waitRunning(t, c, "echo")
	if err := roundTrip(remote, []byte("logged in during the flood")); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		sample()
	}
	wg.Wait()
	elapsed := 8.0
	t.Logf("flood: %d attempts (%.0f/s), %d answered; server RSS %.1f MiB before, peak %.1f MiB (+%.1f)",
		attempts.Load(), float64(attempts.Load())/elapsed, answered.Load(), base, peak, peak-base)
	const boundMiB = 48
	if peak-base > boundMiB {
		t.Errorf("server RSS grew by %.1f MiB under the flood, want at most %d", peak-base, boundMiB)
	}
}

// TestUnauthenticatedMemoryBound holds the most unauthenticated work the server takes on at
// once: 16 sources × 32 connections (the per-source cap; 512 in all) that finish TLS and yamux and then
// send all but the last byte of the largest Login a stranger may send. It measures what they
// cost the server process (the figure README states) and checks that the next connection is
// shed at once, before any TLS work.
func TestUnauthenticatedMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1024 connections to a server process")
	}
	srv, addr, conf, base := floodTarget(t)
	const sources, perSource = 16, 32
	var mu sync.Mutex
	var held []io.Closer
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	var wg sync.WaitGroup
	var failed atomic.Int64
	var errMu sync.Mutex
	errs := map[string]int{}
	fail := func(stage string, err error) {
		failed.Add(1)
		errMu.Lock()
		errs[stage+": "+fmt.Sprint(err)]++
		errMu.Unlock()
	}
	for s := range sources {
		src := net.IPv4(127, 0, 1, byte(1+s))
		for range perSource {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tc, m, err := yamuxFrom(context.Background(), addr, src, conf)
				if err != nil {
					fail("dial", err)
					return
				}
				mu.Lock()
				held = append(held, tc)
				mu.Unlock()
				st, err := m.OpenStream()
				if err != nil {
					fail("stream", err)
					return
				}
				frame := make([]byte, 4+wire.MaxHelloSize-1)
				frame[2] = byte(wire.MaxHelloSize >> 8) // announces MaxHelloSize bytes
				if _, err := st.Write(frame); err != nil {
					fail("write", err)
				}
			}()
		}
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d connections within the caps failed: %v", n, sources*perSource, errs)
	}
	time.Sleep(500 * time.Millisecond)
	peak := srv.rssMiB(t)
	perConn := (peak - base) * 1024 / (sources * perSource)
	t.Logf("%d unauthenticated connections: server RSS %.1f → %.1f MiB (+%.1f), %.1f KiB each",
		sources*perSource, base, peak, peak-base, perConn)
	// The next one, from a new source, finds every slot taken: shed before TLS.
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 2, 1)}}
	if raw, err := d.Dial("tcp", addr); err == nil { // (or the reset came before connect returned)
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(3 * time.Second))
		if err := tls.Client(raw, conf).Handshake(); err == nil {
			t.Error("a connection past the total cap got its TLS handshake")
		}
	}
	const boundMiB = 48
	if peak-base > boundMiB {
		t.Errorf("%d unauthenticated connections cost %.1f MiB, want at most %d", sources*perSource, peak-base, boundMiB)
	}
}
