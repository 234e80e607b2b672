package peer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/xp2p/xp2p/internal/wire"
)

// healthLoop probes a proxy's local service (frp's healthCheck) until the proxy stops. After
// maxFailed failures in a row it withdraws the proxy from every server (a load-balancing group
// then sends its users to the other members); the first success publishes it again.
func (c *Client) healthLoop(lp *localProxy) {
	hc := lp.cfg.HealthCheck
	interval := time.Duration(hc.IntervalSeconds) * time.Second
	t := time.NewTicker(interval)
	defer t.Stop()
	// One client for the loop: no proxy from the environment, no connection kept between
	// probes, and no redirect followed (a 3xx is not a 2xx: the service is not answering as
	// configured).
	hcl := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	failed := 0
	for {
		select {
		case <-lp.stop:
			return
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		err := c.probe(lp, hcl)
		switch {
		case err == nil:
			failed = 0
			if lp.unhealthy.Load() != nil {
				c.setHealth(lp, nil)
			}
		default:
			failed++
			if failed >= hc.MaxFailed && lp.unhealthy.Load() == nil {
				c.setHealth(lp, err)
			}
		}
	}
}

// probe checks the local service once (hcl: the loop's client for http checks).
func (c *Client) probe(lp *localProxy, hcl *http.Client) error {
	hc := lp.cfg.HealthCheck
	timeout := time.Duration(hc.TimeoutSeconds) * time.Second
	addr := lp.localAddr()
	if hc.Type == "tcp" {
		conn, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+hc.Path, nil)
	if err != nil {
		return err
	}
	res, err := hcl.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", hc.Path, res.Status)
	}
	return nil
}

// setHealth records a change of health (err nil: healthy) and withdraws or publishes the proxy
// on every connected server. It holds reloadMu, as registration and Reload do, so that a
// reconnect or a reload never sees half of it; a proxy a reload has replaced is left alone.
func (c *Client) setHealth(lp *localProxy, err error) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	if c.set.Load().proxies[lp.cfg.Name] != lp {
		return
	}
	if err != nil {
		msg := err.Error()
		lp.unhealthy.Store(&msg)
		c.log.Warn("health check failed: proxy withdrawn", "proxy", lp.cfg.Name, "err", err)
	} else {
		lp.unhealthy.Store(nil)
		c.log.Info("health check passed: proxy published again", "proxy", lp.cfg.Name)
	}
	for _, ctl := range c.controls() {
		if err != nil {
			ctl.send(&wire.CloseProxy{Name: lp.cfg.Name})
			lp.setStatus(ctl.link, "unhealthy: "+err.Error(), "")
		} else {
			lp.forget(ctl.link) // pending until the server answers
			ctl.send(newProxyMsg(lp.cfg))
		}
	}
}
