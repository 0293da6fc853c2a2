package identity

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha512"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
)

// Sealing to a node: the sender seals with HPKE (RFC 9180, base mode,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) to the X25519 form
// of the node's Ed25519 identity key, the form libsodium and age use
// (crypto_sign_ed25519_pk_to_curve25519): the Montgomery u of the public
// point, and the clamped first half of SHA-512 of the seed as the private
// scalar. Only the node that holds the identity key opens what is sealed to
// it. Base mode does not authenticate the sender: the caller checks what it
// opens.

// ErrOpen means a sealed message did not open with this node's key: it was
// sealed to another node, with another info, or it was modified.
var ErrOpen = errors.New("identity: the sealed message does not open with this node's identity key")

// Seal encrypts plaintext to the node whose identity public key is to;
// info binds what the message is for and must be the same when opening.
func Seal(to ed25519.PublicKey, info string, plaintext []byte) ([]byte, error) {
	pub, err := x25519Public(to)
	if err != nil {
		return nil, err
	}
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	out, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info), plaintext)
	if err != nil {
		return nil, fmt.Errorf("identity: sealing: %w", err)
	}
	return out, nil
}

// Open decrypts what Seal sealed to key's public half with the same info.
// Anything else gives ErrOpen.
func Open(key ed25519.PrivateKey, info string, sealed []byte) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("identity: not an Ed25519 private key")
	}
	h := sha512.Sum512(key.Seed())
	priv, err := ecdh.X25519().NewPrivateKey(h[:32]) // clamped by X25519
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	plaintext, err := hpke.Open(k, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(info), sealed)
	if err != nil {
		return nil, ErrOpen
	}
	return plaintext, nil
}

// x25519Public returns the X25519 public key of an Ed25519 public key, and
// refuses a key that is not a point of the curve or whose X25519 form is of
// small order.
func x25519Public(pub ed25519.PublicKey) (*ecdh.PublicKey, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("identity: an identity public key has %d bytes, not %d", len(pub), ed25519.PublicKeySize)
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, errors.New("identity: the identity public key is not a point of Ed25519")
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, errors.New("identity: the identity public key is of small order")
	}
	x, err := ecdh.X25519().NewPublicKey(p.BytesMontgomery())
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return x, nil
}
