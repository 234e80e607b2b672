package config

import "github.com/xp2p/xp2p/internal/wire"

// tcp and udp: frp's classic proxies, published on a port of the server (remotePort).
func init() {
	registerProxyType(&ProxyType{Name: TypeTCP, Wire: wire.ProxyTCP, Pooled: true, Groups: true, ServerLimit: true,
		network: "tcp", check: checkRemotePort})
	registerProxyType(&ProxyType{Name: TypeUDP, Wire: wire.ProxyUDP, network: "udp", check: checkRemotePort})
}

func checkRemotePort(l *errorList, key string, p *Proxy) {
	checkPort(l, key+".remotePort", p.RemotePort, true)
	if p.SecretKey != "" {
		l.at(key+".secretKey", "only xp2p services have a secretKey; a %s proxy is public on its remotePort", p.Type)
	}
}
