package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/peer"
	"github.com/xp2p/xp2p/rendezvous"
	"github.com/xp2p/xp2p/web"
	"github.com/xp2p/xp2p/web/admin"
	"github.com/xp2p/xp2p/web/dashboard"
)

// startDashboard starts the server's dashboard when webServer.port is set; stop ends it.
func startDashboard(cfg *config.Server, srv *rendezvous.Server, log *slog.Logger) (stop func(), err error) {
	if cfg.WebServer.Port == 0 {
		return func() {}, nil
	}
	d, err := dashboard.New(cfg.WebServer, srv, dashboard.Options{Log: log})
	if err != nil {
		return nil, err
	}
	if err := d.Start(); err != nil {
		return nil, fmt.Errorf("dashboard on %s:%d: %w", cfg.WebServer.Addr, cfg.WebServer.Port, err)
	}
	return func() { d.Close() }, nil
}

// startAdmin starts a client's admin endpoint (its page and API) when webServer.port is set;
// stop ends it. logs are the client's recent warnings and errors, for the page.
func startAdmin(cfg *config.Client, path string, c *peer.Client, log *slog.Logger, logs *web.RecentLogs) (stop func(), err error) {
	if cfg.WebServer.Port == 0 {
		return func() {}, nil
	}
	a, err := admin.New(cfg.WebServer, c, admin.Options{Log: log, ConfigPath: path, Logs: logs})
	if err != nil {
		return nil, err
	}
	if err := a.Start(); err != nil {
		return nil, err
	}
	return func() { a.Close() }, nil
}

// adminTimeout bounds one `xp2p status` or `xp2p reload`.
const adminTimeout = 30 * time.Second

func runStatus(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	path, code, ok := configFlags("status -c client.toml", "Asks a running client (through its admin endpoint, webServer.* in its config)\nfor its servers, proxies, visitors and P2P sessions, and prints them.", "the running client's config file", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the admin endpoint's JSON answer")
	}, "client")
	if !ok {
		return code
	}
	cfg, _, _, err := loadClient("status", path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	cl, err := admin.NewClient(cfg.WebServer)
	if err != nil {
		fmt.Fprintf(stderr, "xp2p status: %s: %v\n", path, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	st, err := cl.Status(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "xp2p status:", err)
		return 1
	}
	if asJSON {
		enc := jsonEncoder(stdout)
		enc.Encode(st)
		return 0
	}
	admin.WriteStatus(stdout, st)
	fmt.Fprintf(stdout, "\nthe client's page: %s/\n", cl.URL())
	return 0
}

func runReload(args []string, stdout, stderr io.Writer) int {
	path, code, ok := configFlags("reload -c client.toml", "Checks client.toml, then asks the running client (through its admin endpoint) to apply it:\nadded, removed and changed proxies and visitors take effect, the others keep their connections.\nA config the client cannot apply is refused as a whole.", "the client's config file, edited", args, stderr, nil, "client")
	if !ok {
		return code
	}
	cfg, data, warnings, err := loadClient("reload", path)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintln(stderr, "xp2p reload: nothing sent; the running client keeps its configuration")
		return 1
	}
	cl, err := admin.NewClient(cfg.WebServer)
	if err != nil {
		fmt.Fprintf(stderr, "xp2p reload: %s: %v\n", path, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	res, err := cl.Reload(ctx, path, data)
	if err != nil {
		fmt.Fprintln(stderr, "xp2p reload:", err)
		return 1
	}
	admin.WriteReload(stdout, res)
	return 0
}

func jsonEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc
}
