package relay

import (
	"fmt"
	"math/rand/v2"

	"github.com/xp2p/xp2p/config"
)

// maxPortTries bounds the binds one request for "any free port" (remotePort = 0) may cost: a
// client asking again and again while allowPorts is full must not make the server scan 65,535
// ports each time. Ports the server itself holds are skipped without a bind.
const maxPortTries = 256

// portSet is the server's allowPorts: the ports proxies may listen on (empty: any).
type portSet []config.PortRange

func span(r config.PortRange) (first, last int) {
	if r.Single != 0 {
		return r.Single, r.Single
	}
	return r.Start, r.End
}

// allows reports whether port may be taken (0, "any free port", always may).
func (s portSet) allows(port int) bool {
	if len(s) == 0 || port == 0 {
		return true
	}
	for _, r := range s {
		if first, last := span(r); port >= first && port <= last {
			return true
		}
	}
	return false
}

// size is the number of ports in the set (ranges that overlap count twice; the scan tolerates it).
func (s portSet) size() int {
	n := 0
	for _, r := range s {
		first, last := span(r)
		n += last - first + 1
	}
	return n
}

// at is the set's i-th port, 0 ≤ i < size().
func (s portSet) at(i int) int {
	for _, r := range s {
		first, last := span(r)
		if n := last - first + 1; i >= n {
			i -= n
			continue
		}
		return first + i
	}
	panic("relay: port index out of range")
}

// pick finds a free port for remotePort = 0 and binds it with bind. Without allowPorts the
// system picks (bind(0)). With allowPorts the port is chosen from the set itself, not from the
// kernel's ephemeral range, which allowPorts need not overlap: from a random place in the set,
// each port in turn, skipping those the server holds (held) and those bind fails on (in use by
// another program, or privileged), for at most maxPortTries binds.
func (s portSet) pick(held func(int) bool, bind func(port int) error) error {
	if len(s) == 0 {
		return bind(0)
	}
	n := s.size()
	start := rand.IntN(n)
	tries := 0
	var last error
	for k := range n {
		port := s.at((start + k) % n)
		if held(port) {
			continue
		}
		if last = bind(port); last == nil {
			return nil
		}
		if tries++; tries == maxPortTries {
			return fmt.Errorf("no free port within allowPorts after %d tries (last: %v): %w", tries, last, ErrPortInUse)
		}
	}
	if last != nil {
		return fmt.Errorf("no free port within allowPorts (%d ports; last: %v): %w", n, last, ErrPortInUse)
	}
	return fmt.Errorf("no free port within allowPorts (all %d held by other proxies): %w", n, ErrPortInUse)
}
