package rendezvous

import (
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/internal/wire"
)

// Events counts what happens on the server, for logs, the demo and the dashboard. It also keeps
// what clients report about their P2P sessions (path, RTT, timings, bytes): the server cannot see
// traffic on direct paths itself.
type Events struct {
	AuthFailures  atomic.Int64
	ClientsOnline atomic.Int64
	P2PPaired     atomic.Int64
	P2PActive     atomic.Int64

	// Outcomes of P2P sessions. A session counts as direct the moment a side reports a direct
	// path; one that ends without ever going direct counts as relayed if it became usable, as
	// failed if it never did. Paired − (direct + relayed + failed) are still undecided.
	P2PDirect  atomic.Int64
	P2PRelayed atomic.Int64
	P2PFailed  atomic.Int64

	// TimeToDirect is the time from a session's creation to its first direct path, as reported
	// by the first side that reports one; TimeToReady the visitor's time from its request to the
	// first usable byte.
	TimeToDirect Histogram
	TimeToReady  Histogram

	mu       sync.Mutex
	sessions map[string]*sessionReport // by session id, paired sessions only
	services map[string]*ServiceTraffic
	ended    []SessionSnapshot // ring of recently ended sessions, oldest first
}

// Bounds of what Events remembers (its services' traffic goes with their StatsBook entries).
const maxEndedSessions = 50

// sessionReport is what the server knows of one paired session beyond the pairing itself.
type sessionReport struct {
	ps       *p2pSession
	visitor  wire.SessionTraffic // the latest reports of each side (zero: none yet)
	provider wire.SessionTraffic
	updated  time.Time

	// Bytes already added to the service's totals (the larger of the two sides' counts).
	countedRelay, countedDirect int64
	direct, ready               bool
	readyTimed                  bool // the visitor's time to ready is in the histogram
}

// ServiceTraffic is the P2P traffic of one xp2p service as its sessions' clients report it: the
// bytes of the peers' QUIC packets, both directions, on each path. It survives the provider
// reconnecting.
type ServiceTraffic struct {
	RelayBytes  atomic.Int64
	DirectBytes atomic.Int64
}

func newEvents() *Events {
	e := &Events{
		sessions: map[string]*sessionReport{},
		services: map[string]*ServiceTraffic{},
	}
	e.TimeToDirect.init()
	e.TimeToReady.init()
	return e
}

func (e *Events) authFailure()          { e.AuthFailures.Add(1) }
func (e *Events) clientOnline(*client)  { e.ClientsOnline.Add(1) }
func (e *Events) clientOffline(*client) { e.ClientsOnline.Add(-1) }

func (e *Events) p2pPaired(ps *p2pSession) {
	e.P2PPaired.Add(1)
	e.P2PActive.Add(1)
	e.mu.Lock()
	e.sessions[string(ps.id)] = &sessionReport{ps: ps}
	e.serviceLocked(ps.service)
	e.mu.Unlock()
}

func (e *Events) p2pEnded(ps *p2pSession) {
	e.P2PActive.Add(-1)
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.sessions[string(ps.id)]
	if r == nil {
		return
	}
	delete(e.sessions, string(ps.id))
	switch {
	case r.direct:
	case r.ready:
		e.P2PRelayed.Add(1)
	default:
		e.P2PFailed.Add(1)
	}
	snap := r.snapshot()
	snap.Ended = time.Now()
	if len(e.ended) >= maxEndedSessions {
		copy(e.ended, e.ended[1:])
		e.ended = e.ended[:len(e.ended)-1]
	}
	e.ended = append(e.ended, snap)
}

// traffic records a client's report. A client may only report on sessions it is a side of, in
// the role it has there; anything else is ignored.
func (e *Events) traffic(c *client, m *wire.Traffic) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, st := range m.Sessions {
		r := e.sessions[string(st.SessionID)]
		if r == nil {
			continue
		}
		switch {
		case st.Role == wire.RoleVisitor && r.ps.visitor == c:
			r.visitor = st
			if !r.readyTimed && st.ReadyMicros > 0 {
				r.ready, r.readyTimed = true, true
				e.TimeToReady.Observe(time.Duration(st.ReadyMicros) * time.Microsecond)
			}
		case st.Role == wire.RoleProvider && r.ps.provider == c:
			r.provider = st
			if st.ReadyMicros > 0 {
				r.ready = true
			}
		default:
			continue
		}
		r.updated = now
		if !r.direct && st.DirectMicros > 0 {
			r.direct = true
			e.P2PDirect.Add(1)
			e.TimeToDirect.Observe(time.Duration(st.DirectMicros) * time.Microsecond)
		}
		// Both sides count the same packets (each its sent and received); the larger count is
		// taken so that a side reporting late or not at all loses nothing.
		relay := max(r.visitor.RelayBytes, r.provider.RelayBytes)
		direct := max(r.visitor.DirectBytes, r.provider.DirectBytes)
		svc := e.serviceLocked(r.ps.service)
		if d := relay - r.countedRelay; d > 0 {
			svc.RelayBytes.Add(d)
			r.countedRelay = relay
		}
		if d := direct - r.countedDirect; d > 0 {
			svc.DirectBytes.Add(d)
			r.countedDirect = direct
		}
		if relay > 0 || direct > 0 {
			r.ready = true
		}
	}
}

// serviceLocked returns the traffic of a service, creating it. Services are forgotten with
// their figures in the server's StatsBook (forgetService), which keeps every online one.
func (e *Events) serviceLocked(name string) *ServiceTraffic {
	st := e.services[name]
	if st == nil {
		st = &ServiceTraffic{}
		e.services[name] = st
	}
	return st
}

// forgetService drops the P2P traffic of a service the StatsBook forgot.
func (e *Events) forgetService(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.services, name)
}

// ServiceTrafficSnapshot is a copy of one service's P2P traffic.
type ServiceTrafficSnapshot struct {
	RelayBytes  int64 `json:"relayBytes"`
	DirectBytes int64 `json:"directBytes"`
}

// ServiceTraffic returns the P2P traffic of every service seen.
func (e *Events) ServiceTraffic() map[string]ServiceTrafficSnapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]ServiceTrafficSnapshot, len(e.services))
	for n, s := range e.services {
		out[n] = ServiceTrafficSnapshot{RelayBytes: s.RelayBytes.Load(), DirectBytes: s.DirectBytes.Load()}
	}
	return out
}

// sessionReports returns the snapshots of the paired sessions, by session id.
func (e *Events) sessionReports() map[string]SessionSnapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]SessionSnapshot, len(e.sessions))
	for id, r := range e.sessions {
		out[id] = r.snapshot()
	}
	return out
}

// Ended returns the recently ended sessions, the latest first.
func (e *Events) Ended() []SessionSnapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]SessionSnapshot, len(e.ended))
	for i, s := range e.ended {
		out[len(e.ended)-1-i] = s
	}
	return out
}

// snapshot describes the session from the pairing and both sides' latest reports.
func (r *sessionReport) snapshot() SessionSnapshot {
	ps := r.ps
	s := SessionSnapshot{
		ID:       hex.EncodeToString(ps.id),
		Service:  ps.service,
		Created:  ps.created,
		Visitor:  sideOf(ps.visitor),
		Provider: sideOf(ps.provider),
		Path:     "connecting",
		Updated:  r.updated,
	}
	if ps.relay != nil {
		s.ServerRelayBytes = ps.relay.Visitor.Bytes.Load() + ps.relay.Provider.Bytes.Load()
	}
	v, p := r.visitor, r.provider
	s.Visitor.Reported, s.Provider.Reported = v.Role != "", p.Role != ""
	s.Visitor.Path, s.Provider.Path = v.Path, p.Path
	switch {
	case v.Path == "direct" || p.Path == "direct":
		s.Path = "direct"
	case v.Path != "" || p.Path != "":
		s.Path = "relay"
	}
	// On the direct path each side reports the other's address as it sees it.
	if s.Path == "direct" {
		s.Visitor.Addr, s.Provider.Addr = p.Remote, v.Remote
	}
	if s.Visitor.Addr == "" {
		s.Visitor.Addr = s.Visitor.Public
	}
	if s.Provider.Addr == "" {
		s.Provider.Addr = s.Provider.Public
	}
	s.RTT = time.Duration(v.RTTMicros) * time.Microsecond
	if s.RTT == 0 {
		s.RTT = time.Duration(p.RTTMicros) * time.Microsecond
	}
	s.TimeToReady = time.Duration(v.ReadyMicros) * time.Microsecond
	if s.TimeToReady == 0 {
		s.TimeToReady = time.Duration(p.ReadyMicros) * time.Microsecond
	}
	s.TimeToDirect = time.Duration(v.DirectMicros) * time.Microsecond
	if s.TimeToDirect == 0 {
		s.TimeToDirect = time.Duration(p.DirectMicros) * time.Microsecond
	}
	s.RelayBytes = max(v.RelayBytes, p.RelayBytes)
	s.DirectBytes = max(v.DirectBytes, p.DirectBytes)
	return s
}

func sideOf(c *client) SessionSide {
	return SessionSide{ClientID: c.id, Hostname: c.login.Hostname, User: c.login.User, Public: c.publicAddr(), NAT: c.natName()}
}

// Histogram counts durations in fixed buckets, without locks.
type Histogram struct {
	bounds []time.Duration
	counts []atomic.Int64 // counts[i]: observations <= bounds[i]; the last one is +Inf
	sum    atomic.Int64   // nanoseconds
	n      atomic.Int64
}

// HistogramBounds are the upper bounds of the buckets of Events' histograms.
var HistogramBounds = []time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

func (h *Histogram) init() {
	h.bounds = HistogramBounds
	h.counts = make([]atomic.Int64, len(HistogramBounds)+1)
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
	h.n.Add(1)
}

// HistogramSnapshot is a copy of a Histogram: Counts[i] observations fell at or under
// Bounds[i] and over the bound before (non-cumulative); Counts has one more entry, for larger
// ones.
type HistogramSnapshot struct {
	Bounds []time.Duration
	Counts []int64
	Count  int64
	Sum    time.Duration
}

// Snapshot copies the histogram.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: h.bounds, Counts: make([]int64, len(h.counts))}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// Quantile estimates the q-quantile (0..1) by linear interpolation inside its bucket; 0 without
// observations.
func (s HistogramSnapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	rank := q * float64(s.Count)
	var seen float64
	for i, c := range s.Counts {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			lo := time.Duration(0)
			if i > 0 {
				lo = s.Bounds[i-1]
			}
			if i >= len(s.Bounds) {
				return lo
			}
			frac := (rank - seen) / float64(c)
			return lo + time.Duration(frac*float64(s.Bounds[i]-lo))
		}
		seen += float64(c)
	}
	return s.Bounds[len(s.Bounds)-1]
}
