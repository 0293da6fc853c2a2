package certs

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEscrowRoundTrip(t *testing.T) {
	tok := testToken(t, 1)
	ca := newTestCA(t, time.Now())
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealCAKey(tok, keyPEM, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if sealed[0] != 1 || len(sealed) != 1+12+len(keyPEM)+16 {
		t.Errorf("sealed blob: version %d, %d bytes; want version 1 and %d bytes", sealed[0], len(sealed), 1+12+len(keyPEM)+16)
	}
	if bytes.Contains(sealed, []byte("PRIVATE KEY")) {
		t.Error("sealed blob holds the key in clear")
	}
	again, err := SealCAKey(tok, keyPEM, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(sealed, again) {
		t.Error("two seals of the same key are equal: the nonce is not random")
	}
	opened, err := OpenCAKey(tok, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(opened, keyPEM) {
		t.Error("OpenCAKey returned another key")
	}
	// The opened key loads with the CA certificate: the failover path.
	if _, err := LoadCA(ca.CertPEM(), opened, nil, time.Now()); err != nil {
		t.Errorf("LoadCA with the opened key: %v", err)
	}
}

func TestEscrowErrors(t *testing.T) {
	tok := testToken(t, 1)
	sealed, err := SealCAKey(tok, []byte("key"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sameCluster := testToken(t, 2)
	sameCluster.ClusterID = tok.ClusterID
	flip := func(i int) []byte {
		b := append([]byte{}, sealed...)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name     string
		tok      Token
		blob     []byte
		sentinel bool
		want     string
	}{
		{"other cluster's token", testToken(t, 3), sealed, true, "certs: cannot open the escrowed CA key: it was sealed with another cluster's join token or is corrupted"},
		{"same cluster, other secret", sameCluster, sealed, true, "certs: cannot open the escrowed CA key"},
		{"flipped nonce", tok, flip(3), true, "certs: cannot open the escrowed CA key"},
		{"flipped ciphertext", tok, flip(len(sealed) - 1), true, "certs: cannot open the escrowed CA key"},
		{"truncated", tok, sealed[:20], true, "certs: cannot open the escrowed CA key: it was sealed with another cluster's join token or is corrupted (it is truncated)"},
		{"empty", tok, nil, false, "certs: escrowed CA key is empty"},
		{"future version", tok, append([]byte{2}, sealed[1:]...), false, "certs: escrowed CA key has format version 2; this binary reads version 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OpenCAKey(tt.tok, tt.blob)
			if err == nil {
				t.Fatalf("OpenCAKey succeeded: %q", got)
			}
			if errors.Is(err, ErrEscrowOpen) != tt.sentinel {
				t.Errorf("errors.Is(err, ErrEscrowOpen) = %v, want %v", !tt.sentinel, tt.sentinel)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
	if _, err := SealCAKey(tok, []byte("key"), bytes.NewReader(nil)); err == nil {
		t.Error("SealCAKey succeeded without randomness")
	}
}
