package certs

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// clientShape is the documented shape of an encoded client token: the
// prefix and 173 base32 characters, the last carrying four bits.
var clientShape = regexp.MustCompile(`^nbd2c_[a-z2-7]{173}$`)

func TestClientTokenRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for seed := range uint64(10) {
		tok := testToken(t, seed)
		for _, exp := range []time.Time{{}, now, now.Add(24 * time.Hour)} {
			c := tok.Client(exp)
			enc := c.Encode()
			if !clientShape.MatchString(enc) || len(enc) != clientFormat.encodedLen() || len(enc) != 179 {
				t.Fatalf("Encode() = %q (%d characters) does not have the documented shape", enc, len(enc))
			}
			got, err := ParseClientToken(" " + strings.ToUpper(enc) + "\n")
			if err != nil {
				t.Fatalf("ParseClientToken: %v", err)
			}
			if diff := cmp.Diff(c, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if !got.ExpiresAt().Equal(exp) {
				t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt(), exp)
			}
		}
	}
}

// A client token gives the keys every node shares with the server token,
// and none of the server-only ones.
func TestClientTokenKeys(t *testing.T) {
	tok := testToken(t, 3)
	c := tok.Client(time.Time{})
	if !cmp.Equal(c.GossipKey(), tok.GossipKey()) || !cmp.Equal(c.CSRKey(), tok.CSRKey()) || c.GossipLabel() != tok.GossipLabel() {
		t.Fatal("a client token's gossip or CSR key or label differs from the server token's")
	}
	if c.ClusterIDString() != tok.ClusterIDString() {
		t.Fatal("cluster IDs differ")
	}
	k := ClientCredential(c).Keys()
	if k.NomadEncrypt != "" {
		t.Error("a client credential gives Nomad's gossip key")
	}
	if ClientCredential(c).IsServer() {
		t.Error("a client credential says it is a server credential")
	}
	if _, ok := ClientCredential(c).Server(); ok {
		t.Error("a client credential gives a server token")
	}
	// Nothing the client token holds is the server secret or a key
	// derived from it.
	enc := c.Encode()
	body, err := tokenEncoding.DecodeString(strings.TrimPrefix(enc, clientTokenPrefix))
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string][]byte{
		"server secret": tok.Secret[:], "Nomad encrypt key": mustBase64(t, tok.NomadEncryptKey()),
		"cluster signing seed": tok.ClusterKey().Seed(),
		"tag key":              tok.DeriveKey(clientTagLabel, 32),
	} {
		if strings.Contains(string(body), string(secret[:16])) {
			t.Errorf("the client token holds the %s", name)
		}
	}
}

func TestCheckClient(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tok, other := testToken(t, 5), testToken(t, 6)
	tests := []struct {
		name string
		c    func() ClientToken
		want error
	}{
		{"never expires", func() ClientToken { return tok.Client(time.Time{}) }, nil},
		{"expires later", func() ClientToken { return tok.Client(now.Add(time.Second)) }, nil},
		{"expired now", func() ClientToken { return tok.Client(now) }, ErrClientTokenExpired},
		{"expired", func() ClientToken { return tok.Client(now.Add(-time.Hour)) }, ErrClientTokenExpired},
		{"expiry extended by its holder", func() ClientToken {
			c := tok.Client(now.Add(-time.Hour))
			c.Expires = now.Add(time.Hour).Unix()
			return c
		}, ErrClientTokenForged},
		{"expiry removed by its holder", func() ClientToken {
			c := tok.Client(now.Add(-time.Hour))
			c.Expires = 0
			return c
		}, ErrClientTokenForged},
		{"another cluster's", func() ClientToken { return other.Client(time.Time{}) }, ErrClientTokenForged},
		{"another cluster's key", func() ClientToken {
			c := tok.Client(time.Time{})
			c.ClusterKey = other.Client(time.Time{}).ClusterKey
			return c
		}, ErrClientTokenForged},
		{"zero", func() ClientToken { return ClientToken{} }, ErrClientTokenForged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tok.CheckClient(tt.c(), now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CheckClient = %v, want %v", err, tt.want)
			}
		})
	}
}

// After token rotate -client, the newest generation admits, the one before
// it until its grace ends, and older ones are refused as rotated; an
// admission the cluster made stands.
func TestClientGenerations(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tok := testToken(t, 5)
	id, key := "11111111-1111-4111-8111-111111111111", ed25519.PublicKey(bytes.Repeat([]byte{7}, 32))
	rotated := ClientPolicy{Generation: 2, PreviousUntil: now.Add(time.Minute)}
	graceOver := ClientPolicy{Generation: 2, PreviousUntil: now}
	tests := []struct {
		name   string
		adm    []byte
		policy ClientPolicy
		want   error
	}{
		{"generation 0 before any rotation", tok.ClientOf(0, time.Time{}).Admission(), ClientPolicy{}, nil},
		{"a later generation before the cluster knows of it", tok.ClientOf(1, time.Time{}).Admission(), ClientPolicy{}, ErrNotAdmitted},
		{"the newest", tok.ClientOf(2, time.Time{}).Admission(), rotated, nil},
		{"the one before, within its grace", tok.ClientOf(1, time.Time{}).Admission(), rotated, nil},
		{"the one before, after its grace", tok.ClientOf(1, time.Time{}).Admission(), graceOver, ErrClientTokenRotated},
		{"an older one", tok.ClientOf(0, time.Time{}).Admission(), rotated, ErrClientTokenRotated},
		{"the newest, expired", tok.ClientOf(2, now.Add(-time.Second)).Admission(), rotated, ErrClientTokenExpired},
		{"an admission the cluster made", tok.Admit(id, key), graceOver, nil},
		{"another cluster's newest", testToken(t, 6).ClientOf(2, time.Time{}).Admission(), rotated, ErrNotAdmitted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tok.CheckAdmissionUnder(tt.adm, id, key, now, tt.policy)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CheckAdmissionUnder = %v, want %v", err, tt.want)
			}
		})
	}
	if tok.ClientOf(0, time.Time{}) != tok.Client(time.Time{}) {
		t.Error("generation 0 is not what token client makes")
	}
	if tok.ClientOf(1, time.Time{}).Tag == tok.ClientOf(2, time.Time{}).Tag {
		t.Error("two generations have one tag")
	}
}

func TestEndorsement(t *testing.T) {
	tok, other := testToken(t, 7), testToken(t, 8)
	client := tok.Client(time.Now().Add(time.Hour))
	id := [16]byte{1, 2, 3}
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub2, _, _ := ed25519.GenerateKey(nil)
	sig := tok.Endorse(id, pub)
	tests := []struct {
		name     string
		verifier ClientToken
		id       [16]byte
		key      ed25519.PublicKey
		sig      []byte
		want     bool
	}{
		{"valid", client, id, pub, sig, true},
		{"checked with the server token's client half", tok.Client(time.Time{}), id, pub, sig, true},
		{"another node ID", client, [16]byte{9}, pub, sig, false},
		{"another identity key", client, id, pub2, sig, false},
		{"another cluster", other.Client(time.Time{}), id, pub, sig, false},
		{"signed by another cluster", client, id, pub, other.Endorse(id, pub), false},
		{"truncated", client, id, pub, sig[:63], false},
		{"empty", client, id, pub, nil, false},
		{"short key", client, id, pub[:31], sig, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.verifier.VerifyEndorsement(tt.id, tt.key, tt.sig); got != tt.want {
				t.Errorf("VerifyEndorsement = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseCredential(t *testing.T) {
	tok := testToken(t, 9)
	c := tok.Client(time.Time{})
	server, err := ParseCredential(tok.Encode())
	if err != nil || !server.IsServer() || server.Kind() != "server token" {
		t.Fatalf("ParseCredential(server token) = %v, %v", server, err)
	}
	if got, _ := server.Server(); got != tok {
		t.Error("the server credential holds another token")
	}
	if server.Client != c {
		t.Error("the server credential's client half differs from Client()")
	}
	client, err := ParseCredential(c.Encode())
	if err != nil || client.IsServer() || client.Kind() != "client token" || client.Client != c {
		t.Fatalf("ParseCredential(client token) = %v, %v", client, err)
	}
	if _, err := ParseClientToken(tok.Encode()); !errors.Is(err, ErrTokenPrefix) {
		t.Errorf("ParseClientToken(server token) = %v, want ErrTokenPrefix", err)
	}
	for _, bad := range []string{"", "nbd2c_" + strings.Repeat("a", 10), c.Encode()[:178] + "b", c.Encode() + "a"} {
		if _, err := ParseCredential(bad); err == nil {
			t.Errorf("ParseCredential(%q) succeeded", bad)
		}
	}
}

// Client tokens and credentials print redacted through every path.
func TestClientRedaction(t *testing.T) {
	tok := testToken(t, 10)
	c := tok.Client(time.Time{})
	enc := c.Encode()
	if got, want := c.String(), enc[:14]+"…(redacted)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, v := range []any{c, ClientCredential(c), ServerCredential(tok), &c} {
		j, err := json.Marshal(struct{ V any }{v})
		if err != nil {
			t.Fatal(err)
		}
		out := fmt.Sprintf("%v %+v %#v %s %x %q %d", v, v, v, v, v, v, v) + string(j)
		for _, secret := range []string{enc[20:60], tok.Encode()[20:60], fmt.Sprintf("%x", c.Secret[:8]), fmt.Sprintf("%x", tok.Secret[:8])} {
			if strings.Contains(out, secret) {
				t.Fatalf("%T printed a secret: %s", v, out)
			}
		}
	}
}

func TestCheckAdmission(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tok, other := testToken(t, 11), testToken(t, 12)
	id := testIdentity(t, 4).Public().(ed25519.PublicKey)
	id2 := testIdentity(t, 5).Public().(ed25519.PublicKey)
	tests := []struct {
		name string
		adm  []byte
		node string
		key  ed25519.PublicKey
		want error
	}{
		{"client token", tok.Client(now.Add(time.Hour)).Admission(), "n1", id, nil},
		{"client token without expiry", tok.Client(time.Time{}).Admission(), "n1", id, nil},
		{"expired client token", tok.Client(now.Add(-time.Hour)).Admission(), "n1", id, ErrClientTokenExpired},
		{"another cluster's client token", other.Client(time.Time{}).Admission(), "n1", id, ErrNotAdmitted},
		{"expiry extended", func() []byte {
			a := tok.Client(now.Add(-time.Hour)).Admission()
			a[7]++
			return a
		}(), "n1", id, ErrNotAdmitted},
		{"earlier admission", tok.Admit("n1", id), "n1", id, nil},
		{"admission of another node", tok.Admit("n2", id), "n1", id, ErrNotAdmitted},
		{"admission of another key", tok.Admit("n1", id2), "n1", id, ErrNotAdmitted},
		{"another cluster's admission", other.Admit("n1", id), "n1", id, ErrNotAdmitted},
		{"none", nil, "n1", id, ErrNotAdmitted},
		{"garbage", make([]byte, 30), "n1", id, ErrNotAdmitted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tok.CheckAdmission(tt.adm, tt.node, tt.key, now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CheckAdmission = %v, want %v", err, tt.want)
			}
		})
	}
}
