package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/xp2p/xp2p/internal/peercred"
)

// ownerKey carries the owner of a request's connection in its context.
type ownerKey struct{}

type connOwner struct {
	peer peercred.Peer
	err  error
}

// OwnerContext is the ConnContext of an http.Server whose handler uses OwnerOnly: it looks
// up once per connection which local user owns its other end.
func OwnerContext(ctx context.Context, c net.Conn) context.Context {
	p, err := peercred.Owner(c)
	return context.WithValue(ctx, ownerKey{}, connOwner{peer: p, err: err})
}

// OwnerOnly answers only requests whose connection comes from a process of this machine that
// runs as root or as this process's user, as a unix socket with mode 0600 would, and that is
// not this process itself (whose connections here carry a proxy's user). An endpoint
// without a password (loopback only) relies on it: the other users of a machine must not
// drive a client they do not own. what names the endpoint in the refusal;
// sameProcess lets this process's own connections through (a program that embeds the endpoint
// and calls it, such as the tests).
func OwnerOnly(what string, sameProcess bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, ok := r.Context().Value(ownerKey{}).(connOwner)
		fix := "set webServer.user and webServer.password in its config to use it from other accounts"
		switch {
		case !ok:
			WriteError(w, http.StatusForbidden, what+" cannot tell who sent this request")
		case errors.Is(o.err, peercred.ErrUnsupported):
			WriteError(w, http.StatusForbidden, fmt.Sprintf("%s has no webServer.password, and this system cannot tell which user a local connection belongs to: %s", what, fix))
		case o.err != nil:
			WriteError(w, http.StatusForbidden, fmt.Sprintf("%s has no webServer.password and answers only its own user and root; the owner of this connection is unknown (%v)", what, o.err))
		case !peercred.Trusted(o.peer.UID):
			WriteError(w, http.StatusForbidden, fmt.Sprintf("%s has no webServer.password and answers only its own user (uid %d) and root, not uid %d: %s", what, os.Getuid(), o.peer.UID, fix))
		case o.peer.Self && !sameProcess:
			// The client itself connected: it carries someone's connection here (a proxy or
			// plugin whose local service is this port), who is not the owner.
			WriteError(w, http.StatusForbidden, fmt.Sprintf("%s has no webServer.password, and this connection comes through one of the client's own proxies, not from its user: %s", what, fix))
		default:
			h.ServeHTTP(w, r)
		}
	})
}
