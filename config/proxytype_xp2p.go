package config

import "github.com/xp2p/xp2p/internal/wire"

// xp2p services and frp's names for them: visitors reach them by name and secretKey, through a
// P2P session (direct, or relayed by the server). These are also the visitor types.
func init() {
	registerProxyType(&ProxyType{Name: TypeXP2P, Wire: wire.ProxyXP2P, P2P: true, check: checkService})
	registerProxyType(&ProxyType{Name: TypeXTCP, Wire: wire.ProxyXP2P, Alias: TypeXP2P, P2P: true, check: checkService})
	registerProxyType(&ProxyType{Name: TypeSTCP, Wire: wire.ProxyXP2P, Alias: TypeXP2P, P2P: true, RelayOnly: true, check: checkService})
	registerProxyType(&ProxyType{Name: TypeSUDP, Wire: wire.ProxyXP2P, Alias: TypeXP2P, P2P: true, RelayOnly: true, check: checkService})
}

func checkService(l *errorList, key string, p *Proxy) {
	if p.SecretKey == "" {
		l.at(key+".secretKey", "required for %s services: visitors must know it", p.Type)
	}
	if p.RemotePort != 0 {
		l.at(key+".remotePort", "a %s service has no remote port: visitors reach it by name", p.Type)
	}
	checkProtocol(l, key+".protocol", &p.Protocol, p.Type)
}
