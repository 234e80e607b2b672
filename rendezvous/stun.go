package rendezvous

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/xp2p/xp2p/internal/auth"
	"github.com/xp2p/xp2p/internal/quicsock"
	"github.com/xp2p/xp2p/nat"
)

// stunService answers STUN binding requests on bindPort (shared with QUIC: the server filter
// hands it the packets that are not QUIC or relayed frames) and on the second port of
// stun.altPort, with the requester's address as seen here: the public address a client's NAT
// gave its UDP socket. nat.Responder decides what to answer and from which address; this
// type owns the sockets.
type stunService struct {
	log       *slog.Logger
	responder nat.Responder
	// limit bounds the answers per source address: STUN is unauthenticated, so without it a
	// spoofed flood would turn the server into a reflector aimed at the spoofed address.
	limit    *auth.FailureLimiter
	main     *quicsock.Conn
	mainPort uint16
	alt      *net.UDPConn // nil: no second port
	wg       sync.WaitGroup
}

// newSTUNService binds the second port (if any). A second port that cannot be bound is a
// warning, not a failure: only `xp2p nat`'s finer tests need it.
func newSTUNService(log *slog.Logger, bindAddr string, mainPort int, altPort int, altAddr string) *stunService {
	s := &stunService{log: log, mainPort: uint16(mainPort), limit: newSTUNLimiter()}
	s.responder = nat.Responder{Port: uint16(mainPort), Software: "xp2p " + Version}
	if ip, err := netip.ParseAddr(bindAddr); err == nil && !ip.IsUnspecified() {
		s.responder.Primary = ip.Unmap()
	}
	if altAddr != "" {
		s.responder.AltAddr, _ = netip.ParseAddr(altAddr)
	}
	if altPort > 0 {
		addr := net.JoinHostPort(bindAddr, strconv.Itoa(altPort))
		alt, err := listenPacketInfo(addr)
		if err != nil {
			log.Warn("stun: second port unavailable; xp2p nat will not test mapping and filtering against this server", "addr", addr, "err", err)
		} else {
			s.alt = alt
			s.responder.AltPort = uint16(alt.LocalAddr().(*net.UDPAddr).Port)
		}
	}
	return s
}

func listenPacketInfo(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	if err := quicsock.EnablePacketInfo(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	return c, nil
}

// start begins serving the second port; main must be set.
func (s *stunService) start() {
	if s.alt == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serveAlt()
	}()
}

// close stops the second port's reader and waits for it.
func (s *stunService) close() {
	if s.alt != nil {
		s.alt.Close()
	}
	s.wg.Wait()
}

// altAddr is the bound second port, for logs and tests (nil: none).
func (s *stunService) altAddr() *net.UDPAddr {
	if s.alt == nil {
		return nil
	}
	return s.alt.LocalAddr().(*net.UDPAddr)
}

func (s *stunService) serveAlt() {
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for {
		n, oobn, _, from, err := s.alt.ReadMsgUDP(buf, oob)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("stun: second port read", "err", err)
			}
			return
		}
		s.handle(buf[:n], from, oob[:oobn], s.responder.AltPort)
	}
}

// STUN answers per source address: a burst that covers a full RFC 5780 discovery with its
// retransmissions from several clients behind one CGNAT address, then a steady rate no real
// client needs (a client asks a few dozen times per NAT check, every few minutes).
const (
	stunBurstPerSource    = 200
	stunIntervalPerSource = 20 * time.Millisecond // 50 answers/s
	stunSourcesTracked    = 10000
)

func newSTUNLimiter() *auth.FailureLimiter {
	return &auth.FailureLimiter{Burst: stunBurstPerSource, Interval: stunIntervalPerSource, MaxEntries: stunSourcesTracked}
}

// handle answers one packet that arrived on port from from; oob carries its local address.
func (s *stunService) handle(data []byte, from *net.UDPAddr, oob []byte, port uint16) {
	if from == nil {
		return
	}
	dst := quicsock.PacketDst(oob)
	if !dst.IsValid() {
		dst = s.responder.Primary
	}
	fromAP := netip.AddrPortFrom(from.AddrPort().Addr().Unmap(), from.AddrPort().Port())
	resp, src, ok := s.responder.Answer(data, fromAP, netip.AddrPortFrom(dst, port))
	if !ok {
		return
	}
	if !s.limit.Allow(fromAP.Addr()) {
		return // over its rate: dropped like a lost packet, the client retransmits
	}
	var err error
	switch {
	case src.Port() == s.mainPort:
		err = s.main.WriteRaw(resp, quicsock.SourceOOB(src.Addr()), from)
	case s.alt != nil:
		_, _, err = s.alt.WriteMsgUDP(resp, quicsock.SourceOOB(src.Addr()), from)
	}
	if err != nil {
		s.log.Debug("stun: answer", "to", from, "from", src, "err", err)
	}
}
