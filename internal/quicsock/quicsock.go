// Package quicsock puts one UDP socket under a quic.Transport while its owner sees every
// packet first: it can take non-QUIC packets out of the read path (STUN, relayed frames), make a
// packet appear to come from another address, and redirect what QUIC sends.
//
// Why by hand: quic-go reads in batches (recvmmsg) and writes with GSO only on a socket that
// implements its OOB-capable interface; a plain net.PacketConn wrapper loses both (2-4x
// throughput, see FACTS.md). Conn implements that interface and ReadBatch itself, so quic-go keeps
// its fast paths while the owner's Filter runs on each packet in the same loop, without copies.
package quicsock

import (
	"encoding/binary"
	"errors"
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Filter decides the fate of each packet. Both methods run on hot paths: they must not block.
type Filter interface {
	// Receive sees every received packet before QUIC. It returns consumed=true when it took the
	// packet (QUIC never sees it). Otherwise QUIC gets pass (data or a subslice of it) as sent
	// from as (nil keeps the real source).
	Receive(data []byte, from *net.UDPAddr) (pass []byte, as net.Addr, consumed bool)
	// Send sees every packet QUIC writes (b may hold several GSO segments of segSize bytes).
	// It returns where to send it; or handled=true when it sent (or dropped) it itself.
	Send(c *Conn, b, oob []byte, segSize int, to *net.UDPAddr) (dst *net.UDPAddr, handled bool, err error)
}

// Conn is a *net.UDPConn with a Filter in both directions. It satisfies quic-go's
// OOBCapablePacketConn and batchConn interfaces.
type Conn struct {
	*net.UDPConn
	batch  *ipv4.PacketConn
	filter Filter
}

// New wraps c. The filter must be set before the Conn is handed to a quic.Transport.
func New(c *net.UDPConn, f Filter) *Conn {
	return &Conn{UDPConn: c, batch: ipv4.NewPacketConn(c), filter: f}
}

// ReadBatch reads a batch from the socket and runs the filter over it. Consumed packets are
// removed by moving later packets' data into their buffers, so that each message keeps the
// buffer quic-go gave it (quic-go pairs buffers with message slots by index).
func (c *Conn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	for {
		n, err := c.batch.ReadBatch(ms, flags)
		if err != nil || n == 0 {
			return n, err
		}
		kept := 0
		for i := range n {
			m := &ms[i]
			from, _ := m.Addr.(*net.UDPAddr)
			data := m.Buffers[0][:m.N]
			pass, as, consumed := c.filter.Receive(data, from)
			if consumed {
				continue
			}
			if as != nil {
				m.Addr = as
			}
			if kept != i {
				dst := &ms[kept]
				buf := dst.Buffers[0][:cap(dst.Buffers[0])]
				dst.N = copy(buf, pass)
				dst.Buffers[0] = buf
				dst.NN = copy(dst.OOB[:cap(dst.OOB)], m.OOB[:m.NN])
				dst.Flags = m.Flags
				dst.Addr = m.Addr
			} else if len(pass) != m.N || (len(pass) > 0 && &pass[0] != &data[0]) {
				// A subslice (a stripped header): point the slot at it. The buffer stays the
				// same array, so quic-go's pairing holds.
				m.Buffers[0] = pass
				m.N = len(pass)
			}
			kept++
		}
		if kept > 0 {
			return kept, nil
		}
		// Everything was consumed: read again rather than return an empty batch.
	}
}

// ReadMsgUDP reads one packet through the filter (quic-go uses ReadBatch; this is for
// completeness of the interface).
func (c *Conn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	for {
		n, oobn, flags, addr, err = c.UDPConn.ReadMsgUDP(b, oob)
		if err != nil {
			return
		}
		pass, as, consumed := c.filter.Receive(b[:n], addr)
		if consumed {
			continue
		}
		n = copy(b, pass)
		if ua, ok := as.(*net.UDPAddr); ok {
			addr = ua
		}
		return
	}
}

// ReadFrom reads one packet through the filter.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, _, _, addr, err := c.ReadMsgUDP(b, nil)
	return n, addr, err
}

// WriteMsgUDP sends QUIC's packet through the filter.
func (c *Conn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	dst, handled, err := c.filter.Send(c, b, oob, SegmentSize(oob), addr)
	if err != nil {
		return 0, 0, err
	}
	if handled {
		return len(b), len(oob), nil
	}
	return c.UDPConn.WriteMsgUDP(b, oob, dst)
}

// WriteTo sends through the filter.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("quicsock: not a UDP address")
	}
	n, _, err := c.WriteMsgUDP(b, nil, ua)
	return n, err
}

// WriteRaw sends b to addr on the socket, bypassing the filter (for the filter's own packets).
func (c *Conn) WriteRaw(b, oob []byte, addr *net.UDPAddr) error {
	_, _, err := c.UDPConn.WriteMsgUDP(b, oob, addr)
	return err
}

// SyscallConn exposes the socket for quic-go's option setting (buffers, DF, GSO probing).
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.UDPConn.SyscallConn() }

// SegmentSize returns the UDP GSO segment size carried in oob, or 0 if there is none.
func SegmentSize(oob []byte) int {
	for len(oob) > 0 {
		hdr, body, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if hdr.Level == unix.SOL_UDP && hdr.Type == unix.UDP_SEGMENT && len(body) >= 2 {
			return int(binary.NativeEndian.Uint16(body))
		}
		oob = rest
	}
	return 0
}

// WithSegmentSize returns a copy of oob whose GSO segment size is size (oob must carry one).
func WithSegmentSize(oob []byte, size int) []byte {
	out := append([]byte(nil), oob...)
	rest := out
	for len(rest) > 0 {
		hdr, body, next, err := unix.ParseOneSocketControlMessage(rest)
		if err != nil {
			return out
		}
		if hdr.Level == unix.SOL_UDP && hdr.Type == unix.UDP_SEGMENT && len(body) >= 2 {
			binary.NativeEndian.PutUint16(body, uint16(size))
			return out
		}
		rest = next
	}
	return out
}
