package rendezvous

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/xp2p/xp2p/internal/auth"
)

// Per-client limits (maxProxiesPerClient, maxPortsPerClient) hold per identity, not per
// session: a client that opens more sessions, or a process that starts again under a new run
// ID, gets no more than one. With one token shared by everyone, what a client says about
// itself (its run ID, its frp user) is its own choice; the address it comes from is not. So an
// identity is one frp user from one source (an IPv4 address, an IPv6 /64): the sessions of a
// user behind one address share a quota, users behind one shared address (a CGNAT, an office)
// have one each, as frp keeps their names apart, and one source holds at most usersPerSource
// identities' worth in all, so that inventing users buys a token holder little.
const usersPerSource = 4

// identity is who per-client limits count by.
type identity struct {
	user   string
	source netip.Prefix
}

func identityOf(user string, addr netip.Addr) identity {
	return identity{user: user, source: auth.Source(addr)}
}

// String names the identity in errors and as the owner of offline figures: "user@source".
func (id identity) String() string { return id.user + "@" + id.source.String() }

// errQuota refuses a proxy beyond its identity's limits.
var errQuota = errors.New("over this client's limit")

// quotaUse is what one identity or source holds.
type quotaUse struct{ names, ports int }

// quotas counts the names (proxies and xp2p services) and public ports each identity and source
// holds. Guarded by the server's mu.
type quotas struct {
	maxNames, maxPorts int // per identity; 0 is no limit
	byIdentity         map[identity]*quotaUse
	bySource           map[netip.Prefix]*quotaUse
}

func newQuotas(maxNames, maxPorts int) *quotas {
	return &quotas{maxNames: maxNames, maxPorts: maxPorts, byIdentity: map[identity]*quotaUse{}, bySource: map[netip.Prefix]*quotaUse{}}
}

// take counts one more name for id, and a port when port is set, if the limits allow.
func (q *quotas) take(id identity, port bool) error {
	u, su := q.byIdentity[id], q.bySource[id.source]
	if u == nil {
		u = &quotaUse{}
	}
	if su == nil {
		su = &quotaUse{}
	}
	check := func(what, key string, max, mine, source int) error {
		switch {
		case max <= 0:
			return nil
		case mine >= max:
			return fmt.Errorf("%w: %d %s of user %q from %s (%s = %d)", errQuota, mine, what, id.user, id.source, key, max)
		case source >= max*usersPerSource:
			return fmt.Errorf("%w: %d %s of all users from %s (%d × %s = %d)", errQuota, source, what, id.source, usersPerSource, key, max*usersPerSource)
		}
		return nil
	}
	if err := check("proxies", "maxProxiesPerClient", q.maxNames, u.names, su.names); err != nil {
		return err
	}
	if port {
		if err := check("ports", "maxPortsPerClient", q.maxPorts, u.ports, su.ports); err != nil {
			return err
		}
	}
	u.names++
	su.names++
	if port {
		u.ports++
		su.ports++
	}
	q.byIdentity[id], q.bySource[id.source] = u, su
	return nil
}

// give returns what take counted.
func (q *quotas) give(id identity, port bool) {
	for _, x := range []struct {
		use  *quotaUse
		drop func()
	}{
		{q.byIdentity[id], func() { delete(q.byIdentity, id) }},
		{q.bySource[id.source], func() { delete(q.bySource, id.source) }},
	} {
		if x.use == nil {
			continue
		}
		x.use.names--
		if port {
			x.use.ports--
		}
		if x.use.names <= 0 {
			x.drop()
		}
	}
}
