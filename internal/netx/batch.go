package netx

import (
	"net"
	"net/netip"
)

// BatchReader reads a UDP socket's datagrams many per system call (recvmmsg on Linux; one at a
// time elsewhere) into buffers it owns, without an allocation per datagram. One goroutine reads.
type BatchReader struct {
	c *net.UDPConn
	batchState
}

// NewBatchReader reads c in batches of up to batch datagrams of at most size bytes.
func NewBatchReader(c *net.UDPConn, batch, size int) *BatchReader {
	r := &BatchReader{c: c}
	r.init(batch, size)
	return r
}

// Read returns the next datagram and its source. The bytes stay valid until the next Read.
func (r *BatchReader) Read() ([]byte, netip.AddrPort, error) {
	for r.next >= r.n {
		if err := r.refill(); err != nil {
			return nil, netip.AddrPort{}, err
		}
	}
	i := r.next
	r.next++
	return r.bufs[i][:r.lens[i]], r.srcs[i], nil
}
