package portmap

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// A router's port 5351 speaks two versions of one protocol: NAT-PMP (RFC 6886, version 0) and
// its successor PCP (RFC 6887, version 2), told apart by each message's first byte.
//
// Both are written here rather than taken from a library: no maintained Go library of PCP
// exists (Tailscale's client keeps its own inside its portmapper), and the NAT-PMP one
// (github.com/jackpal/go-nat-pmp) blocks for its whole timeout with no way to cancel it, which
// would hold every attempt for as long as a silent router, even after another protocol
// answered. Their messages are a few fixed fields; one exchange serves both, and the decoders
// are fuzzed (FuzzDecode).

// serverPort is where PCP and NAT-PMP servers listen (both RFCs).
const serverPort = 5351

// Versions, opcodes and sizes of the two protocols.
const (
	pmpVersion = 0
	pcpVersion = 2

	pmpOpExternal = 0 // NAT-PMP: the router's external address
	pmpOpMapUDP   = 1 // NAT-PMP: map a UDP port
	pcpOpAnnounce = 0 // PCP: is there a server (RFC 6887 section 14.1)
	pcpOpMap      = 1 // PCP: map a port (section 11)
	opReply       = 0x80

	pcpHeaderLen = 24
	pcpMapLen    = 36
	pcpMaxLen    = 1100 // the largest PCP message (section 7)
	protoUDP     = 17
)

// Result codes of PCP (RFC 6887 section 7.4) and NAT-PMP (RFC 6886 section 3.5): the two share
// 0 and 1; NAT-PMP's others are its own.
var (
	pcpResults = []string{"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST",
		"UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE", "NO_RESOURCES",
		"UNSUPP_PROTOCOL", "USER_EX_QUOTA", "CANNOT_PROVIDE_EXTERNAL", "ADDRESS_MISMATCH",
		"EXCESSIVE_REMOTE_PEERS"}
	pmpResults = []string{"success", "unsupported version", "not authorized or refused",
		"network failure", "out of resources", "unsupported opcode"}
)

// ResultError is a router's refusal, with the protocol's result code.
type ResultError struct {
	Protocol Protocol
	Code     int
}

func (e *ResultError) Error() string {
	names := pcpResults
	if e.Protocol == NATPMP {
		names = pmpResults
	}
	if e.Code < len(names) {
		return fmt.Sprintf("%s result %d (%s)", e.Protocol, e.Code, names[e.Code])
	}
	return fmt.Sprintf("%s result %d", e.Protocol, e.Code)
}

// errOtherVersion says the server answered in the other protocol's version: it speaks that one.
type errOtherVersion struct{ speaks Protocol }

func (e errOtherVersion) Error() string { return "the router speaks " + string(e.speaks) + " only" }

// errIgnore is a decoder's verdict on a datagram that is not the answer awaited (garbage, a
// late answer to another request): the exchange waits on.
var errIgnore = errors.New("not the answer awaited")

// exchange sends req to server from a socket of its own, connected so that only the server's
// datagrams reach it, and returns what decode makes of the first answer it does not ignore.
// Requests are sent again after 250 ms, then at doubling intervals (RFC 6886 section 3.1),
// until ctx ends: a router that answers nothing, or only garbage, costs ctx's time and no more.
func exchange[T any](ctx context.Context, server netip.AddrPort, req []byte, decode func([]byte) (T, error)) (T, error) {
	var zero T
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp4", server.String())
	if err != nil {
		return zero, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, pcpMaxLen+1)
	wait := 250 * time.Millisecond
	refused := fmt.Errorf("%s refused (port closed)", server)
	for {
		if _, err := conn.Write(req); errors.Is(err, syscall.ECONNREFUSED) {
			return zero, refused // an ICMP port unreachable came back: nothing listens there
		} else if err != nil {
			return zero, err
		}
		resend := time.Now().Add(wait)
		wait *= 2
		if dl, ok := ctx.Deadline(); ok && dl.Before(resend) {
			resend = dl
		}
		for {
			if ctx.Err() != nil {
				return zero, fmt.Errorf("no answer from %s: %w", server, context.Cause(ctx))
			}
			conn.SetReadDeadline(resend)
			n, err := conn.Read(buf)
			if errors.Is(err, syscall.ECONNREFUSED) {
				return zero, refused
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // resend, unless ctx ended
			}
			if err != nil {
				return zero, err
			}
			v, err := decode(buf[:n])
			if err == errIgnore {
				continue
			}
			return v, err
		}
	}
}

// pcpRequest is a PCP request's common header (RFC 6887 section 7.1) with room for body bytes.
func pcpRequest(op byte, lifetime uint32, client netip.Addr, body int) []byte {
	b := make([]byte, pcpHeaderLen+body)
	b[0] = pcpVersion
	b[1] = op
	binary.BigEndian.PutUint32(b[4:8], lifetime)
	ip := client.As16() // an IPv4 address as IPv4-mapped IPv6, as the RFC asks
	copy(b[8:24], ip[:])
	return b
}

// pcpResponse is a decoded PCP response: its common header (section 7.2) and, for MAP, the
// opcode's fields (section 11.1).
type pcpResponse struct {
	Op       byte
	Result   int
	Lifetime uint32
	Epoch    uint32
	// MAP only.
	Nonce    [12]byte
	Protocol byte
	Internal uint16
	External netip.AddrPort
}

// decodePCP decodes a datagram from a PCP server. A NAT-PMP server's "unsupported version"
// answer is errOtherVersion; anything else that is not a well-formed PCP response is an error.
func decodePCP(b []byte) (pcpResponse, error) {
	var r pcpResponse
	if len(b) >= 4 && b[0] == pmpVersion && b[1] >= opReply && binary.BigEndian.Uint16(b[2:4]) == 1 {
		return r, errOtherVersion{NATPMP}
	}
	switch {
	case len(b) < pcpHeaderLen || len(b) > pcpMaxLen || len(b)%4 != 0:
		return r, fmt.Errorf("PCP: a %d-byte message", len(b))
	case b[0] != pcpVersion:
		return r, fmt.Errorf("PCP: version %d", b[0])
	case b[1]&opReply == 0:
		return r, errors.New("PCP: a request, not a response")
	}
	r.Op = b[1] &^ opReply
	r.Result = int(b[3])
	r.Lifetime = binary.BigEndian.Uint32(b[4:8])
	r.Epoch = binary.BigEndian.Uint32(b[8:12])
	if r.Op != pcpOpMap || r.Result != 0 {
		// An error response may carry the request's opcode fields or not (section 8.3).
		return r, nil
	}
	if len(b) < pcpHeaderLen+pcpMapLen {
		return r, fmt.Errorf("PCP: a MAP response of %d bytes", len(b))
	}
	m := b[pcpHeaderLen:]
	copy(r.Nonce[:], m[:12])
	r.Protocol = m[12]
	r.Internal = binary.BigEndian.Uint16(m[16:18])
	ip := netip.AddrFrom16([16]byte(m[20:36])).Unmap()
	r.External = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(m[18:20]))
	return r, nil
}

// pmpResponse is a decoded NAT-PMP response (RFC 6886 sections 3.2 and 3.3).
type pmpResponse struct {
	Op       byte
	Result   int
	Epoch    uint32
	External netip.Addr // external address responses
	Internal uint16     // mapping responses
	Mapped   uint16
	Lifetime uint32
}

// decodePMP decodes a datagram from a NAT-PMP server. A PCP server's answer to our version 0
// is errOtherVersion.
func decodePMP(b []byte) (pmpResponse, error) {
	var r pmpResponse
	if len(b) >= 4 && b[0] == pcpVersion && b[1] >= opReply && b[3] == 1 {
		return r, errOtherVersion{PCP}
	}
	if len(b) < 8 || b[0] != pmpVersion || b[1] < opReply {
		return r, fmt.Errorf("NAT-PMP: not a response (%d bytes)", len(b))
	}
	r.Op = b[1] - opReply
	r.Result = int(binary.BigEndian.Uint16(b[2:4]))
	r.Epoch = binary.BigEndian.Uint32(b[4:8])
	if r.Result != 0 {
		return r, nil
	}
	switch {
	case r.Op == pmpOpExternal && len(b) >= 12:
		r.External = netip.AddrFrom4([4]byte(b[8:12]))
	case (r.Op == pmpOpMapUDP || r.Op == 2) && len(b) >= 16:
		r.Internal = binary.BigEndian.Uint16(b[8:10])
		r.Mapped = binary.BigEndian.Uint16(b[10:12])
		r.Lifetime = binary.BigEndian.Uint32(b[12:16])
	default:
		return r, fmt.Errorf("NAT-PMP: a %d-byte answer to opcode %d", len(b), r.Op)
	}
	return r, nil
}

// pcpClient maps a port with PCP's MAP opcode. Its nonce stays the same for the life of the
// client: refreshing and deleting a mapping must repeat the nonce that made it.
type pcpClient struct {
	server netip.AddrPort
	local  netip.Addr // our address as the server sees it (ADDRESS_MISMATCH otherwise)
	nonce  [12]byte
}

func newPCPClient(gateway, local netip.Addr) *pcpClient {
	c := &pcpClient{server: netip.AddrPortFrom(gateway, serverPort), local: local}
	rand.Read(c.nonce[:])
	return c
}

func (c *pcpClient) protocol() Protocol { return PCP }

// probe sends ANNOUNCE, which a PCP server answers at once and which changes nothing.
func (c *pcpClient) probe(ctx context.Context) error {
	_, err := exchange(ctx, c.server, pcpRequest(pcpOpAnnounce, 0, c.local, 0), func(b []byte) (pcpResponse, error) {
		return c.decode(b, pcpOpAnnounce)
	})
	return err
}

// decode takes the answer to opcode op (awaited).
func (c *pcpClient) decode(b []byte, op byte) (pcpResponse, error) {
	r, err := decodePCP(b)
	return awaited(r, err, op, PCP)
}

func (c *pcpClient) add(ctx context.Context, port uint16, lifetime time.Duration, prev Mapping) (Mapping, error) {
	r, err := c.mapRequest(ctx, port, uint32(lifetime/time.Second), prev.External)
	if err != nil {
		return Mapping{}, err
	}
	if r.Lifetime == 0 || r.External.Port() == 0 {
		return Mapping{}, fmt.Errorf("PCP at %s granted no mapping", c.server.Addr())
	}
	return Mapping{Protocol: PCP, External: r.External, Internal: netip.AddrPortFrom(c.local, port),
		Lifetime: time.Duration(r.Lifetime) * time.Second, Gateway: c.server.Addr()}, nil
}

func (c *pcpClient) remove(ctx context.Context, m Mapping) error {
	_, err := c.mapRequest(ctx, m.Internal.Port(), 0, m.External)
	return err
}

// mapRequest sends a MAP request for a UDP port (lifetime 0 deletes), suggesting the external
// address and port it had (or, the first time, the same port as ours), and returns the answer.
func (c *pcpClient) mapRequest(ctx context.Context, port uint16, lifetime uint32, suggest netip.AddrPort) (pcpResponse, error) {
	req := pcpRequest(pcpOpMap, lifetime, c.local, pcpMapLen)
	m := req[pcpHeaderLen:]
	copy(m[:12], c.nonce[:])
	m[12] = protoUDP
	binary.BigEndian.PutUint16(m[16:18], port)
	ext, extIP := port, netip.IPv4Unspecified() // "no preference" is the IPv4-mapped 0.0.0.0
	if suggest.IsValid() {
		ext, extIP = suggest.Port(), suggest.Addr()
	}
	binary.BigEndian.PutUint16(m[18:20], ext)
	ip := extIP.As16()
	copy(m[20:36], ip[:])
	return exchange(ctx, c.server, req, func(b []byte) (pcpResponse, error) {
		r, err := c.decode(b, pcpOpMap)
		if err == nil && (r.Nonce != c.nonce || r.Protocol != protoUDP || r.Internal != port) {
			return r, errIgnore // an answer to another request
		}
		return r, err
	})
}

// ignoreMalformed lets an exchange wait on after a datagram it cannot decode (it may be
// garbage from a broken router while a good answer is still to come), except for the answer
// that the server speaks the other version, which is final.
func ignoreMalformed(err error) error {
	var ov errOtherVersion
	if errors.As(err, &ov) {
		return err
	}
	return errIgnore
}

// pmpClient maps a port with NAT-PMP.
type pmpClient struct {
	server   netip.AddrPort
	local    netip.Addr
	external netip.Addr // the router's external address (probe)
}

func newPMPClient(gateway, local netip.Addr) *pmpClient {
	return &pmpClient{server: netip.AddrPortFrom(gateway, serverPort), local: local}
}

func (c *pmpClient) protocol() Protocol { return NATPMP }

// probe asks for the router's external address, which a mapping's answer does not carry.
func (c *pmpClient) probe(ctx context.Context) error {
	r, err := exchange(ctx, c.server, []byte{pmpVersion, pmpOpExternal}, func(b []byte) (pmpResponse, error) {
		return c.decode(b, pmpOpExternal)
	})
	if err != nil {
		return err
	}
	c.external = r.External
	return nil
}

func (c *pmpClient) add(ctx context.Context, port uint16, lifetime time.Duration, prev Mapping) (Mapping, error) {
	if !c.external.IsValid() {
		if err := c.probe(ctx); err != nil {
			return Mapping{}, err
		}
	}
	r, err := c.mapRequest(ctx, port, prev.External.Port(), uint32(lifetime/time.Second))
	if err != nil {
		return Mapping{}, err
	}
	if r.Lifetime == 0 || r.Mapped == 0 {
		return Mapping{}, fmt.Errorf("NAT-PMP at %s granted no mapping", c.server.Addr())
	}
	return Mapping{Protocol: NATPMP, External: netip.AddrPortFrom(c.external, r.Mapped), Internal: netip.AddrPortFrom(c.local, port),
		Lifetime: time.Duration(r.Lifetime) * time.Second, Gateway: c.server.Addr()}, nil
}

// remove deletes the mapping: lifetime 0 and external port 0 (RFC 6886 section 3.4).
func (c *pmpClient) remove(ctx context.Context, m Mapping) error {
	_, err := c.mapRequest(ctx, m.Internal.Port(), 0, 0)
	return err
}

func (c *pmpClient) mapRequest(ctx context.Context, port, suggest uint16, lifetime uint32) (pmpResponse, error) {
	if suggest == 0 && lifetime != 0 {
		suggest = port
	}
	req := make([]byte, 12)
	req[1] = pmpOpMapUDP
	binary.BigEndian.PutUint16(req[4:6], port)
	binary.BigEndian.PutUint16(req[6:8], suggest)
	binary.BigEndian.PutUint32(req[8:12], lifetime)
	return exchange(ctx, c.server, req, func(b []byte) (pmpResponse, error) {
		r, err := c.decode(b, pmpOpMapUDP)
		if err == nil && r.Internal != port {
			return r, errIgnore
		}
		return r, err
	})
}

// decode takes the answer to opcode op (awaited).
func (c *pmpClient) decode(b []byte, op byte) (pmpResponse, error) {
	r, err := decodePMP(b)
	return awaited(r, err, op, NATPMP)
}

// response is a decoded PCP or NAT-PMP response.
type response interface {
	opcode() byte
	result() int
}

func (r pcpResponse) opcode() byte { return r.Op }
func (r pcpResponse) result() int  { return r.Result }
func (r pmpResponse) opcode() byte { return r.Op }
func (r pmpResponse) result() int  { return r.Result }

// awaited judges a decoded datagram for an exchange awaiting the answer to opcode op: a refusal
// is a ResultError, an answer to another opcode or a datagram that does not decode is waited
// past (ignoreMalformed).
func awaited[T response](r T, err error, op byte, p Protocol) (T, error) {
	switch {
	case err != nil:
		return r, ignoreMalformed(err)
	case r.opcode() != op:
		return r, errIgnore
	case r.result() != 0:
		return r, &ResultError{p, r.result()}
	}
	return r, nil
}
