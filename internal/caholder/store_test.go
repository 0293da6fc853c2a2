package caholder

import (
	"crypto/ed25519"
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
	return Store{Dir: filepath.Join(t.TempDir(), "ca"), Identity: newIdentity(t), Now: func() time.Time { return now }}
}

func newIdentity(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
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

// The CA a rotation makes is kept beside the one that signs until Signing
// names it; a promotion that a crash cut short is finished.
func TestStoreSigning(t *testing.T) {
	old, next := newCA(t), newCA(t)
	tests := []struct {
		name    string
		prepare func(Store)
		want    *certs.CA
		wantErr string
	}{
		{"the CA that signs", func(s Store) {}, old, ""},
		{"the next CA, promoted", func(s Store) { s.SaveNext(next) }, next, ""},
		{"the next CA kept, the old one asked for", func(s Store) { s.SaveNext(next) }, old, ""},
		{"a promotion cut short after the key", func(s Store) {
			s.SaveNext(next)
			b, _ := next.KeyPEM()
			os.WriteFile(filepath.Join(s.Dir, KeyFile), b, 0o600)
		}, next, ""},
		{"neither", func(s Store) {}, nil, "holds no CA with fingerprint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testStore(t)
			if err := s.Save(old); err != nil {
				t.Fatal(err)
			}
			tt.prepare(s)
			fp := next.Fingerprint()
			if tt.want != nil {
				fp = tt.want.Fingerprint()
			}
			got, err := s.Signing(fp)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Signing = %v, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Fingerprint() != fp {
				t.Fatalf("Signing = %v, %v; want %s", got, err, fp)
			}
			// The one that signs is the one Load reads, also after a
			// restart, and the next one's files are gone once it signs.
			if cur, err := s.Load(); err != nil || cur.Fingerprint() != fp {
				t.Errorf("Load after Signing = %v, %v", cur, err)
			}
			if n, _ := s.LoadNext(); (n != nil) != (tt.want == old && tt.name != "the CA that signs") {
				t.Errorf("the next CA kept: %v", n != nil)
			}
			if fi, err := os.Stat(filepath.Join(s.Dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("the CA key: %v, %v", fi, err)
			}
		})
	}
}
