package caholder

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/acl"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/identity"
)

// The escrow: what another server needs to take over from the CA holder,
// sealed by the CA holder to that server's identity key (identity.Seal,
// HPKE), one seal per server. A sealed escrow is
//
//	version (1 byte, 3) || HPKE encapsulated key || ciphertext
//
// with HPKE info "nomad-bootstrapd ca escrow v3", and opens to the JSON of
// an Escrow. Neither token opens it: a node holding only a token, or the
// identity key of another node, learns nothing from it.
const (
	escrowInfo    = "nomad-bootstrapd ca escrow v3"
	escrowVersion = 3
	// maxEscrow bounds a sealed escrow: a CA bundle of a few certificates,
	// a key and a UUID.
	maxEscrow = 8 << 10
)

// Escrow is what the CA holder hands the other servers.
type Escrow struct {
	// CA is the CA certificate, then its chain (certs.CA.BundlePEM).
	CA string `json:"ca"`
	// Key is the CA's private key (PEM).
	Key string `json:"key"`
	// Management is the ACL management token's secret ID.
	Management string `json:"management"`
}

// escrowJSON is Escrow's encoding, with its version.
type escrowJSON struct {
	Version int `json:"v"`
	Escrow
}

// ErrEscrowOpen means an escrow did not open with this node's identity key:
// it was sealed to another node, or modified.
var ErrEscrowOpen = errors.New("caholder: the escrow does not open with this node's identity key: it was sealed to another node or modified")

// Seal returns ca's escrow, with the management token's secret, sealed to
// the server whose identity public key is to.
func Seal(to ed25519.PublicKey, ca *certs.CA, management string) ([]byte, error) {
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(escrowJSON{Version: 1, Escrow: Escrow{CA: string(ca.BundlePEM()), Key: string(keyPEM), Management: management}})
	if err != nil {
		return nil, fmt.Errorf("caholder: encoding the escrow: %w", err)
	}
	sealed, err := identity.Seal(to, escrowInfo, plain)
	if err != nil {
		return nil, err
	}
	return append([]byte{escrowVersion}, sealed...), nil
}

// open opens a sealed escrow with key and parses it; it checks nothing of
// what the escrow says.
func open(key ed25519.PrivateKey, sealed []byte) (Escrow, error) {
	if len(sealed) == 0 {
		return Escrow{}, errors.New("caholder: the escrow is empty")
	}
	if len(sealed) > maxEscrow {
		return Escrow{}, fmt.Errorf("caholder: an escrow of %d bytes exceeds %d", len(sealed), maxEscrow)
	}
	if sealed[0] != escrowVersion {
		return Escrow{}, fmt.Errorf("caholder: the escrow has format version %d; this binary reads version %d", sealed[0], escrowVersion)
	}
	plain, err := identity.Open(key, escrowInfo, sealed[1:])
	if err != nil {
		return Escrow{}, ErrEscrowOpen
	}
	return parseEscrow(plain)
}

// parseEscrow decodes an opened escrow.
func parseEscrow(b []byte) (Escrow, error) {
	var e escrowJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || dec.More() {
		return Escrow{}, errors.New("caholder: the escrow is malformed")
	}
	if e.Version != 1 {
		return Escrow{}, fmt.Errorf("caholder: the escrow has content version %d; this binary reads version 1", e.Version)
	}
	return e.Escrow, nil
}

// check loads the CA of e and checks that it is a CA that trusted pins
// (during a CA rotation, the cluster trusts two), that its key belongs to
// it, and that the management secret has the shape of a Nomad secret ID:
// an escrow that proves less is not kept, since base-mode HPKE lets anyone
// seal to a server.
func (s Store) check(e Escrow, trusted ...string) (*certs.CA, error) {
	ca, err := certs.LoadCA([]byte(e.CA), []byte(e.Key), nil, s.Now())
	if err != nil {
		return nil, fmt.Errorf("caholder: the escrowed CA cannot be used: %w", err)
	}
	if !slices.Contains(trusted, ca.Fingerprint()) {
		return nil, fmt.Errorf("caholder: the escrowed CA is %s, not the pinned CA %s", ca.Fingerprint(), strings.Join(trusted, " or "))
	}
	if !acl.IsSecretID(e.Management) {
		return nil, errors.New("caholder: the escrow's management token is not a secret ID")
	}
	return ca, nil
}

// HasEscrow reports whether an escrow of this binary's format is stored, or
// may be: a file that cannot be read counts as there. An escrow of an
// earlier format does not count, so that the server asks for a new one.
func (s Store) HasEscrow() bool {
	b, err := os.ReadFile(filepath.Join(s.Dir, EscrowFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return err != nil || (len(b) > 0 && b[0] == escrowVersion)
}

// Escrow opens the stored escrow; an error wraps fs.ErrNotExist when there
// is none.
func (s Store) Escrow() (Escrow, error) {
	sealed, err := os.ReadFile(filepath.Join(s.Dir, EscrowFile))
	if err != nil {
		return Escrow{}, fmt.Errorf("caholder: no escrowed CA key: %w", err)
	}
	return open(s.Identity, sealed)
}

// Escrowed returns the CA of the stored escrow, which must be the CA that
// fingerprint pins.
func (s Store) Escrowed(fingerprint string) (*certs.CA, error) {
	e, err := s.Escrow()
	if err != nil {
		return nil, err
	}
	return s.check(e, fingerprint)
}

// KeepEscrow stores sealed, an escrow sent by the CA holder, once it opens
// with this node's identity key and holds a CA that trusted pins.
// Each escrow is sealed anew: a stored file that holds the same escrow is
// kept. It reports whether the file changed.
func (s Store) KeepEscrow(sealed []byte, trusted ...string) (changed bool, err error) {
	e, err := open(s.Identity, sealed)
	if err != nil {
		return false, err
	}
	if _, err := s.check(e, trusted...); err != nil {
		return false, err
	}
	if old, err := s.Escrow(); err == nil && old == e {
		return false, nil
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return false, fmt.Errorf("caholder: %w", err)
	}
	return atomicfile.WriteFileIfChanged(filepath.Join(s.Dir, EscrowFile), sealed, 0o600)
}
