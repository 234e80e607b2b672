// Package dashboard is the server's web panel on webServer.addr:port: the pages (embedded
// HTML, CSS and JavaScript, no external network), the JSON API behind them, Prometheus
// /metrics, and the in-memory traffic history of the last day. It reads the server's state
// through rendezvous snapshots and changes nothing.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/rendezvous"
	"github.com/xp2p/xp2p/web"
)

//go:embed web
var webFS embed.FS

// Source is what the dashboard shows: a rendezvous.Server.
type Source interface {
	Snapshot() *rendezvous.Snapshot
}

// Options tune a dashboard; zero values take the defaults.
type Options struct {
	Log *slog.Logger
	// Tick is how often the history samples the server's counters (5 s).
	Tick    time.Duration
	History HistoryOptions
	// Location is the time zone of "today" (time.Local).
	Location *time.Location
}

// Server is a running dashboard.
type Server struct {
	cfg   config.WebServer
	src   Source
	opts  Options
	log   *slog.Logger
	guard *web.Guard
	hist  *History
	reg   *prometheus.Registry

	ln     net.Listener
	url    string
	http   *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New prepares a dashboard for cfg. It refuses a password-less dashboard on an address beyond
// loopback; Start warns loudly about a weak password there.
func New(cfg config.WebServer, src Source, opts Options) (*Server, error) {
	if _, err := web.Exposure("dashboard", cfg); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Tick <= 0 {
		opts.Tick = 5 * time.Second
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	s := &Server{
		cfg:   cfg,
		src:   src,
		opts:  opts,
		log:   opts.Log,
		guard: web.NewGuard("xp2p dashboard", cfg.User, cfg.Password),
		hist:  NewHistory(opts.History),
		reg:   prometheus.NewRegistry(),
	}
	s.guard.Secure = cfg.TLS.CertFile != ""
	s.guard.Warning, _ = web.Exposure("dashboard", cfg)
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &collector{s: s})
	return s, nil
}

// Start binds webServer.addr:port and serves.
func (s *Server) Start() error {
	warning, _ := web.Exposure("dashboard", s.cfg)
	ln, scheme, err := web.Listen(s.cfg)
	if err != nil {
		return err
	}
	s.ln = ln
	s.url = web.URL(scheme, ln.Addr())
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.hist.Record(s.src.Snapshot(), time.Now())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("dashboard stopped", "err", err)
		}
	}()
	go func() { defer s.wg.Done(); s.sampleLoop(ctx) }()
	if warning != "" {
		s.log.Warn(warning)
	}
	if !s.guard.Required() {
		s.log.Info("dashboard has no webServer.user/password: open to anyone who can reach " + ln.Addr().String())
	}
	s.log.Info("dashboard listening", "url", s.url)
	return nil
}

func (s *Server) sampleLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.hist.Record(s.src.Snapshot(), now)
		}
	}
}

// URL is where the dashboard is reachable from this machine.
func (s *Server) URL() string { return s.url }

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// History is the dashboard's traffic history.
func (s *Server) History() *History { return s.hist }

// Close stops serving and waits for the dashboard's goroutines.
func (s *Server) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
	}
	s.wg.Wait()
	return nil
}

// Handler serves the pages, the API and /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	pages, _ := fs.Sub(webFS, "web")
	web.Site(mux, pages)
	mux.Handle("/healthz", web.Method("GET", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})))

	s.guard.MountLogin(mux, "dashboard", rendezvous.Version, s.log)

	api := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, web.Method("GET", s.guard.Wrap(h)))
	}
	api("/api/overview", s.overview)
	api("/api/clients", s.clients)
	api("/api/proxies", s.proxies)
	api("/api/proxies/{name}", s.proxy)
	api("/api/proxies/{name}/traffic", s.proxyTraffic)
	api("/api/traffic", s.traffic)
	api("/api/sessions", s.sessions)
	mux.Handle("/metrics", web.Method("GET", s.guard.Wrap(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}))))
	if s.cfg.PprofEnable {
		s.guard.MountPprof(mux)
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, http.StatusNotFound, "no such page or endpoint: "+r.URL.Path)
	}))
	var h http.Handler = mux
	if !s.guard.Required() {
		h = web.LocalHostOnly(h)
	}
	return web.SecurityHeaders(web.NoCrossSite(h))
}
