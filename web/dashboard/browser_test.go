package dashboard

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/browsertest"
	"github.com/xp2p/xp2p/internal/testnet"
)

var (
	newBrowser = browsertest.New
	waitJS     = browsertest.WaitJS
	screenshot = browsertest.Screenshot
)

// pageValue reads a number the page shows (data-value of the element with id).
func pageValue(ctx context.Context, id string) (float64, error) {
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.getElementById(%q) || {dataset: {}}).dataset.value || ""`, id)))
	if err != nil || v == "" {
		return -1, err
	}
	return strconv.ParseFloat(v, 64)
}

// TestBrowser logs in to the dashboard of a running server in a real headless chromium, sees
// its proxies, watches the traffic figure grow while data flows (without reloading the page),
// opens a proxy's chart, and saves screenshots as test artifacts.
func TestBrowser(t *testing.T) {
	ctx := newBrowser(t)

	sink := testnet.StartService(t, testnet.SinkHandler)
	echo := testnet.StartService(t, func(c *net.TCPConn) { io.Copy(c, c); c.CloseWrite() })
	srv := testnet.StartServer(t, "")
	d := startDashboard(t, srv, authCfg(), Options{Tick: 250 * time.Millisecond})
	c := testnet.StartClient(t, testnet.ClientTOML(srv,
		testnet.TCPProxy("web", sink.Port(), 0)+testnet.TCPProxy("ssh", echo.Port(), 0)+fmt.Sprintf(`
[[proxies]]
name = "nas"
type = "xp2p"
secretKey = "browser-test-secret"
localIP = "127.0.0.1"
localPort = %d
`, echo.Port())))
	webAddr := testnet.WaitRunning(t, c, "web")
	testnet.WaitRunning(t, c, "ssh")
	testnet.WaitRunning(t, c, "nas")
	_, port, _ := net.SplitHostPort(webAddr)

	// Log in through the form.
	err := chromedp.Do(ctx,
		chromedp.Navigate(d.URL()),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#login-user"), testUser),
		chromedp.SendKeys(chromedp.CSS("#login-password"), "not-the-password"),
		chromedp.Click(chromedp.CSS("#login-submit")),
	)
	if err != nil {
		t.Fatalf("login form: %v", err)
	}
	waitJS(t, ctx, 10*time.Second, `document.getElementById('login-error').textContent.includes('Wrong user or password')`, "a wrong password shows an error")
	screenshot(t, ctx, "dashboard-login.png")
	err = chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`document.getElementById('login-password').value = ''`),
		chromedp.SendKeys(chromedp.CSS("#login-password"), testPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#app")),
		// A marker that a reload would wipe out.
		chromedp.Evaluate[chromedp.Void](`window.__notReloaded = true`),
	)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	waitJS(t, ctx, 10*time.Second, `document.getElementById('ov-proxies').dataset.value === '3'`, "the overview shows 3 proxies online")

	// The proxies page lists the server's proxies.
	if err := chromedp.Do(ctx, chromedp.Navigate(d.URL()+"/#proxies")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web", "ssh", "nas"} {
		waitJS(t, ctx, 10*time.Second, fmt.Sprintf(`!!document.querySelector('#proxies-table tr[data-name=%q]')`, name), "proxy "+name+" listed")
	}
	waitJS(t, ctx, 5*time.Second, `document.querySelector('#proxies-table tr[data-name="web"]').textContent.includes(':`+port+`')`, "the web proxy's remote port is shown")

	// Data flows through the web proxy at a steady pace until the test ends.
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := net.Dial("tcp", webAddr)
		if err != nil {
			t.Errorf("dial the proxy: %v", err)
			return
		}
		defer conn.Close()
		buf := make([]byte, 64<<10)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(90 * time.Second)
		for {
			select {
			case <-stop:
				return
			case <-deadline:
				return
			case <-tick.C:
			}
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Write(buf) // ~3 MB/s
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })

	// Open the proxy's detail panel with its chart.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#proxies-table tr[data-name="web"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 10*time.Second, `!document.getElementById('proxy-detail').hidden && Number(document.getElementById('chart-proxy').dataset.max || 0) > 0`, "the proxy's chart shows traffic")

	// Back to the overview: the traffic-in figure grows while data flows, with no reload.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = 'overview'`)); err != nil {
		t.Fatal(err)
	}
	var seen []float64
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < 4 && time.Now().Before(deadline) {
		v, err := pageValue(ctx, "ov-in")
		if err != nil {
			t.Fatal(err)
		}
		if v > 0 && (len(seen) == 0 || v > seen[len(seen)-1]) {
			seen = append(seen, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(seen) < 4 {
		t.Fatalf("the traffic figure did not keep growing: saw %v", seen)
	}
	notReloaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded === true`))
	if err != nil || !notReloaded {
		t.Fatalf("the page reloaded (marker gone), err %v", err)
	}
	waitJS(t, ctx, 10*time.Second, `Number(document.getElementById('chart-total').dataset.max || 0) > 0`, "the throughput chart shows traffic")
	t.Logf("measured: traffic-in figure on the page grew %v while %d bytes were sent", seen, sent.Load())
	screenshot(t, ctx, "dashboard-overview.png")

	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = 'proxies/web'`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 10*time.Second, `Number(document.getElementById('chart-proxy').dataset.max || 0) > 0`, "the proxy's chart shows traffic")
	screenshot(t, ctx, "dashboard-proxies.png")

	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = 'clients'`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 10*time.Second, `document.querySelectorAll('#clients-table tr[data-id]').length === 1`, "the client is listed")
	screenshot(t, ctx, "dashboard-clients.png")

	// A visitor opens a P2P session to the xp2p service; the sessions page shows it once both
	// sides reported (every 5 s).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bindPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	testnet.StartClient(t, testnet.ClientTOML(srv, fmt.Sprintf(`
[[visitors]]
name = "nas-visitor"
type = "xp2p"
serverName = "nas"
secretKey = "browser-test-secret"
bindAddr = "127.0.0.1"
bindPort = %d
`, bindPort)))
	if got, err := testnet.Exchange(net.JoinHostPort("127.0.0.1", strconv.Itoa(bindPort)), 2<<20, 30*time.Second); err != nil || got != 2<<20 {
		t.Fatalf("echo through the P2P session: %d bytes back, err %v", got, err)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = 'sessions'`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 20*time.Second, `(() => { const r = document.querySelector('#sessions-table tr[data-id]'); return !!r && !r.cells[4].textContent.includes('–'); })()`, "the P2P session is listed with its RTT")
	screenshot(t, ctx, "dashboard-sessions.png")

	// The same pages in a dark color scheme.
	dark := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return err
	})
	if err := chromedp.Do(ctx, dark); err != nil {
		t.Fatalf("emulate a dark color scheme: %v", err)
	}
	screenshot(t, ctx, "dashboard-sessions-dark.png")
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = 'overview'`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 10*time.Second, `Number(document.getElementById('chart-total').dataset.max || 0) > 0 && Number(document.getElementById('ov-p2p').dataset.value) > 0`, "the overview shows P2P traffic")
	screenshot(t, ctx, "dashboard-overview-dark.png")

	// Signing out shows the login form again, and the API refuses the old session.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form"))); err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch('/api/overview', {headers: {'X-Requested-With': 'test'}}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if status != 401 {
		t.Errorf("after signing out the API answers %d, want 401", status)
	}
}

// TestBrowserCredentialsInURL opens the dashboard as frp users open frp's panel, with the user
// and password in the URL: the page signs in with them (fetch() refuses URLs that carry
// credentials, so the page must call its API by the origin alone), and wrong ones in the URL
// say so on the sign-in card.
func TestBrowserCredentialsInURL(t *testing.T) {
	ctx := newBrowser(t)
	srv := testnet.StartServer(t, "")
	d := startDashboard(t, srv, authCfg(), Options{})
	withCreds := func(user, pass string) string {
		u, err := url.Parse(d.URL())
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(user, pass)
		return u.String() + "/"
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(withCreds(testUser, "wrong-password"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 10*time.Second, `!document.getElementById('login').hidden && document.getElementById('login-error').textContent.includes('in the address are wrong')`, "wrong credentials in the URL are reported on the sign-in card")
	if msg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('login-error').textContent`)); strings.Contains(msg, "fetch") {
		t.Fatalf("the sign-in card blames fetch: %q", msg)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(withCreds(testUser, testPassword))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 10*time.Second, `!document.getElementById('app').hidden && document.getElementById('ov-proxies').dataset.value === '0' && document.getElementById('live').classList.contains('ok')`, "the credentials in the URL sign in and the overview loads")
	screenshot(t, ctx, "dashboard-credentials-in-url.png")
}

// TestBrowserWeakPasswordBanner runs the frp guides' dashboard (admin/admin on 0.0.0.0): it
// works, and once signed in every page shows a red banner that says why it is unsafe; the
// sign-in card does not (a stranger is not told).
func TestBrowserWeakPasswordBanner(t *testing.T) {
	ctx := newBrowser(t)
	srv := testnet.StartServer(t, "")
	d := startDashboard(t, srv, config.WebServer{Addr: "0.0.0.0", User: "admin", Password: "admin"}, Options{})
	u, err := url.Parse(d.URL())
	if err != nil {
		t.Fatal(err)
	}
	page := "http://127.0.0.1:" + u.Port() + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#login-form"))); err != nil {
		t.Fatal(err)
	}
	if has, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.getElementById('security-banner')`)); has {
		t.Fatal("the sign-in card shows the banner to a stranger")
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#login-user"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#login-password"), "admin"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#app"))); err != nil {
		t.Fatal(err)
	}
	for _, view := range []string{"", "#clients", "#proxies", "#sessions"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(page+view)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, 10*time.Second, `(() => { const b = document.getElementById('security-banner');
			return !!b && b.textContent.includes('well-known password') && getComputedStyle(b).backgroundColor === 'rgb(176, 0, 32)'; })()`,
			"a red banner naming the well-known password on "+page+view)
	}
	screenshot(t, ctx, "dashboard-weak-password-banner.png")
}
