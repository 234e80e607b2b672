package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// duplexHandler sends size bytes of seeded(seed) while it reads the user's bytes, both at once,
// and reports the SHA-256 and length of what it read.
func duplexHandler(size int64, seed uint64, got chan<- digest) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(c, io.LimitReader(seeded(seed), size))
			c.CloseWrite()
		}()
		h := sha256.New()
		n, err := io.Copy(h, c)
		wg.Wait()
		var d digest
		copy(d.sum[:], h.Sum(nil))
		d.n, d.err = n, err
		got <- d
	}
}

type digest struct {
	sum [32]byte
	n   int64
	err error
}

// exchange sends send to conn (then half-closes) while reading everything conn returns, and
// returns the digest of what came back.
func exchange(c *net.TCPConn, send io.Reader) digest {
	werr := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, send)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if e := <-werr; err == nil && e != nil {
		err = fmt.Errorf("send: %w", e)
	}
	var d digest
	copy(d.sum[:], h.Sum(nil))
	d.n, d.err = n, err
	return d
}

// TestTCPProxy runs classic tcp proxies end to end over each way a user connection can travel:
// a stream of the QUIC session, a stream of the TLS+yamux session (both with the work
// connection pool off), and the pool of TLS-over-TCP work connections (the default).
func TestTCPProxy(t *testing.T) {
	t.Parallel()
	bulk := int64(16 << 20)
	conns := 100
	if testing.Short() {
		bulk, conns = 2<<20, 20
	}
	for _, v := range []struct{ name, transport, top string }{
		{"quic streams", "quic", "transport.poolCount = -1"},
		{"yamux streams", "tcp", "transport.poolCount = -1"},
		{"work pool", "quic", ""},
	} {
		transport := v.transport
		// yamux (the tcp transport's streams) has no stream reset: there a failure of the local
		// service reaches the user as a clean end.
		yamux := transport == "tcp" && v.top != ""
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, "")
			duplexGot := make(chan digest, 1)
			duplex := startTCPService(t, duplexHandler(bulk, 2, duplexGot))
			digestSvc := startTCPService(t, digestHandler)
			echo := startTCPService(t, echoHandler)
			// A service that fails mid-answer: 256 KiB, then an RST.
			resetter := startTCPService(t, func(c *net.TCPConn) {
				io.Copy(c, io.LimitReader(seeded(3), 256<<10))
				c.SetLinger(0)
				c.Close()
			})
			// A port where nothing listens: the local service is down.
			downPort := freeTCPPort(t)

			c := startClient(t, clientHeader(srv.Port(), testToken, `transport.protocol = "`+transport+`"`+"\n"+v.top)+
				tcpProxy("duplex", duplex.Port(), 0)+
				tcpProxy("digest", digestSvc.Port(), 0)+
				tcpProxy("echo", echo.Port(), 0)+
				tcpProxy("down", downPort, 0)+
				tcpProxy("resetter", resetter.Port(), 0))
			addr := map[string]string{}
			for _, name := range []string{"duplex", "digest", "echo", "down", "resetter"} {
				addr[name] = waitRunning(t, c, name)
			}
			if got := c.Transport(); got != transport {
				t.Fatalf("client transport %q, want %q", got, transport)
			}

			t.Run("bulk both ways", func(t *testing.T) {
				u := dial(t, addr["duplex"])
				u.SetDeadline(time.Now().Add(60 * time.Second))
				start := time.Now()
				back := exchange(u, io.LimitReader(seeded(1), bulk))
				if back.err != nil {
					t.Fatalf("user side: %v", back.err)
				}
				if want := sha256Of(2, bulk); back.n != bulk || back.sum != want {
					t.Errorf("user received %d bytes (sha %x), want %d bytes (sha %x)", back.n, back.sum[:6], bulk, want[:6])
				}
				var got digest
				select {
				case got = <-duplexGot:
				case <-time.After(10 * time.Second):
					t.Fatal("service never saw the end of the user's data")
				}
				if want := sha256Of(1, bulk); got.err != nil || got.n != bulk || got.sum != want {
					t.Errorf("service received %d bytes (sha %x, err %v), want %d bytes (sha %x)", got.n, got.sum[:6], got.err, bulk, want[:6])
				}
				t.Logf("%d MiB each way in %s", bulk>>20, time.Since(start).Round(time.Millisecond))
			})

			t.Run("half close", func(t *testing.T) {
				// The user ends its side; the service, which answers only after the end of the
				// request, must still get its whole answer through.
				u := dial(t, addr["digest"])
				u.SetDeadline(time.Now().Add(20 * time.Second))
				req := int64(3<<20 + 17)
				back, err := func() ([]byte, error) {
					if _, err := io.Copy(u, io.LimitReader(seeded(5), req)); err != nil {
						return nil, err
					}
					if err := u.CloseWrite(); err != nil {
						return nil, err
					}
					return io.ReadAll(u)
				}()
				if err != nil {
					t.Fatalf("after half close: %v (got %d bytes)", err, len(back))
				}
				if len(back) != 40+digestReplySize {
					t.Fatalf("reply of %d bytes, want %d", len(back), 40+digestReplySize)
				}
				want := sha256Of(5, req)
				if !bytes.Equal(back[:32], want[:]) {
					t.Errorf("service saw a request with sha %x, want %x", back[:6], want[:6])
				}
				var n int64
				for _, b := range back[32:40] {
					n = n<<8 | int64(b)
				}
				if n != req {
					t.Errorf("service saw %d request bytes, want %d", n, req)
				}
				if sha256.Sum256(back[40:]) != sha256Of(99, digestReplySize) {
					t.Error("the reply after the half close arrived corrupted")
				}
			})

			t.Run("concurrent connections", func(t *testing.T) {
				var wg sync.WaitGroup
				errs := make(chan error, conns)
				for i := range conns {
					wg.Add(1)
					go func() {
						defer wg.Done()
						size := int64(64<<10 + i*113)
						c, err := net.DialTimeout("tcp", addr["echo"], 5*time.Second)
						if err != nil {
							errs <- fmt.Errorf("conn %d: %w", i, err)
							return
						}
						defer c.Close()
						c.SetDeadline(time.Now().Add(30 * time.Second))
						d := exchange(c.(*net.TCPConn), io.LimitReader(seeded(uint64(1000+i)), size))
						if d.err != nil {
							errs <- fmt.Errorf("conn %d: %w", i, d.err)
						} else if d.n != size || d.sum != sha256Of(uint64(1000+i), size) {
							errs <- fmt.Errorf("conn %d: echoed %d of %d bytes, checksum mismatch", i, d.n, size)
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
			})

			t.Run("local service fails mid-stream", func(t *testing.T) {
				c, err := net.DialTimeout("tcp", addr["resetter"], 5*time.Second)
				if errors.Is(err, syscall.ECONNRESET) {
					// Under load the service's reset can travel back before connect() returns.
					t.Logf("the reset beat connect() back: %v", err)
					return
				}
				if err != nil {
					t.Fatalf("dial %s: %v", addr["resetter"], err)
				}
				u := c.(*net.TCPConn)
				defer u.Close()
				u.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := io.Copy(io.Discard, u)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("the user's connection hangs after the service failed (%d bytes read)", n)
				}
				switch {
				case !yamux && !errors.Is(err, syscall.ECONNRESET):
					t.Errorf("user read %d bytes then %v; want a connection reset, not a clean end", n, err)
				case err == nil:
					// yamux has no stream reset: there the failure may reach the user as a clean
					// end of stream, so a truncated answer looks complete. A known limit, logged
					// rather than failed.
					t.Logf("KNOWN LIMIT: the service's failure arrives as a clean EOF after %d of 256 KiB", n>>10)
				default:
					t.Logf("user read %d bytes, then %v", n, err)
				}
			})

			t.Run("local service down", func(t *testing.T) {
				for i := range 3 {
					start := time.Now()
					conn, err := net.DialTimeout("tcp", addr["down"], 5*time.Second)
					n := 0
					if err == nil {
						// The usual case: the reset comes after the connection is up.
						u := conn.(*net.TCPConn)
						u.SetReadDeadline(time.Now().Add(5 * time.Second))
						n, err = u.Read(make([]byte, 16))
						u.Close()
					} else if !errors.Is(err, syscall.ECONNRESET) {
						// On loopback the reset can even beat the end of connect().
						t.Fatalf("try %d: dial: %v", i, err)
					}
					took := time.Since(start)
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatalf("try %d: the user's connection hangs (no close or reset within 5 s)", i)
					}
					if err == nil || n != 0 {
						t.Fatalf("try %d: read %d bytes, err %v: want a closed or reset connection", i, n, err)
					}
					// The client's stream reset becomes an RST for the user, but for yamux.
					if !yamux && !errors.Is(err, syscall.ECONNRESET) {
						t.Errorf("try %d: got %v, want a connection reset", i, err)
					}
					if took > 500*time.Millisecond {
						t.Errorf("try %d: the user learnt of the dead service after %s, want well under a second", i, took)
					}
					t.Logf("try %d: user connection ended after %s: %v", i, took.Round(time.Microsecond), err)
				}
				// The proxy itself stays up: a service that comes back is reachable again.
				if pi, _ := proxyInfo(c, "down"); pi.Status != "running" {
					t.Errorf("proxy status %q after failed dials, want running", pi.Status)
				}
			})
		})
	}
}
