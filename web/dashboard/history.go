package dashboard

import (
	"container/heap"
	"slices"
	"sync"
	"time"

	"github.com/xp2p/xp2p/rendezvous"
)

// History keeps the traffic of the last day in memory, bounded: per proxy one bucket per
// BucketWidth (a minute) for Buckets buckets (1440: a day), stored sparsely (minutes without
// traffic cost nothing); and the server's total at every tick (5 s) for the last FinePoints
// ticks (an hour). The series of a proxy that is online are always kept (the server's
// per-client limits bound how many there are); past MaxProxies series, those of offline proxies
// are forgotten, from the owner with the most of them, the longest idle first: a client that
// churns through names loses its own history, not other clients'.
type History struct {
	width      time.Duration
	buckets    int
	maxProxies int
	finePoints int

	mu      sync.Mutex
	proxies map[string]*series
	total   series
	fine    []finePoint // ring, oldest first
	last    map[string]counts
	lastAt  time.Time
	firstAt time.Time // the first record: series start there, not before
}

// counts are cumulative byte counters of one proxy (or of all).
type counts struct{ in, out, p2p int64 }

func (c counts) add(o counts) counts { return counts{c.in + o.in, c.out + o.out, c.p2p + o.p2p} }

// bucket is the traffic of one BucketWidth.
type bucket struct {
	t int64 // start, unix nanoseconds
	counts
}

type series struct {
	buckets    []bucket // oldest first, only those with traffic, none older than the window
	rate       rates    // over the last tick
	lastActive time.Time
	// As of the last snapshot: whether the proxy is online, and who registered it last.
	online bool
	owner  string
}

type rates struct{ in, out, p2p float64 }

// finePoint is the server's total traffic over one tick.
type finePoint struct {
	t   time.Time // end of the tick
	dur time.Duration
	counts
}

// HistoryOptions size a History; zero values take the defaults.
type HistoryOptions struct {
	BucketWidth time.Duration // 1 min
	Buckets     int           // 1440
	MaxProxies  int           // 1000
	FinePoints  int           // 720
}

// NewHistory returns an empty history.
func NewHistory(o HistoryOptions) *History {
	if o.BucketWidth <= 0 {
		o.BucketWidth = time.Minute
	}
	if o.Buckets <= 0 {
		o.Buckets = 1440
	}
	if o.MaxProxies <= 0 {
		o.MaxProxies = 1000
	}
	if o.FinePoints <= 0 {
		o.FinePoints = 720
	}
	return &History{width: o.BucketWidth, buckets: o.Buckets, maxProxies: o.MaxProxies, finePoints: o.FinePoints,
		proxies: map[string]*series{}, last: map[string]counts{}}
}

func proxyCounts(p *rendezvous.ProxySnapshot) counts {
	return counts{in: p.BytesIn, out: p.BytesOut, p2p: p.RelayBytes + p.DirectBytes}
}

// Record adds what changed since the previous snapshot.
func (h *History) Record(snap *rendezvous.Snapshot, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	elapsed := now.Sub(h.lastAt)
	first := h.lastAt.IsZero()
	h.lastAt = now
	if first {
		h.firstAt = now
	}
	var total counts
	seen := make(map[string]counts, len(snap.Proxies))
	for i := range snap.Proxies {
		p := &snap.Proxies[i]
		cur := proxyCounts(p)
		seen[p.Name] = cur
		prev, ok := h.last[p.Name]
		// A counter that went backwards was forgotten and started again (the server's stats book
		// is bounded): all it has now is new.
		d := cur
		if ok {
			d = counts{delta(cur.in, prev.in), delta(cur.out, prev.out), delta(cur.p2p, prev.p2p)}
		}
		total = total.add(d)
		s := h.proxies[p.Name]
		if s == nil {
			if d == (counts{}) && !p.Online {
				continue
			}
			s = h.newSeriesLocked(p.Name, now)
		}
		s.online, s.owner = p.Online, p.Owner
		h.addLocked(s, d, now, elapsed, first)
	}
	h.last = seen
	h.addLocked(&h.total, total, now, elapsed, first)
	if !first {
		if len(h.fine) >= h.finePoints {
			copy(h.fine, h.fine[1:])
			h.fine = h.fine[:len(h.fine)-1]
		}
		h.fine = append(h.fine, finePoint{t: now, dur: elapsed, counts: total})
	}
	// Forget proxies whose day has passed without traffic and that the server forgot too.
	for name, s := range h.proxies {
		if _, ok := seen[name]; !ok {
			s.online = false
			h.pruneLocked(s, now)
			if len(s.buckets) == 0 {
				delete(h.proxies, name)
			}
		}
	}
	h.forgetOfflineLocked()
}

func delta(cur, prev int64) int64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

func (h *History) newSeriesLocked(name string, now time.Time) *series {
	s := &series{lastActive: now}
	h.proxies[name] = s
	return s
}

// forgetOfflineLocked forgets series of offline proxies while there are more than maxProxies
// series: each time the longest idle one of the owner with the most of them. Series of online
// proxies stay, however many.
func (h *History) forgetOfflineLocked() {
	excess := len(h.proxies) - h.maxProxies
	if excess <= 0 {
		return
	}
	byOwner := map[string]*ownerSeries{}
	for name, s := range h.proxies {
		if !s.online {
			g := byOwner[s.owner]
			if g == nil {
				g = &ownerSeries{}
				byOwner[s.owner] = g
			}
			g.names = append(g.names, name)
		}
	}
	groups := make(ownerHeap, 0, len(byOwner))
	for _, g := range byOwner {
		slices.SortFunc(g.names, func(a, b string) int { return h.proxies[a].lastActive.Compare(h.proxies[b].lastActive) })
		groups = append(groups, g)
	}
	heap.Init(&groups)
	for ; excess > 0 && len(groups) > 0; excess-- {
		g := groups[0]
		delete(h.proxies, g.names[0])
		if g.names = g.names[1:]; len(g.names) == 0 {
			heap.Pop(&groups)
		} else {
			heap.Fix(&groups, 0)
		}
	}
}

// ownerSeries are one owner's offline series, the longest idle first.
type ownerSeries struct{ names []string }

// ownerHeap puts the owner with the most offline series first.
type ownerHeap []*ownerSeries

func (o ownerHeap) Len() int           { return len(o) }
func (o ownerHeap) Less(i, j int) bool { return len(o[i].names) > len(o[j].names) }
func (o ownerHeap) Swap(i, j int)      { o[i], o[j] = o[j], o[i] }
func (o *ownerHeap) Push(x any)        { *o = append(*o, x.(*ownerSeries)) }
func (o *ownerHeap) Pop() any {
	old := *o
	x := old[len(old)-1]
	*o = old[:len(old)-1]
	return x
}

func (h *History) addLocked(s *series, d counts, now time.Time, elapsed time.Duration, first bool) {
	if !first && elapsed > 0 {
		sec := elapsed.Seconds()
		s.rate = rates{float64(d.in) / sec, float64(d.out) / sec, float64(d.p2p) / sec}
	}
	start := now.UnixNano() - now.UnixNano()%int64(h.width)
	h.pruneLocked(s, now)
	if d == (counts{}) {
		return
	}
	s.lastActive = now
	if n := len(s.buckets); n > 0 && s.buckets[n-1].t == start {
		s.buckets[n-1].counts = s.buckets[n-1].counts.add(d)
		return
	}
	s.buckets = append(s.buckets, bucket{t: start, counts: d})
}

// pruneLocked drops the buckets that left the window.
func (h *History) pruneLocked(s *series, now time.Time) {
	window := int64(h.width) * int64(h.buckets)
	drop := 0
	for drop < len(s.buckets) && s.buckets[drop].t <= now.UnixNano()-window {
		drop++
	}
	if drop > 0 {
		s.buckets = append(s.buckets[:0], s.buckets[drop:]...)
	}
}

// Known reports whether the history has a series for a proxy.
func (h *History) Known(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.proxies[name] != nil
}

// Since sums a proxy's traffic from t on ("" is the server's total), to bucket precision.
func (h *History) Since(name string, t time.Time) (in, out, p2p int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.seriesLocked(name)
	if s == nil {
		return 0, 0, 0
	}
	from := t.UnixNano() - t.UnixNano()%int64(h.width)
	var c counts
	for _, b := range s.buckets {
		if b.t >= from {
			c = c.add(b.counts)
		}
	}
	return c.in, c.out, c.p2p
}

// Unrecorded is the traffic of a proxy since the last tick, given its counters now: figures such
// as "today" add it so that they never lag behind the totals.
func (h *History) Unrecorded(p *rendezvous.ProxySnapshot) (in, out, p2p int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := proxyCounts(p)
	prev, ok := h.last[p.Name]
	if !ok {
		return cur.in, cur.out, cur.p2p
	}
	return delta(cur.in, prev.in), delta(cur.out, prev.out), delta(cur.p2p, prev.p2p)
}

// Rate is a proxy's traffic in bytes per second over the last tick ("" is the total).
func (h *History) Rate(name string) (in, out, p2p float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.seriesLocked(name)
	if s == nil {
		return 0, 0, 0
	}
	return s.rate.in, s.rate.out, s.rate.p2p
}

func (h *History) seriesLocked(name string) *series {
	if name == "" {
		return &h.total
	}
	return h.proxies[name]
}

// Series is traffic over time: at T[i] (unix milliseconds, the start of a step) the rates In[i],
// Out[i], P2P[i] in bytes per second. The last step may still be running: its rate is over
// the part that passed.
type Series struct {
	Range string    `json:"range"`
	Step  float64   `json:"step"`
	T     []int64   `json:"t"`
	In    []float64 `json:"in"`
	Out   []float64 `json:"out"`
	P2P   []float64 `json:"p2p"`
}

// Buckets returns a proxy's ("" the total's) series over the last d, one point per bucket.
func (h *History) Buckets(name string, d time.Duration, now time.Time) Series {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := int(d / h.width)
	n = max(1, min(n, h.buckets))
	w := int64(h.width)
	cur := now.UnixNano() - now.UnixNano()%w
	first := cur - int64(n-1)*w
	// Nothing was recorded before the history began: the series starts there.
	if !h.firstAt.IsZero() {
		if began := h.firstAt.UnixNano() - h.firstAt.UnixNano()%w; began > first {
			n -= int((began - first) / w)
			first = began
		}
	}
	out := Series{Step: h.width.Seconds(), T: make([]int64, n), In: make([]float64, n), Out: make([]float64, n), P2P: make([]float64, n)}
	for i := range n {
		out.T[i] = (first + int64(i)*w) / 1e6
	}
	s := h.seriesLocked(name)
	if s == nil {
		return out
	}
	for _, b := range s.buckets {
		if b.t < first || b.t > cur {
			continue
		}
		i := int((b.t - first) / w)
		// The rate is over the part of the bucket the history covered: the running bucket up
		// to the last tick, the first one from the history's start.
		from, to := max(b.t, h.firstAt.UnixNano()), min(b.t+w, h.lastAt.UnixNano())
		sec := max(1e-3, float64(to-from)/1e9)
		out.In[i] = float64(b.in) / sec
		out.Out[i] = float64(b.out) / sec
		out.P2P[i] = float64(b.p2p) / sec
	}
	return out
}

// Fine returns the server's total traffic per tick over the last d.
func (h *History) Fine(d time.Duration, now time.Time) Series {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Series{T: []int64{}, In: []float64{}, Out: []float64{}, P2P: []float64{}}
	from := now.Add(-d)
	for _, p := range h.fine {
		if p.t.Before(from) {
			continue
		}
		sec := p.dur.Seconds()
		if sec <= 0 {
			continue
		}
		out.Step = sec
		out.T = append(out.T, p.t.Add(-p.dur).UnixMilli())
		out.In = append(out.In, float64(p.in)/sec)
		out.Out = append(out.Out, float64(p.out)/sec)
		out.P2P = append(out.P2P, float64(p.p2p)/sec)
	}
	return out
}

// Proxies is how many proxies the history keeps a series for.
func (h *History) Proxies() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.proxies)
}
