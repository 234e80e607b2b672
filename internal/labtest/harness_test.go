//go:build linux

// Package labtest runs xp2p through real NATs: the server, providers and visitors are the xp2p
// binary in network namespaces behind nftables NATs of every kind (package natlab).
package labtest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

const labToken = "lab-token-5d1e"

// serverConfig is the lab server's config.
const serverConfig = `bindPort = 7000
auth.token = "` + labToken + `"
`

// clientConfig is a client's config; body holds its proxies and visitors, top extra top-level keys.
func clientConfig(top, body string) string {
	return `serverAddr = "` + natlab.ServerIP + `"
serverPort = 7000
auth.token = "` + labToken + `"
` + top + "\n" + body
}

// startServer runs the xp2p server in srv.
func startServer(t *testing.T, l *natlab.Lab) *natlab.Proc {
	t.Helper()
	cfg := serverConfig + fmt.Sprintf("\nstateDir = %q\n", l.StateDir("server")) // the same identity after a restart
	p := l.Start("srv", "server", natlab.Binary(t), "server", "-c", natlab.WriteFile(t, "server.toml", cfg))
	p.WaitLog("xp2p server listening", 10*time.Second)
	return p
}

// startClient runs an xp2p client on host and waits until it logged in.
func startClient(t *testing.T, l *natlab.Lab, host, name, config string) *natlab.Proc {
	t.Helper()
	p := l.Start(host, name, natlab.Binary(t), "client", "-c", natlab.WriteFile(t, name+".toml", config))
	p.WaitLog("logged in to server", 15*time.Second)
	return p
}

// echoService serves TCP echo on addr in host's namespace.
func echoService(t *testing.T, l *natlab.Lab, host, addr string) {
	t.Helper()
	ln := l.Listen(host, "tcp4", addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
}

// exchange sends n random bytes from host to addr through an echo service, at most rate bytes
// per second (0: as fast as possible), and checks the echo with SHA-256. It returns the time the
// whole exchange took.
func exchange(t *testing.T, l *natlab.Lab, host, addr string, n, rate int) time.Duration {
	t.Helper()
	c, err := l.Dial(host, "tcp4", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, host, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(90 * time.Second))
	data := make([]byte, n)
	rand.Read(data)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		const chunk = 64 << 10
		for off := 0; off < n; off += chunk {
			if _, err := c.Write(data[off:min(off+chunk, n)]); err != nil {
				errc <- err
				return
			}
			if rate > 0 {
				if ahead := time.Duration(float64(off+chunk)/float64(rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
		errc <- c.(*net.TCPConn).CloseWrite()
	}()
	h := sha256.New()
	got, err := io.Copy(h, c)
	if err != nil {
		t.Fatalf("echo through %s from %s: %v after %d of %d bytes", addr, host, err, got, n)
	}
	if err := <-errc; err != nil {
		t.Fatalf("send through %s from %s: %v", addr, host, err)
	}
	want := sha256.Sum256(data)
	if got != int64(n) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("echo through %s from %s: %d bytes back, checksum mismatch or short (want %d)", addr, host, got, n)
	}
	return time.Since(start)
}

// ping sends a short message through addr and waits for its echo.
func ping(l *natlab.Lab, host, addr string) error {
	c, err := l.Dial(host, "tcp4", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("ping")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, msg) {
		return fmt.Errorf("echo %q", buf)
	}
	return nil
}

// eventually retries fn until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// field extracts key=value from a log line (slog text format).
func field(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if j := strings.Index(v[1:], `"`); j >= 0 {
			return v[1 : j+1]
		}
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// echoOn sends msg on an open connection to an echo service and reads it back.
func echoOn(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(15 * time.Second))
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
