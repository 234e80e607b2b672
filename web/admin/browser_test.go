package admin

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/browsertest"
	"github.com/xp2p/xp2p/internal/testnet"
	"github.com/xp2p/xp2p/peer"
	"github.com/xp2p/xp2p/web"
)

// TestBrowser opens a real client's page in a headless chromium, as frpc's admin UI is used:
// sign in (a wrong password first, then credentials in the URL), see the servers and NAT,
// the proxies, a visitor's P2P session with its path and RTT, the warning a dead local
// service causes, then edit the config in the page and apply it (the new proxy runs; an
// invalid edit is refused with its line). Screenshots are kept as test artifacts.
func TestBrowser(t *testing.T) {
	ctx := browsertest.New(t)
	sink := testnet.StartService(t, testnet.SinkHandler)
	echo := testnet.StartService(t, testnet.ReplyHandler(64<<10))
	dead := testnet.StartService(t, testnet.SinkHandler)
	deadPort := dead.Port()
	dead.Close()
	srv := testnet.StartServer(t, "")
	testnet.StartClient(t, testnet.ClientTOML(srv, fmt.Sprintf("\n[[proxies]]\nname = \"nas\"\ntype = \"xp2p\"\nsecretKey = \"page-test-secret\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %d\n", echo.Port())))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bind := ln.Addr().String()
	ln.Close()
	_, bindPort, _ := net.SplitHostPort(bind)
	text := testnet.ClientTOML(srv, testnet.TCPProxy("web", sink.Port(), 0)+testnet.TCPProxy("dead", deadPort, 0)+
		"\n[[visitors]]\nname = \"nas-visitor\"\ntype = \"xp2p\"\nserverName = \"nas\"\nsecretKey = \"page-test-secret\"\nbindAddr = \"127.0.0.1\"\nbindPort = "+bindPort+"\n")
	path := filepath.Join(t.TempDir(), "home.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.ParseClient(path, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := testnet.Logger(t, "client")
	recent := web.NewRecentLogs(base.Handler(), 100)
	c, err := peer.New(cfg, slog.New(recent))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := startAdmin(t, config.WebServer{User: "admin", Password: "a-long-admin-password"}, c, Options{ConfigPath: path, Logs: recent})

	// A wrong password, then the credentials in the URL.
	err = chromedp.Do(ctx,
		chromedp.Navigate(s.URL()),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#login-user"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#login-password"), "wrong"),
		chromedp.Click(chromedp.CSS("#login-submit")),
	)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, `document.getElementById('login-error').textContent.includes('Wrong user or password')`, "a wrong password is refused on the card")
	u, _ := url.Parse(s.URL())
	u.User = url.UserPassword("admin", "a-long-admin-password")
	if err := chromedp.Do(ctx, chromedp.Navigate(u.String()+"/")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, `!document.getElementById('app').hidden && document.getElementById('ov-servers').dataset.value === '1'`, "signed in by the URL's credentials; 1 server connected")
	browsertest.WaitJS(t, ctx, 10*time.Second, `document.getElementById('ov-nat').textContent !== '–'`, "the NAT card is filled")

	// The proxies; a user of the dead one makes the client log a warning.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = 'proxies'`)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, `['web', 'dead'].every((n) => { const r = document.querySelector('#proxies-table tr[data-name="' + n + '"]'); return r && r.textContent.includes('running'); })`, "both proxies listed as running")
	var deadRemote string
	for _, p := range c.Proxies() {
		if p.Name == "dead" {
			deadRemote = p.Remote
		}
	}
	_, rp, _ := net.SplitHostPort(deadRemote)
	if conn, err := net.Dial("tcp", "127.0.0.1:"+rp); err == nil {
		conn.Write([]byte("hello"))
		conn.Close()
	}
	browsertest.Screenshot(t, ctx, "client-proxies.png")

	// A P2P session through the visitor: its path and RTT.
	if n, err := testnet.Exchange(bind, 1<<20, 20*time.Second); err != nil || n != 64<<10 {
		t.Fatalf("through the visitor: %d bytes back, %v", n, err)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = 'sessions'`)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 20*time.Second, `(() => { const r = document.querySelector('#sessions-table tr[data-id]'); return !!r && /direct|relayed/.test(r.cells[2].textContent) && r.cells[4].textContent !== '–'; })()`, "the P2P session is listed with its path and RTT")
	browsertest.Screenshot(t, ctx, "client-sessions.png")

	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = 'logs'`)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, `document.getElementById('logs-table').textContent.includes('local service unreachable')`, "the dead service's warning is in the logs")
	browsertest.Screenshot(t, ctx, "client-logs.png")
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = 'overview'`)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, `document.getElementById('recent-logs').textContent.includes('local service unreachable')`, "the overview shows the last warnings")
	browsertest.Screenshot(t, ctx, "client-overview.png")

	// Edit the config in the page and apply it.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = 'config'`)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, `document.getElementById('config-text').value.includes('name = "web"')`, "the config is shown for editing")
	added := testnet.TCPProxy("added", sink.Port(), 0)
	err = chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`const ta = document.getElementById('config-text'); ta.value += `+strconv.Quote(added)+`; ta.dispatchEvent(new Event('input'));`),
		chromedp.Click(chromedp.CSS("#config-apply")),
	)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, `document.getElementById('config-result').textContent.includes('added: proxy added')`, "the page says the new proxy was added")
	testnet.Eventually(t, 10*time.Second, func() bool {
		for _, p := range c.Proxies() {
			if p.Name == "added" && p.Status == "running" {
				return true
			}
		}
		return false
	}, func() string { return "the proxy added in the page does not run" })
	browsertest.Screenshot(t, ctx, "client-config.png")
	err = chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`const tb = document.getElementById('config-text'); tb.value += '\n[[proxies]]\nname = "bad"\ntype = "tcp"\nlocalPort = 99999\n'; tb.dispatchEvent(new Event('input'));`),
		chromedp.Click(chromedp.CSS("#config-apply")),
	)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, `(() => { const t = document.getElementById('config-result').textContent; return t.includes('Not applied') && t.includes('home.toml:') && t.includes('localPort'); })()`, "an invalid edit is refused with its line")
	if n := len(c.Proxies()); n != 3 {
		t.Errorf("after the refused edit: %d proxies, want 3", n)
	}
	browsertest.Screenshot(t, ctx, "client-config-error.png")

	// Without a password the page opens at once for the client's own user (this test runs as
	// that user), with no sign-in and no sign-out.
	open := startAdmin(t, config.WebServer{}, c, Options{ConfigPath: path, Logs: recent})
	if err := chromedp.Do(ctx, chromedp.Navigate(open.URL()+"/#proxies")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, `!document.getElementById('app').hidden && document.getElementById('logout').hidden && !!document.querySelector('#proxies-table tr[data-name="added"]')`, "the password-less page opens for its owner")
}
