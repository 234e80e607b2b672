package relay

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the traffic figures of one proxy name. They live in a StatsBook, not in the proxy, so
// that they survive the client reconnecting and registering the proxy again.
type Stats struct {
	Name string
	Type string

	port       atomic.Int64
	bytesIn    atomic.Int64 // from users towards the client
	bytesOut   atomic.Int64 // from the client towards users
	curConns   atomic.Int64
	totalConns atomic.Int64
	lastSeen   atomic.Int64 // unix nanos of the last registration or connection
}

// StatsSnapshot is a copy of Stats at one moment.
type StatsSnapshot struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	RemotePort int    `json:"remotePort,omitempty"`
	BytesIn    int64  `json:"bytesIn"`
	BytesOut   int64  `json:"bytesOut"`
	CurConns   int64  `json:"curConns"`
	TotalConns int64  `json:"totalConns"`
}

// SetPort records where the proxy is published (0: on a shared port).
func (s *Stats) SetPort(p int) {
	s.port.Store(int64(p))
	s.lastSeen.Store(time.Now().UnixNano())
}

// ConnOpened counts a user connection that opened.
func (s *Stats) ConnOpened() {
	s.curConns.Add(1)
	s.totalConns.Add(1)
	s.lastSeen.Store(time.Now().UnixNano())
}

// ConnClosed counts a user connection that closed.
func (s *Stats) ConnClosed() { s.curConns.Add(-1) }

// AddBytes records traffic counted elsewhere (e.g. reported by P2P peers).
func (s *Stats) AddBytes(in, out int64) {
	s.bytesIn.Add(in)
	s.bytesOut.Add(out)
}

// Snapshot copies the figures.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		Name:       s.Name,
		Type:       s.Type,
		RemotePort: int(s.port.Load()),
		BytesIn:    s.bytesIn.Load(),
		BytesOut:   s.bytesOut.Load(),
		CurConns:   s.curConns.Load(),
		TotalConns: s.totalConns.Load(),
	}
}

// StatsBook holds Stats by proxy name, for at most MaxNames names (the least recently seen are
// dropped first), so that clients churning through names cost bounded memory.
type StatsBook struct {
	MaxNames int

	mu    sync.Mutex
	stats map[string]*Stats
}

// NewStatsBook returns an empty book for up to 10000 names.
func NewStatsBook() *StatsBook {
	return &StatsBook{MaxNames: 10000, stats: map[string]*Stats{}}
}

// Get returns the Stats of name, creating them.
func (b *StatsBook) Get(name, typ string) *Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.stats[name]
	if !ok {
		if len(b.stats) >= b.MaxNames {
			b.evictLocked()
		}
		s = &Stats{Name: name}
		b.stats[name] = s
	}
	s.Type = typ
	s.lastSeen.Store(time.Now().UnixNano())
	return s
}

// Snapshot returns every name's figures, sorted by name.
func (b *StatsBook) Snapshot() []StatsSnapshot {
	b.mu.Lock()
	out := make([]StatsSnapshot, 0, len(b.stats))
	for _, s := range b.stats {
		out = append(out, s.Snapshot())
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (b *StatsBook) evictLocked() {
	var oldest string
	var oldestT int64
	for n, s := range b.stats {
		if s.curConns.Load() > 0 {
			continue
		}
		if t := s.lastSeen.Load(); oldest == "" || t < oldestT {
			oldest, oldestT = n, t
		}
	}
	if oldest != "" {
		delete(b.stats, oldest)
	}
}
