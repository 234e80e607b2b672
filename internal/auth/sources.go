package auth

import (
	"net/netip"
	"sync"
)

// Source is what limits count by: an IPv4 address, or the /64 of an IPv6 address (one
// subscriber's LAN usually gets a /64 or more, so one attacker has 2^64 addresses but one
// source).
func Source(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{} // the zero address: one bucket of its own
	}
	return p
}

// SourceSlots bounds work done for clients that have not proved anything yet (TLS handshakes,
// logins in progress): at most PerSource at once per source and Total in all, so that one source
// cannot take every slot and the memory of unauthenticated work has a fixed ceiling.
type SourceSlots struct {
	PerSource, Total int

	mu  sync.Mutex
	n   int
	per map[netip.Prefix]int
}

// NewSourceSlots returns slots for perSource connections of one source and total in all.
func NewSourceSlots(perSource, total int) *SourceSlots {
	return &SourceSlots{PerSource: perSource, Total: total, per: map[netip.Prefix]int{}}
}

// Acquire takes a slot for addr if one is free (limit caps addr's source below PerSource, when
// positive) and returns the function that frees it (call it exactly once).
func (s *SourceSlots) Acquire(addr netip.Addr, limit int) (release func(), ok bool) {
	src := Source(addr)
	per := s.PerSource
	if limit > 0 && limit < per {
		per = limit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n >= s.Total || s.per[src] >= per {
		return nil, false
	}
	s.n++
	s.per[src]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.n--
			if s.per[src]--; s.per[src] <= 0 {
				delete(s.per, src)
			}
		})
	}, true
}

// InUse reports the slots taken (for tests and metrics).
func (s *SourceSlots) InUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
