// Package wire owns xp2p's control protocol: the messages that clients, the server and peers
// exchange, and how they are framed on a stream.
//
// A frame is a 4-byte big-endian length followed by that many bytes of JSON:
// {"t":"<type>","b":{...body...}}. JSON keeps the protocol debuggable and the decoder small;
// control messages are rare next to the data they set up, so their encoding cost does not matter.
// Every frame is bounded by MaxFrameSize so a peer cannot make the reader allocate at will.
package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxFrameSize bounds one control frame. The largest legitimate message (a candidate list or a
// proxy list) is far below it.
const MaxFrameSize = 64 << 10

// ErrFrameTooLarge is returned when a frame announces more than MaxFrameSize bytes.
var ErrFrameTooLarge = errors.New("control frame too large")

// Message is one control message.
type Message interface {
	// MessageType is the wire name of the message ("t" in the frame).
	MessageType() string
	// Validate checks the fields a receiver relies on.
	Validate() error
}

type envelope struct {
	Type string          `json:"t"`
	Body json.RawMessage `json:"b"`
}

// registry maps a wire name to a constructor of an empty message of that type.
var registry = map[string]func() Message{}

func register(newMsg func() Message) {
	registry[newMsg().MessageType()] = newMsg
}

// Encode returns the framed encoding of m.
func Encode(m Message) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.MessageType(), err)
	}
	payload, err := json.Marshal(envelope{Type: m.MessageType(), Body: body})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.MessageType(), err)
	}
	if len(payload) > MaxFrameSize {
		return nil, fmt.Errorf("encode %s: %d bytes: %w", m.MessageType(), len(payload), ErrFrameTooLarge)
	}
	frame := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(frame, uint32(len(payload)))
	copy(frame[4:], payload)
	return frame, nil
}

// Write frames m onto w in a single Write call, so concurrent writers serialised by the caller
// never interleave partial frames.
func Write(w io.Writer, m Message) error {
	frame, err := Encode(m)
	if err != nil {
		return err
	}
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("write %s: %w", m.MessageType(), err)
	}
	return nil
}

// Read reads one frame from r and decodes it.
func Read(r io.Reader) (Message, error) {
	return readLimited(r, MaxFrameSize)
}

// MaxHelloSize bounds the first message of a connection that has not authenticated yet (Login,
// WorkConn, PeerHello): they are small, and a stranger must not make the reader hold more.
const MaxHelloSize = 4 << 10

// ReadHello reads the first message of a peer that has not authenticated yet: a frame of at
// most MaxHelloSize, of type T.
func ReadHello[T Message](r io.Reader) (T, error) {
	var zero T
	m, err := readLimited(r, MaxHelloSize)
	if err != nil {
		return zero, err
	}
	return as[T](m)
}

func readLimited(r io.Reader, limit uint32) (Message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > limit {
		return nil, fmt.Errorf("read frame of %d bytes: %w", n, ErrFrameTooLarge)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return Decode(payload)
}

// Decode decodes one frame payload (without its length prefix) and validates the message.
func Decode(payload []byte) (Message, error) {
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("decode control frame: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode control frame: trailing data after message")
	}
	newMsg, ok := registry[env.Type]
	if !ok {
		return nil, fmt.Errorf("decode control frame: unknown message type %q", env.Type)
	}
	m := newMsg()
	if len(env.Body) == 0 || bytes.Equal(env.Body, []byte("null")) {
		return nil, fmt.Errorf("decode %s: missing body", env.Type)
	}
	// Bodies accept unknown fields so that a newer peer can add optional ones.
	if err := json.Unmarshal(env.Body, m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", env.Type, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("invalid %s: %w", env.Type, err)
	}
	return m, nil
}

// ReadAs reads one message and requires it to be of type T.
func ReadAs[T Message](r io.Reader) (T, error) {
	var zero T
	m, err := Read(r)
	if err != nil {
		return zero, err
	}
	return as[T](m)
}

func as[T Message](m Message) (T, error) {
	var zero T
	t, ok := m.(T)
	if !ok {
		return zero, fmt.Errorf("expected %s, got %s", zero.MessageType(), m.MessageType())
	}
	return t, nil
}
