package caholder

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func testStore(t *testing.T) Store {
	var tok certs.Token
	for i := range tok.Secret {
		tok.Secret[i] = byte(i)
	}
	return Store{Dir: filepath.Join(t.TempDir(), "ca"), Token: tok, Now: func() time.Time { return now }}
}

func newCA(t *testing.T) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA(rand.Reader, "cluster", now, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestStoreSaveLoad(t *testing.T) {
	s := testStore(t)
	if ca, err := s.Load(); ca != nil || err != nil {
		t.Fatalf("Load of an empty store = %v, %v; want nil, nil", ca, err)
	}
	ca := newCA(t)
	for range 2 { // saving again changes nothing
		if err := s.Save(ca); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Load()
	if err != nil || got.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("Load = %v, %v; want the saved CA", got, err)
	}
	for name, mode := range map[string]os.FileMode{".": 0o700 | os.ModeDir, KeyFile: 0o600, CertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(s.Dir, name))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode(), err, mode)
		}
	}
	if err := os.WriteFile(filepath.Join(s.Dir, KeyFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); err == nil || !strings.Contains(err.Error(), s.Dir) {
		t.Errorf("Load of a damaged CA = %v; want an error naming %s", err, s.Dir)
	}
}

func TestKeepEscrow(t *testing.T) {
	s := testStore(t)
	if s.HasEscrow() {
		t.Fatal("HasEscrow of an empty store")
	}
	if _, err := s.EscrowedKey(); err == nil {
		t.Fatal("EscrowedKey of an empty store succeeded")
	}
	ca, other := newCA(t), newCA(t)
	seal := func(ca *certs.CA) []byte {
		b, err := Seal(s.Token, ca)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	path := filepath.Join(s.Dir, EscrowFile)

	var wrong certs.Token
	wrong.Secret[0] = 0xff
	sealedWrong, err := Seal(wrong, ca)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{[]byte("garbage"), sealedWrong} {
		if changed, err := s.KeepEscrow(bad); err == nil || changed {
			t.Errorf("KeepEscrow of a key that does not open = %v, %v; want refused", changed, err)
		}
	}
	if s.HasEscrow() {
		t.Fatal("a refused escrow was stored")
	}

	first := seal(ca)
	if changed, err := s.KeepEscrow(first); err != nil || !changed {
		t.Fatalf("first KeepEscrow = %v, %v; want stored", changed, err)
	}
	if changed, err := s.KeepEscrow(seal(ca)); err != nil || changed {
		t.Errorf("KeepEscrow of the same key sealed anew = %v, %v; want kept as it was", changed, err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, first) {
		t.Error("the file changed for the same key")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o600 {
		t.Errorf("escrow file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if changed, err := s.KeepEscrow(seal(other)); err != nil || !changed {
		t.Errorf("KeepEscrow of another key = %v, %v; want stored", changed, err)
	}
	key, err := s.EscrowedKey()
	want, _ := other.KeyPEM()
	if err != nil || !bytes.Equal(key, want) {
		t.Errorf("EscrowedKey = %v; want the last key kept", err)
	}
}

func TestEscrowed(t *testing.T) {
	s := testStore(t)
	ca, other := newCA(t), newCA(t)
	sealed, err := Seal(s.Token, ca)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bundle, append(other.BundlePEM(), ca.BundlePEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Escrowed(bundle, ca.Fingerprint()); err == nil || !strings.Contains(err.Error(), "no escrowed CA key") {
		t.Errorf("Escrowed without an escrow = %v; want no escrowed CA key", err)
	}
	if _, err := s.KeepEscrow(sealed); err != nil {
		t.Fatal(err)
	}
	got, err := s.Escrowed(bundle, ca.Fingerprint())
	if err != nil || got.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("Escrowed = %v, %v; want the pinned CA", got, err)
	}
	if _, err := s.Escrowed(bundle, "sha256:"+strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "does not hold the pinned CA") {
		t.Errorf("Escrowed for a CA not in the bundle = %v", err)
	}
	if _, err := s.Escrowed(bundle, other.Fingerprint()); err == nil {
		t.Error("Escrowed paired the key with another CA's certificate")
	}
	if _, err := s.Escrowed(filepath.Join(t.TempDir(), "absent.pem"), ca.Fingerprint()); err == nil {
		t.Error("Escrowed without a bundle succeeded")
	}
}

func TestOperatorFiles(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "present.pem")
	if err := os.WriteFile(present, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "absent.pem")
	for _, tt := range []struct {
		files config.CAFiles
		want  string
	}{
		{config.CAFiles{CertFile: absent, KeyFile: present, ChainFile: present}, "cert_file"},
		{config.CAFiles{CertFile: present, KeyFile: absent, ChainFile: present}, "key_file"},
		{config.CAFiles{CertFile: present, KeyFile: present, ChainFile: absent}, "chain_file"},
		{config.CAFiles{CertFile: present, KeyFile: present, ChainFile: present}, "cannot be used"},
	} {
		if _, err := Operator(tt.files, now); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Operator(%+v) = %v; want an error with %q", tt.files, err, tt.want)
		}
	}
}
