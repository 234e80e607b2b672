package nat

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Dependence is how much of a remote endpoint a NAT's mapping or filtering depends on, in the
// terms of RFC 4787 and RFC 5780.
type Dependence uint8

// Dependences, from the most permissive.
const (
	Unknown              Dependence = iota // not measured (or the test could not decide)
	NoNAT                                  // the host's own address is public: nothing to map or filter
	EndpointIndependent                    // one mapping for every destination; anyone may send to it
	AddressDependent                       // depends on the remote address only
	AddressPortDependent                   // depends on the remote address and port
	// AtMostAddressDependent is a measurement without a second server address: endpoint-
	// independent or address-dependent, which only a second address could tell apart.
	AtMostAddressDependent
)

var dependenceNames = [...]string{"unknown", "none", "endpoint-independent", "address-dependent",
	"address-and-port-dependent", "endpoint-independent or address-dependent"}

var dependenceCodes = [...]string{"?", "none", "ei", "ad", "apd", "ei|ad"}

func (d Dependence) String() string {
	if int(d) < len(dependenceNames) {
		return dependenceNames[d]
	}
	return fmt.Sprintf("Dependence(%d)", d)
}

// Behavior is what xp2p knows about the NAT in front of a UDP socket.
type Behavior struct {
	UDPBlocked    bool       // no answer to UDP at all
	Mapping       Dependence // RFC 4787 mapping behaviour
	Filtering     Dependence // RFC 4787 filtering behaviour
	PortPreserved bool       // the public port equals the local port
	// PortDelta is the step between the public ports of a symmetric NAT's consecutive new
	// mappings, when it allocates them in sequence (0: not predictable, or not symmetric).
	// A peer then predicts the port its next mapping gets.
	PortDelta int
}

// maxPortDelta bounds a believable allocation step: larger steps look like random ports.
const maxPortDelta = 64

// Known reports whether anything was measured.
func (b Behavior) Known() bool { return b.UDPBlocked || b.Mapping != Unknown }

// Name is the behaviour's everyday name: "open", "full cone", "restricted cone",
// "port-restricted cone", "symmetric", "UDP blocked", "unknown".
func (b Behavior) Name() string {
	switch {
	case b.UDPBlocked:
		return "UDP blocked"
	case b.Mapping == NoNAT:
		switch b.Filtering {
		case EndpointIndependent, NoNAT, AtMostAddressDependent, Unknown:
			return "open"
		}
		return "open, firewalled"
	case b.Mapping == Unknown:
		return "unknown"
	case b.Mapping == AddressDependent || b.Mapping == AddressPortDependent:
		return "symmetric"
	}
	switch b.Filtering {
	case EndpointIndependent:
		return "full cone"
	case AddressDependent:
		return "restricted cone"
	case AddressPortDependent:
		return "port-restricted cone"
	case AtMostAddressDependent:
		return "full or restricted cone"
	}
	return "cone"
}

// String is the name with the RFC terms, as the dashboard and `xp2p status` show it.
func (b Behavior) String() string {
	if !b.Known() || b.UDPBlocked || b.Name() == "open" {
		return b.Name()
	}
	if b.PortDelta != 0 {
		return fmt.Sprintf("%s (mapping %s, sequential ports +%d, filtering %s)", b.Name(), b.Mapping, b.PortDelta, b.Filtering)
	}
	return fmt.Sprintf("%s (mapping %s, filtering %s)", b.Name(), b.Mapping, b.Filtering)
}

// Code is the compact form clients send to the server and the server hands to peers, e.g.
// "m=ei f=apd pp" (ParseBehavior reads it back).
func (b Behavior) Code() string {
	if b.UDPBlocked {
		return "udp-blocked"
	}
	if !b.Known() {
		return ""
	}
	code := "m=" + dependenceCodes[b.Mapping] + " f=" + dependenceCodes[b.Filtering]
	if b.PortPreserved {
		code += " pp"
	}
	if b.PortDelta != 0 {
		code += " d=" + strconv.Itoa(b.PortDelta)
	}
	return code
}

// ParseBehavior reads a Code. It is lenient about what it does not know (a newer peer may
// send more), strict about what it does: a malformed mapping or filtering value is an error.
func ParseBehavior(code string) (Behavior, error) {
	var b Behavior
	if code == "" {
		return b, nil
	}
	if code == "udp-blocked" {
		return Behavior{UDPBlocked: true}, nil
	}
	for _, field := range strings.Fields(code) {
		key, val, _ := strings.Cut(field, "=")
		switch key {
		case "m", "f":
			d, ok := parseDependence(val)
			if !ok {
				return Behavior{}, fmt.Errorf("nat behaviour %q: bad %s value %q", code, key, val)
			}
			if key == "m" {
				b.Mapping = d
			} else {
				b.Filtering = d
			}
		case "pp":
			b.PortPreserved = true
		case "d":
			d, err := strconv.Atoi(val)
			if err != nil || d < 1 || d > maxPortDelta {
				return Behavior{}, fmt.Errorf("nat behaviour %q: bad port step %q (1-%d)", code, val, maxPortDelta)
			}
			b.PortDelta = d
		}
	}
	return b, nil
}

func parseDependence(s string) (Dependence, bool) {
	for i, c := range dependenceCodes {
		if c == s {
			return Dependence(i), true
		}
	}
	return Unknown, false
}

// PredictWindow is how many ports past the one the server saw a peer probes on a symmetric NAT
// with sequential ports: the mappings the symmetric side made since (its NAT tests, other
// sessions) push its next port further.
const PredictWindow = 16

// PredictPorts returns the addresses a side behind ours should probe to reach a peer behind
// peerNAT whose mapping towards the server is public: the next ports of its sequence (the next
// PredictWindow steps), when the peer is symmetric with sequential ports and we are not
// symmetric (two symmetric sides would both need to predict, which this does not attempt).
// Nil otherwise. A step of 2 may be a step of 1 measured while another flow took a port in
// between, so small steps are covered port by port.
func PredictPorts(ours, peerNAT Behavior, public netip.AddrPort) []netip.AddrPort {
	if !symmetric(peerNAT) || peerNAT.PortDelta == 0 || symmetric(ours) || !public.IsValid() {
		return nil
	}
	step := peerNAT.PortDelta
	if step <= 2 {
		step = 1
	}
	span := PredictWindow * peerNAT.PortDelta
	out := make([]netip.AddrPort, 0, span/step)
	for off := step; off <= span; off += step {
		port := int(public.Port()) + off
		if port > 65535 {
			break
		}
		out = append(out, netip.AddrPortFrom(public.Addr(), uint16(port)))
	}
	return out
}

func symmetric(b Behavior) bool {
	return b.Mapping == AddressDependent || b.Mapping == AddressPortDependent
}
