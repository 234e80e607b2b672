package peer

import (
	"bufio"
	"bytes"
	"testing"

	proxyproto "github.com/pires/go-proxyproto"
)

func TestProxyHeader(t *testing.T) {
	cases := []struct {
		name, version, src, dst string
		wantV1                  string // exact v1 text, when version is v1
		wantSrc, wantDst        string // what a v2 reader parses, when version is v2
		none                    bool
		local                   bool // v2: a LOCAL header (no addresses)
	}{
		{name: "v1 ipv4", version: "v1", src: "198.51.100.7:51000", dst: "203.0.113.1:6000", wantV1: "PROXY TCP4 198.51.100.7 203.0.113.1 51000 6000\r\n"},
		{name: "v1 mapped ipv4", version: "v1", src: "[::ffff:198.51.100.7]:51000", dst: "[::ffff:203.0.113.1]:6000", wantV1: "PROXY TCP4 198.51.100.7 203.0.113.1 51000 6000\r\n"},
		{name: "v1 no dst (older server)", version: "v1", src: "198.51.100.7:51000", dst: "", wantV1: "PROXY TCP4 198.51.100.7 0.0.0.0 51000 0\r\n"},
		{name: "v2 ipv6", version: "v2", src: "[2001:db8::7]:51000", dst: "[2001:db8::1]:6000", wantSrc: "[2001:db8::7]:51000", wantDst: "[2001:db8::1]:6000"},
		{name: "v2 mixed families", version: "v2", src: "[2001:db8::7]:51000", dst: "203.0.113.1:6000", wantSrc: "[2001:db8::7]:51000", wantDst: "[::]:0"},
		{name: "off", version: "", src: "198.51.100.7:51000", dst: "203.0.113.1:6000", none: true},
		{name: "unknown version", version: "v3", src: "198.51.100.7:51000", dst: "203.0.113.1:6000", none: true},
		{name: "v1 src not an address", version: "v1", src: "pipe", dst: "203.0.113.1:6000", wantV1: "PROXY UNKNOWN\r\n"},
		{name: "v2 src not an address", version: "v2", src: "pipe", dst: "203.0.113.1:6000", local: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := proxyHeader(tc.version, tc.src, tc.dst)
			switch {
			case tc.none:
				if b != nil {
					t.Fatalf("header %q, want none", b)
				}
			case tc.version == "v1":
				if string(b) != tc.wantV1 {
					t.Fatalf("%q, want %q", b, tc.wantV1)
				}
			default:
				h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(b)))
				if err != nil {
					t.Fatalf("a PROXY reader refused %x: %v", b, err)
				}
				if tc.local {
					if h.Version != 2 || h.Command != proxyproto.LOCAL {
						t.Fatalf("parsed v%d command %v, want a v2 LOCAL header", h.Version, h.Command)
					}
					return
				}
				if h.Version != 2 || h.SourceAddr.String() != tc.wantSrc || h.DestinationAddr.String() != tc.wantDst {
					t.Fatalf("parsed v%d %s → %s, want v2 %s → %s", h.Version, h.SourceAddr, h.DestinationAddr, tc.wantSrc, tc.wantDst)
				}
			}
		})
	}
}
