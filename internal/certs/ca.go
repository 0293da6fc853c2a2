package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Validity defaults and clock-skew allowances.
const (
	// DefaultCALifetime is the lifetime of a CA made by NewCA when none is
	// given: five years.
	DefaultCALifetime = 5 * 365 * 24 * time.Hour

	// DefaultLeafLifetime is the lifetime of a certificate issued by Sign
	// when none is given: 24 hours, renewed after 12 (see RenewAt). Nomad
	// checks no revocation list, so expiry is what revokes a certificate:
	// an evicted node's certificates stop working within a day, and the
	// 12 hours after renewal is due are what a CA outage may last.
	DefaultLeafLifetime = 24 * time.Hour

	// caBackdate is how far before its creation a CA certificate becomes
	// valid, so that nodes whose clocks lag still accept it.
	caBackdate = time.Hour

	// leafBackdate is how far before its issue a leaf certificate becomes
	// valid.
	leafBackdate = 5 * time.Minute
)

// caCommonNamePrefix starts the common name of a CA; the first 8
// characters of the cluster ID follow.
const caCommonNamePrefix = "nomad-bootstrapd CA "

// PEM block types.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemECKey       = "EC PRIVATE KEY"
	pemRSAKey      = "RSA PRIVATE KEY"
	pemCSR         = "CERTIFICATE REQUEST"
)

// CA is the cluster's certificate authority: a CA certificate, its key and,
// when the certificate is an intermediate under an operator's offline root,
// the issuers above it.
//
// A CA is safe for concurrent use by Sign once made; do not modify its
// fields afterwards.
type CA struct {
	// Cert is the certificate that signs the nodes' certificates.
	Cert *x509.Certificate
	// Key is Cert's private key.
	Key crypto.Signer
	// Chain holds the certificates above Cert, from its issuer up to and
	// including the root. It is empty for a self-signed CA.
	Chain []*x509.Certificate
}

// caCommonName returns the CA's common name for a cluster ID.
func caCommonName(clusterID string) string {
	short := clusterID
	if len(short) > 8 {
		short = short[:8]
	}
	return caCommonNamePrefix + short
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial(rnd io.Reader) (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return nil, fmt.Errorf("certs: reading randomness for a serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

// NewCA makes a self-signed ECDSA P-256 CA for the cluster, valid from an
// hour before now (for clock skew) for lifetime (DefaultCALifetime when 0).
// Its certificate may only sign end-entity certificates (path length 0).
// rnd supplies the serial number; crypto/rand.Reader in production.
func NewCA(rnd io.Reader, clusterID string, now time.Time, lifetime time.Duration) (*CA, error) {
	if lifetime == 0 {
		lifetime = DefaultCALifetime
	}
	if lifetime < 0 {
		return nil, fmt.Errorf("certs: CA lifetime %s is negative", lifetime)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, fmt.Errorf("certs: generating the CA key: %w", err)
	}
	serial, err := randomSerial(rnd)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName(clusterID)},
		NotBefore:             now.Add(-caBackdate).UTC(),
		NotAfter:              now.Add(lifetime).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certs: creating the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parsing the new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA loads a CA from PEM: its certificate, its private key (PKCS#8,
// SEC 1 or PKCS#1) and, for an intermediate CA, chainPEM with the
// certificates above it up to the root. certPEM may instead carry the chain
// after the CA certificate, as BundlePEM writes it; giving a chain in both
// is an error.
//
// The key must belong to the certificate, the certificate must be a CA
// valid at now, and it must either be self-signed with no chain, or verify
// (crypto/x509) up to the last certificate of the chain, which is taken as
// the trust anchor.
func LoadCA(certPEM, keyPEM, chainPEM []byte, now time.Time) (*CA, error) {
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	cert, chain := certs[0], certs[1:]
	if len(bytes.TrimSpace(chainPEM)) > 0 {
		if len(chain) > 0 {
			return nil, errors.New("certs: the CA certificate file already holds a chain; give the chain in one place only")
		}
		if chain, err = ParseCertsPEM(chainPEM); err != nil {
			return nil, fmt.Errorf("certs: CA chain: %w", err)
		}
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("certs: the CA key does not belong to the CA certificate %q", cert.Subject.CommonName)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("certs: certificate %q is not a CA certificate (basicConstraints CA:true is missing)", cert.Subject.CommonName)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("certs: CA certificate %q may not sign certificates (keyUsage lacks keyCertSign)", cert.Subject.CommonName)
	}
	if err := checkValidAt(cert, now); err != nil {
		return nil, err
	}

	if len(chain) == 0 {
		if !isSelfSigned(cert) {
			return nil, fmt.Errorf("certs: CA certificate %q is issued by %q; give the chain up to the root", cert.Subject.CommonName, cert.Issuer.CommonName)
		}
		return &CA{Cert: cert, Key: key}, nil
	}
	// The chain ends at a root, and is above the CA: otherwise the
	// certificate would verify against itself.
	for _, c := range chain {
		if bytes.Equal(c.Raw, cert.Raw) {
			return nil, fmt.Errorf("certs: the chain of CA certificate %q holds the certificate itself; give the certificates above it, up to the root", cert.Subject.CommonName)
		}
	}
	if last := chain[len(chain)-1]; !isSelfSigned(last) {
		return nil, fmt.Errorf("certs: the chain of CA certificate %q ends at %q, which is not a root (self-signed); give the chain up to the root", cert.Subject.CommonName, last.Subject.CommonName)
	}
	roots := x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	inter := x509.NewCertPool()
	for _, c := range chain[:len(chain)-1] {
		inter.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("certs: CA certificate %q does not chain to the root %q of the given chain: %w",
			cert.Subject.CommonName, chain[len(chain)-1].Subject.CommonName, err)
	}
	return &CA{Cert: cert, Key: key, Chain: chain}, nil
}

// checkValidAt reports whether cert is valid at now.
func checkValidAt(cert *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(cert.NotBefore):
		return fmt.Errorf("certs: CA certificate %q is not valid before %s (now %s)",
			cert.Subject.CommonName, cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.After(cert.NotAfter):
		return fmt.Errorf("certs: CA certificate %q expired at %s (now %s)",
			cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// isSelfSigned reports whether cert is signed by its own key.
func isSelfSigned(cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, cert.RawSubject) &&
		cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
}

// publicKeysEqual reports whether a and b are the same public key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// CertPEM returns the CA certificate alone, PEM encoded.
func (ca *CA) CertPEM() []byte {
	return EncodeCertPEM(ca.Cert.Raw)
}

// KeyPEM returns the CA private key as PKCS#8 PEM. It is secret: store it
// 0600 or sealed for escrow, never log it.
func (ca *CA) KeyPEM() ([]byte, error) {
	return MarshalKeyPEM(ca.Key)
}

// BundlePEM returns the CA certificate followed by its chain, PEM encoded:
// what nodes trust as Nomad's ca_file and what the CA endpoint serves.
func (ca *CA) BundlePEM() []byte {
	var b bytes.Buffer
	b.Write(EncodeCertPEM(ca.Cert.Raw))
	for _, c := range ca.Chain {
		b.Write(EncodeCertPEM(c.Raw))
	}
	return b.Bytes()
}

// Fingerprint returns the CA certificate's fingerprint (see Fingerprint),
// which the committed plan carries so that nodes pin the CA.
func (ca *CA) Fingerprint() string {
	return Fingerprint(ca.Cert)
}

// Fingerprint returns "sha256:" followed by the lowercase hex SHA-256 of
// the certificate's DER encoding.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PinnedIndex returns the index in bundle of the certificate whose
// Fingerprint is fingerprint (in either case), or -1 when none is.
func PinnedIndex(bundle []*x509.Certificate, fingerprint string) int {
	return slices.IndexFunc(bundle, func(c *x509.Certificate) bool { return strings.EqualFold(Fingerprint(c), fingerprint) })
}

// NewIntermediateCSR makes an ECDSA P-256 key and a CSR for a CA
// certificate, for a cluster whose root CA key is kept offline. The
// operator signs the CSR with the root and gives the result, the key and
// the root to LoadCA. With openssl, for example:
//
//	openssl x509 -req -in intermediate.csr -CA root.pem -CAkey root-key.pem \
//	  -days 1825 -sha256 -out intermediate.pem \
//	  -extfile <(printf "basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign")
//
// The extensions file matters: openssl x509 -req does not copy the CSR's
// extensions, and without CA:true LoadCA refuses the certificate. keyPEM is
// PKCS#8 and secret.
func NewIntermediateCSR(rnd io.Reader, clusterID string) (keyPEM, csrPEM []byte, err error) {
	key, err := NewKey(rnd)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rnd, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: caCommonName(clusterID)},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: creating the intermediate CA request: %w", err)
	}
	keyPEM, err = MarshalKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der}), nil
}

// ErrCSRRejected is wrapped by the errors with which Sign refuses a CSR
// (bad signature, key type not allowed): the requester's fault, as opposed
// to a failure of the CA. Test with errors.Is.
var ErrCSRRejected = errors.New("certs: CSR rejected")

// rejectError carries a specific message for ErrCSRRejected.
type rejectError struct{ msg string }

func (e *rejectError) Error() string { return e.msg }
func (e *rejectError) Unwrap() error { return ErrCSRRejected }

// reject returns an error wrapping ErrCSRRejected.
func reject(format string, args ...any) error {
	return &rejectError{msg: fmt.Sprintf(format, args...)}
}

// maxRSABits bounds RSA keys in CSRs, so that a request cannot make the CA
// spend long verifying a huge key.
const maxRSABits = 8192

// CheckKeyPolicy reports whether a CSR's public key is allowed: ECDSA
// P-256, P-384 or P-521, Ed25519, or RSA of 2048 to 8192 bits. The error
// wraps ErrCSRRejected and names the key type and size.
func CheckKeyPolicy(pub crypto.PublicKey) error {
	const allowed = "allowed keys are ECDSA P-256, P-384 or P-521, Ed25519, and RSA of 2048 to 8192 bits"
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		name := "unknown curve"
		if k.Curve != nil {
			name = k.Curve.Params().Name
		}
		return reject("certs: CSR key ECDSA %s is not allowed; %s", name, allowed)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return reject("certs: CSR key Ed25519 has %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return nil
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > maxRSABits {
			return reject("certs: CSR key RSA %d bits is not allowed; %s", n, allowed)
		}
		return nil
	default:
		return reject("certs: CSR key type %T is not allowed; %s", pub, allowed)
	}
}

// Sign issues a certificate for the key of csr, for the node id, valid from
// five minutes before now (for clock skew) until now+lifetime
// (DefaultLeafLifetime when 0), but never past the CA's own expiry. It
// returns the certificate's DER encoding.
//
// The certificate's names come only from Names(id): the names, addresses,
// URIs, e-mail addresses, subject and extensions the CSR asks for are
// ignored. Servers and clients get the server and client auth extended key
// usages, the cli role client auth only. The CSR's signature must verify
// and its key must pass CheckKeyPolicy; such refusals wrap ErrCSRRejected.
//
// Sign is safe for concurrent use.
func (ca *CA) Sign(csr *x509.CertificateRequest, id Identity, now time.Time, lifetime time.Duration) (certDER []byte, err error) {
	if lifetime == 0 {
		lifetime = DefaultLeafLifetime
	}
	if lifetime < 0 {
		return nil, fmt.Errorf("certs: certificate lifetime %s is negative", lifetime)
	}
	return ca.sign(csr, id, now.Add(-leafBackdate), now.Add(lifetime))
}

// sign is Sign with explicit validity bounds; notAfter is capped at the
// expiry of the CA and its chain.
func (ca *CA) sign(csr *x509.CertificateRequest, id Identity, notBefore, notAfter time.Time) ([]byte, error) {
	if csr == nil {
		return nil, reject("certs: no CSR given")
	}
	if err := CheckKeyPolicy(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, reject("certs: CSR signature is invalid")
	}
	dns, ips, err := Names(id)
	if err != nil {
		return nil, err
	}
	for _, c := range append([]*x509.Certificate{ca.Cert}, ca.Chain...) {
		if notAfter.After(c.NotAfter) {
			notAfter = c.NotAfter
		}
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("certs: CA certificate %q expires at %s; it cannot issue certificates any more",
			ca.Cert.Subject.CommonName, notAfter.UTC().Format(time.RFC3339))
	}

	keyUsage := x509.KeyUsageDigitalSignature
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		keyUsage |= x509.KeyUsageKeyEncipherment
	}
	extKeyUsage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if id.Role == RoleCLI {
		extKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	serial, err := randomSerial(rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: dns[0]},
		DNSNames:              dns,
		IPAddresses:           ips,
		NotBefore:             notBefore.UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              keyUsage,
		ExtKeyUsage:           extKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  false,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: signing the certificate for node %q: %w", id.NodeName, err)
	}
	return der, nil
}
