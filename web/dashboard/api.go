package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/rendezvous"
	"github.com/xp2p/xp2p/web"
)

// The JSON API. Every figure the pages show comes from here; README.md documents each endpoint.
// Byte counts are integers, rates bytes per second, durations milliseconds (fields ending in Ms)
// or seconds (ending in Seconds), times RFC 3339.

// Overview answers GET /api/overview.
type Overview struct {
	Version       string        `json:"version"`
	Started       time.Time     `json:"started"`
	UptimeSeconds float64       `json:"uptimeSeconds"`
	ClientsOnline int           `json:"clientsOnline"`
	Proxies       ProxyCounts   `json:"proxies"`
	Connections   int64         `json:"connections"`
	Traffic       TrafficTotals `json:"traffic"`
	P2P           P2PTotals     `json:"p2p"`
	AuthFailures  AuthFailures  `json:"authFailures"`
}

// ProxyCounts counts proxies by state and (online ones) by type.
type ProxyCounts struct {
	Online  int            `json:"online"`
	Offline int            `json:"offline"`
	ByType  map[string]int `json:"byType"`
}

// TrafficTotals are the server's traffic figures: classic proxies in (users → clients) and out,
// and P2P (both directions of xp2p services, as their clients report).
type TrafficTotals struct {
	In       int64   `json:"in"`
	Out      int64   `json:"out"`
	P2P      int64   `json:"p2p"`
	TodayIn  int64   `json:"todayIn"`
	TodayOut int64   `json:"todayOut"`
	TodayP2P int64   `json:"todayP2p"`
	RateIn   float64 `json:"rateIn"`
	RateOut  float64 `json:"rateOut"`
	RateP2P  float64 `json:"rateP2p"`
}

// P2PTotals are the P2P sessions' counters.
type P2PTotals struct {
	Active            int64   `json:"active"`
	Attempts          int64   `json:"attempts"`
	Direct            int64   `json:"direct"`
	Relayed           int64   `json:"relayed"`
	Failed            int64   `json:"failed"`
	DirectRatio       float64 `json:"directRatio"` // direct / decided sessions (0..1)
	TimeToDirectP50Ms float64 `json:"timeToDirectP50Ms"`
	TimeToDirectP90Ms float64 `json:"timeToDirectP90Ms"`
	TimeToReadyP50Ms  float64 `json:"timeToReadyP50Ms"`
}

// AuthFailures counts wrong credentials: clients' tokens and dashboard logins.
type AuthFailures struct {
	Clients   int64 `json:"clients"`
	Dashboard int64 `json:"dashboard"`
}

// Client is one entry of GET /api/clients.
type Client struct {
	ID            string    `json:"id"`
	RunID         string    `json:"runId"`
	Hostname      string    `json:"hostname"`
	User          string    `json:"user"`
	Version       string    `json:"version"`
	Address       string    `json:"address"`
	Transport     string    `json:"transport"`
	NAT           string    `json:"nat"`
	PrivateAddrs  []string  `json:"privateAddrs"`
	Since         time.Time `json:"since"`
	OnlineSeconds float64   `json:"onlineSeconds"`
	Proxies       []string  `json:"proxies"`
	Sessions      int       `json:"sessions"`
}

// Proxy is one entry of GET /api/proxies.
type Proxy struct {
	Name             string  `json:"name"`
	Type             string  `json:"type"`
	Status           string  `json:"status"` // "online" or "offline"
	RemotePort       int     `json:"remotePort,omitempty"`
	Owners           []Owner `json:"owners"`
	Connections      int64   `json:"connections"`
	TotalConnections int64   `json:"totalConnections"`
	BytesIn          int64   `json:"bytesIn"`
	BytesOut         int64   `json:"bytesOut"`
	TodayIn          int64   `json:"todayIn"`
	TodayOut         int64   `json:"todayOut"`
	RateIn           float64 `json:"rateIn"`
	RateOut          float64 `json:"rateOut"`
	// P2P is set for xp2p services.
	P2P *ProxyP2P `json:"p2p,omitempty"`
}

// ProxyP2P is the P2P traffic of an xp2p service (both directions, as its clients report).
type ProxyP2P struct {
	Sessions    int     `json:"sessions"`
	RelayBytes  int64   `json:"relayBytes"`
	DirectBytes int64   `json:"directBytes"`
	Today       int64   `json:"today"`
	Rate        float64 `json:"rate"`
}

// Owner is a client that registered a proxy.
type Owner struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	Address  string `json:"address"`
}

// Session is one P2P session of GET /api/sessions.
type Session struct {
	ID               string      `json:"id"`
	Service          string      `json:"service"`
	Path             string      `json:"path"` // direct, relay or connecting
	Created          time.Time   `json:"created"`
	Ended            *time.Time  `json:"ended,omitempty"`
	AgeSeconds       float64     `json:"ageSeconds"`
	RTTMs            float64     `json:"rttMs"`
	TimeToReadyMs    float64     `json:"timeToReadyMs"`
	TimeToDirectMs   float64     `json:"timeToDirectMs"`
	RelayBytes       int64       `json:"relayBytes"`
	DirectBytes      int64       `json:"directBytes"`
	ServerRelayBytes int64       `json:"serverRelayBytes"`
	Visitor          SessionSide `json:"visitor"`
	Provider         SessionSide `json:"provider"`
}

// SessionSide is one side of a P2P session.
type SessionSide struct {
	ClientID string `json:"clientId"`
	Hostname string `json:"hostname"`
	Public   string `json:"public"`
	Addr     string `json:"addr"`
	NAT      string `json:"nat"`
	Path     string `json:"path"`
	Reported bool   `json:"reported"`
}

// Sessions answers GET /api/sessions.
type Sessions struct {
	Active []Session `json:"active"`
	Ended  []Session `json:"ended"`
}

// ms converts a duration to fractional milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *Server) today(now time.Time) time.Time {
	y, m, d := now.In(s.opts.Location).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, s.opts.Location)
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	if _, err := web.Query(r); err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap := s.src.Snapshot()
	web.WriteJSON(w, http.StatusOK, s.buildOverview(snap))
}

func (s *Server) buildOverview(snap *rendezvous.Snapshot) Overview {
	now := snap.Taken
	o := Overview{
		Version:       snap.Version,
		Started:       snap.Started,
		UptimeSeconds: now.Sub(snap.Started).Seconds(),
		ClientsOnline: len(snap.Clients),
		Proxies:       ProxyCounts{ByType: map[string]int{}},
		AuthFailures:  AuthFailures{Clients: snap.Counters.AuthFailures, Dashboard: s.guard.Failures.Load()},
	}
	if snap.Started.IsZero() {
		o.UptimeSeconds = 0
	}
	for _, t := range proxyTypes {
		o.Proxies.ByType[t] = 0
	}
	for i := range snap.Proxies {
		p := &snap.Proxies[i]
		in, out, p2p := s.hist.Unrecorded(p)
		o.Traffic.TodayIn += in
		o.Traffic.TodayOut += out
		o.Traffic.TodayP2P += p2p
		if p.Online {
			o.Proxies.Online++
			o.Proxies.ByType[p.Type]++
		} else {
			o.Proxies.Offline++
		}
		o.Connections += p.CurConns
		o.Traffic.In += p.BytesIn
		o.Traffic.Out += p.BytesOut
		o.Traffic.P2P += p.RelayBytes + p.DirectBytes
	}
	in, out, p2p := s.hist.Since("", s.today(now))
	o.Traffic.TodayIn += in
	o.Traffic.TodayOut += out
	o.Traffic.TodayP2P += p2p
	o.Traffic.RateIn, o.Traffic.RateOut, o.Traffic.RateP2P = s.hist.Rate("")
	c := snap.Counters
	o.P2P = P2PTotals{
		Active: c.P2PActive, Attempts: c.P2PPaired, Direct: c.P2PDirect, Relayed: c.P2PRelayed, Failed: c.P2PFailed,
		TimeToDirectP50Ms: ms(snap.TimeToDirect.Quantile(0.5)),
		TimeToDirectP90Ms: ms(snap.TimeToDirect.Quantile(0.9)),
		TimeToReadyP50Ms:  ms(snap.TimeToReady.Quantile(0.5)),
	}
	if decided := c.P2PDirect + c.P2PRelayed + c.P2PFailed; decided > 0 {
		o.P2P.DirectRatio = float64(c.P2PDirect) / float64(decided)
	}
	return o
}

func (s *Server) clients(w http.ResponseWriter, r *http.Request) {
	if _, err := web.Query(r); err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap := s.src.Snapshot()
	out := make([]Client, 0, len(snap.Clients))
	for _, c := range snap.Clients {
		out = append(out, Client{
			ID: c.ID, RunID: c.RunID, Hostname: c.Hostname, User: c.User, Version: c.Version,
			Address: c.Addr, Transport: c.Transport, NAT: c.NAT, PrivateAddrs: nonNil(c.Private),
			Since: c.Since, OnlineSeconds: snap.Taken.Sub(c.Since).Seconds(), Proxies: nonNil(c.Proxies),
			Sessions: c.Sessions,
		})
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// proxyTypes are the kinds proxies are counted and filtered by.
var proxyTypes = wire.ProxyKindNames()

func (s *Server) proxies(w http.ResponseWriter, r *http.Request) {
	q, err := web.Query(r, "type", "status")
	if err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	typ, status := q.Get("type"), q.Get("status")
	if q.Has("type") && !slices.Contains(proxyTypes, typ) {
		web.WriteError(w, http.StatusBadRequest, fmt.Sprintf("type %q: use %s or %s", typ, strings.Join(proxyTypes[:len(proxyTypes)-1], ", "), proxyTypes[len(proxyTypes)-1]))
		return
	}
	if q.Has("status") && status != "online" && status != "offline" {
		web.WriteError(w, http.StatusBadRequest, fmt.Sprintf("status %q: use online or offline", status))
		return
	}
	snap := s.src.Snapshot()
	out := []Proxy{}
	for _, p := range s.buildProxies(snap) {
		if (typ == "" || p.Type == typ) && (status == "" || p.Status == status) {
			out = append(out, p)
		}
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) buildProxies(snap *rendezvous.Snapshot) []Proxy {
	clients := map[string]rendezvous.ClientSnapshot{}
	for _, c := range snap.Clients {
		clients[c.ID] = c
	}
	today := s.today(snap.Taken)
	out := make([]Proxy, 0, len(snap.Proxies))
	for i := range snap.Proxies {
		p := &snap.Proxies[i]
		px := Proxy{
			Name: p.Name, Type: p.Type, Status: "offline", RemotePort: p.RemotePort, Owners: []Owner{},
			Connections: p.CurConns, TotalConnections: p.TotalConns, BytesIn: p.BytesIn, BytesOut: p.BytesOut,
		}
		if p.Online {
			px.Status = "online"
		}
		for _, id := range p.Owners {
			c := clients[id]
			px.Owners = append(px.Owners, Owner{ID: id, Hostname: c.Hostname, Address: c.Addr})
		}
		var p2pToday int64
		px.TodayIn, px.TodayOut, p2pToday = s.hist.Since(p.Name, today)
		uin, uout, up2p := s.hist.Unrecorded(p)
		px.TodayIn += uin
		px.TodayOut += uout
		p2pToday += up2p
		var p2pRate float64
		px.RateIn, px.RateOut, p2pRate = s.hist.Rate(p.Name)
		if wire.IsP2PKind(p.Type) {
			px.RemotePort = 0
			px.P2P = &ProxyP2P{Sessions: p.Sessions, RelayBytes: p.RelayBytes, DirectBytes: p.DirectBytes, Today: p2pToday, Rate: p2pRate}
		}
		out = append(out, px)
	}
	return out
}

func (s *Server) findProxy(w http.ResponseWriter, r *http.Request) (*rendezvous.Snapshot, *Proxy) {
	name := r.PathValue("name")
	snap := s.src.Snapshot()
	for _, p := range s.buildProxies(snap) {
		if p.Name == name {
			return snap, &p
		}
	}
	web.WriteError(w, http.StatusNotFound, fmt.Sprintf("no proxy named %q", name))
	return nil, nil
}

func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	if _, err := web.Query(r); err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, p := s.findProxy(w, r); p != nil {
		web.WriteJSON(w, http.StatusOK, p)
	}
}

// parseRange reads ?range= (default def): a Go duration from one minute to a day, such as 15m,
// 1h, 6h or 24h.
func parseRange(q url.Values, def string) (time.Duration, string, error) {
	v := q.Get("range")
	if v == "" {
		v = def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Minute || d > 24*time.Hour {
		return 0, "", fmt.Errorf("range %q: give a duration from 1m to 24h, such as 15m, 1h, 6h or 24h", v)
	}
	return d, v, nil
}

func (s *Server) proxyTraffic(w http.ResponseWriter, r *http.Request) {
	q, err := web.Query(r, "range")
	if err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	d, label, err := parseRange(q, "1h")
	if err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap, p := s.findProxy(w, r)
	if p == nil {
		return
	}
	series := s.hist.Buckets(p.Name, d, snap.Taken)
	series.Range = label
	web.WriteJSON(w, http.StatusOK, series)
}

// traffic answers GET /api/traffic: the server's total, per tick up to an hour, per bucket
// beyond.
func (s *Server) traffic(w http.ResponseWriter, r *http.Request) {
	q, err := web.Query(r, "range")
	if err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	d, label, err := parseRange(q, "15m")
	if err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := time.Now()
	var series Series
	if d <= time.Duration(s.hist.finePoints)*s.opts.Tick {
		series = s.hist.Fine(d, now)
	} else {
		series = s.hist.Buckets("", d, now)
	}
	series.Range = label
	web.WriteJSON(w, http.StatusOK, series)
}

func (s *Server) sessions(w http.ResponseWriter, r *http.Request) {
	if _, err := web.Query(r); err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap := s.src.Snapshot()
	out := Sessions{Active: []Session{}, Ended: []Session{}}
	for _, ss := range snap.Sessions {
		out.Active = append(out.Active, session(ss, snap.Taken))
	}
	for _, ss := range snap.Ended {
		out.Ended = append(out.Ended, session(ss, snap.Taken))
	}
	sort.SliceStable(out.Active, func(i, j int) bool { return out.Active[i].Created.After(out.Active[j].Created) })
	web.WriteJSON(w, http.StatusOK, out)
}

func session(ss rendezvous.SessionSnapshot, now time.Time) Session {
	out := Session{
		ID: ss.ID, Service: ss.Service, Path: ss.Path, Created: ss.Created,
		AgeSeconds: now.Sub(ss.Created).Seconds(), RTTMs: ms(ss.RTT),
		TimeToReadyMs: ms(ss.TimeToReady), TimeToDirectMs: ms(ss.TimeToDirect),
		RelayBytes: ss.RelayBytes, DirectBytes: ss.DirectBytes, ServerRelayBytes: ss.ServerRelayBytes,
		Visitor: side(ss.Visitor), Provider: side(ss.Provider),
	}
	if !ss.Ended.IsZero() {
		e := ss.Ended
		out.Ended = &e
		out.AgeSeconds = e.Sub(ss.Created).Seconds()
	}
	return out
}

func side(s rendezvous.SessionSide) SessionSide {
	return SessionSide{ClientID: s.ClientID, Hostname: s.Hostname, Public: s.Public, Addr: s.Addr, NAT: s.NAT, Path: s.Path, Reported: s.Reported}
}
