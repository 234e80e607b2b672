package session

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/xp2p/xp2p/internal/holdq"
)

// Datagrams carries a udp flow's datagrams beside its stream, unreliably. The stream still
// carries what Send refuses (a datagram too large for one packet) and says when the flow ends.
type Datagrams interface {
	// Send sends one datagram; an error means it was not sent (use the stream). b may be
	// reused as soon as it returns.
	Send(b []byte) error
	// Receive sets the function that takes the flow's incoming datagrams, each in a buffer of
	// its own. It runs on the connection's receiving goroutine, which feeds every flow: it must
	// not block (write to a socket, or drop). Datagrams that came before it was set are handed
	// to it first; until then a few wait. After the flow closes it is no longer called.
	Receive(fn func(b []byte))
}

// DatagramCarrier is implemented by streams whose flow also has datagrams.
type DatagramCarrier interface {
	Datagrams() Datagrams
}

// DatagramsOf returns the stream's datagrams, or nil when it has none.
func DatagramsOf(st any) Datagrams {
	if c, ok := st.(DatagramCarrier); ok {
		return c.Datagrams()
	}
	return nil
}

// StreamID returns the QUIC stream ID of a stream of a QUIC session.
func StreamID(st Stream) (quic.StreamID, bool) {
	if q, ok := st.(quicStream); ok {
		return q.StreamID(), true
	}
	return 0, false
}

// FlowDatagrams carries the datagrams of a QUIC connection's udp flows (of a P2P session, or of
// udp proxies on a client's session to the server) in QUIC DATAGRAM frames (RFC 9221) instead of
// on the flows' streams: a lost packet is then lost, as UDP expects, and
// does not hold back the ones behind it (a stream would retransmit it first: head-of-line
// blocking, and TCP-over-TCP meltdown for a VPN or a game running over the flow). Each datagram
// starts with its flow's stream ID as a QUIC varint, a number both ends know without asking.
// A datagram too large for one QUIC packet still goes on the flow's stream.
//
// The framing is xp2p's own (RFC 9297's quarter-stream-ID belongs to HTTP/3), so it is written
// here; quic-go supplies the frames and the varints.
type FlowDatagrams struct {
	conn *quic.Conn

	mu      sync.Mutex
	flows   map[quic.StreamID]*datagramFlow
	pending holdq.Queue[quic.StreamID] // arrived before their flow was registered (provider side)

	sent, received, dropped atomic.Int64
}

// Bounds of what waits: datagrams whose flow's stream the provider has not yet accepted (its
// header travels on the stream and may arrive after the first datagrams), and datagrams of a
// flow whose taker is not set yet (its local socket is being opened). Once a flow has its
// taker nothing waits here: each datagram goes from quic-go's receive queue straight to the
// local socket, whose kernel buffer is the flow's queue (sized by netx.SizeUDPBuffers).
const (
	maxPendingDatagrams = 64
	pendingDatagramTTL  = 2 * time.Second
	maxEarlyDatagrams   = 64
)

// NewFlowDatagrams returns the flows' datagrams of conn, or nil when conn is nil (not a QUIC
// session) or its peer takes no datagrams (a TCP session, an older peer): then flows keep to
// their streams. Run deals the incoming ones.
func NewFlowDatagrams(conn *quic.Conn) *FlowDatagrams {
	if conn == nil || !conn.ConnectionState().SupportsDatagrams.Remote {
		return nil
	}
	return &FlowDatagrams{conn: conn, flows: map[quic.StreamID]*datagramFlow{},
		pending: holdq.Queue[quic.StreamID]{Max: maxPendingDatagrams, TTL: pendingDatagramTTL}}
}

// Run reads the connection's datagrams until it closes (or ctx ends) and deals them to their
// flows.
//
// Two goroutines: one only takes the datagrams out of quic-go, the other hands them to the
// flows (a socket write each). quic-go keeps at most 128 received datagrams and drops the rest,
// and the goroutine that takes them is woken by its connection's goroutine, which goes on
// processing packets first: one that also wrote each datagram to a socket fell behind by that
// much on a busy machine (1.2 % to 4 % of 100 Mbit/s of iperf3 lost there, with every socket
// and queue of xp2p's empty). The hand-over between the two is a bounded queue (inboxSize), so
// the socket writes may lag by that much without a loss, and the writer wakes once per batch
// while it lags.
func (d *FlowDatagrams) Run(ctx context.Context) {
	var in inbox
	in.wake = make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var batch [][]byte
		for {
			select {
			case <-in.wake:
			case <-ctx.Done():
				return
			case <-d.conn.Context().Done():
				return
			}
			for {
				if batch = in.take(batch[:0]); len(batch) == 0 {
					break
				}
				for i, b := range batch {
					d.handle(b)
					batch[i] = nil
				}
			}
		}
	}()
	defer func() { <-done }()
	for {
		b, err := d.conn.ReceiveDatagram(ctx)
		if err != nil {
			return
		}
		if !in.put(b) {
			d.dropped.Add(1)
		}
	}
}

// handle deals one received datagram to its flow.
func (d *FlowDatagrams) handle(b []byte) {
	id, payload, err := splitFlowDatagram(b)
	if err != nil {
		d.dropped.Add(1) // malformed: the peer is authenticated, but never trust a length
		return
	}
	d.deliver(id, payload)
}

// inboxSize bounds the datagrams taken from quic-go that wait for their socket writes: 1024
// (1.2 MB of 1200-byte datagrams, 33 ms at 300 Mbit/s) per connection.
const inboxSize = 1024

// inbox hands datagrams from Run's reader to its writer.
type inbox struct {
	mu   sync.Mutex
	q    [][]byte
	wake chan struct{} // signalled when q becomes non-empty
}

// put queues b, or reports that the inbox is full.
func (in *inbox) put(b []byte) bool {
	in.mu.Lock()
	if len(in.q) >= inboxSize {
		in.mu.Unlock()
		return false
	}
	in.q = append(in.q, b)
	first := len(in.q) == 1
	in.mu.Unlock()
	if first {
		select {
		case in.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// take moves what is queued into spare (emptied) and returns it.
func (in *inbox) take(spare [][]byte) [][]byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := in.q
	in.q = spare
	return out
}

// splitFlowDatagram reads a flow datagram: its flow's stream ID and the payload after it.
func splitFlowDatagram(b []byte) (quic.StreamID, []byte, error) {
	id, n, err := quicvarint.Parse(b)
	if err != nil {
		return 0, nil, err
	}
	return quic.StreamID(id), b[n:], nil
}

// appendFlowDatagram writes a flow datagram (the inverse of splitFlowDatagram).
func appendFlowDatagram(buf []byte, id quic.StreamID, payload []byte) []byte {
	buf = quicvarint.Append(buf, uint64(id))
	return append(buf, payload...)
}

// keepaliveFlowID leads a keepalive datagram (SendKeepalive): the ID of the first
// client-initiated unidirectional stream, which no xp2p session opens (they admit none), so it
// never names a flow.
const keepaliveFlowID quic.StreamID = 2

// keepaliveDatagram is a keepalive's bytes: padded so that its packet is larger than quic-go's
// threshold for answering an unknown connection with a stateless reset (43 bytes), which QUIC's
// own PING packets are not: a restarted server resets a session at its next keepalive.
var keepaliveDatagram = append(quicvarint.Append(nil, uint64(keepaliveFlowID)), make([]byte, 31)...)

// SendKeepalive sends a datagram that the peer drops on arrival: it keeps the path's NAT
// mappings and the connection's idle timer alive (the peer's ACK comes back) for less work on
// both ends than a message on a stream and its answer.
func (d *FlowDatagrams) SendKeepalive() error { return d.conn.SendDatagram(keepaliveDatagram) }

func (d *FlowDatagrams) deliver(id quic.StreamID, payload []byte) {
	if id == keepaliveFlowID {
		return
	}
	d.mu.Lock()
	f := d.flows[id]
	if f == nil {
		// quic-go hands each datagram over in a buffer of its own: held as it is.
		d.dropped.Add(int64(d.pending.Hold(id, payload, time.Now())))
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	f.push(payload)
}

// register starts receiving the datagrams of the flow on stream id.
func (d *FlowDatagrams) register(id quic.StreamID) *datagramFlow {
	f := &datagramFlow{d: d, id: id}
	d.mu.Lock()
	d.flows[id] = f
	early := d.pending.Take(id)
	d.mu.Unlock()
	for _, b := range early {
		f.push(b)
	}
	return f
}

// datagramFlow is one flow's share of a connection's datagrams.
type datagramFlow struct {
	d    *FlowDatagrams
	id   quic.StreamID
	once sync.Once

	taker atomic.Pointer[func([]byte)]
	mu    sync.Mutex // guards early, and setting taker
	early [][]byte
}

func (f *datagramFlow) push(b []byte) {
	if fn := f.taker.Load(); fn != nil {
		f.d.received.Add(1)
		(*fn)(b)
		return
	}
	f.mu.Lock()
	if fn := f.taker.Load(); fn != nil { // set meanwhile
		f.mu.Unlock()
		f.d.received.Add(1)
		(*fn)(b)
		return
	}
	if len(f.early) < maxEarlyDatagrams {
		f.early = append(f.early, b)
		f.d.received.Add(1)
	} else {
		f.d.dropped.Add(1)
	}
	f.mu.Unlock()
}

// Receive implements Datagrams.
func (f *datagramFlow) Receive(fn func([]byte)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.early {
		fn(b)
	}
	f.early = nil
	f.taker.Store(&fn)
}

// sendBufs are the buffers of outgoing flow datagrams: quic-go copies a datagram when it is
// queued, so one buffer serves every send.
var sendBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1500); return &b }}

// Send sends one datagram of the flow; an error (too large for a QUIC packet, connection
// closed) tells the caller to use the flow's stream.
func (f *datagramFlow) Send(b []byte) error {
	bp := sendBufs.Get().(*[]byte)
	buf := appendFlowDatagram((*bp)[:0], f.id, b)
	err := f.d.conn.SendDatagram(buf)
	*bp = buf
	sendBufs.Put(bp)
	if err != nil {
		return err
	}
	f.d.sent.Add(1)
	return nil
}

// close stops the flow's share: later datagrams for it are dropped.
func (f *datagramFlow) close() {
	f.once.Do(func() {
		drop := func([]byte) { f.d.dropped.Add(1) }
		f.taker.Store(&drop)
		f.d.mu.Lock()
		if f.d.flows[f.id] == f {
			delete(f.d.flows, f.id)
		}
		f.d.mu.Unlock()
	})
}

// Counts returns how many datagrams were sent, received and dropped (malformed, unclaimed, of a
// closed flow, or over a flow's queue before its taker was set).
func (d *FlowDatagrams) Counts() (sent, received, dropped int64) {
	return d.sent.Load(), d.received.Load(), d.dropped.Load()
}

// WithFlow registers st's flow and returns st carrying its datagrams too (a DatagramCarrier);
// closing or resetting it ends the flow's share. A stream that is not a QUIC stream of this
// connection's session comes back as it is.
func (d *FlowDatagrams) WithFlow(st Stream) Stream {
	id, ok := StreamID(st)
	if !ok {
		return st
	}
	return &datagramStream{Stream: st, flow: d.register(id)}
}

// datagramStream is a udp flow's stream that also carries its datagrams beside it.
type datagramStream struct {
	Stream
	flow *datagramFlow
}

func (s *datagramStream) Datagrams() Datagrams { return s.flow }

func (s *datagramStream) Close() error {
	s.flow.close()
	return s.Stream.Close()
}

func (s *datagramStream) Reset() {
	s.flow.close()
	s.Stream.Reset()
}

var _ Datagrams = (*datagramFlow)(nil)
