package identity

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"testing"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	key, other := newKey(t), newKey(t)
	msg := []byte("the CA key")
	sealed, err := Seal(Public(key), "test v1", msg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, msg) {
		t.Fatal("the sealed message holds the plaintext")
	}
	again, _ := Seal(Public(key), "test v1", msg)
	if bytes.Equal(sealed, again) {
		t.Error("two seals of one message are equal")
	}
	got, err := Open(key, "test v1", sealed)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open = %q, %v; want the message", got, err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for _, tt := range []struct {
		name   string
		key    ed25519.PrivateKey
		info   string
		sealed []byte
	}{
		{"another node's key", other, "test v1", sealed},
		{"another info", key, "test v2", sealed},
		{"modified", key, "test v1", flipped},
		{"truncated", key, "test v1", sealed[:40]},
		{"empty", key, "test v1", nil},
	} {
		if got, err := Open(tt.key, tt.info, tt.sealed); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: Open = %q, %v; want ErrOpen", tt.name, got, err)
		}
	}
}

// The X25519 public key made from the Ed25519 public key is the public half
// of the X25519 private key made from the seed.
func TestX25519Form(t *testing.T) {
	for range 20 {
		key := newKey(t)
		pub, err := x25519Public(Public(key))
		if err != nil {
			t.Fatal(err)
		}
		h := sha512.Sum512(key.Seed())
		priv, err := ecdh.X25519().NewPrivateKey(h[:32])
		if err != nil {
			t.Fatal(err)
		}
		if !priv.PublicKey().Equal(pub) {
			t.Fatal("the two X25519 forms differ")
		}
	}
}

func TestSealRefusesBadKeys(t *testing.T) {
	identityPoint := make([]byte, 32)
	identityPoint[0] = 1 // the neutral element, y = 1
	notAPoint := make([]byte, 32)
	notAPoint[0] = 2 // y = 2 has no x on the curve
	for name, pub := range map[string][]byte{
		"short":       make([]byte, 31),
		"small order": identityPoint,
		"not a point": notAPoint,
	} {
		if _, err := Seal(pub, "test v1", []byte("x")); err == nil {
			t.Errorf("%s: Seal succeeded", name)
		}
	}
}
