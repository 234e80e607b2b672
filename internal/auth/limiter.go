package auth

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// FailureLimiter slows down guessing: each source (an IPv4 address or an IPv6 /64, see Source)
// may fail Burst times at once and then once per Interval. It remembers at most MaxEntries
// sources (those whose bucket refilled are forgotten first), so a flood from many addresses
// costs bounded memory.
type FailureLimiter struct {
	Burst      int
	Interval   time.Duration
	MaxEntries int

	mu      sync.Mutex
	entries map[netip.Prefix]*limiterEntry
}

type limiterEntry struct {
	lim      *rate.Limiter
	lastSeen time.Time
	pending  int // attempts under way (Attempt), counted as failures until they end
}

// NewFailureLimiter returns a limiter with xp2p's defaults: 5 failures at once, then one per
// 10 seconds per address, 10000 addresses.
func NewFailureLimiter() *FailureLimiter {
	return &FailureLimiter{Burst: 5, Interval: 10 * time.Second, MaxEntries: 10000}
}

// Check reports whether addr may try now, and if not, how long until it may.
func (l *FailureLimiter) Check(addr netip.Addr) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, found := l.entries[Source(addr)]
	if !found {
		return true, 0
	}
	now := time.Now()
	if tokens := e.lim.TokensAt(now) - float64(e.pending); tokens < 1 {
		wait := time.Duration((1 - tokens) * float64(l.Interval))
		return false, wait
	}
	return true, 0
}

// Fail records a failed attempt from addr.
func (l *FailureLimiter) Fail(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.entryLocked(Source(addr), now).lim.AllowN(now, 1)
}

// Allow takes one token of addr's bucket if it has one: the limiter used as a plain per-address
// rate limit (every attempt counts, not only failures).
func (l *FailureLimiter) Allow(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	return l.entryLocked(Source(addr), now).lim.AllowN(now, 1)
}

func (l *FailureLimiter) entryLocked(addr netip.Prefix, now time.Time) *limiterEntry {
	if l.entries == nil {
		l.entries = make(map[netip.Prefix]*limiterEntry)
	}
	e, ok := l.entries[addr]
	if !ok {
		if len(l.entries) >= l.MaxEntries {
			l.evictLocked()
		}
		e = &limiterEntry{lim: rate.NewLimiter(rate.Every(l.Interval), l.Burst)}
		l.entries[addr] = e
	}
	e.lastSeen = now
	return e
}

// Tracked returns how many addresses are currently tracked (for tests and metrics).
func (l *FailureLimiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// evictLocked forgets addresses whose bucket has refilled and, if that is not enough, random
// others (map order) down to three quarters of the limit. A flood of addresses thus pushes out
// old entries instead of growing memory; an attacker gains at most a fresh burst by it.
func (l *FailureLimiter) evictLocked() {
	now := time.Now()
	for a, e := range l.entries {
		if e.lim.TokensAt(now) >= float64(l.Burst) {
			delete(l.entries, a)
		}
	}
	for a := range l.entries {
		if len(l.entries) <= l.MaxEntries*3/4 {
			break
		}
		delete(l.entries, a)
	}
}

// Attempt is Check and Fail in one for a check whose outcome the other side may learn before
// this side does (a PAKE, where the attacker sees the confirmation fail and may just leave):
// the attempt counts as a failure while it is under way (so parallel guesses spend the burst
// at once), done(false) makes it one, done(true) (the other side proved itself) forgets it.
// ok is false (with the wait) when addr has no failure left to spend.
func (l *FailureLimiter) Attempt(addr netip.Addr) (done func(succeeded bool), ok bool, retryAfter time.Duration) {
	src := Source(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	e := l.entryLocked(src, now)
	if tokens := e.lim.TokensAt(now) - float64(e.pending); tokens < 1 {
		return nil, false, time.Duration((1 - tokens) * float64(l.Interval))
	}
	e.pending++
	var once sync.Once
	return func(succeeded bool) {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			e.pending--
			if !succeeded {
				e.lim.AllowN(time.Now(), 1)
			}
		})
	}, true, 0
}
