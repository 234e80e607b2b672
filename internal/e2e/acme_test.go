package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/xp2p/xp2p/config"
	"github.com/xp2p/xp2p/internal/wire"
)

// localCA is an ACME CA (Let's Encrypt's pebble, in the test's process) whose checks reach
// every name at 127.0.0.1 (a DNS server of the test's answers them), its HTTP-01 checks on
// httpPort.
type localCA struct {
	directory string // the ACME directory URL
	dirRoots  string // PEM file of the certificate its directory is served with
	roots     *x509.CertPool
	rootsPEM  string // PEM file of the roots of the certificates it issues
}

func startLocalCA(t *testing.T, httpPort int) *localCA {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	// Every name is 127.0.0.1, for the CA's checks only.
	dnsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := &dns.Server{Listener: dnsLn, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
			}
		}
		w.WriteMsg(m)
	})}
	go dnsSrv.ActivateAndServe()
	t.Cleanup(func() { dnsSrv.Shutdown() })

	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, 0, false, dnsLn.Addr().String(), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	acmeSrv := httptest.NewTLSServer(front.Handler())
	mgmt := httptest.NewTLSServer(front.ManagementHandler())
	t.Cleanup(acmeSrv.Close)
	t.Cleanup(mgmt.Close)

	dir := t.TempDir()
	c := &localCA{directory: acmeSrv.URL + "/dir", dirRoots: filepath.Join(dir, "acme-dir.pem"), rootsPEM: filepath.Join(dir, "roots.pem")}
	if err := os.WriteFile(c.dirRoots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: acmeSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := mgmt.Client().Get(mgmt.URL + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := io.ReadAll(res.Body)
	res.Body.Close()
	c.roots = x509.NewCertPool()
	if !c.roots.AppendCertsFromPEM(root) {
		t.Fatalf("the CA's root: %q", root)
	}
	os.WriteFile(c.rootsPEM, root, 0o644)
	return c
}

// TestACMECertificates: with acme.enable the server gets, from an ACME CA (pebble, local), a
// certificate for an http proxy's customDomain at the first https request for it (HTTP-01 on
// vhostHTTPPort), ends TLS on vhostHTTPSPort with it and serves the proxy; curl checks the
// certificate against the CA's root. A name no http proxy has gets no certificate (a user
// cannot make the server ask the CA for names at will), and an https proxy's own name still
// passes through untouched.
func TestACMECertificates(t *testing.T) {
	if testing.Short() {
		t.Skip("ACME issuance: skipped with -short")
	}
	httpPort := freeTCPPort(t)
	localCA := startLocalCA(t, httpPort)
	srv := startServerWith(t, 0, fmt.Sprintf("vhostHTTPPort = 8080\nvhostHTTPSPort = 8443\n[acme]\nenable = true\nemail = \"ops@secure.test\"\ncaURL = %q\ncaRootsFile = %q\nstorage = %q\n",
		localCA.directory, localCA.dirRoots, t.TempDir()), func(c *config.Server) { c.VhostHTTPPort, c.VhostHTTPSPort = httpPort, -1 })
	httpsPort := srv.WebAddr(wire.ProxyHTTPS).(*net.TCPAddr).Port
	site := startWebService(t, "secure")
	tlsPort, _ := tlsService(t, "passthrough", "own.test")
	c := startClient(t, clientHeader(srv.Port(), testToken, "")+
		webProxy("secure", "http", site.Port(), `customDomains = ["secure.test"]`)+
		webProxy("own", "https", tlsPort, `customDomains = ["own.test"]`))
	waitRunning(t, c, "secure")
	waitRunning(t, c, "own")

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, _, _ string) (net.Conn, error) {
			return net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort))
		},
		TLSClientConfig: &tls.Config{RootCAs: localCA.roots},
	}}
	start := time.Now()
	res, err := hc.Get("https://secure.test/page")
	if err != nil {
		t.Fatalf("https with the CA's certificate: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	t.Logf("first https request, certificate issued meanwhile: %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(string(body), `"service":"secure"`) || !strings.Contains(string(body), `"X-Forwarded-Proto":["https"]`) {
		t.Errorf("served %q", body)
	}
	if got := res.TLS.PeerCertificates[0]; len(got.DNSNames) != 1 || got.DNSNames[0] != "secure.test" {
		t.Errorf("certificate for %v", got.DNSNames)
	}
	// curl, trusting the CA's root only.
	if got := curl(t, "--cacert", localCA.rootsPEM, "--resolve", fmt.Sprintf("secure.test:%d:127.0.0.1", httpsPort), fmt.Sprintf("https://secure.test:%d/x", httpsPort)); !strings.Contains(got, `"path":"/x"`) {
		t.Errorf("curl: %q", got)
	}
	if _, err := hc.Get("https://nobody.test/"); err == nil {
		t.Error("a name no proxy has got a certificate")
	}
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort), &tls.Config{ServerName: "own.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "own.test" {
		t.Errorf("own.test's handshake was not its service's: certificate of %q", cn)
	}
	conn.Close()
}
