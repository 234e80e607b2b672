package plugin

import (
	"net"

	"github.com/xp2p/xp2p/config"
)

// unix_domain_socket joins each user to a Unix socket of the client's machine (unixPath).
func init() { register(config.PluginUnixDomainSocket, newUnixSocket) }

type unixSocket struct{ path string }

func newUnixSocket(o *config.PluginOptions, _ Options) (Plugin, error) {
	return &unixSocket{path: o.UnixPath}, nil
}

func (p *unixSocket) Serve(conn net.Conn) {
	local, err := net.DialTimeout("unix", p.path, dialTimeout)
	if err != nil {
		conn.Close()
		return
	}
	join(conn, local)
}

func (p *unixSocket) Close() error { return nil }
