// Command xp2p is the xp2p server, client and tools in one binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/demo"
	"github.com/xp2p/xp2p/peer"
	"github.com/xp2p/xp2p/rendezvous"
	"github.com/xp2p/xp2p/web"
)

const usage = `xp2p: reach services behind NAT, peer to peer first.

Usage:
  xp2p server -c server.toml   run the server (rendezvous, relay, public ports)
  xp2p client -c client.toml   run a client (publish proxies, bind visitors)
  xp2p verify -c FILE          check a server or client config and print every error
  xp2p status -c client.toml   show a running client's proxies, visitors and P2P sessions
  xp2p reload -c client.toml   check client.toml and apply it to the running client
  xp2p nat -s HOST:PORT        discover this host's NAT behaviour (RFC 5780) and public address
  xp2p demo                    run a server, a provider and a visitor on this machine
  xp2p version                 print the version, commit and build date

Run "xp2p COMMAND --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	rendezvous.Version = version
	peer.Version = version
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "server":
		return runServer(rest, stderr)
	case "client":
		return runClient(rest, stderr)
	case "verify":
		return runVerify(rest, stdout, stderr)
	case "demo":
		return runDemo(rest, stdout, stderr)
	case "status":
		return runStatus(rest, stdout, stderr)
	case "reload":
		return runReload(rest, stdout, stderr)
	case "nat":
		return runNAT(rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprint(stdout, currentBuild())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "xp2p: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// flags parses a subcommand's flags; it returns ok=false with the exit code when done already.
func flags(name, summary string, args []string, stderr io.Writer, define func(*flag.FlagSet)) (fs *flag.FlagSet, code int, ok bool) {
	fs = flag.NewFlagSet("xp2p "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: xp2p %s\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	define(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return fs, 0, false
		}
		return fs, 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "xp2p %s: unexpected argument %q\n", name, fs.Arg(0))
		return fs, 2, false
	}
	return fs, 0, true
}

// configFlags parses the flags of a command that reads a config (name is its usage line,
// "verb -c FILE ..."); more defines its other flags. Without -c the config is looked for in the
// usual places (kinds: which configs the command takes).
func configFlags(name, summary, fileHelp string, args []string, stderr io.Writer, more func(*flag.FlagSet), kinds ...string) (path string, code int, ok bool) {
	verb, _, _ := strings.Cut(name, " -c ")
	where := make([]string, len(configDirs))
	for i, d := range configDirs {
		where[i] = d + "/"
	}
	fileHelp += " (default: the first of " + strings.Join(configNames[kinds[0]], ", ") + " in " + strings.Join(where, " or ") + ")"
	_, code, ok = flags(name, summary, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&path, "c", "", fileHelp)
		if more != nil {
			more(fs)
		}
	})
	if !ok {
		return "", code, false
	}
	if path, ok = resolveConfig(verb, path, stderr, kinds...); !ok {
		return "", 2, false
	}
	return path, 0, true
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "trace", "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func logWarnings(log *slog.Logger, warnings []string) {
	for _, w := range warnings {
		log.Warn(w)
	}
}

func runServer(args []string, stderr io.Writer) int {
	path, code, ok := configFlags("server -c server.toml", "Runs the xp2p server: clients log in on bindPort (UDP and TCP).", "server config file (frps.toml keys)", args, stderr, nil, "server")
	if !ok {
		return code
	}
	cfg, warnings, err := loadServer("server", path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(stderr, cfg.Log.Level)
	logWarnings(log, warnings)
	srv, err := rendezvous.New(cfg, log)
	if err != nil {
		log.Error("server", "err", err)
		return 1
	}
	stopDashboard, err := startDashboard(cfg, srv, log)
	if err != nil {
		log.Error("dashboard", "err", err)
		return 1
	}
	defer stopDashboard()
	ctx, stop := signalContext()
	defer stop()
	if err := srv.Run(ctx); err != nil {
		log.Error("server", "err", err)
		return 1
	}
	return 0
}

func runClient(args []string, stderr io.Writer) int {
	path, code, ok := configFlags("client -c client.toml", "Runs an xp2p client: publishes [[proxies]], binds [[visitors]].", "client config file (frpc.toml keys)", args, stderr, nil, "client")
	if !ok {
		return code
	}
	cfg, _, warnings, err := loadClient("client", path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(stderr, cfg.Log.Level)
	// The client's page shows its last warnings and errors.
	recent := web.NewRecentLogs(log.Handler(), 100)
	log = slog.New(recent)
	logWarnings(log, warnings)
	c, err := peer.New(cfg, log)
	if err != nil {
		log.Error("client", "err", err)
		return 1
	}
	stopAdmin, err := startAdmin(cfg, path, c, log, recent)
	if err != nil {
		log.Error("admin endpoint", "err", err)
		return 1
	}
	defer stopAdmin()
	ctx, stop := signalContext()
	defer stop()
	if err := c.Run(ctx); err != nil {
		log.Error("client", "err", err)
		return 1
	}
	return 0
}

// runVerify checks a config file. It tells server from client configs by their keys: a client
// config names its server (serverAddr), proxies or visitors.
func runVerify(args []string, stdout, stderr io.Writer) int {
	var convert bool
	path, code, ok := configFlags("verify -c FILE", "Checks a server or client config (TOML, YAML, JSON or frp's legacy INI, by its extension)\nand prints every error with its line and column.", "config file to check", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&convert, "convert", false, "print the config as TOML (frp v1 keys): from frp's legacy INI, YAML or JSON")
	}, "client", "server")
	if !ok {
		return code
	}
	data, err := readConfig("verify", path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if convert {
		out, err := config.ConvertToTOML(path, data)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		stdout.Write(out)
		return 0
	}
	var warnings []string
	kind := config.Kind(data)
	if kind == "client" {
		var cfg *config.Client
		if cfg, warnings, err = config.ParseClient(path, data); err == nil {
			warnings = append(warnings, exposureWarning("client admin endpoint", cfg.WebServer)...)
		}
	} else {
		var cfg *config.Server
		if cfg, warnings, err = config.ParseServer(path, data); err == nil {
			warnings = append(warnings, exposureWarning("dashboard", cfg.WebServer)...)
		}
	}
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid %s config\n", path, kind)
	return 0
}

// exposureWarning is what the endpoint would warn of (or refuse) at start, as verify's words:
// the guides' config (webServer.password = "admin" on 0.0.0.0) still runs, but not silently.
func exposureWarning(what string, ws config.WebServer) []string {
	if ws.Port == 0 {
		return nil
	}
	warning, err := web.Exposure(what, ws)
	switch {
	case err != nil:
		return []string{err.Error() + " (the " + what + " will refuse to start)"}
	case warning != "":
		return []string{warning}
	}
	return nil
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	var opts demo.Options
	_, code, ok := flags("demo", "Starts a server, a provider and a visitor on this machine, makes real requests through\nthe classic tcp proxy and through a P2P session, and prints what happened and how fast.", args, stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&opts.Requests, "n", 200, "requests per path")
		fs.IntVar(&opts.BulkMB, "mb", 64, "megabytes of bulk transfer per path")
		fs.BoolVar(&opts.Verbose, "v", false, "show the components' logs")
	})
	if !ok {
		return code
	}
	ctx, stop := signalContext()
	defer stop()
	if err := demo.Run(ctx, opts, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	return 0
}
