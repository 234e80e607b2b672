//go:build !linux

package quicsock

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
)

// EnablePacketInfo reports the packet info xp2p reads as unsupported off Linux: a server there
// answers STUN from the address the system picks (fine on a host with one address).
func EnablePacketInfo(c *net.UDPConn) error {
	return fmt.Errorf("packet info is not supported on %s", runtime.GOOS)
}

// PacketDst returns the zero Addr: no packet info off Linux.
func PacketDst(oob []byte) netip.Addr { return netip.Addr{} }

// SourceOOB returns nil: the system picks the source address off Linux.
func SourceOOB(src netip.Addr) []byte { return nil }
