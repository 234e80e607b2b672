package netx

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Written over recvmmsg by hand: x/net's ReadBatch allocates a net.UDPAddr for every datagram.

type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

type batchState struct {
	bufs    [][]byte
	lens    []int
	srcs    []netip.AddrPort
	msgs    []mmsghdr
	iovs    []unix.Iovec
	names   []unix.RawSockaddrInet6 // large enough for either family
	n, next int
	// The batch grows from one slot to max while the socket keeps more datagrams queued than it
	// has slots, and falls back to one after shrinkAfter batches that used a quarter of them or
	// less. A slot takes a whole datagram (64 KiB for any UDP one): a reader per udp flow with
	// 32 slots from the start held 2 MiB for each of a proxy's 1024 flows, which anyone who
	// sends one datagram from each of 1024 source ports could open (2 GiB of heap).
	size, max int
	// backlog: the last batch used every slot and the socket had another datagram queued
	// behind it.
	backlog bool
	low     int // batches in a row that used a quarter of the slots or less
}

const shrinkAfter = 64

func (r *batchState) init(batch, size int) {
	r.size, r.max = size, max(batch, 1)
	r.resize(1)
}

// resize makes the batch n slots, keeping the buffers it has (no datagram is pending).
func (r *batchState) resize(n int) {
	for len(r.bufs) < n {
		r.bufs = append(r.bufs, make([]byte, r.size))
	}
	clear(r.bufs[n:])
	r.bufs = r.bufs[:n]
	r.lens = make([]int, n)
	r.srcs = make([]netip.AddrPort, n)
	r.msgs = make([]mmsghdr, n)
	r.iovs = make([]unix.Iovec, n)
	r.names = make([]unix.RawSockaddrInet6, n)
}

// adapt sizes the batch to what the last one used, before the next is read.
func (r *batchState) adapt() {
	slots := len(r.msgs)
	switch {
	case r.backlog && slots < r.max:
		r.resize(min(2*slots, r.max))
		r.low = 0
	case slots > 1 && r.n <= slots/4:
		if r.low++; r.low >= shrinkAfter {
			r.resize(1)
			r.low = 0
		}
	default:
		r.low = 0
	}
}

func (r *BatchReader) refill() error {
	r.adapt()
	rc, err := r.c.SyscallConn()
	if err != nil {
		return err
	}
	var got int
	var serr error
	r.backlog = false
	err = rc.Read(func(fd uintptr) bool {
		for i := range r.msgs {
			r.iovs[i].Base = &r.bufs[i][0]
			r.iovs[i].SetLen(len(r.bufs[i]))
			r.msgs[i] = mmsghdr{hdr: unix.Msghdr{Name: (*byte)(unsafe.Pointer(&r.names[i])), Namelen: uint32(unsafe.Sizeof(r.names[i])), Iov: &r.iovs[i], Iovlen: 1}}
		}
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			got = int(n)
			if got == len(r.msgs) && got < r.max {
				// SIOCINQ: the size of the next queued datagram, 0 if there is none.
				next, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
				r.backlog = err == nil && next > 0
			}
		case unix.EAGAIN:
			return false // wait for the poller
		case unix.EINTR:
			return false
		default:
			serr = e
		}
		return true
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	r.n, r.next = 0, 0
	for i := range got {
		src := sockaddrAddrPort(&r.names[i])
		if !src.IsValid() {
			continue
		}
		r.bufs[r.n], r.bufs[i] = r.bufs[i], r.bufs[r.n]
		r.lens[r.n] = int(r.msgs[i].len)
		r.srcs[r.n] = src
		r.n++
	}
	return nil
}

// sockaddrAddrPort reads a raw IPv4 or IPv6 socket address as ReadFromUDPAddrPort does
// (an IPv4-mapped address of a dual-stack socket stays mapped, so replies go back the same way).
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(sa4.Port))
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, port(sa.Port))
	}
	return netip.AddrPort{}
}

// port converts a port in network byte order, as the kernel stores it.
func port(p uint16) uint16 {
	var b [2]byte
	*(*uint16)(unsafe.Pointer(&b[0])) = p
	return binary.BigEndian.Uint16(b[:])
}
