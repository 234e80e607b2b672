package traversal

import (
	"testing"

	"github.com/xp2p/xp2p/nat"
)

var (
	unknown  = nat.Behavior{}
	blocked  = nat.Behavior{UDPBlocked: true}
	open     = nat.Behavior{Mapping: nat.NoNAT, Filtering: nat.EndpointIndependent}
	firewall = nat.Behavior{Mapping: nat.NoNAT, Filtering: nat.AddressPortDependent}
	full     = nat.Behavior{Mapping: nat.EndpointIndependent, Filtering: nat.EndpointIndependent}
	restrict = nat.Behavior{Mapping: nat.EndpointIndependent, Filtering: nat.AddressDependent}
	portRest = nat.Behavior{Mapping: nat.EndpointIndependent, Filtering: nat.AddressPortDependent}
	sym      = nat.Behavior{Mapping: nat.AddressPortDependent, Filtering: nat.AddressPortDependent}
	symAD    = nat.Behavior{Mapping: nat.AddressDependent, Filtering: nat.AddressDependent}
	symSeq   = nat.Behavior{Mapping: nat.AddressPortDependent, Filtering: nat.AddressPortDependent, PortDelta: 1}
)

func TestClassify(t *testing.T) {
	cases := []struct {
		b      nat.Behavior
		mapped bool
		want   Class
	}{
		{unknown, false, ClassUnknown},
		{blocked, false, ClassBlocked},
		{open, false, ClassOpen},
		{firewall, false, ClassPortRestricted}, // an IPv6 home: no NAT, a stateful firewall
		{full, false, ClassOpen},
		{restrict, false, ClassRestricted},
		{portRest, false, ClassPortRestricted},
		{portRest, true, ClassOpen}, // the router maps the port: every probe gets in
		{sym, false, ClassSymmetric},
		{symAD, false, ClassSymmetric},
		{symSeq, false, ClassSymmetricSeq},
		{sym, true, ClassOpen},
	}
	for _, c := range cases {
		if got := Classify(c.b, c.mapped); got != c.want {
			t.Errorf("Classify(%q, mapped %v) = %s, want %s", c.b.Code(), c.mapped, got, c.want)
		}
	}
}

// TestPlanTable: which pairs the table says can go direct, and how.
func TestPlanTable(t *testing.T) {
	cases := []struct {
		a, b     nat.Behavior
		likely   bool
		strategy string // a's strategy ("" probing alone)
	}{
		{unknown, unknown, true, ""},
		{unknown, sym, true, ""},
		{blocked, full, false, ""},
		{open, sym, true, ""},
		{full, sym, true, ""},
		{restrict, sym, true, ""}, // a restricted cone lets the symmetric side's probe in
		{portRest, portRest, true, ""},
		{firewall, firewall, true, ""},
		{portRest, sym, true, StrategyBirthdayEasy},
		{sym, portRest, true, StrategyBirthdayHard},
		{symAD, firewall, true, StrategyBirthdayHard},
		{portRest, symSeq, true, StrategyPredict}, // the port-restricted side predicts the next ports
		{unknown, symSeq, true, StrategyPredict},
		{symSeq, portRest, true, ""},
		{sym, sym, false, ""},
		{symAD, sym, false, ""},
		{symSeq, sym, false, ""},
		{symSeq, symSeq, false, ""},
	}
	for _, c := range cases {
		p := PlanFor(Classify(c.a, false), Classify(c.b, false))
		if got := p.Hopeless == ""; got != c.likely {
			t.Errorf("%s × %s: likely %v (%q), want %v", c.a.Name(), c.b.Name(), got, p.Hopeless, c.likely)
		}
		if c.strategy == "" && len(p.Strategies) > 0 || c.strategy != "" && !p.Has(c.strategy) {
			t.Errorf("%s × %s: strategies %v, want %q", c.a.Name(), c.b.Name(), p.Strategies, c.strategy)
		}
		// Likelihood is symmetric: both sides must agree to try.
		if q := PlanFor(Classify(c.b, false), Classify(c.a, false)); (q.Hopeless == "") != c.likely {
			t.Errorf("%s × %s: the other side's plan disagrees (%q)", c.b.Name(), c.a.Name(), q.Hopeless)
		}
	}
	// Every pair of classes has a plan, and the two sides of a pair agree on whether to try.
	for a := range numClasses {
		for b := range numClasses {
			if (PlanFor(a, b).Hopeless == "") != (PlanFor(b, a).Hopeless == "") {
				t.Errorf("%s × %s: the sides disagree", a, b)
			}
		}
	}
}
