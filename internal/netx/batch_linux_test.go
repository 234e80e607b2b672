package netx

import (
	"net"
	"testing"
	"time"
)

// TestBatchReaderSizesItsBatch: a reader starts with one slot, grows to its batch while the
// socket keeps more datagrams queued than it has slots, and falls back to one slot when the
// datagrams come one at a time: an idle or nearly idle socket holds one datagram's buffer.
func TestBatchReaderSizesItsBatch(t *testing.T) {
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	SizeUDPBuffers(rc, UDPSocketBuffer)
	s, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := NewBatchReader(rc, 32, 65507)
	rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if len(r.bufs) != 1 {
		t.Fatalf("a new reader holds %d buffers, want 1", len(r.bufs))
	}
	for round := range 8 {
		for range 64 {
			s.Write([]byte("burst"))
		}
		for range 64 {
			if _, _, err := r.Read(); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	if len(r.msgs) != 32 {
		t.Errorf("after bursts of 64 datagrams the batch has %d slots, want 32", len(r.msgs))
	}
	for range shrinkAfter + 2 {
		s.Write([]byte("one"))
		if _, _, err := r.Read(); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.msgs) != 1 || len(r.bufs) != 1 {
		t.Errorf("after %d single datagrams the batch has %d slots and %d buffers, want 1", shrinkAfter+2, len(r.msgs), len(r.bufs))
	}
}
