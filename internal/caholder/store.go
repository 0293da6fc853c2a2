// Package caholder is the CA holder's side of the cluster: the cluster CA
// kept on disk (its own, or the operator's intermediate), the CA key sealed
// for escrow and kept by the other servers, which server signs when the
// holder is gone, what a certificate request is authorized as, and the
// signing endpoint that puts these together.
//
// It decides and stores; sending the escrow over gossip and choosing when
// to take over stay with the agent, whose event loop owns the plan.
package caholder

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/config"
)

// File names in a Store's directory.
const (
	CertFile   = "ca.pem"        // the CA certificate, then its chain
	KeyFile    = "ca-key.pem"    // the CA key, on the CA holder only (0600)
	EscrowFile = "ca-key.sealed" // the CA key sealed for escrow, on the other servers (0600)
)

// Store is a node's CA directory (paths.CADir): the cluster CA on the CA
// holder, the escrowed CA key on the other servers.
type Store struct {
	// Dir is the directory, created 0700 on the first write.
	Dir string
	// Token seals and opens the escrowed key.
	Token certs.Token
	// Now is the clock CA certificates are checked against.
	Now func() time.Time
}

// Load reads the CA from the directory; nil, and no error, when there is
// none.
func (s Store) Load() (*certs.CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(s.Dir, CertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: reading the CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(s.Dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("agent: reading the CA key: %w", err)
	}
	ca, err := certs.LoadCA(certPEM, keyPEM, nil, s.Now())
	if err != nil {
		return nil, fmt.Errorf("agent: the CA in %s cannot be used: %w", s.Dir, err)
	}
	return ca, nil
}

// Save persists ca, its key 0600; unchanged files are left alone. The CA is
// saved before the plan pinning it is committed, so that a crash never
// leaves a committed plan whose CA key is lost.
func (s Store) Save(ca *certs.CA) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if _, err := atomicfile.WriteFileIfChanged(filepath.Join(s.Dir, KeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	// The bundle: an intermediate's chain up to the offline root follows it.
	_, err = atomicfile.WriteFileIfChanged(filepath.Join(s.Dir, CertFile), ca.BundlePEM(), 0o644)
	return err
}

// HasEscrow reports whether an escrowed CA key is stored, or may be: a
// file that cannot be looked at counts as there.
func (s Store) HasEscrow() bool {
	_, err := os.Stat(filepath.Join(s.Dir, EscrowFile))
	return !errors.Is(err, fs.ErrNotExist)
}

// EscrowedKey opens the escrowed CA key (PEM).
func (s Store) EscrowedKey() ([]byte, error) {
	sealed, err := os.ReadFile(filepath.Join(s.Dir, EscrowFile))
	if err != nil {
		return nil, fmt.Errorf("agent: no escrowed CA key: %w", err)
	}
	return certs.OpenCAKey(s.Token, sealed)
}

// Escrowed pairs the escrowed CA key with the CA certificate of fingerprint
// found in the CA bundle at bundlePath (the node's), and the chain that
// follows it there.
func (s Store) Escrowed(bundlePath, fingerprint string) (*certs.CA, error) {
	keyPEM, err := s.EscrowedKey()
	if err != nil {
		return nil, err
	}
	bundle, err := os.ReadFile(bundlePath)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	cas, err := certs.ParseCertsPEM(bundle)
	if err != nil {
		return nil, err
	}
	i := certs.PinnedIndex(cas, fingerprint)
	if i < 0 {
		return nil, fmt.Errorf("agent: the CA bundle does not hold the pinned CA %s", fingerprint)
	}
	var chain []byte
	for _, c := range cas[i+1:] {
		chain = append(chain, certs.EncodeCertPEM(c.Raw)...)
	}
	return certs.LoadCA(certs.EncodeCertPEM(cas[i].Raw), keyPEM, chain, s.Now())
}

// KeepEscrow stores sealed, an escrowed CA key, once it opens with the
// token. Each escrow is sealed anew: a stored file that holds the same key
// is kept. It reports whether the file changed.
func (s Store) KeepEscrow(sealed []byte) (changed bool, err error) {
	key, err := certs.OpenCAKey(s.Token, sealed)
	if err != nil {
		return false, err
	}
	path := filepath.Join(s.Dir, EscrowFile)
	if old, err := os.ReadFile(path); err == nil {
		if oldKey, err := certs.OpenCAKey(s.Token, old); err == nil && bytes.Equal(oldKey, key) {
			return false, nil
		}
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return false, err
	}
	return atomicfile.WriteFileIfChanged(path, sealed, 0o600)
}

// Seal returns ca's key sealed with a key derived from token, for escrow.
func Seal(token certs.Token, ca *certs.CA) ([]byte, error) {
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	return certs.SealCAKey(token, keyPEM, rand.Reader)
}

// Operator loads the intermediate CA of the operator's offline root that f
// names and verifies its chain up to the root.
func Operator(f config.CAFiles, now time.Time) (*certs.CA, error) {
	read := func(what, path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("agent: the ca block's %s: %w", what, err)
		}
		return b, nil
	}
	certPEM, err := read("cert_file", f.CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read("key_file", f.KeyFile)
	if err != nil {
		return nil, err
	}
	chainPEM, err := read("chain_file", f.ChainFile)
	if err != nil {
		return nil, err
	}
	ca, err := certs.LoadCA(certPEM, keyPEM, chainPEM, now)
	if err != nil {
		return nil, fmt.Errorf("agent: the intermediate CA of the ca block cannot be used: %w", err)
	}
	return ca, nil
}
