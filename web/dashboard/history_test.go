package dashboard

import (
	"fmt"
	"testing"
	"time"

	"github.com/xp2p/xp2p/relay"
	"github.com/xp2p/xp2p/rendezvous"
)

func snapWith(proxies ...rendezvous.ProxySnapshot) *rendezvous.Snapshot {
	return &rendezvous.Snapshot{Proxies: proxies}
}

func px(name string, in, out int64) rendezvous.ProxySnapshot {
	return rendezvous.ProxySnapshot{StatsSnapshot: relay.StatsSnapshot{Name: name, Type: "tcp", BytesIn: in, BytesOut: out}, Online: true}
}

func TestHistoryBucketsAndRates(t *testing.T) {
	h := NewHistory(HistoryOptions{})
	t0 := time.Date(2026, 1, 2, 10, 0, 30, 0, time.UTC)
	h.Record(snapWith(px("web", 0, 0)), t0)
	h.Record(snapWith(px("web", 6000, 600)), t0.Add(5*time.Second))
	h.Record(snapWith(px("web", 12000, 1200)), t0.Add(10*time.Second))
	if in, out, _ := h.Rate("web"); in != 1200 || out != 120 {
		t.Errorf("rate %v/%v, want 1200/120 B/s", in, out)
	}
	// The next minute.
	h.Record(snapWith(px("web", 18000, 1200)), t0.Add(40*time.Second))
	if in, out, _ := h.Since("web", t0); in != 18000 || out != 1200 {
		t.Errorf("since start: %d/%d", in, out)
	}
	if in, _, _ := h.Since("web", t0.Add(30*time.Second)); in != 6000 {
		t.Errorf("since the second minute: %d, want 6000", in)
	}
	if in, _, _ := h.Since("", t0); in != 18000 {
		t.Errorf("total since start: %d", in)
	}
	s := h.Buckets("web", time.Hour, t0.Add(40*time.Second))
	if len(s.T) != 2 || s.Step != 60 {
		t.Fatalf("series %+v: want 2 buckets since the history began", s)
	}
	if s.In[0] != 12000.0/30 { // the history began 30 s into that minute
		t.Errorf("first minute rate %v, want %v", s.In[0], 12000.0/30)
	}
	// The running minute: 6000 bytes in the 10 s it has run.
	if s.In[1] != 600 {
		t.Errorf("running minute rate %v, want 600", s.In[1])
	}
	fine := h.Fine(time.Hour, t0.Add(40*time.Second))
	if len(fine.T) != 3 || fine.In[2] != 200 {
		t.Errorf("fine series %+v", fine)
	}
	// Counters that went backwards started again (the proxy was forgotten and came back).
	h.Record(snapWith(px("web", 100, 0)), t0.Add(45*time.Second))
	if in, _, _ := h.Since("web", t0); in != 18100 {
		t.Errorf("after a counter reset: %d, want 18100", in)
	}
}

func TestHistoryBounded(t *testing.T) {
	h := NewHistory(HistoryOptions{BucketWidth: time.Minute, Buckets: 10, MaxProxies: 3, FinePoints: 4})
	t0 := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	// A day of traffic on one proxy keeps only the last 10 buckets.
	for i := range 100 {
		h.Record(snapWith(px("web", int64(i+1)*60, 0)), t0.Add(time.Duration(i)*time.Minute))
	}
	h.mu.Lock()
	n, fine := len(h.proxies["web"].buckets), len(h.fine)
	h.mu.Unlock()
	if n > 10 || fine != 4 {
		t.Errorf("kept %d buckets and %d fine points, want at most 10 and 4", n, fine)
	}
	// Many proxies online: all kept, whatever MaxProxies (the server bounds online proxies).
	now := t0.Add(200 * time.Minute)
	var ps []rendezvous.ProxySnapshot
	for i := range 20 {
		p := px(fmt.Sprintf("p%02d", i), int64(i+1), 0)
		p.Owner = "flood@127.0.0.2/32"
		if i == 19 {
			p.Owner = "home@192.0.2.7/32"
		}
		ps = append(ps, p)
	}
	h.Record(snapWith(ps...), now)
	if got := h.Proxies(); got != 20 {
		t.Errorf("%d proxies kept, want all 20 online ones", got)
	}
	// Once offline, at most 3 series, taken from the owner with the most: the flooding client
	// loses its own (all but one), the other's one stays, and so does the online one.
	for i := range ps {
		ps[i].Online = false
	}
	online := px("live", 5, 0)
	online.Owner = "flood@127.0.0.2/32"
	h.Record(snapWith(append(ps, online)...), now.Add(time.Minute))
	for _, name := range []string{"p19", "live"} {
		if !h.Known(name) {
			t.Errorf("%s forgotten", name)
		}
	}
	if got := h.Proxies(); got != 3 {
		t.Errorf("%d proxies kept, want 3", got)
	}
	// Offline proxies without traffic get no series.
	h2 := NewHistory(HistoryOptions{})
	off := px("gone", 0, 0)
	off.Online = false
	h2.Record(snapWith(off), now)
	if h2.Known("gone") {
		t.Error("an idle offline proxy got a series")
	}
	// A day later, a series without traffic and unknown to the server is forgotten.
	h3 := NewHistory(HistoryOptions{Buckets: 10})
	h3.Record(snapWith(px("old", 0, 0)), now)
	h3.Record(snapWith(px("old", 50, 0)), now.Add(time.Minute))
	h3.Record(snapWith(), now.Add(20*time.Minute))
	if h3.Known("old") {
		t.Error("a forgotten proxy's empty series is kept")
	}
}

func TestQuantile(t *testing.T) {
	hs := rendezvous.HistogramSnapshot{
		Bounds: []time.Duration{10 * time.Millisecond, 100 * time.Millisecond},
		Counts: []int64{5, 5, 0},
		Count:  10,
	}
	if q := hs.Quantile(0.5); q != 10*time.Millisecond {
		t.Errorf("median %v", q)
	}
	if q := hs.Quantile(0.9); q < 70*time.Millisecond || q > 90*time.Millisecond {
		t.Errorf("p90 %v", q)
	}
	if q := (rendezvous.HistogramSnapshot{}).Quantile(0.5); q != 0 {
		t.Errorf("empty: %v", q)
	}
}
