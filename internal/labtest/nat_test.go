//go:build linux

package labtest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// serverAltIP is the lab server's second address, for the RFC 5780 address tests.
const serverAltIP = "203.0.113.3"

// TestNATDiscovery runs `xp2p nat` behind every lab NAT kind against a server with a second
// address and port, and checks the RFC 5780 classification; then Debian's stun-client (an RFC
// 3489 client) against the same server.
func TestNATDiscovery(t *testing.T) {
	// Not beside the other lab tests: they measure time and throughput, which six NAT tests at
	// once would disturb. Its own cases run side by side.
	l := natlab.New(t, natlab.Config{Sides: []natlab.Side{
		{Name: "A", NAT: natlab.Easy}, {Name: "B", NAT: natlab.Sym}, {Name: "C", NAT: natlab.Open},
		{Name: "D", NAT: natlab.NoUDP}, {Name: "E", NAT: natlab.None}, {Name: "F", NAT: natlab.SymSeq},
	}})
	if out, err := l.Exec("srv", "ip", "addr", "add", serverAltIP+"/24", "dev", "eth0"); err != nil {
		t.Fatalf("second server address: %v: %s", err, out)
	}
	cfg := serverConfig + "[stun]\naltAddr = \"" + serverAltIP + "\"\n"
	l.Start("srv", "server", natlab.Binary(t), "server", "-c", natlab.WriteFile(t, "server.toml", cfg)).
		WaitLog("xp2p server listening", 10*time.Second)

	type report struct {
		Type, Mapping, Filtering, Public string
		UDPBlocked, PortPreserved        bool
		PortDelta                        int
		Hairpinning                      *bool
		Notes                            []string
	}
	cases := []struct {
		host, nat                 string
		typ, mapping, filtering   string
		portPreserved, udpBlocked bool
		portDelta                 int
	}{
		{"A1", natlab.Easy, "port-restricted cone", "endpoint-independent", "address-and-port-dependent", true, false, 0},
		{"B1", natlab.Sym, "symmetric", "address-and-port-dependent", "address-and-port-dependent", false, false, 0},
		{"C1", natlab.Open, "full cone", "endpoint-independent", "endpoint-independent", true, false, 0},
		{"D1", natlab.NoUDP, "UDP blocked", "unknown", "unknown", false, true, 0},
		{"E1", natlab.None, "open", "none", "endpoint-independent", true, false, 0},
		{"F1", natlab.SymSeq, "symmetric", "address-and-port-dependent", "address-and-port-dependent", false, false, 1},
	}
	discover := func(t *testing.T, host, server string) report {
		// A fixed local port: a random one could collide with what masquerade random picks,
		// and port preservation is only meaningful for a port we chose.
		out, err := l.Exec(host, natlab.Binary(t), "nat", "-s", server, "-p", "40123", "-json")
		if err != nil {
			t.Fatalf("xp2p nat: %v\n%s", err, out)
		}
		var r report
		if i := strings.Index(out, "{"); i < 0 || json.Unmarshal([]byte(out[i:]), &r) != nil {
			t.Fatalf("xp2p nat printed no JSON report: %q", out)
		}
		return r
	}
	for _, c := range cases {
		t.Run(c.nat, func(t *testing.T) {
			// Each NAT kind has its own host: the tests run at once (after coturn's and
			// stun-client's below, which use the same hosts and port one by one).
			t.Parallel()
			r := discover(t, c.host, natlab.ServerIP+":7000")
			t.Logf("%s: %s (mapping %s, filtering %s, public %s, port preserved %v, notes %q)", c.nat, r.Type, r.Mapping, r.Filtering, r.Public, r.PortPreserved, r.Notes)
			if r.Type != c.typ || r.Mapping != c.mapping || r.Filtering != c.filtering || r.UDPBlocked != c.udpBlocked {
				t.Errorf("got %s / %s / %s / blocked %v, want %s / %s / %s / blocked %v",
					r.Type, r.Mapping, r.Filtering, r.UDPBlocked, c.typ, c.mapping, c.filtering, c.udpBlocked)
			}
			if r.PortDelta != c.portDelta {
				t.Errorf("port step %d, want %d", r.PortDelta, c.portDelta)
			}
			if !c.udpBlocked && r.PortPreserved != c.portPreserved {
				t.Errorf("port preserved %v, want %v", r.PortPreserved, c.portPreserved)
			}
			if c.nat != natlab.None && !c.udpBlocked {
				if want := l.NATIP(c.host[:1]); !strings.HasPrefix(r.Public, want+":") {
					t.Errorf("public address %s, want the NAT's %s", r.Public, want)
				}
				// The lab's NATs have no hairpin rule: a packet to their own public address
				// from inside does not come back.
				if r.Hairpinning == nil || *r.Hairpinning {
					t.Errorf("hairpinning %v, want false", r.Hairpinning)
				}
			}
		})
	}

	// Any RFC 5780 server will do: coturn with two listening addresses offers the tests.
	t.Run("coturn", func(t *testing.T) {
		turnserver := natlab.Tool(t, "turnserver", "coturn")
		// An empty config file: Debian's /etc/turnserver.conf turns RFC 5780 off.
		l.Start("srv", "coturn", "stdbuf", "-oL", turnserver, "-c", natlab.WriteFile(t, "turnserver.conf", ""),
			"--stun-only", "--no-cli", "--log-file", "stdout", "--pidfile", natlab.WriteFile(t, "turnserver.pid", ""),
			"--listening-ip", natlab.ServerIP, "--listening-ip", serverAltIP, "--listening-port", "3478").
			WaitLog("Total General servers", 10*time.Second)
		for _, c := range cases[:3] {
			t.Run(c.nat, func(t *testing.T) {
				t.Parallel()
				r := discover(t, c.host, natlab.ServerIP+":3478")
				t.Logf("coturn, %s: %s (mapping %s, filtering %s, notes %q)", c.nat, r.Type, r.Mapping, r.Filtering, r.Notes)
				if r.Type != c.typ || r.Mapping != c.mapping || r.Filtering != c.filtering {
					t.Errorf("coturn, %s: got %s / %s / %s, want %s / %s / %s", c.nat, r.Type, r.Mapping, r.Filtering, c.typ, c.mapping, c.filtering)
				}
			})
		}
	})

	t.Run("stun-client", func(t *testing.T) {
		stun := natlab.Tool(t, "stun", "stun-client")
		out, _ := l.Exec("A1", stun, natlab.ServerIP+":7000", "-v")
		// stun-client classifies by RFC 3489: our server must answer its classic requests
		// (test I) and its change requests from the second address and port.
		for _, want := range []string{"test I = 1", "is nat  = 1", "Primary: Independent Mapping, Port Dependent Filter"} {
			if !strings.Contains(out, want) {
				t.Errorf("stun-client output lacks %q:\n%s", want, out)
			}
		}
	})
}
