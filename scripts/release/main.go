// Command release builds xp2p's release set in one run, as frp ships it: an archive per system
// and architecture (linux amd64, arm64 and armv7, darwin amd64 and arm64, windows amd64,
// freebsd amd64; tar.gz, zip for Windows) with the binary, the README, the config skeletons,
// and for Linux the systemd units and install.sh; a .deb per Linux architecture with the
// binary in /usr/bin, the units and the skeletons in /etc/xp2p (built with nfpm as a
// library); and SHA256SUMS over all of them. Every binary is stamped with the version, the
// commit and the build date (`xp2p version`).
//
//	go run ./scripts/release [-version 1.2.3] [-out dist] [-targets linux/amd64,windows/amd64] [-deb=false]
package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"golang.org/x/sync/errgroup"
)

// Target is one system and architecture of the release set.
type Target struct {
	OS, Arch, ARM string // ARM: GOARM for Arch "arm"
}

// Name is how archives name the target: linux_amd64, linux_armv7.
func (t Target) Name() string {
	if t.Arch == "arm" {
		return t.OS + "_armv" + t.ARM
	}
	return t.OS + "_" + t.Arch
}

// DebArch is the target's Debian architecture ("" where there is no .deb).
func (t Target) DebArch() string {
	if t.OS != "linux" {
		return ""
	}
	switch t.Arch {
	case "amd64", "arm64":
		return t.Arch
	case "arm":
		return "armhf"
	}
	return ""
}

// Targets is the release set.
var Targets = []Target{
	{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}, {OS: "linux", Arch: "arm", ARM: "7"},
	{OS: "darwin", Arch: "amd64"}, {OS: "darwin", Arch: "arm64"},
	{OS: "windows", Arch: "amd64"},
	{OS: "freebsd", Arch: "amd64"},
}

// Options are one release run's settings.
type Options struct {
	Root    string // the repository
	Out     string // where the set goes
	Version string
	Commit  string
	Date    time.Time
	Targets []Target
	Debs    bool
	Jobs    int // builds at once
}

func main() {
	root, err := repoRoot()
	if err != nil {
		fail(err)
	}
	o := Options{Root: root, Debs: true, Jobs: runtime.NumCPU()}
	var targets string
	flag.StringVar(&o.Version, "version", "", "version to stamp (default: the git tag on HEAD without its v, else 0.1.0-dev)")
	flag.StringVar(&o.Out, "out", filepath.Join(root, "dist"), "directory for the release set (emptied first)")
	flag.StringVar(&targets, "targets", "", "comma-separated OS/ARCH (linux/arm means armv7); default: all of "+targetList(Targets))
	flag.BoolVar(&o.Debs, "deb", true, "also build the .deb packages of the Linux targets")
	flag.Parse()
	if o.Targets, err = parseTargets(targets); err != nil {
		fail(err)
	}
	if err := o.stamp(); err != nil {
		fail(err)
	}
	start := time.Now()
	written, err := Build(context.Background(), o)
	if err != nil {
		fail(err)
	}
	for _, f := range written {
		fmt.Println(filepath.Join(o.Out, f))
	}
	fmt.Printf("xp2p %s (commit %s, %s): %d files in %s, %s\n", o.Version, o.Commit, o.Date.Format(time.RFC3339), len(written), o.Out, time.Since(start).Round(time.Second))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "release:", err)
	os.Exit(1)
}

func targetList(ts []Target) string {
	var names []string
	for _, t := range ts {
		names = append(names, t.OS+"/"+t.Arch)
	}
	return strings.Join(names, ",")
}

func parseTargets(s string) ([]Target, error) {
	if s == "" {
		return Targets, nil
	}
	var out []Target
	for _, name := range strings.Split(s, ",") {
		i := slices.IndexFunc(Targets, func(t Target) bool { return t.OS+"/"+t.Arch == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("unknown target %q; the release set is %s", name, targetList(Targets))
		}
		out = append(out, Targets[i])
	}
	return out, nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// stamp fills in the version, the commit and the date from git where they are not given. The
// date is SOURCE_DATE_EPOCH when set (reproducible builds), else now.
func (o *Options) stamp() error {
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = o.Root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	if o.Version == "" {
		o.Version = strings.TrimPrefix(git("describe", "--tags", "--exact-match"), "v")
		if o.Version == "" {
			o.Version = "0.1.0-dev"
		}
	}
	if o.Commit == "" {
		o.Commit = git("rev-parse", "--short=12", "HEAD")
		if o.Commit != "" && git("status", "--porcelain", "--untracked-files=no") != "" {
			o.Commit += "-dirty"
		}
	}
	if o.Date.IsZero() {
		o.Date = time.Now().UTC().Truncate(time.Second)
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			sec, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
			}
			o.Date = time.Unix(sec, 0).UTC()
		}
	}
	return nil
}

// Build writes the release set into o.Out and returns its files' names, SHA256SUMS last.
func Build(ctx context.Context, o Options) ([]string, error) {
	if err := os.RemoveAll(o.Out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "xp2p-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	// The builds share the machine's cores; archives and packages are cheap next to them.
	results := make([][]string, len(o.Targets))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, o.Jobs))
	for i, t := range o.Targets {
		g.Go(func() error {
			bin, err := o.buildBinary(ctx, t, filepath.Join(tmp, t.Name()))
			if err != nil {
				return err
			}
			archive, err := o.archive(t, bin)
			if err != nil {
				return fmt.Errorf("%s archive: %w", t.Name(), err)
			}
			results[i] = append(results[i], archive)
			if o.Debs && t.DebArch() != "" {
				pkg, err := o.deb(t, bin, filepath.Join(tmp, t.Name()))
				if err != nil {
					return fmt.Errorf("%s .deb: %w", t.Name(), err)
				}
				results[i] = append(results[i], pkg)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var written []string
	for _, r := range results {
		written = append(written, r...)
	}
	sums, err := sha256sums(o.Out, written)
	if err != nil {
		return nil, err
	}
	return append(written, sums), nil
}

// buildBinary builds xp2p for t into dir and returns its path.
func (o *Options) buildBinary(ctx context.Context, t Target, dir string) (string, error) {
	name := "xp2p"
	if t.OS == "windows" {
		name += ".exe"
	}
	bin := filepath.Join(dir, name)
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s -X main.date=%s", o.Version, o.Commit, o.Date.Format(time.RFC3339))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", bin, "./cmd/xp2p")
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch, "GOARM="+t.ARM, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build for %s: %v\n%s", t.Name(), err, out)
	}
	return bin, nil
}

// file is one entry of an archive or package: its path inside, its mode and content.
type file struct {
	name string
	mode os.FileMode
	data []byte
}

// payload is what an archive of t holds besides the binary.
func (o *Options) payload(t Target, bindir string) ([]file, error) {
	var out []file
	add := func(name, src string, mode os.FileMode, edit func([]byte) []byte) error {
		data, err := os.ReadFile(filepath.Join(o.Root, src))
		if err != nil {
			return err
		}
		if edit != nil {
			data = edit(data)
		}
		out = append(out, file{name, mode, data})
		return nil
	}
	unit := func(data []byte) []byte { return bytes.ReplaceAll(data, []byte("@BINDIR@"), []byte(bindir)) }
	entries := []struct {
		name, src string
		mode      os.FileMode
		linux     bool
		edit      func([]byte) []byte
	}{
		{"README.md", "README.md", 0o644, false, nil},
		{"config/server.toml.example", "scripts/config/server.toml.example", 0o644, false, nil},
		{"config/client.toml.example", "scripts/config/client.toml.example", 0o644, false, nil},
		// install.sh puts the units where the binary goes; they keep @BINDIR@ for it.
		{"systemd/xp2p-server.service", "scripts/systemd/xp2p-server.service", 0o644, true, nil},
		{"systemd/xp2p-client@.service", "scripts/systemd/xp2p-client@.service", 0o644, true, nil},
		{"install.sh", "scripts/install.sh", 0o755, true, nil},
	}
	for _, e := range entries {
		if e.linux && t.OS != "linux" {
			continue
		}
		edit := e.edit
		if bindir != "" && strings.HasPrefix(e.name, "systemd/") {
			edit = unit
		}
		if err := add(e.name, e.src, e.mode, edit); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// archive writes xp2p_VERSION_OS_ARCH.tar.gz (.zip for Windows) with one top directory.
func (o *Options) archive(t Target, bin string) (string, error) {
	base := "xp2p_" + o.Version + "_" + t.Name()
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	entries, err := o.payload(t, "")
	if err != nil {
		return "", err
	}
	entries = append([]file{{filepath.Base(bin), 0o755, data}}, entries...)
	name := base + ".tar.gz"
	if t.OS == "windows" {
		name = base + ".zip"
	}
	f, err := os.Create(filepath.Join(o.Out, name))
	if err != nil {
		return "", err
	}
	defer f.Close()
	if t.OS == "windows" {
		err = writeZip(f, base, entries, o.Date)
	} else {
		err = writeTarGz(f, base, entries, o.Date)
	}
	if err != nil {
		return "", err
	}
	return name, f.Close()
}

func writeTarGz(w io.Writer, dir string, entries []file, mtime time.Time) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	dirs := map[string]bool{}
	for _, e := range entries {
		for d := filepath.Dir(e.name); d != "."; d = filepath.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/" + d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
					return err
				}
			}
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: dir + "/" + e.name, Mode: int64(e.mode), Size: int64(len(e.data)), ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeZip(w io.Writer, dir string, entries []file, mtime time.Time) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		h := &zip.FileHeader{Name: dir + "/" + e.name, Method: zip.Deflate, Modified: mtime}
		h.SetMode(e.mode)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := fw.Write(e.data); err != nil {
			return err
		}
	}
	return zw.Close()
}

// postinst lets systemd see the units (they are not enabled: a config must be written first).
const postinst = `#!/bin/sh
set -e
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
	systemctl daemon-reload || true
fi
`

// deb writes xp2p_VERSION_ARCH.deb: /usr/bin/xp2p, the units in /lib/systemd/system (naming
// /usr/bin), the skeletons in /etc/xp2p (conffiles, 0640: real configs hold tokens).
func (o *Options) deb(t Target, bin, work string) (string, error) {
	entries, err := o.payload(t, "/usr/bin")
	if err != nil {
		return "", err
	}
	contents := files.Contents{
		{Source: bin, Destination: "/usr/bin/xp2p", FileInfo: &files.ContentFileInfo{Mode: 0o755, MTime: o.Date}},
		{Destination: "/etc/xp2p", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o750, MTime: o.Date}},
	}
	for _, e := range entries {
		var dst, typ string
		mode := e.mode
		switch {
		case strings.HasPrefix(e.name, "systemd/"):
			dst = "/lib/systemd/system/" + filepath.Base(e.name)
		case strings.HasPrefix(e.name, "config/"):
			dst, typ, mode = "/etc/xp2p/"+filepath.Base(e.name), files.TypeConfigNoReplace, 0o640
		case e.name == "README.md":
			dst = "/usr/share/doc/xp2p/README.md"
		default:
			continue // install.sh: the package installs itself
		}
		src := filepath.Join(work, "deb", e.name)
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(src, e.data, 0o644); err != nil {
			return "", err
		}
		contents = append(contents, &files.Content{Source: src, Destination: dst, Type: typ, FileInfo: &files.ContentFileInfo{Mode: mode, MTime: o.Date}})
	}
	script := filepath.Join(work, "deb", "postinst")
	if err := os.WriteFile(script, []byte(postinst), 0o755); err != nil {
		return "", err
	}
	arch := t.Arch
	if t.Arch == "arm" {
		arch = "arm7"
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:        "xp2p",
		Arch:        arch,
		Platform:    "linux",
		Version:     o.Version,
		Section:     "net",
		Priority:    "optional",
		Maintainer:  "xp2p developers <xp2p@users.noreply.github.com>",
		Description: "P2P-first NAT traversal: reach services behind NAT, directly or through a relay\nA rendezvous server, clients that punch through both NATs and carry traffic over QUIC,\nfrp-style tcp/udp proxies, and frp's config keys.",
		Homepage:    "https://github.com/xp2p/xp2p",
		License:     "see /usr/share/doc/xp2p",
		MTime:       o.Date,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts:  nfpm.Scripts{PostInstall: script},
		},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	name := fmt.Sprintf("xp2p_%s_%s.deb", o.Version, t.DebArch())
	f, err := os.Create(filepath.Join(o.Out, name))
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := deb.Default.Package(info, f); err != nil {
		return "", err
	}
	return name, f.Close()
}

// sha256sums writes SHA256SUMS (sha256sum -c reads it) over names and returns its name.
func sha256sums(dir string, names []string) (string, error) {
	if len(names) == 0 {
		return "", errors.New("nothing built")
	}
	var b strings.Builder
	for _, n := range slices.Sorted(slices.Values(names)) {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), n)
	}
	return "SHA256SUMS", os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}
