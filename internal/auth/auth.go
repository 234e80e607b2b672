// Package auth owns xp2p's secret proofs and the limits on guessing them.
//
// A secret (the server's auth.token, a service's secretKey) never crosses the wire. Each side
// instead sends HMAC-SHA256(secret, label ‖ role ‖ exporter), where exporter is keying material
// exported from the TLS 1.3 session the proof travels in (RFC 8446 §7.5). A proof therefore only
// verifies inside the session it was made for: a captured handshake cannot be replayed, and a
// relay in the middle, which necessarily runs two TLS sessions, cannot forward one side's proof
// to the other. Comparisons are constant-time.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
)

// Roles distinguish the two directions of a mutual proof, so that one side's proof can never be
// reflected back as the other's.
const (
	RoleClient   = "client"
	RoleServer   = "server"
	RoleVisitor  = "visitor"
	RoleProvider = "provider"
)

// ProofSize is the length of a proof.
const ProofSize = sha256.Size

const proofLabel = "xp2p proof v1"

// Exporter derives 32 bytes of keying material from a TLS connection state. The label keeps the
// control and the P2P uses apart.
func Exporter(cs tls.ConnectionState, label string) ([]byte, error) {
	if cs.Version != tls.VersionTLS13 {
		return nil, fmt.Errorf("tls exporter: session is not TLS 1.3")
	}
	ekm, err := cs.ExportKeyingMaterial("EXPORTER-xp2p-"+label, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("tls exporter: %w", err)
	}
	return ekm, nil
}

// Proof computes the proof of secret for role over the session's exporter.
func Proof(secret, exporter []byte, role string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(proofLabel))
	mac.Write([]byte{0})
	mac.Write([]byte(role))
	mac.Write([]byte{0})
	mac.Write(exporter)
	return mac.Sum(nil)
}

// Verify reports, in constant time, whether proof is secret's proof for role over exporter.
func Verify(secret, exporter []byte, role string, proof []byte) bool {
	return hmac.Equal(Proof(secret, exporter, role), proof)
}

// Derive returns a key for purpose bound to context, derived from secret (HMAC-SHA256 as a PRF).
// P2P probe keys use it, so that the server, which never learns the secretKey, cannot forge probes.
func Derive(secret []byte, purpose string, context []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(purpose))
	mac.Write([]byte{0})
	mac.Write(context)
	return mac.Sum(nil)
}

// GroupKey is what a client sends the server for a load-balancing group's key: derived from
// loadBalancer.groupKey and the group's name, so that the key itself never leaves the client
// (it is often a password used elsewhere too) and the server compares fixed-size values in
// constant time. The server needs a value it can compare, so this is a static derivation, not
// a per-session proof: it stands for the key on this server, and only inside the TLS session
// of a client that proved the token and checked the server's proof.
func GroupKey(key, group string) []byte {
	return Derive([]byte(key), "xp2p loadBalancer.groupKey v1", []byte(group))
}
