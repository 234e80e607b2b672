package config

import (
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/xp2p/xp2p/internal/wire"
)

// Web proxies, told apart by host name on shared ports of the server (frp's): http on
// vhostHTTPPort (a reverse proxy: by Host, path and user), https on vhostHTTPSPort (by the TLS
// server name; the local service holds the certificate), tcpmux on tcpmuxHTTPConnectPort (by
// the host of an HTTP CONNECT).
func init() {
	web := func(name, wireKind string, keys ...string) *ProxyType {
		return &ProxyType{Name: name, Wire: wireKind, Pooled: true, Groups: true, ServerLimit: true, network: "tcp",
			webKeys: append([]string{"customDomains", "subdomain"}, keys...), check: checkWebProxy}
	}
	registerProxyType(web(TypeHTTP, wire.ProxyHTTP, "locations", "httpUser", "httpPassword", "hostHeaderRewrite",
		"requestHeaders", "responseHeaders", "routeByHTTPUser"))
	registerProxyType(web(TypeHTTPS, wire.ProxyHTTPS))
	registerProxyType(web(TypeTCPMux, wire.ProxyTCPMux, "httpUser", "httpPassword", "routeByHTTPUser", "multiplexer"))
}

// webKeys are the keys of web proxies; each type accepts some of them (ProxyType.webKeys).
var webKeys = []string{"customDomains", "subdomain", "locations", "httpUser", "httpPassword", "hostHeaderRewrite",
	"requestHeaders", "responseHeaders", "routeByHTTPUser", "multiplexer"}

// checkWebKeys refuses the web keys a proxy's type does not have, naming the types that do.
func checkWebKeys(l *errorList, key string, p *Proxy, typ *ProxyType) {
	for _, k := range webKeys {
		if !l.pos.has(key+"."+k) || slices.Contains(typ.webKeys, k) {
			continue
		}
		l.at(key+"."+k, "not a key of %s proxies: it is for %s proxies", typ.Name,
			typeList(func(t *ProxyType) bool { return slices.Contains(t.webKeys, k) }))
	}
}

// Bounds on what a web proxy asks the server to keep (the server checks them again).
const (
	maxDomains   = wire.MaxDomains
	maxLocations = wire.MaxLocations
	maxHeaders   = wire.MaxHeaders
)

func checkWebProxy(l *errorList, key string, p *Proxy) {
	if p.RemotePort != 0 {
		l.at(key+".remotePort", "%s proxies have no remotePort: users reach them by host name on the server's %s", p.Type, webPortKey(p.Type))
	}
	if p.SecretKey != "" {
		l.at(key+".secretKey", "only xp2p services have a secretKey; %s proxies are public on the server's %s", p.Type, webPortKey(p.Type))
	}
	if len(p.CustomDomains) == 0 && p.SubDomain == "" {
		l.at(key+".customDomains", "set customDomains or subdomain: the host names users reach this %s proxy by", p.Type)
	}
	if len(p.CustomDomains) > maxDomains {
		l.at(key+".customDomains", "%d domains, at most %d", len(p.CustomDomains), maxDomains)
	}
	for i, d := range p.CustomDomains {
		p.CustomDomains[i] = strings.ToLower(strings.TrimSuffix(d, "."))
		if err := domainError(p.CustomDomains[i], true); err != "" {
			l.at(key+".customDomains["+strconv.Itoa(i)+"]", "%q %s", d, err)
		}
	}
	if s := p.SubDomain; s != "" {
		p.SubDomain = strings.ToLower(s)
		if strings.ContainsAny(s, ".*") || domainError(p.SubDomain, false) != "" {
			l.at(key+".subdomain", "%q is not one label of a host name (no \".\" or \"*\"): the server puts it under its subDomainHost", s)
		}
	}
	if len(p.Locations) > maxLocations {
		l.at(key+".locations", "%d locations, at most %d", len(p.Locations), maxLocations)
	}
	for i, loc := range p.Locations {
		if loc != "" && !strings.HasPrefix(loc, "/") {
			l.at(key+".locations["+strconv.Itoa(i)+"]", "%q must start with /", loc)
		}
	}
	if p.HTTPPassword != "" && p.HTTPUser == "" {
		l.at(key+".httpPassword", "set httpUser too")
	}
	if h := p.HostHeaderRewrite; h != "" && !httpguts.ValidHostHeader(h) {
		l.at(key+".hostHeaderRewrite", "%q is not a valid Host header", h)
	}
	checkHeaders(l, key+".requestHeaders.set", p.RequestHeaders.Set)
	checkHeaders(l, key+".responseHeaders.set", p.ResponseHeaders.Set)
	if p.Type == TypeTCPMux {
		switch p.Multiplexer {
		case "httpconnect":
		case "":
			l.at(key+".multiplexer", "required: \"httpconnect\"")
		default:
			l.at(key+".multiplexer", "unknown multiplexer %q; use \"httpconnect\"", p.Multiplexer)
		}
	}
}

func checkHeaders(l *errorList, key string, set map[string]string) {
	if len(set) > maxHeaders {
		l.at(key, "%d headers, at most %d", len(set), maxHeaders)
	}
	for name, v := range set {
		if !httpguts.ValidHeaderFieldName(name) {
			l.at(key+"."+name, "%q is not a header name", name)
		} else if !httpguts.ValidHeaderFieldValue(v) || len(v) > wire.MaxHeaderValue {
			l.at(key+"."+name, "not a valid header value (no line breaks or control characters, at most %d bytes)", wire.MaxHeaderValue)
		}
	}
}

// webPortKey is the server key of the port a web proxy type is served on.
func webPortKey(typ string) string {
	switch typ {
	case TypeHTTPS:
		return "vhostHTTPSPort"
	case TypeTCPMux:
		return "tcpmuxHTTPConnectPort"
	}
	return "vhostHTTPPort"
}
