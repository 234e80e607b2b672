// Package browsertest runs the web front ends' pages in a real headless chromium (through
// chromedp) for tests: a fresh browser per test, waiting on conditions in the page, and
// screenshots kept as test artifacts.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns the browser to test with: $XP2P_CHROMIUM, else Debian's chromium.
func findChromium() string {
	if p := os.Getenv("XP2P_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless chromium with a fresh profile and the extra options (e.g.
// chromedp.Flag("host-resolver-rules", ...)), or skips the test where there is none (it
// fails instead when XP2P_BROWSER_REQUIRED=1, as in CI).
func New(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := findChromium()
	if path == "" {
		if os.Getenv("XP2P_BROWSER_REQUIRED") == "1" {
			t.Fatal("XP2P_BROWSER_REQUIRED=1 but no chromium found: apt-get install -y chromium chromium-driver (or set XP2P_CHROMIUM)")
		}
		t.Skipf("skipping browser test %s: no chromium found (apt-get install chromium chromium-driver, or set XP2P_CHROMIUM)", t.Name())
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1440, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		if os.Getenv("XP2P_BROWSER_REQUIRED") == "1" {
			t.Fatalf("start %s: %v", path, err)
		}
		t.Skipf("skipping browser test %s: cannot start %s: %v", t.Name(), path, err)
	}
	return ctx
}

// artifact returns where a test artifact goes: testdata/artifacts at the repository's root
// (git-ignored), else a temporary directory.
func artifact(t *testing.T, name string) string {
	dir := filepath.Join(repoRoot(), "testdata", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		dir = t.TempDir()
	}
	p, _ := filepath.Abs(filepath.Join(dir, name))
	return p
}

// Screenshot saves a full-page PNG of the page as a test artifact.
func Screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := artifact(t, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
	t.Logf("screenshot: %s", p)
}

// WaitJS polls a JavaScript condition in the page until it is true.
func WaitJS(t *testing.T, ctx context.Context, timeout time.Duration, expr, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// repoRoot is the module's root directory (where go.mod is), from the test's directory.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
