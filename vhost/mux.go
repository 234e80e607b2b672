package vhost

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/netx"
)

// muxFront is a web port whose connections are routed by their first bytes and then carried
// as they are: vhostHTTPSPort (the TLS ClientHello's server name) and tcpmuxHTTPConnectPort
// (the host of an HTTP CONNECT).
type muxFront struct {
	ln    net.Listener
	rt    *router
	cfg   *Config
	route routeFunc
	// pending holds a slot per connection not routed yet, per source and in all: a flood of
	// silent connections cannot pile up, nor one source's take the others' room.
	pending  *auth.SourceSlots
	failures *auth.FailureLimiter
	wg       sync.WaitGroup
	// fallback takes a connection no route has (with its first bytes replayed), if it can.
	fallback func(c net.Conn, host string) bool
}

// maxRouteBytes bounds what is read off a connection to route it (a ClientHello with
// post-quantum key shares is 2 KB; a CONNECT request a few hundred bytes).
const maxRouteBytes = 64 << 10

// routeFunc reads what a connection goes by from r, whose bytes are recorded.
type routeFunc func(r *recorder) (*muxRequest, error)

// muxRequest is what a connection asked for and how to answer it.
type muxRequest struct {
	host, user, password string
	// replayFrom is the offset of the recorded bytes that go on to the service (all of a
	// ClientHello; what followed a CONNECT request that was answered here).
	replayFrom int
	// ok is written to the user once the connection is routed (nil: nothing).
	ok []byte
	// refuse answers a connection that no route takes; unauthorized one whose user or password
	// is wrong (nil: just close).
	refuse       func(c net.Conn, host string)
	unauthorized func(c net.Conn)
}

func newMuxFront(ln net.Listener, cfg *Config, route routeFunc) *muxFront {
	f := &muxFront{ln: ln, rt: newRouter(), cfg: cfg, route: route, pending: auth.NewSourceSlots(maxPendingPerSource, maxPending), failures: auth.NewFailureLimiter()}
	f.wg.Add(1)
	go f.acceptLoop()
	return f
}

func (f *muxFront) router() *router { return f.rt }
func (f *muxFront) addr() net.Addr  { return f.ln.Addr() }
func (f *muxFront) close()          { f.ln.Close(); f.wg.Wait() }

func (f *muxFront) acceptLoop() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		tc := c.(*net.TCPConn)
		release, ok := f.pending.Acquire(addrOf(tc.RemoteAddr()), 0)
		if !ok {
			netx.TCP{TCPConn: tc}.Reset() // too many connections that have not said where they go
			continue
		}
		// A routed connection lives as long as its user: the member's Close ends it when the
		// proxy goes, so it is not waited for here.
		go f.handle(tc, release)
	}
}

// handle routes one connection; release frees its pending slot (once routed, or when it ends).
func (f *muxFront) handle(c *net.TCPConn, release func()) {
	defer release()
	c.SetDeadline(time.Now().Add(routeTimeout))
	rec := &recorder{r: io.LimitReader(c, maxRouteBytes)}
	req, err := f.route(rec)
	if err != nil {
		f.cfg.Log.Debug("vhost: cannot route connection", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	rt := f.rt.lookup(canonicalHost(req.host), "", req.user)
	var wp *webProxy
	if rt != nil {
		wp = rt.first()
	}
	if wp == nil && f.fallback != nil {
		c.SetDeadline(time.Time{})
		release()
		if f.fallback(&prefixConn{TCPConn: c, prefix: rec.buf}, req.host) {
			return
		}
	}
	if wp == nil {
		if req.refuse != nil {
			req.refuse(c, req.host)
		}
		c.Close()
		return
	}
	if want := wp.req; want.HTTPUser != "" {
		ip := addrOf(c.RemoteAddr())
		ok, _ := f.failures.Check(ip)
		if ok && subtle.ConstantTimeCompare([]byte(req.user), []byte(want.HTTPUser))&subtle.ConstantTimeCompare([]byte(req.password), []byte(want.HTTPPassword)) != 1 {
			f.failures.Fail(ip)
			ok = false
		}
		if !ok {
			if req.unauthorized != nil {
				req.unauthorized(c)
			}
			c.Close()
			return
		}
	}
	if req.ok != nil {
		if _, err := c.Write(req.ok); err != nil {
			c.Close()
			return
		}
	}
	c.SetDeadline(time.Time{})
	release()
	user := &prefixConn{TCPConn: c, prefix: rec.buf[req.replayFrom:]}
	for range len(*rt.members.Load()) {
		if wp := rt.pick(); wp != nil && wp.member.Serve(user, f.cfg.Log) {
			return
		}
	}
	user.Reset()
}

// recorder keeps every byte read through it.
type recorder struct {
	r   io.Reader
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// prefixConn is a user's TCP connection whose first bytes, read off it to route it, are
// read again from prefix.
type prefixConn struct {
	*net.TCPConn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.TCPConn.Read(p)
}

// Reset aborts the connection with an RST.
func (c *prefixConn) Reset() { netx.TCP{TCPConn: c.TCPConn}.Reset() }

// sniRoute routes a TLS connection by the server name of its ClientHello, which crypto/tls
// itself reads: the handshake stops as soon as the hello is parsed.
func sniRoute(r *recorder) (*muxRequest, error) {
	var name string
	var seen bool
	errRead := errors.New("hello read")
	err := tls.Server(readOnlyConn{r}, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		name, seen = h.ServerName, true
		return nil, errRead
	}}).Handshake()
	if !seen {
		return nil, fmt.Errorf("no TLS ClientHello: %w", err)
	}
	return &muxRequest{host: name, refuse: func(c net.Conn, _ string) { c.Write(alertUnrecognizedName) }}, nil
}

// alertUnrecognizedName is a fatal TLS alert unrecognized_name (RFC 6066 §3): what a TLS
// server answers a server name it does not have. crypto/tls has no way to send a bare alert.
var alertUnrecognizedName = []byte{21, 3, 3, 0, 2, 2, 112}

// readOnlyConn lets crypto/tls read a ClientHello from a reader; anything it writes fails.
type readOnlyConn struct{ r io.Reader }

func (c readOnlyConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (readOnlyConn) Write([]byte) (int, error)        { return 0, io.ErrClosedPipe }
func (readOnlyConn) Close() error                     { return nil }
func (readOnlyConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (readOnlyConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (readOnlyConn) SetDeadline(time.Time) error      { return nil }
func (readOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (readOnlyConn) SetWriteDeadline(time.Time) error { return nil }

// connectRoute routes a connection by the host of its HTTP CONNECT request (read by
// net/http), with the user and password of its Proxy-Authorization. Unless passthrough, the
// request is answered here (200) and the service gets the bytes that follow it.
func connectRoute(passthrough bool) routeFunc {
	return func(r *recorder) (*muxRequest, error) {
		br := bufio.NewReader(r)
		req, err := http.ReadRequest(br)
		if err != nil {
			return nil, fmt.Errorf("read CONNECT request: %w", err)
		}
		if req.Method != http.MethodConnect {
			return &muxRequest{refuse: func(c net.Conn, _ string) {
				writeResponse(c, http.StatusMethodNotAllowed, nil, errorPage("Method Not Allowed", "This port takes HTTP CONNECT requests only."))
			}}, nil
		}
		m := &muxRequest{host: req.Host, replayFrom: len(r.buf) - br.Buffered(), ok: []byte("HTTP/1.1 200 Connection established\r\n\r\n")}
		if passthrough {
			m.replayFrom, m.ok = 0, nil
		}
		if pa := req.Header.Get("Proxy-Authorization"); pa != "" {
			m.user, m.password, _ = parseBasicAuth(pa)
		}
		m.refuse = func(c net.Conn, host string) {
			writeResponse(c, http.StatusNotFound, nil, notFoundPage(canonicalHost(host)))
		}
		m.unauthorized = func(c net.Conn) {
			writeResponse(c, http.StatusProxyAuthRequired, http.Header{"Proxy-Authenticate": {`Basic realm="Restricted"`}}, nil)
		}
		return m, nil
	}
}

// parseBasicAuth reads a basic-auth header value, as net/http does for Authorization.
func parseBasicAuth(v string) (user, password string, ok bool) {
	r := &http.Request{Header: http.Header{"Authorization": {v}}}
	return r.BasicAuth()
}

func writeResponse(c net.Conn, code int, h http.Header, body []byte) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	h.Write(&b)
	if body != nil {
		b.WriteString("Content-Type: text/html; charset=utf-8\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n")
	b.Write(body)
	c.Write(b.Bytes())
}
