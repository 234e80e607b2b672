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
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
)

// Filter decides the fate of each packet. Both methods run on hot paths: they must not block.
type Filter interface {
	// Receive sees every received packet before QUIC. It returns consumed=true when it took the
	// packet (QUIC never sees it). Otherwise QUIC gets pass (data or a subslice of it) as sent
	// from as (nil keeps the real source). oob holds the packet's control messages (read
	// PacketDst from it); it may be empty.
	Receive(data []byte, from *net.UDPAddr, oob []byte) (pass []byte, as net.Addr, consumed bool)
	// Send sees every packet QUIC writes (b may hold several GSO segments of segSize bytes).
	// It returns where to send it; or handled=true when it sent (or dropped) it itself.
	Send(c *Conn, b, oob []byte, segSize int, to *net.UDPAddr) (dst *net.UDPAddr, handled bool, err error)
}

// BatchFilter is a Filter that wants to know when a received batch has been seen, e.g. to send
// what it queued while seeing it in as few system calls as possible.
type BatchFilter interface {
	Filter
	// EndBatch runs after Receive has seen every packet of a batch and before any of their
	// buffers are reused.
	EndBatch()
}

// Conn is a *net.UDPConn with a Filter in both directions. It satisfies quic-go's
// OOBCapablePacketConn and batchConn interfaces.
type Conn struct {
	*net.UDPConn
	batch  *ipv4.PacketConn
	filter Filter
	gso    atomic.Bool

	verdicts []verdict  // scratch for ReadBatch; only quic-go's one reader goroutine uses it
	gro      *groReader // set by EnableGRO
	gsoBuf   []byte     // scratch for WriteSegments; guarded by gsoMu
	gsoMu    sync.Mutex
}

type verdict struct {
	pass     []byte
	as       net.Addr
	consumed bool
}

// New wraps c. The filter must be set before the Conn is handed to a quic.Transport.
func New(c *net.UDPConn, f Filter) *Conn {
	conn := &Conn{UDPConn: c, batch: ipv4.NewPacketConn(c), filter: f}
	conn.gso.Store(gsoSupported(c))
	return conn
}

// ReadBatch reads a batch from the socket and runs the filter over it. Consumed packets are
// removed by moving later packets' data into their buffers, so that each message keeps the
// buffer quic-go gave it (quic-go pairs buffers with message slots by index).
func (c *Conn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	if c.gro != nil {
		return c.readGRO(ms, flags)
	}
	for {
		n, err := c.batch.ReadBatch(ms, flags)
		if err != nil || n == 0 {
			return n, err
		}
		if cap(c.verdicts) < n {
			c.verdicts = make([]verdict, len(ms))
		}
		vs := c.verdicts[:n]
		for i := range n {
			m := &ms[i]
			from, _ := m.Addr.(*net.UDPAddr)
			pass, as, consumed := c.filter.Receive(m.Buffers[0][:m.N], from, m.OOB[:m.NN])
			vs[i] = verdict{pass, as, consumed}
		}
		// Consumed packets may still be referenced by the filter until EndBatch: compact only after.
		if bf, ok := c.filter.(BatchFilter); ok {
			bf.EndBatch()
		}
		kept := 0
		for i := range n {
			m := &ms[i]
			v := &vs[i]
			if v.consumed {
				continue
			}
			if v.as != nil {
				m.Addr = v.as
				m.NN = len(stripPacketInfo(m.OOB[:m.NN]))
			}
			if kept != i {
				dst := &ms[kept]
				buf := dst.Buffers[0][:cap(dst.Buffers[0])]
				dst.N = copy(buf, v.pass)
				dst.Buffers[0] = buf
				dst.NN = copy(dst.OOB[:cap(dst.OOB)], m.OOB[:m.NN])
				dst.Flags = m.Flags
				dst.Addr = m.Addr
			} else if len(v.pass) != m.N || (len(v.pass) > 0 && &v.pass[0] != &m.Buffers[0][0]) {
				// A subslice (a stripped header): point the slot at it. The buffer stays the
				// same array, so quic-go's pairing holds.
				m.Buffers[0] = v.pass
				m.N = len(v.pass)
			}
			kept++
		}
		clear(vs)
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
		pass, as, consumed := c.filter.Receive(b[:n], addr, oob[:oobn])
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
	n, oobn, err = c.UDPConn.WriteMsgUDP(b, oob, dst)
	if err != nil && isTransientSendError(err) {
		// The network is changing under the socket (a move to another network: the link or
		// the route is gone for a moment): the packet is lost, which QUIC repairs; reporting
		// the error would make quic-go close every connection on the socket.
		return len(b), len(oob), nil
	}
	return n, oobn, err
}

// isTransientSendError reports whether a send failed only for the moment (transientErrors).
func isTransientSendError(err error) bool {
	for _, e := range transientErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
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

// WriteSegments sends packets of equal size (the last may be shorter) to one address: as one
// GSO write where the system supports it, else one by one. It is safe for concurrent use.
func (c *Conn) WriteSegments(pkts [][]byte, to *net.UDPAddr) error {
	if len(pkts) > 1 && c.gso.Load() {
		err := c.writeGSO(pkts, to)
		if err == nil || !isGSOError(err) {
			return err
		}
		// The device cannot segment: never try again on this socket.
		c.gso.Store(false)
	}
	var first error
	for _, p := range pkts {
		if _, _, err := c.UDPConn.WriteMsgUDP(p, nil, to); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// WriteSegmented sends b, a run of segSize-byte packets (the last may be shorter; segSize 0
// or len(b): one packet), to one address on a plain socket: as one GSO write where the system
// takes it, else one write per packet. For sockets beside the Conn (a birthday-punched one).
func WriteSegmented(c *net.UDPConn, b []byte, segSize int, to *net.UDPAddr) error {
	if segSize <= 0 || segSize >= len(b) {
		_, err := c.WriteToUDP(b, to)
		return err
	}
	if gsoSystem {
		// At most MaxGSOSegments and MaxGSOBytes a write: longer runs go in several.
		chunk := segSize * min(MaxGSOSegments, max(MaxGSOBytes/segSize, 1))
		var oob [32]byte
		var err error
		for off := 0; off < len(b) && err == nil; off += chunk {
			part := b[off:min(off+chunk, len(b))]
			if len(part) <= segSize {
				_, err = c.WriteToUDP(part, to)
			} else {
				_, _, err = c.WriteMsgUDP(part, appendSegmentSize(oob[:0], segSize), to)
			}
			if err != nil && isGSOError(err) && off == 0 {
				break // no GSO here: one by one below
			}
			if err != nil {
				return err
			}
		}
		if err == nil {
			return nil
		}
	}
	var first error
	for off := 0; off < len(b); off += segSize {
		if _, err := c.WriteToUDP(b[off:min(off+segSize, len(b))], to); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (c *Conn) writeGSO(pkts [][]byte, to *net.UDPAddr) error {
	c.gsoMu.Lock()
	defer c.gsoMu.Unlock()
	buf := c.gsoBuf[:0]
	for _, p := range pkts {
		buf = append(buf, p...)
	}
	c.gsoBuf = buf
	_, _, err := c.UDPConn.WriteMsgUDP(buf, appendSegmentSize(nil, len(pkts[0])), to)
	return err
}

// SyscallConn exposes the socket for quic-go's option setting (buffers, DF, GSO probing).
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.UDPConn.SyscallConn() }

// MaxGSOSegments and MaxGSOBytes bound one GSO write (kernel limits: UDP_MAX_SEGMENTS, 64 KiB).
const (
	MaxGSOSegments = 64
	MaxGSOBytes    = 65000
)
