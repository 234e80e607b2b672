//go:build linux || darwin || freebsd

package quicsock

import (
	"errors"

	"golang.org/x/sys/unix"
)

// transientErrnos are what a send fails with while the host's network is changing (its link
// gone, its address removed, no route yet) or a local firewall drops the packet: the packet is
// lost, the socket is fine.
var transientErrnos = []unix.Errno{unix.ENETUNREACH, unix.EHOSTUNREACH, unix.ENETDOWN, unix.EHOSTDOWN,
	unix.EADDRNOTAVAIL, unix.ENOBUFS, unix.EPERM, unix.EACCES}

func isTransientSendError(err error) bool {
	for _, e := range transientErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
