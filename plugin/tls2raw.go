package plugin

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/xp2p/xp2p/config"
)

// tls2raw ends the users' TLS (crtPath/keyPath, or a generated certificate) and joins the
// plain bytes to the local service at localAddr.
func init() { register(config.PluginTLS2Raw, newTLS2Raw) }

type tls2raw struct {
	addr string
	conf *tls.Config
}

func newTLS2Raw(o *config.PluginOptions, _ Options) (Plugin, error) {
	conf, err := serverTLS(o, false)
	if err != nil {
		return nil, err
	}
	conf.NextProtos = nil
	return &tls2raw{addr: o.LocalAddr, conf: conf}, nil
}

func (p *tls2raw) Serve(conn net.Conn) {
	tc := tls.Server(conn, p.conf)
	tc.SetDeadline(time.Now().Add(headerTimeout))
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	local, err := net.DialTimeout("tcp", p.addr, dialTimeout)
	if err != nil {
		tc.Close()
		return
	}
	join(tc, local)
}

func (p *tls2raw) Close() error { return nil }
