//go:build !linux && !darwin && !freebsd && !windows

package quicsock

func isTransientSendError(error) bool { return false }
