package relay

import (
	"container/list"
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

	// Guarded by the book's lock: registrations holding the name, the identity that last
	// registered it, and its place among its owner's offline names (nil while live).
	live    int
	owner   string
	offline *list.Element
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
	// Owner is the identity that registered the name last (user@source, see StatsBook).
	Owner string `json:"-"`
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
		Owner:      s.owner,
	}
}

// StatsBook holds Stats by proxy name. A name is live while some client has it registered
// (Acquire … Release) and offline after, its figures kept for when it comes back. Live names
// are never forgotten (the server's per-client limits bound them); offline ones are, so that
// clients churning through names cost bounded memory: each owner (the identity that last
// registered the name) keeps at most MaxOfflinePerOwner, the book at most MaxOffline, and past
// that the owner with the most offline names loses its oldest first. A client that registers
// thousands of names and drops them thus pushes out its own history, not other clients'.
type StatsBook struct {
	MaxOffline         int
	MaxOfflinePerOwner int
	// OnForget, if set, is called (outside the book's lock) with each name the book forgot.
	OnForget func(name string)

	mu      sync.Mutex
	stats   map[string]*Stats
	offline map[string]*list.List // owner → its offline Stats, the oldest first
	nOff    int
}

// NewStatsBook returns an empty book that keeps 10000 offline names, 1000 per owner.
func NewStatsBook() *StatsBook {
	return &StatsBook{MaxOffline: 10000, MaxOfflinePerOwner: 1000, stats: map[string]*Stats{}, offline: map[string]*list.List{}}
}

// Acquire returns the Stats of name, registered by owner, creating them; the name is live until
// as many Release calls.
func (b *StatsBook) Acquire(name, typ, owner string) *Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.stats[name]
	if !ok {
		s = &Stats{Name: name}
		b.stats[name] = s
	}
	if s.offline != nil {
		b.unlistLocked(s)
	}
	s.live++
	s.owner = owner
	s.Type = typ
	s.lastSeen.Store(time.Now().UnixNano())
	return s
}

// Release ends one registration of s; the last one makes it offline.
func (b *StatsBook) Release(s *Stats) { b.release(s, false) }

// Discard ends a registration that failed (the proxy was never published): like Release, but a
// name without any figures is forgotten at once instead of kept offline.
func (b *StatsBook) Discard(s *Stats) { b.release(s, true) }

func (b *StatsBook) release(s *Stats, failed bool) {
	b.mu.Lock()
	if s.live--; s.live > 0 || s.offline != nil || b.stats[s.Name] != s {
		s.live = max(s.live, 0)
		b.mu.Unlock()
		return
	}
	if failed && s.bytesIn.Load() == 0 && s.bytesOut.Load() == 0 && s.totalConns.Load() == 0 {
		delete(b.stats, s.Name)
		b.mu.Unlock()
		if b.OnForget != nil {
			b.OnForget(s.Name)
		}
		return
	}
	l := b.offline[s.owner]
	if l == nil {
		l = list.New()
		b.offline[s.owner] = l
	}
	s.offline = l.PushBack(s)
	b.nOff++
	var forgot []string
	for l.Len() > b.MaxOfflinePerOwner {
		forgot = append(forgot, b.forgetLocked(l.Front().Value.(*Stats)))
	}
	for b.nOff > b.MaxOffline {
		forgot = append(forgot, b.forgetLocked(b.largestOwnerLocked().Front().Value.(*Stats)))
	}
	b.mu.Unlock()
	if b.OnForget != nil {
		for _, name := range forgot {
			b.OnForget(name)
		}
	}
}

// largestOwnerLocked is the offline list of the owner with the most offline names.
func (b *StatsBook) largestOwnerLocked() *list.List {
	var largest *list.List
	for _, l := range b.offline {
		if largest == nil || l.Len() > largest.Len() {
			largest = l
		}
	}
	return largest
}

func (b *StatsBook) unlistLocked(s *Stats) {
	l := b.offline[s.owner]
	l.Remove(s.offline)
	s.offline = nil
	b.nOff--
	if l.Len() == 0 {
		delete(b.offline, s.owner)
	}
}

func (b *StatsBook) forgetLocked(s *Stats) string {
	b.unlistLocked(s)
	delete(b.stats, s.Name)
	return s.Name
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

// Len returns how many names the book holds, and how many of them are offline.
func (b *StatsBook) Len() (all, offline int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.stats), b.nOff
}
