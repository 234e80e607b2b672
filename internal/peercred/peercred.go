// Package peercred tells which local user owns the other end of a loopback TCP connection, so
// that an endpoint without a password can answer only the user it runs as and root (as a unix
// socket's file permissions would), and a command can check who listens on a port before it
// sends a secret there. On Linux it asks the kernel's socket diagnostics (sock_diag, what
// `ss -e` shows); elsewhere it answers ErrUnsupported.
package peercred

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// ErrUnsupported means this system cannot tell a connection's owner.
var ErrUnsupported = errors.New("this system cannot tell which user owns a local connection")

// UID returns the user that owns the socket at the other end of c, a TCP connection between
// two addresses of this machine.
func UID(c net.Conn) (uint32, error) {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("not a TCP connection: %s", c.RemoteAddr())
	}
	if !remote.IP.IsLoopback() {
		return 0, fmt.Errorf("%s is not a loopback address: its owner is on another machine", remote.IP)
	}
	// The other end's socket is the one bound to remote and connected to local.
	return socketUID(remote, local)
}

// Trusted reports whether uid may drive what this process runs: root or this process's user.
func Trusted(uid uint32) bool {
	return uid == 0 || uid == uint32(os.Getuid())
}

// SystemdDynamic reports whether uid is in the range systemd gives DynamicUser= services
// (61184–65519): no login or other user gets one, so a process with such a uid is a service
// that systemd started.
func SystemdDynamic(uid uint32) bool {
	return uid >= 61184 && uid <= 65519
}
