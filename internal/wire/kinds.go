package wire

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Proxy kinds on the wire: what the server does with a proxy a client registers. A config's
// proxy type maps to one of them (package config: xtcp, stcp and sudp are all xp2p).
const (
	ProxyTCP    = "tcp"
	ProxyUDP    = "udp"
	ProxyHTTP   = "http"
	ProxyHTTPS  = "https"
	ProxyTCPMux = "tcpmux"
	ProxyXP2P   = "xp2p"
)

// ProxyKind is one kind of proxy as the server sees it: whether it is published on the server
// (its users reach it there) or registered by name for P2P sessions, and what a NewProxy of
// that kind must carry. Kinds are defined in this table only; the server looks up how it
// publishes each kind by its name.
type ProxyKind struct {
	Name string
	// P2P: an xp2p service, registered by name; visitors reach it through P2P sessions.
	P2P bool
	// Groups: proxies of this kind may form load-balancing groups (one port or host, several
	// clients).
	Groups bool
	// Port: a proxy of this kind takes a public port of its own (remotePort), which
	// maxPortsPerClient counts.
	Port bool
	// validate checks the NewProxy fields of this kind.
	validate func(*NewProxy) error
}

var proxyKinds = []*ProxyKind{
	{Name: ProxyTCP, Groups: true, Port: true, validate: validateRemotePort},
	{Name: ProxyUDP, Port: true, validate: validateRemotePort},
	{Name: ProxyHTTP, Groups: true, validate: validateWeb},
	{Name: ProxyHTTPS, Groups: true, validate: validateWeb},
	{Name: ProxyTCPMux, Groups: true, validate: validateWeb},
	{Name: ProxyXP2P, P2P: true},
}

// LookupProxyKind returns the kind of that name, or nil.
func LookupProxyKind(name string) *ProxyKind {
	i := slices.IndexFunc(proxyKinds, func(k *ProxyKind) bool { return k.Name == name })
	if i < 0 {
		return nil
	}
	return proxyKinds[i]
}

// ProxyKindNames lists every kind, in a fixed order (dashboards count proxies by kind).
func ProxyKindNames() []string {
	out := make([]string, len(proxyKinds))
	for i, k := range proxyKinds {
		out[i] = k.Name
	}
	return out
}

// TakesPort reports whether a proxy of kind takes a public port of its own.
func TakesPort(kind string) bool {
	k := LookupProxyKind(kind)
	return k != nil && k.Port
}

// IsP2PKind reports whether kind is registered for P2P sessions rather than published.
func IsP2PKind(kind string) bool {
	k := LookupProxyKind(kind)
	return k != nil && k.P2P
}

func validateRemotePort(m *NewProxy) error {
	if m.RemotePort < 0 || m.RemotePort > 65535 {
		return fmt.Errorf("remotePort %d out of range 0-65535", m.RemotePort)
	}
	return nil
}

// Bounds on what a web proxy asks the server to keep.
const (
	MaxDomains     = 64
	MaxLocations   = 64
	MaxHeaders     = 64
	MaxHeaderValue = 4096
)

// validateWeb checks the host names, paths and headers of an http, https or tcpmux proxy: the
// server routes users by them and writes the headers into their requests.
func validateWeb(m *NewProxy) error {
	if m.RemotePort != 0 {
		return fmt.Errorf("a %s proxy has no remotePort", m.Type)
	}
	if len(m.CustomDomains) == 0 && m.SubDomain == "" {
		return errors.New("no customDomains and no subdomain")
	}
	if len(m.CustomDomains) > MaxDomains || len(m.Locations) > MaxLocations {
		return fmt.Errorf("at most %d customDomains and %d locations", MaxDomains, MaxLocations)
	}
	for _, d := range append(m.CustomDomains, m.SubDomain) {
		if len(d) > 253 || strings.ContainsAny(d, ":/ \t\r\n") {
			return fmt.Errorf("%q is not a host name", d)
		}
	}
	if strings.ContainsAny(m.SubDomain, ".*") {
		return fmt.Errorf("subdomain %q: one label, no \".\" or \"*\"", m.SubDomain)
	}
	for _, loc := range m.Locations {
		if len(loc) > 1024 || (loc != "" && !strings.HasPrefix(loc, "/")) {
			return fmt.Errorf("location %q must start with / (at most 1024 bytes)", loc)
		}
	}
	if m.HostHeaderRewrite != "" && !httpguts.ValidHostHeader(m.HostHeaderRewrite) {
		return fmt.Errorf("hostHeaderRewrite %q is not a Host header", m.HostHeaderRewrite)
	}
	for _, set := range []map[string]string{m.RequestHeaders, m.ResponseHeaders} {
		if len(set) > MaxHeaders {
			return fmt.Errorf("at most %d headers to set", MaxHeaders)
		}
		for k, v := range set {
			if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) || len(v) > MaxHeaderValue {
				return fmt.Errorf("header %q: not a valid name and value", k)
			}
		}
	}
	for _, s := range []string{m.HTTPUser, m.HTTPPassword, m.RouteByHTTPUser, m.Multiplexer} {
		if len(s) > MaxNameLen {
			return fmt.Errorf("httpUser, httpPassword, routeByHTTPUser and multiplexer have at most %d bytes", MaxNameLen)
		}
	}
	return nil
}
