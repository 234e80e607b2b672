package vhost

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/relay"
)

func TestRouterLookup(t *testing.T) {
	rt := newRouter()
	proxies := map[string]*webProxy{}
	add := func(name, domain, location, user string) {
		wp := &webProxy{req: wire.NewProxy{Name: name}}
		proxies[name] = wp
		if _, err := rt.add(routeKey{domain, location, user}, wp, "", nil); err != nil {
			t.Fatalf("add %s: %v", name, err)
		}
	}
	add("root", "a.test", "", "")
	add("api", "a.test", "/api", "")
	add("apiv2", "a.test", "/api/v2", "")
	add("alice", "a.test", "", "alice")
	add("wild", "*.a.test", "", "")
	add("deep", "*.b.a.test", "", "")
	add("any", "*", "/", "")
	for _, tc := range []struct{ host, path, user, want string }{
		{"a.test", "/", "", "root"},
		{"a.test", "/api", "", "api"},
		{"a.test", "/api/v2/x", "", "apiv2"},
		{"a.test", "/api/v3", "", "api"},
		{"a.test", "/", "alice", "alice"},
		{"a.test", "/api", "alice", "alice"}, // the user's routes come first, at any location
		{"a.test", "/api", "bob", "api"},
		{"x.a.test", "/", "", "wild"},
		{"x.y.a.test", "/", "", "wild"},
		{"x.b.a.test", "/", "", "deep"},
		{"other.test", "/z", "", "any"},
		{"com", "/", "", "any"},
	} {
		r := rt.lookup(tc.host, tc.path, tc.user)
		got := ""
		if r != nil {
			got = r.first().req.Name
		}
		if got != tc.want {
			t.Errorf("%s%s user %q: %q, want %q", tc.host, tc.path, tc.user, got, tc.want)
		}
	}
	if _, err := rt.add(routeKey{"a.test", "/api", ""}, &webProxy{}, "", nil); !errors.Is(err, ErrRouteInUse) {
		t.Errorf("a taken route: %v", err)
	}
	rt.remove(routeKey{"a.test", "/api/v2", ""}, proxies["apiv2"])
	if r := rt.lookup("a.test", "/api/v2", ""); r == nil || r.first() != proxies["api"] {
		t.Errorf("after removing /api/v2: %v", r)
	}
	rt.remove(routeKey{"*", "/", ""}, proxies["any"])
	if r := rt.lookup("other.test", "/", ""); r != nil {
		t.Errorf("after removing *: %v", r)
	}
}

func TestRouterGroups(t *testing.T) {
	rt := newRouter()
	k := routeKey{"g.test", "", ""}
	one, two := &webProxy{}, &webProxy{}
	r, err := rt.add(k, one, "g", []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.add(k, two, "g", []byte("wrong")); !errors.Is(err, ErrGroupKey) {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := rt.add(k, two, "", nil); !errors.Is(err, ErrRouteInUse) {
		t.Errorf("outside the group: %v", err)
	}
	if _, err := rt.add(k, two, "g", []byte("key")); err != nil {
		t.Fatal(err)
	}
	seen := map[*webProxy]int{}
	for range 10 {
		seen[r.pick()]++
	}
	if seen[one] != 5 || seen[two] != 5 {
		t.Errorf("round robin: %v", seen)
	}
	rt.remove(k, one)
	if r.pick() != two || rt.lookup("g.test", "/", "") != r {
		t.Error("after one member left")
	}
	rt.remove(k, two)
	if rt.lookup("g.test", "/", "") != nil || r.pick() != nil {
		t.Error("after both left")
	}
}

func TestCanonicalHost(t *testing.T) {
	for in, want := range map[string]string{"A.Test": "a.test", "a.test:8080": "a.test", "a.test.": "a.test", "[::1]:80": "::1", "[::1]": "::1", "1.2.3.4:5": "1.2.3.4"} {
		if got := canonicalHost(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// clientHello returns the first bytes a TLS client sends for server name sni.
func clientHello(t testing.TB, sni string) []byte {
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		c.SetDeadline(time.Now().Add(time.Second))
		c.Handshake()
		a.Close()
	}()
	buf := make([]byte, 16<<10)
	b.SetReadDeadline(time.Now().Add(time.Second))
	n, _ := b.Read(buf)
	b.Close()
	return buf[:n]
}

func TestSNIRoute(t *testing.T) {
	hello := clientHello(t, "nas.example.com")
	r := &recorder{r: bytes.NewReader(hello)}
	req, err := sniRoute(r)
	if err != nil || req.host != "nas.example.com" || req.replayFrom != 0 || !bytes.Equal(r.buf, hello) {
		t.Fatalf("%+v, %v; recorded %d of %d bytes", req, err, len(r.buf), len(hello))
	}
	if _, err := sniRoute(&recorder{r: bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n"))}); err == nil {
		t.Error("an HTTP request routed as TLS")
	}
}

func TestConnectRoute(t *testing.T) {
	in := "CONNECT ssh.test:22 HTTP/1.1\r\nHost: ssh.test:22\r\nProxy-Authorization: Basic dTpw\r\n\r\nSSH-2.0-x"
	for _, passthrough := range []bool{false, true} {
		r := &recorder{r: bytes.NewReader([]byte(in))}
		req, err := connectRoute(passthrough)(r)
		if err != nil || req.host != "ssh.test:22" || req.user != "u" || req.password != "p" {
			t.Fatalf("%+v, %v", req, err)
		}
		want := "SSH-2.0-x"
		if passthrough {
			want = in
		}
		if got := string(r.buf[req.replayFrom:]); got != want || (req.ok == nil) != passthrough {
			t.Errorf("passthrough %v: replays %q, answers %q", passthrough, got, req.ok)
		}
	}
}

// FuzzRoutes: whatever a user sends first, routing it never panics and never replays bytes it
// did not read.
func FuzzRoutes(f *testing.F) {
	f.Add(clientHello(f, "a.test"))
	f.Add([]byte("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\n"))
	f.Add([]byte{22, 3, 1, 0, 5, 1, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, route := range []routeFunc{sniRoute, connectRoute(false), connectRoute(true)} {
			r := &recorder{r: bytes.NewReader(data)}
			req, err := route(r)
			if err == nil && (req.replayFrom < 0 || req.replayFrom > len(r.buf)) {
				t.Fatalf("replayFrom %d of %d recorded bytes", req.replayFrom, len(r.buf))
			}
		}
	})
}

// fakeOwner is a client as the router sees it: only its identity matters.
type fakeOwner struct{ relay.Owner }

func proxyOf(owner relay.Owner, name string) *webProxy {
	return &webProxy{req: wire.NewProxy{Name: name}, member: relay.NewMember(owner, name, nil, nil)}
}

// TestRouterHostBelongsToOneClient: a host is its first client's (or group's) at every
// location and for every routeByHTTPUser; another client's route on it is refused, however
// specific, while the holder adds routes on it freely.
func TestRouterHostBelongsToOneClient(t *testing.T) {
	rt := newRouter()
	victim, thief := &fakeOwner{}, &fakeOwner{}
	site := proxyOf(victim, "site")
	if _, err := rt.add(routeKey{"a.test", "", ""}, site, "", nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range []routeKey{{"a.test", "/", ""}, {"a.test", "/api", ""}, {"a.test", "", "alice"}, {"a.test", "/x", "bob"}} {
		if _, err := rt.add(k, proxyOf(thief, "thief"), "", nil); !errors.Is(err, ErrRouteInUse) {
			t.Errorf("another client's %+v on a.test: %v, want ErrRouteInUse", k, err)
		}
		if r := rt.lookup("a.test", k.location+"/z", k.user); r == nil || r.first() != site {
			t.Errorf("%+v: a.test%s/z for %q no longer leads to the site", k, k.location, k.user)
		}
	}
	if got := rt.owners("a.test"); len(got) != 1 || got[0] != victim {
		t.Errorf("owners of a.test: %v", got)
	}
	// The holder's own proxies share it; another host stays free for anyone.
	api := proxyOf(victim, "api")
	if _, err := rt.add(routeKey{"a.test", "/api", ""}, api, "", nil); err != nil {
		t.Errorf("the holder's second proxy on /api: %v", err)
	}
	if _, err := rt.add(routeKey{"b.test", "/", ""}, proxyOf(thief, "b"), "", nil); err != nil {
		t.Errorf("another host: %v", err)
	}
	// A group's host: other locations for members of the group with its key, nobody else.
	g1, g2 := proxyOf(victim, "g"), proxyOf(thief, "g")
	if _, err := rt.add(routeKey{"g.test", "", ""}, g1, "g", []byte("key")); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.add(routeKey{"g.test", "/api", ""}, g2, "g", []byte("key")); err != nil {
		t.Errorf("a member of the group on another location: %v", err)
	}
	if _, err := rt.add(routeKey{"g.test", "/x", ""}, proxyOf(thief, "x"), "g", []byte("wrong")); !errors.Is(err, ErrRouteInUse) {
		t.Errorf("the group's host with a wrong key: %v", err)
	}
	// A name under another client's wildcard is the wildcard's; the wildcard's own client
	// may add names under it, and a wildcard over names others hold leaves them be.
	if _, err := rt.add(routeKey{"*.w.test", "", ""}, proxyOf(victim, "w"), "", nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"x.w.test", "y.x.w.test", "*.x.w.test"} {
		if _, err := rt.add(routeKey{d, "", ""}, proxyOf(thief, d), "", nil); !errors.Is(err, ErrRouteInUse) {
			t.Errorf("another client's %s under *.w.test: %v", d, err)
		}
		if _, err := rt.add(routeKey{d, "/own", ""}, proxyOf(victim, d), "", nil); err != nil {
			t.Errorf("the wildcard's client's %s: %v", d, err)
		}
	}
	if got := rt.owners("z.w.test"); len(got) != 1 || got[0] != victim {
		t.Errorf("owners of z.w.test: %v", got)
	}
	own := proxyOf(victim, "own")
	if _, err := rt.add(routeKey{"a.v.test", "", ""}, own, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.add(routeKey{"*.v.test", "", ""}, proxyOf(thief, "all"), "", nil); err != nil {
		t.Errorf("a wildcard over others' names: %v", err)
	}
	if r := rt.lookup("a.v.test", "/", ""); r == nil || r.first() != own {
		t.Errorf("a.v.test under the new *.v.test: %v", r)
	}
	// The host is free once the holder has no route left on it.
	rt.remove(routeKey{"a.test", "", ""}, site)
	if _, err := rt.add(routeKey{"a.test", "/", ""}, proxyOf(thief, "heir"), "", nil); !errors.Is(err, ErrRouteInUse) {
		t.Errorf("with the holder's /api still there: %v", err)
	}
	rt.remove(routeKey{"a.test", "/api", ""}, api)
	if _, err := rt.add(routeKey{"a.test", "/", ""}, proxyOf(thief, "heir"), "", nil); err != nil {
		t.Errorf("after the holder left: %v", err)
	}
}
