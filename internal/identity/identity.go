// Package identity keeps a node's identity key: an Ed25519 key pair made at
// the node's first start and kept, 0600, next to its node ID. The public
// half is announced in gossip and recorded in the plan; the private half
// never leaves the node.
package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
)

// pemType is the PEM block type of the key file (PKCS #8).
const pemType = "PRIVATE KEY"

// maxFile bounds what Load reads: a key file is about 120 bytes.
const maxFile = 4096

// Load reads the identity key at path. When the file does not exist it
// returns a new key from rnd and fresh=true, and writes nothing (Save does,
// once the node has joined). A file that is not an Ed25519 key, or that
// others than its owner may read, is an error that says what to do.
func Load(path string, rnd io.Reader) (key ed25519.PrivateKey, fresh bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rnd)
		if err != nil {
			return nil, false, fmt.Errorf("identity: making a key: %w", err)
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("identity: %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("identity: the identity key %s may be read by others (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	key, err = parse(data)
	if err != nil {
		return nil, false, fmt.Errorf("identity: the identity key %s is corrupted (%v); remove it, and the node ID next to it, to give this node a new identity, which makes the cluster see a new node", path, err)
	}
	return key, false, nil
}

// parse reads a PEM PKCS #8 Ed25519 private key.
func parse(data []byte) (ed25519.PrivateKey, error) {
	if len(data) > maxFile {
		return nil, errors.New("it is too large")
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemType || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("it does not hold one PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("it is not a PKCS #8 private key")
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("it holds a %T, not an Ed25519 key", k)
	}
	return key, nil
}

// Save writes key to path atomically, 0600, creating the directory (0700).
func Save(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("identity: encoding the key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if err := atomicfile.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("identity: saving the identity key: %w", err)
	}
	return nil
}

// Public returns the public half of key.
func Public(key ed25519.PrivateKey) ed25519.PublicKey { return key.Public().(ed25519.PublicKey) }
