//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// step is the bench's natlab.TB: the lab calls Fatal on a broken set-up, which ends the
// current step (a panic that run recovers) and fails only that row of the report; cleanups
// (lab namespaces, processes, temporary files) run when the step ends, or on Ctrl-C.
type step struct {
	name     string
	log      io.Writer
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

type abort struct{ msg string }

func (s *step) Helper()          {}
func (s *step) Failed() bool     { s.mu.Lock(); defer s.mu.Unlock(); return s.failed }
func (s *step) Cleanup(f func()) { s.mu.Lock(); s.cleanups = append(s.cleanups, f); s.mu.Unlock() }
func (s *step) Logf(format string, args ...any) {
	if s.log != nil {
		fmt.Fprintf(s.log, "  [%s] %s\n", s.name, fmt.Sprintf(format, args...))
	}
}
func (s *step) Fatal(args ...any) { s.Fatalf("%s", fmt.Sprint(args...)) }
func (s *step) Fatalf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	panic(abort{fmt.Sprintf(format, args...)})
}
func (s *step) Skipf(format string, args ...any) { s.Fatalf("skipped: "+format, args...) }
func (s *step) TempDir() string {
	dir, err := os.MkdirTemp("", "xp2p-bench-")
	if err != nil {
		s.Fatalf("temp dir: %v", err)
	}
	s.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cleanup runs the cleanups, last registered first, once.
func (s *step) cleanup() {
	s.mu.Lock()
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// current is the running step, for the Ctrl-C handler.
var (
	currentMu sync.Mutex
	current   *step
)

// run runs fn as a step and returns its failure, if any.
func run(name string, log io.Writer, fn func(s *step)) (err error) {
	s := &step{name: name, log: log}
	currentMu.Lock()
	current = s
	currentMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(abort)
			if !ok {
				s.cleanup()
				panic(r)
			}
			err = fmt.Errorf("%s: %s", name, a.msg)
		}
		s.cleanup()
		currentMu.Lock()
		current = nil
		currentMu.Unlock()
	}()
	fn(s)
	return nil
}

// cleanupCurrent tears down the running step's lab (on Ctrl-C).
func cleanupCurrent() {
	currentMu.Lock()
	s := current
	currentMu.Unlock()
	if s != nil {
		s.cleanup()
	}
}
