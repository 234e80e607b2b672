//go:build !linux && !darwin && !freebsd

package quicsock

// stripPacketInfo has nothing to strip: quic-go reads no control messages on these systems.
func stripPacketInfo(oob []byte) []byte { return oob }
