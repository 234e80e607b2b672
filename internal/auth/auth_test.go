package auth

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/tlsconf"
)

// tlsPair returns the connection states of both ends of a fresh TLS session of version v.
func tlsPair(t *testing.T, v uint16) (client, server tls.ConnectionState) {
	t.Helper()
	cert, err := tlsconf.SelfSigned("t")
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: v, MaxVersion: v})
	cli := tls.Client(a, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cli.ConnectionState(), srv.ConnectionState()
}

func TestProofIsBoundToTheTLSSession(t *testing.T) {
	secret := []byte("123456")
	c1, s1 := tlsPair(t, tls.VersionTLS13)
	_, s2 := tlsPair(t, tls.VersionTLS13)
	e1c, err := Exporter(c1, "control")
	if err != nil {
		t.Fatal(err)
	}
	e1s, _ := Exporter(s1, "control")
	e2s, _ := Exporter(s2, "control")
	if !bytes.Equal(e1c, e1s) {
		t.Fatal("both ends of one session must export the same keying material")
	}
	p := Proof(secret, e1c, RoleClient)
	if bytes.Contains(p, secret) || len(p) != ProofSize {
		t.Fatal("a proof must not carry the secret")
	}
	checks := []struct {
		name     string
		secret   []byte
		exporter []byte
		role     string
		want     bool
	}{
		{"same session", secret, e1s, RoleClient, true},
		{"replayed in another session", secret, e2s, RoleClient, false},
		{"wrong secret", []byte("1234567"), e1s, RoleClient, false},
		{"reflected as the other role", secret, e1s, RoleServer, false},
	}
	for _, c := range checks {
		if got := Verify(c.secret, c.exporter, c.role, p); got != c.want {
			t.Errorf("%s: Verify = %v, want %v", c.name, got, c.want)
		}
	}
	// Another label (work connections, peers) gives other material.
	w, _ := Exporter(c1, "work")
	if bytes.Equal(w, e1c) {
		t.Error("exporter labels must separate uses")
	}
}

func TestExporterRefusesTLS12(t *testing.T) {
	c, _ := tlsPair(t, tls.VersionTLS12)
	if _, err := Exporter(c, "control"); err == nil {
		t.Fatal("exporter over TLS 1.2 accepted")
	}
}

func TestDerive(t *testing.T) {
	a := Derive([]byte("k"), "probe", []byte{1})
	if bytes.Equal(a, Derive([]byte("k"), "probe", []byte{2})) || bytes.Equal(a, Derive([]byte("k"), "other", []byte{1})) ||
		bytes.Equal(a, Derive([]byte("j"), "probe", []byte{1})) || !bytes.Equal(a, Derive([]byte("k"), "probe", []byte{1})) {
		t.Fatal("Derive must depend on secret, purpose and context, and only on them")
	}
}

func TestFailureLimiter(t *testing.T) {
	l := &FailureLimiter{Burst: 3, Interval: 200 * time.Millisecond, MaxEntries: 100}
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	for i := range 3 {
		if ok, _ := l.Check(a); !ok {
			t.Fatalf("attempt %d refused within the burst", i)
		}
		l.Fail(a)
	}
	ok, wait := l.Check(a)
	if ok || wait <= 0 || wait > 200*time.Millisecond {
		t.Fatalf("after the burst: ok=%v wait=%v, want a refusal with a wait up to one interval", ok, wait)
	}
	if ok, _ := l.Check(b); !ok {
		t.Fatal("one address's failures slowed another down")
	}
	// IPv4-mapped IPv6 is the same address.
	if ok, _ := l.Check(netip.MustParseAddr("::ffff:192.0.2.1")); ok {
		t.Fatal("the mapped form of a limited address got through")
	}
	time.Sleep(250 * time.Millisecond)
	if ok, _ := l.Check(a); !ok {
		t.Fatal("no attempt allowed after an interval")
	}
}

func TestLimiterAllow(t *testing.T) {
	l := &FailureLimiter{Burst: 4, Interval: time.Hour, MaxEntries: 100}
	a := netip.MustParseAddr("2001:db8::1")
	b := netip.MustParseAddr("192.0.2.7")
	allowed := 0
	for range 10 {
		if l.Allow(a) {
			allowed++
		}
	}
	if allowed != 4 {
		t.Fatalf("Allow let %d of 10 through with a burst of 4 and no refill", allowed)
	}
	if !l.Allow(b) {
		t.Fatal("one address's requests used up another's budget")
	}
	if ok, _ := l.Check(a); ok {
		t.Fatal("Check says an exhausted address may go on")
	}
}

func TestFailureLimiterMemoryIsBounded(t *testing.T) {
	l := NewFailureLimiter()
	for i := range 100_000 {
		l.Fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if n := l.Tracked(); n > l.MaxEntries {
		t.Fatalf("tracking %d addresses, limit %d", n, l.MaxEntries)
	}

}

func TestRunKey(t *testing.T) {
	c, _ := tlsPair(t, tls.VersionTLS13)
	other, _ := tlsPair(t, tls.VersionTLS13)
	e, _ := Exporter(c, "control")
	eOther, _ := Exporter(other, "control")
	k, k2 := NewRunKey(), NewRunKey()
	if k.ID() == k2.ID() || k.ID() != RunID(k.Public()) || len(k.ID()) != 32 {
		t.Fatalf("run ids %q and %q", k.ID(), k2.ID())
	}
	sig := k.Sign(e)
	checks := []struct {
		name          string
		pub, exp, sig []byte
		want          bool
	}{
		{"own signature", k.Public(), e, sig, true},
		{"another session", k.Public(), eOther, sig, false},
		{"another key", k2.Public(), e, sig, false},
		{"truncated signature", k.Public(), e, sig[:10], false},
		{"short key", k.Public()[:5], e, sig, false},
	}
	for _, c := range checks {
		if got := VerifyRun(c.pub, c.exp, c.sig); got != c.want {
			t.Errorf("%s: VerifyRun = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestLimiterBySource: an IPv6 attacker has a /64 (2^64 addresses) but one bucket; IPv4 keys
// by address, and an IPv4-mapped IPv6 address is the IPv4 address.
func TestLimiterBySource(t *testing.T) {
	l := &FailureLimiter{Burst: 5, Interval: time.Hour, MaxEntries: 100}
	for i := range 5 {
		l.Fail(netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1)))
	}
	cases := []struct {
		addr string
		ok   bool
	}{
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", false}, // the same /64
		{"2001:db8:1:3::1", true},                   // the next /64
		{"192.0.2.1", true},
	}
	for _, c := range cases {
		if ok, _ := l.Check(netip.MustParseAddr(c.addr)); ok != c.ok {
			t.Errorf("%s: may try = %v, want %v", c.addr, ok, c.ok)
		}
	}
	for range 5 {
		l.Fail(netip.MustParseAddr("::ffff:192.0.2.1"))
	}
	if ok, _ := l.Check(netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("an IPv4-mapped address has a bucket apart from its IPv4 address")
	}
	if ok, _ := l.Check(netip.MustParseAddr("192.0.2.2")); !ok {
		t.Error("an IPv4 neighbour shares the bucket")
	}
}

func TestLimiterAttempt(t *testing.T) {
	l := &FailureLimiter{Burst: 2, Interval: time.Hour, MaxEntries: 100}
	a := netip.MustParseAddr("192.0.2.9")
	for range 10 { // proven attempts give their failure back
		done, ok, _ := l.Attempt(a)
		if !ok {
			t.Fatal("a source whose attempts all succeed was limited")
		}
		done(true)
	}
	d1, _, _ := l.Attempt(a)
	d2, _, _ := l.Attempt(a) // two unproven at once (parallel guesses) spend the burst
	if _, ok, _ := l.Attempt(a); ok {
		t.Fatal("a third parallel attempt passed a burst of two")
	}
	d1(false)
	d2(false)
	if ok, _ := l.Check(a); ok {
		t.Error("failed attempts were not counted")
	}
}
