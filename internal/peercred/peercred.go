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
	"net/netip"
	"os"
	"sync"
	"syscall"
)

// ErrUnsupported means this system cannot tell a connection's owner.
var ErrUnsupported = errors.New("this system cannot tell which user owns a local connection")

// UID returns the user that owns the socket at the other end of c, a TCP connection between
// two addresses of this machine.
func UID(c net.Conn) (uint32, error) {
	o, err := Owner(c)
	return o.UID, err
}

// Peer is the owner of the other end of a local connection.
type Peer struct {
	UID uint32
	// Self says the other end is a socket of this very process: a connection it made for
	// someone else (a proxy's user, a plugin's), never its owner at a keyboard.
	Self bool
}

// Owner tells who holds the other end of c, a TCP connection between two addresses of this
// machine: its user, and whether it is this process itself.
func Owner(c net.Conn) (Peer, error) {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return Peer{}, fmt.Errorf("not a TCP connection: %s", c.RemoteAddr())
	}
	if !remote.IP.IsLoopback() {
		return Peer{}, fmt.Errorf("%s is not a loopback address: its owner is on another machine", remote.IP)
	}
	// The other end's socket is the one bound to remote and connected to local.
	return socketOwner(remote, local)
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

// guarded holds the listening addresses of this process's endpoints that trust its own user
// (an admin endpoint without a password), with how many times each was guarded.
var guarded = struct {
	sync.Mutex
	addrs map[netip.AddrPort]int
}{addrs: map[netip.AddrPort]int{}}

// Guard marks addr, where an endpoint of this process that trusts its own user listens, as
// out of reach of the connections this process makes for others: a plugin (socks5,
// http_proxy) connects its users wherever they ask, and such a connection is this process's,
// so the endpoint would take the user for its owner. release ends the guard.
func Guard(addr net.Addr) (release func()) {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return func() {}
	}
	ap := ta.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	guarded.Lock()
	guarded.addrs[ap]++
	guarded.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			guarded.Lock()
			defer guarded.Unlock()
			if guarded.addrs[ap]--; guarded.addrs[ap] <= 0 {
				delete(guarded.addrs, ap)
			}
		})
	}
}

// ErrGuarded refuses a connection to an endpoint Guard protects.
var ErrGuarded = errors.New("an endpoint of this client that trusts its own user: not reachable through the client's proxies")

// RefuseGuarded is a net.Dialer's Control that refuses to connect to a guarded address
// (address is the resolved IP:port of each attempt, so a host name cannot hide one).
func RefuseGuarded(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil
	}
	ip := ap.Addr().Unmap()
	guarded.Lock()
	defer guarded.Unlock()
	for g := range guarded.addrs {
		// A connect to 0.0.0.0 or :: reaches this host's loopback; one to a loopback address
		// reaches a listener on the unspecified address.
		if g.Port() == ap.Port() && (g.Addr() == ip || ip.IsUnspecified() || g.Addr().IsUnspecified() && ip.IsLoopback()) {
			return ErrGuarded
		}
	}
	return nil
}
