package plugin

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/xp2p/xp2p/config"
)

// The bridges (https2http, https2https, http2https, http2http) are reverse proxies
// (net/http/httputil) from the users' HTTP or HTTPS to a local service's, with the Host
// rewritten and headers set if asked, and X-Forwarded-For naming the user.
func init() {
	register(config.PluginHTTPS2HTTP, func(o *config.PluginOptions, env Options) (Plugin, error) {
		return newBridge(o, env.Log, true, "http")
	})
	register(config.PluginHTTPS2HTTPS, func(o *config.PluginOptions, env Options) (Plugin, error) {
		return newBridge(o, env.Log, true, "https")
	})
	register(config.PluginHTTP2HTTPS, func(o *config.PluginOptions, env Options) (Plugin, error) {
		return newBridge(o, env.Log, false, "http")
	})
	register(config.PluginHTTP2HTTP, func(o *config.PluginOptions, env Options) (Plugin, error) {
		return newBridge(o, env.Log, false, "http")
	})
}

// newBridge serves HTTP (over TLS if tlsIn) and forwards each request to o.LocalAddr with
// scheme out.
func newBridge(o *config.PluginOptions, log *slog.Logger, tlsIn bool, out string) (Plugin, error) {
	if o.Type == config.PluginHTTP2HTTPS {
		out = "https"
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: dialTimeout}).DialContext,
		ResponseHeaderTimeout: 2 * time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		// The local service's certificate is its own (often self-signed on a LAN): frp does
		// not check it either.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
			pr.Out.URL.Scheme = out
			pr.Out.URL.Host = o.LocalAddr
			pr.Out.Host = pr.In.Host
			if o.HostHeaderRewrite != "" {
				pr.Out.Host = o.HostHeaderRewrite
			}
			for k, v := range o.RequestHeaders.Set {
				pr.Out.Header.Set(k, v)
			}
		},
		Transport: tr,
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if !tlsIn {
		return newHTTPPlugin(rp, nil, log), nil
	}
	http2 := o.EnableHTTP2 == nil || *o.EnableHTTP2
	conf, err := serverTLS(o, http2)
	if err != nil {
		return nil, err
	}
	return newHTTPPlugin(misdirected(rp), conf, log, func(srv *http.Server) {
		if !http2 {
			srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		}
	}), nil
}

// misdirected answers 421 to a request whose Host is not the TLS server name it came with (a
// browser reusing one connection for two sites of one certificate).
func misdirected(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && r.TLS.ServerName != "" {
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			if !strings.EqualFold(strings.TrimSuffix(host, "."), r.TLS.ServerName) {
				w.WriteHeader(http.StatusMisdirectedRequest)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
