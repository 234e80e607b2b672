package session

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/xp2p/xp2p/internal/tlsconf"
)

// yamuxPair is two ends of a yamux session over TLS over TCP on loopback.
func yamuxPair(t *testing.T) (client, server Session, tcp net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cert, err := tlsconf.SelfSigned("x")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := tls.Server(<-accepted, &tls.Config{Certificates: []tls.Certificate{cert}})
	cc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	go sc.Handshake()
	if err := cc.Handshake(); err != nil {
		t.Fatal(err)
	}
	mc, err := yamux.Client(cc, YamuxConfig(0))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := yamux.Server(sc, YamuxConfig(0))
	if err != nil {
		t.Fatal(err)
	}
	client, server = Yamux(cc, mc), Yamux(sc, ms)
	t.Cleanup(func() { client.Close(""); server.Close("") })
	return client, server, raw
}

// TestYamuxStreamEnds: a stream the peer finished ends with io.EOF; one cut because the session
// died (its TCP connection reset, as a dying path or a man in the middle does) ends with an
// error, after the bytes that came: never a clean end, which would pass a cut transfer on as
// complete.
func TestYamuxStreamEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, server, raw := yamuxPair(t)
	open := func() (Stream, Stream) {
		a, err := client.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a.Write([]byte("hello"))
		b, err := server.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
	a, b := open()
	a.CloseWrite()
	if got, err := io.ReadAll(b); string(got) != "hello" || err != nil {
		t.Errorf("a finished stream: %q, %v; want hello and a clean end", got, err)
	}
	a, b = open()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(b, buf); err != nil {
		t.Fatal(err)
	}
	raw.(*net.TCPConn).SetLinger(0)
	raw.Close() // the path dies under the stream
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(b)
	if err == nil || errors.Is(err, io.EOF) {
		t.Errorf("a stream whose session died ended with %v, want an error", err)
	}
	if !IsClosed(err) {
		t.Errorf("IsClosed(%v) = false: the session ended", err)
	}
	_ = a
}
