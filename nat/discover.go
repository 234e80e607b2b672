package nat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v3"
	"golang.org/x/sync/errgroup"
)

// Report is the result of Discover: what an RFC 5780 STUN server saw of this host's NAT.
type Report struct {
	Server netip.AddrPort // the server's primary address
	Other  netip.AddrPort // the server's OTHER-ADDRESS (invalid: it offers none)
	Local  netip.AddrPort // the local address the mapping tests used
	Public netip.AddrPort // the mapped (public) address the server saw
	RTT    time.Duration  // round trip of the first binding request

	Behavior Behavior
	// Hairpinning: whether a packet to our own public address comes back to us (nil: not tested).
	Hairpinning *bool
	// Notes say which tests could not run or decide, and why.
	Notes []string
}

// HairpinningText says whether hairpinning works: "yes", "no" or "not tested".
func (r *Report) HairpinningText() string {
	switch {
	case r.Hairpinning == nil:
		return "not tested"
	case *r.Hairpinning:
		return "yes"
	}
	return "no"
}

// DiscoverConfig tunes Discover.
type DiscoverConfig struct {
	// Server is the STUN server, host:port (an xp2p server's bindPort, or any RFC 5780 server).
	Server string
	// LocalPort fixes the local port of the mapping tests' socket (0: any).
	LocalPort int
	// RTO is the first retransmission timeout of a request; it doubles on each of Tries
	// attempts (defaults 250 ms and 3: an unanswered test costs 1.75 s).
	RTO   time.Duration
	Tries int
}

// ErrNoAnswer is the error of a request that got no answer after every retransmission.
var ErrNoAnswer = errors.New("no answer")

// Discover classifies the NAT in front of this host by the tests of RFC 5780 section 4:
// mapping (test I to the primary address, II to the other address, III to the other address
// and port), filtering (a fresh socket asks the server to answer from its other address and
// port, then from its other port only), port preservation and hairpinning.
//
// The filtering tests use their own socket: the mapping tests have already sent to the
// server's other addresses, which would open an address-dependent filter and make it look
// endpoint-independent. The two groups run in parallel.
func Discover(ctx context.Context, cfg DiscoverConfig) (*Report, error) {
	if cfg.RTO <= 0 {
		cfg.RTO = 250 * time.Millisecond
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 3
	}
	ua, err := net.ResolveUDPAddr("udp4", cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", cfg.Server, err)
	}
	server := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
	mapSock, err := net.ListenUDP("udp4", &net.UDPAddr{Port: cfg.LocalPort})
	if err != nil {
		return nil, fmt.Errorf("listen udp4 :%d: %w", cfg.LocalPort, err)
	}
	defer mapSock.Close()
	filterSock, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("listen udp4: %w", err)
	}
	defer filterSock.Close()

	r := &Report{Server: server, Local: localAddr(mapSock, server)}
	mapper := &prober{conn: mapSock, rto: cfg.RTO, tries: cfg.Tries}
	filterer := &prober{conn: filterSock, rto: cfg.RTO, tries: cfg.Tries}
	// The filtering socket's own mapping first, before the mapping tests: a NAT that hands out
	// ports in sequence then gives the mapping tests consecutive ports, and the step between
	// them is the NAT's. (Its later change requests make no new mapping: same destination.)
	_, filterErr := filterer.bind(ctx, server, ChangeRequest{})
	start := time.Now()
	first, err := mapper.bind(ctx, server, ChangeRequest{})
	if errors.Is(err, ErrNoAnswer) {
		r.Behavior.UDPBlocked = true
		r.Notes = append(r.Notes, fmt.Sprintf("no answer from %s over UDP: UDP is blocked (or the server is down)", server))
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("test I (binding to %s): %w", server, err)
	}
	r.RTT = time.Since(start)
	r.Public, r.Other = first.mapped, first.other
	r.Behavior.PortPreserved = r.Public.Port() == r.Local.Port()

	var g errgroup.Group
	var filterNotes []string
	g.Go(func() error {
		if filterErr != nil {
			filterNotes = []string{fmt.Sprintf("filtering: the second socket got no answer (%v): filtering not tested", filterErr)}
			return nil
		}
		var err error
		r.Behavior.Filtering, filterNotes, err = filtering(ctx, filterer, server, r.Other)
		return err
	})
	mappingNotes, err := r.mapping(ctx, mapper)
	if err != nil {
		return nil, err
	}
	if r.Public != r.Local { // hairpinning means something only through a NAT
		r.Hairpinning = hairpin(ctx, mapper, r.Public)
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	r.Notes = append(append(r.Notes, mappingNotes...), filterNotes...)
	if r.Public == r.Local && r.Behavior.Mapping != AddressDependent && r.Behavior.Mapping != AddressPortDependent {
		r.Behavior.Mapping = NoNAT // the server sees our own address: no NAT in between
	}
	return r, nil
}

// mapping runs tests II and III of RFC 5780 section 4.3.
func (r *Report) mapping(ctx context.Context, p *prober) ([]string, error) {
	switch {
	case !r.Other.IsValid():
		return []string{"the server offers no OTHER-ADDRESS: mapping and filtering behaviour not tested"}, nil
	case r.Other.Addr() == r.Server.Addr():
		// Only a second port: a different mapping to it proves port dependence; the same one
		// cannot tell endpoint-independent from address-dependent.
		res, err := p.bind(ctx, r.Other, ChangeRequest{})
		if errors.Is(err, ErrNoAnswer) {
			return []string{fmt.Sprintf("the server's other port %s did not answer (firewalled?): mapping not tested", r.Other)}, nil
		} else if err != nil {
			return nil, fmt.Errorf("mapping test to %s: %w", r.Other, err)
		}
		if res.mapped == r.Public {
			r.Behavior.Mapping = AtMostAddressDependent
		} else {
			r.Behavior.Mapping = AddressPortDependent
			r.Behavior.PortDelta = portDelta(r.Public, res.mapped)
		}
		return []string{"the server has one address: endpoint-independent and address-dependent behaviour cannot be told apart"}, nil
	}
	second := netip.AddrPortFrom(r.Other.Addr(), r.Server.Port())
	res2, err := p.bind(ctx, second, ChangeRequest{})
	if errors.Is(err, ErrNoAnswer) {
		return []string{fmt.Sprintf("the server's other address %s did not answer: mapping not tested", second)}, nil
	} else if err != nil {
		return nil, fmt.Errorf("test II (binding to %s): %w", second, err)
	}
	if res2.mapped == r.Public {
		r.Behavior.Mapping = EndpointIndependent
		return nil, nil
	}
	res3, err := p.bind(ctx, r.Other, ChangeRequest{})
	if errors.Is(err, ErrNoAnswer) {
		return []string{fmt.Sprintf("the server's other address and port %s did not answer: mapping is address- or address-and-port-dependent", r.Other)}, nil
	} else if err != nil {
		return nil, fmt.Errorf("test III (binding to %s): %w", r.Other, err)
	}
	if res3.mapped == res2.mapped {
		r.Behavior.Mapping = AddressDependent
		r.Behavior.PortDelta = portDelta(r.Public, res2.mapped)
	} else {
		r.Behavior.Mapping = AddressPortDependent
		// Two steps must both look sequential (the filtering tests' socket, running at the
		// same time, may have taken a port in between: the smaller step is the NAT's).
		d1, d2 := portDelta(r.Public, res2.mapped), portDelta(res2.mapped, res3.mapped)
		if d1 != 0 && d2 != 0 {
			r.Behavior.PortDelta = min(d1, d2)
		}
	}
	return nil, nil
}

// portDelta is the step from one new mapping's port to the next, if it looks like a sequence.
func portDelta(a, b netip.AddrPort) int {
	d := int(b.Port()) - int(a.Port())
	if a.Addr() != b.Addr() || d < 1 || d > maxPortDelta {
		return 0
	}
	return d
}

// filtering runs tests II and III of RFC 5780 section 4.4 on a fresh socket that has made its
// own mapping towards the server's primary address.
func filtering(ctx context.Context, p *prober, server, other netip.AddrPort) (Dependence, []string, error) {
	if !other.IsValid() {
		return Unknown, nil, nil
	}
	twoAddrs := other.Addr() != server.Addr()
	if twoAddrs {
		_, err := p.bind(ctx, server, ChangeRequest{ChangeIP: true, ChangePort: true})
		if err == nil {
			return EndpointIndependent, nil, nil
		}
		if !errors.Is(err, ErrNoAnswer) {
			return Unknown, []string{fmt.Sprintf("filtering test II: %v", err)}, nil
		}
	}
	_, err := p.bind(ctx, server, ChangeRequest{ChangePort: true})
	switch {
	case err == nil && twoAddrs:
		return AddressDependent, nil, nil
	case err == nil:
		return AtMostAddressDependent, nil, nil
	case errors.Is(err, ErrNoAnswer):
		return AddressPortDependent, nil, nil
	}
	return Unknown, []string{fmt.Sprintf("filtering test III: %v", err)}, nil
}

// hairpin sends a binding request to our own public address and waits for it to come back.
func hairpin(ctx context.Context, p *prober, public netip.AddrPort) *bool {
	ok := p.selfRequest(ctx, public) == nil
	return &ok
}

// localAddr is the socket's address as the host would send from it to server: its port with
// the source address the route to server picks (connecting a UDP socket sends nothing).
func localAddr(c *net.UDPConn, server netip.AddrPort) netip.AddrPort {
	port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	probe, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), port)
	}
	defer probe.Close()
	return netip.AddrPortFrom(probe.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), port)
}

// answer is what a binding response says.
type answer struct {
	mapped netip.AddrPort // XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS from an RFC 3489 server)
	other  netip.AddrPort // OTHER-ADDRESS (or CHANGED-ADDRESS), invalid when absent
	from   netip.AddrPort // where the response came from
}

// prober runs binding transactions on one socket, one at a time, with RFC 8489 style
// retransmissions (doubling timeouts) bounded by tries.
type prober struct {
	conn  *net.UDPConn
	rto   time.Duration
	tries int
	buf   [1500]byte
}

// bind sends a binding request to to and returns the decoded success response.
func (p *prober) bind(ctx context.Context, to netip.AddrPort, change ChangeRequest) (answer, error) {
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	if change.ChangeIP || change.ChangePort {
		setters = append(setters, change)
	}
	setters = append(setters, stun.Fingerprint)
	req, err := stun.Build(setters...)
	if err != nil {
		return answer{}, err
	}
	resp, from, err := p.transact(ctx, req, to, false)
	if err != nil {
		return answer{}, err
	}
	if resp.Type.Class == stun.ClassErrorResponse {
		var code stun.ErrorCodeAttribute
		code.GetFrom(resp)
		return answer{}, fmt.Errorf("%s answered %d %s", to, code.Code, code.Reason)
	}
	a := answer{from: from}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(resp); err == nil {
		a.mapped = addrPort(xor.IP, xor.Port)
	} else {
		var m stun.MappedAddress
		if err := m.GetFrom(resp); err != nil {
			return answer{}, fmt.Errorf("response from %s has no mapped address", from)
		}
		a.mapped = addrPort(m.IP, m.Port)
	}
	var other stun.OtherAddress
	if err := other.GetFrom(resp); err == nil {
		a.other = addrPort(other.IP, other.Port)
	} else {
		var changed stun.MappedAddress
		if err := changed.GetFromAs(resp, stun.AttrChangedAddress); err == nil {
			a.other = addrPort(changed.IP, changed.Port)
		}
	}
	return a, nil
}

// selfRequest sends a binding request to to and waits for that same request to arrive on the
// socket (hairpinning), answering nothing.
func (p *prober) selfRequest(ctx context.Context, to netip.AddrPort) error {
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return err
	}
	_, _, err = p.transact(ctx, req, to, true)
	return err
}

// transact sends req to to until a message with its transaction id arrives (a response, or
// with wantRequest the request itself), retransmitting with doubling timeouts.
func (p *prober) transact(ctx context.Context, req *stun.Message, to netip.AddrPort, wantRequest bool) (*stun.Message, netip.AddrPort, error) {
	dst := net.UDPAddrFromAddrPort(to)
	rto := p.rto
	for try := 0; try < p.tries; try++ {
		if err := ctx.Err(); err != nil {
			return nil, netip.AddrPort{}, err
		}
		if _, err := p.conn.WriteToUDP(req.Raw, dst); err != nil {
			return nil, netip.AddrPort{}, fmt.Errorf("send to %s: %w", to, err)
		}
		deadline := time.Now().Add(rto)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		p.conn.SetReadDeadline(deadline)
		for {
			n, from, err := p.conn.ReadFromUDPAddrPort(p.buf[:])
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, netip.AddrPort{}, fmt.Errorf("read: %w", err)
			}
			m := &stun.Message{Raw: append([]byte(nil), p.buf[:n]...)}
			if !stun.IsMessage(m.Raw) || m.Decode() != nil || m.TransactionID != req.TransactionID {
				continue // a late answer to an earlier request, or noise
			}
			isRequest := m.Type.Class == stun.ClassRequest
			if isRequest != wantRequest {
				continue
			}
			return m, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
		}
		rto *= 2
	}
	return nil, netip.AddrPort{}, ErrNoAnswer
}

func addrPort(ip net.IP, port int) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}
