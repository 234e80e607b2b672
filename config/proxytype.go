package config

import (
	"slices"
	"strings"

	"github.com/xp2p/xp2p/internal/wire"
)

// ProxyType is one proxy type as configs write it: what the client and the server do with a
// proxy of that type, and its own checks of a [[proxies]] entry. Each type lives in a file of
// its own (proxytype_*.go) and registers itself here; nothing else names types. The server
// side of a type is its wire kind (internal/wire's table), published by the package the server
// registers for that kind.
type ProxyType struct {
	Name string
	// Wire is the kind the server is told.
	Wire string
	// Alias names the type this one stands for in frp's vocabulary (xtcp is xp2p); "" if none.
	Alias string
	// P2P: an xp2p service, reached by name and secretKey through a P2P session; it is also a
	// visitor type.
	P2P bool
	// RelayOnly: a P2P service whose sessions never go direct (frp's stcp, sudp).
	RelayOnly bool
	// Pooled: the server carries this proxy's users on the client's pooled TCP work
	// connections (when it has any idle).
	Pooled bool
	// Groups: proxies of this type may share a loadBalancer.group.
	Groups bool
	// ServerLimit: transport.bandwidthLimitMode "server" applies (the server carries the bytes).
	ServerLimit bool
	// network is the local service's network ("tcp", "udp"); "" takes the protocol key.
	network string
	// webKeys are the keys of web proxies (see proxytype_web.go) this type has.
	webKeys []string
	// check validates and completes the keys that are this type's own.
	check func(l *errorList, key string, p *Proxy)
}

var proxyTypes []*ProxyType

// registerProxyType adds a type to the table (from the init of its file).
func registerProxyType(t *ProxyType) {
	kind := wire.LookupProxyKind(t.Wire)
	if LookupProxyType(t.Name) != nil || kind == nil || kind.P2P != t.P2P || t.Groups != kind.Groups {
		panic("config: bad proxy type " + t.Name)
	}
	proxyTypes = append(proxyTypes, t)
}

// LookupProxyType returns the type of that name, or nil.
func LookupProxyType(name string) *ProxyType {
	i := slices.IndexFunc(proxyTypes, func(t *ProxyType) bool { return t.Name == name })
	if i < 0 {
		return nil
	}
	return proxyTypes[i]
}

// ProxyType returns the proxy's type (valid once the config is validated).
func (p *Proxy) ProxyType() *ProxyType { return LookupProxyType(p.Type) }

// Network is the network of the proxy's local service: "tcp" or "udp".
func (p *Proxy) Network() string {
	if t := p.ProxyType(); t != nil && t.network != "" {
		return t.network
	}
	return p.Protocol
}

// ProxyType returns the visitor's type (a P2P proxy type; valid once the config is validated).
func (v *Visitor) ProxyType() *ProxyType { return LookupProxyType(v.Type) }

// typeList names the types for a message, frp's aliases left out: "tcp, udp or xp2p".
func typeList(keep func(*ProxyType) bool) string {
	var names []string
	for _, t := range proxyTypes {
		if t.Alias == "" && keep(t) {
			names = append(names, t.Name)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
