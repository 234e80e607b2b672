package web

import (
	"strings"
	"testing"

	"github.com/xp2p/xp2p/config"
)

func TestWeakPassword(t *testing.T) {
	for _, tc := range []struct{ user, pass, want string }{
		{"admin", "admin", "well-known"},
		{"admin", "", "no password"},
		{"bob", "Bob", "equal to the user"},
		{"bob", "short1", "6 characters"},
		{"admin", "Password", "well-known"},
		{"admin", "a-long-random-password", ""},
	} {
		if got := WeakPassword(tc.user, tc.pass); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("WeakPassword(%q, %q) = %q, want %q", tc.user, tc.pass, got, tc.want)
		}
	}
}

func TestExposure(t *testing.T) {
	for _, tc := range []struct {
		cfg       config.WebServer
		err, warn bool
	}{
		{config.WebServer{Addr: "127.0.0.1"}, false, false},
		{config.WebServer{Addr: "::1"}, false, false},
		{config.WebServer{Addr: "localhost"}, false, false},
		{config.WebServer{Addr: "0.0.0.0"}, true, false},
		{config.WebServer{Addr: "0.0.0.0", User: "admin", Password: "admin"}, false, true},
		{config.WebServer{Addr: "10.1.2.3", User: "admin", Password: "x7#kQ9!mZ2@pL4"}, false, false},
	} {
		warn, err := Exposure("dashboard", tc.cfg)
		if (err != nil) != tc.err || (warn != "") != tc.warn {
			t.Errorf("%+v: warning %q, err %v", tc.cfg, warn, err)
		}
	}
}
