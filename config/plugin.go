package config

import (
	"net"
	"os"
	"slices"
	"strings"
)

// PluginOptions is a proxy's [proxies.plugin] table (frp's client plugins): a service the
// client runs itself for the proxy's users instead of forwarding them to localIP:localPort.
// The table holds the keys of every plugin; each plugin takes its own (pluginTypes).
type PluginOptions struct {
	Type string `toml:"type"`
	// socks5
	Username string `toml:"username"`
	Password string `toml:"password"`
	// http_proxy, static_file: basic auth of the users
	HTTPUser     string `toml:"httpUser"`
	HTTPPassword string `toml:"httpPassword"`
	// static_file
	LocalPath   string `toml:"localPath"`
	StripPrefix string `toml:"stripPrefix"`
	// unix_domain_socket
	UnixPath string `toml:"unixPath"`
	// the bridges (https2http, https2https, http2https, http2http) and tls2raw: the local
	// service, and for the TLS ones the certificate users see (a generated one if unset)
	LocalAddr         string           `toml:"localAddr"`
	HostHeaderRewrite string           `toml:"hostHeaderRewrite"`
	RequestHeaders    HeaderOperations `toml:"requestHeaders"`
	EnableHTTP2       *bool            `toml:"enableHTTP2"`
	CrtPath           string           `toml:"crtPath"`
	KeyPath           string           `toml:"keyPath"`
}

// Plugin names (frp's).
const (
	PluginSocks5           = "socks5"
	PluginHTTPProxy        = "http_proxy"
	PluginStaticFile       = "static_file"
	PluginUnixDomainSocket = "unix_domain_socket"
	PluginHTTPS2HTTP       = "https2http"
	PluginHTTPS2HTTPS      = "https2https"
	PluginHTTP2HTTPS       = "http2https"
	PluginHTTP2HTTP        = "http2http"
	PluginTLS2Raw          = "tls2raw"
)

// pluginKeys are the keys each plugin takes besides type.
var pluginKeys = map[string][]string{
	PluginSocks5:           {"username", "password"},
	PluginHTTPProxy:        {"httpUser", "httpPassword"},
	PluginStaticFile:       {"localPath", "stripPrefix", "httpUser", "httpPassword"},
	PluginUnixDomainSocket: {"unixPath"},
	PluginHTTPS2HTTP:       {"localAddr", "hostHeaderRewrite", "requestHeaders", "enableHTTP2", "crtPath", "keyPath"},
	PluginHTTPS2HTTPS:      {"localAddr", "hostHeaderRewrite", "requestHeaders", "enableHTTP2", "crtPath", "keyPath"},
	PluginHTTP2HTTPS:       {"localAddr", "hostHeaderRewrite", "requestHeaders"},
	PluginHTTP2HTTP:        {"localAddr", "hostHeaderRewrite", "requestHeaders"},
	PluginTLS2Raw:          {"localAddr", "crtPath", "keyPath"},
}

// pluginNames lists the plugins in the order messages name them.
var pluginNames = []string{PluginSocks5, PluginHTTPProxy, PluginStaticFile, PluginUnixDomainSocket,
	PluginHTTPS2HTTP, PluginHTTPS2HTTPS, PluginHTTP2HTTPS, PluginHTTP2HTTP, PluginTLS2Raw}

// checkPlugin validates a proxy's plugin table (key is "proxies[i].plugin").
func checkPlugin(l *errorList, key string, p *Proxy) {
	o := p.Plugin
	keys, known := pluginKeys[o.Type]
	switch {
	case o.Type == "":
		l.at(key+".type", "required: %s", strings.Join(pluginNames, ", "))
		return
	case o.Type == "virtual_net":
		l.at(key+".type", "frp's virtual_net is not supported by xp2p (a visitor reaches the provider's LAN through a socks5 plugin)")
		return
	case !known:
		l.at(key+".type", "unknown plugin %q; use %s", o.Type, strings.Join(pluginNames, ", "))
		return
	}
	if p.Network() == "udp" {
		l.at(key, "a plugin serves tcp connections; this proxy is udp")
	}
	if p.HealthCheck.Type != "" {
		l.at(key, "a plugin runs inside the client: healthCheck has no local service to probe")
	}
	if p.Transport.ProxyProtocolVersion != "" {
		l.at(key, "a plugin gets the user's address itself: drop transport.proxyProtocolVersion")
	}
	for _, k := range []string{"username", "password", "httpUser", "httpPassword", "localPath", "stripPrefix", "unixPath",
		"localAddr", "hostHeaderRewrite", "requestHeaders", "enableHTTP2", "crtPath", "keyPath"} {
		if l.pos.has(key+"."+k) && !slices.Contains(keys, k) {
			var owners []string
			for _, n := range pluginNames {
				if slices.Contains(pluginKeys[n], k) {
					owners = append(owners, n)
				}
			}
			l.at(key+"."+k, "not a key of the %s plugin: it is for %s", o.Type, strings.Join(owners, ", "))
		}
	}
	pair := func(a, b, va, vb string) {
		if (va == "") != (vb == "") {
			l.at(key+"."+a, "set %s and %s together", a, b)
		}
	}
	switch o.Type {
	case PluginSocks5:
		pair("username", "password", o.Username, o.Password)
	case PluginHTTPProxy, PluginStaticFile:
		pair("httpUser", "httpPassword", o.HTTPUser, o.HTTPPassword)
	}
	// socks5 and http_proxy lead their users wherever this client reaches: on a port of the
	// server, without a password, that is everyone on the internet into the client's LAN and
	// loopback services. frp lets such a config run; xp2p refuses it, as it refuses a
	// dashboard without a password on an address others reach. An xp2p service is behind
	// its secretKey.
	if t := p.ProxyType(); t != nil && !t.P2P {
		switch {
		case o.Type == PluginSocks5 && o.Username == "":
			l.at(key+".type", "a socks5 plugin of a %s proxy without username and password is an open proxy for anyone who reaches the server: it leads them into whatever this client reaches (its LAN, its loopback services); set username and password, or publish it as an xp2p service", p.Type)
		case o.Type == PluginHTTPProxy && o.HTTPUser == "":
			l.at(key+".type", "an http_proxy plugin of a %s proxy without httpUser and httpPassword is an open proxy for anyone who reaches the server: it leads them into whatever this client reaches (its LAN, its loopback services); set httpUser and httpPassword, or publish it as an xp2p service", p.Type)
		}
	}
	switch o.Type {
	case PluginStaticFile:
		if o.LocalPath == "" {
			l.at(key+".localPath", "required: the directory to serve")
		} else if st, err := os.Stat(o.LocalPath); err != nil {
			l.at(key+".localPath", "%v", err)
		} else if !st.IsDir() {
			l.at(key+".localPath", "%s is not a directory", o.LocalPath)
		}
		if s := o.StripPrefix; s != "" {
			o.StripPrefix = "/" + strings.Trim(s, "/")
		}
	case PluginUnixDomainSocket:
		if o.UnixPath == "" {
			l.at(key+".unixPath", "required: the socket's path")
		}
	case PluginHTTPS2HTTP, PluginHTTPS2HTTPS, PluginHTTP2HTTPS, PluginHTTP2HTTP, PluginTLS2Raw:
		if o.LocalAddr == "" {
			l.at(key+".localAddr", "required: HOST:PORT of the local service")
		} else if _, _, err := net.SplitHostPort(o.LocalAddr); err != nil {
			l.at(key+".localAddr", "%q is not HOST:PORT", o.LocalAddr)
		}
		pair("crtPath", "keyPath", o.CrtPath, o.KeyPath)
		if h := o.HostHeaderRewrite; h != "" && strings.ContainsAny(h, " \r\n/") {
			l.at(key+".hostHeaderRewrite", "%q is not a valid Host header", h)
		}
		checkHeaders(l, key+".requestHeaders.set", o.RequestHeaders.Set)
		if o.EnableHTTP2 == nil && (o.Type == PluginHTTPS2HTTP || o.Type == PluginHTTPS2HTTPS) {
			on := true
			o.EnableHTTP2 = &on
		}
	}
}
