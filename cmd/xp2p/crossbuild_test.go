package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCrossBuild: the binary builds for the systems visitors and clients run on, not only for
// Linux servers: a Linux-only call outside a _linux.go file (or its !linux stand-in) fails here.
// Those systems run the portable paths (no GSO, GRO or packet info); CI runs Linux only. One
// target per family of build tags, and 32-bit ARM for integer widths; the release build
// (scripts/release) builds the whole set with the same flags, so it reuses these compilations.
func TestCrossBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("cross builds take a while; run without -short")
	}
	t.Parallel() // beside the package's other tests, which mostly wait on processes
	for _, target := range []struct{ goos, goarch, goarm string }{
		{"darwin", "arm64", ""},
		{"windows", "amd64", ""},
		{"freebsd", "amd64", ""},
		{"linux", "arm", "7"},
	} {
		t.Run(target.goos+"/"+target.goarch, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", filepath.Join(t.TempDir(), "xp2p"), ".")
			cmd.Env = append(os.Environ(), "GOOS="+target.goos, "GOARCH="+target.goarch, "GOARM="+target.goarm, "CGO_ENABLED=0", "GOFLAGS=")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build for %s/%s: %v\n%s", target.goos, target.goarch, err, out)
			}
		})
	}
}
