package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/peercred"
	"github.com/xp2p/xp2p/web"
)

// Client talks to a running client's admin endpoint, as its config file describes it.
type Client struct {
	base       string
	user, pass string
	http       *http.Client
}

// ErrNoEndpoint means the config has no admin endpoint.
var ErrNoEndpoint = errors.New("the client's admin endpoint is off: set webServer.port (e.g. 7400) in its config and restart it")

// NewClient returns a client for the admin endpoint of cfg (a client config's webServer).
// Over HTTPS it trusts exactly the certificate of webServer.tls.certFile.
func NewClient(cfg config.WebServer) (*Client, error) {
	if cfg.Port == 0 {
		return nil, ErrNoEndpoint
	}
	host := cfg.Addr
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	c := &Client{user: cfg.User, pass: cfg.Password}
	tr := &http.Transport{Proxy: nil, DialContext: dialOwned, ResponseHeaderTimeout: 30 * time.Second}
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		scheme = "https"
		pinned, err := leafDER(cfg.TLS.CertFile)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{
			// The endpoint's certificate is pinned: it must be the one in certFile, whatever
			// names it carries (the endpoint is usually reached by a loopback address).
			InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || !bytes.Equal(raw[0], pinned) {
					return fmt.Errorf("the admin endpoint's certificate is not the one in %s", cfg.TLS.CertFile)
				}
				return nil
			},
		}
	}
	c.base = scheme + "://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port))
	c.http = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	return c, nil
}

// dialOwned connects to the endpoint and, when it is on this machine's loopback, checks who
// listens there before a password or a config (with its tokens) is sent: while the client is
// down, any local user could bind its port. It must run as root, as this user, or as a
// systemd service (DynamicUser, as the xp2p-client@ unit runs it).
func dialOwned(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !ra.IP.IsLoopback() {
		return c, nil
	}
	uid, err := peercred.UID(c)
	switch {
	case errors.Is(err, peercred.ErrUnsupported):
		return c, nil // this system cannot tell
	case err != nil:
		c.Close()
		return nil, err
	case peercred.Trusted(uid) || peercred.SystemdDynamic(uid):
		return c, nil
	}
	c.Close()
	who := "uid " + strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		who += " (" + u.Username + ")"
	}
	return nil, fmt.Errorf("the process listening on %s runs as %s, not as root, you or a systemd service: it is not the client; nothing sent to it", addr, who)
}

func leafDER(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("webServer.tls.certFile: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("webServer.tls.certFile %s: no PEM certificate", path)
	}
	return block.Bytes, nil
}

// URL is the endpoint's base URL.
func (c *Client) URL() string { return c.base }

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if c.user != "" || c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot reach the client's admin endpoint at %s (is the client running?): %w", c.base, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin endpoint %s: %w", c.base, err)
	}
	if res.StatusCode != http.StatusOK {
		var e web.Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &StatusError{Code: res.StatusCode, Msg: e.Error}
		}
		return &StatusError{Code: res.StatusCode, Msg: res.Status}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin endpoint %s: unexpected answer: %w", c.base, err)
	}
	return nil
}

// StatusError is an error answer of the endpoint.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string {
	switch e.Code {
	case http.StatusUnauthorized:
		return "admin endpoint: " + e.Msg + " (check webServer.user and webServer.password in the config)"
	}
	return e.Msg
}

// Status asks the running client for its state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, "GET", "/api/status", nil, "", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Reload sends a configuration to the running client to apply; file names it in errors.
func (c *Client) Reload(ctx context.Context, file string, data []byte) (*ReloadResponse, error) {
	var res ReloadResponse
	path := "/api/reload?file=" + url.QueryEscape(file)
	if err := c.do(ctx, "POST", path, bytes.NewReader(data), "application/toml", &res); err != nil {
		return nil, err
	}
	return &res, nil
}
