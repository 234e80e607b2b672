package traversal

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/internal/vnet"
	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/nat"
)

// The tests run real sessions, with their real schedules and probes, through the NAT models of
// package vnet: no root, no namespaces, a few seconds for the whole table.

// behaviours are what each model NAT would measure (package nat's discovery is tested on its
// own, against real NATs in the lab).
var behaviours = map[vnet.Kind]nat.Behavior{
	vnet.Easy:       {Mapping: nat.EndpointIndependent, Filtering: nat.AddressPortDependent, PortPreserved: true},
	vnet.Restricted: {Mapping: nat.EndpointIndependent, Filtering: nat.AddressDependent, PortPreserved: true},
	vnet.FullCone:   {Mapping: nat.EndpointIndependent, Filtering: nat.EndpointIndependent, PortPreserved: true},
	vnet.Sym:        {Mapping: nat.AddressPortDependent, Filtering: nat.AddressPortDependent},
	vnet.SymSeq:     {Mapping: nat.AddressPortDependent, Filtering: nat.AddressPortDependent, PortDelta: 1},
	vnet.NoUDP:      {UDPBlocked: true},
	vnet.Firewall:   {Mapping: nat.NoNAT, Filtering: nat.AddressPortDependent, PortPreserved: true},
}

// serverPort is the test server's one socket: it answers binding requests (what the server of
// a real session sees of a client's socket is what its answers say) and relays, as the real
// server does on its bindPort.
const serverPort = 7000

type server struct {
	conn *vnet.Conn
	mu   sync.Mutex
	legs map[wire.RelayToken]*relayLeg
}

// relayLeg is one side of a relayed session: a frame from its owner goes to the other side,
// with the other's token.
type relayLeg struct {
	owner netip.AddrPort // the side's socket as the server sees it
	peer  *relayLeg
	token wire.RelayToken
}

func startServer(t *testing.T, h *vnet.Host) *server {
	c, err := h.ListenUDP(serverPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	srv := &server{conn: c, legs: map[wire.RelayToken]*relayLeg{}}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if tok, _, ok := wire.ParseRelay(buf[:n]); ok {
				srv.mu.Lock()
				leg := srv.legs[tok]
				srv.mu.Unlock()
				if leg != nil && leg.owner == from {
					wire.PutRelayHeader(buf[:n], leg.peer.token)
					c.WriteTo(buf[:n], leg.peer.owner)
				}
				continue
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil || req.Type != stun.BindingRequest {
				continue
			}
			resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: net.IP(from.Addr().AsSlice()), Port: int(from.Port())})
			if err == nil {
				c.WriteTo(resp.Raw, from)
			}
		}
	}()
	return srv
}

func (srv *server) addr() netip.AddrPort { return srv.conn.LocalAddr() }

// pairRelay registers the relay legs of a session between a and b (sides that reach the server).
func (srv *server) pairRelay(a, b *side) {
	if !a.public.IsValid() || !b.public.IsValid() {
		return
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	n := byte(len(srv.legs))
	la := &relayLeg{owner: a.public, token: wire.RelayToken{1, n}}
	lb := &relayLeg{owner: b.public, token: wire.RelayToken{2, n}}
	la.peer, lb.peer = lb, la
	srv.legs[la.token], srv.legs[lb.token] = la, lb
	a.relay, a.relayTo, b.relay, b.relayTo = la.token, srv.addr(), lb.token, srv.addr()
}

// side is one client of a test: a host with its socket, engine and session.
type side struct {
	t      *testing.T
	name   string
	host   *vnet.Host
	sock   *vnet.Conn
	eng    *Engine
	nat    nat.Behavior
	mapped netip.AddrPort
	public netip.AddrPort // as the server saw it (invalid: UDP blocked)

	sess      *Session
	act       Activity
	path      atomic.Pointer[Path]
	known     sync.Map
	delivered atomic.Int64 // packets of the peer delivered from an extra socket
	fromPeer  chan netip.AddrPort
	discover  chan netip.AddrPort
	repunch   func()
	wg        sync.WaitGroup
	onSetPath func(*Path)   // set before the session starts
	keepalive time.Duration // of the session (default 1 s)
	// The session's relay leg: its token and the relay's address (invalid: no relay).
	relay   wire.RelayToken
	relayTo netip.AddrPort
}

func (s *side) Send(b []byte, to netip.AddrPort) error { return s.sock.WriteTo(b, to) }
func (s *side) Listen() (Socket, error) {
	c, err := s.host.ListenUDP(0)
	if err != nil {
		return nil, err
	}
	return c, nil
}
func (s *side) NAT() (nat.Behavior, netip.AddrPort) { return s.nat, s.mapped }
func (s *side) IPv6() bool                          { return s.host.Addr().Is6() }

func (s *side) SetPath(p *Path) {
	s.path.Store(p)
	if s.onSetPath != nil {
		s.onSetPath(p)
	}
}
func (s *side) AddKnown(addr netip.AddrPort)    { s.known.Store(addr, true) }
func (s *side) Deliver(run []byte, segSize int) { s.delivered.Add(1) }
func (s *side) SendRelay(b []byte) {
	if s.relayTo.IsValid() {
		frame := make([]byte, wire.RelayHeaderLen+len(b))
		wire.PutRelayHeader(frame, s.relay)
		copy(frame[wire.RelayHeaderLen:], b)
		s.sock.WriteTo(frame, s.relayTo)
	}
}

func (s *side) Repunch() {
	if s.repunch != nil {
		s.repunch()
	}
}

var _ Client = (*side)(nil)
var _ Host = (*side)(nil)

func newSide(t *testing.T, name string, h *vnet.Host, kind vnet.Kind, srv *server) *side {
	t.Helper()
	c, err := h.ListenUDP(4000)
	if err != nil {
		t.Fatal(err)
	}
	s := &side{t: t, name: name, host: h, sock: c, nat: behaviours[kind],
		fromPeer: make(chan netip.AddrPort, 64), discover: make(chan netip.AddrPort, 1)}
	s.eng = NewEngine(s)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.read() }()
	t.Cleanup(func() {
		c.Close()
		s.wg.Wait()
	})
	// What the server sees of the socket.
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest)
	c.WriteTo(req.Raw, srv.addr())
	select {
	case s.public = <-s.discover:
	case <-time.After(200 * time.Millisecond):
	}
	return s
}

// read is the socket's reader, as the client's socket filter sorts packets: STUN of the
// sessions to the engine, anything else counted as the peer's traffic.
func (s *side) read() {
	buf := make([]byte, 2048)
	for {
		n, from, err := s.sock.ReadFrom(buf)
		if err != nil {
			return
		}
		data := buf[:n]
		if _, payload, ok := wire.ParseRelay(data); ok && from == s.relayTo {
			if stun.IsMessage(payload) {
				s.eng.HandleRelayed(payload)
			}
			continue
		}
		if !stun.IsMessage(data) {
			if p := s.path.Load(); p != nil && p.Via == nil && p.Remote == from {
				s.act.Received(time.Now())
			}
			select {
			case s.fromPeer <- from:
			default:
			}
			continue
		}
		msg := &stun.Message{Raw: append([]byte(nil), data...)}
		if msg.Decode() == nil && msg.Type == stun.BindingSuccess {
			var xa stun.XORMappedAddress
			if _, err := msg.Get(stun.AttrUsername); err != nil && xa.GetFrom(msg) == nil {
				ip, _ := netip.AddrFromSlice(xa.IP)
				select {
				case s.discover <- netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port)):
				default:
				}
				continue
			}
		}
		s.eng.HandleSTUN(data, from)
	}
}

func (s *side) offer() Offer {
	o := Offer{Public: s.public, Private: []netip.AddrPort{s.sock.LocalAddr()}, NAT: s.nat, Mapped: s.mapped}
	return o
}

// sendData sends a packet of the session's traffic on the side's path.
func (s *side) sendData(t *testing.T) {
	t.Helper()
	p := s.path.Load()
	if p == nil {
		t.Fatalf("%s: no path", s.name)
	}
	s.act.Sent(time.Now())
	var err error
	if p.Via != nil {
		err = p.Via.WriteTo([]byte{0x40, 1, 2, 3}, p.Remote)
	} else {
		err = s.sock.WriteTo([]byte{0x40, 1, 2, 3}, p.Remote)
	}
	if err != nil {
		t.Fatalf("%s: send on the path: %v", s.name, err)
	}
}

var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// pair starts a session between two sides, as the server pairs them.
func pair(t *testing.T, prov, vis *side) {
	t.Helper()
	id := bytes.Repeat([]byte{byte(len(t.Name()))}, 16)
	copy(id, t.Name())
	open := func(s *side, role string, peer *side) {
		ka := s.keepalive
		if ka == 0 {
			ka = time.Second
		}
		cfg := SessionConfig{ID: id, Role: role, Key: []byte("probe key"), Keepalive: ka,
			Activity: &s.act, Log: testLog.With("side", s.name), Created: time.Now()}
		s.sess = s.eng.NewSession(cfg, s, peer.offer())
		t.Cleanup(s.sess.Close)
	}
	repunch := func() {
		prov.sess.Update(vis.offer())
		vis.sess.Update(prov.offer())
	}
	prov.repunch, vis.repunch = repunch, repunch
	// Both sessions exist before either runs: a run may ask to repunch both at once.
	open(prov, "provider", vis)
	open(vis, "visitor", prov)
	for _, s := range []*side{prov, vis} {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.sess.Run() }()
	}
}

// waitPath waits for both sides to lock a path.
func waitPath(a, b *side, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if a.path.Load() != nil && b.path.Load() != nil {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// checkPath checks that what each side sends on its path reaches the other, from the address
// the other locked.
func checkPath(t *testing.T, from, to *side) {
	t.Helper()
	before := to.delivered.Load()
	from.sendData(t)
	want := to.path.Load()
	if want.Via != nil {
		deadline := time.Now().Add(time.Second)
		for to.delivered.Load() == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s → %s: nothing arrived on %s's extra socket", from.name, to.name, to.name)
			}
			time.Sleep(time.Millisecond)
		}
		return
	}
	for {
		select {
		case got := <-to.fromPeer:
			if got == want.Remote {
				return
			}
		case <-time.After(time.Second):
			t.Fatalf("%s → %s: nothing arrived from %s, the address %s locked", from.name, to.name, want.Remote, to.name)
		}
	}
}

// lab is a server and two sides behind NATs of the given kinds (or one NAT for both).
func lab(t *testing.T, provKind, visKind vnet.Kind, sameLAN bool) (*vnet.Network, *side, *side) {
	n := vnet.New()
	srv := startServer(t, n.Host("203.0.113.1"))
	natP := n.NAT(provKind, "203.0.113.10")
	prov := newSide(t, "provider", natP.Host("10.1.0.2"), provKind, srv)
	var vh *vnet.Host
	if sameLAN {
		vh = natP.Host("10.1.0.3")
	} else {
		vh = n.NAT(visKind, "203.0.113.20").Host("10.2.0.2")
	}
	vis := newSide(t, "visitor", vh, visKind, srv)
	srv.pairRelay(prov, vis)
	return n, prov, vis
}

func TestTraversalTable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		prov, vis vnet.Kind
		sameLAN   bool
		direct    bool
		kind      nat.Kind // the candidate the visitor locks ("" any)
		strategy  string   // one the visitor's plan runs ("" none needed)
	}{
		{prov: vnet.Easy, vis: vnet.Easy, direct: true, kind: nat.KindPublic},
		{prov: vnet.Easy, vis: vnet.FullCone, direct: true},
		{prov: vnet.Restricted, vis: vnet.Sym, direct: true},
		{prov: vnet.FullCone, vis: vnet.Sym, direct: true},
		{prov: vnet.Easy, vis: vnet.Easy, sameLAN: true, direct: true, kind: nat.KindPrivate},
		{prov: vnet.Easy, vis: vnet.Sym, direct: true, kind: nat.KindBirthday, strategy: StrategyBirthdayHard},
		{prov: vnet.Sym, vis: vnet.Easy, direct: true, strategy: StrategyBirthdayEasy},
		{prov: vnet.Easy, vis: vnet.SymSeq, direct: true},
		{prov: vnet.SymSeq, vis: vnet.Easy, direct: true, kind: nat.KindPredicted, strategy: StrategyPredict},
		{prov: vnet.Sym, vis: vnet.Sym, direct: false},
		{prov: vnet.SymSeq, vis: vnet.Sym, direct: false},
		{prov: vnet.NoUDP, vis: vnet.Easy, direct: false},
		{prov: vnet.Easy, vis: vnet.NoUDP, direct: false},
	}
	for _, tc := range cases {
		name := tc.prov.String() + "x" + tc.vis.String()
		if tc.sameLAN {
			name = "sameLAN"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, prov, vis := lab(t, tc.prov, tc.vis, tc.sameLAN)
			pair(t, prov, vis)
			if tc.strategy != "" && !vis.sess.Plan().Has(tc.strategy) {
				t.Errorf("the visitor's plan %v lacks %s", vis.sess.Plan(), tc.strategy)
			}
			if !tc.direct {
				if waitPath(prov, vis, 1500*time.Millisecond) || prov.path.Load() != nil || vis.path.Load() != nil {
					t.Fatalf("a direct path was locked (provider %v, visitor %v), want relayed", prov.path.Load(), vis.path.Load())
				}
				if vis.sess.Plan().Hopeless == "" {
					t.Errorf("the plan %+v does not say the pair is hopeless", vis.sess.Plan())
				}
				return
			}
			if !waitPath(prov, vis, 8*time.Second) {
				t.Fatalf("no direct path: provider %v, visitor %v", prov.path.Load(), vis.path.Load())
			}
			p := vis.path.Load()
			t.Logf("visitor locked %s (%s) in %s", p.Remote, p.Kind, vis.sess.TimeToDirect())
			if tc.kind != "" && p.Kind != tc.kind {
				t.Errorf("visitor locked a %s candidate, want %s", p.Kind, tc.kind)
			}
			checkPath(t, vis, prov)
			checkPath(t, prov, vis)
		})
	}
}

// TestSessionEndReleasesSockets: birthday punching's extra sockets are all closed when the
// session ends, the one the path ran on included.
func TestSessionEndReleasesSockets(t *testing.T) {
	t.Parallel()
	_, prov, vis := lab(t, vnet.Easy, vnet.Sym, false)
	pair(t, prov, vis)
	if !waitPath(prov, vis, 8*time.Second) {
		t.Fatal("no direct path")
	}
	if n := vis.host.Sockets(); n != 2 {
		t.Errorf("the visitor holds %d sockets once the path is found, want 2 (its own, the path's)", n)
	}
	vis.sess.Close()
	deadline := time.Now().Add(2 * time.Second)
	for vis.host.Sockets() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets left after the session ended, want 1", vis.host.Sockets())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(vis.eng.birthdaySlots) != 0 {
		t.Error("a birthday slot was not given back")
	}
}

// TestPathLostAndFound: the NATs forget their mappings (a reboot); the sessions notice the
// silence, go back to the relay and find a direct path again.
func TestPathLostAndFound(t *testing.T) {
	t.Parallel()
	n := vnet.New()
	srv := startServer(t, n.Host("203.0.113.1"))
	natP, natV := n.NAT(vnet.Easy, "203.0.113.10"), n.NAT(vnet.Easy, "203.0.113.20")
	prov := newSide(t, "provider", natP.Host("10.1.0.2"), vnet.Easy, srv)
	vis := newSide(t, "visitor", natV.Host("10.2.0.2"), vnet.Easy, srv)
	pair(t, prov, vis)
	if !waitPath(prov, vis, 2*time.Second) {
		t.Fatal("no direct path")
	}
	// Both directions go dark: the visitor's NAT drops everything (its link MTU becomes tiny).
	natV.SetMTU(1)
	deadline := time.Now().Add(8 * time.Second)
	for vis.path.Load() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the visitor never noticed its path died")
		}
		time.Sleep(20 * time.Millisecond)
	}
	natV.SetMTU(0)
	natV.Flush()
	natP.Flush()
	vis.Repunch() // as the retry does, through the server
	if !waitPath(prov, vis, 8*time.Second) {
		t.Fatal("no direct path after the NATs came back")
	}
	checkPath(t, vis, prov)
}

// TestForgedProbesIgnored: probes without the session's secret, or of an unknown session, do
// not make a session lock or learn an address.
func TestForgedProbesIgnored(t *testing.T) {
	t.Parallel()
	n := vnet.New()
	srv := startServer(t, n.Host("203.0.113.1"))
	// The peer can never answer (UDP blocked), so any lock would be the attacker's doing.
	prov := newSide(t, "provider", n.NAT(vnet.FullCone, "203.0.113.10").Host("10.1.0.2"), vnet.FullCone, srv)
	vis := newSide(t, "visitor", n.NAT(vnet.NoUDP, "203.0.113.20").Host("10.2.0.2"), vnet.NoUDP, srv)
	pair(t, prov, vis)
	attacker, err := n.Host("203.0.113.66").ListenUDP(5000)
	if err != nil {
		t.Fatal(err)
	}
	user := prov.sess.idHex + ":visitor"
	for _, key := range []string{"wrong secret", ""} {
		for _, typ := range []stun.MessageType{stun.BindingRequest, stun.BindingSuccess} {
			setters := []stun.Setter{stun.TransactionID, typ, stun.NewUsername(user)}
			if key != "" {
				setters = append(setters, stun.NewShortTermIntegrity(key))
			}
			setters = append(setters, stun.Fingerprint)
			m, err := stun.Build(setters...)
			if err != nil {
				t.Fatal(err)
			}
			for range 20 {
				attacker.WriteTo(m.Raw, prov.public)
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	if p := prov.path.Load(); p != nil {
		t.Fatalf("the provider locked %v on forged probes", p)
	}
	n0 := 0
	prov.known.Range(func(any, any) bool { n0++; return true })
	if n0 != 0 {
		t.Errorf("the provider learned %d addresses from forged probes", n0)
	}
}

// waitMTU waits until a side measured its relay and its direct path.
func waitMTU(t *testing.T, s *side) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.act.relayMTU.Load() == 0 || (s.path.Load() != nil && s.act.directMTU.Load() <= 0) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: MTU not measured (relay %d, direct %d)", s.name, s.act.relayMTU.Load(), s.act.directMTU.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPathMTU: each side finds the largest packet both its paths carry, whichever side's link
// is the small one, without any ICMP (the model drops silently); packets of that size cross the
// path, 20 bytes more do not.
func TestPathMTU(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		provMTU, visMX int
		want           int // the largest QUIC packet: 9 relay and 28 IPv4/UDP bytes under the MTU, to the ladder's step
	}{
		{"1500", 1500, 0, 1440},
		{"visitor1420", 0, 1420, 1380},
		{"provider1380", 1380, 0, 1340},
		{"1280", 1280, 1280, 1240},
		{"unlimited", 0, 0, MaxPacket &^ 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := vnet.New()
			srv := startServer(t, n.Host("203.0.113.1"))
			natP, natV := n.NAT(vnet.Easy, "203.0.113.10"), n.NAT(vnet.Easy, "203.0.113.20")
			natP.SetMTU(tc.provMTU)
			natV.SetMTU(tc.visMX)
			prov := newSide(t, "provider", natP.Host("10.1.0.2"), vnet.Easy, srv)
			vis := newSide(t, "visitor", natV.Host("10.2.0.2"), vnet.Easy, srv)
			srv.pairRelay(prov, vis)
			pair(t, prov, vis)
			if !waitPath(prov, vis, 2*time.Second) {
				t.Fatal("no direct path")
			}
			for _, s := range []*side{prov, vis} {
				waitMTU(t, s)
				if got := s.act.Limit(); got != tc.want {
					t.Errorf("%s: limit %d (relay %d, direct %d), want %d", s.name, got, s.act.relayMTU.Load(), s.act.directMTU.Load(), tc.want)
				}
				if !s.act.Fits(tc.want) || s.act.Fits(tc.want+1) {
					t.Errorf("%s: Fits disagrees with the limit %d", s.name, tc.want)
				}
			}
			if tc.want < MaxPacket&^3 {
				// The model agrees: the limit's packets pass, 20 bytes more are lost.
				p := vis.path.Load()
				before := n.Stats().Dropped.Load()
				vis.sock.WriteTo(make([]byte, tc.want+20), p.Remote)
				time.Sleep(10 * time.Millisecond)
				if n.Stats().Dropped.Load() == before {
					t.Errorf("a packet 20 bytes over the limit was not dropped: the limit is too low")
				}
			}
		})
	}
}

// TestSmallDirectPathLeftForRelay: a direct path that carries less than the packets the session
// already sends (they grew on the relay) is not taken; one found before the packets grew is
// taken, and caps them.
func TestSmallDirectPathLeftForRelay(t *testing.T) {
	t.Parallel()
	for _, grown := range []bool{false, true} {
		t.Run(fmt.Sprintf("grown=%v", grown), func(t *testing.T) {
			t.Parallel()
			n := vnet.New()
			srv := startServer(t, n.Host("203.0.113.1"))
			lan := n.NAT(vnet.Easy, "203.0.113.10")
			lan.SetLANMTU(1300) // the hosts' LAN carries 1272-byte UDP payloads; the way out, 1500
			prov := newSide(t, "provider", lan.Host("10.1.0.2"), vnet.Easy, srv)
			vis := newSide(t, "visitor", lan.Host("10.1.0.3"), vnet.Easy, srv)
			srv.pairRelay(prov, vis)
			if grown {
				vis.act.relayMTU.Store(MaxPacket &^ 3)
				vis.act.largest.Store(MaxPacket &^ 3) // QUIC's packets grew to the relay's size
			}
			pair(t, prov, vis)
			if !grown {
				if !waitPath(prov, vis, 2*time.Second) {
					t.Fatal("no direct path")
				}
				waitMTU(t, vis)
				if got := vis.act.Limit(); got != 1260 {
					t.Errorf("limit %d, want 1260 (the LAN's)", got)
				}
				return
			}
			time.Sleep(1500 * time.Millisecond)
			if p := vis.path.Load(); p != nil {
				t.Fatalf("the visitor keeps a direct path (%v) that cannot carry its packets", p)
			}
			if got := vis.act.Limit(); got < MaxPacket&^3 {
				t.Errorf("limit %d after leaving the small path, want the relay's %d", got, MaxPacket&^3)
			}
		})
	}
}

// TestIPv6BesideSymmetricNATs: two sides whose IPv4 NATs are both symmetric (hopeless) but who
// both have IPv6 behind stateful firewalls: the plan counts on IPv6, and the session goes
// direct over it.
func TestIPv6BesideSymmetricNATs(t *testing.T) {
	t.Parallel()
	n := vnet.New()
	srv := startServer(t, n.Host("2001:db8::1"))
	prov := newSide(t, "provider", n.NAT(vnet.Firewall, "2001:db8::10").Host("2001:db8:1::2"), vnet.Firewall, srv)
	vis := newSide(t, "visitor", n.NAT(vnet.Firewall, "2001:db8::20").Host("2001:db8:2::2"), vnet.Firewall, srv)
	prov.nat, vis.nat = behaviours[vnet.Sym], behaviours[vnet.Sym] // what their IPv4 NATs measured
	srv.pairRelay(prov, vis)
	pair(t, prov, vis)
	if p := vis.sess.Plan(); p.Hopeless != "" || !p.IPv6 {
		t.Errorf("plan %+v: want a likely one, on IPv6", p)
	}
	if !waitPath(prov, vis, 2*time.Second) {
		t.Fatal("no direct path over IPv6")
	}
	if p := vis.path.Load(); !p.Remote.Addr().Is6() {
		t.Errorf("visitor locked %s, want the provider's IPv6 address", p.Remote)
	}
	checkPath(t, vis, prov)
	checkPath(t, prov, vis)
}

// TestUpgradeToLAN: two hosts behind one NAT whose LAN path fails at first (a Wi-Fi client
// isolation, a filter) lock the path through the router's hairpin; once the LAN carries, they
// move to it (a LAN address is worth more at a like round trip) and stay there.
func TestUpgradeToLAN(t *testing.T) {
	if testing.Short() {
		t.Skip("7 s: waits out an upgrade round to see the path stay")
	}
	t.Parallel()
	n := vnet.New()
	srv := startServer(t, n.Host("203.0.113.1"))
	lan := n.NAT(vnet.Easy, "203.0.113.10")
	lan.Hairpin = true
	lan.SetLANMTU(1) // nothing crosses the LAN
	prov := newSide(t, "provider", lan.Host("10.1.0.2"), vnet.Easy, srv)
	vis := newSide(t, "visitor", lan.Host("10.1.0.3"), vnet.Easy, srv)
	srv.pairRelay(prov, vis)
	var setPaths atomic.Int64
	vis.onSetPath = func(*Path) { setPaths.Add(1) }
	pair(t, prov, vis)
	if !waitPath(prov, vis, 2*time.Second) {
		t.Fatal("no direct path through the hairpin")
	}
	if p := vis.path.Load(); p.Remote.Addr() != lan.Public() {
		t.Fatalf("locked %s, want the hairpin through %s", p.Remote, lan.Public())
	}
	lan.SetLANMTU(0)
	deadline := time.Now().Add(8 * time.Second)
	for _, sd := range []*side{vis, prov} { // each side moves on its own
		for sd.path.Load() == nil || !sd.path.Load().Remote.Addr().IsPrivate() {
			if time.Now().After(deadline) {
				t.Fatalf("the %s stays on %v once the LAN carries", sd.name, sd.path.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	p := vis.path.Load()
	if p.Kind != nat.KindPrivate {
		t.Errorf("upgraded to a %s candidate, want private", p.Kind)
	}
	checkPath(t, vis, prov)
	before := setPaths.Load()
	time.Sleep(upgradeEarly + time.Second) // another round: no flapping back
	if got := setPaths.Load(); got != before || vis.path.Load().Remote != p.Remote {
		t.Errorf("the path moved again (%d more times, now %v)", got-before, vis.path.Load())
	}
}

func TestBetterAddr(t *testing.T) {
	q := func(ms float64) *addrQuality { return &addrQuality{rtt: time.Duration(ms * float64(time.Millisecond))} }
	pub4 := netip.MustParseAddrPort("203.0.113.10:4000")
	pub4b := netip.MustParseAddrPort("198.51.100.7:4000")
	lan4 := netip.MustParseAddrPort("10.1.0.2:4000")
	pub6 := netip.MustParseAddrPort("[2001:db8:1::2]:4000")
	cases := []struct {
		a       netip.AddrPort
		aq      *addrQuality
		b       netip.AddrPort
		bq      *addrQuality
		better  bool
		because string
	}{
		{lan4, q(1), pub4, q(1), true, "a LAN address at the same round trip"},
		{pub6, q(20), pub4, q(20), true, "IPv6 at the same round trip"},
		{pub4, q(20), pub6, q(20), false, "IPv4 is no better than IPv6"},
		{pub4b, q(10), pub4, q(40), true, "a quarter of the round trip"},
		{pub4b, q(20.5), pub4, q(21), false, "within noise"},
		{pub4b, q(0.3), pub4, q(0.5), false, "within noise (sub-millisecond)"},
		{pub4, q(5), lan4, q(50), true, "ten times faster beats the LAN bonus"},
		{pub4, q(1), pub4, q(2), false, "the same address"},
	}
	for _, c := range cases {
		if got := betterAddr(c.a, c.aq, c.b, c.bq); got != c.better {
			t.Errorf("%s (%s) over %s (%s): %v, want %v (%s)", c.a, c.aq.rtt, c.b, c.bq.rtt, got, c.better, c.because)
		}
	}
}

// TestIdleSessionSendsAgain: an idle session (nothing but keepalives for a few seconds) that
// sends again is not declared dead before its packets could be answered: what counts is how
// long its packets go unanswered, not how long it was quiet before (an idle session under
// another's load once lost its path that way at every QUIC keepalive that met a slow answer).
func TestIdleSessionSendsAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("8 s of quiet spells")
	}
	t.Parallel()
	_, prov, vis := lab(t, vnet.Easy, vnet.Easy, false)
	vis.keepalive = 4 * time.Second
	var lost atomic.Int64
	vis.onSetPath = func(p *Path) {
		if p == nil {
			lost.Add(1)
		}
	}
	pair(t, prov, vis)
	if !waitPath(prov, vis, 2*time.Second) {
		t.Fatal("no direct path")
	}
	deadline := time.Now().Add(8 * time.Second)
	sends := 0
	for time.Now().Before(deadline) {
		if time.Since(vis.act.LastReceived()) >= 3200*time.Millisecond {
			vis.act.Sent(time.Now()) // QUIC's keepalive after a quiet spell; its answer takes 400 ms
			sends++
			time.Sleep(400 * time.Millisecond)
			vis.act.Received(time.Now())
		}
		if lost.Load() > 0 {
			t.Fatalf("the path was declared dead after %d sends after quiet spells", sends)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sends == 0 {
		t.Fatal("no quiet spell: the test proves nothing")
	}
}
