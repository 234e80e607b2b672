package auth

import (
	"bytes"
	"testing"
)

func TestCPace(t *testing.T) {
	run := func(secretA, secretB, sidA, sidB string) (ka, kb []byte, err error) {
		ci := []byte("xp2p test")
		a, shareA := CPaceStart([]byte(secretA), ci, []byte(sidA))
		b, shareB := CPaceStart([]byte(secretB), ci, []byte(sidB))
		if ka, err = a.Key(shareB, true); err != nil {
			return nil, nil, err
		}
		kb, err = b.Key(shareA, false)
		return ka, kb, err
	}
	cases := []struct {
		name             string
		secretA, secretB string
		sidA, sidB       string
		same             bool
	}{
		{"same secret and session", "123456", "123456", "sid", "sid", true},
		{"wrong secret", "123456", "123457", "sid", "sid", false},
		{"another session (a relay between two TLS sessions)", "123456", "123456", "sid1", "sid2", false},
	}
	for _, c := range cases {
		ka, kb, err := run(c.secretA, c.secretB, c.sidA, c.sidB)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := bytes.Equal(ka, kb); got != c.same {
			t.Errorf("%s: keys equal = %v, want %v", c.name, got, c.same)
		}
		if got := CPaceVerify(kb, RoleProvider, CPaceConfirm(ka, RoleProvider)); got != c.same {
			t.Errorf("%s: confirmation verifies = %v, want %v", c.name, got, c.same)
		}
		if CPaceVerify(ka, RoleVisitor, CPaceConfirm(ka, RoleProvider)) {
			t.Errorf("%s: one role's confirmation passes as the other's", c.name)
		}
	}
	// Two runs of the same secret never repeat a share (fresh scalars), and a share is not the
	// secret's generator itself.
	_, s1 := CPaceStart([]byte("123456"), nil, []byte("sid"))
	_, s2 := CPaceStart([]byte("123456"), nil, []byte("sid"))
	if bytes.Equal(s1, s2) || bytes.Equal(s1, cpaceGenerator([]byte("123456"), nil, []byte("sid")).Encode(nil)) {
		t.Error("shares repeat")
	}
	// Malformed and identity shares are refused.
	st, _ := CPaceStart([]byte("x"), nil, nil)
	for _, bad := range [][]byte{make([]byte, CPaceShareSize), bytes.Repeat([]byte{0xff}, CPaceShareSize), {1, 2, 3}} {
		if _, err := st.Key(bad, true); err == nil {
			t.Errorf("share %x accepted", bad)
		}
	}
}

func FuzzCPaceShare(f *testing.F) {
	f.Add(make([]byte, CPaceShareSize))
	f.Fuzz(func(t *testing.T, share []byte) {
		st, _ := CPaceStart([]byte("secret"), nil, []byte("sid"))
		st.Key(share, false) // must not panic
	})
}

// TestCPaceTranscriptGivesNoOfflineTest plays the attack of issue 11: a malicious server (or a
// man in the middle) poses as the provider to a visitor whose secretKey is "123456", as the
// usual guides set it, and holds a dictionary that contains it. With the old proofs the
// visitor's first message was HMAC(secret, exporter) and the dictionary found the secret
// offline. With CPace the visitor sends its share, the impostor answers with a share and a
// confirmation made with one guess, the visitor checks it (wrong) and sends nothing more: all
// the impostor holds is the visitor's share, and every candidate explains it equally well.
func TestCPaceTranscriptGivesNoOfflineTest(t *testing.T) {
	dictionary := []string{"password", "admin", "123456", "qwerty", "letmein"}
	secret, sid, ci := []byte("123456"), []byte("tls exporter of the session"), []byte("xp2p peer v1\x00nas")

	// The old protocol, for comparison: the dictionary finds the secret.
	oldProof := Proof(secret, sid, RoleVisitor)
	found := ""
	for _, guess := range dictionary {
		if Verify([]byte(guess), sid, RoleVisitor, oldProof) {
			found = guess
		}
	}
	if found != "123456" {
		t.Fatalf("the old proof should give the secret away offline (found %q)", found)
	}

	visitor, visitorShare := CPaceStart(secret, ci, sid)
	impostor, impostorShare := CPaceStart([]byte("password"), ci, sid) // its one online guess
	iskImpostor, err := impostor.Key(visitorShare, false)
	if err != nil {
		t.Fatal(err)
	}
	// The visitor checks the impostor's confirmation and stops: no confirmation of its own.
	iskVisitor, err := visitor.Key(impostorShare, true)
	if err != nil {
		t.Fatal(err)
	}
	if CPaceVerify(iskVisitor, RoleProvider, CPaceConfirm(iskImpostor, RoleProvider)) {
		t.Fatal("the visitor accepted a confirmation made with a wrong guess")
	}
	// Offline, the impostor can only recompute keys from what it holds: the same for every
	// candidate, because the candidates enter only through the visitor's secret generator.
	var keys [][]byte
	for range dictionary {
		k, _ := impostor.Key(visitorShare, false)
		keys = append(keys, k)
	}
	for i := range keys {
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatal("candidates give different keys")
		}
	}
	// And a share is independent of the secret: shares of different secrets are both just
	// valid elements, so no candidate is told apart by the share alone.
	_, other := CPaceStart([]byte("letmein"), ci, sid)
	if len(other) != len(visitorShare) || bytes.Equal(other, visitorShare) {
		t.Fatal("shares of different secrets differ in form")
	}
}
