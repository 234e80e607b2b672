//go:build !linux

package peercred

import "net"

func socketOwner(local, remote *net.TCPAddr) (Peer, error) { return Peer{}, ErrUnsupported }
