//go:build !linux && !darwin && !freebsd && !windows

package quicsock

// transientErrors: none known here (see transient_unix.go).
var transientErrors []error
