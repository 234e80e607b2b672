package rendezvous

import (
	"fmt"
	"time"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/wire"
)

// A P2P session is unproven from its pairing until its provider reports it ready: the visitor
// proved the service's secretKey (end to end; the server never sees the proof). Any token holder
// can ask for sessions, so unproven ones are bounded per visitor source (an IPv4 address or an
// IPv6 /64) and provider, and expire quickly: without the secretKey, a flood of Connects holds
// a few slots of its own for a few seconds, and visitors from elsewhere pair at once.
const (
	// unprovenTimeout ends a session its visitor did not prove: a handshake through the relay
	// takes a few round trips, and QUIC's retransmissions of a lost first packet a few seconds.
	unprovenTimeout = 10 * time.Second
	// maxUnprovenPerSource bounds one source's unproven sessions to one provider (several
	// visitors behind one NAT that start at the same moment still fit).
	maxUnprovenPerSource = 8
)

// newUnprovenSlots bounds a provider's unproven sessions: per source, and in all.
func (s *Server) newUnprovenSlots() *auth.SourceSlots {
	return auth.NewSourceSlots(maxUnprovenPerSource, s.cfg.Transport.MaxRelaySessions*4)
}

// holdUnprovenLocked takes a slot of the provider's unproven sessions for ps and starts its
// expiry. s.mu is held.
func (s *Server) holdUnprovenLocked(ps *p2pSession) error {
	release, ok := ps.provider.unproven.Acquire(ps.visitor.remote.Addr(), 0)
	if !ok {
		return fmt.Errorf("too many P2P sessions to %q wait for their visitors' secretKey: %d at most per address (%s), %d in all",
			ps.service, maxUnprovenPerSource, auth.Source(ps.visitor.remote.Addr()), ps.provider.unproven.Total)
	}
	ps.releaseUnproven = release
	ps.expiry = time.AfterFunc(unprovenTimeout, func() {
		s.mu.Lock()
		proven := ps.proven
		s.mu.Unlock()
		if !proven {
			s.endSession(ps, nil, fmt.Sprintf("the visitor did not prove the secretKey within %s", unprovenTimeout))
		}
	})
	return nil
}

// endUnprovenLocked frees what an unproven session holds (its slot, its timer): it is proven
// now, or over. s.mu is held.
func (ps *p2pSession) endUnprovenLocked() {
	if ps.expiry != nil {
		ps.expiry.Stop()
	}
	if ps.releaseUnproven != nil {
		ps.releaseUnproven()
	}
}

// noteProven marks the sessions that c, as their provider, reports ready.
func (c *client) noteProven(m *wire.Traffic) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, st := range m.Sessions {
		if st.Role != wire.RoleProvider || st.ReadyMicros <= 0 {
			continue
		}
		if ps := c.sessions[string(st.SessionID)]; ps != nil && ps.provider == c && !ps.proven {
			ps.proven = true
			ps.endUnprovenLocked()
		}
	}
}
