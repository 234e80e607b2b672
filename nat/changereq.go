package nat

import (
	"encoding/binary"
	"fmt"

	"github.com/pion/stun/v3"
)

// ChangeRequest is the CHANGE-REQUEST attribute of RFC 5780 section 7.2: it asks a server to
// answer from its other address, its other port, or both. pion/stun knows the attribute type
// but has no codec for it, hence this one (four bytes).
type ChangeRequest struct {
	ChangeIP   bool
	ChangePort bool
}

const (
	changeIPFlag   = 0x04
	changePortFlag = 0x02
)

// AddTo implements stun.Setter.
func (c ChangeRequest) AddTo(m *stun.Message) error {
	var v [4]byte
	if c.ChangeIP {
		v[3] |= changeIPFlag
	}
	if c.ChangePort {
		v[3] |= changePortFlag
	}
	m.Add(stun.AttrChangeRequest, v[:])
	return nil
}

// GetFrom implements stun.Getter.
func (c *ChangeRequest) GetFrom(m *stun.Message) error {
	v, err := m.Get(stun.AttrChangeRequest)
	if err != nil {
		return err
	}
	if len(v) != 4 {
		return fmt.Errorf("CHANGE-REQUEST: %d bytes, want 4", len(v))
	}
	flags := binary.BigEndian.Uint32(v)
	c.ChangeIP = flags&changeIPFlag != 0
	c.ChangePort = flags&changePortFlag != 0
	return nil
}
