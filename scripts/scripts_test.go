package scripts

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildXP2P builds the binary once for the tests of this package.
func buildXP2P(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xp2p")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/xp2p")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// install runs install.sh with args and returns its output.
func install(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("sh", append([]string{"install.sh"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tree lists every file under root with its mode and content hash.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		entry := info.Mode().String()
		if !d.IsDir() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			entry += " " + hex.EncodeToString(sum[:8])
		}
		out[rel] = entry
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInstallIdempotentAndUninstall(t *testing.T) {
	bin := buildXP2P(t)
	root := t.TempDir()
	install(t, "--root", root, "--binary", bin)
	first := tree(t, root)
	install(t, "--root", root, "--binary", bin)
	if second := tree(t, root); !equal(first, second) {
		t.Errorf("a second install changed the tree:\nfirst  %v\nsecond %v", first, second)
	}

	want := map[string]string{
		"usr/local/bin/xp2p":                      "-rwxr-xr-x",
		"etc/systemd/system/xp2p-server.service":  "-rw-r--r--",
		"etc/systemd/system/xp2p-client@.service": "-rw-r--r--",
		"etc/xp2p/server.toml.example":            "-rw-r-----",
		"etc/xp2p/client.toml.example":            "-rw-r-----",
		"etc/xp2p":                                "drwxr-x---",
	}
	for path, mode := range want {
		if got := first[path]; !strings.HasPrefix(got, mode) {
			t.Errorf("%s: mode %q, want %s", path, got, mode)
		}
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/xp2p-server.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/xp2p server -c ${CREDENTIALS_DIRECTORY}/config.toml") || strings.Contains(string(unit), "@BINDIR@") {
		t.Errorf("server unit does not run the installed binary:\n%s", unit)
	}
	// The skeletons are valid configs as installed.
	for _, name := range []string{"server.toml.example", "client.toml.example"} {
		out, err := exec.Command(bin, "verify", "-c", filepath.Join(root, "etc/xp2p", name)).CombinedOutput()
		if err != nil {
			t.Errorf("xp2p verify %s: %v\n%s", name, err, out)
		}
	}

	// A config of the user's survives an uninstall; everything installed goes.
	userConfig := filepath.Join(root, "etc/xp2p/home.toml")
	if err := os.WriteFile(userConfig, []byte("serverAddr = \"x\"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	install(t, "--root", root, "--uninstall")
	left := tree(t, root)
	for path := range want {
		if _, ok := left[path]; ok && path != "etc/xp2p" {
			t.Errorf("%s left after uninstall", path)
		}
	}
	if _, err := os.Stat(userConfig); err != nil {
		t.Errorf("uninstall removed the user's config: %v", err)
	}
	// Uninstalling twice is fine too.
	install(t, "--root", root, "--uninstall")
}

func TestInstallPrefixAndErrors(t *testing.T) {
	bin := buildXP2P(t)
	root := t.TempDir()
	install(t, "--root", root, "--prefix", "/opt/xp2p", "--binary", bin)
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/xp2p-client@.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/opt/xp2p/bin/xp2p client", "ExecReload=+/opt/xp2p/bin/xp2p reload -c /etc/xp2p/%i.toml"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("client unit lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "opt/xp2p/bin/xp2p")); err != nil {
		t.Errorf("binary not under the prefix: %v", err)
	}
	for _, args := range [][]string{{"--prefix", "relative/dir"}, {"--bogus"}, {"--root", root, "--binary", "/nonexistent/xp2p"}} {
		out, err := exec.Command("sh", append([]string{"install.sh"}, args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "install.sh:") {
			t.Errorf("install.sh %v: %v, %s (want a clear error)", args, err, out)
		}
	}
}

// TestUnitsVerify runs systemd-analyze verify on the installed units: unknown keys, bad values
// and missing binaries are all reported on its output, which must stay empty.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("XP2P_LAB_REQUIRED") == "1" {
			t.Fatal("XP2P_LAB_REQUIRED=1 but systemd-analyze is missing (apt-get install systemd)")
		}
		t.Skipf("skipping %s: systemd-analyze is missing (apt-get install systemd)", t.Name())
	}
	bin := buildXP2P(t)
	// The units must name a binary that exists on this host: install under a prefix that is
	// itself a temporary directory, and put the binary there too.
	root, prefix := t.TempDir(), t.TempDir()
	install(t, "--root", root, "--prefix", prefix, "--binary", bin)
	if err := os.MkdirAll(filepath.Join(prefix, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(bin)
	if err := os.WriteFile(filepath.Join(prefix, "bin/xp2p"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	units := filepath.Join(root, "etc/systemd/system")
	// A template is verified through an instance of it.
	if err := os.Symlink("xp2p-client@.service", filepath.Join(units, "xp2p-client@home.service")); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"xp2p-server.service", "xp2p-client@home.service"} {
		cmd := exec.Command(analyze, "verify", u)
		cmd.Dir = units
		out, err := cmd.CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
