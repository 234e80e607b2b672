//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// frpVersion is the frp release the bench compares with.
const frpVersion = "v0.70.1"

// buildFRP builds frps and frpc of frpVersion through the Go module proxy into a cache
// directory and returns it. `go install github.com/fatedier/frp/cmd/frps@VERSION` does not
// work: the module's web assets (go:embed of web/*/dist) are not in its zip, so the module is
// copied and given placeholder pages (the dashboards are not benchmarked).
func buildFRP(cacheDir string) (string, error) {
	dir := filepath.Join(cacheDir, "frp-"+frpVersion)
	frps, frpc := filepath.Join(dir, "frps"), filepath.Join(dir, "frpc")
	if isFile(frps) && isFile(frpc) {
		return dir, nil
	}
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/fatedier/frp@"+frpVersion).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download frp %s: %w", frpVersion, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download frp %s: %s", frpVersion, mod.Error)
	}
	src := filepath.Join(dir, "src")
	os.RemoveAll(src)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("cp", "-r", mod.Dir, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy frp source: %v: %s", err, out)
	}
	exec.Command("chmod", "-R", "u+w", src).Run()
	for _, web := range []string{"web/frps/dist", "web/frpc/dist"} {
		if err := os.MkdirAll(filepath.Join(src, web), 0o755); err != nil {
			return "", err
		}
		os.WriteFile(filepath.Join(src, web, "index.html"), []byte("<!doctype html><title>frp</title>\n"), 0o644)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir, "./cmd/frps", "./cmd/frpc")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build frp %s: %v\n%s", frpVersion, err, out)
	}
	os.RemoveAll(src)
	return dir, nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
