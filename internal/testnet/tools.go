package testnet

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xp2p/xp2p/internal/tlsconf"
)

// RequireTool returns the path of a program a test runs (curl, nginx), or skips the test
// without it; with XP2P_LAB_REQUIRED=1 (CI) a missing program fails the test instead. pkg is
// the Debian package that has it.
func RequireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("XP2P_LAB_REQUIRED") == "1" {
		t.Fatalf("XP2P_LAB_REQUIRED=1 but %s is missing (apt-get install %s)", name, pkg)
	}
	t.Skipf("skipping: %s is missing (apt-get install %s)", name, pkg)
	return ""
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartNginx runs Debian's nginx in the foreground with the http block servers (server { ... }
// blocks; write $DIR for the nginx's own directory) and waits until every port of ports
// accepts. It is stopped by t.Cleanup. It returns its directory.
func StartNginx(t testing.TB, servers string, ports ...int) string {
	t.Helper()
	bin := RequireTool(t, "nginx", "nginx")
	dir := t.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the workers read the test's files, which only root may
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	default_type text/plain;
	%[3]s
}
`, user, dir, strings.ReplaceAll(servers, "$DIR", dir))
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	out := &Log{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// SIGTERM: the master stops its workers, then itself.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("--- nginx ---\n%s%s", out, log)
		}
	})
	for _, port := range ports {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		Eventually(t, 10*time.Second, func() bool {
			select {
			case <-done:
				t.Fatalf("nginx exited: %s", out)
			default:
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, func() string { return "nginx does not listen on " + addr })
	}
	return dir
}

// WriteCert writes a fresh self-signed certificate for names and its key as PEM files into dir.
func WriteCert(t testing.TB, dir string, names ...string) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	cert, err := tlsconf.SelfSigned(names...)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	certFile, keyFile = filepath.Join(dir, names[0]+".crt"), filepath.Join(dir, names[0]+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}
