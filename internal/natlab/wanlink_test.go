//go:build linux

package natlab

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xp2p/xp2p/internal/natlab/wan"
)

// TestWANAccuracy checks that a shaped link does what it is told, as measured by real sockets on
// both ends (all namespaces share one clock, so one-way delays are measured exactly): the
// delay of each direction within 1 ms, random loss within 10 % of the setting, the rate within
// 10 %, and a path MTU that answers with ICMP or, without it, is a black hole.
func TestWANAccuracy(t *testing.T) {
	t.Parallel()
	const up, down = 15 * time.Millisecond, 5 * time.Millisecond
	const loss, rate = 0.01, 20e6
	l := New(t, Config{Sides: []Side{
		{Name: "A", NAT: Easy, WAN: &Link{Up: wan.Shape{Delay: up, MTU: 1280}, Down: wan.Shape{Delay: down}}},
		{Name: "B", NAT: Easy, WAN: &Link{Up: wan.Shape{Loss: loss, MTU: 1380, NoICMP: true}, Down: wan.Shape{Rate: rate}}},
	}})
	echo := l.ListenPacket("srv", "udp4", ServerIP+":4000").(*net.UDPConn)
	echo.SetReadBuffer(8 << 20)

	t.Run("delay", func(t *testing.T) {
		c := l.ListenPacket("A1", "udp4", ":0").(*net.UDPConn)
		srv := &net.UDPAddr{IP: net.ParseIP(ServerIP), Port: 4000}
		var ups, downs []time.Duration
		buf := make([]byte, 64)
		for range 50 {
			stamp(buf)
			if _, err := c.WriteTo(buf[:8], srv); err != nil {
				t.Fatal(err)
			}
			echo.SetReadDeadline(time.Now().Add(time.Second))
			n, from, err := echo.ReadFrom(buf)
			if err != nil || n != 8 {
				t.Fatalf("up: %d bytes, %v", n, err)
			}
			ups = append(ups, since(buf))
			stamp(buf)
			echo.WriteTo(buf[:8], from)
			c.SetReadDeadline(time.Now().Add(time.Second))
			if n, _, err = c.ReadFrom(buf); err != nil || n != 8 {
				t.Fatalf("down: %d bytes, %v", n, err)
			}
			downs = append(downs, since(buf))
			time.Sleep(2 * time.Millisecond)
		}
		for _, d := range []struct {
			name string
			want time.Duration
			got  []time.Duration
		}{{"up", up, ups}, {"down", down, downs}} {
			slices.Sort(d.got)
			med := d.got[len(d.got)/2]
			t.Logf("%s: one-way delay min %s, median %s, p90 %s (set %s)", d.name, d.got[0], med, d.got[len(d.got)*9/10], d.want)
			if med < d.want || med > d.want+time.Millisecond {
				t.Errorf("%s: median one-way delay %s, want %s (+1 ms)", d.name, med, d.want)
			}
			if d.got[0] < d.want-100*time.Microsecond {
				t.Errorf("%s: a frame came %s early", d.name, d.want-d.got[0])
			}
		}
	})

	t.Run("bulk TCP: no offload reaches the link", func(t *testing.T) {
		ln := l.Listen("srv", "tcp4", ServerIP+":4001")
		go func() {
			if c, err := ln.Accept(); err == nil {
				io.Copy(io.Discard, c)
				c.Close()
			}
		}()
		c, err := l.Dial("A1", "tcp4", ServerIP+":4001", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(make([]byte, 16<<20)); err != nil {
			t.Fatal(err)
		}
		c.Close()
		ab, _ := l.LinkStats("natA")
		if ab.Truncated != 0 || ab.SendErrors != 0 || ab.Sent < 10000 {
			t.Errorf("link up: %+v, want every frame of the transfer passed whole", ab)
		}
	})

	t.Run("path MTU with ICMP", func(t *testing.T) {
		mtu := probeMTU(t, l, "A1", ServerIP+":4000")
		if mtu != 1280 {
			t.Errorf("path MTU learned %d, want 1280 from the link's ICMP", mtu)
		}
		if ab, _ := l.LinkStats("natA"); ab.TooBig == 0 || ab.ICMP == 0 {
			t.Errorf("link up: %+v, want an oversized packet answered", ab)
		}
	})

	t.Run("path MTU without ICMP", func(t *testing.T) {
		if mtu := probeMTU(t, l, "B1", ServerIP+":4000"); mtu != 1500 {
			t.Errorf("path MTU %d: want no ICMP (the interface's 1500 kept)", mtu)
		}
		if ab, _ := l.LinkStats("natB"); ab.TooBig == 0 || ab.ICMP != 0 {
			t.Errorf("link up: %+v, want oversized packets dropped silently", ab)
		}
	})

	t.Run("loss", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: 100 000 datagrams")
		}
		n := 100_000 // 1 % of it: 1000 ± 31 lost
		c := l.ListenPacket("B1", "udp4", ":0").(*net.UDPConn)
		srv := &net.UDPAddr{IP: net.ParseIP(ServerIP), Port: 4000}
		before, _ := l.LinkStats("natB")
		got := make(chan int)
		go func() {
			seen := 0
			buf := make([]byte, 64)
			for {
				echo.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if _, _, err := echo.ReadFrom(buf); err != nil {
					got <- seen
					return
				}
				seen++
			}
		}()
		buf := make([]byte, 16)
		for i := range n {
			binary.BigEndian.PutUint64(buf, uint64(i))
			if _, err := c.WriteTo(buf, srv); err != nil {
				t.Fatal(err)
			}
			if i%200 == 199 {
				time.Sleep(time.Millisecond) // below the receiver's and the bridge's buffers
			}
		}
		seen := <-got
		after, _ := l.LinkStats("natB")
		measured := 1 - float64(seen)/float64(n)
		t.Logf("loss: %d of %d datagrams arrived: %.3f%% lost (set %.1f%%); link counted %d lost, %d kernel drops",
			seen, n, measured*100, loss*100, after.Lost-before.Lost, after.KernelDrops)
		if math.Abs(measured-loss) > loss/10 {
			t.Errorf("measured loss %.3f%%, want %.1f%% ± 10%%", measured*100, loss*100)
		}
	})

	t.Run("rate", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: a second of traffic")
		}
		c := l.ListenPacket("B1", "udp4", ":0").(*net.UDPConn)
		c.SetReadBuffer(8 << 20)
		dst := &net.UDPAddr{IP: net.ParseIP(l.NATIP("B")), Port: c.LocalAddr().(*net.UDPAddr).Port}
		c.WriteTo([]byte("open"), &net.UDPAddr{IP: net.ParseIP(ServerIP), Port: 4000}) // the NAT's mapping
		time.Sleep(50 * time.Millisecond)
		const size, offered = 1200, 2 * rate // bytes a datagram, bit/s sent
		received := make(chan [2]time.Time)
		var bytes int
		go func() {
			buf := make([]byte, 2048)
			var first, last time.Time
			for {
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					received <- [2]time.Time{first, last}
					return
				}
				if first.IsZero() {
					first = time.Now()
				} else {
					bytes += n + 42 // + UDP, IP and Ethernet headers: the link's rate counts frames
				}
				last = time.Now()
			}
		}()
		payload := make([]byte, size)
		start := time.Now()
		for sent := 0; time.Since(start) < time.Second; {
			echo.WriteTo(payload, dst)
			sent++
			if ahead := time.Duration(float64(sent*size*8)/offered*1e9) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		span := <-received
		got := float64(bytes*8) / span[1].Sub(span[0]).Seconds()
		t.Logf("rate: %.2f Mbit/s of frames received at an offered %.0f (set %.0f)", got/1e6, offered/1e6, rate/1e6)
		// Frames also carry a preamble, FCS and gap (24 bytes) that the receiver does not see.
		if want := rate * (size + 42) / (size + 42 + 24); math.Abs(got-want) > want/10 {
			t.Errorf("rate %.2f Mbit/s, want %.2f ± 10%%", got/1e6, want/1e6)
		}
	})
}

// probeMTU sends a 1400-byte datagram with DF set from host to addr and returns the path MTU its
// kernel then knows (IP_MTU of the connected socket), after a second send that must fail with
// EMSGSIZE if an ICMP error taught the kernel a smaller one.
func probeMTU(t *testing.T, l *Lab, host, addr string) int {
	t.Helper()
	c, err := l.Dial(host, "udp4", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
	})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1400-28)
	for range 3 {
		if _, err := c.Write(big); errors.Is(err, syscall.EMSGSIZE) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mtu := 0
	raw.Control(func(fd uintptr) { mtu, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU) })
	if err != nil {
		t.Fatal(err)
	}
	return mtu
}

var clock = time.Now()

// stamp writes the time into b; since reads it back as the time elapsed.
func stamp(b []byte) { binary.BigEndian.PutUint64(b, uint64(time.Since(clock))) }

func since(b []byte) time.Duration {
	return time.Since(clock) - time.Duration(binary.BigEndian.Uint64(b))
}
