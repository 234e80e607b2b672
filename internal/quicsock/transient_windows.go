package quicsock

import "golang.org/x/sys/windows"

// transientErrors: see transient_unix.go.
var transientErrors = []error{windows.WSAENETUNREACH, windows.WSAEHOSTUNREACH, windows.WSAENETDOWN,
	windows.WSAEHOSTDOWN, windows.WSAEADDRNOTAVAIL, windows.WSAENOBUFS, windows.WSAEACCES}
