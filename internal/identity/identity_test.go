package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSaveRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "identity.key")
	key, fresh, err := Load(path, rand.Reader)
	if err != nil || !fresh {
		t.Fatalf("Load of a missing file = %v, fresh %v; want a new key", err, fresh)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("Load wrote the key")
	}
	if err := Save(path, key); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	got, fresh, err := Load(path, rand.Reader)
	if err != nil || fresh || !got.Equal(key) {
		t.Fatalf("Load after Save = fresh %v, %v; want the saved key", fresh, err)
	}
	if !Public(got).Equal(Public(key)) {
		t.Fatal("public halves differ")
	}
}

func TestLoadRefuses(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	tests := []struct {
		name string
		data []byte
		mode os.FileMode
		want string
	}{
		{"readable by others", nil, 0o644, "may be read by others (mode 0644): run chmod 600"},
		{"empty", []byte{}, 0o600, "does not hold one PEM private key"},
		{"garbage", []byte("hello"), 0o600, "does not hold one PEM private key"},
		{"not PKCS 8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), 0o600, "not a PKCS #8 private key"},
		{"another key type", ecPEM, 0o600, "not an Ed25519 key"},
		{"two keys", append(append([]byte{}, ecPEM...), ecPEM...), 0o600, "does not hold one PEM private key"},
		{"too large", []byte(strings.Repeat("a", maxFile+1)), 0o600, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "identity.key")
			data := tt.data
			if data == nil {
				k, _, _ := Load(path, rand.Reader)
				if err := Save(path, k); err != nil {
					t.Fatal(err)
				}
				data, _ = os.ReadFile(path)
			}
			if err := os.WriteFile(path, data, tt.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, tt.mode)
			_, _, err := Load(path, rand.Reader)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v; want an error containing %q", err, tt.want)
			}
			if after, _ := os.ReadFile(path); string(after) != string(data) {
				t.Error("Load changed the file")
			}
		})
	}
	if _, _, err := Load(t.TempDir(), rand.Reader); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(directory) = %v", err)
	}
}
