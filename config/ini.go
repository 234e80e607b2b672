package config

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// frp's legacy INI format ([common], server_addr = ..., a section per proxy), which frp still
// reads. xp2p reads it too: each INI key becomes its v1 key (frp's own conversion,
// pkg/config/legacy), and the document is decoded as the equivalent TOML, its errors named at
// the INI's lines. `xp2p verify -convert` prints that TOML, to move to it.
//
// The INI lines are read here rather than with an INI library: errors must name the line of
// each key, which the libraries do not keep, and frp's files use only sections, key = value
// and ;/# comments.

// iniKind says how an INI value is written in v1: a string, an integer, true/false, or a
// comma-separated list.
type iniKind byte

const (
	iniString iniKind = iota
	iniInt
	iniBool
	iniList
)

type iniKey struct {
	v1   string
	kind iniKind
}

var iniClientCommon = map[string]iniKey{
	"server_addr": {"serverAddr", iniString}, "server_port": {"serverPort", iniInt}, "user": {"user", iniString},
	"token": {"auth.token", iniString}, "authentication_method": {"auth.method", iniString},
	"log_file": {"log.to", iniString}, "log_level": {"log.level", iniString}, "log_max_days": {"log.maxDays", iniInt},
	"disable_log_color": {"log.disablePrintColor", iniBool},
	"admin_addr":        {"webServer.addr", iniString}, "admin_port": {"webServer.port", iniInt},
	"admin_user": {"webServer.user", iniString}, "admin_pwd": {"webServer.password", iniString},
	"assets_dir": {"webServer.assetsDir", iniString}, "pprof_enable": {"webServer.pprofEnable", iniBool},
	"pool_count": {"transport.poolCount", iniInt}, "tcp_mux": {"transport.tcpMux", iniBool},
	"tcp_mux_keepalive_interval": {"transport.tcpMuxKeepaliveInterval", iniInt},
	"protocol":                   {"transport.protocol", iniString}, "login_fail_exit": {"loginFailExit", iniBool},
	"heartbeat_interval": {"transport.heartbeatInterval", iniInt}, "heartbeat_timeout": {"transport.heartbeatTimeout", iniInt},
	"dial_server_timeout": {"transport.dialServerTimeout", iniInt}, "dial_server_keepalive": {"transport.dialServerKeepalive", iniInt},
	"connect_server_local_ip": {"transport.connectServerLocalIP", iniString}, "http_proxy": {"transport.proxyURL", iniString},
	"tls_enable": {"transport.tls.enable", iniBool}, "tls_cert_file": {"transport.tls.certFile", iniString},
	"tls_key_file": {"transport.tls.keyFile", iniString}, "tls_trusted_ca_file": {"transport.tls.trustedCaFile", iniString},
	"tls_server_name":               {"transport.tls.serverName", iniString},
	"disable_custom_tls_first_byte": {"transport.tls.disableCustomTLSFirstByte", iniBool},
	"nat_hole_stun_server":          {"natHoleStunServer", iniString}, "start": {"start", iniList},
	"udp_packet_size": {"udpPacketSize", iniInt}, "includes": {"includes", iniList},
}

var iniServerCommon = map[string]iniKey{
	"bind_addr": {"bindAddr", iniString}, "bind_port": {"bindPort", iniInt}, "kcp_bind_port": {"kcpBindPort", iniInt},
	"quic_bind_port": {"quicBindPort", iniInt}, "proxy_bind_addr": {"proxyBindAddr", iniString},
	"vhost_http_port": {"vhostHTTPPort", iniInt}, "vhost_https_port": {"vhostHTTPSPort", iniInt},
	"vhost_http_timeout": {"vhostHTTPTimeout", iniInt}, "tcpmux_httpconnect_port": {"tcpmuxHTTPConnectPort", iniInt},
	"tcpmux_passthrough": {"tcpmuxPassthrough", iniBool},
	"dashboard_addr":     {"webServer.addr", iniString}, "dashboard_port": {"webServer.port", iniInt},
	"dashboard_user": {"webServer.user", iniString}, "dashboard_pwd": {"webServer.password", iniString},
	"dashboard_tls_cert_file": {"webServer.tls.certFile", iniString}, "dashboard_tls_key_file": {"webServer.tls.keyFile", iniString},
	"assets_dir": {"webServer.assetsDir", iniString}, "pprof_enable": {"webServer.pprofEnable", iniBool},
	"enable_prometheus": {"enablePrometheus", iniBool},
	"log_file":          {"log.to", iniString}, "log_level": {"log.level", iniString}, "log_max_days": {"log.maxDays", iniInt},
	"disable_log_color": {"log.disablePrintColor", iniBool},
	"token":             {"auth.token", iniString}, "authentication_method": {"auth.method", iniString},
	"subdomain_host": {"subDomainHost", iniString}, "custom_404_page": {"custom404Page", iniString},
	"max_pool_count": {"transport.maxPoolCount", iniInt}, "max_ports_per_client": {"maxPortsPerClient", iniInt},
	"heartbeat_timeout": {"transport.heartbeatTimeout", iniInt}, "tcp_mux": {"transport.tcpMux", iniBool},
	"tcp_mux_keepalive_interval": {"transport.tcpMuxKeepaliveInterval", iniInt}, "tcp_keepalive": {"transport.tcpKeepalive", iniInt},
	"tls_only": {"transport.tls.force", iniBool}, "tls_cert_file": {"transport.tls.certFile", iniString},
	"tls_key_file": {"transport.tls.keyFile", iniString}, "tls_trusted_ca_file": {"transport.tls.trustedCaFile", iniString},
	"detailed_errors_to_client": {"detailedErrorsToClient", iniBool}, "udp_packet_size": {"udpPacketSize", iniInt},
	"nat_hole_analysis_data_reserve_hours": {"natholeAnalysisDataReserveHours", iniInt},
}

var iniProxy = map[string]iniKey{
	"type": {"type", iniString}, "local_ip": {"localIP", iniString}, "local_port": {"localPort", iniInt},
	"remote_port": {"remotePort", iniInt}, "use_encryption": {"transport.useEncryption", iniBool},
	"use_compression": {"transport.useCompression", iniBool}, "bandwidth_limit": {"transport.bandwidthLimit", iniString},
	"bandwidth_limit_mode":   {"transport.bandwidthLimitMode", iniString},
	"proxy_protocol_version": {"transport.proxyProtocolVersion", iniString},
	"group":                  {"loadBalancer.group", iniString}, "group_key": {"loadBalancer.groupKey", iniString},
	"health_check_type": {"healthCheck.type", iniString}, "health_check_timeout_s": {"healthCheck.timeoutSeconds", iniInt},
	"health_check_max_failed": {"healthCheck.maxFailed", iniInt}, "health_check_interval_s": {"healthCheck.intervalSeconds", iniInt},
	"health_check_url": {"healthCheck.path", iniString},
	"custom_domains":   {"customDomains", iniList}, "subdomain": {"subdomain", iniString}, "locations": {"locations", iniList},
	"http_user": {"httpUser", iniString}, "http_pwd": {"httpPassword", iniString},
	"host_header_rewrite": {"hostHeaderRewrite", iniString}, "route_by_http_user": {"routeByHTTPUser", iniString},
	"multiplexer": {"multiplexer", iniString}, "sk": {"secretKey", iniString}, "allow_users": {"allowUsers", iniList},
	"plugin":            {"plugin.type", iniString},
	"plugin_local_addr": {"plugin.localAddr", iniString}, "plugin_host_header_rewrite": {"plugin.hostHeaderRewrite", iniString},
	"plugin_crt_path": {"plugin.crtPath", iniString}, "plugin_key_path": {"plugin.keyPath", iniString},
	"plugin_http_user": {"plugin.httpUser", iniString}, "plugin_http_passwd": {"plugin.httpPassword", iniString},
	"plugin_user": {"plugin.username", iniString}, "plugin_passwd": {"plugin.password", iniString},
	"plugin_local_path": {"plugin.localPath", iniString}, "plugin_strip_prefix": {"plugin.stripPrefix", iniString},
	"plugin_unix_path": {"plugin.unixPath", iniString},
}

var iniVisitor = map[string]iniKey{
	"type": {"type", iniString}, "server_name": {"serverName", iniString}, "server_user": {"serverUser", iniString},
	"sk": {"secretKey", iniString}, "bind_addr": {"bindAddr", iniString}, "bind_port": {"bindPort", iniInt},
	"keep_tunnel_open": {"keepTunnelOpen", iniBool}, "max_retries_an_hour": {"maxRetriesAnHour", iniInt},
	"min_retry_interval": {"minRetryInterval", iniInt}, "fallback_to": {"fallbackTo", iniString},
	"fallback_timeout_ms": {"fallbackTimeoutMs", iniInt}, "use_encryption": {"transport.useEncryption", iniBool},
	"use_compression": {"transport.useCompression", iniBool}, "protocol": {"protocol", iniString},
}

// iniLine is one key = value of a section.
type iniLine struct {
	key, value string
	line, col  int // of the key
}

type iniSection struct {
	name  string
	line  int
	lines []iniLine
}

// IsLegacyINI reports whether data is frp's legacy INI format (a [common] section).
func IsLegacyINI(data []byte) bool {
	sections, err := readINI("", data)
	if err != nil {
		return false
	}
	for _, s := range sections {
		if s.name == "common" {
			return true
		}
	}
	return false
}

func readINI(name string, data []byte) ([]*iniSection, error) {
	var sections []*iniSection
	var cur *iniSection
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		text := strings.TrimSpace(raw)
		indent := len(raw) - len(strings.TrimLeft(raw, " \t")) + 1
		switch {
		case text == "" || text[0] == '#' || text[0] == ';':
		case text[0] == '[':
			end := strings.IndexByte(text, ']')
			if end < 0 {
				return nil, Errors{{File: name, Line: n, Column: indent, Msg: "syntax error: a section header needs its ]"}}
			}
			cur = &iniSection{name: strings.TrimSpace(text[1:end]), line: n}
			sections = append(sections, cur)
		default:
			k, v, ok := strings.Cut(text, "=")
			if !ok {
				return nil, Errors{{File: name, Line: n, Column: indent, Msg: "syntax error: expected key = value"}}
			}
			if cur == nil {
				return nil, Errors{{File: name, Line: n, Column: indent, Msg: "syntax error: a key before the first [section]"}}
			}
			cur.lines = append(cur.lines, iniLine{key: strings.TrimSpace(k), value: strings.TrimSpace(v), line: n, col: indent})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{File: name, Msg: err.Error()}
	}
	return sections, nil
}

// fromINI turns frp's legacy INI into the equivalent TOML and where each v1 key's INI line is.
// Whether it is a server's or a client's config is seen from its keys.
func fromINI(name string, data []byte) ([]byte, positions, error) {
	doc, pos, err := iniToV1(name, data)
	if err != nil {
		return nil, nil, err
	}
	return marshalTOML(name, doc, pos)
}

func iniToV1(name string, data []byte) (map[string]any, positions, error) {
	sections, err := readINI(name, data)
	if err != nil {
		return nil, nil, err
	}
	doc := map[string]any{}
	pos := positions{}
	var errs Errors
	server := true
	for _, s := range sections {
		if s.name != "common" {
			server = false // a server's INI has [common] only
		}
		for _, l := range s.lines {
			if s.name == "common" && (l.key == "server_addr" || l.key == "server_port") {
				server = false
			}
		}
	}
	var proxies, visitors []any
	for _, s := range sections {
		if s.name == "common" {
			table := iniClientCommon
			if server {
				table = iniServerCommon
			}
			errs = append(errs, iniSet(name, doc, "", pos, s, table, nil)...)
			continue
		}
		isVisitor := false
		for _, l := range s.lines {
			if l.key == "role" && l.value == "visitor" {
				isVisitor = true
			}
		}
		if isVisitor {
			key := "visitors[" + strconv.Itoa(len(visitors)) + "]"
			v := map[string]any{"name": s.name}
			pos[key] = [2]int{s.line, 1}
			pos[key+".name"] = [2]int{s.line, 2}
			errs = append(errs, iniSet(name, v, key, pos, s, iniVisitor, map[string]bool{"role": true})...)
			visitors = append(visitors, v)
			continue
		}
		base, isRange := strings.CutPrefix(s.name, "range:")
		if !isRange {
			key := "proxies[" + strconv.Itoa(len(proxies)) + "]"
			p := map[string]any{"name": s.name, "type": "tcp"} // frp's default type
			pos[key] = [2]int{s.line, 1}
			pos[key+".name"] = [2]int{s.line, 2}
			errs = append(errs, iniSet(name, p, key, pos, s, iniProxy, nil)...)
			proxies = append(proxies, p)
			continue
		}
		// [range:name] with local_port and remote_port ranges: one proxy per pair, name_0, ...
		var locals, remotes []int64
		var rangeErr error
		for _, l := range s.lines {
			switch l.key {
			case "local_port":
				if locals, rangeErr = parseNumberRange(l.value); rangeErr != nil {
					errs = append(errs, &Error{File: name, Line: l.line, Column: l.col, Key: l.key, Msg: rangeErr.Error()})
				}
			case "remote_port":
				if remotes, rangeErr = parseNumberRange(l.value); rangeErr != nil {
					errs = append(errs, &Error{File: name, Line: l.line, Column: l.col, Key: l.key, Msg: rangeErr.Error()})
				}
			}
		}
		if len(remotes) > 0 && len(locals) != len(remotes) {
			errs = append(errs, &Error{File: name, Line: s.line, Column: 1, Msg: fmt.Sprintf("[%s]: %d local ports but %d remote ports", s.name, len(locals), len(remotes))})
			continue
		}
		for i, lp := range locals {
			key := "proxies[" + strconv.Itoa(len(proxies)) + "]"
			p := map[string]any{"name": base + "_" + strconv.Itoa(i), "type": "tcp", "localPort": lp}
			if len(remotes) > 0 {
				p["remotePort"] = remotes[i]
			}
			pos[key] = [2]int{s.line, 1}
			errs = append(errs, iniSet(name, p, key, pos, s, iniProxy, map[string]bool{"local_port": true, "remote_port": true})...)
			proxies = append(proxies, p)
		}
	}
	if len(proxies) > 0 {
		doc["proxies"] = proxies
	}
	if len(visitors) > 0 {
		doc["visitors"] = visitors
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return doc, pos, nil
}

// iniSet writes a section's keys into m (under prefix in pos), by table; skip lists INI keys
// handled elsewhere. Keys meta_X are metadatas.X, header_X (proxies) requestHeaders.set.X,
// plugin_header_X plugin.requestHeaders.set.X. An empty value leaves the key unset, as frp does.
func iniSet(name string, m map[string]any, prefix string, pos positions, s *iniSection, table map[string]iniKey, skip map[string]bool) Errors {
	var errs Errors
	for _, l := range s.lines {
		if skip[l.key] || l.value == "" {
			continue
		}
		k, ok := table[l.key]
		switch {
		case ok:
		case strings.HasPrefix(l.key, "meta_"):
			k = iniKey{"metadatas." + strings.TrimPrefix(l.key, "meta_"), iniString}
		case strings.HasPrefix(l.key, "plugin_header_") && table["plugin"].v1 != "":
			k = iniKey{"plugin.requestHeaders.set." + strings.TrimPrefix(l.key, "plugin_header_"), iniString}
		case strings.HasPrefix(l.key, "header_") && table["host_header_rewrite"].v1 != "":
			k = iniKey{"requestHeaders.set." + strings.TrimPrefix(l.key, "header_"), iniString}
		default:
			msg := "unknown key of frp's INI format (section [" + s.name + "])"
			best, bestDist := "", 3
			for known := range table {
				if d := editDistance(known, l.key); d < bestDist || (d == bestDist && known < best) {
					best, bestDist = known, d
				}
			}
			if best != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", best)
			}
			errs = append(errs, &Error{File: name, Line: l.line, Column: l.col, Key: l.key, Msg: msg})
			continue
		}
		var v any = l.value
		switch k.kind {
		case iniInt:
			n, err := strconv.ParseInt(l.value, 10, 64)
			if err != nil {
				errs = append(errs, &Error{File: name, Line: l.line, Column: l.col, Key: l.key, Msg: fmt.Sprintf("expected an integer, got %q", l.value)})
				continue
			}
			v = n
		case iniBool:
			b, err := strconv.ParseBool(l.value)
			if err != nil {
				errs = append(errs, &Error{File: name, Line: l.line, Column: l.col, Key: l.key, Msg: fmt.Sprintf("expected true or false, got %q", l.value)})
				continue
			}
			v = b
		case iniList:
			var list []any
			for _, e := range strings.Split(l.value, ",") {
				if e = strings.TrimSpace(e); e != "" {
					list = append(list, e)
				}
			}
			v = list
		}
		setPath(m, k.v1, v)
		full := join(prefix, k.v1)
		for p := full; p != prefix && p != ""; p = parent(p) {
			if _, set := pos[p]; !set {
				pos[p] = [2]int{l.line, l.col}
			}
		}
		pos[full] = [2]int{l.line, l.col}
	}
	return errs
}

// setPath sets a dotted key path in nested maps ("auth.token").
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// ConvertToTOML returns the TOML equivalent (frp v1 keys) of a config in frp's legacy INI, YAML
// or JSON (as its name or, for INI, its content says); a TOML config as it is.
func ConvertToTOML(name string, data []byte) ([]byte, error) {
	rendered, err := renderTemplate(name, data)
	if err != nil {
		return nil, err
	}
	switch format := detectFormat(name, rendered); format {
	case formatINI:
		out, _, err := fromINI(name, rendered)
		return out, err
	case formatYAML, formatJSON:
		out, _, err := toTOML(name, rendered, format)
		return out, err
	}
	return data, nil
}
