package certs

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeSignRequest checks that DecodeSignRequest never panics, that
// what it accepts encodes and decodes back to the same request, and that
// Verify never panics on it.
func FuzzDecodeSignRequest(f *testing.F) {
	key := make([]byte, 32)
	csr, err := CreateCSR(testKey(f, "p256"), "c1")
	if err != nil {
		f.Fatal(err)
	}
	r := &SignRequest{NodeID: "id-1", NodeName: "node-1", Role: RoleServer, CSR: csr}
	if err := r.Seal(key, ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)), time.Unix(1_800_000_000, 0), rand.Reader); err != nil {
		f.Fatal(err)
	}
	valid, err := r.Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{
		valid,
		valid[:len(valid)-1],
		append(append([]byte{}, valid...), "{}"...),
		bytes.Replace(valid, []byte(`"role":"server"`), []byte(`"role":"admin"`), 1),
		bytes.Replace(valid, []byte(`"node_id"`), []byte(`"NODE_ID"`), 1),
		bytes.Replace(valid, []byte(`{`), []byte(`{"x":1,`), 1),
		[]byte(`{"node_id":"a","node_name":"b","role":"cli","csr":"AA==","timestamp":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA==","mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`),
		[]byte(`{"node_id":"a","node_id":"b"}`),
		[]byte(`null`),
		[]byte(`[]`),
		[]byte(``),
		[]byte(`{"timestamp":1e400}`),
		[]byte(`{"node_name":"\u0000"}`),
		[]byte(`{"csr":"` + strings.Repeat("A", 100) + `"}`),
	} {
		f.Add(s)
	}
	v := NewVerifier(key, time.Hour, func() time.Time { return time.Unix(1_800_000_000, 0) })
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeSignRequest(b)
		if err != nil {
			if r != nil {
				t.Fatal("request returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "certs: sign request ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			return
		}
		enc, err := r.Encode()
		if err != nil {
			t.Fatalf("accepted request does not encode: %v", err)
		}
		again, err := DecodeSignRequest(enc)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip changed the request (-first +second):\n%s", diff)
		}
		_ = v.Verify(r)
	})
}

// FuzzParseCSR checks that ParseCSR never panics, and that whatever it
// accepts can go through the key policy and Sign without panicking.
func FuzzParseCSR(f *testing.F) {
	now := time.Now()
	ca := newTestCA(f, now)
	for _, kind := range []string{"p256", "p384", "ed25519", "p224"} {
		der, err := CreateCSR(testKey(f, kind), "node")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
		f.Add(der[:len(der)/2])
		broken := append([]byte{}, der...)
		broken[len(broken)-1] ^= 0xff
		f.Add(broken)
	}
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n"))
	f.Add(bytes.Repeat([]byte{0x30, 0x82}, 100))
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := ParseCSR(der)
		if err != nil {
			if csr != nil {
				t.Fatal("CSR returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "certs: CSR ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			return
		}
		if len(der) > MaxCSRSize {
			t.Fatalf("accepted a %d-byte CSR", len(der))
		}
		certDER, err := ca.Sign(csr, clientID, now, 0)
		if err != nil {
			return
		}
		c := mustParseCert(t, certDER)
		if diff := cmp.Diff([]string{"client.global.nomad", "localhost"}, c.DNSNames); diff != "" {
			t.Errorf("issued names (-want +got):\n%s", diff)
		}
	})
}
