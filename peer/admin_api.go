package peer

import (
	"net"
	"sort"
	"strconv"
	"time"
)

// Read-only snapshots for the client's admin endpoint and `xp2p status`.

// VisitorInfo describes one running visitor.
type VisitorInfo struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Service  string `json:"service"`
	User     string `json:"serverUser,omitempty"`
	Bind     string `json:"bind"`
	Protocol string `json:"protocol"`
	// Path is the best path of its sessions: "direct", "relay", or "" without a session.
	Path      string `json:"path"`
	Sessions  int    `json:"sessions"`
	Conns     int64  `json:"conns"`
	BytesIn   int64  `json:"bytesIn"`  // from the provider
	BytesOut  int64  `json:"bytesOut"` // to the provider
	LastError string `json:"lastError,omitempty"`
}

// Visitors lists the client's visitors.
func (c *Client) Visitors() []VisitorInfo {
	vs := c.visitorList()
	out := make([]VisitorInfo, 0, len(vs))
	for _, v := range vs {
		protocol := v.cfg.Protocol
		if protocol == "" {
			protocol = "tcp"
		}
		vi := VisitorInfo{
			Name:     v.cfg.Name,
			Type:     v.cfg.Type,
			Service:  v.cfg.ServerName,
			User:     v.cfg.ServerUser,
			Bind:     net.JoinHostPort(v.cfg.BindAddr, strconv.Itoa(v.cfg.BindPort)),
			Protocol: protocol,
			Conns:    v.conns.Load(),
			BytesIn:  v.bytesIn.Load(),
			BytesOut: v.bytesOut.Load(),
		}
		if e := v.lastErr.Load(); e != nil {
			vi.LastError = *e
		}
		v.mu.Lock()
		for _, s := range v.sess {
			if !s.alive() {
				continue
			}
			vi.Sessions++
			if path, _ := s.Path(); path == PathDirect || vi.Path == "" {
				vi.Path = path
			}
		}
		v.mu.Unlock()
		out = append(out, vi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ServerInfo describes the client's session to one of its servers.
type ServerInfo struct {
	Addr      string        `json:"addr"`
	Connected bool          `json:"connected"`
	Transport string        `json:"transport,omitempty"`
	Observed  string        `json:"observed,omitempty"` // this client's address as the server sees it
	Since     time.Time     `json:"since,omitzero"`
	RTT       time.Duration `json:"rtt,omitempty"`
	// Datagrams counts the udp proxies' datagrams carried in QUIC DATAGRAM frames of the
	// session (sent and received).
	Datagrams int64 `json:"datagrams,omitempty"`
}

// Servers lists the client's servers and whether it is connected to each.
func (c *Client) Servers() []ServerInfo {
	out := make([]ServerInfo, 0, len(c.links))
	for _, l := range c.links {
		si := ServerInfo{Addr: l.ep.Addr}
		if ctl := l.ctl.Load(); ctl != nil {
			si.Connected = true
			si.Transport = ctl.sess.Transport()
			si.Observed = ctl.observed
			si.Since = ctl.since
			si.RTT = ctl.sess.RTT()
			if ctl.dgrams != nil {
				sent, received, _ := ctl.dgrams.Counts()
				si.Datagrams = sent + received
			}
		}
		out = append(out, si)
	}
	return out
}
