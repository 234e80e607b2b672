package peercred

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/vishvananda/netlink"
)

func socketOwner(local, remote *net.TCPAddr) (Peer, error) {
	s, err := netlink.SocketGet(local, remote)
	if err != nil {
		return Peer{}, fmt.Errorf("look up the owner of %s→%s: %w", local, remote, err)
	}
	self, err := ownSocket(s.INode)
	if err != nil {
		return Peer{}, fmt.Errorf("look up the owner of %s→%s: %w", local, remote, err)
	}
	return Peer{UID: s.UID, Self: self}, nil
}

// ownSocket reports whether this process holds the socket with inode ino (one of its file
// descriptors links to socket:[ino]).
func ownSocket(ino uint32) (bool, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return false, err
	}
	want := "socket:[" + strconv.FormatUint(uint64(ino), 10) + "]"
	for _, fd := range fds {
		if link, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && link == want {
			return true, nil
		}
	}
	return false, nil
}
