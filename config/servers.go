package config

import (
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
}

// Endpoint is a resolved server of a client: where to connect and with which token.
type Endpoint struct {
	Addr  string // host:port
	Token string
}

// Endpoints lists every server of the client: serverAddr/serverPort first, then [[servers]].
func (c *Client) Endpoints() []Endpoint {
	var out []Endpoint
	if c.ServerAddr != "" {
		out = append(out, Endpoint{Addr: net.JoinHostPort(c.ServerAddr, strconv.Itoa(c.ServerPort)), Token: c.Auth.Token})
	}
	for _, s := range c.Servers {
		tok := s.Token
		if tok == "" {
			tok = c.Auth.Token
		}
		out = append(out, Endpoint{Addr: net.JoinHostPort(s.Addr, strconv.Itoa(s.Port)), Token: tok})
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
		hp := net.JoinHostPort(s.Addr, strconv.Itoa(s.Port))
		if prev, dup := seen[hp]; dup && s.Addr != "" {
			l.at(key+".addr", "%s is already named by %s", hp, prev)
		}
		seen[hp] = key
	}
}
