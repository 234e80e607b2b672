package web

import (
	"net/http"
	"net/http/pprof"
)

// MountPprof serves Go's runtime profiles (net/http/pprof) under /debug/pprof/ behind the guard:
// frp's webServer.pprofEnable, on the server's dashboard and the client's admin endpoint. It is
// off unless the config asks: a profile exposes internals and a CPU profile costs CPU.
func (g *Guard) MountPprof(mux *http.ServeMux) {
	get := func(h http.Handler) http.Handler {
		return g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET")
				WriteError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+"; use GET")
				return
			}
			h.ServeHTTP(w, r)
		}))
	}
	mux.Handle("/debug/pprof/", get(http.HandlerFunc(pprof.Index))) // also serves heap, goroutine, allocs, ...
	mux.Handle("/debug/pprof/cmdline", get(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("/debug/pprof/profile", get(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", get(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", get(http.HandlerFunc(pprof.Trace)))
}
