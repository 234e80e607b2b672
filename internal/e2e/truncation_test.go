package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkConnTruncation: a man in the middle of the client's TCP work connections (bytes
// forwarded, TLS untouched) ends one direction of each at a TLS record boundary with a TCP FIN,
// as an on-path attacker can, in the middle of a user's download through a tcp proxy. Go's TLS
// takes an end of the TCP connection at a record boundary without close_notify as a clean end,
// so before, the server passed the user a FIN after part of the file: a cut download looked
// complete. Now the user gets an error.
func TestWorkConnTruncation(t *testing.T) {
	srv := startServer(t, "")
	const size = 256 << 20
	file := startTCPService(t, func(c *net.TCPConn) {
		io.Copy(c, io.LimitReader(seeded(3), size))
		c.CloseWrite()
		io.Copy(io.Discard, c)
	})
	port, tcpLn := middleOf(t, srv)
	var cut atomic.Bool
	var forwarded, cuts atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { tcpLn.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			down, err := tcpLn.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", srv.Port()))
			if err != nil {
				down.Close()
				continue
			}
			forwarded.Add(1)
			wg.Add(2)
			go func() { // server → client, as it is
				defer wg.Done()
				io.Copy(down, up)
				down.(*net.TCPConn).CloseWrite()
			}()
			go func() { // client → server, record by record, until the cut
				defer wg.Done()
				defer up.Close()
				defer down.Close()
				hdr := make([]byte, 5)
				for {
					if _, err := io.ReadFull(down, hdr); err != nil {
						return
					}
					body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
					if _, err := io.ReadFull(down, body); err != nil {
						return
					}
					if cut.Load() {
						cuts.Add(1)
						up.(*net.TCPConn).CloseWrite() // a FIN at a record boundary, no close_notify
						io.Copy(io.Discard, down)
						return
					}
					if _, err := up.Write(append(hdr, body...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	c := startClient(t, clientHeader(port, testToken, `transport.protocol = "quic"`)+tcpProxy("file", file.Port(), 0))
	remote := waitRunning(t, c, "file")
	eventually(t, 10*time.Second, func() bool { return forwarded.Load() >= 1 },
		func() string { return "the client's work pool did not fill through the man in the middle" })

	// A user rides a pooled work connection when one is idle (else a QUIC stream): try until
	// one did, each after the pool had time to fill again.
	for try := 0; ; try++ {
		if try == 5 {
			t.Fatal("5 downloads never rode a work connection")
		}
		time.Sleep(500 * time.Millisecond)
		cut.Store(false)
		user := dial(t, remote)
		got, rerr := readCut(t, user, 4<<20, func() { cut.Store(true) })
		user.Close()
		if got >= size {
			continue // it rode QUIC
		}
		if errors.Is(rerr, io.EOF) {
			t.Errorf("a download cut after %d of %d bytes ended cleanly (EOF): its user takes it as complete", got, size)
		}
		t.Logf("cut after %d of %d bytes (%d connections cut): %v", got, size, cuts.Load(), rerr)
		return
	}
}

// readCut reads c (a user's download): before bytes, then cut() cuts its way, then on to its
// end. It returns how many bytes came and how the download ended.
func readCut(t *testing.T, c net.Conn, before int, cut func()) (got int, end error) {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 1<<20)
	for got < before {
		n, err := c.Read(buf)
		got += n
		if err != nil {
			t.Fatalf("before the cut: %v after %d bytes", err, got)
		}
	}
	cut()
	for end == nil {
		var n int
		n, end = c.Read(buf)
		got += n
	}
	return got, end
}
