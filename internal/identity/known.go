package identity

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// KnownFile is the name of a client's record of trusted servers in its state directory: one
// line per server, "host:port fingerprint", as OpenSSH's known_hosts.
const KnownFile = "known_servers"

// Known is a client's record of the servers it trusts.
type Known struct {
	path string
	mu   sync.Mutex
}

// OpenKnown returns the record in dir (read at each lookup, so that an edit takes effect at the
// next connection).
func OpenKnown(dir string) *Known { return &Known{path: filepath.Join(dir, KnownFile)} }

// Path is the record's file.
func (k *Known) Path() string { return k.path }

// Lookup returns the fingerprint recorded for addr and its line ("" and 0 if none).
func (k *Known) Lookup(addr string) (fingerprint string, line int, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	data, err := os.ReadFile(k.path)
	if errors.Is(err, os.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == addr && !strings.HasPrefix(f[0], "#") {
			return f[1], n, nil
		}
	}
	return "", 0, nil
}

// Remember records addr's fingerprint (the directory is made, 0700, if need be).
func (k *Known) Remember(addr, fingerprint string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(k.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%s %s\n", addr, fingerprint); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// MismatchError is a server whose identity key is not the one pinned for it.
type MismatchError struct {
	Addr, Got, Want string
	// Where the pin comes from: the config key, or the record's file and line.
	Source string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("server %s presented identity %s, but %s is pinned for it (%s): refusing to connect, someone may be in the middle. "+
		"If the server's key really changed (a new state directory, a reinstalled server), set the new fingerprint or remove that pin",
		e.Addr, e.Got, e.Want, e.Source)
}

// Pin checks one server's identity on each TLS connection to it: against the fingerprint the
// config pins, else against the record, else (first use) it accepts the key and Confirm records
// it once the server proved the token.
type Pin struct {
	Addr       string
	Configured string // the config's pin ("" for none)
	ConfigKey  string // the config key that holds it, for messages
	Known      *Known // nil: no record (nothing is trusted on first use beyond this process)

	mu       sync.Mutex
	seen     string // the fingerprint of the last connection that passed
	trusted  string // pinned in memory for this process (first use, record not writable)
	mismatch *MismatchError
}

// VerifyConnection is a tls.Config.VerifyConnection for connections to the server.
func (p *Pin) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server sent no certificate")
	}
	got := Fingerprint(cs.PeerCertificates[0])
	want, source := p.Configured, p.ConfigKey
	p.mu.Lock()
	defer p.mu.Unlock()
	if want == "" && p.Known != nil {
		fp, line, err := p.Known.Lookup(p.Addr)
		if err != nil {
			return fmt.Errorf("known servers: %w", err)
		}
		want, source = fp, fmt.Sprintf("%s line %d", p.Known.Path(), line)
	}
	if want == "" && p.trusted != "" {
		want, source = p.trusted, "trusted on first use by this process"
	}
	if want != "" && got != want {
		p.mismatch = &MismatchError{Addr: p.Addr, Got: got, Want: want, Source: source}
		return p.mismatch
	}
	p.seen, p.mismatch = got, nil
	return nil
}

// Confirm is called once the server behind the last connection proved the token: a key seen
// for the first time is recorded. It returns the fingerprint recorded ("" if it was pinned
// already) and an error if the record could not be written (the key stays trusted by this
// process).
func (p *Pin) Confirm() (recorded string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Configured != "" || p.seen == "" || p.trusted == p.seen {
		return "", nil
	}
	if p.Known != nil {
		if fp, _, err := p.Known.Lookup(p.Addr); err == nil && fp == p.seen {
			return "", nil
		}
	}
	p.trusted = p.seen
	if p.Known == nil {
		return p.seen, nil
	}
	return p.seen, p.Known.Remember(p.Addr, p.seen)
}

// Mismatch is the last refusal (nil if the last connection passed).
func (p *Pin) Mismatch() *MismatchError {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mismatch
}
