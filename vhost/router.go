package vhost

import (
	"cmp"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xp2p/xp2p/relay"
)

// Errors a client gets back when it asks for a route.
var (
	ErrRouteInUse = errors.New("already served by another proxy")
	ErrGroupKey   = errors.New("wrong loadBalancer.groupKey for this group")
)

// routeKey is what a route answers: a host name (or frp's "*.example.com" and "*"), a path
// prefix ("" for every path) and the user of the request's basic auth ("" for any user).
type routeKey struct {
	domain, location, user string
}

// route leads the requests of one key to one web proxy, or to a load-balancing group of them
// (round robin).
type route struct {
	key   routeKey
	group string
	// groupKey is as the members send it: derived from their loadBalancer.groupKey.
	groupKey []byte
	members  atomic.Pointer[[]*webProxy]
	next     atomic.Uint64
}

// pick returns the next member (nil: none left).
func (r *route) pick() *webProxy {
	ms := *r.members.Load()
	if len(ms) == 0 {
		return nil
	}
	return ms[int(r.next.Add(1)%uint64(len(ms)))]
}

// first is the member whose settings (user, password, headers) the route applies: frp's
// groups take the first member's.
func (r *route) first() *webProxy {
	if ms := *r.members.Load(); len(ms) > 0 {
		return ms[0]
	}
	return nil
}

// router finds the route of a request: by exact host, then by wildcard, then "*"; for each
// host the routes of the request's user before those for any user; among those the longest
// matching location (frp's vhost.Routers).
type router struct {
	mu sync.RWMutex
	// byHost holds, for each host and user, the routes sorted by location, longest first.
	byHost map[string]map[string][]*route
}

func newRouter() *router { return &router{byHost: map[string]map[string][]*route{}} }

// add puts wp on the route of key: a new route, or a group's route it may join.
//
// A host belongs to whoever holds its first route: the client of that route's proxies, or the
// load-balancing group with that key. Another client asking for any route of the host (another
// location, another routeByHTTPUser) is refused as for the route itself: with one shared
// token, anyone could otherwise ask for location "/" of someone else's host, which outranks
// the host's route without location, and receive all its users, their passwords included
// (frp keys routes by host, location and user, and lets that happen).
func (rt *router) add(key routeKey, wp *webProxy, group string, groupKey []byte) (*route, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	users := rt.byHost[key.domain]
	for _, routes := range users {
		for _, r := range routes {
			if r.key != key && !r.sharesHost(wp, group, groupKey) {
				return nil, fmt.Errorf("%s: %w (%s)", describe(key), ErrRouteInUse, describe(r.key))
			}
		}
	}
	// A name under another client's wildcard is that client's too: x.example.org would
	// otherwise take the requests of *.example.org's users for x (and, on the http port, a
	// certificate for it from an ACME CA). A wildcard asked for over names others hold
	// already leaves those names to them.
	for _, w := range wildcards(key.domain) {
		for _, routes := range rt.byHost[w] {
			for _, r := range routes {
				if !r.sharesHost(wp, group, groupKey) {
					return nil, fmt.Errorf("%s: %w (under %s)", describe(key), ErrRouteInUse, w)
				}
			}
		}
	}
	if users == nil {
		users = map[string][]*route{}
		rt.byHost[key.domain] = users
	}
	routes := users[key.user]
	if i := slices.IndexFunc(routes, func(r *route) bool { return r.key == key }); i >= 0 {
		r := routes[i]
		switch {
		case group == "" || r.group != group:
			return nil, fmt.Errorf("%s: %w", describe(key), ErrRouteInUse)
		case subtle.ConstantTimeCompare(r.groupKey, groupKey) != 1:
			return nil, fmt.Errorf("%s, group %q: %w", describe(key), group, ErrGroupKey)
		}
		old := *r.members.Load()
		next := append(append([]*webProxy(nil), old...), wp)
		r.members.Store(&next)
		return r, nil
	}
	r := &route{key: key, group: group, groupKey: groupKey}
	r.members.Store(&[]*webProxy{wp})
	routes = append(routes, r)
	// Longest first; two locations of one length cannot both match one path.
	slices.SortStableFunc(routes, func(a, b *route) int { return cmp.Compare(len(b.key.location), len(a.key.location)) })
	users[key.user] = routes
	return r, nil
}

// sharesHost reports whether wp may hold a route beside r on r's host: r's proxies all belong
// to wp's client, or r is of wp's group, with its key.
func (r *route) sharesHost(wp *webProxy, group string, groupKey []byte) bool {
	if group != "" && r.group == group && subtle.ConstantTimeCompare(r.groupKey, groupKey) == 1 {
		return true
	}
	for _, m := range *r.members.Load() {
		if m.owner() != wp.owner() {
			return false
		}
	}
	return true
}

// owners returns the clients that hold domain (router.add): those of the proxies on every
// route of it and of the wildcards over it.
func (rt *router) owners(domain string) []relay.Owner {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	var out []relay.Owner
	for _, d := range append([]string{domain}, wildcards(domain)...) {
		for _, routes := range rt.byHost[d] {
			for _, r := range routes {
				for _, m := range *r.members.Load() {
					if o := m.owner(); o != nil && !slices.Contains(out, o) {
						out = append(out, o)
					}
				}
			}
		}
	}
	return out
}

// remove takes wp off the route of key, and the route away when it was the last member.
func (rt *router) remove(key routeKey, wp *webProxy) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	routes := rt.byHost[key.domain][key.user]
	i := slices.IndexFunc(routes, func(r *route) bool { return r.key == key })
	if i < 0 {
		return
	}
	r := routes[i]
	old := *r.members.Load()
	next := slices.DeleteFunc(slices.Clone(old), func(m *webProxy) bool { return m == wp })
	if len(next) > 0 {
		r.members.Store(&next)
		return
	}
	r.members.Store(&next)
	routes = slices.Delete(routes, i, i+1)
	if len(routes) > 0 {
		rt.byHost[key.domain][key.user] = routes
		return
	}
	delete(rt.byHost[key.domain], key.user)
	if len(rt.byHost[key.domain]) == 0 {
		delete(rt.byHost, key.domain)
	}
}

// hasHost reports whether a route names host itself.
func (rt *router) hasHost(host string) bool {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return len(rt.byHost[host]) > 0
}

// lookup returns the route of a request to host (lower case, no port) for path and the user
// of its basic auth ("" for none), or nil.
func (rt *router) lookup(host, path, user string) *route {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if r := rt.lookupHost(host, path, user); r != nil {
		return r
	}
	for _, w := range wildcards(host) {
		if r := rt.lookupHost(w, path, user); r != nil {
			return r
		}
	}
	return rt.lookupHost("*", path, user)
}

// wildcards are the wildcard names that take a host's requests when it has no route of its
// own, most specific first: a.b.example.com: *.b.example.com, then *.example.com; never *.com
// (nor "*", which takes every host).
func wildcards(host string) []string {
	labels := strings.Split(host, ".")
	var out []string
	for i := 1; len(labels)-i >= 2; i++ {
		if w := "*." + strings.Join(labels[i:], "."); w != host {
			out = append(out, w)
		}
	}
	return out
}

func (rt *router) lookupHost(host, path, user string) *route {
	users := rt.byHost[host]
	if users == nil {
		return nil
	}
	for _, u := range []string{user, ""} {
		for _, r := range users[u] {
			if strings.HasPrefix(path, r.key.location) {
				return r
			}
		}
		if user == "" {
			break
		}
	}
	return nil
}

// describe names a route for an error: "host nas.example.com, location /api".
func describe(k routeKey) string {
	s := "host " + k.domain
	if k.location != "" {
		s += ", location " + k.location
	}
	if k.user != "" {
		s += ", routeByHTTPUser " + k.user
	}
	return s
}

// canonicalHost is a request's host as routes name it: lower case, without the port and a
// final dot.
func canonicalHost(host string) string {
	host = strings.ToLower(host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return strings.TrimSuffix(host, ".")
}
