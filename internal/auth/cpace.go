package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"

	"github.com/gtank/ristretto255"
)

// CPace is the balanced PAKE of draft-irtf-cfrg-cpace (the CFRG's pick), in its
// CPACE-RISTR255-SHA512 suite, over the ristretto255 group of github.com/gtank/ristretto255.
// Two peers that share a low-entropy secret (a service's secretKey) derive a strong key from it,
// and a transcript gives no offline test of the secret: an active attacker tests one guess per
// session it runs, which the other side sees fail. xp2p binds each run to the TLS session it
// travels in (the exporter is the session id, sid), so that a relay or a man in the middle,
// which runs two TLS sessions, cannot pass messages between them. The protocol glue (~60 lines)
// is written here after the draft because no maintained Go module ships CPace; the group
// arithmetic and the hash-to-group map are the library's.

const cpaceDSI = "CPaceRistretto255"

// CPaceShareSize is the size of a CPace share (an encoded ristretto255 element).
const CPaceShareSize = 32

// CPaceState is one side's secret half of a run.
type CPaceState struct {
	y     *ristretto255.Scalar
	share []byte
	sid   []byte
}

// errCPaceShare is a peer's share that is not a valid element, or that makes the key the
// identity element (a malicious share).
var errCPaceShare = errors.New("cpace: invalid share")

// CPaceStart begins a run for the secret prs, the channel identifier ci (who the parties are)
// and the session id sid; it returns this side's share, to send to the peer.
func CPaceStart(prs, ci, sid []byte) (*CPaceState, []byte) {
	g := cpaceGenerator(prs, ci, sid)
	var seed [64]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic("auth: no randomness for CPace: " + err.Error())
	}
	y := ristretto255.NewScalar().FromUniformBytes(seed[:])
	share := ristretto255.NewElement().ScalarMult(y, g).Encode(nil)
	return &CPaceState{y: y, share: share, sid: sid}, share
}

// Key finishes the run with the peer's share: the intermediate session key ISK, the same on both
// sides only if both used the same secret. initiator says whether this side started (its share
// comes first in the transcript).
func (s *CPaceState) Key(peerShare []byte, initiator bool) ([]byte, error) {
	Y := ristretto255.NewElement()
	if err := Y.Decode(peerShare); err != nil {
		return nil, errCPaceShare
	}
	K := ristretto255.NewElement().ScalarMult(s.y, Y)
	if K.Equal(ristretto255.NewElement().Zero()) == 1 {
		return nil, errCPaceShare
	}
	ya, yb := s.share, peerShare
	if !initiator {
		ya, yb = peerShare, s.share
	}
	h := sha512.New()
	h.Write(lvCat([]byte(cpaceDSI+"_ISK"), s.sid, K.Encode(nil)))
	h.Write(lvCat(ya, nil)) // transcript_ir(Ya, ADa, Yb, ADb), no associated data
	h.Write(lvCat(yb, nil))
	return h.Sum(nil), nil
}

// CPaceConfirm is role's key confirmation of isk: each side sends its own and checks the other's
// (constant time, CPaceVerify), so that both know the other derived the same key.
func CPaceConfirm(isk []byte, role string) []byte {
	mac := hmac.New(sha512.New, isk)
	mac.Write([]byte("xp2p cpace confirm v1\x00" + role))
	return mac.Sum(nil)[:32]
}

// CPaceVerify reports whether tag is role's confirmation of isk.
func CPaceVerify(isk []byte, role string, tag []byte) bool {
	return hmac.Equal(CPaceConfirm(isk, role), tag)
}

// cpaceGenerator is calculate_generator: the group element hashed from the secret, ci and sid
// (generator_string, SHA-512, then ristretto255's one-way map of 64 bytes).
func cpaceGenerator(prs, ci, sid []byte) *ristretto255.Element {
	const sInBytes = 128 // SHA-512's block size
	zpad := sInBytes - 1 - len(prependLen(prs)) - len(prependLen([]byte(cpaceDSI)))
	zpad = max(zpad, 0)
	h := sha512.Sum512(lvCat([]byte(cpaceDSI), prs, make([]byte, zpad), ci, sid))
	return ristretto255.NewElement().FromUniformBytes(h[:])
}

// prependLen is the draft's prepend_len: the length as LEB128, then the bytes.
func prependLen(b []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(len(b)))
	return append(out, b...)
}

// lvCat is the draft's lv_cat: each argument with its length prepended.
func lvCat(args ...[]byte) []byte {
	var out []byte
	for _, a := range args {
		out = append(out, prependLen(a)...)
	}
	return out
}
