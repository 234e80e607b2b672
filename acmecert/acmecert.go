// Package acmecert gets and renews, from an ACME CA (Let's Encrypt by default), the
// certificates of the host names the server's http proxies publish, so that users reach them
// by https on vhostHTTPSPort with the server ending TLS (github.com/caddyserver/certmagic).
// Certificates are asked for on demand, at the first TLS handshake for a name, and only for a
// name an http proxy holds at that moment: a client with the token can have the server ask
// the CA for its own hosts, never for arbitrary names a user sends. The challenge is HTTP-01,
// answered on vhostHTTPPort.
package acmecert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// LetsEncrypt is the default CA's directory.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// Options configure a Manager.
type Options struct {
	// CA is the ACME directory URL (default LetsEncrypt); Email the account's contact.
	CA, Email string
	// RootsFile is a PEM file of the roots that the CA's directory is trusted by ("": the
	// system's), for a private CA.
	RootsFile string
	// Storage is the directory keys and certificates are kept in across restarts.
	Storage string
	// Allow says whether a certificate may be asked for name (nil error: yes).
	Allow func(name string) error
	// HTTPPort is the port the CA's HTTP-01 checks reach (the server's vhostHTTPPort).
	HTTPPort int
}

// Manager holds the certificates.
type Manager struct {
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache
}

// New prepares a Manager; nothing is asked of the CA before a handshake needs it.
func New(o Options) (*Manager, error) {
	if o.Allow == nil {
		return nil, errors.New("acmecert: Allow is required")
	}
	if o.CA == "" {
		o.CA = LetsEncrypt
	}
	var roots *x509.CertPool
	if o.RootsFile != "" {
		pem, err := os.ReadFile(o.RootsFile)
		if err != nil {
			return nil, err
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", o.RootsFile)
		}
	}
	log := zap.NewNop()
	m := &Manager{}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return m.cfg, nil },
		Logger:           log,
	})
	m.cfg = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: o.Storage},
		Logger:  log,
		OnDemand: &certmagic.OnDemandConfig{DecisionFunc: func(_ context.Context, name string) error {
			return o.Allow(name)
		}},
	})
	m.issuer = certmagic.NewACMEIssuer(m.cfg, certmagic.ACMEIssuer{
		CA:                      o.CA,
		Email:                   o.Email,
		Agreed:                  true,
		DisableTLSALPNChallenge: true, // the https port passes TLS through to the clients' services
		AltHTTPPort:             o.HTTPPort,
		TrustedRoots:            roots,
		Logger:                  log,
	})
	m.cfg.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// TLSConfig ends users' TLS with the names' certificates (got on demand).
func (m *Manager) TLSConfig() *tls.Config {
	conf := m.cfg.TLSConfig()
	conf.NextProtos = []string{"http/1.1"}
	return conf
}

// HTTPHandler answers the CA's HTTP-01 checks and passes every other request to next.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return m.issuer.HTTPChallengeHandler(next)
}

// Close stops the certificates' maintenance.
func (m *Manager) Close() { m.cache.Stop() }
