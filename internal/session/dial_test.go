package session

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// TestDialUnreachable: a server that is not there (TCP refused, UDP silent) is reported at once
// for what is known (TCP refused, while QUIC still waits), and the final error lists both
// attempts on one line.
func TestDialUnreachable(t *testing.T) {
	// A port with nothing on it, TCP or UDP.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	defer tr.Close()

	var mu sync.Mutex
	var early []string
	var earlyAt time.Duration
	start := time.Now()
	d := &Dialer{
		Transport: tr, TLS: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"x"}}, QUIC: &quic.Config{},
		Protocol: ProtocolAuto, TCPDelay: 100 * time.Millisecond,
		Failed: func(err error, stillTrying string) {
			mu.Lock()
			defer mu.Unlock()
			if earlyAt == 0 {
				earlyAt = time.Since(start)
			}
			early = append(early, err.Error()+" (still trying "+stillTrying+")")
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = d.Dial(ctx, addr)
	var de *DialError
	if !errors.As(err, &de) || len(de.Attempts) != 2 {
		t.Fatalf("Dial: %v, want a DialError of 2 attempts", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "connection refused") || !strings.Contains(msg, "no answer from "+addr+" over UDP") {
		t.Errorf("final error %q", msg)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(early) != 1 || !strings.Contains(early[0], "tcp: ") || !strings.Contains(early[0], "refused") || !strings.Contains(early[0], "still trying quic") {
		t.Errorf("reported early: %q", early)
	}
	if earlyAt > time.Second {
		t.Errorf("the refusal was reported after %s, want it at once", earlyAt)
	}
	t.Logf("TCP refusal reported after %s; the whole dial took %s", earlyAt, time.Since(start))
}
