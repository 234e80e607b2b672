package rendezvous

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/relay"
)

// defaultMaxIdleWork bounds the idle work connections the server keeps for one client when
// transport.maxPoolCount is not set.
const defaultMaxIdleWork = 32

// workLoop accepts pooled work connections, checks who they belong to and parks them with
// their client.
func (s *Server) workLoop() {
	defer s.wg.Done()
	for {
		w, err := s.listener.AcceptWork(s.ctx)
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer w.Release() // the listener admitted it (Server.admit)
			s.serveWorkConn(w.TLSConn)
		}()
	}
}

// serveWorkConn checks a new work connection: its client proves the key of its control session
// (which only that client and this server know), and the server answers with its own proof
// before the connection is parked, so that the client never takes a user from anyone else.
func (s *Server) serveWorkConn(w netx.TLSConn) {
	w.SetDeadline(time.Now().Add(loginTimeout))
	hello, err := wire.ReadHello[*wire.WorkConn](w)
	if err != nil {
		w.Reset()
		return
	}
	answer := func(res *wire.WorkConnResult) bool {
		if res.Code != "" {
			s.refusals.log("work connection refused", w.RemoteAddr().String(), "tcp", res.Code+": "+res.Error)
		}
		return wire.Write(w, res) == nil
	}
	exporter, err := auth.Exporter(w.ConnectionState(), "work")
	if err != nil {
		answer(&wire.WorkConnResult{Code: wire.CodeInternal, Error: err.Error()})
		w.Close()
		return
	}
	s.mu.Lock()
	c := s.clients[hello.RunID]
	s.mu.Unlock()
	if c == nil {
		answer(&wire.WorkConnResult{Code: wire.CodeUnknownRun, Error: "no session of run " + hello.RunID + " on this server"})
		w.Close()
		return
	}
	// The key is the control session's exported secret (256 bits), so there is nothing to
	// guess: a wrong proof is not counted against the source (unlike a wrong token), which
	// would only let an attacker lock its neighbours' work connections out.
	if !auth.Verify(c.workKey, exporter, auth.RoleClient, hello.Proof) {
		s.Events.authFailure()
		answer(&wire.WorkConnResult{Code: wire.CodeAuth, Error: "wrong proof of the control session's key"})
		w.Close()
		return
	}
	if !answer(&wire.WorkConnResult{Proof: auth.Proof(c.workKey, exporter, auth.RoleServer)}) {
		w.Close()
		return
	}
	w.SetDeadline(time.Time{})
	if !c.parkWork(w) {
		w.Close()
	}
}

// idleWork is a parked work connection and the watcher that notices if the client closes it.
type idleWork struct {
	conn netx.TLSConn
	dead chan struct{} // closed when the watcher saw the connection end
	done chan struct{} // closed when the watcher returned
}

// workPool holds a client's idle work connections.
type workPool struct {
	mu     sync.Mutex
	idle   []*idleWork
	max    int
	closed bool
}

// parkWork keeps w until a user connection needs it; false if the pool is full or closed.
func (c *client) parkWork(w netx.TLSConn) bool {
	p := &c.work
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= p.max {
		return false
	}
	iw := &idleWork{conn: w, dead: make(chan struct{}), done: make(chan struct{})}
	p.idle = append(p.idle, iw)
	go func() {
		// The client never writes on an idle work connection: a read returning means it closed
		// (or TakeWorkConn interrupted the read with a deadline to claim the connection).
		defer close(iw.done)
		var b [1]byte
		_, err := w.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return
		}
		close(iw.dead)
		p.mu.Lock()
		for i, x := range p.idle {
			if x == iw {
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				break
			}
		}
		ending := p.closed
		p.mu.Unlock()
		w.Close()
		if !ending {
			// The client closed it: it recycled it, or its process died (the kernel closes a
			// dead process's connections), which its QUIC session would not tell.
			c.suspect()
		}
	}()
	return true
}

// TakeWorkConn implements relay.Owner.
func (c *client) TakeWorkConn() (relay.Conn, bool) {
	p := &c.work
	for {
		p.mu.Lock()
		if len(p.idle) == 0 {
			p.mu.Unlock()
			return nil, false
		}
		iw := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		p.mu.Unlock()
		iw.conn.SetReadDeadline(time.Now())
		<-iw.done
		select {
		case <-iw.dead:
			continue
		default:
		}
		iw.conn.SetReadDeadline(time.Time{})
		return iw.conn, true
	}
}

// closeWork closes every idle work connection (the client's session ended).
func (c *client) closeWork() {
	p := &c.work
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, iw := range idle {
		iw.conn.Close()
		<-iw.done
	}
}

// IdleWorkConns reports how many pooled connections wait for users.
func (c *client) IdleWorkConns() int {
	c.work.mu.Lock()
	defer c.work.mu.Unlock()
	return len(c.work.idle)
}
