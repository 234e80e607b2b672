package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/xp2p/xp2p/config"
)

// configDirs are where a command looks for its config when -c is not given: the current
// directory, then the one the install script and the packages use.
var configDirs = []string{".", "/etc/xp2p"}

// configNames are the file names looked for, by kind of config: xp2p's own, then frp's (in
// each format frp reads).
var configNames = map[string][]string{
	"server": {"server.toml", "frps.toml", "frps.yaml", "frps.yml", "frps.json", "frps.ini"},
	"client": {"client.toml", "frpc.toml", "frpc.yaml", "frpc.yml", "frpc.json", "frpc.ini"},
}

// findConfig returns the first config of one of kinds in the usual places, and every path it
// looked at.
func findConfig(kinds ...string) (path string, looked []string) {
	for _, dir := range configDirs {
		for _, kind := range kinds {
			for _, name := range configNames[kind] {
				p := filepath.Join(dir, name)
				if dir == "." {
					p = "./" + name
				}
				looked = append(looked, p)
				if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
					return p, looked
				}
			}
		}
	}
	return "", looked
}

// resolveConfig is path, or (when -c was not given) the config found in the usual places; the
// command says which it took, or where it looked.
func resolveConfig(verb, path string, stderr io.Writer, kinds ...string) (string, bool) {
	if path != "" {
		return path, true
	}
	found, looked := findConfig(kinds...)
	if found == "" {
		fmt.Fprintf(stderr, "xp2p %s: no config file: give one with -c FILE, or put one in a usual place (looked for %s)\n", verb, strings.Join(looked, ", "))
		return "", false
	}
	fmt.Fprintf(stderr, "xp2p %s: using %s (no -c given)\n", verb, found)
	return found, true
}

// readConfig reads a config file, saying plainly what is wrong when it cannot.
func readConfig(verb, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, fs.ErrNotExist):
		abs, _ := filepath.Abs(path)
		return nil, fmt.Errorf("xp2p %s: config file %s does not exist (%s)", verb, path, abs)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("xp2p %s: cannot read config file %s: permission denied (it holds the token, so it is usually readable by root only: run with sudo)", verb, path)
	}
	return nil, fmt.Errorf("xp2p %s: config file %s: %w", verb, path, err)
}

// loadServer reads and checks a server config. A client config given instead says so.
func loadServer(verb, path string) (*config.Server, []string, error) {
	data, err := readConfig(verb, path)
	if err != nil {
		return nil, nil, err
	}
	cfg, warnings, err := config.ParseServer(path, data)
	if err != nil && config.Kind(data) == "client" {
		err = fmt.Errorf("%w\nxp2p %s: %s is a client config (it names serverAddr, [[proxies]] or [[visitors]]): run it with xp2p client -c %s", err, verb, path, path)
	}
	return cfg, warnings, err
}

// loadClient reads and checks a client config. A server config given instead says so.
func loadClient(verb, path string) (*config.Client, []byte, []string, error) {
	data, err := readConfig(verb, path)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, warnings, err := config.ParseClient(path, data)
	if err != nil && config.Kind(data) == "server" {
		err = fmt.Errorf("%w\nxp2p %s: %s looks like a server config (no serverAddr, no [[proxies]] or [[visitors]]): run it with xp2p server -c %s", err, verb, path, path)
	}
	return cfg, data, warnings, err
}
