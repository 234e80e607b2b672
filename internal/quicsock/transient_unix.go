//go:build linux || darwin || freebsd

package quicsock

import "golang.org/x/sys/unix"

// transientErrors are what a send fails with while the host's network is changing (its link
// gone, its address removed, no route yet) or a local firewall drops the packet: the packet is
// lost, the socket is fine.
var transientErrors = []error{unix.ENETUNREACH, unix.EHOSTUNREACH, unix.ENETDOWN, unix.EHOSTDOWN,
	unix.EADDRNOTAVAIL, unix.ENOBUFS, unix.EPERM, unix.EACCES}
