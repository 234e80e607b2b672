package traversal

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/pion/stun/v3"
)

// Probes are STUN binding requests (pion/stun) with USERNAME "<session id hex>:<sender's role>",
// MESSAGE-INTEGRITY keyed per session from the service's secretKey, and FINGERPRINT: the peer
// tells them from any other STUN on the socket, knows whose they are, and nobody without the
// secret can make one. Their first byte is below 0x40, so quic-go's demultiplexing passes them
// by (see FACTS.md).

// parseProbe decodes a probe or answer and returns its session id (hex) and sender's role.
func parseProbe(data []byte) (msg *stun.Message, idHex, role string, ok bool) {
	if !stun.IsMessage(data) {
		return nil, "", "", false
	}
	msg = &stun.Message{Raw: append([]byte(nil), data...)} // data is the socket's buffer
	if msg.Decode() != nil {
		return nil, "", "", false
	}
	var user stun.Username
	if user.GetFrom(msg) != nil {
		return nil, "", "", false
	}
	idHex, role, ok = strings.Cut(user.String(), ":")
	if !ok || len(idHex) > 2*64 {
		return nil, "", "", false
	}
	return msg, idHex, role, true
}

// request builds a probe with a fresh transaction id, or with tx when it is set; size > 0 pads
// it (STUN's PADDING attribute) to exactly size bytes, a multiple of 4 (path MTU probes).
func (s *Session) request(tx *[stun.TransactionIDSize]byte, size int) (*stun.Message, error) {
	key, ok := s.integrityKey()
	if !ok {
		return nil, errNoKey
	}
	return s.requestWith(key, tx, size)
}

// requestWith is request with the integrity key key.
func (s *Session) requestWith(key string, tx *[stun.TransactionIDSize]byte, size int) (*stun.Message, error) {
	setter := stun.TransactionID
	if tx != nil {
		setter = stun.NewTransactionIDSetter(*tx)
	}
	setters := []stun.Setter{setter, stun.BindingRequest, stun.NewUsername(s.username)}
	if size > 0 {
		pad := size - probeOverhead(len(s.username))
		if pad < 0 || pad%4 != 0 {
			return nil, fmt.Errorf("traversal: cannot pad a probe to %d bytes", size)
		}
		setters = append(setters, padding(pad))
	}
	setters = append(setters, stun.NewShortTermIntegrity(key), stun.Fingerprint)
	return stun.Build(setters...)
}

// probeOverhead is the size of an unpadded probe with a username of n bytes, plus the header
// of a PADDING attribute: STUN's header (20), USERNAME (4 and n rounded up to 4),
// MESSAGE-INTEGRITY (24), FINGERPRINT (8).
func probeOverhead(n int) int { return 20 + 4 + (n+3)&^3 + 4 + 24 + 8 }

// padding is a PADDING attribute (RFC 5780) of n zero bytes.
type padding int

func (p padding) AddTo(m *stun.Message) error {
	m.Add(stun.AttrPadding, make([]byte, p))
	return nil
}

// authentic reports whether a probe carries the session's integrity and a valid fingerprint.
func (s *Session) authentic(msg *stun.Message) bool {
	key, ok := s.integrityKey()
	return ok && stun.NewShortTermIntegrity(key).Check(msg) == nil && stun.Fingerprint.Check(msg) == nil
}

// errNoKey: the session cannot probe before its integrity key is known (SetKey).
var errNoKey = errors.New("traversal: no probe key yet")

// answer builds the authenticated success response to the peer's probe from from (invalid:
// through the relay, where the peer's address means nothing).
func (s *Session) answer(req *stun.Message, from netip.AddrPort) ([]byte, error) {
	key, ok := s.integrityKey()
	if !ok {
		return nil, errNoKey
	}
	return s.answerWith(key, req, from)
}

// answerWith is answer with the integrity key key.
func (s *Session) answerWith(key string, req *stun.Message, from netip.AddrPort) ([]byte, error) {
	setters := []stun.Setter{stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess}
	if from.IsValid() {
		setters = append(setters, &stun.XORMappedAddress{IP: net.IP(from.Addr().AsSlice()), Port: int(from.Port())})
	}
	setters = append(setters, stun.NewUsername(s.username), stun.NewShortTermIntegrity(key), stun.Fingerprint)
	resp, err := stun.Build(setters...)
	if err != nil {
		return nil, err
	}
	return resp.Raw, nil
}

func idHex(id []byte) string { return hex.EncodeToString(id) }
