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
	"crypto/ed25519"
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
	EscrowFile = "ca-key.sealed" // the escrow sealed to this server, on the other servers (0600)
)

// Store is a node's CA directory (paths.CADir): the cluster CA on the CA
// holder, the escrowed CA key on the other servers.
type Store struct {
	// Dir is the directory, created 0700 on the first write.
	Dir string
	// Identity is the node's identity key, to which its escrow is sealed.
	Identity ed25519.PrivateKey
	// Now is the clock CA certificates are checked against.
	Now func() time.Time
}

// Load reads the CA from the directory; nil, and no error, when there is
// none.
func (s Store) Load() (*certs.CA, error) { return s.load(CertFile, KeyFile) }

// Save persists ca, its key 0600; unchanged files are left alone. The CA is
// saved before the plan pinning it is committed, so that a crash never
// leaves a committed plan whose CA key is lost.
func (s Store) Save(ca *certs.CA) error { return s.save(ca, CertFile, KeyFile) }

// Operator loads the intermediate CA of the operator's offline root that f
// names and verifies its chain up to the root.
func Operator(f config.CAFiles, now time.Time) (*certs.CA, error) {
	read := func(what, path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("agent: the intermediate CA's %s: %w", what, err)
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
		return nil, fmt.Errorf("agent: the intermediate CA in %s cannot be used: %w", f.CertFile, err)
	}
	return ca, nil
}

// Files of the CA a rotation makes, until it signs.
const (
	NextCertFile = "ca-next.pem"
	NextKeyFile  = "ca-next-key.pem" // 0600
)

// SaveNext persists the CA a rotation makes beside the one that signs, so
// that a CA holder that restarts during the rotation finishes it with the
// same CA.
func (s Store) SaveNext(ca *certs.CA) error {
	return s.save(ca, NextCertFile, NextKeyFile)
}

// LoadNext reads the CA that SaveNext kept; nil, and no error, when there
// is none.
func (s Store) LoadNext() (*certs.CA, error) { return s.load(NextCertFile, NextKeyFile) }

// Signing returns the CA with this fingerprint: the one that signs, or the
// next one, which it then makes the one that signs (the next one's files
// are removed once it is; while the one that signs is asked for, they are
// kept). A promotion cut short by a crash, which may
// leave the key of one CA beside the certificate of the other, is
// finished.
func (s Store) Signing(fingerprint string) (*certs.CA, error) {
	cur, curErr := s.Load()
	if curErr == nil && cur != nil && cur.Fingerprint() == fingerprint {
		return cur, nil // a next one, if any, waits for its turn
	}
	next, err := s.LoadNext()
	if err != nil {
		return nil, err
	}
	if next == nil || next.Fingerprint() != fingerprint {
		if curErr != nil {
			return nil, curErr
		}
		return nil, fmt.Errorf("%s holds no CA with fingerprint %s; restore it from a backup", s.Dir, fingerprint)
	}
	if err := s.Save(next); err != nil {
		return nil, err
	}
	s.removeNext()
	return next, nil
}

func (s Store) removeNext() {
	for _, f := range []string{NextKeyFile, NextCertFile} {
		_ = os.Remove(filepath.Join(s.Dir, f))
	}
}

func (s Store) load(certFile, keyFile string) (*certs.CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(s.Dir, certFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: reading the CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(s.Dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("agent: reading the CA key: %w", err)
	}
	ca, err := certs.LoadCA(certPEM, keyPEM, nil, s.Now())
	if err != nil {
		return nil, fmt.Errorf("agent: the CA in %s cannot be used: %w", s.Dir, err)
	}
	return ca, nil
}

func (s Store) save(ca *certs.CA, certFile, keyFile string) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if _, err := atomicfile.WriteFileIfChanged(filepath.Join(s.Dir, keyFile), keyPEM, 0o600); err != nil {
		return err
	}
	// The bundle: an intermediate's chain up to the offline root follows it.
	_, err = atomicfile.WriteFileIfChanged(filepath.Join(s.Dir, certFile), ca.BundlePEM(), 0o644)
	return err
}
