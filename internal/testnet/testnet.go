// Package testnet starts real xp2p servers, clients and local services on loopback for tests of
// the packages around them (dashboard, admin). Everything it starts is stopped by t.Cleanup.
package testnet

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/peer"
	"github.com/xp2p/xp2p/rendezvous"
)

// Token is the auth.token of the servers and clients started here.
const Token = "testnet-token-7d1e4b"

// Log collects a component's log; it is printed when the test fails.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count returns how many lines contain sub.
func (l *Log) Count(sub string) int {
	return strings.Count(l.String(), sub)
}

// Logger returns a logger whose output is shown if t fails.
func Logger(t testing.TB, role string) (*slog.Logger, *Log) {
	l := &Log{}
	t.Cleanup(func() {
		if t.Failed() {
			s := l.String()
			if len(s) > 8000 {
				s = "..." + s[len(s)-8000:]
			}
			t.Logf("--- %s log ---\n%s", role, s)
		}
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

// StartServer starts a server on a free loopback port; extra is appended to its TOML.
func StartServer(t testing.TB, extra string) *rendezvous.Server {
	t.Helper()
	toml := "bindAddr = \"127.0.0.1\"\nbindPort = 7000\nauth.token = \"" + Token + "\"\n" + extra
	cfg, _, err := config.ParseServer("testnet/server.toml", []byte(toml))
	if err != nil {
		t.Fatalf("server config: %v", err)
	}
	cfg.BindPort = 0
	cfg.StateDir = t.TempDir()
	log, _ := Logger(t, "server")
	for try := 0; ; try++ {
		srv, err := rendezvous.New(cfg, log)
		if err != nil {
			t.Fatalf("rendezvous.New: %v", err)
		}
		err = srv.Start()
		if err == nil {
			t.Cleanup(func() { srv.Close() })
			return srv
		}
		if try == 20 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("server start: %v", err)
		}
	}
}

// ClientTOML is a client config for srv with body appended.
func ClientTOML(srv *rendezvous.Server, body string) string {
	return fmt.Sprintf("serverAddr = \"127.0.0.1\"\nserverPort = %d\nauth.token = %q\n%s\n", srv.Port(), Token, body)
}

// TCPProxy is a [[proxies]] entry of type tcp; remotePort 0 lets the server pick.
func TCPProxy(name string, localPort, remotePort int) string {
	return fmt.Sprintf("\n[[proxies]]\nname = %q\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\nremotePort = %d\n", name, localPort, remotePort)
}

// Client is a running client with its config.
type Client struct {
	*peer.Client
	Config *config.Client
	once   sync.Once
}

// Close stops the client once.
func (c *Client) Close() { c.once.Do(func() { c.Client.Close() }) }

// StartClient starts a client from its config text.
func StartClient(t testing.TB, toml string) *Client {
	t.Helper()
	cfg, _, err := config.ParseClient("testnet/client.toml", []byte(toml))
	if err != nil {
		t.Fatalf("client config: %v\n%s", err, toml)
	}
	cfg.StateDir = t.TempDir()
	log, _ := Logger(t, "client")
	pc, err := peer.New(cfg, log)
	if err != nil {
		t.Fatalf("peer.New: %v", err)
	}
	if err := pc.Start(); err != nil {
		t.Fatalf("client start: %v", err)
	}
	c := &Client{Client: pc, Config: cfg}
	t.Cleanup(c.Close)
	return c
}

// WaitRunning waits until the server published the client's proxy and returns where.
func WaitRunning(t testing.TB, c *Client, name string) string {
	t.Helper()
	var last peer.ProxyInfo
	Eventually(t, 10*time.Second, func() bool {
		for _, p := range c.Proxies() {
			if p.Name == name {
				last = p
				return p.Status == "running" && (p.Remote != "" || p.Type == "xp2p")
			}
		}
		return false
	}, func() string { return fmt.Sprintf("proxy %q not running: %+v", name, last) })
	return last.Remote
}

// Eventually polls cond until it holds, failing the test with describe() after timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, describe())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Service is a local TCP service on loopback.
type Service struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Port is the service's port.
func (s *Service) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Addr is the service's address, host:port.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Close stops the service and waits for its handlers.
func (s *Service) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// StartService serves every connection with handle.
func StartService(t testing.TB, handle func(c *net.TCPConn)) *Service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					c.Close()
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
				}()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// ReplyHandler reads a request to its end (the user's half close), then answers reply bytes
// and closes: a user of it sends exactly what it writes and receives exactly reply bytes.
func ReplyHandler(reply int64) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		io.Copy(io.Discard, c)
		io.CopyN(c, zeros{}, reply)
		c.CloseWrite()
	}
}

// SinkHandler reads everything and answers nothing.
func SinkHandler(c *net.TCPConn) { io.Copy(io.Discard, c) }

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Exchange connects to addr, sends send bytes, half-closes and reads the whole answer; it
// returns how many bytes came back.
func Exchange(addr string, send int64, timeout time.Duration) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.CopyN(c, zeros{}, send); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	c.(*net.TCPConn).CloseWrite()
	return io.Copy(io.Discard, c)
}
