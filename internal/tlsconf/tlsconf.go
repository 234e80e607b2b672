// Package tlsconf builds the TLS configurations xp2p uses: the server's certificate (loaded from
// files or generated in memory), the client's view of the server, and the ephemeral certificates
// of P2P sessions, whose peers authenticate each other by a secret bound to the TLS session
// instead of by a certificate authority.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// ALPN protocol names: one per kind of session, so that a session of one kind can never be
// mistaken for another.
const (
	ALPNControl = "xp2p-control/1"
	// ALPNWork marks a pooled TCP work connection: one user connection of a tcp proxy each.
	ALPNWork = "xp2p-work/1"
	ALPNPeer = "xp2p-peer/1"
)

// SelfSigned returns a fresh in-memory certificate for the given names.
func SelfSigned(names ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate serial: %w", err)
	}
	if len(names) == 0 {
		names = []string{"xp2p"}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// ServerFiles describes an optional certificate on disk, and the certificate to use without
// one (the server's identity, package identity; nil: a fresh one).
type ServerFiles struct {
	CertFile, KeyFile string
	Identity          *tls.Certificate
}

// Server returns the server's TLS config for control sessions. With no files it uses the
// identity's certificate, which clients pin on first use.
func Server(files ServerFiles) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	switch {
	case files.CertFile != "" && files.KeyFile != "":
		cert, err = tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load server certificate %s / %s: %w", files.CertFile, files.KeyFile, err)
		}
	case files.CertFile != "" || files.KeyFile != "":
		return nil, errors.New("transport.tls.certFile and transport.tls.keyFile must be set together")
	case files.Identity != nil:
		cert = *files.Identity
	default:
		cert, err = SelfSigned("xp2p-server")
		if err != nil {
			return nil, err
		}
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPNControl, ALPNWork},
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// Work returns the TLS config of a client's work connections: the control config with the work
// protocol and a session cache, so that refilling the pool resumes sessions cheaply.
func Work(control *tls.Config) *tls.Config {
	w := control.Clone()
	w.NextProtos = []string{ALPNWork}
	w.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	return w
}

// Client returns the client's TLS config for its control session. With trustedCAFile the
// server's certificate must chain to it and name serverName; without, any certificate passes
// the chain check, and the caller pins the server's key (VerifyConnection, package identity).
func Client(serverName, trustedCAFile string) (*tls.Config, error) {
	conf := &tls.Config{
		ServerName: serverName,
		NextProtos: []string{ALPNControl},
		MinVersion: tls.VersionTLS13,
	}
	if trustedCAFile == "" {
		conf.InsecureSkipVerify = true
		return conf, nil
	}
	pem, err := os.ReadFile(trustedCAFile)
	if err != nil {
		return nil, fmt.Errorf("read transport.tls.trustedCaFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("transport.tls.trustedCaFile %s: no PEM certificate in it", trustedCAFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// Peer returns the TLS configs of a P2P session: the provider listens with a fresh certificate,
// the visitor accepts any certificate because both ends prove the service's secretKey over the
// TLS exporter of this very session (see package auth).
func Peer() (provider, visitor *tls.Config, err error) {
	cert, err := SelfSigned("xp2p-peer")
	if err != nil {
		return nil, nil, err
	}
	provider = &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPNPeer},
		MinVersion:   tls.VersionTLS13,
	}
	visitor = &tls.Config{
		InsecureSkipVerify: true,
		ServerName:         "xp2p-peer",
		NextProtos:         []string{ALPNPeer},
		MinVersion:         tls.VersionTLS13,
	}
	return provider, visitor, nil
}
