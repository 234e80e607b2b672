package peer

import (
	"net"
	"sort"
	"strings"
	"time"
)

// SessionInfo describes one P2P session for status pages and the demo.
type SessionInfo struct {
	ID           string        `json:"id"`
	Service      string        `json:"service"`
	Role         string        `json:"role"`
	Path         string        `json:"path"`
	Local        string        `json:"local"`
	Remote       string        `json:"remote,omitempty"`
	RTT          time.Duration `json:"rtt"`
	TimeToReady  time.Duration `json:"timeToReady"`
	TimeToDirect time.Duration `json:"timeToDirect,omitempty"`
	RelayBytes   int64         `json:"relayBytes"`
	DirectBytes  int64         `json:"directBytes"`
	Streams      int64         `json:"streams"`
	// Datagrams counts the udp datagrams carried in QUIC DATAGRAM frames (sent and received).
	Datagrams int64         `json:"datagrams,omitempty"`
	Age       time.Duration `json:"age"`
	// Pipelined: the provider was known (its certificate pinned by an earlier proof), so the
	// first stream left with the visitor's proof, a round trip early.
	Pipelined bool `json:"pipelined,omitempty"`
	// TCP is the peer's address on the direct TCP path, while one is up (new streams take it);
	// TCPStreams counts the streams that took it.
	TCP        string `json:"tcp,omitempty"`
	TCPStreams int64  `json:"tcpStreams,omitempty"`
}

// Sessions lists the client's P2P sessions.
func (c *Client) Sessions() []SessionInfo {
	c.p2p.mu.Lock()
	all := make([]*p2pSession, 0, len(c.p2p.byID))
	for _, s := range c.p2p.byID {
		all = append(all, s)
	}
	c.p2p.mu.Unlock()
	out := make([]SessionInfo, 0, len(all))
	for _, s := range all {
		path, remote := s.Path()
		info := SessionInfo{
			ID:           s.idHex[:8],
			Service:      s.service,
			Role:         s.role,
			Path:         path,
			Local:        localFor(c.UDPAddr(), remote),
			TimeToReady:  time.Duration(s.readyAt.Load()),
			TimeToDirect: s.punch.TimeToDirect(),
			RelayBytes:   s.path.relayBytes.Load(),
			DirectBytes:  s.path.directByte.Load(),
			Streams:      s.streams.Load(),
			Age:          time.Since(s.created),
			Pipelined:    s.pipelined.Load(),
			TCPStreams:   s.tcpStreams.Load(),
		}
		if tp := s.tcp.Load(); tp != nil {
			info.TCP = tp.remote.String()
		}
		if remote != nil {
			info.Remote = remote.String()
		}
		if conn := s.conn.Load(); conn != nil {
			info.RTT = conn.ConnectionStats().SmoothedRTT
		}
		if d := s.dgrams.Load(); d != nil {
			sent, received, _ := d.Counts()
			info.Datagrams = sent + received
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Service < out[j].Service || (out[i].Service == out[j].Service && out[i].ID < out[j].ID)
	})
	return out
}

// ProxyInfo describes one published proxy.
type ProxyInfo struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Local    string `json:"local"`
	Remote   string `json:"remote,omitempty"`
	Status   string `json:"status"`
	BytesIn  int64  `json:"bytesIn"`
	BytesOut int64  `json:"bytesOut"`
	Conns    int64  `json:"conns"`
}

// Proxies lists the client's proxies with the server's last word on each.
func (c *Client) Proxies() []ProxyInfo {
	proxies := c.set.Load().proxies
	out := make([]ProxyInfo, 0, len(proxies))
	for _, lp := range proxies {
		state, remotes := lp.summary(len(c.links))
		pi := ProxyInfo{
			Name:     lp.cfg.Name,
			Type:     lp.cfg.Type,
			Local:    lp.localAddr(),
			Status:   state,
			Remote:   strings.Join(remotes, ", "),
			BytesIn:  lp.bytesIn.Load(),
			BytesOut: lp.bytesOut.Load(),
			Conns:    lp.conns.Load(),
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// localFor is this host's address as its socket (bound to sock) carries traffic to remote: the
// socket's own address, or for a wildcard socket the source address that routing picks towards
// remote (a UDP connect sends nothing), so that a session shows the addresses that carry it,
// not 0.0.0.0.
func localFor(sock *net.UDPAddr, remote *net.UDPAddr) string {
	if sock == nil {
		return ""
	}
	ra := remote
	if ra == nil || (sock.IP != nil && !sock.IP.IsUnspecified()) {
		return sock.String()
	}
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		return sock.String()
	}
	defer c.Close()
	src := c.LocalAddr().(*net.UDPAddr)
	return (&net.UDPAddr{IP: src.IP, Port: sock.Port}).String()
}
