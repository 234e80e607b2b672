package nat

import (
	"net"
	"net/netip"
	"strings"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/internal/auth"
)

// Address registration. A client's session to the server runs over one address family, so the
// server sees only that family's public address of the client's socket; a peer of the other
// family (an IPv6-only visitor, a provider reached over IPv4) would have no address to punch.
// So the client sends a binding request from the same socket to the server's addresses of the
// other family (wire.LoginResult.ServerAddrs, or what DNS has for the server's name), with
// USERNAME "xp2p-addr:<client id>" and MESSAGE-INTEGRITY keyed from its control session: the
// server records the request's source as the client's public address of that family and
// answers (authenticated the same way) with it.
const registerUserPrefix = "xp2p-addr:"

// RegisterKey is the integrity key of a client's registrations, derived from the TLS
// exporter of its control session (both ends have it, nobody else does).
func RegisterKey(exporter []byte) []byte { return auth.Derive(exporter, "xp2p address", nil) }

// RegisterRequest builds a registration of the client clientID.
func RegisterRequest(clientID string, key []byte) (*stun.Message, error) {
	return stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(registerUserPrefix+clientID),
		stun.NewShortTermIntegrity(string(key)), stun.Fingerprint)
}

// ParseRegister reads a registration: the client id it names, and the message to check with
// CheckRegister once the client's key is found. ok is false for anything else.
func ParseRegister(data []byte) (clientID string, msg *stun.Message, ok bool) {
	if !stun.IsMessage(data) {
		return "", nil, false
	}
	msg = &stun.Message{Raw: append([]byte(nil), data...)}
	if msg.Decode() != nil || msg.Type != stun.BindingRequest {
		return "", nil, false
	}
	var user stun.Username
	if user.GetFrom(msg) != nil {
		return "", nil, false
	}
	id, ok := strings.CutPrefix(user.String(), registerUserPrefix)
	if !ok || id == "" || len(id) > 64 {
		return "", nil, false
	}
	return id, msg, true
}

// CheckRegister reports whether a registration (or its answer) carries the key's integrity
// and a valid fingerprint.
func CheckRegister(msg *stun.Message, key []byte) bool {
	return stun.NewShortTermIntegrity(string(key)).Check(msg) == nil && stun.Fingerprint.Check(msg) == nil
}

// RegisterAnswer is the server's authenticated answer to a registration from from.
func RegisterAnswer(req *stun.Message, from netip.AddrPort, key []byte) ([]byte, error) {
	resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: net.IP(from.Addr().AsSlice()), Port: int(from.Port())},
		stun.NewShortTermIntegrity(string(key)), stun.Fingerprint)
	if err != nil {
		return nil, err
	}
	return resp.Raw, nil
}

// ParseRegisterAnswer reads the server's answer to a registration: its transaction and the
// public address it saw, if the answer carries the key's integrity.
func ParseRegisterAnswer(data []byte, key []byte) (tx [stun.TransactionIDSize]byte, public netip.AddrPort, ok bool) {
	if !stun.IsMessage(data) {
		return tx, public, false
	}
	msg := &stun.Message{Raw: append([]byte(nil), data...)}
	if msg.Decode() != nil || msg.Type != stun.BindingSuccess || !CheckRegister(msg, key) {
		return tx, public, false
	}
	var xa stun.XORMappedAddress
	if xa.GetFrom(msg) != nil {
		return tx, public, false
	}
	ip, ok := netip.AddrFromSlice(xa.IP)
	if !ok {
		return tx, public, false
	}
	return msg.TransactionID, netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port)), true
}
