package certs

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
)

// File names in a TLSFiles directory, the names Nomad's config and the
// operator's environment (NOMAD_CACERT, NOMAD_CLIENT_CERT,
// NOMAD_CLIENT_KEY) point at:
//
//	ca.pem             the CA bundle (CA certificate and its chain), 0644
//	<role>.pem         the node's certificate for role, 0644
//	<role>-key.pem     its private key, 0600
//
// with role server, client or cli (cli.pem and cli-key.pem on servers, for
// the local operator).
const (
	// CAFileName is the CA bundle's file name.
	CAFileName = "ca.pem"

	certFileSuffix = ".pem"
	keyFileSuffix  = "-key.pem"

	keyFileMode  os.FileMode = 0o600
	certFileMode os.FileMode = 0o644
	dirMode      os.FileMode = 0o755
)

// TLSFiles is the directory of a node's TLS material, /etc/nomad.d/tls
// (see the file name constants). Every write is atomic and leaves a file
// holding the same content untouched.
type TLSFiles struct {
	// Dir is the directory; it is created (0755) on the first write.
	Dir string
}

// CAPath returns the path of the CA bundle.
func (f TLSFiles) CAPath() string { return filepath.Join(f.Dir, CAFileName) }

// CertPath returns the path of role's certificate, <role>.pem.
func (f TLSFiles) CertPath(role Role) string {
	return filepath.Join(f.Dir, string(role)+certFileSuffix)
}

// KeyPath returns the path of role's private key, <role>-key.pem.
func (f TLSFiles) KeyPath(role Role) string {
	return filepath.Join(f.Dir, string(role)+keyFileSuffix)
}

// WriteKey writes role's private key, mode 0600. It reports whether the
// file changed.
func (f TLSFiles) WriteKey(role Role, keyPEM []byte) (changed bool, err error) {
	if !role.Valid() {
		return false, fmt.Errorf("certs: unknown role %q", role)
	}
	if _, err := ParseKeyPEM(keyPEM); err != nil {
		return false, fmt.Errorf("certs: refusing to write %s: %w", f.KeyPath(role), err)
	}
	return f.write(f.KeyPath(role), keyPEM, keyFileMode)
}

// WriteCert writes role's certificate (PEM, optionally followed by its
// chain), mode 0644. It reports whether the file changed.
func (f TLSFiles) WriteCert(role Role, certPEM []byte) (changed bool, err error) {
	if !role.Valid() {
		return false, fmt.Errorf("certs: unknown role %q", role)
	}
	if _, err := ParseCertsPEM(certPEM); err != nil {
		return false, fmt.Errorf("certs: refusing to write %s: %w", f.CertPath(role), err)
	}
	return f.write(f.CertPath(role), certPEM, certFileMode)
}

// WriteCA writes the CA bundle (CA.BundlePEM), mode 0644. It reports
// whether the file changed.
func (f TLSFiles) WriteCA(bundlePEM []byte) (changed bool, err error) {
	if _, err := ParseCertsPEM(bundlePEM); err != nil {
		return false, fmt.Errorf("certs: refusing to write %s: %w", f.CAPath(), err)
	}
	return f.write(f.CAPath(), bundlePEM, certFileMode)
}

// write creates Dir and writes one file atomically if its content or mode
// differs.
func (f TLSFiles) write(path string, data []byte, mode os.FileMode) (bool, error) {
	if err := os.MkdirAll(f.Dir, dirMode); err != nil {
		return false, fmt.Errorf("certs: %w", err)
	}
	changed, err := atomicfile.WriteFileIfChanged(path, data, mode)
	if err != nil {
		return false, fmt.Errorf("certs: writing %s: %w", path, err)
	}
	return changed, nil
}

// LoadCert reads and parses role's certificate (the first one in the file).
// A missing file gives an error wrapping os.ErrNotExist.
func (f TLSFiles) LoadCert(role Role) (*x509.Certificate, error) {
	if !role.Valid() {
		return nil, fmt.Errorf("certs: unknown role %q", role)
	}
	b, err := os.ReadFile(f.CertPath(role))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	c, err := ParseCertPEM(b)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", f.CertPath(role), err)
	}
	return c, nil
}

// LoadKey reads and parses role's private key. A missing file gives an
// error wrapping os.ErrNotExist.
func (f TLSFiles) LoadKey(role Role) (crypto.Signer, error) {
	if !role.Valid() {
		return nil, fmt.Errorf("certs: unknown role %q", role)
	}
	b, err := os.ReadFile(f.KeyPath(role))
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	k, err := ParseKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", f.KeyPath(role), err)
	}
	return k, nil
}
