package nat

import (
	"encoding/binary"
	"net/netip"

	"github.com/pion/stun/v3"
)

// Responder answers STUN binding requests: RFC 8489/5389 ones (with pion/stun) and the classic
// RFC 3489 ones older clients such as Debian's stun-client still send, with what the NAT
// behaviour tests of RFC 5780 need: OTHER-ADDRESS, RESPONSE-ORIGIN and CHANGE-REQUEST.
// It owns no socket: Answer says what to send and from which local address, the owner sends.
type Responder struct {
	// Primary is the host's main address, when known (a server bound to a wildcard address
	// learns the address of each request from the packet instead).
	Primary netip.Addr
	// AltAddr is a second address of the host (invalid: none).
	AltAddr netip.Addr
	// Port is the main port; AltPort the second one (0: none).
	Port, AltPort uint16
	// Software is the SOFTWARE attribute of responses.
	Software string
}

// Classic RFC 3489 attribute types that pion/stun does not name.
const (
	attrSourceAddress stun.AttrType = 0x0004
	classicHeaderSize               = 20
	maxRequestSize                  = 548 // RFC 3489's minimum MTU; a binding request is far smaller
)

// Answer handles a packet that arrived at local from from. It returns the response and the
// local address it must leave from, or ok=false for anything that is not a binding request
// (which must be dropped: never answer a response, or noise, with more noise).
func (r *Responder) Answer(req []byte, from, local netip.AddrPort) (resp []byte, src netip.AddrPort, ok bool) {
	if len(req) < classicHeaderSize || len(req) > maxRequestSize {
		return nil, src, false
	}
	if stun.IsMessage(req) {
		return r.answerModern(req, from, local)
	}
	return r.answerClassic(req, from, local)
}

// route decides where a response to a request at local comes from, and the OTHER-ADDRESS to
// advertise there. ok is false when the change asked for needs an address or port the host
// does not have.
func (r *Responder) route(local netip.AddrPort, change ChangeRequest) (src, other netip.AddrPort, ok bool) {
	otherIP := netip.Addr{}
	if r.AltAddr.IsValid() {
		if local.Addr() == r.AltAddr {
			otherIP = r.Primary
		} else {
			otherIP = r.AltAddr
		}
	}
	var otherPort uint16
	if r.AltPort != 0 {
		otherPort = r.AltPort
		if local.Port() == r.AltPort {
			otherPort = r.Port
		}
	}
	if otherPort != 0 {
		ip := otherIP
		if !ip.IsValid() {
			ip = local.Addr() // a second port only: the client sees the same address
		}
		other = netip.AddrPortFrom(ip, otherPort)
	}
	srcIP, srcPort := local.Addr(), local.Port()
	if change.ChangeIP {
		if !otherIP.IsValid() {
			return src, other, false
		}
		srcIP = otherIP
	}
	if change.ChangePort {
		if otherPort == 0 {
			return src, other, false
		}
		srcPort = otherPort
	}
	return netip.AddrPortFrom(srcIP, srcPort), other, true
}

func (r *Responder) answerModern(raw []byte, from, local netip.AddrPort) ([]byte, netip.AddrPort, bool) {
	req := &stun.Message{Raw: append([]byte(nil), raw...)}
	if err := req.Decode(); err != nil || req.Type != stun.BindingRequest {
		return nil, netip.AddrPort{}, false
	}
	var change ChangeRequest
	if req.Contains(stun.AttrChangeRequest) {
		if err := change.GetFrom(req); err != nil {
			return r.modernError(req, local, stun.CodeBadRequest)
		}
	}
	src, other, ok := r.route(local, change)
	if !ok {
		return r.modernError(req, local, stun.CodeUnknownAttribute)
	}
	setters := []stun.Setter{
		stun.NewTransactionIDSetter(req.TransactionID),
		stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
		&stun.ResponseOrigin{IP: src.Addr().AsSlice(), Port: int(src.Port())},
	}
	if other.IsValid() {
		setters = append(setters, &stun.OtherAddress{IP: other.Addr().AsSlice(), Port: int(other.Port())})
	}
	setters = append(setters, stun.NewSoftware(r.Software), stun.Fingerprint)
	resp, err := stun.Build(setters...)
	if err != nil {
		return nil, netip.AddrPort{}, false
	}
	return resp.Raw, src, true
}

func (r *Responder) modernError(req *stun.Message, local netip.AddrPort, code stun.ErrorCode) ([]byte, netip.AddrPort, bool) {
	setters := []stun.Setter{
		stun.NewTransactionIDSetter(req.TransactionID),
		stun.NewType(stun.MethodBinding, stun.ClassErrorResponse),
		code,
	}
	if code == stun.CodeUnknownAttribute {
		setters = append(setters, stun.UnknownAttributes{stun.AttrChangeRequest})
	}
	setters = append(setters, stun.NewSoftware(r.Software), stun.Fingerprint)
	resp, err := stun.Build(setters...)
	if err != nil {
		return nil, netip.AddrPort{}, false
	}
	return resp.Raw, local, true
}

// answerClassic answers an RFC 3489 binding request: a 16-byte transaction id and no magic
// cookie, answered with MAPPED-ADDRESS, SOURCE-ADDRESS and CHANGED-ADDRESS. pion/stun only
// speaks RFC 5389 and later, hence this small codec of our own.
func (r *Responder) answerClassic(req []byte, from, local netip.AddrPort) ([]byte, netip.AddrPort, bool) {
	msgType := binary.BigEndian.Uint16(req[0:2])
	length := int(binary.BigEndian.Uint16(req[2:4]))
	if msgType != 0x0001 || length != len(req)-classicHeaderSize || length%4 != 0 || !from.Addr().Is4() {
		return nil, netip.AddrPort{}, false
	}
	var change ChangeRequest
	for attrs := req[classicHeaderSize:]; len(attrs) > 0; {
		if len(attrs) < 4 {
			return nil, netip.AddrPort{}, false
		}
		typ := binary.BigEndian.Uint16(attrs[0:2])
		n := int(binary.BigEndian.Uint16(attrs[2:4]))
		if 4+n > len(attrs) {
			return nil, netip.AddrPort{}, false
		}
		if stun.AttrType(typ) == stun.AttrChangeRequest && n == 4 {
			flags := binary.BigEndian.Uint32(attrs[4:8])
			change = ChangeRequest{ChangeIP: flags&changeIPFlag != 0, ChangePort: flags&changePortFlag != 0}
		}
		attrs = attrs[min(4+(n+3)&^3, len(attrs)):] // values are padded to 4 bytes
	}
	src, other, ok := r.route(local, change)
	if !ok {
		// RFC 3489 has no way to say "I have no second address" (it requires one), and its
		// clients count any answer as the change having worked: silence is the honest reply.
		return nil, netip.AddrPort{}, false
	}
	resp := make([]byte, classicHeaderSize, 64)
	copy(resp[4:20], req[4:20])
	binary.BigEndian.PutUint16(resp[0:2], 0x0101)
	resp = appendClassicAddr(resp, stun.AttrMappedAddress, from)
	if src.Addr().Is4() {
		resp = appendClassicAddr(resp, attrSourceAddress, src)
	}
	if other.IsValid() && other.Addr().Is4() {
		resp = appendClassicAddr(resp, stun.AttrChangedAddress, other)
	}
	binary.BigEndian.PutUint16(resp[2:4], uint16(len(resp)-classicHeaderSize))
	return resp, src, true
}

// appendClassicAddr appends an IPv4 address attribute in RFC 3489's (un-XORed) format.
func appendClassicAddr(b []byte, typ stun.AttrType, a netip.AddrPort) []byte {
	ip := a.Addr().As4()
	b = binary.BigEndian.AppendUint16(b, uint16(typ))
	b = binary.BigEndian.AppendUint16(b, 8)
	b = append(b, 0, 1) // reserved, family IPv4
	b = binary.BigEndian.AppendUint16(b, a.Port())
	return append(b, ip[:]...)
}
