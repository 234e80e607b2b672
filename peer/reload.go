package peer

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/wire"
)

// ReloadResult says what a reload changed.
type ReloadResult struct {
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged []string `json:"unchanged"`
}

// Reload applies a new configuration while the client runs: proxies and visitors that were added,
// removed or changed take effect, untouched ones keep their open connections. The config must
// already be valid (config.LoadClient). Settings only a restart can change (server, auth,
// transport, admin endpoint, log) refuse the reload as a whole, and so does a visitor port that
// cannot be bound; the running configuration then stays as it was.
func (c *Client) Reload(cfg *config.Client) (*ReloadResult, error) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	if keys := restartOnlyChanges(c.cfg, cfg); len(keys) > 0 {
		return nil, fmt.Errorf("reload refused: %s changed; restart the client to apply", strings.Join(keys, ", "))
	}
	old := c.set.Load()
	next := &clientSet{proxies: map[string]*localProxy{}}
	res := &ReloadResult{}

	var closeProxies, openProxies []*localProxy
	for _, p := range selectedProxies(cfg) {
		op := old.proxies[p.Name]
		switch {
		case op != nil && reflect.DeepEqual(op.cfg, p):
			next.proxies[p.Name] = op
			res.Unchanged = append(res.Unchanged, "proxy "+p.Name)
		case op != nil:
			np, err := newLocalProxy(p, c.log)
			if err != nil {
				return nil, reloadAbort(openProxies, p.Name, err)
			}
			next.proxies[p.Name] = np
			closeProxies = append(closeProxies, op)
			openProxies = append(openProxies, np)
			res.Changed = append(res.Changed, "proxy "+p.Name)
		default:
			np, err := newLocalProxy(p, c.log)
			if err != nil {
				return nil, reloadAbort(openProxies, p.Name, err)
			}
			next.proxies[p.Name] = np
			openProxies = append(openProxies, np)
			res.Added = append(res.Added, "proxy "+p.Name)
		}
	}
	for name, op := range old.proxies {
		if _, ok := next.proxies[name]; !ok {
			closeProxies = append(closeProxies, op)
			res.Removed = append(res.Removed, "proxy "+name)
		}
	}

	oldVisitors := map[string]*visitor{}
	for _, v := range old.visitors {
		oldVisitors[v.cfg.Name] = v
	}
	var stopVisitors, startVisitors []*visitor
	kept := map[string]bool{}
	for _, vc := range selectedVisitors(cfg) {
		ov := oldVisitors[vc.Name]
		switch {
		case ov != nil && reflect.DeepEqual(ov.cfg, vc):
			next.visitors = append(next.visitors, ov)
			kept[vc.Name] = true
			res.Unchanged = append(res.Unchanged, "visitor "+vc.Name)
		case ov != nil:
			nv := newVisitor(c, vc)
			next.visitors = append(next.visitors, nv)
			stopVisitors = append(stopVisitors, ov)
			startVisitors = append(startVisitors, nv)
			kept[vc.Name] = true
			res.Changed = append(res.Changed, "visitor "+vc.Name)
		default:
			nv := newVisitor(c, vc)
			next.visitors = append(next.visitors, nv)
			startVisitors = append(startVisitors, nv)
			res.Added = append(res.Added, "visitor "+vc.Name)
		}
	}
	for name, ov := range oldVisitors {
		if !kept[name] {
			stopVisitors = append(stopVisitors, ov)
			res.Removed = append(res.Removed, "visitor "+name)
		}
	}

	// Free the ports of stopped visitors before binding the new ones (a changed visitor often
	// keeps its port); if a new port cannot be bound, put the old visitors back.
	for _, v := range stopVisitors {
		v.close()
	}
	if err := listenAll(startVisitors); err != nil {
		var restore []*visitor
		for _, v := range stopVisitors {
			restore = append(restore, newVisitor(c, v.cfg))
		}
		if rerr := listenAll(restore); rerr != nil {
			c.log.Error("reload: could not restore the previous visitors", "err", rerr)
			restore = nil
		}
		// Keep the set consistent with what listens now.
		var vs []*visitor
		stopped := map[*visitor]bool{}
		for _, v := range stopVisitors {
			stopped[v] = true
		}
		for _, v := range old.visitors {
			if !stopped[v] {
				vs = append(vs, v)
			}
		}
		vs = append(vs, restore...)
		c.set.Store(&clientSet{proxies: old.proxies, visitors: vs})
		c.startVisitors(restore)
		return nil, fmt.Errorf("reload refused: %w", err)
	}

	c.set.Store(next)
	c.startVisitors(startVisitors)
	for _, op := range closeProxies {
		op.stopAll()
	}
	for _, np := range openProxies {
		c.startHealth(np)
	}
	for _, op := range closeProxies {
		if op.cfg.ProxyType().P2P {
			c.p2p.endService(op.cfg.Name)
		}
	}
	for _, ctl := range c.controls() {
		// A changed proxy is closed and opened again: the server frees its port first.
		for _, op := range closeProxies {
			ctl.send(&wire.CloseProxy{Name: op.cfg.Name})
		}
		for _, np := range openProxies {
			ctl.send(newProxyMsg(np.cfg))
		}
	}
	for _, l := range [][]string{res.Added, res.Removed, res.Changed, res.Unchanged} {
		sort.Strings(l)
	}
	c.log.Info("configuration reloaded", "added", res.Added, "removed", res.Removed, "changed", res.Changed)
	return res, nil
}

// reloadAbort refuses a reload whose proxy name could not start, stopping the proxies it had
// made already.
func reloadAbort(made []*localProxy, name string, err error) error {
	for _, lp := range made {
		lp.stopAll()
	}
	return fmt.Errorf("reload refused: proxy %q: %w", name, err)
}

// restartOnlyChanges lists the settings that differ between two configs and that a running
// client cannot change.
func restartOnlyChanges(a, b *config.Client) []string {
	var keys []string
	check := func(key string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			keys = append(keys, key)
		}
	}
	check("serverAddr", a.ServerAddr, b.ServerAddr)
	check("serverPort", a.ServerPort, b.ServerPort)
	check("user", a.User, b.User)
	check("auth", a.Auth, b.Auth)
	check("transport", a.Transport, b.Transport)
	check("webServer", a.WebServer, b.WebServer)
	check("log", a.Log, b.Log)
	check("loginFailExit", a.LoginFailExit, b.LoginFailExit)
	return keys
}

// endService ends the provider sessions of a service that was removed or changed.
func (m *p2pSessions) endService(name string) {
	m.mu.Lock()
	var ended []*p2pSession
	for _, s := range m.byID {
		if s.role == wire.RoleProvider && s.localName() == name {
			ended = append(ended, s)
		}
	}
	m.mu.Unlock()
	for _, s := range ended {
		s.end("service removed by reload", true)
	}
}
