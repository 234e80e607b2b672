package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServerIdentityPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, created, err := LoadServer(dir)
	if err != nil || !created {
		t.Fatalf("first start: created %v, err %v", created, err)
	}
	b, created, err := LoadServer(dir)
	if err != nil || created {
		t.Fatalf("second start: created %v, err %v", created, err)
	}
	if a.Fingerprint() != b.Fingerprint() || !strings.HasPrefix(a.Fingerprint(), FingerprintPrefix) || len(a.Fingerprint()) != len(FingerprintPrefix)+43 {
		t.Fatalf("fingerprints %q and %q", a.Fingerprint(), b.Fingerprint())
	}
	if string(a.Derive("x")) != string(b.Derive("x")) || string(a.Derive("x")) == string(a.Derive("y")) {
		t.Error("derived secrets must outlive a restart and differ by purpose")
	}
	if fi, _ := os.Stat(filepath.Join(dir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v", fi.Mode().Perm())
	}
	c, _, _ := LoadServer(t.TempDir())
	if c.Fingerprint() == a.Fingerprint() {
		t.Error("two state directories, one identity")
	}
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("garbage"), 0o600)
	if _, _, err := LoadServer(dir); err == nil || !strings.Contains(err.Error(), KeyFile) {
		t.Errorf("a broken key file: err %v, want one naming the file", err)
	}
}

func TestPin(t *testing.T) {
	srvA, _, _ := LoadServer(t.TempDir())
	srvB, _, _ := LoadServer(t.TempDir())
	stateOf := func(s *Server) tls.ConnectionState {
		c := s.Certificate()
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Leaf}}
	}
	known := OpenKnown(t.TempDir())
	p := &Pin{Addr: "203.0.113.1:7000", Known: known}
	if err := p.VerifyConnection(stateOf(srvA)); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if fp, err := p.Confirm(); err != nil || fp != srvA.Fingerprint() {
		t.Fatalf("confirm: %q %v", fp, err)
	}
	if fp, line, _ := known.Lookup("203.0.113.1:7000"); fp != srvA.Fingerprint() || line != 1 {
		t.Fatalf("recorded %q at line %d", fp, line)
	}
	if err := p.VerifyConnection(stateOf(srvA)); err != nil {
		t.Fatalf("the same key again: %v", err)
	}
	err := p.VerifyConnection(stateOf(srvB))
	var m *MismatchError
	if !errors.As(err, &m) || m.Got != srvB.Fingerprint() || m.Want != srvA.Fingerprint() || !strings.Contains(m.Source, KnownFile+" line 1") {
		t.Fatalf("another key: %v", err)
	}
	if p.Mismatch() == nil {
		t.Error("the refusal is not kept for the caller")
	}
	// Pinned by the config: the record does not count.
	q := &Pin{Addr: "203.0.113.1:7000", Configured: srvB.Fingerprint(), ConfigKey: "transport.tls.serverFingerprint", Known: known}
	if err := q.VerifyConnection(stateOf(srvB)); err != nil {
		t.Fatalf("the configured key: %v", err)
	}
	if err := q.VerifyConnection(stateOf(srvA)); !errors.As(err, &m) || m.Source != "transport.tls.serverFingerprint" {
		t.Fatalf("a key the config does not pin: %v", err)
	}
}
