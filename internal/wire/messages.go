package wire

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/xp2p/xp2p/portmap"
)

// Limits on list fields, so that a decoded message never carries unbounded work.
const (
	MaxCandidates = 16
	MaxNameLen    = 128
	proofLen      = 32
	runKeyLen     = 32 // ed25519 public key
	runSigLen     = 64 // ed25519 signature
	shareLen      = 32 // a CPace share (ristretto255 element)
	groupKeyLen   = 32
	// RelayTokenLen is the size of the per-session, per-side token that prefixes relayed packets.
	RelayTokenLen = 8
	// SessionIDLen is the size of a P2P session id.
	SessionIDLen = 16
)

// Codes say why a request was refused, so that programs branch on them instead of on the
// message text beside them (which is for people and may change).
const (
	// CodeAuth: wrong auth.token (or, on a work connection, a wrong session proof).
	CodeAuth = "auth"
	// CodeRateLimited: too many failed attempts from this source; retry later.
	CodeRateLimited = "rateLimited"
	// CodeRunKey: the run ID does not belong to the run key, or its signature is wrong.
	CodeRunKey = "runKey"
	// CodeUnknownRun: the server has no session of that run ID (it restarted, or the session
	// ended): log in again.
	CodeUnknownRun = "unknownRun"
	// CodeBusy: the server sheds load; retry later.
	CodeBusy = "busy"
	// CodeInternal: the server failed; the message says how.
	CodeInternal = "internal"
	// CodeInUse: a proxy's name or port is held, by another client that answered when the
	// server checked it was alive, or by a program outside xp2p. It may be free later: the
	// client asks again, with backoff, until it gets it.
	CodeInUse = "inUse"
	// CodeConfig: the server's configuration does not allow a proxy (allowPorts, a group's key
	// or port, a name the client already registered). Asking again
	// gives the same answer until a configuration changes.
	CodeConfig = "config"
	// CodeQuota: the client's identity (its user from its address) holds as many proxies or
	// ports as the server allows (maxProxiesPerClient, maxPortsPerClient), counting its other
	// sessions. It may fit later, when one of them closes a proxy or ends: the client asks
	// again, with backoff.
	CodeQuota = "quota"
)

func init() {
	register(func() Message { return new(Login) })
	register(func() Message { return new(LoginResult) })
	register(func() Message { return new(NewProxy) })
	register(func() Message { return new(NewProxyResult) })
	register(func() Message { return new(CloseProxy) })
	register(func() Message { return new(WorkStream) })
	register(func() Message { return new(Connect) })
	register(func() Message { return new(ConnectResult) })
	register(func() Message { return new(PeerSession) })
	register(func() Message { return new(PeerHello) })
	register(func() Message { return new(PeerHelloResult) })
	register(func() Message { return new(PeerConfirm) })
	register(func() Message { return new(PeerStream) })
	register(func() Message { return new(TCPPath) })
	register(func() Message { return new(Traffic) })
	register(func() Message { return new(EndSession) })
	register(func() Message { return new(Repunch) })
	register(func() Message { return new(RelayStream) })
	register(func() Message { return new(WorkConn) })
	register(func() Message { return new(WorkConnResult) })
	register(func() Message { return new(Ping) })
	register(func() Message { return new(Pong) })
	register(func() Message { return new(NATReport) })
}

// Login is the first message a client sends on its control stream.
type Login struct {
	Version string `json:"version"`
	// RunID identifies one client process: the hash of RunKey (auth.RunID). A reconnect with
	// the same RunID replaces the old session.
	RunID string `json:"runId"`
	// RunKey is the process's public run key and RunSig its signature of the session's TLS
	// exporter: only the process itself can log in under its RunID (auth.RunKey).
	RunKey   []byte `json:"runKey"`
	RunSig   []byte `json:"runSig"`
	Hostname string `json:"hostname,omitempty"`
	User     string `json:"user,omitempty"`
	// Proof is HMAC-SHA256(token, TLS exporter), see package auth.
	Proof []byte `json:"proof"`
	// PrivateAddrs are the client's LAN addresses with its UDP socket's port: P2P candidates.
	PrivateAddrs []string `json:"privateAddrs,omitempty"`
	// NAT is the client's own view of its NAT behaviour, if it measured it ("" if not).
	NAT string `json:"nat,omitempty"`
	// Mapped is the public address its router maps to the UDP socket, if any, and MappedBy
	// the protocol that mapped it (package portmap: PCP, NAT-PMP or UPnP-IGD).
	Mapped   string `json:"mapped,omitempty"`
	MappedBy string `json:"mappedBy,omitempty"`
	// Ticket proves that this client logged in to this server before (LoginResult.Ticket): a
	// login with a valid one passes the limit on failed logins of its address, so that a
	// neighbour behind the same address (a CGNAT, an office) who guesses tokens cannot lock it
	// out.
	Ticket *TicketProof `json:"ticket,omitempty"`
}

// TicketProof is a login ticket's id and the proof of its key over the session's exporter
// (the key itself never crosses the wire again).
type TicketProof struct {
	ID    []byte `json:"id"`
	Proof []byte `json:"proof"`
}

// Ticket is a login ticket the server hands a client that logged in: an id and its key.
type Ticket struct {
	ID  []byte `json:"id"`
	Key []byte `json:"key"`
}

// TicketIDLen is the size of a ticket id.
const TicketIDLen = 16

func (*Login) MessageType() string { return "login" }
func (m *Login) Validate() error {
	if len(m.RunID) == 0 || len(m.RunID) > MaxNameLen {
		return errors.New("runId must have 1 to 128 characters")
	}
	if len(m.RunKey) != runKeyLen || len(m.RunSig) != runSigLen {
		return fmt.Errorf("runKey and runSig must be %d and %d bytes", runKeyLen, runSigLen)
	}
	if len(m.Proof) != proofLen {
		return fmt.Errorf("proof must be %d bytes", proofLen)
	}
	if err := validateNAT(m.NAT); err != nil {
		return err
	}
	if err := validateMapped(m.Mapped, m.MappedBy); err != nil {
		return err
	}
	if m.Ticket != nil && (len(m.Ticket.ID) != TicketIDLen || len(m.Ticket.Proof) != proofLen) {
		return fmt.Errorf("ticket: id and proof must be %d and %d bytes", TicketIDLen, proofLen)
	}
	return validateAddrs("privateAddrs", m.PrivateAddrs)
}

// maxNATLen bounds a NAT behaviour code (package nat's Code: "m=ei|ad f=ei|ad pp" and room to grow).
const maxNATLen = 64

func validateNAT(code string) error {
	if len(code) > maxNATLen {
		return fmt.Errorf("nat: %d bytes, at most %d", len(code), maxNATLen)
	}
	for _, r := range code {
		if r < 0x20 || r > 0x7e {
			return fmt.Errorf("nat: %q has a character outside printable ASCII", code)
		}
	}
	return nil
}

// LoginResult answers Login. Error is set when the login was refused, and Code says why.
type LoginResult struct {
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// RetryAfterSeconds is how long a refused client should wait (CodeRateLimited).
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
	// Proof is the server's own proof of the token, sent only after the client's checked out.
	Proof         []byte `json:"proof,omitempty"`
	ObservedAddr  string `json:"observedAddr,omitempty"`
	ServerVersion string `json:"serverVersion,omitempty"`
	ClientID      string `json:"clientId,omitempty"`
	// ServerAddrs are the server's addresses on bindPort, of both families: the client tells
	// those of the other family than its session's its socket's address there (a STUN binding
	// request keyed from the session), so that the server knows both its public addresses.
	ServerAddrs []string `json:"serverAddrs,omitempty"`
	// Ticket is for the client's next logins (Login.Ticket).
	Ticket *Ticket `json:"ticket,omitempty"`
}

func (*LoginResult) MessageType() string { return "loginResult" }
func (m *LoginResult) Validate() error {
	if m.Error == "" && len(m.Proof) != proofLen {
		return fmt.Errorf("proof must be %d bytes", proofLen)
	}
	if m.Ticket != nil && (len(m.Ticket.ID) != TicketIDLen || len(m.Ticket.Key) != proofLen) {
		return fmt.Errorf("ticket: id and key must be %d and %d bytes", TicketIDLen, proofLen)
	}
	return validateAddrs("serverAddrs", m.ServerAddrs)
}

// NewProxy asks the server to publish a proxy of the client.
type NewProxy struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	RemotePort int    `json:"remotePort,omitempty"`
	// Group is the proxy's load-balancing group (frp's loadBalancer.group), of a kind that has
	// groups. GroupKey is not the config's loadBalancer.groupKey but a key derived from it and
	// the group's name (auth.GroupKey): the group's password never leaves the client, and
	// members of different groups with one password send different keys.
	Group    string `json:"group,omitempty"`
	GroupKey []byte `json:"groupKey,omitempty"`
	// BandwidthLimit caps the proxy's traffic at the server, in bytes per second (0: none).
	BandwidthLimit int64 `json:"bandwidthLimit,omitempty"`

	// Web proxies (http, https, tcpmux): the host names users reach it by (customDomains, and
	// subdomain under the server's subDomainHost), and for http the paths, users and headers.
	CustomDomains     []string          `json:"customDomains,omitempty"`
	SubDomain         string            `json:"subdomain,omitempty"`
	Locations         []string          `json:"locations,omitempty"`
	HTTPUser          string            `json:"httpUser,omitempty"`
	HTTPPassword      string            `json:"httpPassword,omitempty"`
	RouteByHTTPUser   string            `json:"routeByHTTPUser,omitempty"`
	HostHeaderRewrite string            `json:"hostHeaderRewrite,omitempty"`
	RequestHeaders    map[string]string `json:"requestHeaders,omitempty"`
	ResponseHeaders   map[string]string `json:"responseHeaders,omitempty"`
	Multiplexer       string            `json:"multiplexer,omitempty"`
	// ProxyProtocol: the client sends its service a PROXY protocol header naming the user, so
	// an http proxy's connections to it must not be shared between users.
	ProxyProtocol bool `json:"proxyProtocol,omitempty"`
}

func (*NewProxy) MessageType() string { return "newProxy" }
func (m *NewProxy) Validate() error {
	if m.BandwidthLimit < 0 {
		return errors.New("bandwidthLimit must not be negative")
	}
	if err := validateName("name", m.Name); err != nil {
		return err
	}
	kind := LookupProxyKind(m.Type)
	if kind == nil {
		return fmt.Errorf("unknown proxy type %q", m.Type)
	}
	if kind.validate != nil {
		if err := kind.validate(m); err != nil {
			return err
		}
	}
	if len(m.Group) > MaxNameLen {
		return errors.New("group must have at most 128 characters")
	}
	if m.Group != "" && !kind.Groups {
		return fmt.Errorf("a %s proxy has no load-balancing group", m.Type)
	}
	if len(m.GroupKey) != 0 && (m.Group == "" || len(m.GroupKey) != groupKeyLen) {
		return fmt.Errorf("groupKey must be %d bytes, with a group", groupKeyLen)
	}
	return nil
}

// NewProxyResult answers NewProxy.
type NewProxyResult struct {
	Name string `json:"name"`
	// RemoteAddr is where the proxy is reachable on the server (tcp/udp).
	RemoteAddr string `json:"remoteAddr,omitempty"`
	Error      string `json:"error,omitempty"`
	// Code says what kind of refusal Error is (CodeInUse, CodeQuota, CodeConfig; "" for
	// others), so that the client knows whether asking again can help.
	Code string `json:"code,omitempty"`
}

func (*NewProxyResult) MessageType() string { return "newProxyResult" }
func (m *NewProxyResult) Validate() error {
	if len(m.Code) > MaxNameLen {
		return fmt.Errorf("code is longer than %d characters", MaxNameLen)
	}
	return validateName("name", m.Name)
}

// CloseProxy withdraws a proxy.
type CloseProxy struct {
	Name string `json:"name"`
}

func (*CloseProxy) MessageType() string { return "closeProxy" }
func (m *CloseProxy) Validate() error   { return validateName("name", m.Name) }

// WorkStream opens every stream the server starts towards a client: which proxy it serves and
// whom. For tcp proxies the stream then carries the connection's bytes; for udp proxies it
// carries length-prefixed datagrams of one remote source.
type WorkStream struct {
	Proxy string `json:"proxy"`
	// Src is the remote address of the user the stream serves; Dst the server's address the
	// user reached (both for the PROXY protocol).
	Src string `json:"src,omitempty"`
	Dst string `json:"dst,omitempty"`
	// Datagrams: the server sends and takes this udp flow's datagrams in QUIC DATAGRAM frames of
	// the control session too, each led by the stream's ID as a varint.
	Datagrams bool `json:"datagrams,omitempty"`
}

func (*WorkStream) MessageType() string { return "work" }
func (m *WorkStream) Validate() error   { return validateName("proxy", m.Proxy) }

// Connect is a visitor's request for a P2P session to a provider's xp2p service.
type Connect struct {
	ReqID   uint64 `json:"reqId"`
	Service string `json:"service"`
	// User is the provider's frp "user" prefix, if the service was published with one.
	User string `json:"user,omitempty"`
}

func (*Connect) MessageType() string { return "connect" }
func (m *Connect) Validate() error   { return validateName("service", m.Service) }

// ConnectResult answers Connect; on success Session describes the provider side.
type ConnectResult struct {
	ReqID   uint64       `json:"reqId"`
	Error   string       `json:"error,omitempty"`
	Session *PeerSession `json:"session,omitempty"`
}

func (*ConnectResult) MessageType() string { return "connectResult" }
func (m *ConnectResult) Validate() error {
	if m.Error == "" {
		if m.Session == nil {
			return errors.New("session missing")
		}
		return m.Session.Validate()
	}
	return nil
}

// PeerSession tells one side of a P2P session about the other: it is pushed to the provider and
// returned to the visitor in ConnectResult.
type PeerSession struct {
	SessionID []byte `json:"sessionId"`
	Service   string `json:"service"`
	// Role of the receiver: "visitor" or "provider".
	Role string `json:"role"`
	// PeerPublic is the peer's address as the server observed it on the peer's UDP socket
	// ("" when the peer reaches the server over TCP only).
	PeerPublic string `json:"peerPublic,omitempty"`
	// PeerIP is the address the peer's session to the server comes from (UDP or TCP): what a
	// provider limits wrong secretKeys by.
	PeerIP string `json:"peerIp,omitempty"`
	// PeerPrivate are the peer's reported LAN candidates.
	PeerPrivate []string `json:"peerPrivate,omitempty"`
	// PeerMapped is the address the peer's router maps to its socket, if any.
	PeerMapped string `json:"peerMapped,omitempty"`
	// PeerPublicAlt is the peer's public address in the other address family than
	// PeerPublic's (IPv6 beside IPv4, or the other way round), as the server observed it.
	PeerPublicAlt string `json:"peerPublicAlt,omitempty"`
	// PeerNAT is the peer's NAT behaviour as it reported it.
	PeerNAT string `json:"peerNat,omitempty"`
	// RelayToken prefixes the receiver's relayed packets in both directions.
	RelayToken []byte `json:"relayToken"`
	// RelayAddr is the server's UDP relay address ("" when the receiver must relay over TCP).
	RelayAddr string `json:"relayAddr,omitempty"`
}

// Roles in a P2P session.
const (
	RoleVisitor  = "visitor"
	RoleProvider = "provider"
)

func (*PeerSession) MessageType() string { return "peerSession" }
func (m *PeerSession) Validate() error {
	if len(m.SessionID) != SessionIDLen {
		return fmt.Errorf("sessionId must be %d bytes", SessionIDLen)
	}
	if err := validateName("service", m.Service); err != nil {
		return err
	}
	if m.Role != RoleVisitor && m.Role != RoleProvider {
		return fmt.Errorf("unknown role %q", m.Role)
	}
	if len(m.RelayToken) != RelayTokenLen {
		return fmt.Errorf("relayToken must be %d bytes", RelayTokenLen)
	}
	if err := validateNAT(m.PeerNAT); err != nil {
		return fmt.Errorf("peer %w", err)
	}
	if m.PeerPublic != "" {
		if _, err := netip.ParseAddrPort(m.PeerPublic); err != nil {
			return fmt.Errorf("peerPublic: %w", err)
		}
	}
	if m.RelayAddr != "" {
		if _, err := netip.ParseAddrPort(m.RelayAddr); err != nil {
			return fmt.Errorf("relayAddr: %w", err)
		}
	}
	if err := validateOptionalAddr("peerPublicAlt", m.PeerPublicAlt); err != nil {
		return err
	}
	if err := validateOptionalAddr("peerMapped", m.PeerMapped); err != nil {
		return err
	}
	return validateAddrs("peerPrivate", m.PeerPrivate)
}

// PeerHello opens the first stream of a visitor↔provider QUIC session: the visitor's CPace
// share for the service's secretKey, bound to this TLS session (package auth). No proof of the
// secret crosses the wire: a transcript, as the server or a man in the middle sees it, gives no
// offline test of it.
type PeerHello struct {
	Service   string `json:"service"`
	SessionID []byte `json:"sessionId"`
	Share     []byte `json:"share"`
	// Proof is HMAC(secretKey, exporter) from a visitor that already knows this provider (its
	// TLS key is the one that proved secretKey in an earlier session, so nobody else holds this
	// session): the provider may serve the visitor's streams at once instead of after
	// PeerConfirm, a round trip later. Never sent to a provider not known so.
	Proof []byte `json:"proof,omitempty"`
}

func (*PeerHello) MessageType() string { return "peerHello" }
func (m *PeerHello) Validate() error {
	if err := validateName("service", m.Service); err != nil {
		return err
	}
	if len(m.SessionID) != SessionIDLen {
		return fmt.Errorf("sessionId must be %d bytes", SessionIDLen)
	}
	if len(m.Share) != shareLen {
		return fmt.Errorf("share must be %d bytes", shareLen)
	}
	if m.Proof != nil && len(m.Proof) != proofLen {
		return fmt.Errorf("proof must be %d bytes", proofLen)
	}
	return nil
}

// PeerHelloResult is the provider's answer: its CPace share and its confirmation of the key
// they agree on, or why it refused (Code).
type PeerHelloResult struct {
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	Share []byte `json:"share,omitempty"`
	Proof []byte `json:"proof,omitempty"`
	// Kind is the provider service's kind: "tcp" streams or "udp" datagrams.
	Kind string `json:"kind,omitempty"`
	// Datagrams: the provider takes a udp flow's datagrams in QUIC DATAGRAM frames too.
	Datagrams bool `json:"datagrams,omitempty"`
}

func (*PeerHelloResult) MessageType() string { return "peerHelloResult" }
func (m *PeerHelloResult) Validate() error {
	if m.Error == "" && (len(m.Proof) != proofLen || len(m.Share) != shareLen) {
		return fmt.Errorf("proof and share must be %d and %d bytes", proofLen, shareLen)
	}
	return nil
}

// PeerConfirm ends the hello: the visitor's confirmation of the agreed key, sent once it
// checked the provider's. The provider serves no stream before it checked this one.
type PeerConfirm struct {
	Proof []byte `json:"proof"`
}

func (*PeerConfirm) MessageType() string { return "peerConfirm" }
func (m *PeerConfirm) Validate() error {
	if len(m.Proof) != proofLen {
		return fmt.Errorf("proof must be %d bytes", proofLen)
	}
	return nil
}

// PeerStream opens every further stream of a visitor↔provider session.
type PeerStream struct {
	// Src is the address of the visitor's local user, Dst the visitor's port it reached (for the
	// provider's logs and the PROXY protocol).
	Src string `json:"src,omitempty"`
	Dst string `json:"dst,omitempty"`
	// Datagrams: the visitor sends and takes this udp flow's datagrams in QUIC DATAGRAM frames
	// too, each led by the stream's ID as a varint (the provider answered Datagrams).
	Datagrams bool `json:"datagrams,omitempty"`
}

func (*PeerStream) MessageType() string { return "peerStream" }
func (*PeerStream) Validate() error     { return nil }

// TCPPath opens a stream of a visitor↔provider session that sets up a direct TCP path beside
// it (TCP hole punching): each side sends the addresses its punching socket may be reached at
// (the visitor first, the provider answers), then both connect to the other's at once.
type TCPPath struct {
	Addrs []string `json:"addrs"`
}

func (*TCPPath) MessageType() string { return "tcpPath" }
func (m *TCPPath) Validate() error   { return validateAddrs("addrs", m.Addrs) }

// Traffic is a client's periodic report of its P2P sessions' byte counts, which the server
// cannot see on direct paths.
type Traffic struct {
	Sessions []SessionTraffic `json:"sessions"`
}

// SessionTraffic is one P2P session's figures as one side sees them.
type SessionTraffic struct {
	SessionID []byte `json:"sessionId"`
	Role      string `json:"role"`
	Path      string `json:"path"`
	Local     string `json:"local,omitempty"`
	Remote    string `json:"remote,omitempty"`
	RTTMicros int64  `json:"rttUs,omitempty"`
	// ReadyMicros is the time from the request to the first usable byte; DirectMicros the time
	// to the first direct path (0: none yet).
	ReadyMicros  int64 `json:"readyUs,omitempty"`
	DirectMicros int64 `json:"directUs,omitempty"`
	RelayBytes   int64 `json:"relayBytes"`
	DirectBytes  int64 `json:"directBytes"`
}

func (*Traffic) MessageType() string { return "traffic" }
func (m *Traffic) Validate() error {
	if len(m.Sessions) > 1024 {
		return errors.New("too many sessions")
	}
	for _, s := range m.Sessions {
		if len(s.SessionID) != SessionIDLen {
			return fmt.Errorf("sessionId must be %d bytes", SessionIDLen)
		}
	}
	return nil
}

func validateName(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", field)
	}
	if len(v) > MaxNameLen {
		return fmt.Errorf("%s is longer than %d characters", field, MaxNameLen)
	}
	return nil
}

func validateAddrs(field string, addrs []string) error {
	if len(addrs) > MaxCandidates {
		return fmt.Errorf("%s: more than %d addresses", field, MaxCandidates)
	}
	for _, a := range addrs {
		if _, err := netip.ParseAddrPort(a); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
	}
	return nil
}

// EndSession ends a P2P session: sent by a client that closed it, and by the server to the
// other side (also when a side's client disconnected).
type EndSession struct {
	SessionID []byte `json:"sessionId"`
	Reason    string `json:"reason,omitempty"`
}

func (*EndSession) MessageType() string { return "endSession" }
func (m *EndSession) Validate() error {
	if len(m.SessionID) != SessionIDLen {
		return fmt.Errorf("sessionId must be %d bytes", SessionIDLen)
	}
	return nil
}

// Repunch asks the server to send both sides of a session fresh candidates (as PeerSession
// messages with the same session id), after a direct path died.
type Repunch struct {
	SessionID []byte `json:"sessionId"`
}

func (*Repunch) MessageType() string { return "repunch" }
func (m *Repunch) Validate() error {
	if len(m.SessionID) != SessionIDLen {
		return fmt.Errorf("sessionId must be %d bytes", SessionIDLen)
	}
	return nil
}

// RelayStream opens the stream on which a client without UDP exchanges relayed packets with the
// server: each packet framed as a datagram (see WriteDatagram), relay header included.
type RelayStream struct{}

func (*RelayStream) MessageType() string { return "relayStream" }
func (*RelayStream) Validate() error     { return nil }

// WorkConn opens a pooled work connection (TCP+TLS, ALPN xp2p-work/1): the client whose
// control session has RunID proves the key of that session (exported from the control
// session's TLS, known only to the client and the server it logged in to), bound to this
// connection's TLS session. The server answers WorkConnResult with its own proof, and only then
// does the connection wait, idle, for the server to write a WorkStream header on it.
type WorkConn struct {
	RunID string `json:"runId"`
	Proof []byte `json:"proof"`
}

func (*WorkConn) MessageType() string { return "workConn" }
func (m *WorkConn) Validate() error {
	if len(m.RunID) == 0 || len(m.RunID) > MaxNameLen {
		return errors.New("runId must have 1 to 128 characters")
	}
	if len(m.Proof) != proofLen {
		return fmt.Errorf("proof must be %d bytes", proofLen)
	}
	return nil
}

// WorkConnResult answers WorkConn: the server's proof of the control session's key, bound to
// this connection (the client takes no WorkStream before it checked it), or why not (Code).
type WorkConnResult struct {
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	Proof []byte `json:"proof,omitempty"`
}

func (*WorkConnResult) MessageType() string { return "workConnResult" }
func (m *WorkConnResult) Validate() error {
	if m.Code == "" && len(m.Proof) != proofLen {
		return fmt.Errorf("proof must be %d bytes", proofLen)
	}
	return nil
}

// Ping is the client's heartbeat on its control stream; the server answers with Pong. Besides
// proving the session alive in both directions (over TCP as over QUIC), it is large enough for a
// restarted server to answer an old QUIC session with a stateless reset (quic-go ignores packets
// under 43 bytes for that, QUIC keepalives among them).
type Ping struct {
	Seq uint64 `json:"seq"`
}

func (*Ping) MessageType() string { return "ping" }
func (*Ping) Validate() error     { return nil }

// Pong answers Ping.
type Pong struct {
	Seq uint64 `json:"seq"`
}

func (*Pong) MessageType() string { return "pong" }
func (*Pong) Validate() error     { return nil }

// NATReport tells the server what the client learned of its NAT after logging in (the NAT
// tests run in the background, so the first Login usually carries none).
type NATReport struct {
	NAT string `json:"nat"`
	// Mapped is the address the router maps to the client's socket ("" for none), MappedBy
	// the protocol that mapped it.
	Mapped   string `json:"mapped,omitempty"`
	MappedBy string `json:"mappedBy,omitempty"`
	// PrivateAddrs, when set, replace the LAN candidates of the login: the client's addresses
	// changed (it moved to another network).
	PrivateAddrs []string `json:"privateAddrs,omitempty"`
}

func (*NATReport) MessageType() string { return "natReport" }
func (m *NATReport) Validate() error {
	if err := validateNAT(m.NAT); err != nil {
		return err
	}
	if err := validateAddrs("privateAddrs", m.PrivateAddrs); err != nil {
		return err
	}
	return validateMapped(m.Mapped, m.MappedBy)
}

// validateMapped checks a router mapping's address and protocol (older clients send the
// address alone).
func validateMapped(addr, by string) error {
	if err := validateOptionalAddr("mapped", addr); err != nil {
		return err
	}
	if _, ok := portmap.ParseProtocol(by); by != "" && (!ok || addr == "") {
		return fmt.Errorf("mappedBy %q: want one of %v, with an address in mapped", by, portmap.Protocols)
	}
	return nil
}

// validateOptionalAddr checks an address:port field that may be empty.
func validateOptionalAddr(key, v string) error {
	if v == "" {
		return nil
	}
	if _, err := netip.ParseAddrPort(v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}
