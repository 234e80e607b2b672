package web

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// LogEntry is one warning or error the process logged.
type LogEntry struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	// Attrs are the record's attributes as key=value text, in order.
	Attrs string `json:"attrs,omitempty"`
}

// RecentLogs is a slog.Handler that keeps the last warnings and errors (a bounded ring) for a
// page to show, and passes every record on to the next handler.
type RecentLogs struct {
	next  slog.Handler
	ring  *logRing
	attrs string // the handler's own attributes, rendered
	group string // the open group, as a key prefix ("proxy.")
}

type logRing struct {
	mu      sync.Mutex
	entries []LogEntry
	next    int
	full    bool
}

// NewRecentLogs keeps the last n warnings and errors of the records that pass through it to next.
func NewRecentLogs(next slog.Handler, n int) *RecentLogs {
	return &RecentLogs{next: next, ring: &logRing{entries: make([]LogEntry, n)}}
}

// Enabled implements slog.Handler.
func (h *RecentLogs) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *RecentLogs) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(h.attrs)
		r.Attrs(func(a slog.Attr) bool { render(&b, h.group, a); return true })
		h.ring.add(LogEntry{Time: r.Time, Level: r.Level.String(), Message: r.Message, Attrs: b.String()})
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (h *RecentLogs) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		render(&b, h.group, a)
	}
	c.attrs = b.String()
	return &c
}

// WithGroup implements slog.Handler.
func (h *RecentLogs) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = h.group + name + "."
	return &c
}

func render(b *strings.Builder, group string, a slog.Attr) {
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(group + a.Key + "=" + a.Value.String())
}

// Entries returns the kept warnings and errors, oldest first.
func (h *RecentLogs) Entries() []LogEntry {
	return h.ring.list()
}

func (r *logRing) add(e LogEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.entries) == 0 {
		return
	}
	r.entries[r.next] = e
	r.next = (r.next + 1) % len(r.entries)
	if r.next == 0 {
		r.full = true
	}
}

func (r *logRing) list() []LogEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]LogEntry{}, r.entries[:r.next]...)
	}
	return append(append([]LogEntry{}, r.entries[r.next:]...), r.entries[:r.next]...)
}
