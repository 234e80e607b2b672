// Package plugin is the client's plugins (frp's [proxies.plugin]): services the client runs
// itself for a proxy's users instead of forwarding them to localIP:localPort, the same for
// tcp, http(s) and xp2p proxies. socks5 and http_proxy let a user reach the client's network,
// static_file serves a directory, unix_domain_socket a local socket, the bridges (https2http,
// https2https, http2https, http2http) and tls2raw put TLS on or off a local service. Each
// plugin is a file of its own that registers its constructor here.
package plugin

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/peercred"
	"github.com/xp2p/xp2p/internal/tlsconf"
)

// Plugin serves the users of one proxy.
type Plugin interface {
	// Serve serves one user's connection (RemoteAddr is the user) until it ends, and closes it.
	Serve(conn net.Conn)
	// Close stops the plugin: the connections it serves end.
	Close() error
}

// Options are what a plugin needs to know of its proxy besides its [proxies.plugin] table.
type Options struct {
	// ViaVhost: the users come through the server's http vhost (an http proxy), which keeps
	// its connections to the client alive for the requests of many users and appends each
	// request's user to X-Forwarded-For; a connection's own address is only the first user's.
	ViaVhost bool
	Log      *slog.Logger
}

// constructors holds each plugin's constructor by its config name.
var constructors = map[string]func(o *config.PluginOptions, env Options) (Plugin, error){}

func register(name string, newPlugin func(o *config.PluginOptions, env Options) (Plugin, error)) {
	if constructors[name] != nil {
		panic("plugin: " + name + " registered twice")
	}
	constructors[name] = newPlugin
}

// New starts the plugin a proxy's (validated) options describe.
func New(o *config.PluginOptions, env Options) (Plugin, error) {
	newPlugin := constructors[o.Type]
	if newPlugin == nil {
		return nil, fmt.Errorf("unknown plugin %q", o.Type)
	}
	env.Log = env.Log.With("plugin", o.Type)
	p, err := newPlugin(o, env)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", o.Type, err)
	}
	return p, nil
}

// dialTimeout bounds reaching what a plugin connects a user to.
const dialTimeout = 10 * time.Second

// dialer connects users where they ask (socks5, http_proxy), never to an endpoint of this
// client that trusts its own user (its admin endpoint without a password): a connection the
// client makes is its own user's, so the endpoint would answer the plugin's user as its owner.
var dialer = net.Dialer{Timeout: dialTimeout, Control: peercred.RefuseGuarded}

// headerTimeout bounds a user's HTTP request header or handshake.
const headerTimeout = 30 * time.Second

// httpPlugin is a plugin that serves HTTP (or HTTPS) on the users' connections with an
// http.Server, which takes them from a listener that Serve feeds.
type httpPlugin struct {
	srv *http.Server
	ln  *connListener
}

// newHTTPPlugin serves h on the users' connections, over TLS if tlsConf is set; configure
// (if any) adjusts the server before it starts.
func newHTTPPlugin(h http.Handler, tlsConf *tls.Config, log *slog.Logger, configure ...func(*http.Server)) *httpPlugin {
	p := &httpPlugin{ln: newConnListener(), srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		TLSConfig:         tlsConf,
	}}
	for _, f := range configure {
		f(p.srv)
	}
	go func() {
		if tlsConf != nil {
			p.srv.ServeTLS(p.ln, "", "")
		} else {
			p.srv.Serve(p.ln)
		}
	}()
	return p
}

func (p *httpPlugin) Serve(conn net.Conn) { p.ln.serve(conn) }
func (p *httpPlugin) Close() error {
	p.ln.Close()
	return p.srv.Close()
}

// connListener hands the users' connections to a server (netx.ConnListener), and waits for
// each until the server is done with it.
type connListener struct{ *netx.ConnListener }

func newConnListener() *connListener { return &connListener{netx.NewConnListener(nil)} }

// serve hands conn to the server and waits until the server has closed it (or the listener
// is closed), so that the caller's count of open connections stays true.
func (l *connListener) serve(conn net.Conn) {
	c := &servedConn{Conn: conn, done: make(chan struct{})}
	if !l.Put(c) {
		return
	}
	select {
	case <-c.done:
	case <-l.Closed():
		conn.Close()
	}
}

// servedConn is a user's connection in a server's hands; done is closed when it closes it.
type servedConn struct {
	net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func (c *servedConn) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// CloseWrite ends the sending direction if the connection under it can.
func (c *servedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// join copies a→b and b→a until both directions have ended (each end passed on as a half
// close where the connection has one), then closes both.
func join(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			a.Close()
			b.Close()
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// equal compares secrets in constant time.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// credentials are the user and password a plugin's users must give, compared in constant time,
// with wrong ones counted against the user's address as the server's web ports count them:
// five, then one per 10 s, so that a plugin published on a public port is not guessed at speed.
type credentials struct {
	user, password string
	failures       *auth.FailureLimiter
}

func newCredentials(user, password string) *credentials {
	return &credentials{user: user, password: password, failures: auth.NewFailureLimiter()}
}

// check reports whether from (a user's address, "ip:port") may use the plugin with user and
// password; limited says it was refused without a look (too many wrong ones), retry when.
func (c *credentials) check(from, user, password string) (ok, limited bool, retry time.Duration) {
	ip := userIP(from)
	if may, wait := c.failures.Check(ip); !may {
		return false, true, wait
	}
	if equal(user, c.user) && equal(password, c.password) {
		return true, false, 0
	}
	c.failures.Fail(ip)
	return false, false, 0
}

// userIP is the address of a user's "ip:port" (invalid, one bucket of its own, if it is not one).
func userIP(from string) netip.Addr {
	ap, err := netip.ParseAddrPort(from)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// requestUser is the address of the user behind an HTTP request: the connection's, or behind
// the server's vhost the last X-Forwarded-For (the vhost's own: a user's are before it).
func requestUser(r *http.Request, viaVhost bool) string {
	if viaVhost {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if ip, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return netip.AddrPortFrom(ip, 0).String()
			}
		}
	}
	return r.RemoteAddr
}

// refuse answers a request whose credentials c refused: 429 while the user's address may not
// try, else code (401 or 407) with the challenge header.
func refuse(w http.ResponseWriter, limited bool, retry time.Duration, code int, challenge string) {
	if limited {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
		http.Error(w, "too many wrong passwords from your address; retry later", http.StatusTooManyRequests)
		return
	}
	if code == http.StatusProxyAuthRequired {
		w.Header().Set("Proxy-Authenticate", challenge)
	} else {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	http.Error(w, http.StatusText(code), code)
}

// basicAuth wraps h with the user and password users must give (none: h as it is).
func basicAuth(user, password string, viaVhost bool, h http.Handler) http.Handler {
	if user == "" {
		return h
	}
	c := newCredentials(user, password)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		if ok, limited, retry := c.check(requestUser(r, viaVhost), u, p); !ok {
			refuse(w, limited, retry, http.StatusUnauthorized, `Basic realm="Restricted", charset="UTF-8"`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serverTLS is the TLS config of a plugin that terminates TLS: the certificate of crtPath and
// keyPath, or a generated one.
func serverTLS(o *config.PluginOptions, http2 bool) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if o.CrtPath != "" {
		cert, err = tls.LoadX509KeyPair(o.CrtPath, o.KeyPath)
	} else {
		cert, err = tlsconf.SelfSigned("xp2p-plugin")
	}
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if http2 {
		conf.NextProtos = []string{"h2", "http/1.1"}
	}
	return conf, nil
}
