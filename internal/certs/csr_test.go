package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
)

func TestNodeKeyAndCSR(t *testing.T) {
	key, err := NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if key.Curve != elliptic.P256() {
		t.Errorf("NewKey curve %s, want P-256", key.Curve.Params().Name)
	}
	der, err := CreateCSR(key, "client.global.nomad")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Error(err)
	}
	if csr.Subject.CommonName != "client.global.nomad" || !publicKeysEqual(csr.PublicKey, key.Public()) {
		t.Errorf("CSR subject %q or key differs", csr.Subject.CommonName)
	}
	keyPEM, err := MarshalKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(back.(*ecdsa.PrivateKey)) {
		t.Error("key PEM does not round trip")
	}
}

func TestParseCSRErrors(t *testing.T) {
	der, err := CreateCSR(testKey(t, "p256"), "n")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "certs: CSR is empty"},
		{"too large", make([]byte, MaxCSRSize+1), "certs: CSR is 16385 bytes, more than the 16384 allowed"},
		{"pem", pemEncode(pemCSR, der), "certs: CSR is PEM encoded; DER is expected"},
		{"truncated", der[:len(der)-5], "certs: CSR is malformed: "},
		{"garbage", []byte("hello"), "certs: CSR is malformed: "},
		{"trailing data", append(append([]byte{}, der...), 0), "certs: CSR is malformed: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := ParseCSR(tt.in)
			if err == nil || csr != nil {
				t.Fatalf("ParseCSR = %v, %v; want an error", csr, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestParsePEMErrors(t *testing.T) {
	der, _ := CreateCSR(testKey(t, "p256"), "n")
	if _, err := ParseCertPEM(pemEncode(pemCSR, der)); err == nil || err.Error() != "certs: no PEM certificate found" {
		t.Errorf("ParseCertPEM of a CSR: %v", err)
	}
	if _, err := ParseCertPEM(pemEncode(pemCertificate, []byte("junk"))); err == nil || !strings.HasPrefix(err.Error(), "certs: certificate 1 is malformed") {
		t.Errorf("ParseCertPEM of junk: %v", err)
	}
	secret := bytes.Repeat([]byte("S"), 40)
	_, err := ParseKeyPEM(pemEncode(pemPrivateKey, secret))
	if err == nil || err.Error() != "certs: malformed PRIVATE KEY block" {
		t.Errorf("ParseKeyPEM of junk: %v", err)
	}
	rsaPEM := pemEncode(pemRSAKey, mustPKCS1(t))
	if k, err := ParseKeyPEM(rsaPEM); err != nil || k == nil {
		t.Errorf("ParseKeyPEM of PKCS#1: %v", err)
	}
}
