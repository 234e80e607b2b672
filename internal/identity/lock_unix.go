//go:build unix

package identity

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive advisory lock on path for this process (the kernel drops it when
// the process dies, however it dies); release gives it back.
func lockFile(path string) (release func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrClientKeyHeld
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
