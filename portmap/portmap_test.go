package portmap

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeClient is a protocol as a router answers it: after a while, or never (the probe then
// waits for the attempt's end).
type fakeClient struct {
	proto    Protocol
	answerIn time.Duration // < 0: no answer
	probeErr error
	addErr   error
	external netip.AddrPort
	// Counted in the probe's goroutine and the Mapper's: read once Map returned (it waits
	// for its probes).
	probes, adds, removes int
	lastRenews            Mapping
}

func (f *fakeClient) protocol() Protocol { return f.proto }

func (f *fakeClient) probe(ctx context.Context) error {
	f.probes++
	if f.answerIn < 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-time.After(f.answerIn):
		return f.probeErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeClient) add(_ context.Context, port uint16, lifetime time.Duration, prev Mapping) (Mapping, error) {
	f.adds++
	f.lastRenews = prev
	if f.addErr != nil {
		return Mapping{}, f.addErr
	}
	return Mapping{Protocol: f.proto, External: f.external, Internal: netip.AddrPortFrom(netip.MustParseAddr("10.1.0.2"), port),
		Lifetime: lifetime, Gateway: netip.MustParseAddr("127.0.0.1")}, nil
}

func (f *fakeClient) remove(context.Context, Mapping) error { f.removes++; return nil }

var public = netip.MustParseAddrPort("192.0.3.10:40123")

// routers makes a Mapper whose attempts each meet a new set of the given protocols.
func routers(newFakes func() []*fakeClient) (*Mapper, *[][]*fakeClient) {
	var made [][]*fakeClient
	m := &Mapper{Gateway: netip.MustParseAddr("127.0.0.1"), Timeout: time.Second}
	m.newClients = func(_, _ netip.Addr) []client {
		fs := newFakes()
		made = append(made, fs)
		cs := make([]client, len(fs))
		for i, f := range fs {
			cs[i] = f
		}
		return cs
	}
	return m, &made
}

func TestMapperChooses(t *testing.T) {
	refused := errors.New("refused")
	cases := []struct {
		name    string
		pcp     fakeClient
		pmp     fakeClient
		upnp    fakeClient
		want    Protocol
		within  time.Duration // well under the 1 s Timeout where the choice need not wait for it
		wantErr []string
	}{
		{name: "all three: PCP, though NAT-PMP answered first",
			pcp: fakeClient{answerIn: 20 * time.Millisecond}, pmp: fakeClient{answerIn: time.Millisecond}, upnp: fakeClient{answerIn: 5 * time.Millisecond},
			want: PCP, within: 500 * time.Millisecond},
		{name: "PCP silent: NAT-PMP after a grace, not the timeout",
			pcp: fakeClient{answerIn: -1}, pmp: fakeClient{answerIn: time.Millisecond}, upnp: fakeClient{answerIn: 5 * time.Millisecond},
			want: NATPMP, within: 600 * time.Millisecond},
		{name: "UPnP-IGD alone",
			pcp: fakeClient{answerIn: 0, probeErr: refused}, pmp: fakeClient{answerIn: 0, probeErr: refused}, upnp: fakeClient{answerIn: 30 * time.Millisecond},
			want: UPnP, within: 500 * time.Millisecond},
		{name: "PCP refuses to map: NAT-PMP",
			pcp: fakeClient{answerIn: 0, addErr: &ResultError{PCP, 2}}, pmp: fakeClient{answerIn: 0}, upnp: fakeClient{answerIn: -1},
			want: NATPMP, within: 500 * time.Millisecond},
		{name: "a NAT behind the router: refused, whatever the protocol",
			pcp:     fakeClient{answerIn: 0, external: netip.MustParseAddrPort("192.168.1.1:40123")},
			pmp:     fakeClient{answerIn: 0, external: netip.MustParseAddrPort("100.64.3.4:40123")},
			upnp:    fakeClient{answerIn: 0, external: netip.MustParseAddrPort("0.0.0.0:40123")},
			wantErr: []string{"PCP: the router's external address 192.168.1.1:40123 is not public", "NAT-PMP: the router's external address 100.64.3.4:40123", "UPnP-IGD: the router's external address 0.0.0.0:40123"}},
		{name: "nothing answers: every protocol's reason, after the timeout",
			pcp: fakeClient{answerIn: -1}, pmp: fakeClient{answerIn: 0, probeErr: refused}, upnp: fakeClient{answerIn: -1},
			wantErr: []string{"no port mapping from the router 127.0.0.1", "PCP: context deadline exceeded", "NAT-PMP: refused", "UPnP-IGD: context deadline exceeded"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, _ := routers(func() []*fakeClient {
				fs := []*fakeClient{&tc.pcp, &tc.pmp, &tc.upnp}
				for i, p := range Protocols {
					fs[i].proto = p
					if !fs[i].external.IsValid() {
						fs[i].external = public
					}
				}
				return fs
			})
			start := time.Now()
			mp, err := m.Map(context.Background(), 40123, time.Hour)
			took := time.Since(start)
			if tc.wantErr != nil {
				var e *Error
				if !errors.As(err, &e) || len(e.Causes) != 3 {
					t.Fatalf("Map = %+v, %v; want an *Error with 3 causes", mp, err)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil || mp.Protocol != tc.want || mp.External != public {
				t.Fatalf("Map = %+v, %v; want %s", mp, err, tc.want)
			}
			if took > tc.within {
				t.Errorf("chose %s after %s, want within %s", mp.Protocol, took, tc.within)
			}
		})
	}
}

// TestMapperRenews: a renewal asks the protocol that mapped, with its mapping; one that fails
// starts over with every protocol; Unmap removes what is mapped, once.
func TestMapperRenews(t *testing.T) {
	pcpWorks := true
	m, made := routers(func() []*fakeClient {
		pcp := &fakeClient{proto: PCP, external: public}
		if !pcpWorks {
			pcp.probeErr = errors.New("gone")
		}
		return []*fakeClient{pcp, {proto: NATPMP, external: public}, {proto: UPnP, external: public, answerIn: -1}}
	})
	ctx := context.Background()
	first, err := m.Map(ctx, 40123, time.Hour)
	if err != nil || first.Protocol != PCP {
		t.Fatalf("first Map: %+v, %v", first, err)
	}
	if _, err := m.Map(ctx, 40123, time.Hour); err != nil {
		t.Fatal(err)
	}
	pcp := (*made)[0][0]
	if len(*made) != 1 || pcp.adds != 2 || pcp.probes != 1 || pcp.lastRenews != first {
		t.Errorf("renewal: %d attempts, PCP added %d times and probed %d, renewing %+v", len(*made), pcp.adds, pcp.probes, pcp.lastRenews)
	}

	pcp.addErr, pcpWorks = errors.New("the router restarted"), false
	mp, err := m.Map(ctx, 40123, time.Hour)
	if err != nil || mp.Protocol != NATPMP || len(*made) != 2 {
		t.Fatalf("after a failed renewal: %+v, %v, %d attempts; want NAT-PMP from a new attempt", mp, err, len(*made))
	}
	if err := m.Unmap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Unmap(ctx); err != nil {
		t.Fatal(err)
	}
	if n := (*made)[1][1].removes; n != 1 || pcp.removes != 0 {
		t.Errorf("Unmap: NAT-PMP removed %d times, PCP %d; want 1 and 0", n, pcp.removes)
	}
}

func TestIsPublic(t *testing.T) {
	for a, want := range map[string]bool{
		"192.0.3.10": true, "203.0.113.10": true, "8.8.8.8": true,
		"10.1.0.1": false, "192.168.1.1": false, "172.16.0.1": false, "100.64.0.1": false, "100.127.255.254": false,
		"127.0.0.1": false, "169.254.1.1": false, "0.0.0.0": false, "224.0.0.1": false, "2001:db8::1": false,
	} {
		if got := isPublic(netip.MustParseAddr(a)); got != want {
			t.Errorf("isPublic(%s) = %v", a, got)
		}
	}
}

// TestMapperRenewalFails: a renewal that fails, then an attempt that finds nothing, say both,
// on one line.
func TestMapperRenewalFails(t *testing.T) {
	gone := false
	m, _ := routers(func() []*fakeClient {
		fs := []*fakeClient{{proto: PCP, external: public}, {proto: NATPMP, external: public}, {proto: UPnP, external: public}}
		for _, f := range fs {
			if gone {
				f.probeErr = errors.New("refused")
			}
		}
		return fs
	})
	ctx := context.Background()
	if _, err := m.Map(ctx, 40123, time.Hour); err != nil {
		t.Fatal(err)
	}
	gone = true
	m.cur.(*fakeClient).addErr = errors.New("no answer")
	_, err := m.Map(ctx, 40123, time.Hour)
	want := "renewing the PCP mapping: no answer; then no port mapping from the router 127.0.0.1 (PCP: refused; NAT-PMP: refused; UPnP-IGD: refused)"
	if err == nil || err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
}

// TestMapperMoved: when the route to the router changes (the host joined another network, or
// the gateway was set to another router), the next Map asks the new router from scratch
// instead of renewing at the old one.
func TestMapperMoved(t *testing.T) {
	m, made := routers(func() []*fakeClient {
		return []*fakeClient{{proto: PCP, external: public}, {proto: NATPMP, external: public}, {proto: UPnP, external: public}}
	})
	ctx := context.Background()
	if _, err := m.Map(ctx, 40123, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Map(ctx, 40123, time.Hour); err != nil || len(*made) != 1 {
		t.Fatalf("renewal on the same network: %v, %d attempts", err, len(*made))
	}
	m.Gateway = netip.MustParseAddr("127.0.0.2")
	if _, err := m.Map(ctx, 40123, time.Hour); err != nil || len(*made) != 2 || (*made)[0][0].adds != 2 {
		t.Fatalf("after the move: %v, %d attempts, the old router asked %d times; want a new attempt", err, len(*made), (*made)[0][0].adds)
	}
}
