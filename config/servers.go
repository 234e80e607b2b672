package config

import (
	"crypto/sha256"
	"encoding/base64"
	"net"
	"strconv"
	"strings"
)

// ServerEndpoint is one more server of a client ([[servers]]). A client registers its proxies
// on every server, so that the uplinks of several small servers add up, and a server going away
// only takes its share with it.
type ServerEndpoint struct {
	Addr string `toml:"addr"`
	Port int    `toml:"port"`
	// Token overrides the client's auth.token for this server.
	Token string `toml:"token"`
	// Fingerprint pins this server's identity key (as transport.tls.serverFingerprint does for
	// the first server).
	Fingerprint string `toml:"fingerprint"`
}

// Endpoint is a resolved server of a client: where to connect, with which token, and the
// fingerprint of its identity key if the config pins one.
type Endpoint struct {
	Addr        string // host:port
	Token       string
	Fingerprint string
}

// Endpoints lists every server of the client: serverAddr/serverPort first, then [[servers]].
func (c *Client) Endpoints() []Endpoint {
	var out []Endpoint
	if c.ServerAddr != "" {
		out = append(out, Endpoint{Addr: net.JoinHostPort(c.ServerAddr, strconv.Itoa(c.ServerPort)), Token: c.Auth.Token, Fingerprint: c.Transport.TLS.ServerFingerprint})
	}
	for _, s := range c.Servers {
		tok := s.Token
		if tok == "" {
			tok = c.Auth.Token
		}
		out = append(out, Endpoint{Addr: net.JoinHostPort(s.Addr, strconv.Itoa(s.Port)), Token: tok, Fingerprint: s.Fingerprint})
	}
	return out
}

// completeServers checks serverAddr/serverPort and [[servers]]: at least one server, valid
// hosts and ports, no server twice.
func (c *Client) completeServers(l *errorList) {
	if c.ServerAddr == "" && len(c.Servers) == 0 {
		l.at("serverAddr", "required: the address of the xp2p server (or [[servers]] entries)")
	} else if strings.ContainsAny(c.ServerAddr, " /") {
		l.at("serverAddr", "%q is not a host name or IP address", c.ServerAddr)
	}
	if c.ServerPort == 0 && !l.pos.has("serverPort") {
		c.ServerPort = DefaultBindPort
	}
	if c.ServerAddr != "" || l.pos.has("serverPort") {
		checkPort(l, "serverPort", c.ServerPort, false)
	}
	checkFingerprint(l, "transport.tls.serverFingerprint", c.Transport.TLS.ServerFingerprint)
	seen := map[string]string{}
	if c.ServerAddr != "" {
		seen[net.JoinHostPort(c.ServerAddr, strconv.Itoa(c.ServerPort))] = "serverAddr"
	}
	for i := range c.Servers {
		s := &c.Servers[i]
		key := "servers[" + strconv.Itoa(i) + "]"
		if s.Addr == "" {
			l.at(key+".addr", "required: the address of this server")
		} else if strings.ContainsAny(s.Addr, " /") {
			l.at(key+".addr", "%q is not a host name or IP address", s.Addr)
		}
		if s.Port == 0 && !l.pos.has(key+".port") {
			s.Port = DefaultBindPort
		}
		checkPort(l, key+".port", s.Port, false)
		checkFingerprint(l, key+".fingerprint", s.Fingerprint)
		hp := net.JoinHostPort(s.Addr, strconv.Itoa(s.Port))
		if prev, dup := seen[hp]; dup && s.Addr != "" {
			l.at(key+".addr", "%s is already named by %s", hp, prev)
		}
		seen[hp] = key
	}
}

// FingerprintPrefix starts a server identity's fingerprint: "SHA256:" and the unpadded base64
// of the SHA-256 of its public key (SubjectPublicKeyInfo), as OpenSSH writes host keys'.
const FingerprintPrefix = "SHA256:"

func checkFingerprint(l *errorList, key, v string) {
	if v == "" {
		return
	}
	b64, ok := strings.CutPrefix(v, FingerprintPrefix)
	if raw, err := base64.RawStdEncoding.DecodeString(b64); !ok || err != nil || len(raw) != sha256.Size {
		l.at(key, "%q is not a fingerprint such as xp2p server prints at start (%s and 43 characters of base64)", v, FingerprintPrefix)
	}
}
