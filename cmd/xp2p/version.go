package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"time"
)

// Set at build time by the release build (scripts/release):
// -ldflags "-X main.version=1.2.3 -X main.commit=abc1234 -X main.date=2026-12-01T10:00:00Z".
// A plain `go build` in a git checkout still knows its commit (Go stamps it into the binary).
var (
	version = "0.1.0-dev"
	commit  = ""
	date    = ""
)

// buildInfo describes this binary: its version, the commit it was built from and when.
type buildInfo struct {
	Version, Commit, Date, Go, Platform string
	// Modified says the commit had uncommitted changes on top.
	Modified bool
	// DateIsCommit says Date is the commit's time: the binary was not built by the release
	// build, which stamps the build's own date.
	DateIsCommit bool
}

func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" && len(s.Value) >= 12 {
					b.Commit = s.Value[:12]
				}
			case "vcs.time":
				if b.Date == "" {
					b.Date, b.DateIsCommit = s.Value, true
				}
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	return b
}

// String is what `xp2p version` prints.
func (b buildInfo) String() string {
	commit := b.Commit
	switch {
	case commit == "":
		commit = "not stamped (a development build: go run ./scripts/release stamps it)"
	case b.Modified:
		commit += " with uncommitted changes"
	}
	when := b.Date
	switch {
	case when == "":
		when = "not stamped (a development build)"
	case b.DateIsCommit:
		when = "not stamped (a development build; commit of " + when + ")"
	default:
		if t, err := time.Parse(time.RFC3339, when); err == nil {
			when = t.UTC().Format("2006-01-02 15:04:05 UTC")
		}
	}
	return fmt.Sprintf("xp2p %s\n  commit  %s\n  built   %s\n  go      %s %s\n", b.Version, commit, when, b.Go, b.Platform)
}
