package vhost

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/xp2p/xp2p/internal/wire"
)

// HTTPProxy is the http vhost's reverse proxy behind a listener of its caller's: requests
// routed by host name and path as on vhostHTTPPort (the route's hostHeaderRewrite, headers,
// httpUser and password apply), to upstreams the caller dials. The client's http visitors
// serve one on their bind port, several visitors on one port told apart by customDomains.
type HTTPProxy struct {
	f *httpFront

	mu     sync.Mutex
	byName map[string]*webProxy
	closed bool
}

// NewHTTPProxy returns a proxy with no route.
func NewHTTPProxy(log *slog.Logger) *HTTPProxy {
	if log == nil {
		log = slog.Default()
	}
	return &HTTPProxy{f: newHTTPHandler(&Config{Log: log}), byName: map[string]*webProxy{}}
}

// Add routes the hosts of route.CustomDomains ("*" when it has none) and its locations to the
// upstream that dial reaches, under route.Name.
func (h *HTTPProxy) Add(route *wire.NewProxy, dial func(src, dst net.Addr) (net.Conn, error)) error {
	domains := route.CustomDomains
	if len(domains) == 0 {
		domains = []string{"*"}
	}
	locations := route.Locations
	if len(locations) == 0 {
		locations = []string{""}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("closed")
	}
	if h.byName[route.Name] != nil {
		return fmt.Errorf("%q is already routed", route.Name)
	}
	wp := &webProxy{req: *route, id: nextProxyID.Add(1), dial: dial}
	for _, d := range domains {
		for _, loc := range locations {
			r, err := h.f.rt.add(routeKey{domain: canonicalHost(d), location: loc, user: route.RouteByHTTPUser}, wp, "", nil)
			if err != nil {
				for _, r := range wp.routes {
					h.f.rt.remove(r.key, wp)
				}
				return err
			}
			wp.routes = append(wp.routes, r)
		}
	}
	h.byName[route.Name] = wp
	return nil
}

// Remove drops the routes of name.
func (h *HTTPProxy) Remove(name string) {
	h.mu.Lock()
	wp := h.byName[name]
	delete(h.byName, name)
	h.mu.Unlock()
	if wp == nil {
		return
	}
	for _, r := range wp.routes {
		h.f.rt.remove(r.key, wp)
	}
}

// Routes is how many upstreams are routed.
func (h *HTTPProxy) Routes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byName)
}

// ServeHTTP routes one request.
func (h *HTTPProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.f.ServeHTTP(w, r) }

// Server is an http.Server for ln's connections that serves h (timeouts of the vhost's).
func (h *HTTPProxy) Server() *http.Server { return newServer(h, h.f.srv.ErrorLog) }

// Close drops the idle connections to the upstreams.
func (h *HTTPProxy) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.f.tr.CloseIdleConnections()
}
