// Package admin is the client's web front end on webServer.addr:port (loopback by default),
// frpc's admin UI: a page (proxies, visitors, P2P sessions, servers, NAT, the last warnings and
// errors, the config to edit and apply) with the server dashboard's look and sign-in (package
// web), the JSON API behind it (GET /api/status, /api/logs, /api/config; POST /api/reload), and
// the other half used by `xp2p status` and `xp2p reload`.
//
// Without webServer.password the endpoint answers only requests from this machine's loopback
// whose process runs as the client's own user or as root (web.OwnerOnly): other local users
// must not read or drive a client they do not own.
package admin

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/peercred"
	"github.com/xp2p/xp2p/peer"
	"github.com/xp2p/xp2p/web"
)

// Controller is what the endpoint reports on and reloads: a *peer.Client.
type Controller interface {
	Servers() []peer.ServerInfo
	Proxies() []peer.ProxyInfo
	Visitors() []peer.VisitorInfo
	Sessions() []peer.SessionInfo
	// NAT describes the NAT in front of the client as it last measured it ("" if not yet).
	NAT() string
	// PortMapping describes the router's mapping of the client's port (nil: not asked for).
	PortMapping() *peer.PortMapInfo
	// Reload applies a validated configuration: added, removed and changed proxies and
	// visitors take effect, untouched ones keep their connections; a configuration it cannot
	// apply is refused as a whole.
	Reload(cfg *config.Client) (*peer.ReloadResult, error)
}

var _ Controller = (*peer.Client)(nil)

//go:embed web
var pages embed.FS

// Status answers GET /api/status.
type Status struct {
	Version string            `json:"version"`
	Started time.Time         `json:"started"`
	Config  string            `json:"config,omitempty"`
	Servers []peer.ServerInfo `json:"servers"`
	NAT     string            `json:"nat"`
	// PortMapping is the router's mapping of the client's UDP port (absent: transport.portMapping is off).
	PortMapping *peer.PortMapInfo  `json:"portMapping,omitempty"`
	Proxies     []peer.ProxyInfo   `json:"proxies"`
	Visitors    []peer.VisitorInfo `json:"visitors"`
	Sessions    []peer.SessionInfo `json:"sessions"`
}

// ReloadResponse answers POST /api/reload.
type ReloadResponse struct {
	Result   *peer.ReloadResult `json:"result"`
	Warnings []string           `json:"warnings"`
}

// Options tune the endpoint.
type Options struct {
	Log *slog.Logger
	// ConfigPath is the file the client started with: POST /api/reload without a body reads it
	// again, and GET /api/config shows it until a reload replaces it.
	ConfigPath string
	// Logs are the client's last warnings and errors, for GET /api/logs (none if nil).
	Logs *web.RecentLogs
	// SameProcessOwner lets the client's own process call a password-less endpoint as its
	// owner: for a program that embeds the client and its endpoint and calls it (tests). Off,
	// a connection from the client itself is refused there: it carries the user of one of the
	// client's proxies whose local service is this port, not the owner.
	SameProcessOwner bool
}

// Config answers GET /api/config: the configuration in effect, for the page to edit.
type Config struct {
	// File names it (the file the client started with, or the name a reload gave).
	File string `json:"file"`
	Text string `json:"text"`
}

// MaxConfigSize bounds a configuration sent to /api/reload.
const MaxConfigSize = 1 << 20

// Server is a running admin endpoint.
type Server struct {
	cfg     config.WebServer
	ctl     Controller
	opts    Options
	log     *slog.Logger
	guard   *web.Guard
	started time.Time

	reloadMu sync.Mutex
	configMu sync.Mutex
	config   Config
	ln       net.Listener
	url      string
	// unguard ends the endpoint's guard against the client's own proxies (peercred.Guard).
	unguard func()
	http    *http.Server
	done    chan struct{}
}

// New prepares the endpoint. It refuses to run without a password on an address other machines
// can reach.
func New(cfg config.WebServer, ctl Controller, opts Options) (*Server, error) {
	if _, err := web.Exposure("client admin endpoint", cfg); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &Server{cfg: cfg, ctl: ctl, opts: opts, log: opts.Log, started: time.Now(),
		guard: web.NewGuard("xp2p client admin", cfg.User, cfg.Password)}
	s.guard.Secure = cfg.TLS.CertFile != ""
	s.guard.Warning, _ = web.Exposure("client admin endpoint", cfg)
	if opts.ConfigPath != "" {
		if data, err := os.ReadFile(opts.ConfigPath); err == nil {
			s.config = Config{File: opts.ConfigPath, Text: string(data)}
		}
	}
	return s, nil
}

// Start binds webServer.addr:port and serves.
func (s *Server) Start() error {
	warning, _ := web.Exposure("client admin endpoint", s.cfg)
	ln, scheme, err := web.Listen(s.cfg)
	if err != nil {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	s.ln = ln
	s.url = web.URL(scheme, ln.Addr())
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.unguard = func() {}
	if !s.guard.Required() {
		s.http.ConnContext = web.OwnerContext
		// The client's own connections pass as its owner's: its plugins must not lead here.
		s.unguard = peercred.Guard(ln.Addr())
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin endpoint stopped", "err", err)
		}
	}()
	if warning != "" {
		s.log.Warn(warning)
	}
	s.log.Info("admin endpoint listening", "url", s.url)
	return nil
}

// URL is where the endpoint is reachable from this machine.
func (s *Server) URL() string { return s.url }

// Close stops the endpoint.
func (s *Server) Close() error {
	if s.http == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
	}
	<-s.done
	s.unguard()
	return nil
}

// Handler serves the page and its API. Without a password it answers only the client's own
// user and root (the server from Start looks up each connection's owner).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	own, _ := fs.Sub(pages, "web")
	web.Site(mux, own)
	mux.Handle("/healthz", web.Method("GET", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})))
	s.guard.MountLogin(mux, "client page", peer.Version, s.log)
	mux.Handle("/api/status", web.Method("GET", s.guard.Wrap(http.HandlerFunc(s.status))))
	mux.Handle("/api/logs", web.Method("GET", s.guard.Wrap(http.HandlerFunc(s.logs))))
	mux.Handle("/api/config", web.Method("GET", s.guard.Wrap(http.HandlerFunc(s.configText))))
	mux.Handle("/api/reload", web.Method("POST", s.guard.Wrap(http.HandlerFunc(s.reload))))
	if s.cfg.PprofEnable {
		s.guard.MountPprof(mux)
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, http.StatusNotFound, "no such page or endpoint: "+r.URL.Path+" (the client's API: GET /api/status, /api/logs, /api/config; POST /api/reload)")
	}))
	var h http.Handler = mux
	if !s.guard.Required() {
		// The page's files are the same embedded ones for everyone: another user's browser
		// gets the page, whose sign-in card then shows the API's refusal and what to do.
		owner := web.OwnerOnly("this client's admin endpoint", s.opts.SameProcessOwner, mux)
		h = web.LocalHostOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if web.IsPageFile(r.URL.Path) {
				mux.ServeHTTP(w, r)
				return
			}
			owner.ServeHTTP(w, r)
		}))
	}
	return web.SecurityHeaders(web.NoCrossSite(h))
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if _, err := web.Query(r); err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	st := Status{
		Version:     peer.Version,
		Started:     s.started,
		Config:      s.opts.ConfigPath,
		Servers:     s.ctl.Servers(),
		NAT:         s.ctl.NAT(),
		PortMapping: s.ctl.PortMapping(),
		Proxies:     s.ctl.Proxies(),
		Visitors:    s.ctl.Visitors(),
		Sessions:    s.ctl.Sessions(),
	}
	web.WriteJSON(w, http.StatusOK, st)
}

// reload applies the configuration in the body (TOML, Content-Type application/toml; ?file=
// names it in error messages), or, without a body, the file the client started with.
func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "file" {
			web.WriteError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q; /api/reload takes: file", k))
			return
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxConfigSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			web.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("configuration larger than %d bytes", MaxConfigSize))
			return
		}
		web.WriteError(w, http.StatusBadRequest, "read configuration: "+err.Error())
		return
	}
	name := q.Get("file")
	if len(data) == 0 {
		if s.opts.ConfigPath == "" {
			web.WriteError(w, http.StatusBadRequest, "empty body: send the configuration (TOML) to apply")
			return
		}
		name = s.opts.ConfigPath
		if data, err = os.ReadFile(name); err != nil {
			web.WriteError(w, http.StatusInternalServerError, "read "+name+": "+err.Error())
			return
		}
	} else {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct != "application/toml" {
			// A browser can send text/plain across sites without asking; application/toml it
			// cannot, so this also keeps other web pages from reconfiguring the client.
			web.WriteError(w, http.StatusUnsupportedMediaType, "send the configuration as Content-Type: application/toml")
			return
		}
		if name == "" {
			name = "client.toml"
		}
		name = filepath.Base(name)
		if s.opts.ConfigPath != "" {
			// Its includes are looked for beside the file the client started with.
			name = filepath.Join(filepath.Dir(s.opts.ConfigPath), name)
		}
	}
	cfg, warnings, err := config.ParseClient(name, data)
	if err != nil {
		web.WriteError(w, http.StatusBadRequest, hideIncluded(name, err))
		return
	}
	warnings = slices.DeleteFunc(warnings, func(w string) bool { return !strings.HasPrefix(w, name+":") })
	s.reloadMu.Lock()
	res, err := s.ctl.Reload(cfg)
	s.reloadMu.Unlock()
	if err != nil {
		s.log.Warn("reload refused", "remote", r.RemoteAddr, "err", err)
		web.WriteError(w, http.StatusConflict, err.Error())
		return
	}
	if warnings == nil {
		warnings = []string{}
	}
	s.configMu.Lock()
	s.config = Config{File: name, Text: string(data)}
	s.configMu.Unlock()
	s.log.Info("reload applied through the admin endpoint", "remote", r.RemoteAddr)
	web.WriteJSON(w, http.StatusOK, ReloadResponse{Result: res, Warnings: warnings})
}

// logs answers GET /api/logs: the client's last warnings and errors, oldest first.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	if _, err := web.Query(r); err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	entries := []web.LogEntry{}
	if s.opts.Logs != nil {
		entries = s.opts.Logs.Entries()
	}
	web.WriteJSON(w, http.StatusOK, entries)
}

// configText answers GET /api/config: the configuration in effect.
func (s *Server) configText(w http.ResponseWriter, r *http.Request) {
	if _, err := web.Query(r); err != nil {
		web.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.configMu.Lock()
	c := s.config
	s.configMu.Unlock()
	web.WriteJSON(w, http.StatusOK, c)
}

// hideIncluded renders a config error for an answer of the API without the content of the
// files the config includes: a request may name any file (includes = ["/etc/shadow"]) and the
// client may run as root, so what an included file holds (its characters, lines, keys) must
// not come back. The main file is the requester's own text and keeps its detailed errors;
// `xp2p verify` and `xp2p reload` show the included files' errors to whoever can read them.
func hideIncluded(main string, err error) string {
	var list config.Errors
	var one *config.Error
	switch {
	case errors.As(err, &list):
	case errors.As(err, &one):
		list = config.Errors{one}
	default:
		return err.Error()
	}
	var lines []string
	hidden := map[string]bool{}
	for _, e := range list {
		if e.File == main {
			lines = append(lines, e.Error())
			continue
		}
		if !hidden[e.File] {
			hidden[e.File] = true
			lines = append(lines, e.File+": an included file with errors (not shown here: run `xp2p verify -c "+main+"` on the client's machine to see them)")
		}
	}
	return strings.Join(lines, "\n")
}
