package identity

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestLoadClient: the client key is made once and kept (0600), the same key comes back after a
// restart, and a second process on the same state directory is refused while the first holds it.
func TestLoadClient(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "client.state")
	key, release, err := LoadClient(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, ClientKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("client key mode %v, want 0600", st.Mode().Perm())
	}
	if _, _, err := LoadClient(dir); !errors.Is(err, ErrClientKeyHeld) {
		t.Errorf("second process on the same state directory: %v, want ErrClientKeyHeld", err)
	}
	release()
	again, release2, err := LoadClient(dir)
	if err != nil {
		t.Fatalf("after the first process let go: %v", err)
	}
	defer release2()
	if !again.Equal(key) {
		t.Error("the key changed across a restart")
	}
}
