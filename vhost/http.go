package vhost

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"html"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/netx"
)

// httpFront is the vhostHTTPPort: an HTTP server whose handler routes each request by Host,
// path and basic-auth user, checks the route's httpUser/httpPassword and hands it to
// net/http/httputil's ReverseProxy, whose transport reaches the proxy's client through work
// connections (kept alive and reused per proxy, like any upstream).
type httpFront struct {
	ln    net.Listener
	rt    *router
	cfg   *Config
	srv   *http.Server
	proxy *httputil.ReverseProxy
	tr    *http.Transport
	// failures slows down guessing of httpPassword, per user address.
	failures *auth.FailureLimiter
	done     chan struct{}
	// tlsIn, tlsSrv: the https port's users whose TLS the server ends (Config.TerminateTLS).
	tlsIn   *netx.ConnListener
	tlsSrv  *http.Server
	tlsDone chan struct{}
}

// target is where one request goes, carried in its context from the handler to the
// transport's dial.
type target struct {
	wp       *webProxy // the group member that serves it
	settings *webProxy // whose settings apply (the route's first member)
	src, dst net.Addr
	connID   uint64
}

type targetKey struct{}
type connIDKey struct{}

var nextConnID atomic.Uint64

func newHTTPFront(ln net.Listener, cfg *Config) *httpFront {
	f := newHTTPHandler(cfg)
	f.ln = ln
	if cfg.WrapHTTP != nil {
		f.srv.Handler = cfg.WrapHTTP(f)
	}
	limited := newLimitListener(ln, maxHTTPConnsPerSource, maxHTTPConns)
	go func() { defer close(f.done); f.srv.Serve(limited) }()
	return f
}

// newHTTPHandler is the front's handler and server, not serving yet.
func newHTTPHandler(cfg *Config) *httpFront {
	f := &httpFront{rt: newRouter(), cfg: cfg, failures: auth.NewFailureLimiter(), done: make(chan struct{})}
	errorLog := log.New(slogWriter{cfg.Log}, "", 0)
	f.tr = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			t, _ := ctx.Value(targetKey{}).(*target)
			if t == nil {
				return nil, errors.New("no route")
			}
			return t.wp.dial(t.src, t.dst)
		},
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		// The request's own encoding goes through as it is.
		DisableCompression: true,
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		ModifyResponse: f.modifyResponse,
		Transport:      f.tr,
		BufferPool:     bufferPool{},
		ErrorLog:       errorLog,
		ErrorHandler:   f.proxyError,
	}
	f.srv = newServer(f, errorLog)
	return f
}

// newServer is the HTTP server of a web front: bounded headers and waits, each connection
// numbered (target.connID).
func newServer(h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: routeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connIDKey{}, nextConnID.Add(1))
		},
	}
}

func (f *httpFront) router() *router { return f.rt }
func (f *httpFront) addr() net.Addr  { return f.ln.Addr() }
func (f *httpFront) close() {
	f.srv.Close()
	<-f.done
	if f.tlsSrv != nil {
		f.tlsIn.Close()
		f.tlsSrv.Close()
		<-f.tlsDone
	}
	f.tr.CloseIdleConnections()
}

// serveTLS serves, with the same handler, the TLS connections the https port hands over
// (tlsIn), ending their TLS with conf.
func (f *httpFront) serveTLS(conf *tls.Config, addr net.Addr) {
	f.tlsIn = netx.NewConnListener(addr)
	f.tlsSrv = newServer(f.srv.Handler, f.srv.ErrorLog)
	f.tlsDone = make(chan struct{})
	go func() { defer close(f.tlsDone); f.tlsSrv.Serve(tls.NewListener(f.tlsIn, conf)) }()
}
func (f *httpFront) notFound() []byte { return f.cfg.NotFoundPage }

// ServeHTTP routes one request.
func (f *httpFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if redirectToCleanPath(w, r) {
		return
	}
	host := canonicalHost(r.Host)
	user, _, _ := r.BasicAuth()
	rt := f.rt.lookup(host, r.URL.Path, user)
	var settings, wp *webProxy
	if rt != nil {
		settings, wp = rt.first(), rt.pick()
	}
	if wp == nil {
		writePage(w, http.StatusNotFound, f.cfg.NotFoundPage, notFoundPage(host))
		return
	}
	src := remoteAddr(r)
	if !f.authorized(w, r, settings, src) {
		return
	}
	dst, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	connID, _ := r.Context().Value(connIDKey{}).(uint64)
	t := &target{wp: wp, settings: settings, src: src, dst: dst, connID: connID}
	if r.Method == http.MethodConnect {
		f.connect(w, r, t)
		return
	}
	f.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

// redirectToCleanPath answers a request whose path has dot segments or repeated slashes with a
// redirect to the path without them, as net/http's ServeMux does. Routes match path prefixes,
// and the service resolves such a path before it serves it: /x/../admin (also as
// /x%2f..%2fadmin) or //admin would otherwise take a public route to what a location with a
// password guards. Browsers never send such paths; a redirect costs a crafted one its trick.
func redirectToCleanPath(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	if r.Method == http.MethodConnect || !strings.HasPrefix(p, "/") {
		return false
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if clean == p {
		return false
	}
	u := *r.URL
	u.Path, u.RawPath = clean, ""
	code := http.StatusPermanentRedirect // keeps the method and body
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		code = http.StatusMovedPermanently
	}
	http.Redirect(w, r, u.RequestURI(), code)
	return true
}

// authorized checks the route's httpUser and httpPassword (constant time); wrong ones count
// against the user's address, which past a few is refused for a while.
func (f *httpFront) authorized(w http.ResponseWriter, r *http.Request, settings *webProxy, src net.Addr) bool {
	want := settings.req
	if want.HTTPUser == "" {
		return true
	}
	ip := addrOf(src)
	if ok, wait := f.failures.Check(ip); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		http.Error(w, "too many wrong passwords from your address; retry later", http.StatusTooManyRequests)
		return false
	}
	user, pass, ok := r.BasicAuth()
	if ok && subtle.ConstantTimeCompare([]byte(user), []byte(want.HTTPUser))&subtle.ConstantTimeCompare([]byte(pass), []byte(want.HTTPPassword)) == 1 {
		return true
	}
	if ok {
		f.failures.Fail(ip)
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="Restricted", charset="UTF-8"`)
	http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
	return false
}

// rewrite turns the user's request into the service's: X-Forwarded-For/-Host/-Proto as frp
// sets them, the Host rewritten if the proxy asks, its request headers set. The URL's host
// keys the transport's idle connections: per proxy, and per user connection when the
// service gets a PROXY protocol header (which names one user).
func (f *httpFront) rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(targetKey{}).(*target)
	pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	pr.SetXForwarded()
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "p" + strconv.FormatUint(t.wp.id, 10) + ".xp2p"
	if t.wp.req.ProxyProtocol {
		pr.Out.URL.Host = "c" + strconv.FormatUint(t.connID, 10) + "." + pr.Out.URL.Host
	}
	pr.Out.Host = pr.In.Host
	if h := t.settings.req.HostHeaderRewrite; h != "" {
		pr.Out.Host = h
	}
	for k, v := range t.settings.req.RequestHeaders {
		pr.Out.Header.Set(k, v)
	}
}

func (f *httpFront) modifyResponse(res *http.Response) error {
	t := res.Request.Context().Value(targetKey{}).(*target)
	for k, v := range t.settings.req.ResponseHeaders {
		res.Header.Set(k, v)
	}
	return nil
}

// proxyError answers a request the service could not: 504 when it did not answer in time,
// else 502 with a page that says which host failed.
func (f *httpFront) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	host := canonicalHost(r.Host)
	f.cfg.Log.Debug("http proxy", "host", host, "path", r.URL.Path, "err", err)
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		writePage(w, http.StatusGatewayTimeout, nil, errorPage("Gateway Timeout", "The service behind "+host+" did not answer in time."))
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the user went away
	}
	writePage(w, http.StatusBadGateway, nil, errorPage("Bad Gateway", "The service behind "+host+" could not be reached."))
}

// connect carries a CONNECT request to the service as it is (frp's): the service answers it.
func (f *httpFront) connect(w http.ResponseWriter, r *http.Request, t *target) {
	hj, ok := w.(http.Hijacker)
	if !ok || t.wp.member == nil {
		http.Error(w, "CONNECT is not possible here", http.StatusMethodNotAllowed)
		return
	}
	work, err := t.wp.member.Open(t.src.String(), t.dst.String())
	if err != nil {
		f.proxyError(w, r, err)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		work.Reset()
		return
	}
	if err := r.Write(work); err != nil {
		work.Reset()
		conn.Close()
		return
	}
	user := &bufferedConn{Conn: conn, r: buf.Reader}
	netx.Pipe(user, work, nil, nil)
}

// bufferedConn is a user's connection whose first bytes are already in r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.r != nil && c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// CloseWrite ends the sending direction (the whole connection where it cannot).
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// Reset aborts the connection with an RST where it can.
func (c *bufferedConn) Reset() {
	if r, ok := c.Conn.(netx.Resetter); ok {
		r.Reset()
		return
	}
	c.Conn.Close()
}

func remoteAddr(r *http.Request) net.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(ap)
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// writePage answers with an HTML page: custom (if set) or the built-in one.
func writePage(w http.ResponseWriter, code int, custom, builtin []byte) {
	page := builtin
	if custom != nil {
		page = custom
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(page)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(page)
}

func notFoundPage(host string) []byte {
	return errorPage("Not Found", "No service is published for "+host+" here. Check the address, or the customDomains and subdomain of the proxy.")
}

func errorPage(title, text string) []byte {
	return fmt.Appendf(nil, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%[1]s</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}</style></head>
<body><h1>%[1]s</h1><p>%[2]s</p><p><small>xp2p</small></p></body></html>
`, html.EscapeString(title), html.EscapeString(text))
}

// bufferPool lends the reverse proxy its copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// slogWriter sends net/http's log lines (bad requests, TLS noise) to the debug log.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("vhost: " + string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
