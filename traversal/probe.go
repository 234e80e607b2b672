package traversal

import (
	"encoding/hex"
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

// request builds a probe with a fresh transaction id, or with tx when it is set.
func (s *Session) request(tx *[stun.TransactionIDSize]byte) (*stun.Message, error) {
	setter := stun.TransactionID
	if tx != nil {
		setter = stun.NewTransactionIDSetter(*tx)
	}
	return stun.Build(setter, stun.BindingRequest,
		stun.NewUsername(s.username), stun.NewShortTermIntegrity(s.key), stun.Fingerprint)
}

// authentic reports whether a probe carries the session's integrity and a valid fingerprint.
func (s *Session) authentic(msg *stun.Message) bool {
	return stun.NewShortTermIntegrity(s.key).Check(msg) == nil && stun.Fingerprint.Check(msg) == nil
}

// answer builds the authenticated success response to the peer's probe from from.
func (s *Session) answer(req *stun.Message, from netip.AddrPort) ([]byte, error) {
	resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: net.IP(from.Addr().AsSlice()), Port: int(from.Port())},
		stun.NewUsername(s.username), stun.NewShortTermIntegrity(s.key), stun.Fingerprint)
	if err != nil {
		return nil, err
	}
	return resp.Raw, nil
}

func idHex(id []byte) string { return hex.EncodeToString(id) }
