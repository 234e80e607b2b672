package traversal

import "golang.org/x/sys/windows"

// Windows shares a port with SO_REUSEADDR alone.
func setReusePort(fd int) error {
	return windows.SetsockoptInt(windows.Handle(fd), windows.SOL_SOCKET, windows.SO_REUSEADDR, 1)
}

// Windows sets no segment size per socket before connecting.
func setMaxSegment(int, int) error { return nil }
