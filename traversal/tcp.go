package traversal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// TCP hole punching: a simultaneous open through both NATs. Each side binds one port, tells the
// peer (over the session it already has) where that port can be reached, then connects from it
// to the peer's addresses while the peer does the same. The first SYN to leave opens its NAT's
// mapping for the peer's address and port; the peer's SYN (or its answer to ours) then gets in,
// and the two connects become one connection (RFC 793's simultaneous open, which Linux's stack
// and conntrack both follow). A listener on the same port takes a SYN that reaches a side before
// its own connect (a side without NAT, or a full cone).
//
// It is worth a try where both NATs keep one public port per socket: TCP then maps as UDP does
// (the mapping is taken to behave as the measured UDP one), with the port preserved or learned.
// Blocked UDP says nothing about TCP, so a side without UDP tries too: that is its only way to
// a direct path.

// TCPWorth reports whether a TCP simultaneous open can work for our NAT's class facing the
// peer's: neither maps a new port per destination.
func TCPWorth(ours, peer Class) bool {
	symmetric := func(c Class) bool { return c == ClassSymmetric || c == ClassSymmetricSeq }
	return !symmetric(ours) && !symmetric(peer)
}

// TCPPuncher is one side's socket of a TCP punch: a listener and the connects, all on one port.
type TCPPuncher struct {
	ln   *net.TCPListener
	port int
}

// TCPSegment is the largest TCP payload of a punched connection's segments: what fits a path
// MTU of 1280 (IPv6's minimum) with IPv6 and TCP headers. Kernel TCP finds a smaller path MTU
// only from ICMP "too big", which many paths drop, and Linux does not probe by default: a
// connection sized for a 1500-byte MTU would stall on such a path after its handshake.
const TCPSegment = 1280 - 40 - 20

// punchSocket lets the listener and every connect share the port (and a port a previous punch
// used be bound again at once), and caps the segment size (TCPSegment).
func punchSocket(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if serr = setReusePort(int(fd)); serr == nil {
			serr = setMaxSegment(int(fd), TCPSegment)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// ListenTCPPunch binds the punching port (network "tcp4" or "tcp6", an ephemeral port).
func ListenTCPPunch(network string) (*TCPPuncher, error) {
	lc := net.ListenConfig{Control: punchSocket}
	ln, err := lc.Listen(context.Background(), network, ":0")
	if err != nil {
		return nil, fmt.Errorf("tcp punch: listen: %w", err)
	}
	return &TCPPuncher{ln: ln.(*net.TCPListener), port: ln.Addr().(*net.TCPAddr).Port}, nil
}

// Port is the local port every packet of the punch leaves from.
func (p *TCPPuncher) Port() int { return p.port }

// Close releases the port (a connection already made stays up).
func (p *TCPPuncher) Close() error { return p.ln.Close() }

// Connect connects to the first of the peer's addresses that answers, by simultaneous open
// (and by accepting a connection from one of them), until ctx ends. It returns the connection;
// the others are closed. The listener is closed when it returns.
func (p *TCPPuncher) Connect(ctx context.Context, peers []netip.AddrPort) (*net.TCPConn, error) {
	defer p.ln.Close()
	if len(peers) == 0 {
		return nil, errors.New("tcp punch: no address of the peer")
	}
	ctx, cancel := context.WithCancel(ctx)
	won := make(chan *net.TCPConn, len(peers)+1)
	errs := make(chan error, len(peers)+1)
	// Every goroutine of the punch ends before Connect returns (they stop at once when ctx is
	// cancelled), and a second winner is closed then.
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		close(won)
		for c := range won {
			c.Close()
		}
	}()
	allowed := map[netip.Addr]bool{}
	for _, ap := range peers {
		allowed[ap.Addr().Unmap()] = true
	}
	wg.Add(1)
	go func() { // a SYN that came before our own connect
		defer wg.Done()
		context.AfterFunc(ctx, func() { p.ln.Close() })
		for {
			c, err := p.ln.AcceptTCP()
			if err != nil {
				errs <- err
				return
			}
			if from := c.RemoteAddr().(*net.TCPAddr).AddrPort(); !allowed[from.Addr().Unmap()] {
				c.Close() // not the peer: whoever it is gets nothing
				continue
			}
			won <- c
			return
		}
	}()
	local := &net.TCPAddr{Port: p.port}
	for _, peer := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: local, Control: punchSocket}
			for {
				// One connect rides the kernel's SYN retransmissions: its first SYN may be
				// dropped by the peer's NAT, but the peer's SYN, or its answer, gets through ours.
				c, err := d.DialContext(ctx, "tcp", peer.String())
				if err == nil {
					won <- c.(*net.TCPConn)
					return
				}
				if ctx.Err() != nil {
					errs <- err
					return
				}
				// Refused: the peer's host has no socket yet (it has no NAT, or our SYN beat its
				// connect). Again, a moment later.
				select {
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
					errs <- err
					return
				}
			}
		}()
	}
	var last error
	for range len(peers) + 1 {
		select {
		case c := <-won:
			return c, nil
		case err := <-errs:
			last = err
		}
	}
	return nil, fmt.Errorf("tcp punch: %w", last)
}
