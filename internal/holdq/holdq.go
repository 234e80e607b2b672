// Package holdq holds packets that arrive before whoever takes them is known: a relayed packet
// before its P2P session is registered, a datagram before its flow's stream is accepted. It
// keeps a bounded number for a short time, taken by key.
package holdq

import "time"

// Queue holds at most Max packets, each for at most TTL. It is not safe for concurrent use:
// its owner's lock guards it.
type Queue[K comparable] struct {
	Max int
	TTL time.Duration

	items []item[K]
}

type item[K comparable] struct {
	key  K
	data []byte
	at   time.Time
}

// Hold keeps data (not copied) for key, first dropping the packets older than TTL. It returns
// how many packets it dropped: the expired ones, and data itself when the queue is full.
func (q *Queue[K]) Hold(key K, data []byte, now time.Time) (dropped int) {
	kept := q.items[:0]
	for _, it := range q.items {
		if now.Sub(it.at) < q.TTL {
			kept = append(kept, it)
		} else {
			dropped++
		}
	}
	clear(q.items[len(kept):]) // let go of the dropped packets' buffers
	q.items = kept
	if len(q.items) >= q.Max {
		return dropped + 1
	}
	q.items = append(q.items, item[K]{key: key, data: data, at: now})
	return dropped
}

// Take removes and returns key's packets, oldest first.
func (q *Queue[K]) Take(key K) [][]byte {
	var out [][]byte
	kept := q.items[:0]
	for _, it := range q.items {
		if it.key == key {
			out = append(out, it.data)
		} else {
			kept = append(kept, it)
		}
	}
	clear(q.items[len(kept):])
	q.items = kept
	return out
}

// Len returns how many packets are held.
func (q *Queue[K]) Len() int { return len(q.items) }
