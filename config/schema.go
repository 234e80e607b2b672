// Package config owns xp2p's configuration files: the TOML schema of the server and the client
// (frp v1 key names wherever the features overlap), defaults, environment templating, and
// strict validation whose every error names the file, line, column and key.
package config

import "time"

// Server is the server's configuration (frps.toml).
type Server struct {
	BindAddr      string `toml:"bindAddr"`
	BindPort      int    `toml:"bindPort"`
	ProxyBindAddr string `toml:"proxyBindAddr"`

	Auth      Auth            `toml:"auth"`
	WebServer WebServer       `toml:"webServer"`
	Log       Log             `toml:"log"`
	Transport ServerTransport `toml:"transport"`

	// AllowPorts restricts the remote ports clients may take; empty allows all.
	AllowPorts []PortRange `toml:"allowPorts"`
	// MaxPortsPerClient (frp's; 0: no limit) and MaxProxiesPerClient (xp2p's; names of proxies
	// and xp2p services) bound what one client identity holds: one user from one source
	// address, whatever number of sessions it opens (rendezvous: quotas).
	MaxPortsPerClient   int  `toml:"maxPortsPerClient"`
	MaxProxiesPerClient int  `toml:"maxProxiesPerClient"`
	EnablePrometheus    bool `toml:"enablePrometheus"`
	// STUN is the address-discovery service on bindPort (xp2p nat, RFC 5780).
	STUN STUN `toml:"stun"`
	// StateDir holds what the server keeps across restarts: its identity key, whose
	// fingerprint clients pin (default: $STATE_DIRECTORY under systemd, else NAME.state beside
	// the config file NAME.toml; a relative path is relative to the config's directory).
	StateDir string `toml:"stateDir"`

	// The web ports (frp's): http proxies are served on VhostHTTPPort by host name and path,
	// https proxies on VhostHTTPSPort by the TLS server name (not terminated), tcpmux proxies
	// on TCPMuxHTTPConnectPort by the host of an HTTP CONNECT. 0 turns a port off.
	VhostHTTPPort         int `toml:"vhostHTTPPort"`
	VhostHTTPSPort        int `toml:"vhostHTTPSPort"`
	TCPMuxHTTPConnectPort int `toml:"tcpmuxHTTPConnectPort"`
	// TCPMuxPassthrough hands the CONNECT request itself to the client's service instead of
	// answering it.
	TCPMuxPassthrough bool `toml:"tcpmuxPassthrough"`
	// VhostHTTPTimeout (seconds, default 60) bounds the wait for a service's response header.
	VhostHTTPTimeout int `toml:"vhostHTTPTimeout"`
	// SubDomainHost is the domain a proxy's subdomain is put under ("example.com": subdomain
	// "nas" is nas.example.com).
	SubDomainHost string `toml:"subDomainHost"`
	// Custom404Page is an HTML file served for an unknown host or path.
	Custom404Page string `toml:"custom404Page"`
	custom404     []byte
	// ACME gets certificates for the http proxies' customDomains (not frp's): users then reach
	// them by https on vhostHTTPSPort, the server ending TLS.
	ACME ACME `toml:"acme"`

	// Accepted for frp compatibility and ignored (with a warning): features xp2p does not have.
	KCPBindPort                     int   `toml:"kcpBindPort" xp2p:"ignored"`
	QUICBindPort                    int   `toml:"quicBindPort" xp2p:"ignored"`
	DetailedErrorsToClient          *bool `toml:"detailedErrorsToClient" xp2p:"ignored"`
	UDPPacketSize                   int   `toml:"udpPacketSize" xp2p:"ignored"`
	NatholeAnalysisDataReserveHours int   `toml:"natholeAnalysisDataReserveHours" xp2p:"ignored"`
}

// ACME is the server's certificates for http proxies' host names, from an ACME CA.
type ACME struct {
	Enable bool   `toml:"enable"`
	Email  string `toml:"email"`
	// CAURL is the CA's directory (default Let's Encrypt's); CARootsFile the PEM roots its
	// directory is trusted by, for a private CA.
	CAURL       string `toml:"caURL"`
	CARootsFile string `toml:"caRootsFile"`
	// Storage keeps the account and certificates (default stateDir/acme).
	Storage string `toml:"storage"`
}

// STUN tunes the server's STUN service. Binding requests are answered on bindPort; the NAT
// behaviour tests of RFC 5780 also need answers from a second port, and for the full set a
// second address of the host.
type STUN struct {
	// AltPort is the second UDP port (default bindPort+1; -1 turns it off).
	AltPort int `toml:"altPort"`
	// AltAddr is a second IP address of this host ("" for none). It needs bindAddr 0.0.0.0.
	AltAddr string `toml:"altAddr"`
}

// Auth is the shared-secret authentication of clients.
type Auth struct {
	Method string `toml:"method"`
	Token  string `toml:"token"`
	// TokenSource reads the token from elsewhere (frp's): type "file" with file.path, so that
	// the config holds no secret (e.g. a systemd credential).
	TokenSource      *ValueSource `toml:"tokenSource"`
	AdditionalScopes []string     `toml:"additionalScopes" xp2p:"ignored"`
}

// ValueSource is where a secret comes from (frp's ValueSource; xp2p reads files).
type ValueSource struct {
	Type string      `toml:"type"`
	File *FileSource `toml:"file"`
	Exec *ExecSource `toml:"exec"`
}

// FileSource names the file a value is read from (surrounding white space is dropped).
type FileSource struct {
	Path string `toml:"path"`
}

// ExecSource is frp's value from a program; xp2p refuses it with a clear error.
type ExecSource struct {
	Command string   `toml:"command"`
	Args    []string `toml:"args"`
}

// WebServer is the dashboard (server) or admin endpoint (client).
type WebServer struct {
	Addr        string `toml:"addr"`
	Port        int    `toml:"port"`
	User        string `toml:"user"`
	Password    string `toml:"password"`
	TLS         WebTLS `toml:"tls"`
	PprofEnable bool   `toml:"pprofEnable"`
	AssetsDir   string `toml:"assetsDir" xp2p:"ignored"`
}

// WebTLS serves the web server over HTTPS when both files are set.
type WebTLS struct {
	CertFile string `toml:"certFile"`
	KeyFile  string `toml:"keyFile"`
}

// Log configures logging (to stderr via log/slog).
type Log struct {
	To                string `toml:"to"`
	Level             string `toml:"level"`
	MaxDays           int    `toml:"maxDays" xp2p:"ignored"`
	DisablePrintColor bool   `toml:"disablePrintColor" xp2p:"ignored"`
}

// PortRange is one entry of allowPorts: {start, end} or {single}.
type PortRange struct {
	Start  int `toml:"start"`
	End    int `toml:"end"`
	Single int `toml:"single"`
}

// ServerTransport tunes the server's sessions.
type ServerTransport struct {
	// HeartbeatTimeout (seconds) drops a client that has been silent this long.
	HeartbeatTimeout int       `toml:"heartbeatTimeout"`
	TLS              ServerTLS `toml:"tls"`
	// RelayBandwidthLimit caps relayed P2P traffic per session, e.g. "10MB" (per second); "" is unlimited.
	RelayBandwidthLimit string `toml:"relayBandwidthLimit"`
	// MaxRelaySessions caps concurrent relayed P2P sessions per client.
	MaxRelaySessions int `toml:"maxRelaySessions"`

	// MaxPoolCount caps the idle work connections the server keeps per client (default 32).
	MaxPoolCount            int   `toml:"maxPoolCount"`
	TCPMux                  *bool `toml:"tcpMux" xp2p:"ignored" why:"xp2p always multiplexes (QUIC, or yamux over TLS on TCP)"`
	TCPMuxKeepaliveInterval int   `toml:"tcpMuxKeepaliveInterval" xp2p:"ignored"`
	TCPKeepAlive            int   `toml:"tcpKeepalive" xp2p:"ignored"`
}

// ServerTLS is the server's certificate; without one it generates its own.
type ServerTLS struct {
	Force         bool   `toml:"force" xp2p:"ignored"`
	CertFile      string `toml:"certFile"`
	KeyFile       string `toml:"keyFile"`
	TrustedCaFile string `toml:"trustedCaFile" xp2p:"ignored"`
}

// Client is a client's configuration (frpc.toml).
type Client struct {
	ServerAddr string `toml:"serverAddr"`
	ServerPort int    `toml:"serverPort"`
	// Servers lists further servers: proxies register on every server, visitors rendezvous on
	// the best one (see servers.go).
	Servers []ServerEndpoint `toml:"servers"`
	User    string           `toml:"user"`
	// LoginFailExit makes a refused login (wrong token) end the process instead of retrying.
	LoginFailExit *bool `toml:"loginFailExit"`
	// StateDir holds what the client keeps across restarts: the servers' identity keys it
	// trusts on first use, and their login tickets (default as for the server).
	StateDir string `toml:"stateDir"`

	Auth      Auth            `toml:"auth"`
	Transport ClientTransport `toml:"transport"`
	Log       Log             `toml:"log"`
	WebServer WebServer       `toml:"webServer"`

	Proxies  []Proxy   `toml:"proxies"`
	Visitors []Visitor `toml:"visitors"`

	// Start limits which proxies and visitors run (frp's start); empty runs all.
	Start []string `toml:"start"`

	// Includes names more files of [[proxies]] and [[visitors]] (frp's includes): glob patterns,
	// relative to this file's directory.
	Includes []string `toml:"includes"`
	// NatHoleStunServer is the STUN server (host:port) of the NAT tests; default: the first
	// server's bindPort. Any RFC 5780 server gives the full result.
	NatHoleStunServer string            `toml:"natHoleStunServer"`
	UDPPacketSize     int               `toml:"udpPacketSize" xp2p:"ignored"`
	Metadatas         map[string]string `toml:"metadatas"`

	// included are the files Includes matched, in order; their entries follow this file's own
	// in Proxies and Visitors.
	included []includedFile
}

// includedFile is one file of proxies and visitors that a client config includes.
type includedFile struct {
	file              string
	pos               positions
	proxies, visitors int
}

// includeDoc is what an included file may hold.
type includeDoc struct {
	Proxies  []Proxy   `toml:"proxies"`
	Visitors []Visitor `toml:"visitors"`
}

// ClientTransport tunes the client's session to the server and its P2P paths.
type ClientTransport struct {
	// Protocol is "auto" (QUIC, falling back to TCP), "quic" or "tcp".
	Protocol string `toml:"protocol"`
	// HeartbeatInterval (seconds) paces keepalives on the server session.
	HeartbeatInterval int `toml:"heartbeatInterval"`
	// HeartbeatTimeout (seconds) declares the server session dead after this much silence.
	HeartbeatTimeout int `toml:"heartbeatTimeout"`
	// DialServerTimeout (seconds) bounds one connection attempt.
	DialServerTimeout int       `toml:"dialServerTimeout"`
	TLS               ClientTLS `toml:"tls"`
	// P2PKeepalive (seconds) paces keepalives on a direct P2P path; keep it under the NATs' UDP timeout.
	P2PKeepalive int `toml:"p2pKeepalive"`
	// DisableP2P makes every xp2p session relay through the server (frp's stcp).
	DisableP2P bool `toml:"disableP2P"`
	// DisableTCPPath keeps a session's streams on QUIC: no direct TCP path is punched beside it.
	DisableTCPPath bool `toml:"disableTCPPath"`
	// NATDiscovery measures the NAT's behaviour at start and every 30 minutes (default true):
	// the dashboard shows it and P2P sessions choose their strategy by it.
	NATDiscovery *bool `toml:"natDiscovery"`
	// PortMapping asks the router for a mapping of the UDP socket's port, in PCP, NAT-PMP or
	// UPnP-IGD, whichever it speaks (default false): peers then reach it directly whatever
	// the NAT's filtering.
	PortMapping bool `toml:"portMapping"`
	// PortMappingGateway is the router's address ("" for the default route's gateway).
	PortMappingGateway string `toml:"portMappingGateway"`
	// UDPPort fixes the local port of the client's UDP socket (0 picks one).
	UDPPort int `toml:"udpPort"`

	// PoolCount is how many idle TCP work connections the client keeps per server for its tcp
	// proxies (default 8; -1: none, every user connection rides a session stream). Refills are
	// paced (200 handshakes/s): beyond that, users ride session streams.
	PoolCount            int    `toml:"poolCount"`
	TCPMux               *bool  `toml:"tcpMux" xp2p:"ignored" why:"xp2p always multiplexes (QUIC, or yamux over TLS on TCP)"`
	TCPMuxKeepalive      int    `toml:"tcpMuxKeepaliveInterval" xp2p:"ignored"`
	ConnectServerLocalIP string `toml:"connectServerLocalIP" xp2p:"ignored"`
	ProxyURL             string `toml:"proxyURL" xp2p:"ignored"`
	DialServerKeepAlive  int    `toml:"dialServerKeepalive" xp2p:"ignored"`
}

// ClientTLS: the control session is always TLS 1.3; these keys pin the server's certificate.
type ClientTLS struct {
	Enable        *bool  `toml:"enable" xp2p:"ignored" why:"the session to the server is always TLS 1.3"`
	TrustedCaFile string `toml:"trustedCaFile"`
	ServerName    string `toml:"serverName"`
	// ServerFingerprint pins the first server's identity key ("SHA256:...", as xp2p server
	// prints it at start) instead of trusting it on first use.
	ServerFingerprint         string `toml:"serverFingerprint"`
	CertFile                  string `toml:"certFile" xp2p:"ignored"`
	KeyFile                   string `toml:"keyFile" xp2p:"ignored"`
	DisableCustomTLSFirstByte *bool  `toml:"disableCustomTLSFirstByte" xp2p:"ignored"`
}

// Proxy is one [[proxies]] entry: a local service to publish.
type Proxy struct {
	Name       string `toml:"name"`
	Type       string `toml:"type"`
	LocalIP    string `toml:"localIP"`
	LocalPort  int    `toml:"localPort"`
	RemotePort int    `toml:"remotePort"`
	// SecretKey authenticates visitors of an xp2p service.
	SecretKey string `toml:"secretKey"`
	// Protocol of an xp2p service: "tcp" (default) or "udp".
	Protocol   string   `toml:"protocol"`
	AllowUsers []string `toml:"allowUsers"`

	// Web proxies (http, https, tcpmux; see proxytype_web.go): the host names users reach the
	// proxy by, and what the server does with their requests.
	CustomDomains     []string         `toml:"customDomains"`
	SubDomain         string           `toml:"subdomain"`
	Locations         []string         `toml:"locations"`
	HTTPUser          string           `toml:"httpUser"`
	HTTPPassword      string           `toml:"httpPassword"`
	HostHeaderRewrite string           `toml:"hostHeaderRewrite"`
	RequestHeaders    HeaderOperations `toml:"requestHeaders"`
	ResponseHeaders   HeaderOperations `toml:"responseHeaders"`
	RouteByHTTPUser   string           `toml:"routeByHTTPUser"`
	Multiplexer       string           `toml:"multiplexer"`

	// Plugin makes the client serve the proxy's users itself (socks5, static_file, ...)
	// instead of forwarding them to localIP:localPort.
	Plugin *PluginOptions `toml:"plugin"`

	Transport    ProxyTransport    `toml:"transport"`
	LoadBalancer LoadBalancer      `toml:"loadBalancer"`
	HealthCheck  HealthCheck       `toml:"healthCheck"`
	Annotations  map[string]string `toml:"annotations"`
	Metadatas    map[string]string `toml:"metadatas"`
}

// ProxyTransport: xp2p always encrypts, and does not compress.
type ProxyTransport struct {
	UseEncryption  bool `toml:"useEncryption" xp2p:"ignored" why:"xp2p always encrypts (TLS 1.3)"`
	UseCompression bool `toml:"useCompression" xp2p:"ignored" why:"xp2p does not compress: most traffic is compressed or encrypted already"`
	// BandwidthLimit caps a proxy's traffic, both directions together ("512KB", "10MB" per
	// second); BandwidthLimitMode says where: "client" (default) or "server" (tcp proxies).
	BandwidthLimit     string `toml:"bandwidthLimit"`
	BandwidthLimitMode string `toml:"bandwidthLimitMode"`
	// ProxyProtocolVersion ("v1" or "v2") makes the client send a PROXY protocol header to the
	// local service first, with the user's address (tcp proxies and tcp xp2p services).
	ProxyProtocolVersion string `toml:"proxyProtocolVersion"`
}

// HeaderOperations changes HTTP headers on the way through (frp's): set replaces a header.
type HeaderOperations struct {
	Set map[string]string `toml:"set"`
}

// LoadBalancer puts proxies of several clients behind one remote port (frp groups).
type LoadBalancer struct {
	Group    string `toml:"group"`
	GroupKey string `toml:"groupKey"`
}

// HealthCheck probes the local service (frp's): "tcp" connects, "http" expects a 2xx answer to
// GET path. After maxFailed failures in a row the proxy is withdrawn from the servers until a
// probe succeeds again.
type HealthCheck struct {
	Type            string `toml:"type"`
	TimeoutSeconds  int    `toml:"timeoutSeconds"`
	MaxFailed       int    `toml:"maxFailed"`
	IntervalSeconds int    `toml:"intervalSeconds"`
	Path            string `toml:"path"`
}

// Visitor is one [[visitors]] entry: a local port that leads to a provider's xp2p service.
type Visitor struct {
	Name       string `toml:"name"`
	Type       string `toml:"type"`
	ServerName string `toml:"serverName"`
	ServerUser string `toml:"serverUser"`
	SecretKey  string `toml:"secretKey"`
	BindAddr   string `toml:"bindAddr"`
	BindPort   int    `toml:"bindPort"`
	// Protocol of the service behind: "tcp" (default), "udp", or "http": an HTTP service the
	// bind port fronts, which several http visitors may share (told apart by customDomains).
	Protocol string `toml:"protocol"`
	// http visitors: the host names (none: every host), paths and headers, as on the server's
	// vhostHTTPPort.
	CustomDomains     []string         `toml:"customDomains"`
	Locations         []string         `toml:"locations"`
	HostHeaderRewrite string           `toml:"hostHeaderRewrite"`
	RequestHeaders    HeaderOperations `toml:"requestHeaders"`
	ResponseHeaders   HeaderOperations `toml:"responseHeaders"`

	KeepTunnelOpen    bool           `toml:"keepTunnelOpen"`
	MaxRetriesAnHour  int            `toml:"maxRetriesAnHour" xp2p:"ignored"`
	MinRetryInterval  int            `toml:"minRetryInterval" xp2p:"ignored"`
	FallbackTo        string         `toml:"fallbackTo" xp2p:"ignored" why:"an xp2p session is relayed from its first byte and moves to the direct path by itself"`
	FallbackTimeoutMs int            `toml:"fallbackTimeoutMs" xp2p:"ignored" why:"an xp2p session is relayed from its first byte and moves to the direct path by itself"`
	Transport         ProxyTransport `toml:"transport"`
}

// Proxy and visitor types as written in configs.
const (
	TypeTCP    = "tcp"
	TypeUDP    = "udp"
	TypeXP2P   = "xp2p"
	TypeXTCP   = "xtcp" // frp's P2P type: an alias of xp2p
	TypeSTCP   = "stcp" // frp's secret relay: xp2p with P2P off
	TypeSUDP   = "sudp" // frp's secret udp relay: xp2p udp with P2P off
	TypeHTTP   = "http"
	TypeHTTPS  = "https"
	TypeTCPMux = "tcpmux"
)

// Defaults.
const (
	DefaultBindPort = 7000
	// DefaultMaxProxiesPerClient: a generous home or office (the benchmarks run 1000 proxies
	// on one client) at about 1 KiB of server memory each.
	DefaultMaxProxiesPerClient = 1000
	// DefaultHeartbeatInterval paces the keepalives of a client's session to the server: often
	// enough for every NAT whose UDP mappings live 30 s or more (Linux conntrack's timeout of
	// an unanswered flow; answered ones live 120 s), rarely enough that a thousand idle clients
	// cost the server little (on QUIC each keepalive is a packet in and an ACK out). Clients
	// with tcp proxies learn of a restarted server at once anyway (their work connection).
	DefaultHeartbeatInterval = 20
	DefaultHeartbeatTimeout  = 30
	DefaultDialTimeout       = 10
	DefaultP2PKeepalive      = 10
	DefaultClientAdminPort   = 7400
)

// HeartbeatInterval returns the keepalive period of the server session.
func (c *Client) HeartbeatInterval() time.Duration {
	return time.Duration(c.Transport.HeartbeatInterval) * time.Second
}

// HeartbeatTimeout returns the idle timeout of the server session.
func (c *Client) HeartbeatTimeout() time.Duration {
	return time.Duration(c.Transport.HeartbeatTimeout) * time.Second
}
