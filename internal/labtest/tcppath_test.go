//go:build linux

package labtest

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/xp2p/xp2p/internal/natlab"
	"github.com/xp2p/xp2p/internal/tlsconf"
)

// TestP2PTCPPathRepunch: the direct TCP path dies under a live session (its socket is killed on
// the visitor's host, which resets the provider's end too): new streams go on QUIC at once, the
// visitor punches a new TCP path, and streams take it again.
func TestP2PTCPPathRepunch(t *testing.T) {
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}}})
	p := startPair(t, l, "P1", "V1", "")
	exchange(t, l, "V1", visitorAddr, 64<<10, 0) // the session; its TCP path is punched next
	up := p.visitor.WaitLog(`direct tcp path up.*`, 15*time.Second)[0]
	exchange(t, l, "V1", visitorAddr, 1<<20, 0) // on the TCP path
	remote, err := netip.ParseAddrPort(field(up, "remote"))
	if err != nil {
		t.Fatalf("tcp path's remote in %q: %v", up, err)
	}
	if out, err := l.Exec("V1", "ss", "-K", "dst", remote.Addr().String(), "dport", "=", fmt.Sprint(remote.Port())); err != nil {
		t.Fatalf("ss -K: %v: %s", err, out)
	}
	p.visitor.WaitLog(`direct tcp path closed`, 5*time.Second)
	exchange(t, l, "V1", visitorAddr, 1<<20, 0) // on QUIC, while the visitor waits to punch again
	eventually(t, 15*time.Second, "a second tcp path", func() error {
		if n := p.visitor.Count(`direct tcp path up`); n < 2 {
			return fmt.Errorf("%d tcp paths up", n)
		}
		return nil
	})
	exchange(t, l, "V1", visitorAddr, 1<<20, 0) // on the new TCP path
	p.visitor.Stop()
	ended := p.visitor.WaitLog(`p2p session ended.*`, 5*time.Second)[0]
	// One stream on each path (the one between on QUIC, unless a loaded machine held it past
	// the second punch).
	if got, _ := strconv.Atoi(field(ended, "tcp_streams")); got < 2 {
		t.Errorf("%d streams took a TCP path, want one on each of the two: %s", got, ended)
	}
}

// TestP2PTCPPathManInTheMiddle: an attacker on the visitor's NAT takes over the TCP leg: the
// visitor's connects to the provider's punching port are redirected to it, the provider's SYNs
// to the visitor are dropped, and it opens its own connection to the provider from the visitor's
// mapped port. It terminates TLS on both sides with its own certificate and relays each side's
// proof to the other. Neither proof checks out (each is bound to its own TLS session), so no
// side brings the path up, the attacker sees nothing past the proofs, and the session's streams
// keep flowing on QUIC.
func TestP2PTCPPathManInTheMiddle(t *testing.T) {
	t.Parallel()
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "P", NAT: natlab.Easy}, {Name: "V", NAT: natlab.Easy}}})
	const trap = 7777
	l.NFT("natV", fmt.Sprintf(`table ip mitm {
  chain pre {
    type nat hook prerouting priority -101;
    iifname "lan0" ip daddr %[1]s tcp dport != %[2]d redirect to :%[2]d
  }
  chain nosyn {
    type filter hook prerouting priority -150;
    iifname "wan0" ip saddr %[1]s tcp flags & (syn | ack) == syn drop
  }
}`, l.NATIP("P"), trap))
	ln := l.Listen("natV", "tcp4", fmt.Sprintf("0.0.0.0:%d", trap))
	var intercepted, reachedProvider, afterProofs atomic.Int64
	cert, err := tlsconf.SelfSigned("attacker")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				dst, err := originalDst(c.(*net.TCPConn))
				if err != nil {
					t.Logf("attacker: original destination: %v", err)
					return
				}
				// The visitor's TLS client accepts any certificate: the proof decides.
				vis := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{tlsconf.ALPNPeer}})
				vis.SetDeadline(time.Now().Add(10 * time.Second))
				if vis.Handshake() != nil {
					return
				}
				intercepted.Add(1)
				// The provider's connection, from the visitor's mapped port (its NAT's
				// conntrack entry for the provider's SYNs lets only that in).
				var prov *tls.Conn
				srcPort := c.RemoteAddr().(*net.TCPAddr).Port
				l.In("natV", func() error {
					d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(l.NATIP("V")), Port: srcPort}}
					pc, err := d.Dial("tcp4", dst.String())
					if err == nil {
						prov = tls.Client(pc, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, NextProtos: []string{tlsconf.ALPNPeer}})
						prov.SetDeadline(time.Now().Add(10 * time.Second))
						if prov.Handshake() != nil {
							prov.Close()
							prov = nil
						}
					}
					return nil
				})
				var visProof, provProof [32]byte
				if _, err := io.ReadFull(vis, visProof[:]); err != nil {
					return
				}
				if prov != nil {
					defer prov.Close()
					reachedProvider.Add(1)
					prov.Write(visProof[:])
					if _, err := io.ReadFull(prov, provProof[:]); err != nil {
						rand.Read(provProof[:])
					}
				} else {
					rand.Read(provProof[:])
				}
				vis.Write(provProof[:])
				// Whatever comes after the proofs would be the session's streams.
				vis.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _ := io.Copy(io.Discard, vis)
				afterProofs.Add(n)
				if prov != nil {
					prov.SetReadDeadline(time.Now().Add(time.Second))
					n, _ := io.Copy(io.Discard, prov)
					afterProofs.Add(n)
				}
			}()
		}
	}()
	p := startPair(t, l, "P1", "V1", "")
	exchange(t, l, "V1", visitorAddr, 64<<10, 0)
	p.visitor.WaitLog(`no direct tcp path.*could not prove the session`, 15*time.Second)
	exchange(t, l, "V1", visitorAddr, 4<<20, 0) // on QUIC, intact
	t.Logf("attacker: %d tcp legs intercepted, %d reached the provider", intercepted.Load(), reachedProvider.Load())
	if intercepted.Load() == 0 {
		t.Fatal("the attacker intercepted no TCP leg: the test tested nothing")
	}
	if n := afterProofs.Load(); n != 0 {
		t.Errorf("the attacker read %d bytes past the proofs", n)
	}
	if reachedProvider.Load() > 0 {
		p.provider.WaitLog(`no direct tcp path.*could not prove the session`, 10*time.Second)
	}
	for _, c := range []*natlab.Proc{p.visitor, p.provider} {
		if n := c.Count(`direct tcp path up`); n != 0 {
			t.Errorf("a TCP path came up through the attacker")
		}
	}
	p.visitor.Stop()
	ended := p.visitor.WaitLog(`p2p session ended.*`, 5*time.Second)[0]
	if field(ended, "tcp_streams") != "0" {
		t.Errorf("streams took the attacker's TCP leg: %s", ended)
	}
}

// originalDst is where a connection redirected by the NAT was headed (SO_ORIGINAL_DST).
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var sa syscall.RawSockaddrInet4
	var serr error
	rc.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(sa))
		const soOriginalDst = 80
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_IP, soOriginalDst, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			serr = e
		}
	})
	if serr != nil {
		return netip.AddrPort{}, serr
	}
	port := uint16(sa.Port>>8 | sa.Port<<8)
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port), nil
}
