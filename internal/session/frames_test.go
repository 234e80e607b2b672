package session

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/yamux"
)

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }

// TestYamuxConnJoinsHeaders: streams over YamuxConn arrive intact, in sizes around the joining
// bound, and a data frame reaches the connection in one write, not two.
func TestYamuxConnJoinsHeaders(t *testing.T) {
	a, b := net.Pipe()
	ca := &countingConn{Conn: a}
	cfg := YamuxConfig(0)
	cfg.MaxStreamWindowSize = 16 << 20
	client, err := yamux.Client(YamuxConn(ca), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := yamux.Server(YamuxConn(b), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	for _, size := range []int{1, 100, 64 << 10, maxJoined - 1, maxJoined + 1, 1 << 20} {
		want := make([]byte, size)
		rand.Read(want)
		got := make(chan []byte, 1)
		go func() {
			st, err := server.AcceptStream()
			if err != nil {
				got <- nil
				return
			}
			defer st.Close()
			b, _ := io.ReadAll(st)
			got <- b
		}()
		st, err := client.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		before := ca.writes.Load()
		if _, err := st.Write(want); err != nil {
			t.Fatal(err)
		}
		writes := ca.writes.Load() - before
		st.Close()
		if b := <-got; !bytes.Equal(b, want) {
			t.Fatalf("%d bytes: got %d bytes back, not the same", size, len(b))
		}
		if size <= maxJoined && writes != 1 {
			t.Errorf("%d bytes in one frame: %d writes to the connection, want 1", size, writes)
		}
	}
}
