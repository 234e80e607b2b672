package rendezvous

import (
	"errors"
	"fmt"
	"time"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/relay"
	"github.com/xp2p/xp2p/vhost"
)

// A client that asks for a name or a port another client holds gets it only if the holder is
// dead: the holder must show it is alive, by answering a Ping on its control stream, within
// holderGrace. A crashed client (a QUIC session sends nothing when its process dies) is thus
// known dead a few seconds after someone wants its names, instead of after the session's
// idle timeout; a client that merely stalls (a SIGSTOP, a laptop waking up, a GC pause under
// memory pressure, a congested uplink) for less than the grace keeps what it has. The asking
// client is told "in use" otherwise, and asks again later (peer: proxy retries).

// holderGrace is the least time a holder has to answer. It is several times what a live
// client takes on any path (a round trip and a scheduling delay), and well under the session's
// idle timeout (30 s), which frees a dead client's names when nobody asks.
const holderGrace = 5 * time.Second

// holderTakeoverWait bounds the wait for an evicted holder's cleanup (its ports closed).
const holderTakeoverWait = 10 * time.Second

// probeTimeout is how long a liveness check of this client waits: the grace, or four round
// trips of its session if that is longer (a slow path is not a dead one).
func (c *client) probeTimeout() time.Duration {
	return max(holderGrace, 4*c.sess.RTT())
}

// livenessProbe is one check of a client's liveness that every caller waiting meanwhile shares.
type livenessProbe struct {
	done  chan struct{}
	alive bool
}

// checkAlive reports whether the client answers a Ping within probeTimeout. Concurrent checks
// share one Ping, so that many clients asking at once cost the holder one round trip.
func (c *client) checkAlive() bool {
	c.pingMu.Lock()
	p := c.probe
	if p == nil {
		p = &livenessProbe{done: make(chan struct{})}
		c.probe = p
		c.s.wg.Add(1)
		go func() {
			defer c.s.wg.Done()
			p.alive = c.alive(c.probeTimeout())
			c.pingMu.Lock()
			c.probe = nil
			c.pingMu.Unlock()
			close(p.done)
		}()
	}
	c.pingMu.Unlock()
	<-p.done
	return p.alive
}

// suspect checks, off the caller's goroutine, that the client is alive after a sign that its
// process may have died (an idle work connection it closed), and ends its session if it is
// not: its ports then refuse users, and its names are free, holderGrace after its crash instead
// of the session's idle timeout. A client alive a moment ago is not asked again.
func (c *client) suspect() {
	if time.Since(time.Unix(0, c.aliveAt.Load())) < holderGrace {
		return
	}
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		if c.checkAlive() {
			return
		}
		select {
		case <-c.done:
			return // it ended meanwhile
		default:
		}
		c.log.Info("client unresponsive after it closed a work connection: ending its session", "grace", c.probeTimeout())
		c.sess.Close("unresponsive")
	}()
}

// alive asks the client to prove it still answers: a Ping that must come back within timeout.
func (c *client) alive(timeout time.Duration) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	ch := make(chan struct{})
	c.pingMu.Lock()
	c.pingN++
	seq := c.pingN
	c.pings[seq] = ch
	c.pingMu.Unlock()
	defer func() {
		c.pingMu.Lock()
		delete(c.pings, seq)
		c.pingMu.Unlock()
	}()
	if err := c.send(&wire.Ping{Seq: seq}); err != nil {
		return false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		c.aliveAt.Store(time.Now().UnixNano())
		return true
	case <-t.C:
		return false
	case <-c.done:
		return false
	}
}

// takeOver answers a NewProxy whose name or port other clients hold: if any holder proves it
// is alive, the asker is refused with inUse (wire.CodeInUse); if none does, they are all
// disconnected and the proxy registered for the asker. It runs off the asker's control loop:
// the probe takes up to the grace.
func (c *client) takeOver(m *wire.NewProxy, holders []*client, inUse error) {
	s := c.s
	if !c.startAsking(m.Name) {
		return // the same request is already waiting for its holders' probe
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer c.stopAsking(m.Name)
		for _, h := range holders {
			if h.checkAlive() {
				c.refuseProxy(m.Name, fmt.Errorf("%w, which answered within %s", inUse, h.probeTimeout()), wire.CodeInUse)
				return
			}
		}
		for _, h := range holders {
			c.log.Info("taking over from an unresponsive client", "proxy", m.Name, "held", inUse, "old_client", h.id, "grace", h.probeTimeout())
			h.sess.Close("unresponsive: another client asked for its names")
		}
		for _, h := range holders {
			select {
			case <-h.done:
			case <-c.done:
				return
			case <-time.After(holderTakeoverWait):
			}
		}
		if c.stillAsking(m.Name) {
			c.newProxyTry(m, false)
		}
	}()
}

// startAsking marks a proxy name as waiting for a takeover; false if it already was.
func (c *client) startAsking(name string) bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.asking[name] {
		return false
	}
	c.asking[name] = true
	return true
}

// stillAsking reports whether the client still wants the proxy it asked for (CloseProxy, sent
// meanwhile by a reload or a failed health check, withdraws the request).
func (c *client) stillAsking(name string) bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.asking[name]
}

func (c *client) stopAsking(name string) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	delete(c.asking, name)
}

// refuseProxy tells the client its proxy was refused, and why, with a code that says whether
// asking again may help.
func (c *client) refuseProxy(name string, err error, code string) {
	c.log.Info("proxy refused", "proxy", name, "code", code, "err", err)
	c.send(&wire.NewProxyResult{Name: name, Error: err.Error(), Code: code})
}

// claimCode is the wire code of a name the registry refused (claimLocked): a name another
// client or group holds may be free later.
func claimCode(err error) string {
	if errors.Is(err, errNameHeld) || errors.Is(err, errNameOfGroup) {
		return wire.CodeInUse
	}
	if errors.Is(err, errQuota) {
		return wire.CodeQuota
	}
	return wire.CodeConfig
}

// refusalCode is the wire code of an error of relay.Proxies.Add.
func refusalCode(err error) string {
	switch {
	case errors.Is(err, relay.ErrPortInUse), errors.Is(err, vhost.ErrRouteInUse):
		return wire.CodeInUse
	case errors.Is(err, relay.ErrPortNotAllowed), errors.Is(err, relay.ErrGroupKey), errors.Is(err, relay.ErrGroupPort), errors.Is(err, vhost.ErrGroupKey):
		return wire.CodeConfig
	}
	return ""
}

// holdersOf returns the other clients that hold what a proxy asks for: its public port, its
// host names.
func (c *client) holdersOf(m *wire.NewProxy) []*client {
	var out []*client
	for _, o := range c.s.holders(m) {
		if h, ok := o.(*client); ok && h != c {
			out = append(out, h)
		}
	}
	return out
}
