// Package demo runs xp2p's main job on one machine with an embedded default configuration: a
// server, a provider publishing a built-in HTTP service (as a classic tcp proxy and as an xp2p
// service) and a visitor, then real requests through each path, with figures.
package demo

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/peer"
	"github.com/xp2p/xp2p/rendezvous"
)

// The embedded default configuration. Ports written as {{ .Envs.X }} are filled with free ports.
var (
	//go:embed server.toml
	serverTOML string
	//go:embed provider.toml
	providerTOML string
	//go:embed visitor.toml
	visitorTOML string
)

// Options tune the demo.
type Options struct {
	Requests int
	BulkMB   int
	Verbose  bool
}

// Run runs the demo, printing to out; the components' logs go to logw when Verbose.
func Run(ctx context.Context, opts Options, out, logw io.Writer) error {
	if opts.Requests <= 0 {
		opts.Requests = 200
	}
	if opts.BulkMB <= 0 {
		opts.BulkMB = 64
	}
	logOut := io.Discard
	if opts.Verbose {
		logOut = logw
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))

	svc, err := startService()
	if err != nil {
		return err
	}
	defer svc.Close()
	echo, err := startUDPEcho()
	if err != nil {
		return err
	}
	defer echo.Close()

	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	env := map[string]string{
		"SERVER_PORT":        strconv.Itoa(ports[0]),
		"SERVICE_PORT":       strconv.Itoa(svc.Addr().(*net.TCPAddr).Port),
		"REMOTE_PORT":        strconv.Itoa(ports[1]),
		"VISITOR_PORT":       strconv.Itoa(ports[2]),
		"RELAY_VISITOR_PORT": strconv.Itoa(ports[3]),
		"UDP_SERVICE_PORT":   strconv.Itoa(echo.LocalAddr().(*net.UDPAddr).Port),
		"UDP_VISITOR_PORT":   strconv.Itoa(ports[4]),
	}
	scfg, _, err := config.ParseServer("demo/server.toml", []byte(expand(serverTOML, env)))
	if err != nil {
		return err
	}
	pcfg, _, err := config.ParseClient("demo/provider.toml", []byte(expand(providerTOML, env)))
	if err != nil {
		return err
	}
	vcfg, _, err := config.ParseClient("demo/visitor.toml", []byte(expand(visitorTOML, env)))
	if err != nil {
		return err
	}
	// The demo keeps nothing: its server's identity and what its clients pin live in a
	// directory removed at the end.
	state, err := os.MkdirTemp("", "xp2p-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	scfg.StateDir = filepath.Join(state, "server")
	pcfg.StateDir = filepath.Join(state, "provider")
	vcfg.StateDir = filepath.Join(state, "visitor")

	srv, err := rendezvous.New(scfg, log.With("role", "server"))
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Close()
	provider, err := peer.New(pcfg, log.With("role", "provider"))
	if err != nil {
		return err
	}
	if err := provider.Start(); err != nil {
		return err
	}
	defer provider.Close()
	visitor, err := peer.New(vcfg, log.With("role", "visitor"))
	if err != nil {
		return err
	}
	if err := visitor.Start(); err != nil {
		return err
	}
	defer visitor.Close()

	fmt.Fprintf(out, "xp2p demo: a server, a provider and a visitor on this machine, over real UDP/TCP sockets, QUIC and TLS 1.3\n\n")
	fmt.Fprintf(out, "  server    127.0.0.1:%d (UDP and TCP), token auth\n", ports[0])
	fmt.Fprintf(out, "  service   http://%s (built-in, on the provider's side)\n", svc.Addr())
	fmt.Fprintf(out, "  provider  publishes it as tcp proxy \"web\" on server port %d and as xp2p service \"web-p2p\"\n", ports[1])
	fmt.Fprintf(out, "  udp       an echo service, published as xp2p udp service \"echo-udp\"\n")
	fmt.Fprintf(out, "  visitor   binds 127.0.0.1:%d, leading to \"web-p2p\" (and 127.0.0.1:%d, always relayed), and udp 127.0.0.1:%d to \"echo-udp\"\n\n", ports[2], ports[3], ports[4])

	proxyAddr := net.JoinHostPort("127.0.0.1", env["REMOTE_PORT"])
	visitorAddr := net.JoinHostPort("127.0.0.1", env["VISITOR_PORT"])
	if err := waitPort(ctx, proxyAddr, 10*time.Second); err != nil {
		return fmt.Errorf("tcp proxy did not come up: %w", err)
	}

	paths := []struct{ name, addr string }{
		{"direct to the service", svc.Addr().String()},
		{"tcp proxy via server", proxyAddr},
		{"xp2p P2P session", visitorAddr},
		{"xp2p session, relayed", net.JoinHostPort("127.0.0.1", env["RELAY_VISITOR_PORT"])},
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tfirst byte\trequests\tp50\tp99\tthroughput\tvs direct")
	var base float64
	for i, p := range paths {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := measure(ctx, p.addr, opts.Requests, opts.BulkMB)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if i == 0 {
			base = r.mbps
		}
		fmt.Fprintf(tw, "%s\t%s\t%d ok\t%s\t%s\t%.0f Mbit/s\t%.2f×\n", p.name, r.first.Round(time.Microsecond), r.ok,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.mbps, r.mbps/base)
	}
	tw.Flush()

	u, err := measureUDP(ctx, net.JoinHostPort("127.0.0.1", env["UDP_VISITOR_PORT"]), opts.Requests)
	if err != nil {
		return fmt.Errorf("udp over P2P: %w", err)
	}
	fmt.Fprintf(out, "\nudp over P2P (QUIC datagrams): %d of %d echoed, first answer %s, round trip p50 %s p99 %s\n",
		u.ok, opts.Requests, u.first.Round(time.Microsecond), u.p50.Round(time.Microsecond), u.p99.Round(time.Microsecond))

	fmt.Fprintln(out)
	for _, s := range visitor.Sessions() {
		fmt.Fprintf(out, "P2P session %s to %q: path %s\n", s.ID, s.Service, s.Path)
		if s.Remote != "" {
			// On one machine both ends share its address: the provider reported its interface
			// addresses as candidates, and the visitor's probe to one of them answered first.
			fmt.Fprintf(out, "  visitor  %-22s the visitor's UDP socket (this machine's address towards the provider)\n", s.Local)
			fmt.Fprintf(out, "  provider %-22s the provider's UDP socket, reached directly (a LAN address of this machine,\n", s.Remote)
			fmt.Fprintf(out, "  %31s one of the provider's candidates; across NATs: its public or LAN address)\n", "")
		} else {
			local := s.Local
			if host, port, err := net.SplitHostPort(local); err == nil && net.ParseIP(host).IsUnspecified() {
				local = "port " + port
			}
			fmt.Fprintf(out, "  visitor  %-22s the visitor's UDP socket; packets go through the server's relay\n", local)
		}
		toDirect := s.TimeToDirect.Round(time.Microsecond).String()
		if s.TimeToDirect == 0 {
			toDirect = "none (relayed)"
		}
		fmt.Fprintf(out, "  time to first byte %s (relayed through the server at first), time to direct path %s, RTT %s\n",
			s.TimeToReady.Round(time.Microsecond), toDirect, s.RTT.Round(time.Microsecond))
		fmt.Fprintf(out, "  bytes: %d on the direct path, %d through the relay", s.DirectBytes, s.RelayBytes)
		if s.Datagrams > 0 {
			fmt.Fprintf(out, "; %d QUIC datagrams", s.Datagrams)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out, "\nEverything is shut down when the demo ends. Run `xp2p demo -v` to see the components' logs.")
	return nil
}

func expand(tmpl string, env map[string]string) string {
	for k, v := range env {
		tmpl = strings.ReplaceAll(tmpl, "{{ .Envs."+k+" }}", v)
	}
	return tmpl
}

type result struct {
	first    time.Duration
	ok       int
	p50, p99 time.Duration
	mbps     float64
}

// measure opens one connection, times the first response, then N small requests on the same
// connection, then a bulk download on a fresh one.
func measure(ctx context.Context, addr string, n, bulkMB int) (result, error) {
	var r result
	start := time.Now()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func(path string) (int64, error) {
		req, _ := http.NewRequest("GET", "http://demo"+path, nil)
		if err := req.Write(conn); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return io.Copy(io.Discard, resp.Body)
	}
	if _, err := get("/hello"); err != nil {
		return r, fmt.Errorf("first request: %w", err)
	}
	r.first = time.Since(start)
	lat := make([]time.Duration, 0, n)
	for range n {
		t := time.Now()
		if _, err := get("/hello"); err != nil {
			return r, err
		}
		lat = append(lat, time.Since(t))
		r.ok++
	}
	r.p50, r.p99 = percentiles(lat)
	t := time.Now()
	got, err := get("/bytes/" + strconv.Itoa(bulkMB<<20))
	if err != nil {
		return r, err
	}
	if got != int64(bulkMB<<20) {
		return r, fmt.Errorf("bulk transfer: got %d of %d bytes", got, bulkMB<<20)
	}
	r.mbps = float64(got*8) / time.Since(t).Seconds() / 1e6
	return r, nil
}

// percentiles returns the median and the 99th percentile of lat, which it sorts.
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// measureUDP sends n datagrams of 1000 bytes one after the other through addr and waits for
// each echo (resending a lost one up to 5 times: UDP may drop).
func measureUDP(ctx context.Context, addr string, n int) (result, error) {
	var r result
	conn, err := (&net.Dialer{}).DialContext(ctx, "udp", addr)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	msg := make([]byte, 1000)
	buf := make([]byte, 2048)
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	for i := range n {
		copy(msg, fmt.Sprintf("datagram %06d ", i))
		t := time.Now()
		echoed := false
		for try := 0; try < 5 && !echoed && ctx.Err() == nil; try++ {
			if _, err := conn.Write(msg); err != nil {
				return r, err
			}
			conn.SetReadDeadline(time.Now().Add(time.Second))
			for {
				k, err := conn.Read(buf)
				if err != nil {
					break // timed out: send again
				}
				if bytes.Equal(buf[:k], msg) {
					echoed = true
					break
				}
			}
		}
		if !echoed {
			continue
		}
		if i == 0 {
			r.first = time.Since(start)
		}
		lat = append(lat, time.Since(t))
		r.ok++
	}
	if len(lat) == 0 {
		return r, fmt.Errorf("no datagram came back from %s", addr)
	}
	r.p50, r.p99 = percentiles(lat)
	return r, nil
}

// startUDPEcho starts the built-in udp echo service.
func startUDPEcho() (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	go func() { // ends when the demo closes the socket
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			c.WriteToUDP(buf[:n], from)
		}
	}()
	return c, nil
}

type service struct {
	ln  net.Listener
	srv *http.Server
}

func (s *service) Addr() net.Addr { return s.ln.Addr() }
func (s *service) Close()         { s.srv.Close() }

// startService starts the built-in HTTP service: /hello and /bytes/N.
func startService() (*service, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello from behind the NAT\n")
	})
	chunk := make([]byte, 256<<10)
	mux.HandleFunc("/bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n > 1<<30 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		for n > 0 {
			k := min(n, len(chunk))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	s := &service{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go s.srv.Serve(ln)
	return s, nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []io.Closer
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		// The server needs the UDP port free too.
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			ln.Close()
			continue
		}
		lns = append(lns, ln, u)
		ports = append(ports, port)
	}
	return ports, nil
}

func waitPort(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
