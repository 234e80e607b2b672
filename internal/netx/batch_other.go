//go:build !linux

package netx

import "net/netip"

type batchState struct {
	bufs    [][]byte
	lens    []int
	srcs    []netip.AddrPort
	n, next int
}

func (r *batchState) init(_, size int) {
	r.bufs = [][]byte{make([]byte, size)}
	r.lens = []int{0}
	r.srcs = []netip.AddrPort{{}}
}

func (r *BatchReader) refill() error {
	n, src, err := r.c.ReadFromUDPAddrPort(r.bufs[0])
	if err != nil {
		return err
	}
	r.lens[0], r.srcs[0], r.n, r.next = n, src, 1, 0
	return nil
}
