package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/nat"
	"github.com/xp2p/xp2p/traversal"
)

// runNAT classifies the local NAT against an xp2p server (or any RFC 5780 STUN server).
func runNAT(args []string, stdout, stderr io.Writer) int {
	var server, cfgPath string
	var port int
	var asJSON bool
	_, code, ok := flags("nat -s HOST:PORT", "Discovers this host's NAT behaviour (RFC 5780 mapping and filtering, port preservation,\nhairpinning, UDP blocked) and public address against an xp2p server's bindPort or any\nRFC 5780 STUN server.", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&server, "s", "", "server to test against, HOST:PORT (an xp2p server's bindPort)")
		fs.StringVar(&cfgPath, "c", "", "or: a client config, whose serverAddr:serverPort is tested against")
		fs.IntVar(&port, "p", 0, "local UDP port of the mapping tests (0: any)")
		fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	})
	if !ok {
		return code
	}
	if server == "" && cfgPath != "" {
		cfg, _, err := config.LoadClient(cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		server = net.JoinHostPort(cfg.ServerAddr, strconv.Itoa(cfg.ServerPort))
	}
	if server == "" {
		fmt.Fprintln(stderr, "xp2p nat: -s HOST:PORT (or -c client.toml) is required")
		return 2
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, strconv.Itoa(config.DefaultBindPort))
	}
	ctx, cancel := signalContext()
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 30*time.Second)
	defer cancelTimeout()
	r, err := nat.Discover(ctx, nat.DiscoverConfig{Server: server, LocalPort: port})
	if err != nil {
		fmt.Fprintf(stderr, "xp2p nat: %v\n", err)
		return 1
	}
	if asJSON {
		return printJSON(stdout, stderr, natJSON(r))
	}
	printNATReport(stdout, r)
	return 0
}

func printNATReport(w io.Writer, r *nat.Report) {
	other := "none"
	if r.Other.IsValid() {
		other = r.Other.String()
	}
	fmt.Fprintf(w, "NAT test against %s (other address %s)\n\n", r.Server, other)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	b := r.Behavior
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	row("NAT type", b.Name())
	if !b.UDPBlocked {
		row("local address", r.Local.String())
		row("public address", r.Public.String())
		row("mapping", b.Mapping.String())
		row("filtering", b.Filtering.String())
		row("port preserved", yesNo(b.PortPreserved))
		if b.PortDelta != 0 {
			row("port allocation", fmt.Sprintf("sequential, +%d per new mapping (predictable)", b.PortDelta))
		}
		row("hairpinning", r.HairpinningText())
		row("round trip", r.RTT.Round(10*time.Microsecond).String())
		row("direct P2P with", outlook(b))
	}
	tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nnote: %s", n)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
	}
}

// outlook says with which kinds of peer NAT a direct path is likely from this one.
func outlook(b nat.Behavior) string {
	peers := []struct {
		name string
		b    nat.Behavior
	}{
		{"open", nat.Behavior{Mapping: nat.NoNAT, Filtering: nat.EndpointIndependent}},
		{"full cone", nat.Behavior{Mapping: nat.EndpointIndependent, Filtering: nat.EndpointIndependent}},
		{"restricted cone", nat.Behavior{Mapping: nat.EndpointIndependent, Filtering: nat.AddressDependent}},
		{"port-restricted cone", nat.Behavior{Mapping: nat.EndpointIndependent, Filtering: nat.AddressPortDependent}},
		{"symmetric with sequential ports", nat.Behavior{Mapping: nat.AddressPortDependent, Filtering: nat.AddressPortDependent, PortDelta: 1}},
		{"symmetric", nat.Behavior{Mapping: nat.AddressPortDependent, Filtering: nat.AddressPortDependent}},
	}
	var yes, no []string
	for _, p := range peers {
		if traversal.PlanFor(traversal.Classify(b, false), traversal.Classify(p.b, false)).Hopeless == "" {
			yes = append(yes, p.name)
		} else {
			no = append(no, p.name)
		}
	}
	out := "none"
	if len(yes) > 0 {
		out = strings.Join(yes, ", ")
	}
	if len(no) > 0 {
		out += " (relayed with " + strings.Join(no, ", ") + ")"
	}
	return out
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

type natReportJSON struct {
	Server        string   `json:"server"`
	OtherAddress  string   `json:"otherAddress,omitempty"`
	Local         string   `json:"local,omitempty"`
	Public        string   `json:"public,omitempty"`
	Type          string   `json:"type"`
	Code          string   `json:"code"`
	UDPBlocked    bool     `json:"udpBlocked"`
	Mapping       string   `json:"mapping"`
	Filtering     string   `json:"filtering"`
	PortPreserved bool     `json:"portPreserved"`
	PortDelta     int      `json:"portDelta,omitempty"`
	Hairpinning   *bool    `json:"hairpinning"`
	RTTMillis     float64  `json:"rttMs"`
	Notes         []string `json:"notes"`
}

func natJSON(r *nat.Report) natReportJSON {
	j := natReportJSON{
		Server: r.Server.String(), Type: r.Behavior.Name(), Code: r.Behavior.Code(),
		UDPBlocked: r.Behavior.UDPBlocked, Mapping: r.Behavior.Mapping.String(), Filtering: r.Behavior.Filtering.String(),
		PortPreserved: r.Behavior.PortPreserved, PortDelta: r.Behavior.PortDelta, Hairpinning: r.Hairpinning,
		RTTMillis: float64(r.RTT.Microseconds()) / 1000, Notes: append([]string{}, r.Notes...),
	}
	if r.Other.IsValid() {
		j.OtherAddress = r.Other.String()
	}
	if r.Public.IsValid() {
		j.Local, j.Public = r.Local.String(), r.Public.String()
	}
	return j
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
