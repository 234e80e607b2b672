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
}

func (r *batchState) init(batch, size int) {
	r.bufs = make([][]byte, batch)
	r.lens = make([]int, batch)
	r.srcs = make([]netip.AddrPort, batch)
	r.msgs = make([]mmsghdr, batch)
	r.iovs = make([]unix.Iovec, batch)
	r.names = make([]unix.RawSockaddrInet6, batch)
	for i := range r.bufs {
		r.bufs[i] = make([]byte, size)
	}
}

func (r *BatchReader) refill() error {
	rc, err := r.c.SyscallConn()
	if err != nil {
		return err
	}
	var got int
	var serr error
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
