package wire

// Relayed P2P packets travel between a client's UDP socket and the server's bindPort with a
// small header in front: RelayMagic, then the sender's (or, towards a client, the receiver's)
// relay token. The magic byte has QUIC's two top bits clear, so it can never be mistaken for a
// QUIC packet, and it is not a first byte STUN binding messages use (0x00/0x01); the
// server's and clients' sockets tell all three apart by this byte alone.
const (
	RelayMagic     = 0x3C
	RelayHeaderLen = 1 + RelayTokenLen
	// MaxRelayFrame bounds a relayed packet on a TCP relay stream: the header and a QUIC packet,
	// which is at most 1452 bytes (quic-go reads no larger one), so that a stream's read buffer
	// takes 1.4 KiB instead of a UDP datagram's 64.
	MaxRelayFrame = RelayHeaderLen + 1452
)

// RelayToken is the per-session, per-side token that routes relayed packets.
type RelayToken [RelayTokenLen]byte

// ParseRelay splits a relayed packet into its token and payload.
func ParseRelay(b []byte) (tok RelayToken, payload []byte, ok bool) {
	if len(b) <= RelayHeaderLen || b[0] != RelayMagic {
		return tok, nil, false
	}
	copy(tok[:], b[1:RelayHeaderLen])
	return tok, b[RelayHeaderLen:], true
}

// PutRelayHeader writes the header for tok into the first RelayHeaderLen bytes of b.
func PutRelayHeader(b []byte, tok RelayToken) {
	b[0] = RelayMagic
	copy(b[1:RelayHeaderLen], tok[:])
}
