package demo

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"
)

// TestDemo runs the README's first command (smaller): every path answers every request, the
// P2P session goes direct, and the udp service's datagrams ride QUIC datagrams.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, logs bytes.Buffer
	if err := Run(ctx, Options{Requests: 20, BulkMB: 2}, &out, &logs); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`direct to the service .* 20 ok`,
		`tcp proxy via server .* 20 ok`,
		`xp2p P2P session .* 20 ok`,
		`xp2p session, relayed .* 20 ok`,
		`udp over P2P \(QUIC datagrams\): 20 of 20 echoed`,
		`P2P session \w+ to "web-p2p": path direct`,
		`P2P session \w+ to "echo-udp": path direct`,
		`\d+ QUIC datagrams`,
		// The address pair is the addresses that carry the traffic, each said what it is.
		`visitor  \d+\.\d+\.\d+\.\d+:\d+ +the visitor's UDP socket`,
		`provider \d+\.\d+\.\d+\.\d+:\d+ +the provider's UDP socket, reached directly`,
		`Everything is shut down`,
	} {
		if regexp.MustCompile(`0\.0\.0\.0|\[::\]`).Match(out.Bytes()) {
			t.Errorf("the demo shows a wildcard address:\n%s", out.String())
			break
		}
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out.String())
		}
	}
}
