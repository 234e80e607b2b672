//go:build !linux

package peercred

import "net"

func socketUID(local, remote *net.TCPAddr) (uint32, error) { return 0, ErrUnsupported }
