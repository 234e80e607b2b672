package rendezvous

import (
	"fmt"
	"slices"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/relay"
	"github.com/xp2p/xp2p/vhost"
)

// publisher publishes the proxies of some wire kinds on the server, where users reach them:
// relay.Proxies owns tcp and udp ports. xp2p services are not published anywhere: the name
// registry holds them (client.newProxyTry), and visitors reach them through P2P sessions.
type publisher interface {
	// Add publishes a proxy of owner and returns where users reach it.
	Add(owner relay.Owner, req *wire.NewProxy) (addr string, err error)
	// Remove withdraws a proxy of owner (nothing if it has none of that name).
	Remove(owner relay.Owner, name string)
	// RemoveOwner withdraws every proxy of owner.
	RemoveOwner(owner relay.Owner)
	// Holders returns the owners of the proxies that hold what req asks for: its public port,
	// its host names.
	Holders(req *wire.NewProxy) []relay.Owner
	// Close withdraws everything and stops listening.
	Close()
}

// publishers maps every published wire kind to its publisher.
type publishers map[string]publisher

// all lists each publisher once (one may serve several kinds).
func (p publishers) all() []publisher {
	var out []publisher
	for _, kind := range wire.ProxyKindNames() {
		if pub := p[kind]; pub != nil && !slices.Contains(out, pub) {
			out = append(out, pub)
		}
	}
	return out
}

// publish publishes a proxy of owner with the publisher of its kind.
func (s *Server) publish(owner relay.Owner, req *wire.NewProxy) (string, error) {
	pub := s.publishers[req.Type]
	if pub == nil {
		return "", fmt.Errorf("proxy type %q is not published by this server", req.Type)
	}
	return pub.Add(owner, req)
}

// holders returns the owners of the proxies that hold what req asks for.
func (s *Server) holders(req *wire.NewProxy) []relay.Owner {
	if pub := s.publishers[req.Type]; pub != nil {
		return pub.Holders(req)
	}
	return nil
}

// unpublish withdraws owner's proxy of that name, whatever its kind.
func (s *Server) unpublish(owner relay.Owner, name string) {
	for _, pub := range s.publishers.all() {
		pub.Remove(owner, name)
	}
}

// unpublishOwner withdraws every proxy of owner.
func (s *Server) unpublishOwner(owner relay.Owner) {
	for _, pub := range s.publishers.all() {
		pub.RemoveOwner(owner)
	}
}

var _ publisher = (*relay.Proxies)(nil)
var _ publisher = (*vhost.Server)(nil)
