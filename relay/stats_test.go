package relay

import (
	"fmt"
	"slices"
	"testing"
)

// TestStatsBookKeepsLiveNames: names a client has registered are never forgotten; offline ones
// are, per owner first, then from the owner with the most, and the book says which.
func TestStatsBookKeepsLiveNames(t *testing.T) {
	b := NewStatsBook()
	b.MaxOffline, b.MaxOfflinePerOwner = 6, 4
	var forgot []string
	b.OnForget = func(name string) { forgot = append(forgot, name) }

	live := b.Acquire("home.nas", "xp2p", "home@192.0.2.7/32")
	b.Acquire("home.web", "tcp", "home@192.0.2.7/32")
	old := b.Acquire("home.old", "tcp", "home@192.0.2.7/32")
	b.Release(old) // one offline name of home's

	// A flood: one owner registers and drops 100 names.
	for i := range 100 {
		b.Release(b.Acquire(fmt.Sprintf("x%03d", i), "tcp", "flood@127.0.0.2/32"))
	}
	all, offline := b.Len()
	if offline != 5 || all != 7 {
		t.Errorf("%d names, %d offline; want 7 and 5 (home's 2 live and 1 offline, the flood's last 4)", all, offline)
	}
	names := map[string]bool{}
	for _, s := range b.Snapshot() {
		names[s.Name] = true
	}
	for _, want := range []string{"home.nas", "home.web", "home.old", "x096", "x097", "x098", "x099"} {
		if !names[want] {
			t.Errorf("%s forgotten", want)
		}
	}
	if len(forgot) != 96 || forgot[0] != "x000" || slices.Contains(forgot, "home.old") {
		t.Errorf("forgot %d names (first %q), want the flood's 96 oldest and nothing of home's", len(forgot), forgot[0])
	}

	// Over MaxOffline, the owner with the most offline names loses its oldest.
	second := b.Acquire("other.a", "tcp", "other@198.51.100.1/32")
	b.Release(second)
	b.Release(b.Acquire("other.b", "tcp", "other@198.51.100.1/32"))
	if _, offline := b.Len(); offline != 6 || forgot[len(forgot)-1] != "x096" {
		t.Errorf("%d offline, forgot %v last; want 6, the flood's x096", offline, forgot[96:])
	}

	// A live name comes back with its figures; a name released twice stays live until the last.
	live.AddBytes(10, 20)
	again := b.Acquire("home.nas", "xp2p", "home@192.0.2.7/32")
	if again != live {
		t.Error("a second registration of a live name got other figures")
	}
	b.Release(again)
	for range 10 {
		b.Release(b.Acquire(fmt.Sprintf("y%d", len(forgot)), "tcp", "flood@127.0.0.2/32"))
	}
	if got := b.Acquire("home.nas", "xp2p", "home@192.0.2.7/32"); got != live || got.Snapshot().BytesOut != 20 {
		t.Error("a live name lost its figures to a flood")
	}
}

// TestStatsBookDiscard: a registration that failed leaves no offline name behind, unless the
// name has figures from before.
func TestStatsBookDiscard(t *testing.T) {
	b := NewStatsBook()
	b.Discard(b.Acquire("refused", "tcp", "x@127.0.0.2/32"))
	kept := b.Acquire("kept", "tcp", "x@127.0.0.2/32")
	kept.AddBytes(1, 1)
	b.Release(kept)
	b.Discard(b.Acquire("kept", "tcp", "x@127.0.0.2/32"))
	b.Release(kept) // one release too many changes nothing
	if all, offline := b.Len(); all != 1 || offline != 1 {
		t.Errorf("%d names, %d offline; want only kept, offline", all, offline)
	}
}
