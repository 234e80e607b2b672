package netx

import (
	"fmt"
	"net"
	"testing"
	"time"
)

func TestBatchReader(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			ip := "127.0.0.1"
			if network == "udp6" {
				ip = "::1"
			}
			rc, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(ip)})
			if err != nil {
				t.Skip(err)
			}
			defer rc.Close()
			SizeUDPBuffers(rc, UDPSocketBuffer)
			var senders []*net.UDPConn
			for range 3 {
				s, err := net.DialUDP(network, nil, rc.LocalAddr().(*net.UDPAddr))
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				senders = append(senders, s)
			}
			const n = 300
			for i := range n {
				fmt.Fprintf(senders[i%3], "datagram %d", i)
			}
			r := NewBatchReader(rc, 16, 2048)
			rc.SetReadDeadline(time.Now().Add(5 * time.Second))
			next := make(map[string]int) // per source: datagrams keep their order
			for range n {
				b, src, err := r.Read()
				if err != nil {
					t.Fatal(err)
				}
				var i int
				if _, err := fmt.Sscanf(string(b), "datagram %d", &i); err != nil {
					t.Fatalf("read %q", b)
				}
				s := senders[i%3].LocalAddr().(*net.UDPAddr).AddrPort()
				if src != s {
					t.Fatalf("datagram %d from %s, sent from %s", i, src, s)
				}
				if i != next[src.String()]*3+i%3 {
					t.Fatalf("datagram %d out of order", i)
				}
				next[src.String()]++
			}
			// Reading allocates nothing per datagram.
			allocs := testing.AllocsPerRun(200, func() {
				senders[0].Write([]byte("x"))
				if _, _, err := r.Read(); err != nil {
					t.Fatal(err)
				}
			})
			if allocs > 0.1 && !raceEnabled { // the race detector allocates itself
				t.Errorf("%.2f allocations per datagram read", allocs)
			}
		})
	}
}
