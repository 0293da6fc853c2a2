package caholder

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/acl"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/identity"
)

func seal(t *testing.T, to ed25519.PrivateKey, ca *certs.CA, management string) []byte {
	t.Helper()
	b, err := Seal(identity.Public(to), ca, management)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealRaw seals v's JSON as an escrow, the way anyone who knows a server's
// public key can.
func sealRaw(t *testing.T, to ed25519.PrivateKey, v any) []byte {
	t.Helper()
	plain, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.Seal(identity.Public(to), escrowInfo, plain)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{escrowVersion}, b...)
}

func TestKeepEscrowRefuses(t *testing.T) {
	s := testStore(t)
	ca, other := newCA(t), newCA(t)
	mgmt := acl.NewManagementSecret()
	pinnedCert := string(ca.CertPEM())
	otherKey, err := other.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	long := seal(t, s.Identity, ca, mgmt)
	long = append(long, make([]byte, maxEscrow)...)
	for _, tt := range []struct {
		name   string
		sealed []byte
		want   string
	}{
		{"empty", nil, "empty"},
		{"garbage", []byte{escrowVersion, 1, 2, 3}, "does not open"},
		{"the token-sealed format", append([]byte{2}, make([]byte, 64)...), "format version 2"},
		{"too long", long, "exceeds"},
		{"sealed to another node", seal(t, newIdentity(t), ca, mgmt), "does not open"},
		{"modified", func() []byte { b := seal(t, s.Identity, ca, mgmt); b[len(b)-1] ^= 1; return b }(), "does not open"},
		{"another CA", seal(t, s.Identity, other, mgmt), "not the pinned CA"},
		{"the pinned certificate with another key",
			sealRaw(t, s.Identity, escrowJSON{Version: 1, Escrow: Escrow{CA: pinnedCert, Key: string(otherKey), Management: mgmt}}),
			"does not belong"},
		{"a management token that is no secret ID", seal(t, s.Identity, ca, "root"), "not a secret ID"},
		{"an unknown content version",
			sealRaw(t, s.Identity, escrowJSON{Version: 2, Escrow: Escrow{CA: pinnedCert, Key: string(caKey), Management: mgmt}}),
			"content version 2"},
		{"an unknown field",
			sealRaw(t, s.Identity, map[string]any{"v": 1, "ca": pinnedCert, "key": string(caKey), "management": mgmt, "extra": 1}),
			"malformed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			changed, err := s.KeepEscrow(tt.sealed, ca.Fingerprint())
			if err == nil || changed || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("KeepEscrow = %v, %v; want refused with %q", changed, err, tt.want)
			}
			if strings.Contains(err.Error(), mgmt) || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("the error quotes a secret: %v", err)
			}
			if s.HasEscrow() {
				t.Fatal("a refused escrow was stored")
			}
		})
	}
}

func TestKeepEscrow(t *testing.T) {
	s := testStore(t)
	if s.HasEscrow() {
		t.Fatal("HasEscrow of an empty store")
	}
	ca := newCA(t)
	if _, err := s.Escrowed(ca.Fingerprint()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Escrowed of an empty store = %v; want fs.ErrNotExist", err)
	}
	mgmt := acl.NewManagementSecret()
	path := filepath.Join(s.Dir, EscrowFile)

	first := seal(t, s.Identity, ca, mgmt)
	if changed, err := s.KeepEscrow(first, ca.Fingerprint()); err != nil || !changed {
		t.Fatalf("first KeepEscrow = %v, %v; want stored", changed, err)
	}
	if changed, err := s.KeepEscrow(seal(t, s.Identity, ca, mgmt), ca.Fingerprint()); err != nil || changed {
		t.Errorf("KeepEscrow of the same escrow sealed anew = %v, %v; want kept as it was", changed, err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, first) {
		t.Error("the file changed for the same escrow")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o600 {
		t.Errorf("escrow file mode %v, %v; want 0600", fi.Mode(), err)
	}

	got, err := s.Escrowed(ca.Fingerprint())
	if err != nil || got.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("Escrowed = %v, %v; want the pinned CA", got, err)
	}
	if e, err := s.Escrow(); err != nil || e.Management != mgmt {
		t.Errorf("Escrow().Management = %v; want the sealed secret", err)
	}
	if _, err := s.Escrowed(newCA(t).Fingerprint()); err == nil || !strings.Contains(err.Error(), "not the pinned CA") {
		t.Errorf("Escrowed for another pinned CA = %v; want refused", err)
	}

	// A new management secret for the same CA replaces the file.
	next := acl.NewManagementSecret()
	if changed, err := s.KeepEscrow(seal(t, s.Identity, ca, next), ca.Fingerprint()); err != nil || !changed {
		t.Errorf("KeepEscrow of a new secret = %v, %v; want stored", changed, err)
	}
	if e, err := s.Escrow(); err != nil || e.Management != next {
		t.Errorf("Escrow().Management = %v; want the newer secret", err)
	}

	// An escrow of the earlier, token-sealed format does not count: the
	// server asks the CA holder for a new one.
	if err := os.WriteFile(path, append([]byte{2}, make([]byte, 64)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if s.HasEscrow() {
		t.Error("HasEscrow counts an escrow of the earlier format")
	}
	if changed, err := s.KeepEscrow(seal(t, s.Identity, ca, next), ca.Fingerprint()); err != nil || !changed {
		t.Errorf("KeepEscrow over an escrow of the earlier format = %v, %v; want stored", changed, err)
	}

	// Another node's identity cannot read the file.
	thief := s
	thief.Identity = newIdentity(t)
	if _, err := thief.Escrowed(ca.Fingerprint()); !errors.Is(err, ErrEscrowOpen) {
		t.Errorf("Escrowed with another identity key = %v; want ErrEscrowOpen", err)
	}
}

func FuzzParseEscrow(f *testing.F) {
	f.Add([]byte(`{"v":1,"ca":"","key":"","management":""}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"x":1}`))
	f.Add([]byte(`{"v":1} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEscrow(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(escrowJSON{Version: 1, Escrow: e})
		if err != nil {
			t.Fatal(err)
		}
		if e2, err := parseEscrow(again); err != nil || e2 != e {
			t.Fatalf("re-encoded escrow parses as %+v, %v; want %+v", e2, err, e)
		}
	})
}

// During a CA rotation a server keeps the escrow of either CA the cluster
// trusts, and no other.
func TestKeepEscrowOfEitherTrustedCA(t *testing.T) {
	s := testStore(t)
	old, next, stranger := newCA(t), newCA(t), newCA(t)
	mgmt := acl.NewManagementSecret()
	if _, err := s.KeepEscrow(seal(t, s.Identity, stranger, mgmt), next.Fingerprint(), old.Fingerprint()); err == nil {
		t.Fatal("kept the escrow of a CA the cluster does not trust")
	}
	for _, ca := range []*certs.CA{old, next} {
		if changed, err := s.KeepEscrow(seal(t, s.Identity, ca, mgmt), next.Fingerprint(), old.Fingerprint()); err != nil || !changed {
			t.Fatalf("KeepEscrow of a trusted CA = %v, %v; want stored", changed, err)
		}
		if got, err := s.Escrowed(ca.Fingerprint()); err != nil || got.Fingerprint() != ca.Fingerprint() {
			t.Fatalf("Escrowed = %v, %v", got, err)
		}
	}
}
