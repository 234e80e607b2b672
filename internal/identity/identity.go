// Package identity owns the identities of xp2p servers: a server's persistent Ed25519 key in its
// state directory (the self-signed certificate made from it, its fingerprint, and the secrets
// derived from it that must outlive a restart: QUIC stateless resets, login tickets), and a
// client's record of the servers it trusts, pinned on first use as SSH does with host keys.
package identity

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// KeyFile is the name of the server's key in its state directory.
const KeyFile = "identity.key"

// Server is a server's identity.
type Server struct {
	key  ed25519.PrivateKey
	cert tls.Certificate
}

// LoadServer reads the identity key in dir, or makes one (and dir, 0700) if there is none yet;
// created says which.
func LoadServer(dir string) (id *Server, created bool, err error) {
	key, created, err := loadKey(dir, KeyFile, "server identity", "clients that pinned the old one will then refuse this server")
	if err != nil {
		return nil, false, err
	}
	id, err = newServer(key)
	return id, created, err
}

// loadKey reads the Ed25519 key in dir/file, or makes one (and dir, 0700) if there is none
// yet; what names it in errors, and lost says what a new key would cost.
func loadKey(dir, file, what, lost string) (key ed25519.PrivateKey, created bool, err error) {
	path := filepath.Join(dir, file)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := parseKey(data)
		if err != nil {
			return nil, false, fmt.Errorf("%s %s: %w (remove it to make a new one: %s)", what, path, err, lost)
		}
		return key, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("%s: state directory: %w (set stateDir in the config to a directory it may write)", what, err)
	}
	// Written under a temporary name and linked into place, so that two processes starting at
	// once on one state directory end up with the same key, and a crash leaves no half file.
	tmp, err := os.CreateTemp(dir, file+".*")
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w (set stateDir in the config to a directory it may write)", what, err)
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return loadKey(dir, file, what, lost) // another process made it first
		}
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	return key, true, nil
}

func parseKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key, want Ed25519", k)
	}
	return key, nil
}

func newServer(key ed25519.PrivateKey) (*Server, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	// The certificate is made anew at each start (its dates move); what clients pin is the key.
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "xp2p-server"},
		DNSNames:     []string{"xp2p-server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("server identity: certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Server{key: key, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}, nil
}

// Certificate is the self-signed certificate of the identity key.
func (s *Server) Certificate() tls.Certificate { return s.cert }

// Fingerprint is the identity key's fingerprint.
func (s *Server) Fingerprint() string { return Fingerprint(s.cert.Leaf) }

// Derive returns a 32-byte secret for purpose that only this server knows and that stays the
// same across its restarts (HMAC-SHA256 keyed by the identity key's seed).
func (s *Server) Derive(purpose string) []byte {
	mac := hmac.New(sha256.New, s.key.Seed())
	mac.Write([]byte("xp2p server secret v1\x00" + purpose))
	return mac.Sum(nil)
}

// FingerprintPrefix starts every fingerprint (config.FingerprintPrefix says the same).
const FingerprintPrefix = "SHA256:"

// Fingerprint is "SHA256:" and the unpadded base64 of the SHA-256 of cert's public key
// (SubjectPublicKeyInfo): the key, not the certificate, so that a renewed certificate of the same
// key keeps its fingerprint.
func Fingerprint(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return FingerprintPrefix + base64.RawStdEncoding.EncodeToString(h[:])
}
