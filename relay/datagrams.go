package relay

import (
	"io"

	"github.com/xp2p/xp2p/internal/wire"
)

// Datagrams carries a udp flow's datagrams beside its stream, unreliably (QUIC DATAGRAM frames
// on a P2P session): a lost one stays lost instead of holding back those behind it. A flow's
// stream offers it by implementing DatagramCarrier; the stream still carries what Send refuses
// (a datagram too large for one packet) and says when the flow ends.
type Datagrams interface {
	// Send sends one datagram; an error means it was not sent (use the stream).
	Send(b []byte) error
	// Incoming delivers the datagrams that arrive for the flow.
	Incoming() <-chan []byte
}

// DatagramCarrier is implemented by streams whose flow also has datagrams.
type DatagramCarrier interface {
	Datagrams() Datagrams
}

// datagramsOf returns the stream's datagrams, or nil when it has none.
func datagramsOf(st any) Datagrams {
	if c, ok := st.(DatagramCarrier); ok {
		return c.Datagrams()
	}
	return nil
}

// sendDatagram sends b as a datagram when the flow has them and b fits, else on the stream.
func sendDatagram(dg Datagrams, st io.Writer, b []byte) error {
	if dg != nil && dg.Send(b) == nil {
		return nil
	}
	return wire.WriteDatagram(st, b)
}
