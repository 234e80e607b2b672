package quicsock

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsgData returns the data of the first control message of level and typ in oob (a subslice,
// so it can be patched in place), or nil.
func cmsgData(oob []byte, level, typ int32) []byte {
	for len(oob) > 0 {
		hdr, body, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return nil
		}
		if hdr.Level == level && hdr.Type == typ {
			return body
		}
		oob = rest
	}
	return nil
}

// SegmentSize returns the UDP GSO segment size carried in oob, or 0 if there is none.
func SegmentSize(oob []byte) int {
	if b := cmsgData(oob, unix.SOL_UDP, unix.UDP_SEGMENT); len(b) >= 2 {
		return int(binary.NativeEndian.Uint16(b))
	}
	return 0
}

func appendSegmentSize(oob []byte, size int) []byte {
	startLen := len(oob)
	const dataLen = 2
	oob = append(oob, make([]byte, unix.CmsgSpace(dataLen))...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[startLen]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(dataLen))
	binary.NativeEndian.PutUint16(oob[startLen+unix.CmsgLen(0):], uint16(size))
	return oob
}

// gsoSystem: the system has UDP GSO (Linux's UDP_SEGMENT).
const gsoSystem = true

func gsoSupported(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	}); err != nil {
		return false
	}
	return serr == nil
}

func isGSOError(err error) bool {
	var serr *os.SyscallError
	return errors.As(err, &serr) && (serr.Err == unix.EIO || serr.Err == unix.EINVAL)
}

// WithSegmentSize returns a copy of oob whose GSO segment size is size (oob must carry one).
func WithSegmentSize(oob []byte, size int) []byte {
	out := append([]byte(nil), oob...)
	if b := cmsgData(out, unix.SOL_UDP, unix.UDP_SEGMENT); len(b) >= 2 {
		binary.NativeEndian.PutUint16(b, uint16(size))
	}
	return out
}
