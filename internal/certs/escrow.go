package certs

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// escrowLabel derives the key that seals the escrowed CA key; it is also
// the associated data of the seal.
const escrowLabel = "nomad-bootstrapd ca escrow v2"

// escrowVersion is the first byte of a sealed CA key.
const escrowVersion byte = 1

// escrowNonceSize is the AES-GCM nonce length.
const escrowNonceSize = 12

// ErrEscrowOpen means a sealed CA key could not be opened: it was sealed
// with another join token, or it is corrupted.
var ErrEscrowOpen = errors.New("certs: cannot open the escrowed CA key: it was sealed with another cluster's join token or is corrupted")

// SealCAKey encrypts the CA's PEM private key for escrow to the other
// servers, with AES-256-GCM under a key derived from the join token
// ("nomad-bootstrapd ca escrow v1"). The result is
//
//	version (1 byte, 1) || nonce (12 bytes, from rnd) || ciphertext+tag
//
// with the version byte and the label as associated data.
func SealCAKey(t Token, keyPEM []byte, rnd io.Reader) ([]byte, error) {
	aead, err := escrowAEAD(t)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+escrowNonceSize, 1+escrowNonceSize+len(keyPEM)+aead.Overhead())
	out[0] = escrowVersion
	if _, err := io.ReadFull(rnd, out[1:]); err != nil {
		return nil, fmt.Errorf("certs: reading randomness for the escrow nonce: %w", err)
	}
	return aead.Seal(out, out[1:], keyPEM, escrowAD()), nil
}

// OpenCAKey decrypts a CA key sealed by SealCAKey with the same token. A
// wrong token or a modified blob gives an error wrapping ErrEscrowOpen.
func OpenCAKey(t Token, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, errors.New("certs: escrowed CA key is empty")
	}
	if sealed[0] != escrowVersion {
		return nil, fmt.Errorf("certs: escrowed CA key has format version %d; this binary reads version %d", sealed[0], escrowVersion)
	}
	aead, err := escrowAEAD(t)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+escrowNonceSize+aead.Overhead() {
		return nil, fmt.Errorf("%w (it is truncated)", ErrEscrowOpen)
	}
	keyPEM, err := aead.Open(nil, sealed[1:1+escrowNonceSize], sealed[1+escrowNonceSize:], escrowAD())
	if err != nil {
		return nil, ErrEscrowOpen
	}
	return keyPEM, nil
}

// escrowAEAD returns the AES-256-GCM cipher keyed from t.
func escrowAEAD(t Token) (cipher.AEAD, error) {
	block, err := aes.NewCipher(t.DeriveKey(escrowLabel, 32))
	if err != nil {
		return nil, fmt.Errorf("certs: escrow cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("certs: escrow cipher: %w", err)
	}
	return aead, nil
}

// escrowAD is the associated data: the version byte and the label.
func escrowAD() []byte {
	return append([]byte{escrowVersion}, escrowLabel...)
}
