package plugin

import (
	"context"
	"io"
	"log"
	"net"
	"time"

	socks5 "github.com/armon/go-socks5"

	"github.com/xp2p/xp2p/config"
)

// socks5 is a SOCKS5 server (github.com/armon/go-socks5, as frp's): a user reaches any address
// the client can reach, e.g. the home LAN behind a provider.
func init() { register(config.PluginSocks5, newSocks5) }

type socks5Plugin struct {
	creds *credentials // nil: no authentication
}

func newSocks5(o *config.PluginOptions, _ Options) (Plugin, error) {
	p := &socks5Plugin{}
	if o.Username != "" {
		p.creds = newCredentials(o.Username, o.Password)
	}
	return p, nil
}

// Serve runs the SOCKS5 exchange on conn. The handshake must be done within headerTimeout;
// the deadline goes once the server dials the user's destination.
func (p *socks5Plugin) Serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(headerTimeout))
	var store socks5.CredentialStore
	if p.creds != nil {
		store = userCredentials{p.creds, conn.RemoteAddr().String()}
	}
	srv, err := socks5.New(&socks5.Config{
		Credentials: store,
		Logger:      log.New(io.Discard, "", 0),
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn.SetDeadline(time.Time{})
			return dialer.DialContext(ctx, network, addr)
		},
	})
	if err != nil {
		return
	}
	srv.ServeConn(conn)
}

func (p *socks5Plugin) Close() error { return nil }

// userCredentials checks one user's SOCKS5 user and password (the library's static store
// compares with == and counts nothing).
type userCredentials struct {
	c    *credentials
	from string
}

func (u userCredentials) Valid(user, password string) bool {
	ok, _, _ := u.c.check(u.from, user, password)
	return ok
}
