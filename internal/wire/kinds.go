package wire

import (
	"fmt"
	"slices"
)

// Proxy kinds on the wire: what the server does with a proxy a client registers. A config's
// proxy type maps to one of them (package config: xtcp, stcp and sudp are all xp2p).
const (
	ProxyTCP  = "tcp"
	ProxyUDP  = "udp"
	ProxyXP2P = "xp2p"
)

// ProxyKind is one kind of proxy as the server sees it: whether it is published on the server
// (its users reach it there) or registered by name for P2P sessions, and what a NewProxy of
// that kind must carry. Kinds are defined in this table only; the server looks up how it
// publishes each kind by its name.
type ProxyKind struct {
	Name string
	// P2P: an xp2p service, registered by name; visitors reach it through P2P sessions.
	P2P bool
	// Groups: proxies of this kind may form load-balancing groups (one port, several clients).
	Groups bool
	// validate checks the NewProxy fields of this kind.
	validate func(*NewProxy) error
}

var proxyKinds = []*ProxyKind{
	{Name: ProxyTCP, Groups: true, validate: validateRemotePort},
	{Name: ProxyUDP, validate: validateRemotePort},
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
