package rendezvous

import (
	"log/slog"
	"net"

	"github.com/pion/stun/v3"

	"github.com/xp2p/xp2p/internal/quicsock"
)

// stunResponder answers STUN binding requests (RFC 8489) on the server's bindPort with the
// requester's address as seen here: the public address a client's NAT gave its UDP socket.
type stunResponder struct {
	log  *slog.Logger
	sock *quicsock.Conn
}

func (r *stunResponder) handle(data []byte, from *net.UDPAddr) {
	if !stun.IsMessage(data) {
		return
	}
	req := &stun.Message{Raw: append([]byte(nil), data...)}
	if err := req.Decode(); err != nil || req.Type != stun.BindingRequest {
		return
	}
	resp, err := stun.Build(
		stun.NewTransactionIDSetter(req.TransactionID),
		stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.IP, Port: from.Port},
		stun.NewSoftware("xp2p"),
		stun.Fingerprint,
	)
	if err != nil {
		return
	}
	r.sock.WriteRaw(resp.Raw, nil, from)
}
