package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxCSRSize is the largest DER CSR ParseCSR accepts, 16 KiB: a P-256 CSR
// is about 250 bytes and an RSA-8192 one under 2 KiB.
const MaxCSRSize = 16 << 10

// NewKey makes a node's ECDSA P-256 private key. Since Go 1.26 the key
// comes from a secure source and rnd is ignored (see ecdsa.GenerateKey).
func NewKey(rnd io.Reader) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, fmt.Errorf("certs: generating a key: %w", err)
	}
	return key, nil
}

// CreateCSR returns a DER certificate request for key with commonName as
// its subject. The CA ignores the requested names and decides them itself,
// so commonName only helps a person reading the request.
func CreateCSR(key crypto.Signer, commonName string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("certs: creating a CSR: %w", err)
	}
	return der, nil
}

// ParseCSR parses a DER certificate request of at most MaxCSRSize bytes. It
// does not check the signature; CA.Sign does.
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	switch {
	case len(der) == 0:
		return nil, errors.New("certs: CSR is empty")
	case len(der) > MaxCSRSize:
		return nil, fmt.Errorf("certs: CSR is %d bytes, more than the %d allowed", len(der), MaxCSRSize)
	case bytes.HasPrefix(bytes.TrimSpace(der), []byte("-----BEGIN")):
		return nil, errors.New("certs: CSR is PEM encoded; DER is expected")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("certs: CSR is malformed: %w", err)
	}
	return csr, nil
}

// EncodeCertPEM returns a DER certificate as a PEM block.
func EncodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

// MarshalKeyPEM returns a private key as PKCS#8 PEM. The result is secret.
func MarshalKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encoding a %T private key: %w", key, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParseKeyPEM parses the first private key block of keyPEM: PKCS#8
// ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY").
// Its errors never quote the key.
func ParseKeyPEM(keyPEM []byte) (crypto.Signer, error) {
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("certs: no PEM private key found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case pemPrivateKey:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case pemECKey:
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case pemRSAKey:
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue // e.g. "EC PARAMETERS" before the key
		}
		if err != nil {
			return nil, fmt.Errorf("certs: malformed %s block", block.Type)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("certs: private key of type %T cannot sign", key)
		}
		return signer, nil
	}
}

// ParseCertPEM parses the first certificate of certPEM.
func ParseCertPEM(certPEM []byte) (*x509.Certificate, error) {
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertsPEM parses every CERTIFICATE block of certPEM, in order, and
// fails if there is none. Blocks of other types are skipped.
func ParseCertsPEM(certPEM []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := certPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != pemCertificate {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: certificate %d is malformed: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("certs: no PEM certificate found")
	}
	return certs, nil
}

// RenewAt returns when cert should be renewed: after half of its validity,
// NotBefore + (NotAfter − NotBefore)/2. The other half is what an outage of
// the CA may last before the certificate expires: 12 hours for the 24-hour
// default. NotBefore of a certificate from Sign is five minutes before its
// issue, which moves renewal two and a half minutes earlier.
func RenewAt(cert *x509.Certificate) time.Time {
	return cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)
}

// WarnAt returns when a certificate valid from notBefore to notAfter that
// has not been renewed deserves a warning: once a third of its validity is
// left (8 hours for the 24-hour default, 4 hours after renewal was due), or
// 30 days before it expires when that is later, as for a long-lived CA.
// Renewal that fails for a moment, such as while the CA fails over, stays
// quiet; one that keeps failing leaves time to act.
func WarnAt(notBefore, notAfter time.Time) time.Time {
	return notAfter.Add(-min(notAfter.Sub(notBefore)/3, warnAtMost))
}

// warnAtMost is the longest WarnAt warns before expiry.
const warnAtMost = 30 * 24 * time.Hour

// NeedsRenewal reports whether cert is due for renewal at now (or has
// expired).
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	return !now.Before(RenewAt(cert))
}
