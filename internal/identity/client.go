package identity

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
)

// ClientKeyFile is the name of a client's run key in its state directory: the key its run ID
// derives from (auth.RunKey), kept so that a restarted client is the same client to its servers
// and has its names back at once, where a new run waits for the server's liveness check of the
// old one. Only the process that holds the key can log in under its run ID.
const ClientKeyFile = "client.key"

// ErrClientKeyHeld is a client key that another running process holds.
var ErrClientKeyHeld = errors.New("another client process runs on this state directory")

// LoadClient returns the client key in dir (made on first use, 0600 in a 0700 directory) and
// locks it for this process until release: two processes under one key would take each other's
// session in turn.
func LoadClient(dir string) (key ed25519.PrivateKey, release func(), err error) {
	key, _, err = loadKey(dir, ClientKeyFile, "client key", "its servers take the client for a new one")
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, ClientKeyFile)
	release, err = lockFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("client key %s: %w", path, err)
	}
	return key, release, nil
}
