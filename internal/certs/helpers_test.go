package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClusterID is the cluster ID of the test CAs.
const testClusterID = "0123456789abcdef0123456789abcdef"

// newTestCA returns a fresh self-signed CA created at now.
func newTestCA(t testing.TB, now time.Time) *CA {
	t.Helper()
	ca, err := NewCA(rand.Reader, testClusterID, now, 0)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

// keyCache holds keys that are slow to make (RSA), shared by tests.
var keyCache sync.Map

// testKey returns a private key of the given kind: "p224", "p256", "p384",
// "p521", "ed25519", "rsa1024", "rsa2048". Keys are cached.
func testKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	if k, ok := keyCache.Load(kind); ok {
		return k.(crypto.Signer)
	}
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case "p224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "rsa1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatalf("generating a %s key: %v", kind, err)
	}
	actual, _ := keyCache.LoadOrStore(kind, k)
	return actual.(crypto.Signer)
}

// mustCSR returns a parsed CSR for key with the given template.
func mustCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{Subject: pkix.Name{CommonName: "node"}}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatalf("ParseCSR: %v", err)
	}
	return csr
}

// mustParseCert parses a DER certificate.
func mustParseCert(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return c
}

// testRoot makes an operator's offline root CA with crypto/x509 alone.
func testRoot(t testing.TB, name string, now time.Time) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Example Ops"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(20 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return mustParseCert(t, der), key
}

// signIntermediate signs an intermediate CSR (PEM) with the root, as an
// operator would, valid until notAfter.
func signIntermediate(t testing.TB, csrPEM []byte, root *x509.Certificate, rootKey crypto.Signer, now, notAfter time.Time) []byte {
	t.Helper()
	csr := mustParseCSRPEM(t, csrPEM)
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               csr.Subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, csr.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return EncodeCertPEM(der)
}

func mustParseCSRPEM(t testing.TB, csrPEM []byte) *x509.CertificateRequest {
	t.Helper()
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != pemCSR {
		t.Fatalf("no CSR PEM block in %q", csrPEM)
	}
	csr, err := ParseCSR(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// opensslPath returns the openssl binary or skips the test.
func opensslPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if _, statErr := os.Stat("/usr/bin/openssl"); statErr == nil {
			return "/usr/bin/openssl"
		}
		t.Skip("openssl is not installed; skipping the cross-check with openssl verify")
	}
	return p
}

// openssl runs openssl with args in dir and returns its combined output.
func openssl(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(opensslPath(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// writeFiles writes name -> content into dir.
func writeFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// mustPKCS1 returns the test RSA-2048 key in PKCS#1 DER.
func mustPKCS1(t testing.TB) []byte {
	t.Helper()
	return x509.MarshalPKCS1PrivateKey(testKey(t, "rsa2048").(*rsa.PrivateKey))
}
