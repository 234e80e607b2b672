//go:build !linux

package peer

// setsockoptCongestion: only Linux picks a congestion control per socket.
func setsockoptCongestion(int, string) {}
