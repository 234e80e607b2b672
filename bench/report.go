//go:build linux

package main

import (
	"fmt"
	"strings"
	"time"
)

// Table is one table of the report.
type Table struct {
	Title   string
	Note    string
	Columns []string
	Rows    [][]string
}

// Add appends a row.
func (t *Table) Add(cells ...string) { t.Rows = append(t.Rows, cells) }

// Markdown renders the table (GitHub flavour).
func (t *Table) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", t.Title)
	if t.Note != "" {
		fmt.Fprintf(&b, "%s\n\n", t.Note)
	}
	row := func(cells []string) {
		esc := make([]string, len(cells))
		for i, c := range cells {
			esc[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(esc, " | "))
	}
	row(t.Columns)
	b.WriteString("|" + strings.Repeat("---|", len(t.Columns)) + "\n")
	for _, r := range t.Rows {
		row(r)
	}
	b.WriteString("\n")
	return b.String()
}

// report is everything one run measured.
type report struct {
	opts                                                               *options
	started                                                            time.Time
	notes                                                              []string
	classic, p2p, memory, faults, paths, web, udp                      *results
	classicErr, p2pErr, memoryErr, faultsErr, pathsErr, webErr, udpErr error
	matrix                                                             map[[2]string]map[string]matrixCell
}

func (r *report) failed() bool {
	return r.classicErr != nil || r.p2pErr != nil || r.memoryErr != nil || r.faultsErr != nil || r.pathsErr != nil || r.webErr != nil || r.udpErr != nil
}

// markdown is the whole report.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# xp2p benchmark, %s\n\n", r.started.Format("2006-01-02"))
	fmt.Fprintf(&b, "Machine: %s. frp %s built from source through the Go module proxy. NAT lab: Linux network namespaces "+
		"with nftables NATs (internal/natlab), all traffic on this machine. Each figure is the median of %d repetitions, "+
		"with the range in parentheses; %d MiB per throughput figure. Ratios compare medians measured in the same run "+
		"(the machine is shared and noisy: compare ratios, not absolute figures across runs); the real paths: %d repetitions, "+
		"each figure %d MiB or %d s, whichever ends first.\n\n",
		machine(), frpVersion, r.opts.reps, r.opts.bytes>>20, r.opts.pathReps, r.opts.bytes>>20, r.opts.pathSecs)
	for _, t := range r.tables() {
		b.WriteString(t.Markdown())
	}
	for _, e := range []error{r.classicErr, r.p2pErr, r.memoryErr, r.faultsErr, r.pathsErr, r.webErr, r.udpErr} {
		if e != nil {
			fmt.Fprintf(&b, "**Failed:** %v\n\n", e)
		}
	}
	for _, n := range r.notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	for _, res := range []*results{r.p2p, r.faults, r.paths, r.udp} {
		if res != nil {
			for _, n := range res.notes {
				fmt.Fprintf(&b, "- %s\n", n)
			}
		}
	}
	b.WriteString("\nPlots: ![throughput](throughput.svg) ![round trips](latency.svg) ![memory](memory.svg) ![real paths](realpaths.svg)\n")
	return b.String()
}

// tables builds the report's tables from what was measured.
func (r *report) tables() []*Table {
	var out []*Table
	var webTable *Table // section 7 comes last
	med := func(res *results, row, sys string) float64 { return res.get(row, sys).Median() }
	if r.classic != nil && len(r.classic.samples) > 0 {
		t := &Table{Title: "1. tcp proxy through the server (service behind an easy NAT, user on the public side)",
			Note:    "direct TCP: the same service on the server host, reached by the same user.",
			Columns: []string{"figure", "unit", "direct TCP", "frp tcp", "xp2p tcp", "xp2p / frp", "frp / direct", "xp2p / direct"}}
		for _, row := range classicRows {
			c := r.classic
			t.Add(row.name, row.unit, formatSample(c.get(row.name, "direct TCP")), formatSample(c.get(row.name, "frp")),
				formatSample(c.get(row.name, "xp2p")), formatRatio(Ratio(med(c, row.name, "xp2p"), med(c, row.name, "frp"))),
				formatRatio(Ratio(med(c, row.name, "frp"), med(c, row.name, "direct TCP"))),
				formatRatio(Ratio(med(c, row.name, "xp2p"), med(c, row.name, "direct TCP"))))
		}
		out = append(out, t)
	}
	if r.web != nil && len(r.web.samples) > 0 {
		t := &Table{Title: "7. http vhost through the server (web service behind an easy NAT, user on the public side)",
			Note:    "A 1 KiB page asked for by host name on the server's vhostHTTPPort (frp's http vhost, xp2p's). direct TCP: the same web service on the server host, reached by the same user.",
			Columns: []string{"figure", "unit", "direct TCP", "frp http", "xp2p http", "xp2p / frp", "frp / direct", "xp2p / direct"}}
		for _, row := range webRows {
			c := r.web
			t.Add(row.name, row.unit, formatSample(c.get(row.name, "direct TCP")), formatSample(c.get(row.name, "frp")),
				formatSample(c.get(row.name, "xp2p")), formatRatio(Ratio(med(c, row.name, "xp2p"), med(c, row.name, "frp"))),
				formatRatio(Ratio(med(c, row.name, "frp"), med(c, row.name, "direct TCP"))),
				formatRatio(Ratio(med(c, row.name, "xp2p"), med(c, row.name, "direct TCP"))))
		}
		webTable = t
	}
	if r.p2p != nil && len(r.p2p.samples) > 0 {
		t := &Table{Title: "2. P2P in easy × easy: frp xtcp, Tailscale and xp2p",
			Note: "A fresh visitor process for each repetition: the first byte opens a new session (Tailscale: a fresh tailscaled, " +
				"a new node of the tailnet, up and with the provider in its map; its first connection to the provider). direct TCP: " +
				"visitor host to the server host. Tailscale " + tailscaleVersion + ": tailscaled with a TUN device, its control plane, " +
				"DERP and STUN on the server host (tailscale.com's testcontrol).",
			Columns: []string{"figure", "unit", "direct TCP", "frp xtcp", "tailscale", "xp2p", "xp2p / frp", "xp2p / tailscale", "xp2p / direct"}}
		for _, row := range p2pRows {
			c := r.p2p
			t.Add(row.name, row.unit, formatSample(c.get(row.name, "direct TCP")), formatSample(c.get(row.name, "frp")),
				formatSample(c.get(row.name, "tailscale")), formatSample(c.get(row.name, "xp2p")),
				formatRatio(Ratio(med(c, row.name, "xp2p"), med(c, row.name, "frp"))),
				formatRatio(Ratio(med(c, row.name, "xp2p"), med(c, row.name, "tailscale"))),
				formatRatio(Ratio(med(c, row.name, "xp2p"), med(c, row.name, "direct TCP"))))
		}
		out = append(out, t)
	}
	if len(r.matrix) > 0 {
		t := &Table{Title: "3. NAT matrix: provider × visitor",
			Note:    "Connected or not, the path, and the time to the first echoed byte of the first connection. frp: xtcp with its stcp fallback (fallbackTimeoutMs 1000).",
			Columns: []string{"provider × visitor", "frp xtcp", "xp2p"}}
		for _, prov := range matrixKinds {
			for _, vis := range matrixKinds {
				cells := r.matrix[[2]string{prov, vis}]
				t.Add(prov+" × "+vis, cellText(cells["frp"]), cellText(cells["xp2p"]))
			}
		}
		out = append(out, t)
	}
	if r.memory != nil && len(r.memory.samples) > 0 {
		t := &Table{Title: "4. Memory: one client with n idle tcp proxies",
			Columns: []string{"figure", "unit", "frp", "xp2p", "xp2p / frp"}}
		rows := []string{"server RSS, no proxy"}
		for _, n := range r.opts.proxyCounts {
			rows = append(rows, fmt.Sprintf("server RSS, %d proxies", n))
		}
		for _, n := range r.opts.proxyCounts {
			rows = append(rows, fmt.Sprintf("client RSS, %d proxies", n))
		}
		for _, row := range rows {
			t.Add(row, "MiB", formatSample(r.memory.get(row, "frp")), formatSample(r.memory.get(row, "xp2p")),
				formatRatio(Ratio(med(r.memory, row, "xp2p"), med(r.memory, row, "frp"))))
		}
		if k := len(r.opts.proxyCounts); k >= 2 {
			lo, hi := r.opts.proxyCounts[0], r.opts.proxyCounts[k-1]
			per := func(sys string) float64 {
				return (med(r.memory, fmt.Sprintf("server RSS, %d proxies", hi), sys) - med(r.memory, fmt.Sprintf("server RSS, %d proxies", lo), sys)) * 1024 / float64(hi-lo)
			}
			t.Add("server memory per proxy", "KiB", formatValue(per("frp")), formatValue(per("xp2p")), formatRatio(Ratio(per("xp2p"), per("frp"))))
		}
		out = append(out, t)
	}
	if r.faults != nil && len(r.faults.samples) > 0 {
		t := &Table{Title: "5. Faults: N clients of 2 tcp proxies each, server and client crashes",
			Note: "Clients behind four easy NATs, a user on the public side probing every port (a port is back when a user's " +
				"connection echoes through it). Crashes are SIGKILL; the server is started again at once.",
			Columns: []string{"figure", "unit"}}
		for _, n := range r.opts.faultClients {
			t.Columns = append(t.Columns, fmt.Sprintf("frp N=%d", n), fmt.Sprintf("xp2p N=%d", n), "xp2p / frp")
		}
		for _, row := range faultRows {
			cells := []string{row.name, row.unit}
			for _, n := range r.opts.faultClients {
				key := faultRow(row.name, n)
				cells = append(cells, formatSample(r.faults.get(key, "frp")), formatSample(r.faults.get(key, "xp2p")),
					formatRatio(Ratio(med(r.faults, key, "xp2p"), med(r.faults, key, "frp"))))
			}
			t.Add(cells...)
		}
		out = append(out, t)
	}
	if r.paths != nil && len(r.paths.samples) > 0 {
		out = append(out, pathTables(r.paths)...)
	}
	if webTable != nil {
		out = append(out, webTable)
	}
	if r.udp != nil && len(r.udp.samples) > 0 {
		out = append(out, udpTables(r.udp)...)
	}
	return out
}

func cellText(c matrixCell) string {
	if !c.connected {
		if c.err != "" {
			return "no (" + truncate(c.err, 60) + ")"
		}
		return "no"
	}
	return fmt.Sprintf("%s, %s ms", c.path, formatValue(c.ms))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// summary is the few lines shown on the terminal.
func (r *report) summary() string {
	var b strings.Builder
	b.WriteString("xp2p vs frp " + frpVersion + " (medians; ratio xp2p/frp, higher is better for throughput and conn/s, lower for times and memory)\n")
	line := func(res *results, row, unit string) {
		if res == nil {
			return
		}
		x, f := res.get(row, "xp2p").Median(), res.get(row, "frp").Median()
		fmt.Fprintf(&b, "  %-44s xp2p %8s  frp %8s %-8s  %s\n", row, formatValue(x), formatValue(f), unit, formatRatio(Ratio(x, f)))
	}
	if r.classic != nil {
		b.WriteString(" tcp proxy through the server:\n")
		for _, row := range classicRows {
			line(r.classic, row.name, row.unit)
		}
	}
	if r.web != nil {
		b.WriteString(" http vhost through the server:\n")
		for _, row := range webRows {
			line(r.web, row.name, row.unit)
		}
	}
	if r.p2p != nil {
		b.WriteString(" P2P, easy × easy:\n")
		for _, row := range p2pRows {
			line(r.p2p, row.name, row.unit)
		}
	}
	if len(r.matrix) > 0 {
		counts := map[string][3]int{}
		for _, cells := range r.matrix {
			for sys, c := range cells {
				n := counts[sys]
				if c.connected {
					n[0]++
					if c.path == "direct" {
						n[1]++
					}
				}
				n[2]++
				counts[sys] = n
			}
		}
		fmt.Fprintf(&b, " NAT matrix: xp2p connected %d/%d (%d direct), frp %d/%d (%d direct)\n",
			counts["xp2p"][0], counts["xp2p"][2], counts["xp2p"][1], counts["frp"][0], counts["frp"][2], counts["frp"][1])
	}
	if r.memory != nil {
		b.WriteString(" memory:\n")
		for _, n := range r.opts.proxyCounts {
			line(r.memory, fmt.Sprintf("server RSS, %d proxies", n), "MiB")
		}
	}
	if r.faults != nil {
		for _, n := range r.opts.faultClients {
			fmt.Fprintf(&b, " faults, %d clients:\n", n)
			for _, row := range faultRows {
				line(r.faults, faultRow(row.name, n), row.unit)
			}
		}
	}
	if r.paths != nil {
		b.WriteString(pathSummary(r.paths))
	}
	for _, e := range []error{r.classicErr, r.p2pErr, r.memoryErr, r.faultsErr, r.pathsErr, r.webErr, r.udpErr} {
		if e != nil {
			fmt.Fprintf(&b, " FAILED: %v\n", e)
		}
	}
	return b.String()
}
