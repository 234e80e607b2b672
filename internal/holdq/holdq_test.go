package holdq

import (
	"testing"
	"time"
)

func TestQueue(t *testing.T) {
	t0 := time.Unix(1000, 0)
	q := &Queue[int]{Max: 3, TTL: 2 * time.Second}
	cases := []struct {
		name        string
		key         int
		at          time.Duration
		wantDropped int
		wantLen     int
	}{
		{"first", 1, 0, 0, 1},
		{"second key", 2, 100 * time.Millisecond, 0, 2},
		{"same key again", 1, 200 * time.Millisecond, 0, 3},
		{"full: the new one is dropped", 3, 300 * time.Millisecond, 1, 3},
		{"the first expired, the new one kept", 3, 2050 * time.Millisecond, 1, 3},
	}
	for _, tc := range cases {
		if got := q.Hold(tc.key, []byte{byte(tc.key)}, t0.Add(tc.at)); got != tc.wantDropped || q.Len() != tc.wantLen {
			t.Fatalf("%s: dropped %d, held %d; want %d, %d", tc.name, got, q.Len(), tc.wantDropped, tc.wantLen)
		}
	}
	if got := q.Take(1); len(got) != 1 || got[0][0] != 1 {
		t.Fatalf("take 1: %v, want the one left of key 1", got)
	}
	if got := q.Take(1); got != nil {
		t.Fatalf("take 1 again: %v", got)
	}
	if got := q.Take(2); len(got) != 1 || q.Len() != 1 {
		t.Fatalf("take 2: %v, %d left", got, q.Len())
	}
	if got := q.Take(3); len(got) != 1 || q.Len() != 0 {
		t.Fatalf("take 3: %v, %d left", got, q.Len())
	}
}
