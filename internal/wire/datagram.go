package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxDatagram is the largest UDP payload carried on a stream (the IPv4 UDP maximum).
const MaxDatagram = 65507

// WriteDatagram frames one datagram on a stream as a 2-byte big-endian length and the payload,
// in a single Write.
func WriteDatagram(w io.Writer, b []byte) error {
	if len(b) > MaxDatagram {
		return fmt.Errorf("datagram of %d bytes exceeds %d", len(b), MaxDatagram)
	}
	buf := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(buf, uint16(len(b)))
	copy(buf[2:], b)
	_, err := w.Write(buf)
	return err
}

// ReadDatagram reads one framed datagram into buf and returns its length; a datagram larger
// than buf is an error (give it MaxDatagram bytes for any UDP payload, MaxRelayFrame for
// relayed packets). A clean end of stream between datagrams is io.EOF.
func ReadDatagram(r io.Reader, buf []byte) (int, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > len(buf) {
		return 0, fmt.Errorf("datagram of %d bytes exceeds buffer of %d", n, len(buf))
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, fmt.Errorf("read datagram: %w", err)
	}
	return n, nil
}
