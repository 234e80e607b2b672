// Package portmap asks the router in front of a host to forward a public port to one of the
// host's UDP ports (a port mapping), in the three protocols home routers speak: PCP (RFC 6887),
// NAT-PMP (RFC 6886) and UPnP-IGD (the WANIPConnection and WANPPPConnection services, through
// github.com/huin/goupnp). A mapped port takes every datagram to the local socket whatever the
// NAT's filtering, so peers whose NATs could not otherwise meet it (a symmetric NAT facing a
// port-restricted one) get a direct path.
//
// A Mapper asks the router in all three at once, within a short deadline, and maps with the
// protocol of first preference that answered (PCP, then NAT-PMP, then UPnP-IGD); it renews with
// the same one, and starts over when that one stops answering.
package portmap

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jackpal/gateway"
)

// Protocol is a port-mapping protocol, by the name people know it by.
type Protocol string

// The protocols, in their order of preference: PCP is NAT-PMP's successor on the same port (a
// router that speaks both prefers it); UPnP-IGD comes last, its discovery being the slowest
// (SSDP multicast, then the device's description and SOAP over HTTP).
const (
	PCP    Protocol = "PCP"
	NATPMP Protocol = "NAT-PMP"
	UPnP   Protocol = "UPnP-IGD"
)

// Protocols lists every protocol in the order of preference.
var Protocols = []Protocol{PCP, NATPMP, UPnP}

// ParseProtocol returns the protocol named s (as Protocol's constants spell it).
func ParseProtocol(s string) (Protocol, bool) {
	for _, p := range Protocols {
		if string(p) == s {
			return p, true
		}
	}
	return "", false
}

// Mapping is a port mapping the router granted.
type Mapping struct {
	Protocol Protocol
	// External is the router's public address and the mapped port: what peers send to.
	External netip.AddrPort
	// Internal is the host's address on the router's LAN and the local port mapped to.
	Internal netip.AddrPort
	// Lifetime is what the router granted: renew before it runs out.
	Lifetime time.Duration
	// Gateway is the router that mapped it.
	Gateway netip.Addr
}

// DefaultTimeout bounds one attempt to find the router's protocol, and one request after that:
// a router that answers none of them, or only garbage, costs this and no more.
const DefaultTimeout = 2 * time.Second

// Mapper keeps a port mapping at the router. Its methods may be called from any goroutine; they
// run one at a time.
type Mapper struct {
	// Gateway is the router (invalid: the default route's gateway).
	Gateway netip.Addr
	// Timeout bounds finding the router's protocol, and each request (default DefaultTimeout).
	Timeout time.Duration

	// newClients makes the clients of one attempt, in the order of preference (tests).
	newClients func(gateway, local netip.Addr) []client

	mu      sync.Mutex
	cur     client        // the protocol that mapped, nil before the first mapping
	mapping Mapping       // what cur mapped
	via     [2]netip.Addr // the router and this host's address towards it, when cur mapped
}

// client speaks one protocol to one router.
type client interface {
	protocol() Protocol
	// probe checks that the router speaks the protocol, without mapping anything.
	probe(ctx context.Context) error
	// add makes a mapping of the local UDP port, or renews prev (the client's last mapping of
	// it, zero the first time).
	add(ctx context.Context, port uint16, lifetime time.Duration, prev Mapping) (Mapping, error)
	// remove deletes a mapping add made.
	remove(ctx context.Context, m Mapping) error
}

func defaultClients(gateway, local netip.Addr) []client {
	return []client{newPCPClient(gateway, local), newPMPClient(gateway, local), newUPnPClient(gateway, local)}
}

func (m *Mapper) timeout() time.Duration {
	if m.Timeout > 0 {
		return m.Timeout
	}
	return DefaultTimeout
}

// Error is the failure of an attempt to map a port: what each protocol answered.
type Error struct {
	Gateway netip.Addr
	Causes  []ProtocolError
}

// ProtocolError is why one protocol mapped nothing.
type ProtocolError struct {
	Protocol Protocol
	Err      error
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Causes))
	for i, c := range e.Causes {
		parts[i] = fmt.Sprintf("%s: %v", c.Protocol, c.Err)
	}
	return fmt.Sprintf("no port mapping from the router %s (%s)", e.Gateway, strings.Join(parts, "; "))
}

func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Causes))
	for i, c := range e.Causes {
		errs[i] = c.Err
	}
	return errs
}

// Map maps the local UDP port for lifetime (the router may grant less), or renews the mapping
// it made before. A renewal that fails starts over: the router may have restarted, changed its
// protocols, or been replaced. So does a change of the route to the router (the host moved to
// another network): the old router's mapping is left to its lease, that router being out of
// reach.
func (m *Mapper) Map(ctx context.Context, port uint16, lifetime time.Duration) (Mapping, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gw, local, err := m.route()
	if err != nil {
		m.cur, m.mapping = nil, Mapping{}
		return Mapping{}, err
	}
	var renewal error
	if m.cur != nil && m.mapping.Internal.Port() == port && m.via == [2]netip.Addr{gw, local} {
		rctx, cancel := context.WithTimeout(ctx, m.timeout())
		mp, err := m.added(m.cur.add(rctx, port, lifetime, m.mapping))
		cancel()
		if err == nil {
			m.mapping = mp
			return mp, nil
		}
		renewal = fmt.Errorf("renewing the %s mapping: %w", m.cur.protocol(), err)
	}
	m.cur, m.mapping = nil, Mapping{}
	newClients := m.newClients
	if newClients == nil {
		newClients = defaultClients
	}
	c, mp, err := m.discover(ctx, newClients(gw, local), port, lifetime)
	if err != nil {
		if e, ok := err.(*Error); ok {
			e.Gateway = gw
		}
		return Mapping{}, after(renewal, err)
	}
	m.cur, m.mapping, m.via = c, mp, [2]netip.Addr{gw, local}
	return mp, nil
}

// after is err, following a failed renewal if there was one (on one line: it goes to logs).
func after(renewal, err error) error {
	if renewal == nil {
		return err
	}
	return fmt.Errorf("%w; then %w", renewal, err)
}

// discover probes the router in every protocol at once and maps with the first in the order of
// preference that answered. A protocol that answered waits for those before it while they may
// still answer: until twice the time its own answer took, plus answerGrace (PCP and NAT-PMP
// answer within a round trip of each other, UPnP-IGD takes a few); if mapping fails, the next
// one that answered is tried. The probes end with the attempt.
func (m *Mapper) discover(ctx context.Context, clients []client, port uint16, lifetime time.Duration) (client, Mapping, error) {
	type result struct {
		i   int
		err error
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	pctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	start := time.Now()
	results := make(chan result, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- result{i, c.probe(pctx)}
		}()
	}
	const (
		probing = iota
		answered
		failed
	)
	state := make([]int, len(clients))
	causes := make([]error, len(clients))
	var graceEnd time.Time // zero until a protocol answered
	for {
		graceOver := !graceEnd.IsZero() && !time.Now().Before(graceEnd)
		next, wait, pending := -1, false, false
		for i := range clients {
			pending = pending || state[i] == probing
			if state[i] == answered {
				next = i
				break
			}
			if state[i] == probing && !graceOver {
				wait = true
				break
			}
		}
		switch {
		case next >= 0:
			actx, cancel := context.WithTimeout(ctx, m.timeout())
			mp, err := m.added(clients[next].add(actx, port, lifetime, Mapping{}))
			cancel()
			if err == nil {
				return clients[next], mp, nil
			}
			state[next], causes[next] = failed, err
		case wait || pending:
			var graceTimer *time.Timer
			var graceOut <-chan time.Time
			if wait && !graceEnd.IsZero() {
				graceTimer = time.NewTimer(time.Until(graceEnd))
				graceOut = graceTimer.C
			}
			select {
			case r := <-results:
				state[r.i], causes[r.i] = answered, nil
				if r.err != nil {
					state[r.i], causes[r.i] = failed, r.err
				} else if graceEnd.IsZero() {
					graceEnd = time.Now().Add(time.Since(start) + answerGrace)
				}
			case <-graceOut:
			}
			if graceTimer != nil {
				graceTimer.Stop()
			}
		default:
			e := &Error{}
			for i, c := range clients {
				e.Causes = append(e.Causes, ProtocolError{c.protocol(), causes[i]})
			}
			return nil, Mapping{}, e
		}
	}
}

// answerGrace is how much longer than the first answer took a protocol of higher preference
// may take to answer.
const answerGrace = 250 * time.Millisecond

// added checks what a client's add returned: a mapping behind a private address (the router is
// itself behind another NAT, as in a double NAT) would not reach the host from the internet.
func (m *Mapper) added(mp Mapping, err error) (Mapping, error) {
	if err != nil {
		return mp, err
	}
	if a := mp.External.Addr(); !isPublic(a) || mp.External.Port() == 0 {
		return Mapping{}, fmt.Errorf("the router's external address %s is not public (a NAT behind it): peers on the internet cannot reach the mapping", mp.External)
	}
	return mp, nil
}

// isPublic reports whether a is an IPv4 address hosts on the internet could send to: not
// private, shared (carrier-grade NAT, RFC 6598), loopback, link-local or unspecified.
func isPublic(a netip.Addr) bool {
	return a.Is4() && a.IsGlobalUnicast() && !a.IsPrivate() && !sharedSpace.Contains(a)
}

var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// Unmap removes the mapping Map made, if any.
func (m *Mapper) Unmap(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	c, mp := m.cur, m.mapping
	m.cur, m.mapping = nil, Mapping{}
	if err := c.remove(ctx, mp); err != nil {
		return fmt.Errorf("removing the %s mapping of udp port %d at %s: %w", mp.Protocol, mp.Internal.Port(), mp.Gateway, err)
	}
	return nil
}

// route finds the router and this host's address towards it.
func (m *Mapper) route() (gw, local netip.Addr, err error) {
	gw = m.Gateway
	if !gw.IsValid() {
		ip, err := gateway.DiscoverGateway()
		if err != nil {
			return gw, local, fmt.Errorf("find the default gateway: %w", err)
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return gw, local, fmt.Errorf("default gateway %v is not an IP address", ip)
		}
		gw = a
	}
	gw = gw.Unmap()
	if !gw.Is4() {
		return gw, local, fmt.Errorf("gateway %s: port mapping is for IPv4 routers", gw)
	}
	// A connected UDP socket sends nothing: its local address is the route's source.
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, serverPort)))
	if err != nil {
		return gw, local, fmt.Errorf("no route to the gateway %s: %w", gw, err)
	}
	defer c.Close()
	return gw, c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
