package config

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

var logLevels = map[string]bool{"": true, "trace": true, "debug": true, "info": true, "warn": true, "error": true}

// complete applies defaults and validates a server config.
func (c *Server) complete(file string, pos positions) error {
	l := &errorList{file: file, pos: pos}
	c.StateDir = stateDir(file, c.StateDir)
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	checkIP(l, "bindAddr", c.BindAddr)
	if c.BindPort == 0 && !pos.has("bindPort") {
		c.BindPort = DefaultBindPort
	}
	checkPort(l, "bindPort", c.BindPort, false)
	if c.ProxyBindAddr == "" {
		c.ProxyBindAddr = c.BindAddr
	}
	checkIP(l, "proxyBindAddr", c.ProxyBindAddr)
	checkAuth(l, &c.Auth)
	checkWebServer(l, &c.WebServer)
	checkLog(l, &c.Log)
	c.checkSTUN(l, pos)
	c.checkWeb(l)
	for i, r := range c.AllowPorts {
		key := "allowPorts[" + strconv.Itoa(i) + "]"
		switch {
		case r.Single != 0 && (r.Start != 0 || r.End != 0):
			l.at(key, "set either single or start/end, not both")
		case r.Single != 0:
			checkPort(l, key+".single", r.Single, false)
		case r.Start == 0 && r.End == 0:
			l.at(key, "empty range: set single, or start and end")
		default:
			checkPort(l, key+".start", r.Start, false)
			checkPort(l, key+".end", r.End, false)
			if r.End < r.Start {
				l.at(key+".end", "end %d is below start %d", r.End, r.Start)
			}
		}
	}
	if c.MaxPortsPerClient < 0 {
		l.at("maxPortsPerClient", "must not be negative")
	}
	switch {
	case c.MaxProxiesPerClient < 0:
		l.at("maxProxiesPerClient", "must not be negative")
	case c.MaxProxiesPerClient == 0:
		c.MaxProxiesPerClient = DefaultMaxProxiesPerClient
	}
	if c.Transport.HeartbeatTimeout < 0 {
		l.at("transport.heartbeatTimeout", "must not be negative")
	}
	if c.Transport.HeartbeatTimeout == 0 {
		c.Transport.HeartbeatTimeout = 40
	}
	if c.Transport.MaxRelaySessions < 0 {
		l.at("transport.maxRelaySessions", "must not be negative")
	}
	if c.Transport.MaxRelaySessions == 0 {
		c.Transport.MaxRelaySessions = 64
	}
	if c.Transport.RelayBandwidthLimit != "" {
		if _, err := ParseBandwidth(c.Transport.RelayBandwidthLimit); err != nil {
			l.at("transport.relayBandwidthLimit", "%v", err)
		}
	}
	if (c.Transport.TLS.CertFile == "") != (c.Transport.TLS.KeyFile == "") {
		l.at("transport.tls", "certFile and keyFile must be set together")
	}
	return l.err()
}

func (c *Server) checkSTUN(l *errorList, pos positions) {
	st := &c.STUN
	switch {
	case st.AltPort == 0 && !pos.has("stun.altPort"):
		if c.BindPort > 0 && c.BindPort < 65535 {
			st.AltPort = c.BindPort + 1
		}
	case st.AltPort == -1:
	case st.AltPort != 0 && st.AltPort == c.BindPort:
		l.at("stun.altPort", "must differ from bindPort %d", c.BindPort)
	default:
		checkPort(l, "stun.altPort", st.AltPort, false)
	}
	if st.AltAddr == "" {
		return
	}
	alt, err := netip.ParseAddr(st.AltAddr)
	if err != nil {
		l.at("stun.altAddr", "%q is not an IP address", st.AltAddr)
		return
	}
	if bind, err := netip.ParseAddr(c.BindAddr); err == nil && !bind.IsUnspecified() {
		l.at("stun.altAddr", "needs bindAddr 0.0.0.0 (or ::): the server answers from both addresses on one socket, bindAddr is %s", c.BindAddr)
	} else if alt.IsUnspecified() || alt.IsMulticast() {
		l.at("stun.altAddr", "%s is not a unicast address", alt)
	}
}

// PortAllowed reports whether the server's allowPorts admit port (0 asks for any free port).
func (c *Server) PortAllowed(port int) bool {
	if len(c.AllowPorts) == 0 || port == 0 {
		return true
	}
	for _, r := range c.AllowPorts {
		if port == r.Single || (r.Single == 0 && port >= r.Start && port <= r.End) {
			return true
		}
	}
	return false
}

// complete applies defaults and validates a client config.
func (c *Client) complete(file string, pos positions) error {
	l := &errorList{file: file, pos: pos}
	c.StateDir = stateDir(file, c.StateDir)
	c.completeServers(l)
	checkAuth(l, &c.Auth)
	checkLog(l, &c.Log)
	if c.WebServer.Port != 0 && c.WebServer.Addr == "" {
		c.WebServer.Addr = "127.0.0.1"
	}
	checkWebServer(l, &c.WebServer)

	t := &c.Transport
	switch t.Protocol {
	case "":
		t.Protocol = "auto"
	case "auto", "quic", "tcp":
	case "kcp", "websocket", "wss":
		l.at("transport.protocol", "%q is an frp transport that xp2p does not have; use \"auto\" (QUIC with TCP fallback), \"quic\" or \"tcp\"", t.Protocol)
	default:
		l.at("transport.protocol", "unknown protocol %q; use \"auto\", \"quic\" or \"tcp\"", t.Protocol)
	}
	defaultSeconds(l, "transport.heartbeatInterval", &t.HeartbeatInterval, DefaultHeartbeatInterval)
	defaultSeconds(l, "transport.heartbeatTimeout", &t.HeartbeatTimeout, DefaultHeartbeatTimeout)
	defaultSeconds(l, "transport.dialServerTimeout", &t.DialServerTimeout, DefaultDialTimeout)
	defaultSeconds(l, "transport.p2pKeepalive", &t.P2PKeepalive, DefaultP2PKeepalive)
	if t.HeartbeatInterval >= t.HeartbeatTimeout {
		l.at("transport.heartbeatInterval", "%d s must be below transport.heartbeatTimeout (%d s)", t.HeartbeatInterval, t.HeartbeatTimeout)
	}
	if t.UDPPort != 0 {
		checkPort(l, "transport.udpPort", t.UDPPort, false)
	}
	if t.PortMappingGateway != "" {
		checkIP(l, "transport.portMappingGateway", t.PortMappingGateway)
	}
	if c.NatHoleStunServer != "" {
		if _, _, err := net.SplitHostPort(c.NatHoleStunServer); err != nil {
			l.at("natHoleStunServer", "%q is not HOST:PORT", c.NatHoleStunServer)
		}
	}
	if (t.TLS.TrustedCaFile != "") && t.TLS.ServerName == "" {
		t.TLS.ServerName = c.ServerAddr
	}

	// Each file's entries are checked against that file's positions (an included file's
	// errors name it and its lines); names and bound ports must be unique across all files.
	names := map[string]string{}
	binds := map[string]string{}
	nextProxy, nextVisitor := 0, 0
	check := func(l *errorList, proxies, visitors int) {
		for i := range proxies {
			c.Proxies[nextProxy].complete(l, "proxies["+strconv.Itoa(i)+"]", names)
			nextProxy++
		}
		for i := range visitors {
			c.Visitors[nextVisitor].complete(l, "visitors["+strconv.Itoa(i)+"]", names, binds)
			nextVisitor++
		}
	}
	if len(c.included) > 0 {
		l.label = file + ": "
	}
	ownProxies, ownVisitors := len(c.Proxies), len(c.Visitors)
	for _, inc := range c.included {
		ownProxies -= inc.proxies
		ownVisitors -= inc.visitors
	}
	check(l, ownProxies, ownVisitors)
	for _, inc := range c.included {
		il := &errorList{file: inc.file, pos: inc.pos, label: inc.file + ": "}
		check(il, inc.proxies, inc.visitors)
		l.errs = append(l.errs, il.errs...)
	}
	for i, s := range c.Start {
		if _, ok := names[s]; !ok {
			l.at("start["+strconv.Itoa(i)+"]", "no proxy or visitor is named %q", s)
		}
	}
	return l.err()
}

func (p *Proxy) complete(l *errorList, key string, names map[string]string) {
	if p.Name == "" {
		l.at(key+".name", "required")
	} else if prev, dup := names[p.Name]; dup {
		l.at(key+".name", "%q is already the name of %s", p.Name, prev)
	} else {
		names[p.Name] = l.label + key
	}
	typ := p.ProxyType()
	switch {
	case typ != nil:
		checkWebKeys(l, key, p, typ)
		typ.check(l, key, p)
	case p.Type == "":
		l.at(key+".type", "required: %s", typeList(func(*ProxyType) bool { return true }))
	default:
		l.at(key+".type", "unknown type %q; use %s", p.Type, typeList(func(*ProxyType) bool { return true }))
	}
	if p.LocalIP == "" {
		p.LocalIP = "127.0.0.1"
	}
	if strings.ContainsAny(p.LocalIP, " /:") && net.ParseIP(p.LocalIP) == nil {
		l.at(key+".localIP", "%q is not a host name or IP address", p.LocalIP)
	}
	switch {
	case p.Plugin != nil:
		// The plugin is the service: localIP and localPort are not used (frp ignores them too).
		if p.LocalPort != 0 {
			checkPort(l, key+".localPort", p.LocalPort, false)
		}
	case p.LocalPort == 0 && !l.pos.has(key+".localPort"):
		l.at(key+".localPort", "required: the port of the local service (or a [proxies.plugin])")
	default:
		checkPort(l, key+".localPort", p.LocalPort, false)
	}
	if p.LoadBalancer.Group != "" && typ != nil && !typ.Groups {
		l.at(key+".loadBalancer.group", "load balancing groups are for %s proxies", typeList(func(t *ProxyType) bool { return t.Groups }))
	}
	if p.LoadBalancer.GroupKey != "" && p.LoadBalancer.Group == "" {
		l.at(key+".loadBalancer.groupKey", "set loadBalancer.group too")
	}
	if bw := p.Transport.BandwidthLimit; bw != "" {
		if _, err := ParseBandwidth(bw); err != nil {
			l.at(key+".transport.bandwidthLimit", "%v", err)
		}
	}
	switch m := p.Transport.BandwidthLimitMode; m {
	case "", "client":
	case "server":
		if typ != nil && !typ.ServerLimit {
			l.at(key+".transport.bandwidthLimitMode", "\"server\" is for tcp proxies (a %s service's traffic does not pass the server's limiter); use \"client\"", p.Type)
		}
	default:
		l.at(key+".transport.bandwidthLimitMode", "unknown mode %q; use \"client\" or \"server\"", m)
	}
	udp := p.Network() == "udp"
	switch hc := &p.HealthCheck; hc.Type {
	case "":
	case "tcp", "http":
		if udp {
			l.at(key+".healthCheck.type", "a %s check cannot probe a udp service", hc.Type)
		}
		if hc.Type == "http" && hc.Path == "" {
			hc.Path = "/"
		}
		if hc.Type == "http" && !strings.HasPrefix(hc.Path, "/") {
			l.at(key+".healthCheck.path", "%q must start with /", hc.Path)
		}
		positive := func(k string, v *int, def int) {
			switch {
			case *v < 0:
				l.at(key+".healthCheck."+k, "must not be negative")
			case *v == 0:
				*v = def
			}
		}
		positive("timeoutSeconds", &hc.TimeoutSeconds, 3)
		positive("maxFailed", &hc.MaxFailed, 1)
		positive("intervalSeconds", &hc.IntervalSeconds, 10)
	default:
		l.at(key+".healthCheck.type", "unknown type %q; use \"tcp\" or \"http\"", hc.Type)
	}
	switch v := p.Transport.ProxyProtocolVersion; {
	case v == "":
	case v != "v1" && v != "v2":
		l.at(key+".transport.proxyProtocolVersion", "unknown version %q; use \"v1\" or \"v2\"", v)
	case udp:
		l.at(key+".transport.proxyProtocolVersion", "the PROXY protocol is for tcp services; this one is udp")
	}
	if p.Plugin != nil {
		checkPlugin(l, key+".plugin", p)
	}
}

func (v *Visitor) complete(l *errorList, key string, names, binds map[string]string) {
	if v.Name == "" {
		l.at(key+".name", "required")
	} else if prev, dup := names[v.Name]; dup {
		l.at(key+".name", "%q is already the name of %s", v.Name, prev)
	} else {
		names[v.Name] = l.label + key
	}
	switch typ := v.ProxyType(); {
	case typ != nil && typ.P2P:
	case v.Type == "":
		l.at(key+".type", "required: xp2p")
	default:
		l.at(key+".type", "unknown visitor type %q; use xp2p (or frp's xtcp, stcp, sudp)", v.Type)
	}
	if v.Protocol == "http" {
		v.checkHTTP(l, key)
	} else {
		checkProtocol(l, key+".protocol", &v.Protocol, v.Type)
		for _, k := range visitorWebKeys {
			if l.pos.has(key + "." + k) {
				l.at(key+"."+k, "for http visitors (protocol = \"http\")")
			}
		}
	}
	if v.ServerName == "" {
		l.at(key+".serverName", "required: the name of the provider's service")
	}
	if v.SecretKey == "" {
		l.at(key+".secretKey", "required: the provider's secretKey for %q", v.ServerName)
	}
	if v.BindAddr == "" {
		v.BindAddr = "127.0.0.1"
	}
	checkIP(l, key+".bindAddr", v.BindAddr)
	checkPort(l, key+".bindPort", v.BindPort, false)
	if v.Transport.BandwidthLimit != "" || v.Transport.BandwidthLimitMode != "" {
		l.at(key+".transport.bandwidthLimit", "set it on the provider's [[proxies]] entry")
	}
	if v.Transport.ProxyProtocolVersion != "" {
		l.at(key+".transport.proxyProtocolVersion", "set it on the provider's [[proxies]] entry: the provider talks to the service")
	}
	// http visitors share a port (told apart by customDomains); a tcp visitor has one alone.
	network := v.Protocol
	if network == "http" {
		network = "tcp"
	}
	addr := net.JoinHostPort(v.BindAddr, strconv.Itoa(v.BindPort))
	bind := network + " " + addr
	_, sharedHTTP := binds["http "+addr]
	if prev, dup := binds[bind]; dup && v.BindPort != 0 && !(v.Protocol == "http" && sharedHTTP) {
		l.at(key+".bindPort", "%s is already bound by %s", bind, prev)
	}
	binds[bind] = l.label + key
	if v.Protocol == "http" {
		binds["http "+addr] = l.label + key
	}
}

// visitorWebKeys are the keys of http visitors.
var visitorWebKeys = []string{"customDomains", "locations", "hostHeaderRewrite", "requestHeaders", "responseHeaders"}

// checkHTTP validates an http visitor: its bind port serves HTTP, requests routed by Host
// (customDomains; none: every host) to the provider's service over the P2P session.
func (v *Visitor) checkHTTP(l *errorList, key string) {
	if v.Type == TypeSUDP {
		l.at(key+".protocol", "a sudp service carries udp")
	}
	for i, d := range v.CustomDomains {
		v.CustomDomains[i] = strings.ToLower(strings.TrimSuffix(d, "."))
		if err := domainError(v.CustomDomains[i], true); err != "" {
			l.at(key+".customDomains["+strconv.Itoa(i)+"]", "%q %s", d, err)
		}
	}
	for i, loc := range v.Locations {
		if loc != "" && !strings.HasPrefix(loc, "/") {
			l.at(key+".locations["+strconv.Itoa(i)+"]", "%q must start with /", loc)
		}
	}
	if h := v.HostHeaderRewrite; h != "" && strings.ContainsAny(h, " \r\n/") {
		l.at(key+".hostHeaderRewrite", "%q is not a valid Host header", h)
	}
	checkHeaders(l, key+".requestHeaders.set", v.RequestHeaders.Set)
	checkHeaders(l, key+".responseHeaders.set", v.ResponseHeaders.Set)
}

func checkProtocol(l *errorList, key string, proto *string, typ string) {
	switch *proto {
	case "":
		*proto = "tcp"
		if typ == TypeSUDP {
			*proto = "udp"
		}
	case "tcp", "udp":
		if typ == TypeSUDP && *proto != "udp" {
			l.at(key, "a sudp service carries udp")
		}
	default:
		l.at(key, "unknown protocol %q; use tcp or udp", *proto)
	}
}

func checkAuth(l *errorList, a *Auth) {
	switch a.Method {
	case "", "token":
		a.Method = "token"
	case "oidc":
		l.at("auth.method", "oidc is not supported by xp2p; use token")
	default:
		l.at("auth.method", "unknown method %q; use token", a.Method)
	}
	src := a.TokenSource
	if src == nil {
		return
	}
	switch {
	case a.Token != "":
		l.at("auth.tokenSource", "set auth.token or auth.tokenSource, not both")
	case src.Type == "file" && (src.File == nil || src.File.Path == ""):
		l.at("auth.tokenSource.file.path", "required for tokenSource type \"file\"")
	case src.Type == "file":
		token, err := readSecretFile(src.File.Path)
		if err != nil {
			l.at("auth.tokenSource.file.path", "%v", err)
			return
		}
		a.Token = token
	case src.Type == "exec":
		l.at("auth.tokenSource.type", "\"exec\" is not supported by xp2p (it would run a program at every start); use \"file\"")
	default:
		l.at("auth.tokenSource.type", "unknown type %q; use \"file\"", src.Type)
	}
}

// maxSecretFile bounds what a token file may hold.
const maxSecretFile = 4096

// readSecretFile reads a token from a regular file (never a device or a pipe, which could block
// or never end), at most maxSecretFile bytes, surrounding white space dropped.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return "", err
	} else if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("%s holds more than %d bytes: not a token", path, maxSecretFile)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return token, nil
}

func checkWebServer(l *errorList, w *WebServer) {
	if w.Port == 0 {
		return
	}
	checkPort(l, "webServer.port", w.Port, false)
	if w.Addr == "" {
		w.Addr = "127.0.0.1"
	}
	checkIP(l, "webServer.addr", w.Addr)
	if (w.TLS.CertFile == "") != (w.TLS.KeyFile == "") {
		l.at("webServer.tls", "certFile and keyFile must be set together")
	}
}

func checkLog(l *errorList, lg *Log) {
	if !logLevels[strings.ToLower(lg.Level)] {
		l.at("log.level", "unknown level %q; use trace, debug, info, warn or error", lg.Level)
	}
	switch lg.To {
	case "", "console", "stderr", "stdout":
	default:
		// frp writes to a file; xp2p logs to stderr and leaves files to systemd/journald.
	}
}

func checkIP(l *errorList, key, v string) {
	if _, err := netip.ParseAddr(v); err != nil {
		l.at(key, "%q is not an IP address", v)
	}
}

// checkPort checks a port number; zeroOK allows 0 (meaning "any free port").
func checkPort(l *errorList, key string, p int, zeroOK bool) {
	low := 1
	if zeroOK {
		low = 0
	}
	if p < low || p > 65535 {
		l.at(key, "port %d is out of range %d-65535", p, low)
	}
}

func defaultSeconds(l *errorList, key string, v *int, def int) {
	switch {
	case *v < 0:
		// frp uses -1 for "off"; xp2p always keeps its sessions alive, so this means the default.
		*v = def
	case *v == 0:
		*v = def
	case *v > 24*3600:
		l.at(key, "%d seconds is more than a day", *v)
	}
}

// BandwidthBytes is the proxy's bandwidthLimit in bytes per second (0: none); mode is where
// it applies, "client" or "server".
func (p *Proxy) BandwidthBytes() (perSecond int64, mode string) {
	n, _ := ParseBandwidth(p.Transport.BandwidthLimit) // validated
	mode = p.Transport.BandwidthLimitMode
	if mode == "" {
		mode = "client"
	}
	return n, mode
}

// ParseBandwidth parses "10MB", "512KB" (bytes per second) into bytes per second.
func ParseBandwidth(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "MB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MB")
	case strings.HasSuffix(s, "KB"):
		mult, s = 1<<10, strings.TrimSuffix(s, "KB")
	default:
		return 0, fmt.Errorf("%q: use a number with KB or MB, e.g. \"10MB\"", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: not a positive number", s)
	}
	return n * mult, nil
}

// stateDir resolves a stateDir key of the config file: a relative path is relative to the
// file's directory; unset, it is systemd's $STATE_DIRECTORY (StateDirectory= in the unit) if
// set, else NAME.state beside NAME.toml. Nothing is created here (xp2p verify writes nothing).
func stateDir(file, v string) string {
	switch {
	case v != "" && filepath.IsAbs(v):
		return v
	case v != "":
		return filepath.Join(filepath.Dir(file), v)
	}
	if sd := os.Getenv("STATE_DIRECTORY"); sd != "" {
		first, _, _ := strings.Cut(sd, ":")
		return first
	}
	return strings.TrimSuffix(file, filepath.Ext(file)) + ".state"
}
