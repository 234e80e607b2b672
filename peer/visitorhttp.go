package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/relay"
	"github.com/xp2p/xp2p/vhost"
)

// An http visitor (protocol = "http") fronts a provider's web service on its bind port: a
// browser on the visitor's machine reaches, say, a NAS's web UI there, directly over the P2P
// session. The port serves HTTP through the vhost reverse proxy (hostHeaderRewrite, headers,
// keep-alive, WebSocket), and several http visitors may share it, told apart by their
// customDomains: nas.localhost and media.localhost, which browsers resolve to loopback.

// httpBind is one bind address that http visitors share.
type httpBind struct {
	ln    net.Listener
	srv   *http.Server
	proxy *vhost.HTTPProxy
	users int
	done  chan struct{}
}

// httpBinds are the client's shared http visitor ports.
type httpBinds struct {
	mu    sync.Mutex
	binds map[string]*httpBind
}

// join routes v's hosts on its bind address, listening there first if it is the first.
func (hb *httpBinds) join(v *visitor) error {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.binds == nil {
		hb.binds = map[string]*httpBind{}
	}
	addr := v.addr()
	b := hb.binds[addr]
	if b == nil {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("visitor %q: bind %s: %w", v.cfg.Name, addr, err)
		}
		b = &httpBind{ln: ln, proxy: vhost.NewHTTPProxy(v.c.log), done: make(chan struct{})}
		b.srv = b.proxy.Server()
		go func() { defer close(b.done); b.srv.Serve(ln) }()
		hb.binds[addr] = b
	}
	route := &wire.NewProxy{Name: v.cfg.Name, CustomDomains: v.cfg.CustomDomains, Locations: v.cfg.Locations,
		HostHeaderRewrite: v.cfg.HostHeaderRewrite, RequestHeaders: v.cfg.RequestHeaders.Set, ResponseHeaders: v.cfg.ResponseHeaders.Set}
	if err := b.proxy.Add(route, v.dialHTTP); err != nil {
		if b.users == 0 {
			hb.closeLocked(addr, b)
		}
		return fmt.Errorf("visitor %q on %s: %w", v.cfg.Name, addr, err)
	}
	b.users++
	return nil
}

// leave drops v's routes, and the port when it was the last visitor there.
func (hb *httpBinds) leave(v *visitor) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	addr := v.addr()
	b := hb.binds[addr]
	if b == nil {
		return
	}
	b.proxy.Remove(v.cfg.Name)
	if b.users--; b.users <= 0 {
		hb.closeLocked(addr, b)
	}
}

func (hb *httpBinds) closeLocked(addr string, b *httpBind) {
	delete(hb.binds, addr)
	b.srv.Close()
	<-b.done
	b.proxy.Close()
}

// dialHTTP opens a stream to the provider for one HTTP connection of the reverse proxy.
func (v *visitor) dialHTTP(src, dst net.Addr) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(v.c.ctx, visitorWait)
	defer cancel()
	select {
	case <-v.stop:
		return nil, errors.New("visitor stopped")
	default:
	}
	s, err := v.session(ctx)
	if err != nil {
		msg := err.Error()
		v.lastErr.Store(&msg)
		return nil, err
	}
	st, err := s.openStream(ctx, src.String(), dst.String())
	if err != nil {
		return nil, err
	}
	v.conns.Add(1)
	return &relay.StreamConn{Conn: st, Local: dst, Remote: src, BytesRead: &v.bytesIn, BytesWritten: &v.bytesOut,
		OnClose: func() { v.conns.Add(-1) }}, nil
}
