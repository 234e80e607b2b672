package peer

import "golang.org/x/sys/unix"

func setsockoptCongestion(fd int, cc string) {
	unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc)
}
