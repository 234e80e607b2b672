package quicsock

import (
	"errors"

	"golang.org/x/sys/windows"
)

// transientErrnos: see transient_unix.go.
var transientErrnos = []windows.Errno{windows.WSAENETUNREACH, windows.WSAEHOSTUNREACH, windows.WSAENETDOWN,
	windows.WSAEHOSTDOWN, windows.WSAEADDRNOTAVAIL, windows.WSAENOBUFS, windows.WSAEACCES}

func isTransientSendError(err error) bool {
	for _, e := range transientErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
