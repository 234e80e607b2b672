package peer

import (
	"context"
	"time"

	"github.com/xp2p/xp2p/internal/wire"
)

// reportInterval paces the client's reports of its P2P sessions to the server, which cannot see
// traffic on direct paths itself (dashboard, metrics).
const reportInterval = 5 * time.Second

// reportLoop sends the server the figures of the client's P2P sessions until ctx ends.
func (c *Client) reportLoop(ctx context.Context, ctl *control) {
	t := time.NewTicker(reportInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		msg := &wire.Traffic{}
		c.p2p.mu.Lock()
		for _, s := range c.p2p.byID {
			if s.link != ctl.link {
				continue
			}
			if len(msg.Sessions) >= 1024 {
				break
			}
			msg.Sessions = append(msg.Sessions, s.traffic())
		}
		c.p2p.mu.Unlock()
		if len(msg.Sessions) == 0 {
			continue
		}
		if err := ctl.send(msg); err != nil {
			return
		}
	}
}

func (s *p2pSession) traffic() wire.SessionTraffic {
	path, remote := s.Path()
	st := wire.SessionTraffic{
		SessionID:    s.id,
		Role:         s.role,
		Path:         path,
		Local:        s.m.c.UDPAddr().String(),
		ReadyMicros:  time.Duration(s.readyAt.Load()).Microseconds(),
		DirectMicros: s.punch.TimeToDirect().Microseconds(),
		RelayBytes:   s.path.relayBytes.Load(),
		DirectBytes:  s.path.directByte.Load(),
	}
	if remote != nil {
		st.Remote = remote.String()
	}
	if conn := s.conn.Load(); conn != nil {
		st.RTTMicros = conn.ConnectionStats().SmoothedRTT.Microseconds()
	}
	return st
}
