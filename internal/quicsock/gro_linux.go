package quicsock

import (
	"encoding/binary"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// GRO (generic receive offload) lets the kernel hand over a run of same-sized datagrams from one
// source as one large buffer: one trip through the network stack and one system call instead of
// one per datagram. quic-go does not use it (its receive buffers hold one packet each), so Conn
// reads super-datagrams into its own buffers and deals their segments out to quic-go's slots,
// running the filter on each segment. A copy per packet is far cheaper than what GRO saves.
const (
	groBatch   = 8
	groBufSize = 64 << 10
)

type groReader struct {
	msgs     []ipv4.Message
	stripped [][]byte     // per message: its control messages without packet info, made once
	segs     []groSegment // segments of the last read not yet handed to quic-go
	next     int
}

type groSegment struct {
	data  []byte
	as    net.Addr
	oob   []byte // the message's control messages, stripped of packet info if the filter changed the source
	flags int
}

// EnableGRO turns UDP GRO on for the socket; it reports whether the system accepted it.
// Call it before the Conn is handed to a quic.Transport.
func (c *Conn) EnableGRO() bool {
	if !SetGRO(c.UDPConn) {
		return false
	}
	g := &groReader{msgs: make([]ipv4.Message, groBatch), stripped: make([][]byte, groBatch)}
	for i := range g.msgs {
		g.msgs[i].Buffers = [][]byte{make([]byte, groBufSize)}
		g.msgs[i].OOB = make([]byte, 256)
		g.stripped[i] = make([]byte, 0, 256)
	}
	c.gro = g
	return true
}

// readGRO fills ms from coalesced reads; see ReadBatch.
func (c *Conn) readGRO(ms []ipv4.Message, flags int) (int, error) {
	g := c.gro
	for {
		if g.next >= len(g.segs) {
			if err := c.refillGRO(flags); err != nil {
				return 0, err
			}
			continue
		}
		k := 0
		for k < len(ms) && g.next < len(g.segs) {
			s := &g.segs[g.next]
			g.next++
			m := &ms[k]
			buf := m.Buffers[0][:cap(m.Buffers[0])]
			if len(s.data) > len(buf) {
				continue // larger than any QUIC packet: not for QUIC
			}
			m.N = copy(buf, s.data)
			m.Buffers[0] = buf[:m.N]
			m.NN = copy(m.OOB[:cap(m.OOB)], s.oob)
			m.Flags = s.flags
			m.Addr = s.as
			k++
		}
		if k > 0 {
			return k, nil
		}
	}
}

// refillGRO reads a batch of (super-)datagrams, splits them and runs the filter on every segment.
func (c *Conn) refillGRO(flags int) error {
	g := c.gro
	for i := range g.msgs {
		g.msgs[i].Buffers[0] = g.msgs[i].Buffers[0][:groBufSize]
		g.msgs[i].OOB = g.msgs[i].OOB[:cap(g.msgs[i].OOB)]
	}
	n, err := c.batch.ReadBatch(g.msgs, flags)
	if err != nil {
		return err
	}
	g.segs = g.segs[:0]
	g.next = 0
	for i := range n {
		m := &g.msgs[i]
		data := m.Buffers[0][:m.N]
		oob := m.OOB[:m.NN]
		size := groSegmentSize(oob)
		if size <= 0 || size >= len(data) {
			size = len(data)
		}
		from, _ := m.Addr.(*net.UDPAddr)
		var stripped []byte // made at the first segment whose source the filter changes
		for off := 0; off < len(data); off += size {
			seg := data[off:min(off+size, len(data))]
			pass, as, consumed := c.filter.Receive(seg, from, oob)
			if consumed {
				continue
			}
			segOOB := oob
			if as != nil {
				// Packet info must go with a changed source (see stripPacketInfo): once per
				// buffer, not per segment (it was 5 % of a receiver's CPU).
				if stripped == nil {
					stripped = stripPacketInfo(append(g.stripped[i][:0], oob...))
					g.stripped[i] = stripped[:0]
				}
				segOOB = stripped
			} else {
				as = m.Addr
			}
			g.segs = append(g.segs, groSegment{data: pass, as: as, oob: segOOB, flags: m.Flags})
		}
	}
	if bf, ok := c.filter.(BatchFilter); ok {
		bf.EndBatch()
	}
	return nil
}

// SetGRO turns UDP GRO on for a plain socket whose reader splits what it reads with
// GROSegmentSize; it reports whether the system accepted it.
func SetGRO(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// GROSegmentSize returns the size of the segments of a datagram read with GRO on (the last may
// be shorter), from its control messages; 0 when the datagram is a single one.
func GROSegmentSize(oob []byte) int { return groSegmentSize(oob) }

// groSegmentSize returns the segment size a GRO read reported in oob, or 0.
func groSegmentSize(oob []byte) int {
	if b := cmsgData(oob, unix.SOL_UDP, unix.UDP_GRO); len(b) >= 4 {
		return int(binary.NativeEndian.Uint32(b))
	}
	return 0
}
