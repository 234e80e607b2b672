package relay

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/xp2p/xp2p/config"
)

func TestPortSetPick(t *testing.T) {
	inUse := fmt.Errorf("listen: %w", syscall.EADDRINUSE)
	r := func(first, last int) config.PortRange { return config.PortRange{Start: first, End: last} }
	single := func(p int) config.PortRange { return config.PortRange{Single: p} }
	cases := []struct {
		name    string
		set     portSet
		held    map[int]bool // held by the server's own proxies: skipped without a bind
		busy    map[int]bool // bind fails: another program has it
		want    map[int]bool // acceptable picks (nil: the system's choice, port 0)
		binds   int          // at most this many binds (0: do not check)
		wantErr string
	}{
		{name: "no allowPorts: the system picks", want: map[int]bool{0: true}, binds: 1},
		{name: "a range outside the ephemeral ports", set: portSet{r(20000, 20009)},
			want: portsIn(20000, 20009), binds: 1},
		{name: "singles and ranges", set: portSet{single(1234), r(5000, 5001), single(9)},
			want: map[int]bool{1234: true, 5000: true, 5001: true, 9: true}, binds: 1},
		{name: "the one port left", set: portSet{r(20000, 20009)},
			busy: except(portsIn(20000, 20009), 20007), want: map[int]bool{20007: true}, binds: 10},
		{name: "ports of other proxies cost no bind", set: portSet{r(20000, 20999)},
			held: except(portsIn(20000, 20999), 20500), want: map[int]bool{20500: true}, binds: 1},
		{name: "all taken by other programs", set: portSet{r(20000, 20009), single(30000)},
			busy: union(portsIn(20000, 20009), map[int]bool{30000: true}), binds: 11,
			wantErr: "no free port within allowPorts (11 ports; last: listen: address already in use): port already in use"},
		{name: "all held by other proxies", set: portSet{r(20000, 20002)}, held: portsIn(20000, 20002), binds: 0,
			wantErr: "no free port within allowPorts (all 3 held by other proxies)"},
		{name: "a full large set: bounded binds", set: portSet{r(1024, 65535)}, busy: portsIn(1024, 65535),
			binds: maxPortTries, wantErr: "no free port within allowPorts after 256 tries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 20 { // the start is random: every start must give a right answer
				binds, got := 0, -1
				err := tc.set.pick(func(p int) bool { return tc.held[p] }, func(p int) error {
					binds++
					if tc.held[p] {
						t.Fatalf("bind of port %d, which a proxy holds", p)
					}
					if tc.busy[p] {
						return inUse
					}
					got = p
					return nil
				})
				if tc.binds > 0 && binds > tc.binds {
					t.Fatalf("%d binds, want at most %d", binds, tc.binds)
				}
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrPortInUse) {
						t.Fatalf("error %v, want %q (and ErrPortInUse)", err, tc.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if !tc.want[got] {
					t.Fatalf("picked %d, not among the allowed free ports", got)
				}
			}
		})
	}
}

// TestPortSetSpread: picks from a set are spread over it, not stuck at its start.
func TestPortSetSpread(t *testing.T) {
	set := portSet{{Start: 40000, End: 40099}, {Single: 7}}
	seen := map[int]bool{}
	for range 200 {
		set.pick(func(int) bool { return false }, func(p int) error { seen[p] = true; return nil })
	}
	if len(seen) < 50 {
		t.Errorf("200 picks hit only %d of 101 ports", len(seen))
	}
}

func TestPortSetAllows(t *testing.T) {
	set := portSet{{Start: 6000, End: 6010}, {Single: 8080}}
	for port, want := range map[int]bool{0: true, 5999: false, 6000: true, 6010: true, 6011: false, 8080: true, 8081: false} {
		if got := set.allows(port); got != want {
			t.Errorf("allows(%d) = %v, want %v", port, got, want)
		}
	}
	if !(portSet{}).allows(1) {
		t.Error("an empty allowPorts must allow every port")
	}
}

func portsIn(first, last int) map[int]bool {
	m := map[int]bool{}
	for p := first; p <= last; p++ {
		m[p] = true
	}
	return m
}

func except(m map[int]bool, port int) map[int]bool { delete(m, port); return m }

func union(a, b map[int]bool) map[int]bool {
	for p := range b {
		a[p] = true
	}
	return a
}
