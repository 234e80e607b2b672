//go:build linux

// Package wan emulates a wide-area link for the NAT lab, whose kernel has no netem: a two-port
// Ethernet bridge on AF_PACKET sockets that gives each direction a one-way delay, random loss, a
// rate limit with a bounded queue, and a path MTU that answers oversized packets with ICMP "too
// big" (or drops them silently, a PMTU black hole).
//
// Written for the lab rather than taken from a library because nothing in Go does this on a raw
// link, and tc/netem is not there to drive. One goroutine per direction, on a locked OS thread,
// waits in ppoll() for input or for the head of its queue to fall due, reads frames in batches
// with recvmmsg() straight into free slots and sends every frame that is due with sendmmsg(): no
// allocation and no goroutine hand-off per frame; while frames flow it works in rounds of a tick
// (see tick) rather than waking per frame. With one delay per direction and a FIFO rate limiter
// departures are monotonic, so the queue is a plain ring in arrival order.
//
// The devices that transmit into the bridge's two interfaces must have their offloads off (tso,
// gso, gro and tx checksumming, e.g. `ethtool -K dev tso off gso off gro off tx off`) so that
// frames arrive as real packets of at most the MTU with complete checksums; a frame too large for
// a slot is counted (Stats.Truncated) and dropped, which makes a forgotten offload visible.
package wan

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Shape is what one direction of a link does to the frames that cross it.
type Shape struct {
	Delay time.Duration // one-way delay added to every frame
	Loss  float64       // probability in [0, 1] that a frame is dropped at random
	Rate  float64       // bit/s on the wire (Ethernet framing included); 0: unlimited
	// Queue is the most a frame may wait for the rate limiter before it is tail-dropped, as a
	// router's buffer (default 50 ms).
	Queue time.Duration
	// MTU is the largest IP packet that passes (0: no limit). A larger IPv4 packet with DF set
	// and any larger IPv6 packet get an ICMP "too big" back to their sender, unless NoICMP.
	MTU    int
	NoICMP bool
}

func (s Shape) String() string {
	str := fmt.Sprintf("delay %s loss %g%%", s.Delay, s.Loss*100)
	if s.Rate > 0 {
		str += fmt.Sprintf(" rate %g Mbit/s", s.Rate/1e6)
	}
	if s.MTU > 0 {
		str += fmt.Sprintf(" mtu %d", s.MTU)
		if s.NoICMP {
			str += " (no ICMP)"
		}
	}
	return str
}

func (s Shape) validate() error {
	switch {
	case s.Delay < 0 || s.Delay > 10*time.Second:
		return fmt.Errorf("delay %s out of range [0, 10s]", s.Delay)
	case s.Loss < 0 || s.Loss > 1:
		return fmt.Errorf("loss %g out of range [0, 1]", s.Loss)
	case s.Rate < 0:
		return fmt.Errorf("rate %g below 0", s.Rate)
	case s.MTU != 0 && (s.MTU < 576 || s.MTU > 9000):
		return fmt.Errorf("mtu %d out of range [576, 9000]", s.MTU)
	}
	return nil
}

// Stats counts what one direction did.
type Stats struct {
	Received    uint64 // frames read from the input
	Sent        uint64 // frames written to the output
	Bytes       uint64 // bytes of the frames received
	Lost        uint64 // dropped at random (Shape.Loss)
	QueueDrops  uint64 // tail-dropped: the rate limiter's queue or the ring was full
	TooBig      uint64 // larger than Shape.MTU
	ICMP        uint64 // "too big" answers sent
	Truncated   uint64 // larger than a slot: offloads left on upstream
	SendErrors  uint64 // frames the output device refused
	KernelDrops uint64 // frames the kernel dropped before the bridge read them (socket full)
}

// Options are a bridge's settings besides the two shapes.
type Options struct {
	// ICMPFrom4 and ICMPFrom6 are the source addresses of the "too big" answers, as a router's
	// own address (defaults 203.0.113.254 and 2001:db8:ffff::fe).
	ICMPFrom4, ICMPFrom6 netip.Addr
	// Seed makes the random losses repeatable (0: a random seed).
	Seed uint64
	// Frames bounds each direction's queue (default 32768: 1 Gbit/s for a 400 ms one-way delay,
	// or 10 Gbit/s for 40 ms). Its memory is touched only as deep as the queue gets.
	Frames int
}

const (
	slotSize     = 2048 // an Ethernet frame of a 1500-byte MTU with room to spare
	batch        = 64   // frames per recvmmsg/sendmmsg
	defaultQueue = 50 * time.Millisecond
)

// Bridge is a running link between two interfaces.
type Bridge struct {
	a, b  string
	fds   [2]int
	dirs  [2]*direction
	stop  atomic.Bool
	wg    sync.WaitGroup
	close sync.Once
}

// Start bridges interfaces a and b of the calling OS thread's network namespace (neither with an
// address nor in a bridge of its own): ab shapes the frames from a to b, ba the others. The
// bridge runs until Close.
func Start(a, b string, ab, ba Shape, opt Options) (*Bridge, error) {
	for _, s := range []Shape{ab, ba} {
		if err := s.validate(); err != nil {
			return nil, err
		}
	}
	if !opt.ICMPFrom4.IsValid() {
		opt.ICMPFrom4 = netip.MustParseAddr("203.0.113.254")
	}
	if !opt.ICMPFrom6.IsValid() {
		opt.ICMPFrom6 = netip.MustParseAddr("2001:db8:ffff::fe")
	}
	if !opt.ICMPFrom4.Is4() || !opt.ICMPFrom6.Is6() || opt.ICMPFrom6.Is4In6() {
		return nil, fmt.Errorf("ICMP sources %s, %s: want an IPv4 and an IPv6 address", opt.ICMPFrom4, opt.ICMPFrom6)
	}
	if opt.Seed == 0 {
		opt.Seed = rand.Uint64()
	}
	if opt.Frames <= 0 {
		opt.Frames = 32768
	}
	br := &Bridge{a: a, b: b}
	for i, name := range []string{a, b} {
		fd, err := openPacketSocket(name)
		if err != nil {
			br.closeFDs()
			return nil, err
		}
		br.fds[i] = fd
	}
	for i, s := range []Shape{ab, ba} {
		d := &direction{
			name:     [2]string{a + ">" + b, b + ">" + a}[i],
			in:       br.fds[i],
			out:      br.fds[1-i],
			icmp4:    opt.ICMPFrom4.As4(),
			icmp6:    opt.ICMPFrom6.As16(),
			rng:      rand.New(rand.NewPCG(opt.Seed+uint64(i), opt.Seed^0x9e3779b97f4a7c15)),
			stop:     &br.stop,
			store:    make([]byte, opt.Frames*slotSize),
			queue:    make([]queued, opt.Frames),
			freeList: make([]int32, opt.Frames),
		}
		for j := range d.freeList {
			d.freeList[j] = int32(opt.Frames - 1 - j) // LIFO: the lowest slots are reused first
		}
		d.shape.Store(&s)
		br.dirs[i] = d
	}
	for _, d := range br.dirs {
		br.wg.Add(1)
		go func() {
			defer br.wg.Done()
			d.run()
		}()
	}
	return br, nil
}

// Set changes both directions' shapes; frames already queued keep the times they were given.
func (br *Bridge) Set(ab, ba Shape) error {
	for _, s := range []Shape{ab, ba} {
		if err := s.validate(); err != nil {
			return err
		}
	}
	br.dirs[0].shape.Store(&ab)
	br.dirs[1].shape.Store(&ba)
	return nil
}

// Shapes returns both directions' shapes.
func (br *Bridge) Shapes() (ab, ba Shape) { return *br.dirs[0].shape.Load(), *br.dirs[1].shape.Load() }

// Stats returns both directions' counters.
func (br *Bridge) Stats() (ab, ba Stats) {
	return br.dirs[0].stats(), br.dirs[1].stats()
}

// Close stops the bridge and waits for its goroutines.
func (br *Bridge) Close() error {
	br.close.Do(func() {
		br.stop.Store(true)
		br.wg.Wait()
		br.closeFDs()
	})
	return nil
}

func (br *Bridge) closeFDs() {
	for i, fd := range br.fds {
		if fd > 0 {
			unix.Close(fd)
			br.fds[i] = 0
		}
	}
}

// openPacketSocket opens a raw socket that reads every frame arriving on the interface (and none
// it sends itself) and sends frames out of it, bypassing its queueing discipline.
func openPacketSocket(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, fmt.Errorf("wan: interface %s: %w", name, err)
	}
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return 0, fmt.Errorf("wan: packet socket: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return 0, fmt.Errorf("wan: %s on %s: %w", what, name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	mr := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
		return fail("promiscuous mode", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	// Best effort: without them the bridge still works, a little slower or with smaller bursts.
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	// The kernel's arrival time of each frame: delays and the rate limiter count from when a
	// frame came, not from when a busy machine let the bridge read it.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("SO_TIMESTAMPNS", err)
	}
	// Frames that came before the filters took effect (our own among them) are not the link's.
	var b [slotSize]byte
	for range 1 << 16 {
		if _, _, err := unix.Recvfrom(fd, b[:], unix.MSG_DONTWAIT); err != nil {
			break
		}
	}
	unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS) // resets the counters
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// queued is a frame waiting in a direction's ring.
type queued struct {
	slot int32
	len  int32
	due  int64 // monotonic ns (since clockBase)
}

// direction is one way through the bridge. Only its own goroutine touches its fields, except
// shape (swapped by Set) and the counters.
type direction struct {
	name    string
	in, out int
	shape   atomic.Pointer[Shape]
	icmp4   [4]byte
	icmp6   [16]byte
	rng     *rand.Rand
	stop    *atomic.Bool

	store    []byte   // slots of slotSize bytes
	freeList []int32  // free slots, a stack so that the memory in use stays as small as the queue
	queue    []queued // ring of frames in arrival order
	head, n  int

	txFree     int64   // when the rate limiter's wire is free again
	icmpTokens float64 // "too big" answers allowed now (at most 100 a second)
	icmpLast   int64

	received, sent, bytes, lost, queueDrops, tooBig, icmp, truncated, sendErrors, kernelDrops atomic.Uint64
}

var clockBase = time.Now()

func now() int64 { return int64(time.Since(clockBase)) }

func (d *direction) slot(i int32) []byte {
	return d.store[int(i)*slotSize : (int(i)+1)*slotSize : (int(i)+1)*slotSize]
}

// cmsgSpace holds one SCM_TIMESTAMPNS control message (32 bytes on 64-bit Linux).
const cmsgSpace = 64

// arrival returns the kernel's receive time (wall clock, ns) from a frame's control message,
// read in place: this runs once per frame.
func arrival(control []byte) (int64, bool) {
	hdr, data := unix.CmsgLen(0), int(unsafe.Sizeof(unix.Timespec{}))
	if len(control) < hdr+data {
		return 0, false
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&control[0]))
	if h.Level != unix.SOL_SOCKET || h.Type != unix.SCM_TIMESTAMPNS {
		return 0, false
	}
	return (*unix.Timespec)(unsafe.Pointer(&control[hdr])).Nano(), true
}

type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// tick is how long a busy bridge sleeps between its rounds. While frames flow it does not wake
// for each one: it sleeps a tick (or until the head of its queue is due, if sooner), then reads
// every frame that came meanwhile in batches and sends every frame that is due. Delays count
// from the kernel's arrival stamps, so a frame read late still leaves on time, and one leaves at
// most a tick late. Waking per frame cost three system calls a frame and made the bridge the
// lab's bottleneck (one CPU for 300 Mbit/s through two bridges); idle, it blocks in ppoll().
const tick = 200 * time.Microsecond

func (d *direction) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// A wakeup within 1 µs of its deadline rather than the default 50 µs slack.
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	var (
		rmsg  [batch]mmsghdr
		riov  [batch]unix.Iovec
		rsa   [batch]unix.RawSockaddrLinklayer
		rslot [batch]int32
		rctl  [batch][cmsgSpace]byte
		smsg  [batch]mmsghdr
		siov  [batch]unix.Iovec
	)
	pfd := []unix.PollFd{{Fd: int32(d.in), Events: unix.POLLIN}}
	busy := false
	for !d.stop.Load() {
		d.sendDue(&smsg, &siov)
		if busy {
			wait := int64(tick)
			if d.n > 0 {
				wait = min(wait, d.queue[d.head].due-now())
			}
			if wait > 0 {
				ts := unix.NsecToTimespec(wait)
				unix.Nanosleep(&ts, nil)
			}
		} else {
			// Idle: wait for input or for the head's deadline (at most 100 ms, to notice Close).
			wait := int64(100 * time.Millisecond)
			if d.n > 0 {
				wait = max(d.queue[d.head].due-now(), 0)
			}
			ts := unix.NsecToTimespec(wait)
			pfd[0].Revents = 0
			if _, err := unix.Ppoll(pfd, &ts, nil); err != nil && !errors.Is(err, unix.EINTR) {
				d.sendErrors.Add(1)
				time.Sleep(time.Millisecond)
				continue
			}
			if pfd[0].Revents&unix.POLLIN == 0 {
				continue
			}
		}
		busy = d.readAll(&rmsg, &riov, &rsa, &rslot, &rctl) > 0
	}
	if st, err := unix.GetsockoptTpacketStats(d.in, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		d.kernelDrops.Add(uint64(st.Drops))
	}
}

// readAll reads the frames waiting on the input, in batches (a bounded number, so that frames
// due meanwhile are not kept waiting), and admits them; it returns how many it read.
func (d *direction) readAll(rmsg *[batch]mmsghdr, riov *[batch]unix.Iovec, rsa *[batch]unix.RawSockaddrLinklayer, rslot *[batch]int32, rctl *[batch][cmsgSpace]byte) int {
	total := 0
	for range 16 {
		k := min(batch, len(d.freeList))
		if k == 0 { // the ring is full: the frame is lost, as in a router's full buffer
			var b [slotSize]byte
			if _, _, err := unix.Recvfrom(d.in, b[:], unix.MSG_DONTWAIT); err != nil {
				return total
			}
			d.received.Add(1)
			d.queueDrops.Add(1)
			total++
			continue
		}
		for j := range k {
			rslot[j] = d.freeList[len(d.freeList)-1-j]
			riov[j].Base = &d.slot(rslot[j])[0]
			riov[j].SetLen(slotSize)
			rmsg[j] = mmsghdr{hdr: unix.Msghdr{Name: (*byte)(unsafe.Pointer(&rsa[j])), Namelen: uint32(unsafe.Sizeof(rsa[j])), Iov: &riov[j], Iovlen: 1}}
			rmsg[j].hdr.Control = &rctl[j][0]
			rmsg[j].hdr.SetControllen(cmsgSpace)
		}
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(d.in), uintptr(unsafe.Pointer(&rmsg[0])), uintptr(k), unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
		if e != 0 || r == 0 {
			return total
		}
		d.admit(int(r), rmsg, rsa, rslot, rctl)
		total += int(r)
		if int(r) < k {
			return total
		}
	}
	return total
}

// admit queues the r frames just read (or drops them), and gives their slots back to the free
// list if it does not keep them.
func (d *direction) admit(r int, rmsg *[batch]mmsghdr, rsa *[batch]unix.RawSockaddrLinklayer, rslot *[batch]int32, rctl *[batch][cmsgSpace]byte) {
	shape := d.shape.Load()
	wall := time.Now()
	tNow := int64(wall.Sub(clockBase))
	wallOffset := wall.UnixNano() - tNow // the kernel stamps frames with the wall clock
	used := 0                            // slots taken from the top of the free list, kept or not
	var keep [batch]bool
	for j := range r {
		used++
		if rsa[j].Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		l := int(rmsg[j].len)
		d.received.Add(1)
		d.bytes.Add(uint64(l))
		frame := d.slot(rslot[j])
		t := tNow
		if ts, ok := arrival(rctl[j][:rmsg[j].hdr.Controllen]); ok {
			t = min(ts-wallOffset, tNow)
		}
		if l > slotSize {
			d.truncated.Add(1)
			continue
		}
		frame = frame[:l]
		if shape.MTU > 0 && ipLength(frame) > shape.MTU {
			d.tooBig.Add(1)
			if !shape.NoICMP {
				d.answerTooBig(frame, shape.MTU, t)
			}
			continue
		}
		if shape.Loss > 0 && d.rng.Float64() < shape.Loss {
			d.lost.Add(1)
			continue
		}
		due := t + int64(shape.Delay)
		if shape.Rate > 0 {
			start := max(d.txFree, t)
			queue := shape.Queue
			if queue == 0 {
				queue = defaultQueue
			}
			if start-t > int64(queue) {
				d.queueDrops.Add(1)
				continue
			}
			// Ethernet's preamble, frame check sequence and gap: 24 bytes a frame on the wire.
			d.txFree = start + int64(float64((l+24)*8)*1e9/shape.Rate)
			due = d.txFree + int64(shape.Delay)
		}
		if d.n == len(d.queue) {
			d.queueDrops.Add(1)
			continue
		}
		keep[j] = true
		d.queue[(d.head+d.n)%len(d.queue)] = queued{slot: rslot[j], len: int32(l), due: due}
		d.n++
	}
	// The slots read into were the top k of the free list; put back those not kept.
	d.freeList = d.freeList[:len(d.freeList)-used]
	for j := range used {
		if !keep[j] {
			d.freeList = append(d.freeList, rslot[j])
		}
	}
}

// sendDue writes every queued frame whose time has come.
func (d *direction) sendDue(smsg *[batch]mmsghdr, siov *[batch]unix.Iovec) {
	t := now()
	for d.n > 0 && d.queue[d.head].due <= t {
		k := 0
		for k < batch && k < d.n {
			q := d.queue[(d.head+k)%len(d.queue)]
			if q.due > t {
				break
			}
			siov[k].Base = &d.slot(q.slot)[0]
			siov[k].SetLen(int(q.len))
			smsg[k] = mmsghdr{hdr: unix.Msghdr{Iov: &siov[k], Iovlen: 1}}
			k++
		}
		for sent, busy := 0, 0; sent < k; {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(d.out), uintptr(unsafe.Pointer(&smsg[sent])), uintptr(k-sent), 0, 0, 0)
			switch {
			case e == 0:
				sent += int(r)
				d.sent.Add(uint64(r))
			case (e == unix.EAGAIN || e == unix.ENOBUFS || e == unix.EINTR) && busy < 1000:
				// The peer device's backlog is full: let the kernel drain it, as a link would wait.
				busy++
				if busy > 10 {
					time.Sleep(20 * time.Microsecond)
				}
			default:
				d.sendErrors.Add(1) // e.g. EMSGSIZE: larger than the output device's MTU
				sent++
			}
		}
		for range k {
			d.freeList = append(d.freeList, d.queue[d.head].slot)
			d.head = (d.head + 1) % len(d.queue)
			d.n--
		}
		t = now()
	}
}

func (d *direction) stats() Stats {
	return Stats{
		Received: d.received.Load(), Sent: d.sent.Load(), Bytes: d.bytes.Load(), Lost: d.lost.Load(),
		QueueDrops: d.queueDrops.Load(), TooBig: d.tooBig.Load(), ICMP: d.icmp.Load(),
		Truncated: d.truncated.Load(), SendErrors: d.sendErrors.Load(), KernelDrops: d.kernelDrops.Load(),
	}
}

// answerTooBig sends the sender of an oversized frame the ICMP error a router in front of a
// smaller-MTU link would (RFC 1191, RFC 8201), out of the interface the frame came in on, at
// most 100 a second as routers limit them.
func (d *direction) answerTooBig(frame []byte, mtu int, t int64) {
	d.icmpTokens = min(d.icmpTokens+float64(t-d.icmpLast)/1e7, 100)
	d.icmpLast = t
	if d.icmpTokens < 1 {
		return
	}
	out := tooBig(frame, mtu, d.icmp4, d.icmp6)
	if out == nil {
		return
	}
	d.icmpTokens--
	if err := unix.Send(d.in, out, 0); err == nil {
		d.icmp.Add(1)
	}
}
