package dashboard

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/rendezvous"
)

// collector exposes the server's figures to Prometheus, read from one snapshot per scrape.
type collector struct{ s *Server }

var (
	descInfo         = prometheus.NewDesc("xp2p_server_info", "The server's version (value 1).", []string{"version"}, nil)
	descStart        = prometheus.NewDesc("xp2p_server_start_time_seconds", "When the server started (unix seconds).", nil, nil)
	descClients      = prometheus.NewDesc("xp2p_clients_online", "Clients logged in.", nil, nil)
	descProxies      = prometheus.NewDesc("xp2p_proxies", "Proxies and xp2p services known to the server, by type and status (online or offline).", []string{"type", "status"}, nil)
	descConns        = prometheus.NewDesc("xp2p_proxy_connections", "Open user connections of a tcp proxy (udp: active flows).", []string{"proxy", "type"}, nil)
	descConnsTotal   = prometheus.NewDesc("xp2p_proxy_connections_total", "User connections a proxy has carried.", []string{"proxy", "type"}, nil)
	descBytes        = prometheus.NewDesc("xp2p_proxy_traffic_bytes_total", "Bytes a tcp or udp proxy carried: in from users towards the client, out from the client towards users.", []string{"proxy", "type", "direction"}, nil)
	descP2PBytes     = prometheus.NewDesc("xp2p_p2p_traffic_bytes_total", "Bytes of an xp2p service's P2P sessions (both directions, QUIC packets) by path, as its clients report them.", []string{"service", "path"}, nil)
	descP2PActive    = prometheus.NewDesc("xp2p_p2p_sessions_active", "P2P sessions paired and not ended.", nil, nil)
	descP2PAttempts  = prometheus.NewDesc("xp2p_p2p_attempts_total", "P2P sessions the server paired.", nil, nil)
	descP2POutcomes  = prometheus.NewDesc("xp2p_p2p_outcomes_total", "P2P sessions by outcome: direct (a direct path was found), relay (ended having used only the relay), failed (ended before it was usable).", []string{"path"}, nil)
	descTimeToDirect = prometheus.NewDesc("xp2p_p2p_time_to_direct_seconds", "Time from a P2P session's creation to its first direct path (hole punching), as the clients report it.", nil, nil)
	descTimeToReady  = prometheus.NewDesc("xp2p_p2p_time_to_ready_seconds", "Time from a visitor's request to the first usable byte of its P2P session (relayed or direct).", nil, nil)
	descAuthFailures = prometheus.NewDesc("xp2p_auth_failures_total", "Wrong credentials: endpoint=control (client logins with a wrong auth.token) or dashboard.", []string{"endpoint"}, nil)
	descLimited      = prometheus.NewDesc("xp2p_dashboard_logins_limited_total", "Dashboard requests refused because their address failed to log in too often.", nil, nil)
	descHistory      = prometheus.NewDesc("xp2p_dashboard_history_proxies", "Proxies the dashboard keeps a traffic history for.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descStart, descClients, descProxies, descConns, descConnsTotal,
		descBytes, descP2PBytes, descP2PActive, descP2PAttempts, descP2POutcomes, descTimeToDirect,
		descTimeToReady, descAuthFailures, descLimited, descHistory} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	snap := s.src.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descInfo, 1, snap.Version)
	if !snap.Started.IsZero() {
		gauge(descStart, float64(snap.Started.UnixNano())/1e9)
	}
	gauge(descClients, float64(len(snap.Clients)))

	type key struct{ typ, status string }
	count := map[key]int{}
	for _, t := range proxyTypes {
		count[key{t, "online"}], count[key{t, "offline"}] = 0, 0
	}
	for _, p := range snap.Proxies {
		status := "offline"
		if p.Online {
			status = "online"
		}
		count[key{p.Type, status}]++
		if wire.IsP2PKind(p.Type) {
			counter(descP2PBytes, float64(p.RelayBytes), p.Name, "relay")
			counter(descP2PBytes, float64(p.DirectBytes), p.Name, "direct")
			continue
		}
		gauge(descConns, float64(p.CurConns), p.Name, p.Type)
		counter(descConnsTotal, float64(p.TotalConns), p.Name, p.Type)
		counter(descBytes, float64(p.BytesIn), p.Name, p.Type, "in")
		counter(descBytes, float64(p.BytesOut), p.Name, p.Type, "out")
	}
	for k, n := range count {
		gauge(descProxies, float64(n), k.typ, k.status)
	}

	ct := snap.Counters
	gauge(descP2PActive, float64(ct.P2PActive))
	counter(descP2PAttempts, float64(ct.P2PPaired))
	counter(descP2POutcomes, float64(ct.P2PDirect), "direct")
	counter(descP2POutcomes, float64(ct.P2PRelayed), "relay")
	counter(descP2POutcomes, float64(ct.P2PFailed), "failed")
	ch <- histogram(descTimeToDirect, snap.TimeToDirect)
	ch <- histogram(descTimeToReady, snap.TimeToReady)
	counter(descAuthFailures, float64(ct.AuthFailures), "control")
	counter(descAuthFailures, float64(s.guard.Failures.Load()), "dashboard")
	counter(descLimited, float64(s.guard.Limited.Load()))
	gauge(descHistory, float64(s.hist.Proxies()))
}

// histogram converts a rendezvous histogram (per-bucket counts) into Prometheus's cumulative
// buckets, in seconds.
func histogram(d *prometheus.Desc, h rendezvous.HistogramSnapshot) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += uint64(h.Counts[i])
		buckets[b.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(d, uint64(h.Count), h.Sum.Seconds(), buckets)
}
