package web

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// static holds what both front ends' pages share: the look (xp2p.css), the script that signs
// in, calls the API and formats figures (xp2p.js), and the icon.
//
//go:embed static
var static embed.FS

// Site serves a front end's pages on mux: its index.html at "/", its own files and the shared
// ones under /static/ (its own first), and /favicon.svg. own holds index.html and the page's
// script (static/app.js in the page's <script> tags).
func Site(mux *http.ServeMux, own fs.FS) {
	shared, _ := fs.Sub(static, "static")
	files := http.FileServerFS(layered{own, shared})
	mux.Handle("/{$}", Method("GET", files))
	mux.Handle("/static/", Method("GET", noListing(http.StripPrefix("/static/", files))))
	mux.Handle("/favicon.svg", Method("GET", files))
}

// IsPageFile reports whether path is one of the page files Site serves (the same embedded
// files for everyone: no data of the endpoint).
func IsPageFile(path string) bool {
	return path == "/" || path == "/favicon.svg" || strings.HasPrefix(path, "/static/")
}

// layered is a read-only file system that looks in each of its layers in turn.
type layered []fs.FS

func (l layered) Open(name string) (fs.File, error) {
	var err error
	for _, f := range l {
		var file fs.File
		if file, err = f.Open(name); err == nil {
			return file, nil
		}
	}
	return nil, err
}

// noListing refuses directory listings.
func noListing(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			WriteError(w, http.StatusNotFound, "no such page or endpoint: "+r.URL.Path)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Method lets only one method (and HEAD with GET) through, answering others 405 in JSON.
func Method(m string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m && !(m == "GET" && r.Method == "HEAD") {
			allow := m
			if m == "GET" {
				allow = "GET, HEAD"
			}
			w.Header().Set("Allow", allow)
			WriteError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+"; use "+m)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Query checks a request's query: only the named parameters, each at most once.
func Query(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("malformed query: %v", err)
	}
	for k, v := range q {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return nil, fmt.Errorf("unknown query parameter %q; this endpoint takes none", k)
			}
			return nil, fmt.Errorf("unknown query parameter %q; this endpoint takes: %s", k, strings.Join(allowed, ", "))
		}
		if len(v) > 1 {
			return nil, fmt.Errorf("query parameter %q given %d times", k, len(v))
		}
	}
	return q, nil
}

// BodyError says what is wrong with a request body that failed to read or decode.
func BodyError(err error) string {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Sprintf("body larger than %d bytes", mbe.Limit)
	}
	if errors.Is(err, io.EOF) {
		return "empty body"
	}
	return err.Error()
}

// Me answers GET /api/me: whether the endpoint asks for credentials and whether this browser
// is signed in.
type Me struct {
	AuthRequired  bool   `json:"authRequired"`
	Authenticated bool   `json:"authenticated"`
	Version       string `json:"version"`
	// Warning is the endpoint's security warning (a well-known or weak password on an address
	// other machines reach), for signed-in browsers only: the page shows it as a red banner.
	Warning string `json:"warning,omitempty"`
}

// MountLogin serves the sign-in API of a front end on mux: GET /api/me, POST /api/login
// ({"user": "...", "password": "..."} as JSON or a form; sets the session cookie) and POST
// /api/logout. what names the front end in the log ("dashboard"), version the build.
func (g *Guard) MountLogin(mux *http.ServeMux, what, version string, log *slog.Logger) {
	g.Log, g.What = log, what
	mux.Handle("/api/me", Method("GET", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := Query(r); err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		me := Me{AuthRequired: g.Required(), Version: version}
		// Only a session cookie counts here: basic credentials are checked (and counted) by the API.
		me.Authenticated = !me.AuthRequired || g.HasSession(r)
		if me.Authenticated {
			me.Warning = g.Warning
		}
		WriteJSON(w, http.StatusOK, me)
	})))
	mux.Handle("/api/login", Method("POST", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := Query(r); err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		if !g.Required() {
			WriteJSON(w, http.StatusOK, Me{Authenticated: true, Version: version})
			return
		}
		user, password, msg, status := readLogin(w, r)
		if status != 0 {
			WriteError(w, status, msg)
			return
		}
		if err := g.CheckCredentials(ClientAddr(r), user, password); err != nil { // (logged there)
			g.Deny(w, r, err)
			return
		}
		g.NewSession(w)
		WriteJSON(w, http.StatusOK, Me{AuthRequired: true, Authenticated: true, Version: version, Warning: g.Warning})
	})))
	mux.Handle("/api/logout", Method("POST", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.EndSession(w, r)
		WriteJSON(w, http.StatusOK, Me{AuthRequired: g.Required(), Version: version})
	})))
}

// readLogin reads the user and password of a login request; status is non-zero (with msg) for
// a malformed one.
func readLogin(w http.ResponseWriter, r *http.Request) (user, password, msg string, status int) {
	var creds struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&creds); err != nil {
			return "", "", "malformed login: " + BodyError(err), http.StatusBadRequest
		}
		if _, err := dec.Token(); err != io.EOF {
			return "", "", "malformed login: data after the JSON object", http.StatusBadRequest
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return "", "", "malformed login form: " + err.Error(), http.StatusBadRequest
		}
		creds.User, creds.Password = r.PostForm.Get("user"), r.PostForm.Get("password")
	default:
		return "", "", "send the login as application/json: {\"user\": \"...\", \"password\": \"...\"}", http.StatusUnsupportedMediaType
	}
	return creds.User, creds.Password, "", 0
}
