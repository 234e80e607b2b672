package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// maxPageSize bounds the custom 404 page the server keeps in memory.
const maxPageSize = 1 << 20

// checkWeb validates the server's web ports (vhostHTTPPort, vhostHTTPSPort,
// tcpmuxHTTPConnectPort) and what goes with them.
func (c *Server) checkWeb(l *errorList) {
	ports := map[int]string{}
	if c.BindPort != 0 {
		ports[c.BindPort] = "bindPort"
	}
	for _, p := range []struct {
		key  string
		port int
	}{{"vhostHTTPPort", c.VhostHTTPPort}, {"vhostHTTPSPort", c.VhostHTTPSPort}, {"tcpmuxHTTPConnectPort", c.TCPMuxHTTPConnectPort}} {
		if p.port == 0 {
			continue
		}
		checkPort(l, p.key, p.port, false)
		if prev, dup := ports[p.port]; dup {
			l.at(p.key, "port %d is already %s: give each its own port", p.port, prev)
			continue
		}
		ports[p.port] = p.key
	}
	switch {
	case c.VhostHTTPTimeout < 0:
		l.at("vhostHTTPTimeout", "must not be negative")
	case c.VhostHTTPTimeout == 0:
		c.VhostHTTPTimeout = 60
	}
	if c.SubDomainHost != "" {
		c.SubDomainHost = strings.ToLower(strings.TrimSuffix(c.SubDomainHost, "."))
		if err := domainError(c.SubDomainHost, false); err != "" {
			l.at("subDomainHost", "%q %s", c.SubDomainHost, err)
		}
	}
	if a := &c.ACME; a.Enable {
		if c.VhostHTTPPort == 0 || c.VhostHTTPSPort == 0 {
			l.at("acme.enable", "needs vhostHTTPPort (the CA's HTTP-01 checks) and vhostHTTPSPort (where users get the certificates)")
		}
		if a.Storage == "" {
			a.Storage = filepath.Join(c.StateDir, "acme")
		}
		if a.CAURL != "" && !strings.HasPrefix(a.CAURL, "https://") {
			l.at("acme.caURL", "%q: an ACME directory is an https:// URL", a.CAURL)
		}
		if a.CARootsFile != "" {
			if _, err := os.Stat(a.CARootsFile); err != nil {
				l.at("acme.caRootsFile", "%v", err)
			}
		}
	} else if l.pos.has("acme") && !l.pos.has("acme.enable") {
		l.at("acme", "set acme.enable = true to get certificates")
	}
	if c.Custom404Page != "" {
		page, err := readPage(c.Custom404Page)
		if err != nil {
			l.at("custom404Page", "%v", err)
		}
		c.custom404 = page
	}
}

// Custom404 is the content of custom404Page (nil: the built-in page).
func (c *Server) Custom404() []byte { return c.custom404 }

func readPage(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > maxPageSize {
		return nil, fmt.Errorf("%s has %d bytes; a page of at most %d is kept in memory", path, st.Size(), maxPageSize)
	}
	return os.ReadFile(path)
}

// domainError says what is wrong with a host name users reach a proxy by ("" if nothing).
// wildcard admits frp's "*.example.com" (any one or more labels) and "*" (any host).
func domainError(d string, wildcard bool) string {
	if d == "" {
		return "is empty"
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return "" // users may reach a server by its address
	}
	if len(d) > 253 {
		return "is longer than 253 characters"
	}
	if wildcard && d == "*" {
		return ""
	}
	if wildcard {
		d = strings.TrimPrefix(d, "*.")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return "is not a host name (an empty or over-long label)"
		}
		for i, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			case r == '-' && i > 0 && i < len(label)-1:
			default:
				return fmt.Sprintf("is not a host name (%q)", r)
			}
		}
	}
	return ""
}
