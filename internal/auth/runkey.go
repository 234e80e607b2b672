package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// RunKey is the key of one client process. Its run ID (what the server files the process's
// session and work connections under) is a hash of the public half, and every login signs the
// session's TLS exporter with the private half: a reconnect of the same process may replace its
// old session, while another token holder who learned the run ID (from a dashboard, or from a
// Login it saw as a man in the middle) can neither log in under it nor attach work connections
// to it.
type RunKey struct {
	priv ed25519.PrivateKey
}

// RunKeySize and RunSigSize are the sizes of a run key's public half and of its signatures.
const (
	RunKeySize = ed25519.PublicKeySize
	RunSigSize = ed25519.SignatureSize
)

const runSigLabel = "xp2p run v1\x00"

// NewRunKey makes a fresh run key.
func NewRunKey() RunKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic("auth: no randomness for a run key: " + err.Error()) // crypto/rand never fails on supported systems
	}
	return RunKey{priv: priv}
}

// RunKeyOf makes a run key of an Ed25519 key kept elsewhere (a client's state directory), so
// that the run ID outlives the process.
func RunKeyOf(priv ed25519.PrivateKey) RunKey { return RunKey{priv: priv} }

// Public is the public half, sent in Login.
func (k RunKey) Public() []byte { return k.priv.Public().(ed25519.PublicKey) }

// ID is the run ID of the key.
func (k RunKey) ID() string { return RunID(k.Public()) }

// Sign signs a session's exporter (label "control").
func (k RunKey) Sign(exporter []byte) []byte {
	return ed25519.Sign(k.priv, append([]byte(runSigLabel), exporter...))
}

// RunID is the run ID of a public run key: 16 bytes of its SHA-256, in hex.
func RunID(public []byte) string {
	h := sha256.Sum256(public)
	return hex.EncodeToString(h[:16])
}

// VerifyRun reports whether sig is public's signature of exporter.
func VerifyRun(public, exporter, sig []byte) bool {
	if len(public) != RunKeySize || len(sig) != RunSigSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(public), append([]byte(runSigLabel), exporter...), sig)
}
