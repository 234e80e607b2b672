package traversal

import (
	"fmt"

	"github.com/xp2p/xp2p/nat"
)

// Class is what the choice of strategies needs to know of the NAT in front of a socket.
type Class uint8

// Classes, from the most reachable.
const (
	ClassUnknown Class = iota // not measured: given the benefit of the doubt
	// ClassOpen takes packets from anyone: no NAT (or one that does not filter), full cone, or a
	// router's port mapping.
	ClassOpen
	ClassRestricted     // endpoint-independent mapping, filtering by address
	ClassPortRestricted // endpoint-independent mapping, filtering by address and port ("easy")
	ClassSymmetricSeq   // a new mapping per destination, its ports handed out in sequence
	ClassSymmetric      // a new mapping per destination, on a random port
	ClassBlocked        // no UDP at all
	numClasses
)

var classNames = [numClasses]string{"unknown", "open", "restricted", "port-restricted", "symmetric-seq", "symmetric", "blocked"}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", c)
}

// Classify reduces a measured behaviour to its class; mapped says the router maps the socket
// (NAT-PMP, PCP, UPnP), which lets every probe in whatever the NAT's filtering.
func Classify(b nat.Behavior, mapped bool) Class {
	switch {
	case mapped:
		return ClassOpen
	case b.UDPBlocked:
		return ClassBlocked
	case b.Mapping == nat.Unknown:
		return ClassUnknown
	case b.Mapping == nat.AddressDependent || b.Mapping == nat.AddressPortDependent:
		if b.PortDelta != 0 {
			return ClassSymmetricSeq
		}
		return ClassSymmetric
	}
	switch b.Filtering {
	case nat.AddressPortDependent:
		return ClassPortRestricted
	case nat.AddressDependent:
		return ClassRestricted
	case nat.Unknown:
		if b.Mapping == nat.NoNAT {
			return ClassOpen
		}
		return ClassUnknown
	}
	return ClassOpen // endpoint-independent filtering, or at most address-dependent
}

// Strategy names, as plans list them and logs show them. Every attempt also probes every
// candidate (public, private, mapped, peer-reflexive) and answers the peer's probes at once.
const (
	// StrategyPredict probes the next ports of a symmetric NAT that hands them out in sequence:
	// that opens our filter for the port the peer's probe will come from.
	StrategyPredict = "predict"
	// StrategyBirthdayHard and StrategyBirthdayEasy are the two parts of birthday punching
	// (birthday.go): the random-port symmetric side probes from many sockets, the other side
	// probes many random ports.
	StrategyBirthdayHard = "birthday-hard"
	StrategyBirthdayEasy = "birthday-easy"
)

// Plan is what a session does to find a direct path, given both NATs.
type Plan struct {
	Ours, Peer Class
	// Strategies are run beside the probing of the candidates.
	Strategies []string
	// Hopeless says why a direct path is unlikely ("" when it is likely, or unknown): the
	// session then makes short, rare attempts (still enough for peers on one LAN, and for a
	// behaviour that changed since it was measured).
	Hopeless string
	// IPv6 says the plan counts on IPv6, which both sides have, where their IPv4 NATs give no
	// direct path.
	IPv6 bool
}

// Has reports whether the plan runs a strategy.
func (p Plan) Has(name string) bool {
	for _, s := range p.Strategies {
		if s == name {
			return true
		}
	}
	return false
}

type classPair struct{ ours, peer Class }

// planTable holds the pairs of classes that need more than probing the candidates (which is
// enough for every other pair), our class first. The reasoning: a symmetric side shows its peer
// a public port the server never saw, so the peer learns it only from an arriving probe; that
// probe gets in only if the peer's filter lets in a port it has not sent to (open, or
// restricted: it has sent to that address). Two symmetric sides never learn each other's ports.
// A sequential one can be predicted by the other side; a random one facing a port-restricted NAT
// needs the birthday paradox.
var planTable = map[classPair]Plan{
	{ClassSymmetric, ClassSymmetric}:       {Hopeless: "both NATs are symmetric"},
	{ClassSymmetric, ClassSymmetricSeq}:    {Hopeless: "both NATs are symmetric"},
	{ClassSymmetricSeq, ClassSymmetric}:    {Hopeless: "both NATs are symmetric"},
	{ClassSymmetricSeq, ClassSymmetricSeq}: {Hopeless: "both NATs are symmetric"},

	{ClassSymmetric, ClassPortRestricted}: {Strategies: []string{StrategyBirthdayHard}},
	{ClassPortRestricted, ClassSymmetric}: {Strategies: []string{StrategyBirthdayEasy}},

	{ClassUnknown, ClassSymmetricSeq}:        {Strategies: []string{StrategyPredict}},
	{ClassOpen, ClassSymmetricSeq}:           {Strategies: []string{StrategyPredict}},
	{ClassRestricted, ClassSymmetricSeq}:     {Strategies: []string{StrategyPredict}},
	{ClassPortRestricted, ClassSymmetricSeq}: {Strategies: []string{StrategyPredict}},
}

// PlanFor looks up the plan for our NAT facing the peer's.
func PlanFor(ours, peer Class) Plan {
	p := planTable[classPair{ours, peer}]
	if ours == ClassBlocked || peer == ClassBlocked {
		p = Plan{Hopeless: "UDP is blocked on one side"}
	}
	p.Ours, p.Peer = ours, peer
	return p
}
