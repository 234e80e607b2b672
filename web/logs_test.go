package web

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestRecentLogs: warnings and errors are kept (the last n, oldest first, with their
// attributes), everything still reaches the next handler at its level.
func TestRecentLogs(t *testing.T) {
	var out bytes.Buffer
	h := NewRecentLogs(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}), 3)
	log := slog.New(h).With("component", "client")
	log.Debug("not shown anywhere")
	log.Info("logged in")
	for i := range 4 {
		log.Warn("server unreachable", "try", i)
	}
	log.WithGroup("proxy").Error("local service refused", "name", "ssh")
	got := h.Entries()
	if len(got) != 3 {
		t.Fatalf("kept %d entries, want 3: %+v", len(got), got)
	}
	if got[0].Message != "server unreachable" || got[0].Attrs != "component=client try=2" || got[2].Level != "ERROR" || got[2].Attrs != "component=client proxy.name=ssh" {
		t.Errorf("entries: %+v", got)
	}
	if s := out.String(); strings.Contains(s, "not shown") || !strings.Contains(s, "logged in") || strings.Count(s, "server unreachable") != 4 {
		t.Errorf("next handler got:\n%s", s)
	}
	for i := range 10 {
		log.Warn(fmt.Sprint(i))
	}
	if got := h.Entries(); got[0].Message != "7" || got[2].Message != "9" {
		t.Errorf("after wrapping: %+v", got)
	}
}
