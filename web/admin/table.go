package admin

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteStatus prints a client's status as `xp2p status` shows it: its servers, then tables of
// its proxies, visitors and P2P sessions.
func WriteStatus(w io.Writer, st *Status) {
	up := time.Since(st.Started).Round(time.Second)
	fmt.Fprintf(w, "xp2p client %s, up %s", st.Version, up)
	if st.Config != "" {
		fmt.Fprintf(w, ", config %s", st.Config)
	}
	fmt.Fprintln(w)

	connected := 0
	for _, s := range st.Servers {
		if s.Connected {
			connected++
		}
	}
	nat := st.NAT
	if nat == "" {
		nat = "not measured yet"
	}
	fmt.Fprintf(w, "NAT: %s\n", nat)
	if pm := st.PortMapping; pm != nil {
		switch {
		case pm.Public != "":
			fmt.Fprintf(w, "port mapping: %s → %s by %s (router %s, lifetime %s)\n", pm.Public, pm.Local, pm.Protocol, pm.Router, pm.Lifetime)
		case pm.Error != "":
			fmt.Fprintf(w, "port mapping: none: %s\n", pm.Error)
		default:
			fmt.Fprintln(w, "port mapping: asking the router")
		}
	}
	fmt.Fprintf(w, "servers: %d of %d connected\n", connected, len(st.Servers))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range st.Servers {
		if !s.Connected {
			fmt.Fprintf(tw, "  %s\tnot connected\t\t\t\n", s.Addr)
			continue
		}
		fmt.Fprintf(tw, "  %s\tconnected over %s\trtt %s\tseen as %s\tsince %s\n", s.Addr, s.Transport, dur(s.RTT), dash(s.Observed), s.Since.Format("2006-01-02 15:04:05"))
	}
	tw.Flush()

	section(w, "PROXIES", len(st.Proxies))
	if len(st.Proxies) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTYPE\tLOCAL\tREMOTE\tSTATUS\tCONNS\tIN\tOUT")
		for _, p := range st.Proxies {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, p.Type, p.Local, dash(p.Remote), p.Status, p.Conns, Bytes(p.BytesIn), Bytes(p.BytesOut))
		}
		tw.Flush()
	}

	section(w, "VISITORS", len(st.Visitors))
	if len(st.Visitors) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTYPE\tSERVICE\tBIND\tPATH\tSESSIONS\tCONNS\tIN\tOUT\tLAST ERROR")
		for _, v := range st.Visitors {
			svc := v.Service
			if v.User != "" {
				svc = v.User + "." + svc
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\t%d\t%d\t%s\t%s\t%s\n", v.Name, v.Type, svc, v.Bind, v.Protocol, dash(v.Path), v.Sessions, v.Conns, Bytes(v.BytesIn), Bytes(v.BytesOut), dash(oneLine(v.LastError)))
		}
		tw.Flush()
	}

	section(w, "P2P SESSIONS", len(st.Sessions))
	if len(st.Sessions) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSERVICE\tROLE\tPATH\tREMOTE\tRTT\tREADY IN\tDIRECT IN\tRELAYED\tDIRECT\tSTREAMS\tAGE")
		for _, s := range st.Sessions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.ID, s.Service, s.Role, s.Path, dash(s.Remote), dur(s.RTT), dur(s.TimeToReady), dur(s.TimeToDirect), Bytes(s.RelayBytes), Bytes(s.DirectBytes), s.Streams, s.Age.Round(time.Second))
		}
		tw.Flush()
	}
}

func section(w io.Writer, title string, n int) {
	if n == 0 {
		fmt.Fprintf(w, "\n%s: none\n", title)
		return
	}
	fmt.Fprintf(w, "\n%s (%d)\n", title, n)
}

// WriteReload prints what a reload changed.
func WriteReload(w io.Writer, res *ReloadResponse) {
	r := res.Result
	if r == nil {
		fmt.Fprintln(w, "reloaded")
		return
	}
	if len(r.Added)+len(r.Removed)+len(r.Changed) == 0 {
		fmt.Fprintf(w, "reloaded: nothing changed (%d unchanged)\n", len(r.Unchanged))
		return
	}
	fmt.Fprintln(w, "reloaded:")
	for _, l := range []struct {
		what  string
		names []string
	}{{"added", r.Added}, {"removed", r.Removed}, {"changed", r.Changed}} {
		if len(l.names) > 0 {
			fmt.Fprintf(w, "  %-9s %s\n", l.what, strings.Join(l.names, ", "))
		}
	}
	fmt.Fprintf(w, "  unchanged %d (their connections stay open)\n", len(r.Unchanged))
}

// Bytes formats a byte count with a binary unit: 512 B, 1.5 KB, 23.4 MB.
func Bytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f %cB", v, units[i])
	case v < 100:
		return fmt.Sprintf("%.1f %cB", v, units[i])
	}
	return fmt.Sprintf("%.0f %cB", v, units[i])
}

func dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	}
	return d.Round(10 * time.Millisecond).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
