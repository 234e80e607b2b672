package vhost

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRedirectToCleanPath: a path with dot segments or repeated slashes (raw or percent-encoded)
// is redirected to the path the service would resolve it to; a clean one, CONNECT and "*" are
// left as they are.
func TestRedirectToCleanPath(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		code           int
		location       string
	}{
		{"GET", "/", 0, ""},
		{"GET", "/a/b/", 0, ""},
		{"GET", "/a%2Fb", 0, ""},
		{"GET", "/x/../admin", http.StatusMovedPermanently, "/admin"},
		{"HEAD", "//admin/", http.StatusMovedPermanently, "/admin/"},
		{"GET", "/x/%2e%2e/admin?a=1", http.StatusMovedPermanently, "/admin?a=1"},
		{"GET", "/x%2f..%2fadmin", http.StatusMovedPermanently, "/admin"},
		{"POST", "/a/./b", http.StatusPermanentRedirect, "/a/b"},
		{"GET", "http://a.test/x/../y", http.StatusMovedPermanently, "/y"},
		{"OPTIONS", "*", 0, ""},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		w := httptest.NewRecorder()
		redirected := redirectToCleanPath(w, r)
		if code := map[bool]int{true: w.Code}[redirected]; code != tc.code || w.Header().Get("Location") != tc.location {
			t.Errorf("%s %s: redirected %v, %d %q; want %d %q", tc.method, tc.target, redirected, w.Code, w.Header().Get("Location"), tc.code, tc.location)
		}
	}
}
