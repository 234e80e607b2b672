package plugin

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/xp2p/xp2p/config"
)

// http_proxy is an HTTP proxy: CONNECT tunnels and requests in absolute form, with the user and
// password of Proxy-Authorization if set.
func init() { register(config.PluginHTTPProxy, newHTTPProxy) }

func newHTTPProxy(o *config.PluginOptions, env Options) (Plugin, error) {
	tr := &http.Transport{
		Proxy:                 nil, // this is the proxy: never another one from the environment
		DialContext:           dialer.DialContext,
		ResponseHeaderTimeout: 2 * time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   8,
	}
	forward := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.Header.Del("Proxy-Authorization")
			pr.Out.Header.Del("Proxy-Connection")
		},
		Transport: tr,
		ErrorLog:  slog.NewLogLogger(env.Log.Handler(), slog.LevelDebug),
	}
	creds := newCredentials(o.HTTPUser, o.HTTPPassword)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.HTTPUser != "" {
			u, p, _ := parseBasicAuth(r.Header.Get("Proxy-Authorization"))
			if ok, limited, retry := creds.check(requestUser(r, env.ViaVhost), u, p); !ok {
				refuse(w, limited, retry, http.StatusProxyAuthRequired, `Basic realm="Restricted"`)
				return
			}
		}
		switch {
		case r.Method == http.MethodConnect:
			tunnel(w, r)
		case r.URL.IsAbs() && r.URL.Host != "":
			forward.ServeHTTP(w, r)
		default:
			http.Error(w, "this is an HTTP proxy: ask for an absolute URL or CONNECT", http.StatusBadRequest)
		}
	})
	return newHTTPPlugin(h, nil, env.Log), nil
}

// tunnel answers a CONNECT: the user's connection is joined to the address it asked for.
func tunnel(w http.ResponseWriter, r *http.Request) {
	target, err := dialer.DialContext(r.Context(), "tcp", r.Host)
	if err != nil {
		http.Error(w, "cannot reach "+r.Host+": "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		target.Close()
		http.Error(w, "CONNECT is not possible here", http.StatusInternalServerError)
		return
	}
	user, buf, err := hj.Hijack()
	if err != nil {
		target.Close()
		return
	}
	if _, err := user.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		user.Close()
		target.Close()
		return
	}
	// Bytes the user sent behind its request go first.
	if n := buf.Reader.Buffered(); n > 0 {
		b, _ := buf.Reader.Peek(n)
		target.Write(b)
	}
	join(user, target)
}

// parseBasicAuth reads a basic-auth header value, as net/http does for Authorization.
func parseBasicAuth(v string) (user, password string, ok bool) {
	return (&http.Request{Header: http.Header{"Authorization": {v}}}).BasicAuth()
}
