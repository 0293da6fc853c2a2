package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewCA(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		lifetime time.Duration
		want     time.Duration
	}{
		{"default lifetime", 0, DefaultCALifetime},
		{"one year", 365 * 24 * time.Hour, 365 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, err := NewCA(rand.Reader, testClusterID, now, tt.lifetime)
			if err != nil {
				t.Fatal(err)
			}
			c := ca.Cert
			type props struct {
				CN             string
				IsCA, BCValid  bool
				MaxPathLen     int
				MaxPathLenZero bool
				KeyUsage       x509.KeyUsage
				NotBefore      time.Time
				NotAfter       time.Time
				Curve          string
				ChainLen       int
			}
			pub, _ := c.PublicKey.(*ecdsa.PublicKey)
			curve := ""
			if pub != nil {
				curve = pub.Curve.Params().Name
			}
			got := props{c.Subject.CommonName, c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero,
				c.KeyUsage, c.NotBefore, c.NotAfter, curve, len(ca.Chain)}
			want := props{"nomad-bootstrapd CA 01234567", true, true, 0, true,
				x509.KeyUsageCertSign | x509.KeyUsageCRLSign, now.Add(-time.Hour), now.Add(tt.want), "P-256", 0}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("CA certificate (-want +got):\n%s", diff)
			}
			if n := c.SerialNumber.BitLen(); n > 128 || n < 64 || c.SerialNumber.Sign() <= 0 {
				t.Errorf("serial %x has %d bits, want a random positive 128-bit number", c.SerialNumber, n)
			}
			if !isSelfSigned(c) {
				t.Error("CA certificate is not self-signed")
			}
			if len(c.SubjectKeyId) == 0 {
				t.Error("CA certificate has no subject key ID")
			}
			if !publicKeysEqual(c.PublicKey, ca.Key.Public()) {
				t.Error("CA key does not match its certificate")
			}
		})
	}
	a, b := newTestCA(t, now), newTestCA(t, now)
	if a.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) == 0 {
		t.Error("two CAs share a serial number")
	}
	if _, err := NewCA(rand.Reader, "short", now, -time.Hour); err == nil {
		t.Error("NewCA accepted a negative lifetime")
	}
	short, err := NewCA(rand.Reader, "abc", now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := short.Cert.Subject.CommonName; got != "nomad-bootstrapd CA abc" {
		t.Errorf("CN for a short cluster ID = %q", got)
	}
}

func TestCAEncodingAndFingerprint(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	sum := sha256.Sum256(ca.Cert.Raw)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if got := ca.Fingerprint(); got != want {
		t.Errorf("Fingerprint() = %q, want %q", got, want)
	}
	if got := Fingerprint(ca.Cert); got != want {
		t.Errorf("Fingerprint(cert) = %q, want %q", got, want)
	}
	if !bytes.Equal(ca.BundlePEM(), ca.CertPEM()) {
		t.Error("BundlePEM of a self-signed CA differs from CertPEM")
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("KeyPEM is not PKCS#8:\n%s", keyPEM)
	}
	loaded, err := LoadCA(ca.CertPEM(), keyPEM, nil, now)
	if err != nil {
		t.Fatalf("LoadCA of NewCA's output: %v", err)
	}
	if loaded.Fingerprint() != ca.Fingerprint() || len(loaded.Chain) != 0 {
		t.Errorf("LoadCA changed the CA: %s, chain %d", loaded.Fingerprint(), len(loaded.Chain))
	}
	// The loaded CA signs certificates that verify under the original.
	der, err := loaded.Sign(mustCSR(t, testKey(t, "p256"), nil), serverID, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	verifyLeaf(t, mustParseCert(t, der), ca.BundlePEM(), "server.global.nomad", x509.ExtKeyUsageServerAuth)
}

func TestLoadCAErrors(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	keyPEM, _ := ca.KeyPEM()
	other := newTestCA(t, now)
	otherKey, _ := other.KeyPEM()
	leafDER, err := ca.Sign(mustCSR(t, testKey(t, "p256"), nil), serverID, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := MarshalKeyPEM(testKey(t, "p256"))
	root, rootKey := testRoot(t, "Example Root", now)
	otherRoot, _ := testRoot(t, "Other Root", now)
	interKey, interCSR, err := NewIntermediateCSR(rand.Reader, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	inter := signIntermediate(t, interCSR, root, rootKey, now, now.Add(24*time.Hour))
	_, sibCSR, err := NewIntermediateCSR(rand.Reader, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	sibling := signIntermediate(t, sibCSR, root, rootKey, now, now.Add(24*time.Hour))

	tests := []struct {
		name             string
		cert, key, chain []byte
		at               time.Time
		wantSubstr       string
	}{
		{"garbage cert", []byte("not a pem"), keyPEM, nil, now, "no PEM certificate found"},
		{"garbage key", ca.CertPEM(), []byte("nope"), nil, now, "no PEM private key found"},
		{"key of another CA", ca.CertPEM(), otherKey, nil, now, "does not belong to the CA certificate"},
		{"leaf as CA", EncodeCertPEM(leafDER), leafKey, nil, now, "is not a CA certificate"},
		{"expired", ca.CertPEM(), keyPEM, nil, now.Add(DefaultCALifetime + time.Hour), "expired at"},
		{"not yet valid", ca.CertPEM(), keyPEM, nil, now.Add(-2 * time.Hour), "is not valid before"},
		{"intermediate without chain", inter, interKey, nil, now, `is issued by "Example Root"; give the chain`},
		{"intermediate under another root", inter, interKey, EncodeCertPEM(otherRoot.Raw), now, `does not chain to the root "Other Root"`},
		{"chain in both places", append(append([]byte{}, inter...), EncodeCertPEM(root.Raw)...), interKey, EncodeCertPEM(root.Raw), now, "give the chain in one place only"},
		{"intermediate as its own chain", inter, interKey, inter, now, "holds the certificate itself"},
		{"self-signed CA as its own chain", ca.CertPEM(), keyPEM, ca.CertPEM(), now, "holds the certificate itself"},
		{"chain ending at another intermediate", inter, interKey, sibling, now, "which is not a root (self-signed)"},
		{"intermediate past its validity", inter, interKey, EncodeCertPEM(root.Raw), now.Add(48 * time.Hour), "expired at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadCA(tt.cert, tt.key, tt.chain, tt.at)
			if err == nil {
				t.Fatalf("LoadCA succeeded with %s", got.Fingerprint())
			}
			if !strings.Contains(err.Error(), tt.wantSubstr) || !strings.HasPrefix(err.Error(), "certs: ") {
				t.Errorf("LoadCA error = %q, want it to contain %q", err, tt.wantSubstr)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error quotes key material: %q", err)
			}
		})
	}

}

// TestIntermediateCA covers the operator flow with the CA key kept
// offline: the root signs nomad-bootstrapd's intermediate, which issues the
// nodes' certificates, and both crypto/x509 and openssl verify the chain.
func TestIntermediateCA(t *testing.T) {
	now := time.Now()
	root, rootKey := testRoot(t, "Example Root", now)
	keyPEM, csrPEM, err := NewIntermediateCSR(rand.Reader, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	csr := mustParseCSRPEM(t, csrPEM)
	if got := csr.Subject.CommonName; got != "nomad-bootstrapd CA 01234567" {
		t.Errorf("intermediate CSR CN = %q", got)
	}
	interPEM := signIntermediate(t, csrPEM, root, rootKey, now, now.Add(365*24*time.Hour))
	rootPEM := EncodeCertPEM(root.Raw)

	ca, err := LoadCA(interPEM, keyPEM, rootPEM, now)
	if err != nil {
		t.Fatalf("LoadCA with the root as chain: %v", err)
	}
	if len(ca.Chain) != 1 || !ca.Chain[0].Equal(root) {
		t.Fatalf("Chain = %d certificates, want the root", len(ca.Chain))
	}
	if want := append(append([]byte{}, interPEM...), rootPEM...); !bytes.Equal(ca.BundlePEM(), want) {
		t.Errorf("BundlePEM is not the intermediate followed by the root")
	}
	// The bundle alone (certPEM carrying the chain) loads too.
	if _, err := LoadCA(ca.BundlePEM(), keyPEM, nil, now); err != nil {
		t.Errorf("LoadCA of BundlePEM: %v", err)
	}

	der, err := ca.Sign(mustCSR(t, testKey(t, "p256"), nil), serverID, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaf := mustParseCert(t, der)
	if !bytes.Equal(leaf.AuthorityKeyId, ca.Cert.SubjectKeyId) || len(leaf.AuthorityKeyId) == 0 {
		t.Errorf("AuthorityKeyId %x, want the intermediate's key ID %x", leaf.AuthorityKeyId, ca.Cert.SubjectKeyId)
	}
	// Trusting the root alone, with the intermediate as untrusted.
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	inter.AddCert(ca.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "server.global.nomad",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("leaf does not verify under the offline root: %v", err)
	}
	// Trusting ca.pem (the bundle), as Nomad does.
	verifyLeaf(t, leaf, ca.BundlePEM(), "server.global.nomad", x509.ExtKeyUsageServerAuth)

	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{"root.pem": rootPEM, "intermediate.pem": interPEM, "leaf.pem": EncodeCertPEM(der)})
	out, err := openssl(t, dir, "verify", "-CAfile", "root.pem", "-untrusted", "intermediate.pem", "leaf.pem")
	if err != nil {
		t.Errorf("openssl verify -CAfile root.pem -untrusted intermediate.pem leaf.pem: %v\n%s", err, out)
	}
	otherRoot, _ := testRoot(t, "Other Root", now)
	writeFiles(t, dir, map[string][]byte{"other.pem": EncodeCertPEM(otherRoot.Raw)})
	if out, err := openssl(t, dir, "verify", "-CAfile", "other.pem", "-untrusted", "intermediate.pem", "leaf.pem"); err == nil {
		t.Errorf("openssl verify accepted the leaf under another root:\n%s", out)
	}
}

// TestIntermediateCAWithOpenSSL runs the openssl command documented on
// NewIntermediateCSR and loads its result.
func TestIntermediateCAWithOpenSSL(t *testing.T) {
	now := time.Now()
	root, rootKey := testRoot(t, "Example Root", now)
	rootKeyPEM, err := MarshalKeyPEM(rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := NewIntermediateCSR(rand.Reader, testClusterID)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{
		"root.pem":         EncodeCertPEM(root.Raw),
		"root-key.pem":     rootKeyPEM,
		"intermediate.csr": csrPEM,
		// What the documented <(printf ...) expands to.
		"ext.cnf": []byte("basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign"),
	})
	out, err := openssl(t, dir, "x509", "-req", "-in", "intermediate.csr", "-CA", "root.pem", "-CAkey", "root-key.pem",
		"-days", "1825", "-sha256", "-out", "intermediate.pem", "-extfile", "ext.cnf")
	if err != nil {
		t.Fatalf("openssl x509 -req: %v\n%s", err, out)
	}
	interPEM := readFile(t, filepath.Join(dir, "intermediate.pem"))
	now = time.Now() // openssl starts the validity at its own second
	ca, err := LoadCA(interPEM, keyPEM, EncodeCertPEM(root.Raw), now)
	if err != nil {
		t.Fatalf("LoadCA of the openssl-signed intermediate: %v", err)
	}
	if !ca.Cert.MaxPathLenZero || ca.Cert.MaxPathLen != 0 {
		t.Errorf("intermediate path length = %d (zero %v), want 0", ca.Cert.MaxPathLen, ca.Cert.MaxPathLenZero)
	}
	der, err := ca.Sign(mustCSR(t, testKey(t, "p256"), nil), clientID, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string][]byte{"leaf.pem": EncodeCertPEM(der), "bundle.pem": ca.BundlePEM()})
	if out, err := openssl(t, dir, "verify", "-CAfile", "root.pem", "-untrusted", "intermediate.pem", "leaf.pem"); err != nil {
		t.Errorf("openssl verify: %v\n%s", err, out)
	}
	if out, err := openssl(t, dir, "verify", "-CAfile", "bundle.pem", "leaf.pem"); err != nil {
		t.Errorf("openssl verify -CAfile bundle.pem: %v\n%s", err, out)
	}

	// Without the extensions file the result is not a CA, and LoadCA says so.
	out, err = openssl(t, dir, "x509", "-req", "-in", "intermediate.csr", "-CA", "root.pem", "-CAkey", "root-key.pem",
		"-days", "1825", "-sha256", "-out", "plain.pem")
	if err != nil {
		t.Fatalf("openssl x509 -req: %v\n%s", err, out)
	}
	if _, err := LoadCA(readFile(t, filepath.Join(dir, "plain.pem")), keyPEM, EncodeCertPEM(root.Raw), now); err == nil ||
		!strings.Contains(err.Error(), "not a CA certificate") {
		t.Errorf("LoadCA of an intermediate without CA:true = %v, want not a CA certificate", err)
	}
}

func TestLoadCAKeyFormats(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, now)
	key := ca.Key.(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// openssl ecparam -genkey writes EC PARAMETERS before the key.
	pemSEC1 := append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"),
		pemEncode(pemECKey, sec1)...)
	if _, err := LoadCA(ca.CertPEM(), pemSEC1, nil, now); err != nil {
		t.Errorf("LoadCA with a SEC 1 key: %v", err)
	}
}

// PinnedIndex finds the pinned CA wherever it is in a bundle, whatever the
// case of the fingerprint's hex digits, and nothing else.
func TestPinnedIndex(t *testing.T) {
	now := time.Now()
	var bundle []*x509.Certificate
	for range 2 {
		ca, err := NewCA(rand.Reader, testClusterID, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, ca.Cert)
	}
	tests := []struct {
		name        string
		fingerprint string
		want        int
	}{
		{"first", Fingerprint(bundle[0]), 0},
		{"second", Fingerprint(bundle[1]), 1},
		{"upper-case hex", "sha256:" + strings.ToUpper(strings.TrimPrefix(Fingerprint(bundle[1]), "sha256:")), 1},
		{"another CA", "sha256:" + strings.Repeat("0", 64), -1},
		{"empty", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PinnedIndex(bundle, tt.fingerprint); got != tt.want {
				t.Errorf("PinnedIndex = %d, want %d", got, tt.want)
			}
		})
	}
}
