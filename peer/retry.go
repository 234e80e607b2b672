package peer

import (
	"context"
	"sync"
	"time"
)

// A proxy the server refused because its name or port is held (wire.CodeInUse: by
// another client that proved it is alive, or by a program outside xp2p) is asked for again,
// with growing, jittered delays, for as long as the session lasts; a new session registers
// everything anew anyway. The client thus never gives up on its own names: once the holder
// goes away, the proxy is published within proxyRetryMax.
const (
	proxyRetryMin = time.Second
	proxyRetryMax = 30 * time.Second
)

// proxyRetries holds the proxies one control session asks for again.
type proxyRetries struct {
	ctl  *control
	wake chan struct{} // a new due time, or the session's end

	mu  sync.Mutex
	due map[string]*proxyRetry // by proxy name
}

// proxyRetry is one refused proxy: when to ask again (zero while the server has the question)
// and the delays so far.
type proxyRetry struct {
	lp *localProxy
	at time.Time
	b  backoff
}

func newProxyRetries(ctl *control) *proxyRetries {
	return &proxyRetries{ctl: ctl, wake: make(chan struct{}, 1), due: map[string]*proxyRetry{}}
}

// schedule plans the next question for a refused proxy and returns when it will be asked.
func (r *proxyRetries) schedule(lp *localProxy) time.Time {
	r.mu.Lock()
	e := r.due[lp.cfg.Name]
	if e == nil || e.lp != lp {
		e = &proxyRetry{lp: lp, b: backoff{min: proxyRetryMin, max: proxyRetryMax}}
		r.due[lp.cfg.Name] = e
	}
	e.at = time.Now().Add(e.b.next())
	at := e.at
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return at
}

// forget stops asking for a proxy: the server published it, or the client withdrew it
// (a reload removed it, its health check failed).
func (r *proxyRetries) forget(name string) {
	r.mu.Lock()
	delete(r.due, name)
	r.mu.Unlock()
}

// run asks again for each refused proxy when its time comes, until ctx ends.
func (r *proxyRetries) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		var fire []*localProxy
		var next time.Time
		r.mu.Lock()
		for _, e := range r.due {
			switch {
			case e.at.IsZero():
			case !e.at.After(now):
				fire = append(fire, e.lp)
				e.at = time.Time{}
			case next.IsZero() || e.at.Before(next):
				next = e.at
			}
		}
		r.mu.Unlock()
		for _, lp := range fire {
			r.ctl.c.askAgain(r.ctl, lp)
		}
		if len(fire) > 0 {
			continue // asking took time: look at the clock again
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = time.Until(next)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-t.C:
		}
	}
}

// askAgain sends a refused proxy's registration again, unless it changed meanwhile: a reload
// replaced or removed it, its health check withdrew it, or the session is no longer the link's.
// It holds reloadMu, as registration does, so that it never races a reload.
func (c *Client) askAgain(ctl *control, lp *localProxy) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	if c.proxy(lp.cfg.Name) != lp || lp.unhealthy.Load() != nil || ctl.link.ctl.Load() != ctl {
		ctl.retries.forget(lp.cfg.Name)
		return
	}
	c.log.Info("asking the server again for a refused proxy", "server", ctl.link.ep.Addr, "proxy", lp.cfg.Name)
	ctl.send(newProxyMsg(lp.cfg))
}
