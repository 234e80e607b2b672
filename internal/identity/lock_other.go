//go:build !unix && !windows

package identity

import "errors"

// lockFile cannot lock on this system: the client runs under a key of its own run.
func lockFile(string) (func(), error) {
	return nil, errors.New("no file locks on this system")
}
