package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xp2p/xp2p/internal/netx"
	"github.com/xp2p/xp2p/internal/session"
	"github.com/xp2p/xp2p/internal/wire"
)

// MaxUDPFlows bounds the per-source flows of one UDP socket; datagrams from further sources are
// dropped until old flows expire.
const MaxUDPFlows = 1024

// udpEarlyQueue bounds the datagrams of a new flow that wait for its stream to open; once it is
// open nothing waits in xp2p: each datagram goes from the socket's batch straight to the QUIC
// connection (whose send queue then pushes back), so the socket's kernel buffer, sized by
// netx.SizeUDPBuffers, is the queue.
const udpEarlyQueue = 256

// UDPFanout serves a UDP socket whose every remote source gets its own stream (a flow): the
// public side of a udp proxy on the server, and the local side of a udp visitor.
type UDPFanout struct {
	Conn *net.UDPConn
	// Open opens the stream of a new flow, header written.
	Open func(ctx context.Context, src netip.AddrPort) (session.Stream, error)
	// Idle expires a flow after this much silence in both directions.
	Idle time.Duration
	// In counts bytes from sources into streams, Out the way back (either may be nil).
	In, Out *atomic.Int64
	// OnFlow, if set, is called when a flow starts (+1) and ends (-1).
	OnFlow func(delta int)

	mu    sync.Mutex
	flows map[netip.AddrPort]*udpFlow
	wg    sync.WaitGroup
	stop  chan struct{}
	once  sync.Once
}

type udpFlow struct {
	src      netip.AddrPort
	lastSeen atomic.Int64
	done     chan struct{} // closed when the flow expires or the fan-out closes

	out    atomic.Pointer[flowOut] // set once the stream is open
	mu     sync.Mutex              // guards early, and setting out
	early  [][]byte
	failed chan struct{} // closed when a send failed: the stream is broken
	fail   sync.Once
	ended  atomic.Bool // the flow's stream is done: a new datagram of src starts a new flow
}

// flowOut is where an open flow's datagrams go.
type flowOut struct {
	st session.Stream
	dg session.Datagrams // nil: framed on the stream
}

// Start begins serving; Close stops.
func (u *UDPFanout) Start() {
	if u.Idle == 0 {
		u.Idle = 60 * time.Second
	}
	netx.SizeUDPBuffers(u.Conn, netx.UDPSocketBuffer)
	u.flows = map[netip.AddrPort]*udpFlow{}
	u.stop = make(chan struct{})
	u.wg.Add(2)
	go u.readLoop()
	go u.expireLoop()
}

// Close closes the socket, ends every flow and waits for them.
func (u *UDPFanout) Close() {
	u.once.Do(func() {
		close(u.stop)
		u.Conn.Close()
		u.mu.Lock()
		for src, f := range u.flows {
			close(f.done)
			delete(u.flows, src)
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
}

// readLoop reads the socket in batches and sends each datagram on its flow right away.
func (u *UDPFanout) readLoop() {
	defer u.wg.Done()
	r := netx.NewBatchReader(u.Conn, 32, wire.MaxDatagram)
	var last *udpFlow // datagrams come in runs from one source: skip the map for them
	for {
		pkt, src, err := r.Read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f := last
		if f == nil || f.src != src || f.ended.Load() {
			if f = u.flow(src); f == nil {
				continue
			}
			last = f
		}
		f.lastSeen.Store(time.Now().UnixNano())
		out := f.out.Load()
		if out == nil {
			f.mu.Lock()
			if out = f.out.Load(); out == nil {
				if len(f.early) < udpEarlyQueue {
					f.early = append(f.early, append([]byte(nil), pkt...))
				}
				f.mu.Unlock()
				continue
			}
			f.mu.Unlock()
		}
		u.send(f, out, pkt)
	}
}

// send sends one datagram of an open flow; a failed send ends the flow.
func (u *UDPFanout) send(f *udpFlow, out *flowOut, pkt []byte) {
	if err := sendDatagram(out.dg, out.st, pkt); err != nil {
		f.fail.Do(func() { close(f.failed) })
		return
	}
	if u.In != nil {
		u.In.Add(int64(len(pkt)))
	}
}

// flow returns the source's flow, starting one if there is room.
func (u *UDPFanout) flow(src netip.AddrPort) *udpFlow {
	u.mu.Lock()
	defer u.mu.Unlock()
	if f, ok := u.flows[src]; ok {
		return f
	}
	if len(u.flows) >= MaxUDPFlows {
		return nil
	}
	select {
	case <-u.stop:
		return nil
	default:
	}
	f := &udpFlow{src: src, done: make(chan struct{}), failed: make(chan struct{})}
	f.lastSeen.Store(time.Now().UnixNano())
	u.flows[src] = f
	u.wg.Add(1)
	go u.runFlow(f)
	return f
}

// sendDatagram sends b as a datagram when the flow has them and b fits, else on the stream.
func sendDatagram(dg session.Datagrams, st io.Writer, b []byte) error {
	if dg != nil && dg.Send(b) == nil {
		return nil
	}
	return wire.WriteDatagram(st, b)
}

// runFlow opens the flow's stream, lets the read loop send on it, and writes what comes back to
// the source until the flow expires or the stream ends.
func (u *UDPFanout) runFlow(f *udpFlow) {
	defer u.wg.Done()
	defer func() {
		u.mu.Lock()
		if u.flows[f.src] == f {
			delete(u.flows, f.src)
		}
		f.ended.Store(true)
		u.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	go func() {
		select {
		case <-f.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	st, err := u.Open(ctx, f.src)
	cancel()
	if err != nil {
		return
	}
	if u.OnFlow != nil {
		u.OnFlow(1)
		defer u.OnFlow(-1)
	}
	back := func(b []byte) {
		if u.Out != nil {
			u.Out.Add(int64(len(b)))
		}
		u.Conn.WriteToUDPAddrPort(b, f.src)
		f.lastSeen.Store(time.Now().UnixNano())
	}
	out := &flowOut{st: st, dg: session.DatagramsOf(st)}
	if out.dg != nil {
		out.dg.Receive(back) // straight from the connection's receiving goroutine to the socket
	}
	f.mu.Lock()
	for _, pkt := range f.early {
		u.send(f, out, pkt)
	}
	f.early = nil
	f.out.Store(out)
	f.mu.Unlock()

	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, wire.MaxDatagram)
		for {
			n, err := wire.ReadDatagram(st, buf)
			if err != nil {
				return
			}
			back(buf[:n])
		}
	}()
	select {
	case <-f.failed:
		st.Reset()
		<-readerDone
	case <-f.done:
		st.Close()
		<-readerDone
	case <-readerDone:
		st.Close()
	}
}

func (u *UDPFanout) expireLoop() {
	defer u.wg.Done()
	t := time.NewTicker(max(u.Idle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case now := <-t.C:
			u.mu.Lock()
			for src, f := range u.flows {
				if now.Sub(time.Unix(0, f.lastSeen.Load())) > u.Idle {
					close(f.done)
					delete(u.flows, src)
				}
			}
			u.mu.Unlock()
		}
	}
}

// Flows returns the number of live flows.
func (u *UDPFanout) Flows() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.flows)
}

// udpProxy is a public udp port of the server.
type udpProxy struct {
	member *Member
	fan    *UDPFanout
}

func (u *udpProxy) close() { u.fan.Close() }

func (p *Proxies) addUDPLocked(m *Member, req *wire.NewProxy) (int, error) {
	if req.RemotePort != 0 {
		if _, busy := p.udpPorts[req.RemotePort]; busy {
			return 0, fmt.Errorf("remotePort %d/udp: %w", req.RemotePort, ErrPortInUse)
		}
	}
	bind, err := netip.ParseAddr(p.cfg.BindAddr)
	if err != nil {
		bind = netip.IPv4Unspecified()
	}
	var conn *net.UDPConn
	listen := func(port int) (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind, uint16(port))))
		return err
	}
	if req.RemotePort != 0 {
		if err := listen(req.RemotePort); err != nil {
			return 0, fmt.Errorf("remotePort %d/udp: %w (%v)", req.RemotePort, ErrPortInUse, err)
		}
	} else {
		held := func(port int) bool { _, ok := p.udpPorts[port]; return ok }
		if err := p.allowed.pick(held, listen); err != nil {
			return 0, fmt.Errorf("remotePort 0/udp: %w", err)
		}
	}
	stats := m.stats
	up := &udpProxy{member: m, fan: &UDPFanout{
		Conn: conn,
		Idle: p.cfg.UDPIdleTimeout,
		In:   &stats.bytesIn,
		Out:  &stats.bytesOut,
		Open: func(ctx context.Context, src netip.AddrPort) (session.Stream, error) {
			st, err := m.owner.OpenStream(ctx)
			if err != nil {
				return nil, err
			}
			hdr := &wire.WorkStream{Proxy: m.name, Src: src.String()}
			if d := m.owner.FlowDatagrams(); d != nil {
				// Registered before the header goes out: the client answers right after it.
				st = d.WithFlow(st)
				hdr.Datagrams = session.DatagramsOf(st) != nil
			}
			if err := wire.Write(st, hdr); err != nil {
				st.Reset()
				return nil, err
			}
			return st, nil
		},
		OnFlow: func(d int) {
			if d > 0 {
				stats.ConnOpened()
			} else {
				stats.ConnClosed()
			}
		},
	}}
	up.fan.Start()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	p.udpPorts[port] = up
	return port, nil
}
