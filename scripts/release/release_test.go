package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRelease builds the release set of linux/amd64 and checks what a user gets: the archive's
// files, SHA256SUMS that sha256sum accepts, and a .deb whose control fields, files and modes
// are right and whose binary says the stamped version, commit and date.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release binary; run without -short")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	o := Options{Root: root, Out: t.TempDir(), Version: "1.2.3", Commit: "abcdef123456", Date: date,
		Targets: []Target{{OS: "linux", Arch: "amd64"}}, Debs: true, Jobs: 1}
	written, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"xp2p_1.2.3_linux_amd64.tar.gz", "xp2p_1.2.3_amd64.deb", "SHA256SUMS"}
	if !slices.Equal(written, want) {
		t.Fatalf("wrote %v, want %v", written, want)
	}

	f, err := os.Open(filepath.Join(o.Out, want[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			names = append(names, h.Name)
		}
		if h.Name == "xp2p_1.2.3_linux_amd64/xp2p" && h.Mode != 0o755 {
			t.Errorf("xp2p in the archive has mode %o", h.Mode)
		}
	}
	for _, n := range []string{"xp2p", "README.md", "install.sh", "config/client.toml.example", "config/server.toml.example", "systemd/xp2p-server.service", "systemd/xp2p-client@.service"} {
		if !slices.Contains(names, "xp2p_1.2.3_linux_amd64/"+n) {
			t.Errorf("the archive lacks %s: %v", n, names)
		}
	}

	if sum, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command(sum, "-c", "SHA256SUMS")
		cmd.Dir = o.Out
		if out, err := cmd.CombinedOutput(); err != nil || strings.Count(string(out), ": OK") != 2 {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
	}

	dpkgDeb, err := exec.LookPath("dpkg-deb")
	if err != nil {
		t.Skip("no dpkg-deb to read the .deb with (apt-get install dpkg)")
	}
	pkg := filepath.Join(o.Out, want[1])
	info, err := exec.Command(dpkgDeb, "-f", pkg, "Package", "Version", "Architecture").Output()
	if err != nil || string(info) != "Package: xp2p\nVersion: 1.2.3\nArchitecture: amd64\n" {
		t.Errorf("control fields: %v %q", err, info)
	}
	list, err := exec.Command(dpkgDeb, "-c", pkg).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"-rwxr-xr-x root/root", "./usr/bin/xp2p", "./lib/systemd/system/xp2p-server.service", "./lib/systemd/system/xp2p-client@.service", "-rw-r----- root/root", "./etc/xp2p/client.toml.example", "drwxr-x--- root/root"} {
		if !strings.Contains(string(list), line) {
			t.Errorf("the .deb lacks %q:\n%s", line, list)
		}
	}
	conf, err := exec.Command(dpkgDeb, "-I", pkg, "conffiles").Output()
	if err != nil || !strings.Contains(string(conf), "/etc/xp2p/server.toml.example") {
		t.Errorf("conffiles: %v %s", err, conf)
	}
	x := t.TempDir()
	if out, err := exec.Command(dpkgDeb, "-x", pkg, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v %s", err, out)
	}
	unit, _ := os.ReadFile(filepath.Join(x, "lib/systemd/system/xp2p-client@.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/xp2p client") || strings.Contains(string(unit), "@BINDIR@") {
		t.Errorf("the packaged unit does not name /usr/bin/xp2p:\n%s", unit)
	}
	out, err := exec.Command(filepath.Join(x, "usr/bin/xp2p"), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "xp2p 1.2.3\n  commit  abcdef123456\n  built   2026-12-01 10:00:00 UTC\n") {
		t.Errorf("xp2p version of the package: %v\n%s", err, out)
	}
}
