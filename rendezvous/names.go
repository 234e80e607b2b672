package rendezvous

import (
	"errors"
	"fmt"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/relay"
)

// proxyKey names a proxy or xp2p service on the server: the client's frp user and the proxy's
// own name, kept apart. frp joins them into "user.name", so that user alice's "web" and a
// user-less client's "alice.web" are one name there and whoever registers first receives the
// other's users; here they are two names that only print alike.
type proxyKey struct{ user, name string }

// String is the name as frp writes it: "user.name", or the name alone without a user.
func (k proxyKey) String() string {
	if k.user == "" {
		return k.name
	}
	return k.user + "." + k.name
}

// nameEntry is who holds a name: one client, or the members of one load-balancing group. Every
// member of a group has the group's kind and name, and proved the group's key when it joined
// the group's port (relay.Proxies); a name held alone is never shared, and a group never takes
// a name held alone (nor the other way round).
type nameEntry struct {
	kind    string
	group   string // "" for a name held alone
	members []nameMember
}

type nameMember struct {
	c *client
	// online: published; false while the publication is under way (and may still fail).
	online bool
	// stats holds an xp2p service's figures live while it is online (relay.Proxies holds those
	// of the proxies it publishes).
	stats *relay.Stats
}

// errNameHeld refuses a name another client holds alone and is alive; errNameOfGroup a name
// a load-balancing group holds.
var (
	errNameHeld    = errors.New("already in use by another client")
	errNameOfGroup = errors.New("used by load-balancing group")
)

// claimLocked reserves key for c, as a proxy of kind in group ("" for none). When another
// client holds the name alone and c asks for it alone, that client is returned as holder and
// nothing is reserved: the caller decides whether the holder is still alive. s.mu is held.
func (s *Server) claimLocked(c *client, key proxyKey, kind, group string) (holder *client, err error) {
	if c.left {
		return nil, errors.New("client session is ending")
	}
	e := s.names[key]
	take := func() error {
		if err := s.quotas.take(c.ident, wire.TakesPort(kind)); err != nil {
			return fmt.Errorf("proxy %q: %w", key, err)
		}
		c.proxies[key.name] = kind
		return nil
	}
	switch {
	case e == nil:
		if err := take(); err != nil {
			return nil, err
		}
		s.names[key] = &nameEntry{kind: kind, group: group, members: []nameMember{{c: c}}}
		return nil, nil
	case e.has(c):
		return nil, fmt.Errorf("proxy %q is already registered", key)
	case e.group != "" && e.group == group && e.kind == kind:
		// Joining the group: publishing it checks the group's key and port.
		if err := take(); err != nil {
			return nil, err
		}
		e.members = append(e.members, nameMember{c: c})
		return nil, nil
	case e.group != "":
		return nil, fmt.Errorf("proxy name %q is %w %q (of %s proxies)", key, errNameOfGroup, e.group, e.kind)
	case group != "":
		return nil, fmt.Errorf("proxy name %q is %w, not in group %q", key, errNameHeld, group)
	default:
		return e.members[0].c, nil
	}
}

// confirmLocked marks c's claim of key published; false if c no longer holds it (its session
// ended meanwhile). s.mu is held.
func (s *Server) confirmLocked(c *client, key proxyKey) bool {
	e := s.names[key]
	if e == nil || c.left {
		return false
	}
	for i := range e.members {
		if m := &e.members[i]; m.c == c {
			m.online = true
			if wire.IsP2PKind(e.kind) {
				m.stats = s.Stats.Acquire(key.String(), e.kind, c.ident.String())
			}
			return true
		}
	}
	return false
}

// releaseLocked drops c's claim of key, and the name once nobody holds it. s.mu is held.
func (s *Server) releaseLocked(c *client, key proxyKey) {
	kind, claimed := c.proxies[key.name]
	if !claimed {
		return
	}
	delete(c.proxies, key.name)
	s.quotas.give(c.ident, wire.TakesPort(kind))
	e := s.names[key]
	if e == nil {
		return
	}
	for i, m := range e.members {
		if m.c == c {
			if m.stats != nil {
				s.Stats.Release(m.stats)
			}
			e.members = append(e.members[:i:i], e.members[i+1:]...)
			break
		}
	}
	if len(e.members) == 0 {
		delete(s.names, key)
	}
}

// providerLocked is the client that provides the xp2p service key, or nil. s.mu is held.
func (s *Server) providerLocked(key proxyKey) *client {
	e := s.names[key]
	if e == nil || !wire.IsP2PKind(e.kind) {
		return nil
	}
	for _, m := range e.members {
		if m.online {
			return m.c
		}
	}
	return nil
}

// onlineOwnersLocked maps every name with a published member to those members. s.mu is held.
func (s *Server) onlineOwnersLocked() map[string][]*client {
	out := make(map[string][]*client, len(s.names))
	for key, e := range s.names {
		for _, m := range e.members {
			if m.online {
				out[key.String()] = append(out[key.String()], m.c)
			}
		}
	}
	return out
}

func (e *nameEntry) has(c *client) bool {
	for _, m := range e.members {
		if m.c == c {
			return true
		}
	}
	return false
}
