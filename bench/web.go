//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// Section 7: an http proxy on the server's vhostHTTPPort (frp's http vhost and xp2p's), a web
// service behind an easy NAT, users on the public side asking for a 1 KiB page by host name.
const (
	webServicePort = 9080
	xp2pVhostPort  = 8081
	frpVhostPort   = 8180
	webHost        = "web.bench"
	webBody        = 1024
)

var webRows = []struct {
	name, unit string
	higher     bool
}{
	{"requests/s, 8 keep-alive connections", "req/s", true},
	{"request p50, 1 keep-alive connection", "µs", false},
	{"request p99, 1 keep-alive connection", "µs", false},
	{"requests/s, a new connection each (4 users)", "req/s", true},
}

// serveWeb runs the bench's web service (a 1 KiB page) in a lab host's namespace.
func serveWeb(l *natlab.Lab, host, addr string) {
	page := []byte(strings.Repeat("x", webBody))
	ln := l.Listen(host, "tcp4", addr)
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(page)
	}))
}

// webProxy is the system's http proxy of the web service (the same keys in frp and xp2p).
func webProxyConfig() string {
	return fmt.Sprintf("[[proxies]]\nname = \"web\"\ntype = \"http\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\ncustomDomains = [%q]\n", webServicePort, webHost)
}

// webClient asks for http://web.bench/ at addr from a lab host.
type webClient struct {
	lab  *natlab.Lab
	host string
	addr string
}

func (w webClient) client(keepAlive bool, conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return w.lab.Dial(w.host, "tcp4", w.addr, 10*time.Second)
		},
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
	}}
}

func get(c *http.Client) error {
	res, err := c.Get("http://" + webHost + "/")
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err == nil && (res.StatusCode != 200 || n != webBody) {
		err = fmt.Errorf("status %d, %d bytes", res.StatusCode, n)
	}
	return err
}

// rate runs workers that ask in a loop for dur and returns requests per second.
func (w webClient) rate(c *http.Client, workers int, dur time.Duration) (float64, error) {
	n, err := loop(workers, dur, func() error { return get(c) })
	if err != nil {
		return 0, err
	}
	return float64(n) / dur.Seconds(), nil
}

// latency times count requests on one kept-alive connection, in microseconds.
func (w webClient) latency(count int) (Sample, error) {
	c := w.client(true, 1)
	defer c.CloseIdleConnections()
	out := make(Sample, 0, count)
	for i := 0; i < count+10; i++ {
		start := time.Now()
		if err := get(c); err != nil {
			return nil, err
		}
		if i >= 10 {
			out = append(out, float64(time.Since(start).Nanoseconds())/1e3)
		}
	}
	return out, nil
}

// webVhost measures section 7: frp's http vhost against xp2p's, and the service reached by
// the same user directly on the server host.
func webVhost(o *options, bins *binaries, p *progress) (*results, error) {
	res := newResults()
	err := run("http vhost", o.logw, func(t *step) {
		l := natlab.New(t, natlab.Config{Sides: []natlab.Side{{Name: "A", NAT: natlab.Easy}}})
		addServerAlt(t, l)
		serveWeb(l, "A1", fmt.Sprintf("127.0.0.1:%d", webServicePort))
		serveWeb(l, "srv", fmt.Sprintf("%s:%d", natlab.ServerIP, webServicePort))
		targets := map[string]webClient{"direct TCP": {lab: l, host: "pub", addr: fmt.Sprintf("%s:%d", natlab.ServerIP, webServicePort)}}
		for _, s := range o.systems(bins) {
			vhost := xp2pVhostPort
			if s.name == "frp" {
				vhost = frpVhostPort
			}
			srv := s.startServerWith(t, l, fmt.Sprintf("vhostHTTPPort = %d\n", vhost))
			cli := s.startClient(t, l, "A1", s.name+"-web", s.clientConfig("")+webProxyConfig())
			if s.name == "xp2p" {
				srv.WaitLog("proxy online", 10*time.Second)
			} else {
				cli.WaitLog("start proxy success", 10*time.Second)
			}
			targets[s.name] = webClient{lab: l, host: "pub", addr: fmt.Sprintf("%s:%d", natlab.ServerIP, vhost)}
		}
		for name, w := range targets { // warm up: pools, first connections
			if err := get(w.client(true, 1)); err != nil {
				t.Fatalf("%s: warm-up: %v", name, err)
			}
		}
		order := []string{"direct TCP", "frp", "xp2p"}
		for rep := range o.reps {
			for i := range order {
				name := order[(i+rep)%len(order)]
				w := targets[name]
				p.set("http vhost: %s, rep %d/%d", name, rep+1, o.reps)
				c := w.client(true, 8)
				r, err := w.rate(c, 8, o.connFor)
				c.CloseIdleConnections()
				if err != nil {
					t.Fatalf("%s keep-alive requests: %v", name, err)
				}
				res.add(webRows[0].name, name, r)
				lat, err := w.latency(o.rtts / 2)
				if err != nil {
					t.Fatalf("%s latency: %v", name, err)
				}
				p50, p99 := percentiles(lat)
				res.add(webRows[1].name, name, p50)
				res.add(webRows[2].name, name, p99)
				r, err = w.rate(w.client(false, 0), 4, o.connFor)
				if err != nil {
					t.Fatalf("%s new-connection requests: %v", name, err)
				}
				res.add(webRows[3].name, name, r)
			}
		}
	})
	return res, err
}
