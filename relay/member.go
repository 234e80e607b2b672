package relay

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/wire"
)

// Member is one proxy of one client behind a public entry point of the server: a tcp port of
// its own or of a load-balancing group, or a host name on a shared web port (package vhost).
// It opens the connections that carry users to the client, counts them in the proxy's Stats
// and closes them all when the proxy is withdrawn.
type Member struct {
	owner Owner
	name  string
	stats *Stats
	// limit caps the member's traffic, both directions of all its connections (nil: none).
	limit *rate.Limiter

	mu    sync.Mutex
	conns map[io.Closer]struct{}
	gone  bool
}

// NewMember returns the member of proxy name (as registered, user prefix included) of owner.
func NewMember(owner Owner, name string, stats *Stats, limit *rate.Limiter) *Member {
	return &Member{owner: owner, name: name, stats: stats, limit: limit, conns: map[io.Closer]struct{}{}}
}

// Owner is the client the member belongs to.
func (m *Member) Owner() Owner { return m.owner }

// Name is the proxy's registered name.
func (m *Member) Name() string { return m.name }

// Stats are the figures of the member's proxy.
func (m *Member) Stats() *Stats { return m.stats }

// UserConn is a user's connection as the server accepted it: a TCP connection, perhaps with
// the bytes it was routed by already read off it.
type UserConn interface {
	netx.HalfConn
	netx.Resetter
	RemoteAddr() net.Addr
	LocalAddr() net.Addr
}

// track registers c to be closed with the member; false if the member is gone.
func (m *Member) track(c io.Closer) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *Member) untrack(c io.Closer) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

// Serve carries one user connection to the member's client. It returns false if no connection
// to the client could be opened (so another member of a group may take the user).
func (m *Member) Serve(user UserConn, log *slog.Logger) bool {
	if !m.track(user) {
		return false
	}
	defer m.untrack(user)
	st, err := m.Open(user.RemoteAddr().String(), user.LocalAddr().String())
	if err != nil {
		log.Debug("open work stream", "proxy", m.name, "client", m.owner.ID(), "err", err)
		return false
	}
	m.stats.ConnOpened()
	defer m.stats.ConnClosed()
	netx.Pipe(netx.Limit(user, m.limit), netx.Limit(st, m.limit), &m.stats.bytesIn, &m.stats.bytesOut)
	return true
}

// Open returns a connection to the member's client for one user from src that reached dst,
// header written: a pooled TCP work connection when the client has one idle (TLS over TCP
// moves bytes for a fraction of the CPU a QUIC stream needs), else at once a new stream of the
// client's session.
func (m *Member) Open(src, dst string) (Conn, error) {
	hdr := &wire.WorkStream{Proxy: m.name, Src: src, Dst: dst}
	for range 4 {
		w, ok := m.owner.TakeWorkConn()
		if !ok {
			break
		}
		w.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := wire.Write(w, hdr); err == nil {
			w.SetWriteDeadline(time.Time{})
			return w, nil
		}
		w.Reset() // a dead pooled connection: try the next
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := m.owner.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	if err := wire.Write(st, hdr); err != nil {
		st.Reset()
		return nil, err
	}
	return st, nil
}

// Dial is Open as a net.Conn for an HTTP transport (package vhost): counted in the proxy's
// figures, paced by its bandwidth limit, and closed with the member.
func (m *Member) Dial(src, dst net.Addr) (net.Conn, error) {
	st, err := m.Open(src.String(), dst.String())
	if err != nil {
		return nil, err
	}
	c := &StreamConn{Conn: st, Local: dst, Remote: src, BytesRead: &m.stats.bytesOut, BytesWritten: &m.stats.bytesIn, Limit: m.limit}
	c.OnClose = func() {
		m.untrack(c)
		m.stats.ConnClosed()
	}
	if !m.track(c) {
		st.Reset()
		return nil, net.ErrClosed
	}
	m.stats.ConnOpened()
	return c, nil
}

// Close withdraws the member: the connections it carries are closed, and it takes no more.
func (m *Member) Close() {
	m.mu.Lock()
	m.gone = true
	conns := make([]io.Closer, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
