package peercred

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

func socketUID(local, remote *net.TCPAddr) (uint32, error) {
	s, err := netlink.SocketGet(local, remote)
	if err != nil {
		return 0, fmt.Errorf("look up the owner of %s→%s: %w", local, remote, err)
	}
	return s.UID, nil
}
