package rendezvous

import (
	"sync/atomic"

	"github.com/xp2p/xp2p/internal/wire"
)

// Events counts what happens on the server, for logs, the demo and the dashboard.
type Events struct {
	AuthFailures  atomic.Int64
	ClientsOnline atomic.Int64
	P2PPaired     atomic.Int64
	P2PActive     atomic.Int64
}

func newEvents() *Events { return &Events{} }

func (e *Events) authFailure()                   { e.AuthFailures.Add(1) }
func (e *Events) clientOnline(*client)           { e.ClientsOnline.Add(1) }
func (e *Events) clientOffline(*client)          { e.ClientsOnline.Add(-1) }
func (e *Events) p2pPaired(*p2pSession)          { e.P2PPaired.Add(1); e.P2PActive.Add(1) }
func (e *Events) p2pEnded(*p2pSession)           { e.P2PActive.Add(-1) }
func (e *Events) traffic(*client, *wire.Traffic) {}
