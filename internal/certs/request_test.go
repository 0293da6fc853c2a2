package certs

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is a settable clock for Verifier.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// testIdentity returns a fixed identity key for seed.
func testIdentity(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// sealedRequest returns a sealed request of a client with a real CSR.
func sealedRequest(t testing.TB, key []byte, now time.Time) *SignRequest {
	t.Helper()
	csr, err := CreateCSR(testKey(t, "p256"), "c1")
	if err != nil {
		t.Fatal(err)
	}
	r := &SignRequest{NodeID: "4f1c7a2e-node", NodeName: "c1", Role: RoleClient, CSR: csr}
	if err := r.Seal(key, testIdentity(t, 1), now, rand.Reader); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSealMACConstruction checks the MAC against the documented encoding,
// written out independently.
func TestSealMACConstruction(t *testing.T) {
	key := katToken().CSRKey()
	now := time.Unix(1_800_000_000, 0)
	nonce := bytes.Repeat([]byte{0xab}, 16)
	id := testIdentity(t, 2)
	r := &SignRequest{NodeID: "id", NodeName: "n1", Role: RoleServer, CSR: []byte{1, 2, 3}, Admission: []byte{9, 9}}
	if err := r.Seal(key, id, now, bytes.NewReader(nonce)); err != nil {
		t.Fatal(err)
	}
	var in []byte
	field := func(b []byte) {
		in = binary.BigEndian.AppendUint32(in, uint32(len(b)))
		in = append(in, b...)
	}
	pub := id.Public().(ed25519.PublicKey)
	field([]byte("nomad-bootstrapd sign request v2"))
	field([]byte("id"))
	field([]byte("n1"))
	field([]byte("server"))
	field([]byte{1, 2, 3})
	field(binary.BigEndian.AppendUint64(nil, 1_800_000_000))
	field(nonce)
	field(pub)
	field([]byte{9, 9})
	m := hmac.New(sha256.New, key)
	m.Write(in)
	want := &SignRequest{NodeID: "id", NodeName: "n1", Role: RoleServer, CSR: []byte{1, 2, 3},
		Timestamp: 1_800_000_000, Nonce: nonce, Identity: []byte(pub), Admission: []byte{9, 9}, MAC: m.Sum(nil),
		Signature: ed25519.Sign(id, in)}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("sealed request (-want +got):\n%s", diff)
	}

	// Length prefixes keep field boundaries: moving a byte from NodeID to
	// NodeName changes the MAC.
	shifted := *r
	shifted.NodeID, shifted.NodeName = "i", "dn1"
	if hmac.Equal(mac(key, shifted.signedBytes()), r.MAC) {
		t.Error("MAC does not separate fields")
	}
}

func TestSealErrors(t *testing.T) {
	key := make([]byte, 32)
	tests := []struct {
		name string
		r    SignRequest
		want string
	}{
		{"no node id", SignRequest{NodeName: "n", Role: RoleClient, CSR: []byte{1}}, "certs: sign request has no node_id"},
		{"no role", SignRequest{NodeID: "i", NodeName: "n", CSR: []byte{1}}, `certs: sign request has unknown role ""`},
		{"no csr", SignRequest{NodeID: "i", NodeName: "n", Role: RoleCLI}, "certs: sign request has no csr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.r.Seal(key, testIdentity(t, 1), time.Now(), rand.Reader); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Seal error = %v, want %q", err, tt.want)
			}
		})
	}
	r := SignRequest{NodeID: "i", NodeName: "n", Role: RoleCLI, CSR: []byte{1}}
	if err := r.Seal(key, testIdentity(t, 1), time.Now(), bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("Seal succeeded with a short random source")
	}
	if err := r.Seal(key, nil, time.Now(), rand.Reader); err == nil {
		t.Error("Seal succeeded without an identity key")
	}
	if _, err := (&SignRequest{NodeID: "i", NodeName: "n", Role: RoleCLI, CSR: []byte{1}}).Encode(); err == nil {
		t.Error("Encode accepted an unsealed request")
	}
}

func TestSignRequestRoundTrip(t *testing.T) {
	key := testToken(t, 1).CSRKey()
	r := sealedRequest(t, key, time.Now())
	enc, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSignRequest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	var fields map[string]any
	if err := json.Unmarshal(enc, &fields); err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range fields {
		names = append(names, k)
	}
	want := []string{"csr", "identity", "mac", "node_id", "node_name", "nonce", "role", "signature", "timestamp"}
	if diff := cmp.Diff(want, names, sortStrings); diff != "" {
		t.Errorf("JSON fields (-want +got):\n%s", diff)
	}
	if err := NewVerifier(key, 0, nil).Verify(got); err != nil {
		t.Errorf("decoded request does not verify: %v", err)
	}
}

var sortStrings = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

// requestJSON returns a valid encoded request as a field map, to be
// damaged by the test cases.
func requestFields(t *testing.T) map[string]any {
	t.Helper()
	enc, err := sealedRequest(t, make([]byte, 32), time.Now()).Encode()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(enc, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecodeSignRequestErrors(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	valid, err := json.Marshal(requestFields(t))
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) []byte {
		m := requestFields(t)
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "certs: sign request is not valid JSON of the expected shape: unexpected end of input"},
		{"not json", []byte("hello"), "certs: sign request is not valid JSON of the expected shape: syntax error at byte 1"},
		{"truncated", valid[:len(valid)/2], "certs: sign request is not valid JSON of the expected shape: unexpected end of input"},
		{"array", []byte("[1,2]"), "certs: sign request is not valid JSON of the expected shape: wrong type, want an object"},
		{"null", []byte("null"), "certs: sign request has no node_id"},
		{"trailing object", append(append([]byte{}, valid...), "{}"...), "certs: sign request has data after its JSON object"},
		{"trailing garbage", append(append([]byte{}, valid...), " x"...), "certs: sign request has data after its JSON object"},
		{"unknown field", with("admin", true), `certs: sign request is not valid JSON of the expected shape: json: unknown field "admin"`},
		{"too large", append(append([]byte{}, valid...), bytes.Repeat([]byte(" "), MaxSignRequestSize)...), "certs: sign request is 3"},
		{"no node id", with("node_id", nil), "certs: sign request has no node_id"},
		{"no node name", with("node_name", ""), "certs: sign request has no node_name"},
		{"long node name", with("node_name", strings.Repeat("n", 65)), "certs: sign request node_name is 65 bytes, more than the 64 allowed"},
		{"control char in name", with("node_name", "a\nb"), "certs: sign request node_name contains the non-printable character U+000A"},
		{"unknown role", with("role", "admin"), `certs: sign request has unknown role "admin"`},
		{"role wrong type", with("role", 1), `certs: sign request is not valid JSON of the expected shape: field "role" has the wrong type`},
		{"no csr", with("csr", nil), "certs: sign request has no csr"},
		{"csr not base64", with("csr", "!!!"), "certs: sign request is not valid JSON of the expected shape: illegal base64 data at input byte 0"},
		{"huge csr", with("csr", b64(MaxCSRSize+1)), "certs: sign request csr is 16385 bytes, more than the 16384 allowed"},
		{"no timestamp", with("timestamp", nil), "certs: sign request has no timestamp"},
		{"negative timestamp", with("timestamp", -5), "certs: sign request has no timestamp"},
		{"timestamp float", with("timestamp", 1.5), `certs: sign request is not valid JSON of the expected shape: field "timestamp" has the wrong type`},
		{"short nonce", with("nonce", b64(15)), "certs: sign request nonce is 15 bytes, want 16"},
		{"long nonce", with("nonce", b64(17)), "certs: sign request nonce is 17 bytes, want 16"},
		{"no mac", with("mac", nil), "certs: sign request mac is 0 bytes, want 32"},
		{"short mac", with("mac", b64(31)), "certs: sign request mac is 31 bytes, want 32"},
		{"no identity key", with("identity", nil), "certs: sign request identity key is 0 bytes, want 32"},
		{"long identity key", with("identity", b64(33)), "certs: sign request identity key is 33 bytes, want 32"},
		{"no signature", with("signature", nil), "certs: sign request signature is 0 bytes, want 64"},
		{"short signature", with("signature", b64(63)), "certs: sign request signature is 63 bytes, want 64"},
		{"long admission", with("admission", b64(65)), "certs: sign request admission is 65 bytes, more than the 64 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeSignRequest(tt.in)
			if err == nil {
				t.Fatalf("DecodeSignRequest succeeded: %+v", r)
			}
			if r != nil {
				t.Error("DecodeSignRequest returned a request with its error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
	// Whitespace around the object is not data.
	if _, err := DecodeSignRequest(append(append([]byte("\n "), valid...), "\r\n"...)); err != nil {
		t.Errorf("surrounding whitespace refused: %v", err)
	}
}

func TestVerifier(t *testing.T) {
	tok := testToken(t, 1)
	key := tok.CSRKey()
	t0 := time.Unix(1_800_000_000, 0)
	clock := &fakeClock{t: t0}

	tests := []struct {
		name    string
		key     []byte        // sealing key
		sealAt  time.Duration // relative to t0
		tamper  func(r *SignRequest)
		want    error
		wantMsg string
	}{
		{"valid", key, 0, nil, nil, ""},
		{"valid, 2 min old", key, -2 * time.Minute, nil, nil, ""},
		{"valid, 2 min ahead", key, 2 * time.Minute, nil, nil, ""},
		{"other cluster's token", testToken(t, 2).CSRKey(), 0, nil, ErrBadMAC,
			"certs: request is not authenticated by this cluster's token; check that the node uses this cluster's join token"},
		{"gossip key instead of CSR key", tok.GossipKey(), 0, nil, ErrBadMAC, ""},
		{"role changed after sealing", key, 0, func(r *SignRequest) { r.Role = RoleServer }, ErrBadMAC, ""},
		{"name changed after sealing", key, 0, func(r *SignRequest) { r.NodeName = "s1" }, ErrBadMAC, ""},
		{"csr changed after sealing", key, 0, func(r *SignRequest) { r.CSR[10] ^= 1 }, ErrBadMAC, ""},
		{"timestamp changed after sealing", key, 0, func(r *SignRequest) { r.Timestamp++ }, ErrBadMAC, ""},
		{"mac flipped", key, 0, func(r *SignRequest) { r.MAC[0] ^= 1 }, ErrBadMAC, ""},
		{"mac truncated", key, 0, func(r *SignRequest) { r.MAC = r.MAC[:16] }, ErrBadMAC, ""},
		{"stale, past", key, -2*time.Minute - time.Second, nil, ErrStale,
			"certs: request timestamp is outside the allowed clock skew: the request time is 2m1s behind this node's clock (allowed ±2m0s); check both clocks (NTP)"},
		{"stale, future", key, 10 * time.Minute, nil, ErrStale,
			"certs: request timestamp is outside the allowed clock skew: the request time is 10m0s ahead of this node's clock (allowed ±2m0s); check both clocks (NTP)"},
		{"stale, far past", key, -100000 * time.Hour, nil, ErrStale, ""},
		{"admission added after sealing", key, 0, func(r *SignRequest) { r.Admission = []byte{1} }, ErrBadMAC, ""},
		{"signature flipped", key, 0, func(r *SignRequest) { r.Signature[5] ^= 1 }, ErrBadSignature, ErrBadSignature.Error()},
		// A holder of the token's request key can make the MAC of any
		// request, but not its signature by another node's key.
		{"another node's key, MAC remade", key, 0, func(r *SignRequest) {
			r.Identity = testIdentity(t, 9).Public().(ed25519.PublicKey)
			r.MAC = mac(key, r.signedBytes())
		}, ErrBadSignature, ""},
		{"re-signed by another key for another node", key, 0, func(r *SignRequest) {
			r.NodeName = "s1"
			r.MAC = mac(key, r.signedBytes())
			r.Signature = ed25519.Sign(testIdentity(t, 9), r.signedBytes())
		}, ErrBadSignature, ""},
	}
	v := NewVerifier(key, 0, clock.Now)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sealedRequest(t, tt.key, t0.Add(tt.sealAt))
			if tt.tamper != nil {
				tt.tamper(r)
			}
			err := v.Verify(r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("error:\n got %s\nwant %s", err, tt.wantMsg)
			}
			for _, s := range []error{ErrBadMAC, ErrStale, ErrReplay, ErrBadSignature} {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("error also matches %v", s)
				}
			}
		})
	}
}

func TestVerifierReplay(t *testing.T) {
	key := make([]byte, 32)
	t0 := time.Unix(1_800_000_000, 0)
	clock := &fakeClock{t: t0}
	v := NewVerifier(key, time.Minute, clock.Now)
	r := sealedRequest(t, key, t0)
	if err := v.Verify(r); err != nil {
		t.Fatal(err)
	}
	// The same request again, even re-encoded, is a replay while it is
	// fresh, and stale afterwards: it never passes again.
	enc, _ := r.Encode()
	again, err := DecodeSignRequest(enc)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{0, 30 * time.Second, time.Minute} {
		clock.Set(t0.Add(at))
		if err := v.Verify(again); !errors.Is(err, ErrReplay) {
			t.Errorf("replay at t0+%s: %v, want ErrReplay", at, err)
		}
	}
	clock.Set(t0.Add(time.Minute + time.Second))
	if err := v.Verify(again); !errors.Is(err, ErrStale) {
		t.Errorf("replay after the window: %v, want ErrStale", err)
	}
	// Expired nonces are pruned.
	clock.Set(t0.Add(5 * time.Minute))
	if err := v.Verify(sealedRequest(t, key, t0.Add(5*time.Minute))); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	n := len(v.nonces)
	v.mu.Unlock()
	if n != 1 {
		t.Errorf("verifier remembers %d nonces, want 1 after pruning", n)
	}
}

func TestVerifierBounded(t *testing.T) {
	key := make([]byte, 32)
	t0 := time.Unix(1_800_000_000, 0)
	clock := &fakeClock{t: t0}
	v := NewVerifier(key, time.Minute, clock.Now)
	v.maxNonces = 10
	var first *SignRequest
	for i := range 25 {
		r := sealedRequest(t, key, t0.Add(time.Duration(i)*time.Second-30*time.Second))
		if i == 0 {
			first = r
		}
		if err := v.Verify(r); err != nil {
			t.Fatal(err)
		}
	}
	v.mu.Lock()
	n, h := len(v.nonces), len(v.expiry)
	v.mu.Unlock()
	if n != 10 || h != 10 {
		t.Errorf("verifier holds %d nonces (%d in the heap), want the bound 10", n, h)
	}
	// The oldest was evicted: the bound trades replay protection of the
	// oldest nonce for memory, which only a token holder can exhaust.
	if err := v.Verify(first); err != nil {
		t.Errorf("evicted nonce: %v", err)
	}
}

func TestVerifierConcurrent(t *testing.T) {
	key := make([]byte, 32)
	now := time.Now()
	v := NewVerifier(key, 0, nil)
	r := sealedRequest(t, key, now)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, reps int
	)
	for range 16 {
		wg.Go(func() {
			cp := *r
			err := v.Verify(&cp)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrReplay):
				reps++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || reps != 15 {
		t.Errorf("%d accepted and %d replays, want 1 and 15", ok, reps)
	}
	// Distinct requests all pass.
	for i := range 8 {
		wg.Go(func() {
			if err := v.Verify(sealedRequest(t, key, now)); err != nil {
				t.Error(fmt.Errorf("request %d: %w", i, err))
			}
		})
	}
	wg.Wait()
}
