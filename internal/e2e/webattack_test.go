package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/xp2p/xp2p/internal/wire"
)

// TestWebHostHijack: a token holder asks for routes on another client's host that outrank its
// own (location "/" beats the route without location; a routeByHTTPUser route beats the route
// for anyone) to receive its users' requests and their passwords. Every attempt is refused,
// and so is a name under its wildcard; the site keeps answering its users, and the attacker's
// service sees no request.
func TestWebHostHijack(t *testing.T) {
	srv := startWebServer(t, "")
	hc := vhostClient(srv.WebAddr(wire.ProxyHTTP).String())
	site, loot := startWebService(t, "site"), startWebService(t, "loot")
	victim := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("site", "http", site.Port(), `customDomains = ["site.test"]`, `httpUser = "admin"`, `httpPassword = "victim-pass-123"`)+
		webProxy("site-api", "http", site.Port(), `customDomains = ["site.test"]`, `locations = ["/api"]`, `httpUser = "admin"`, `httpPassword = "victim-pass-123"`)+
		webProxy("apps", "http", site.Port(), `customDomains = ["*.apps.test"]`))
	waitRunning(t, victim, "site")
	waitRunning(t, victim, "site-api") // the holder's own proxies share its host

	attacker := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("root", "http", loot.Port(), `customDomains = ["site.test"]`, `locations = ["/"]`)+
		webProxy("deeper", "http", loot.Port(), `customDomains = ["site.test"]`, `locations = ["/api/v1"]`)+
		webProxy("by-user", "http", loot.Port(), `customDomains = ["site.test"]`, `routeByHTTPUser = "admin"`)+
		webProxy("under-wildcard", "http", loot.Port(), `customDomains = ["x.apps.test"]`)+
		webProxy("elsewhere", "http", loot.Port(), `customDomains = ["loot.test"]`))
	for _, name := range []string{"root", "deeper", "by-user", "under-wildcard"} {
		if st := waitProxyStatus(t, attacker, name).Status; !strings.Contains(st, "test") || !strings.Contains(st, "already served by another proxy") {
			t.Errorf("attacker's %s on site.test: %q, want refused", name, st)
		}
	}
	waitRunning(t, attacker, "elsewhere") // the attacker's own host works

	for _, path := range []string{"/", "/index.html", "/api", "/api/v1/users"} {
		res, seen, _ := get(t, hc, "http://site.test"+path, func(r *http.Request) { r.SetBasicAuth("admin", "victim-pass-123") })
		if res.StatusCode != http.StatusOK || seen.Service != "site" {
			t.Errorf("%s with the site's password: %d, served by %q", path, res.StatusCode, seen.Service)
		}
		if res, seen, _ := get(t, hc, "http://site.test"+path); res.StatusCode != http.StatusUnauthorized || seen.Service != "" {
			t.Errorf("%s without password: %d, served by %q", path, res.StatusCode, seen.Service)
		}
	}
	if _, seen, _ := get(t, hc, "http://x.apps.test/"); seen.Service != "site" {
		t.Errorf("x.apps.test: served by %q, want the wildcard's site", seen.Service)
	}
	if _, seen, _ := get(t, hc, "http://loot.test/"); seen.Service != "loot" {
		t.Errorf("the attacker's own host: served by %q", seen.Service)
	}
	if n := loot.connCount(); n != 1 {
		t.Errorf("the attacker's service got %d connections, want only its own host's one", n)
	}
}
