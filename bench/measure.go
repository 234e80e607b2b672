//go:build linux

package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xp2p/xp2p/internal/natlab"
)

// The bench service speaks a one-byte command, then:
//
//	'U' + uint64   upload: reads that many bytes, answers the count (8 bytes)
//	'D' + uint64   download: sends that many bytes
//
// Neither needs a half close: frp's tcp proxy closes both directions when one ends.
//
//	'R' + uint64 + uint64   timed upload: reads that many bytes, or for that many nanoseconds
//	               after the first one, then answers the bytes read and the nanoseconds taken
//	'E'            echo: copies everything back
//	'C'            connect: answers one byte and closes
//
// It runs in the bench process, in a lab host's namespace, so that every system under test
// reaches the very same service.
func serve(l *natlab.Lab, host, addr string) { serveWith(l, host, addr, "") }

var zeros = make([]byte, 256<<10)

func handle(c *net.TCPConn) {
	defer c.Close()
	var cmd [1]byte
	if _, err := io.ReadFull(c, cmd[:]); err != nil {
		return
	}
	switch cmd[0] {
	case 'U':
		var want uint64
		if binary.Read(c, binary.BigEndian, &want) != nil {
			return
		}
		n, _ := io.CopyN(io.Discard, c, int64(want))
		binary.Write(c, binary.BigEndian, uint64(n))
		io.Copy(io.Discard, c)
	case 'D':
		var n uint64
		if binary.Read(c, binary.BigEndian, &n) != nil {
			return
		}
		for n > 0 {
			k := min(n, uint64(len(zeros)))
			if _, err := c.Write(zeros[:k]); err != nil {
				return
			}
			n -= k
		}
		io.Copy(io.Discard, c) // until the user has it all and closes
	case 'R':
		var req [16]byte
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return
		}
		want, limit := int64(binary.BigEndian.Uint64(req[:8])), time.Duration(binary.BigEndian.Uint64(req[8:]))
		var first [1]byte
		if _, err := io.ReadFull(c, first[:]); err != nil {
			return
		}
		start := time.Now()
		c.SetReadDeadline(start.Add(limit))
		n, _ := io.CopyN(io.Discard, c, want-1)
		took := time.Since(start)
		c.SetReadDeadline(time.Time{})
		var ans [16]byte
		binary.BigEndian.PutUint64(ans[:8], uint64(n))
		binary.BigEndian.PutUint64(ans[8:], uint64(took))
		c.Write(ans[:])
		io.Copy(io.Discard, c)
	case 'E':
		io.Copy(c, c)
	case 'C':
		c.Write([]byte{'k'})
	}
}

// dialer opens user connections from a lab host.
type dialer struct {
	lab  *natlab.Lab
	host string
	addr string
	cc   string // TCP congestion control of the user's side ("": the host's default)
}

func (d dialer) dial() (*net.TCPConn, error) {
	c, err := d.lab.Dial(d.host, "tcp4", d.addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if d.cc != "" {
		// Set before any data: the connection's sender starts with it.
		if err := setCongestion(c.(*net.TCPConn), d.cc); err != nil {
			c.Close()
			return nil, fmt.Errorf("TCP_CONGESTION %s: %w", d.cc, err)
		}
	}
	c.SetDeadline(time.Now().Add(3 * time.Minute))
	return c.(*net.TCPConn), nil
}

// throughput moves total bytes over streams parallel connections, up (user → service) or down,
// and returns Gbit/s.
func (d dialer) throughput(total int64, streams int, up bool) (float64, error) {
	per := total / int64(streams)
	conns := make([]*net.TCPConn, streams)
	for i := range conns {
		c, err := d.dial()
		if err != nil {
			return 0, err
		}
		defer c.Close()
		conns[i] = c
	}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if up {
				errs <- upload(c, per)
			} else {
				errs <- download(c, per)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(per*int64(streams)) * 8 / took.Seconds() / 1e9, nil
}

func upload(c *net.TCPConn, n int64) error {
	req := make([]byte, 9)
	req[0] = 'U'
	binary.BigEndian.PutUint64(req[1:], uint64(n))
	if _, err := c.Write(req); err != nil {
		return err
	}
	for left := n; left > 0; {
		k := min(left, int64(len(zeros)))
		if _, err := c.Write(zeros[:k]); err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		left -= k
	}
	var got uint64
	if err := binary.Read(c, binary.BigEndian, &got); err != nil {
		return fmt.Errorf("upload: no count back: %w", err)
	}
	if int64(got) != n {
		return fmt.Errorf("upload: service got %d of %d bytes", got, n)
	}
	return nil
}

func download(c *net.TCPConn, n int64) error {
	req := make([]byte, 9)
	req[0] = 'D'
	binary.BigEndian.PutUint64(req[1:], uint64(n))
	if _, err := c.Write(req); err != nil {
		return err
	}
	got, err := io.CopyN(io.Discard, c, n)
	if err != nil {
		return fmt.Errorf("download: %w after %d of %d bytes", err, got, n)
	}
	if got != n {
		return fmt.Errorf("download: %d of %d bytes", got, n)
	}
	return nil
}

// rtt measures count round trips of a 32-byte message on one connection, in microseconds.
func (d dialer) rtt(count int) (Sample, error) {
	c, err := d.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetNoDelay(true)
	if _, err := c.Write([]byte{'E'}); err != nil {
		return nil, err
	}
	msg := make([]byte, 32)
	buf := make([]byte, 32)
	out := make(Sample, 0, count)
	for i := 0; i < count+10; i++ {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		if i >= 10 { // the first ones warm the path up
			out = append(out, float64(time.Since(start).Nanoseconds())/1e3)
		}
	}
	return out, nil
}

// connRate opens, uses (one byte back) and closes connections from 4 workers for dur and
// returns connections per second.
func (d dialer) connRate(dur time.Duration) (float64, error) {
	n, err := loop(4, dur, func() error {
		c, err := d.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err = c.Write([]byte{'C'}); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		return err
	})
	if n == 0 && err != nil {
		return 0, err
	}
	return float64(n) / dur.Seconds(), nil
}

// loop runs once in a loop from workers goroutines for dur, each stopping at its first error,
// and returns how many runs succeeded and the first error.
func loop(workers int, dur time.Duration, once func() error) (int, error) {
	var mu sync.Mutex
	var n int
	var firstErr error
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				err := once()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					n++
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return n, firstErr
}

// firstByte times a new connection until its first echoed byte, in milliseconds.
func (d dialer) firstByte() (float64, error) {
	start := time.Now()
	c, err := d.dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte{'E', 'x'}); err != nil {
		return 0, err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, fmt.Errorf("first byte: %w", err)
	}
	return float64(time.Since(start).Microseconds()) / 1e3, nil
}

// rssMiB is a process's resident memory.
func rssMiB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is the user+system CPU time of processes so far.
func cpuSeconds(pids ...int) float64 {
	const ticks = 100 // USER_HZ on Linux
	total := 0.0
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces) start after the last ')'.
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			s, _ := strconv.ParseFloat(f[12], 64)
			total += (u + s) / ticks
		}
	}
	return total
}

// cpuNanos is the CPU time of processes so far, to the nanosecond: the sum over their threads
// of the scheduler's run time (/proc/PID/task/TID/schedstat), for figures too small for
// cpuSeconds' 10 ms ticks. Go runtimes keep their threads, so none is lost by exiting.
func cpuNanos(pids ...int) int64 {
	var total int64
	for _, pid := range pids {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
			if err != nil {
				continue
			}
			if f := strings.Fields(string(data)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				total += ns
			}
		}
	}
	return total
}

func percentiles(s Sample) (p50, p99 float64) {
	sort.Float64s(s)
	return s.Percentile(50), s.Percentile(99)
}
