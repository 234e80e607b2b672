// Package web owns what xp2p's two web front ends (the server's dashboard and the client's
// admin endpoint) share: binding webServer.addr:port with optional HTTPS, HTTP basic auth and
// login sessions with a per-address failure limit, the exposure checks (no or weak password
// beyond loopback) and JSON errors.
package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/auth"
)

// Error is the body of every error answer: {"error": "..."}.
type Error struct {
	Error string `json:"error"`
}

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	enc.Encode(v)
}

// WriteError answers {"error": msg} with status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, Error{Error: msg})
}

// Addr is webServer.addr:port.
func Addr(cfg config.WebServer) string {
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1"
	}
	return net.JoinHostPort(addr, strconv.Itoa(cfg.Port))
}

// IsLoopback reports whether a bind address only accepts connections from this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// commonPasswords are passwords that guides and defaults use: never fine beyond loopback.
var commonPasswords = map[string]bool{
	"admin": true, "password": true, "passwd": true, "123456": true, "12345678": true,
	"123456789": true, "1234567890": true, "root": true, "toor": true, "xp2p": true, "frp": true,
	"frps": true, "frpc": true, "changeme": true, "test": true, "secret": true, "qwerty": true,
	"letmein": true, "admin123": true, "password1": true, "default": true, "guest": true,
}

// MinPasswordLen is the length under which a password counts as weak beyond loopback.
const MinPasswordLen = 12

// WeakPassword says why a password is weak ("" if it is not).
func WeakPassword(user, password string) string {
	p := strings.ToLower(password)
	switch {
	case password == "":
		return "no password"
	case commonPasswords[p]:
		return fmt.Sprintf("the well-known password %q", password)
	case strings.EqualFold(password, user):
		return "a password equal to the user name"
	case len(password) < MinPasswordLen:
		return fmt.Sprintf("a password of %d characters (use at least %d)", len(password), MinPasswordLen)
	}
	return ""
}

// Exposure checks a web endpoint's settings before it starts. It refuses (err) a password-less
// endpoint on an address beyond loopback, and returns a warning for a weak password there.
func Exposure(what string, cfg config.WebServer) (warning string, err error) {
	if IsLoopback(cfg.Addr) || cfg.Addr == "" {
		return "", nil
	}
	if cfg.Password == "" {
		return "", fmt.Errorf("%s on %s: webServer.password is not set, and webServer.addr %q accepts connections from other machines; set webServer.user and webServer.password, or bind webServer.addr to 127.0.0.1", what, Addr(cfg), cfg.Addr)
	}
	if why := WeakPassword(cfg.User, cfg.Password); why != "" {
		scheme := "plain HTTP: the password crosses the network readable"
		if cfg.TLS.CertFile != "" {
			scheme = "HTTPS"
		}
		return fmt.Sprintf("!!! SECURITY WARNING: the %s listens on %s, reachable from other machines, protected by %s (%s). Anyone who guesses it sees your clients, proxies and addresses. Set a long random webServer.password, or bind webServer.addr to 127.0.0.1 !!!", what, Addr(cfg), why, scheme), nil
	}
	return "", nil
}

// Listen binds the endpoint; with webServer.tls.certFile/keyFile set it serves HTTPS.
func Listen(cfg config.WebServer) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", Addr(cfg))
	if err != nil {
		return nil, "", err
	}
	if cfg.TLS.CertFile == "" {
		return ln, "http", nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		ln.Close()
		return nil, "", fmt.Errorf("webServer.tls: %w", err)
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), "https", nil
}

// URL is how this machine reaches a listener bound to ln: a wildcard address becomes loopback.
func URL(scheme string, ln net.Addr) string {
	ap, err := netip.ParseAddrPort(ln.String())
	if err != nil {
		return scheme + "://" + ln.String()
	}
	a := ap.Addr().Unmap()
	if a.IsUnspecified() {
		// A wildcard listener (dual-stack for "0.0.0.0" as well as "::") answers on 127.0.0.1.
		a = netip.MustParseAddr("127.0.0.1")
	}
	return scheme + "://" + netip.AddrPortFrom(a, ap.Port()).String()
}

// ClientAddr is the address a request came from (proxy headers are not trusted).
func ClientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Guard authenticates requests: HTTP basic auth with webServer.user/password, or (when
// Sessions is on) a login session cookie. Wrong credentials count against the address they came
// from; past the limit the address is refused, right credentials included, until it may try
// again. A guard without a user and password lets everything through.
type Guard struct {
	// Realm names the endpoint in WWW-Authenticate.
	Realm string
	// Limiter limits failed logins per address.
	Limiter *auth.FailureLimiter
	// Failures counts wrong credentials.
	Failures atomic.Int64
	// Limited counts requests refused by the limiter.
	Limited atomic.Int64
	// Secure marks the session cookie Secure (HTTPS).
	Secure bool
	// Warning is the exposure warning of the endpoint (a weak password on an address beyond
	// loopback, see Exposure): signed-in pages show it as a red banner.
	Warning string
	// Log receives failed logins and refusals by the limiter (nil: not logged); what names the
	// endpoint in those lines.
	Log  *slog.Logger
	What string
	// logLimited paces the log lines of refused requests: a locked-out address may send any
	// number, each one a line would let it flood the log.
	logLimited *rate.Limiter

	userSum, passSum [32]byte
	required         bool

	mu       sync.Mutex
	sessions map[string]time.Time // session token hash → expiry
}

// Session cookie settings.
const (
	CookieName  = "xp2p_session"
	SessionTTL  = 12 * time.Hour
	maxSessions = 1024
)

// NewGuard returns a guard for user/password; both empty means no authentication.
func NewGuard(realm, user, password string) *Guard {
	g := &Guard{Realm: realm, Limiter: auth.NewFailureLimiter(), sessions: map[string]time.Time{},
		logLimited: rate.NewLimiter(1, 10)}
	g.required = user != "" || password != ""
	g.userSum = sha256.Sum256([]byte(user))
	g.passSum = sha256.Sum256([]byte(password))
	return g
}

// Required reports whether the guard asks for credentials.
func (g *Guard) Required() bool { return g.required }

func (g *Guard) matches(user, password string) bool {
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(password))
	// Both comparisons always run: the time does not tell which one failed.
	okU := subtle.ConstantTimeCompare(u[:], g.userSum[:])
	okP := subtle.ConstantTimeCompare(p[:], g.passSum[:])
	return okU&okP == 1
}

// ErrLimited is returned while an address is refused for too many failures.
type ErrLimited struct {
	Addr       netip.Addr
	RetryAfter time.Duration
}

func (e *ErrLimited) Error() string {
	return fmt.Sprintf("too many failed logins from %s; retry in %s", e.Addr, max(time.Second, e.RetryAfter.Round(time.Second)))
}

// ErrWrongCredentials is a wrong user or password.
var ErrWrongCredentials = errors.New("wrong user or password")

// ErrNoCredentials is a request without credentials to an endpoint that needs them.
var ErrNoCredentials = errors.New("authentication required")

// CheckCredentials checks a user and password from addr, counting failures.
func (g *Guard) CheckCredentials(addr netip.Addr, user, password string) error {
	if ok, wait := g.Limiter.Check(addr); !ok {
		g.Limited.Add(1)
		if g.Log != nil && g.logLimited.Allow() {
			g.Log.Warn(g.What+" login refused: too many failures from this address (429)", "remote", addr.String(), "retry_in", wait.Round(time.Second))
		}
		return &ErrLimited{Addr: addr, RetryAfter: wait}
	}
	if !g.matches(user, password) {
		g.Limiter.Fail(addr)
		g.Failures.Add(1)
		if g.Log != nil {
			// At most one line per address per 10 s past the first five (the limiter's pace).
			g.Log.Warn(g.What+" login failed: wrong user or password", "remote", addr.String(), "user", truncate(user, 64))
		}
		return ErrWrongCredentials
	}
	return nil
}

// truncate cuts s to n bytes for a log line.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Authenticate checks a request: a valid session cookie, or basic auth credentials.
func (g *Guard) Authenticate(r *http.Request) error {
	if !g.required {
		return nil
	}
	if g.HasSession(r) {
		return nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return ErrNoCredentials
	}
	return g.CheckCredentials(ClientAddr(r), user, pass)
}

// Deny answers a failed authentication with the right status: 429 with Retry-After while
// limited, else 401 (with a basic auth challenge unless the request comes from the dashboard's
// own page, which shows its login form instead of the browser's dialog).
func (g *Guard) Deny(w http.ResponseWriter, r *http.Request, err error) {
	var lim *ErrLimited
	if errors.As(err, &lim) {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, lim.RetryAfter).Seconds()+0.999)))
		WriteError(w, http.StatusTooManyRequests, err.Error())
		return
	}
	if r.Header.Get("X-Requested-With") == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+g.Realm+`", charset="UTF-8"`)
	}
	WriteError(w, http.StatusUnauthorized, err.Error())
}

// Wrap lets only authenticated requests through to h.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.Authenticate(r); err != nil {
			g.Deny(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewSession starts a login session and sets its cookie.
func (g *Guard) NewSession(w http.ResponseWriter) {
	b := make([]byte, 32)
	rand.Read(b)
	token := hex.EncodeToString(b)
	now := time.Now()
	g.mu.Lock()
	for k, exp := range g.sessions {
		if now.After(exp) {
			delete(g.sessions, k)
		}
	}
	if len(g.sessions) >= maxSessions {
		var oldest string
		var oldestT time.Time
		for k, exp := range g.sessions {
			if oldest == "" || exp.Before(oldestT) {
				oldest, oldestT = k, exp
			}
		}
		delete(g.sessions, oldest)
	}
	g.sessions[tokenKey(token)] = now.Add(SessionTTL)
	g.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: token, Path: "/", HttpOnly: true, Secure: g.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(SessionTTL.Seconds()),
	})
}

// HasSession reports whether the request carries a valid login session cookie.
func (g *Guard) HasSession(r *http.Request) bool {
	c, err := r.Cookie(CookieName)
	return err == nil && g.validSession(c.Value)
}

func (g *Guard) validSession(token string) bool {
	if len(token) != 64 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	exp, ok := g.sessions[tokenKey(token)]
	if ok && time.Now().After(exp) {
		delete(g.sessions, tokenKey(token))
		return false
	}
	return ok
}

// EndSession forgets the request's login session and clears its cookie.
func (g *Guard) EndSession(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		g.mu.Lock()
		delete(g.sessions, tokenKey(c.Value))
		g.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, Secure: g.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// SecurityHeaders sets headers that keep a page from being framed or sniffed, and its scripts
// to its own origin.
func SecurityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.ServeHTTP(w, r)
	})
}

// LocalHostOnly answers only requests addressed to this machine by a loopback name (Host:
// localhost or a loopback address). An endpoint without a password relies on it: a web page
// whose domain an attacker points at 127.0.0.1 (DNS rebinding) then still cannot read it.
func LocalHostOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		if !IsLoopback(strings.Trim(host, "[]")) {
			WriteError(w, http.StatusMisdirectedRequest, fmt.Sprintf("this endpoint has no password and only answers requests addressed to localhost or a loopback address, not %q", r.Host))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// NoCrossSite refuses requests that a browser sends on behalf of another site.
func NoCrossSite(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			WriteError(w, http.StatusForbidden, "cross-site request refused")
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			if u, err := url.Parse(o); err != nil || u.Host != r.Host {
				WriteError(w, http.StatusForbidden, "cross-origin request refused")
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
