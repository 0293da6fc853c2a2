package certs

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/golden"
)

// tokenShape is the documented shape of an encoded token: the prefix, 83
// base32 characters and a last character that carries one bit.
var tokenShape = regexp.MustCompile(`^nbd2_[a-z2-7]{83}[aq]$`)

// katToken is the fixed token of the known-answer test.
func katToken() Token {
	var t Token
	for i := range t.ClusterID {
		t.ClusterID[i] = byte(0xc0 + i)
	}
	for i := range t.Secret {
		t.Secret[i] = byte(0x10 + 7*i)
	}
	return t
}

// testToken returns a token made from a seeded generator, so failures are
// reproducible.
func testToken(t *testing.T, seed uint64) Token {
	t.Helper()
	var seedBytes [32]byte
	seedBytes[0] = byte(seed)
	seedBytes[1] = byte(seed >> 8)
	tok, err := NewToken(mathrand.NewChaCha8(seedBytes))
	if err != nil {
		t.Fatalf("NewToken: %v", err)
	}
	return tok
}

func TestTokenRoundTrip(t *testing.T) {
	tokens := []Token{{}, katToken()}
	for seed := range uint64(20) {
		tokens = append(tokens, testToken(t, seed))
	}
	for range 5 {
		tok, err := NewToken(rand.Reader)
		if err != nil {
			t.Fatalf("NewToken(rand.Reader): %v", err)
		}
		tokens = append(tokens, tok)
	}
	all := bytes.Repeat([]byte{0xff}, 48)
	allOnes, err := NewToken(bytes.NewReader(all))
	if err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, allOnes)

	for i, tok := range tokens {
		enc := tok.Encode()
		if !tokenShape.MatchString(enc) {
			t.Errorf("token %d: Encode() = %q does not match %s", i, enc, tokenShape)
		}
		if len(enc) != tokenLen || tokenLen != 89 {
			t.Errorf("token %d: len(Encode()) = %d, want 89", i, len(enc))
		}
		for _, in := range []string{
			enc,
			enc + "\n",
			"  " + enc + "\r\n",
			"\t" + enc + " \n\n",
			strings.ToUpper(enc),
			strings.ToUpper(enc[:40]) + enc[40:],
		} {
			got, err := ParseToken(in)
			if err != nil {
				t.Errorf("token %d: ParseToken(%q): %v", i, in, err)
				continue
			}
			if diff := cmp.Diff(tok, got); diff != "" {
				t.Errorf("token %d: ParseToken(%q) mismatch (-want +got):\n%s", i, in, diff)
			}
		}
	}
}

func TestNewToken(t *testing.T) {
	in := make([]byte, 60)
	for i := range in {
		in[i] = byte(i)
	}
	r := bytes.NewReader(in)
	tok, err := NewToken(r)
	if err != nil {
		t.Fatal(err)
	}
	var want Token
	copy(want.ClusterID[:], in[:16])
	copy(want.Secret[:], in[16:48])
	if diff := cmp.Diff(want, tok); diff != "" {
		t.Errorf("NewToken mismatch (-want +got):\n%s", diff)
	}
	if r.Len() != 12 {
		t.Errorf("NewToken read %d bytes, want 48", 60-r.Len())
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestNewTokenReaderError(t *testing.T) {
	boom := errors.New("entropy source broken")
	tests := []struct {
		name string
		r    io.Reader
		want error
	}{
		{"failing", failingReader{boom}, boom},
		{"empty", bytes.NewReader(nil), io.EOF},
		{"short", bytes.NewReader(make([]byte, 47)), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := NewToken(tt.r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewToken error = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "certs: ") {
				t.Errorf("error %q lacks the certs: prefix", err)
			}
			if diff := cmp.Diff(Token{}, tok); diff != "" {
				t.Errorf("NewToken returned a non-zero token on error:\n%s", diff)
			}
		})
	}
}

// katValues renders the known answers of tok in the golden file's format.
func katValues(tok Token) string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-26s %s\n", k+":", v) }
	line("cluster_id", hex.EncodeToString(tok.ClusterID[:]))
	line("secret", hex.EncodeToString(tok.Secret[:]))
	line("token", tok.Encode())
	line("string", tok.String())
	line("cluster_id_string", tok.ClusterIDString())
	line("gossip_label", tok.GossipLabel())
	line("gossip_key", hex.EncodeToString(tok.GossipKey()))
	line("nomad_encrypt_key", tok.NomadEncryptKey())
	line("csr_key", hex.EncodeToString(tok.CSRKey()))
	line(`derive_key("kat", 64)`, hex.EncodeToString(tok.DeriveKey("kat", 64)))
	return b.String()
}

func TestTokenKnownAnswers(t *testing.T) {
	tok := katToken()
	got := katValues(tok)
	// Every derivation is fixed: changed known answers would break every
	// cluster.
	golden.Check(t, filepath.Join("testdata", "token_kat.golden"), []byte(got))

	// The golden token parses back to the fixed token.
	parsed, err := ParseToken(tok.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tok, parsed); diff != "" {
		t.Errorf("golden token does not round trip (-want +got):\n%s", diff)
	}
}

// hkdf32 is HKDF-SHA-256 (RFC 5869) for a 32-byte output, written out from
// the RFC so the test does not trust the implementation it checks.
func hkdf32(secret, salt []byte, info string) []byte {
	extract := hmac.New(sha256.New, salt)
	extract.Write(secret)
	prk := extract.Sum(nil)
	expand := hmac.New(sha256.New, prk)
	expand.Write([]byte(info))
	expand.Write([]byte{1})
	return expand.Sum(nil)
}

func TestDerivationFollowsSpec(t *testing.T) {
	for _, tok := range []Token{katToken(), testToken(t, 1), testToken(t, 2)} {
		secret, salt := tok.Secret[:], tok.ClusterID[:]
		cs := tok.Client(time.Time{}).Secret
		client := cs[:]
		tests := []struct {
			name string
			got  []byte
			want []byte
		}{
			{"GossipKey", tok.GossipKey(), hkdf32(client, salt, "nomad-bootstrapd gossip key v2")},
			{"CSRKey", tok.CSRKey(), hkdf32(client, salt, "nomad-bootstrapd csr hmac v2")},
			{"client secret", client, hkdf32(secret, salt, "nomad-bootstrapd client secret v2")},
			{"NomadEncryptKey", mustBase64(t, tok.NomadEncryptKey()), hkdf32(secret, salt, "nomad-bootstrapd nomad encrypt v2")},
			{"ClusterKey seed", tok.ClusterKey().Seed(), hkdf32(secret, salt, "nomad-bootstrapd cluster signing key v2")},
			{"DeriveKey", tok.DeriveKey("some later key v1", 32), hkdf32(secret, salt, "some later key v1")},
		}
		for _, tt := range tests {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("%s of %s differs from RFC 5869 HKDF-SHA-256 (-want +got):\n%s", tt.name, tok, diff)
			}
		}
		// The checksum follows the documented construction.
		sum := sha256.Sum256(append(append([]byte("nomad-bootstrapd token v2"), salt...), secret...))
		raw, err := tokenEncoding.DecodeString(strings.TrimPrefix(tok.Encode(), "nbd2_"))
		if err != nil {
			t.Fatal(err)
		}
		want := append(append(append([]byte{}, salt...), secret...), sum[:4]...)
		if diff := cmp.Diff(want, raw); diff != "" {
			t.Errorf("token payload differs from ClusterID||Secret||checksum (-want +got):\n%s", diff)
		}
	}
}

func mustBase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

func TestNomadEncryptKey(t *testing.T) {
	for _, tok := range []Token{{}, katToken(), testToken(t, 3)} {
		s := tok.NomadEncryptKey()
		if len(s) != 44 || !strings.HasSuffix(s, "=") {
			t.Errorf("NomadEncryptKey() = %q, want 44 characters of padded standard base64", s)
		}
		if n := len(mustBase64(t, s)); n != 32 {
			t.Errorf("NomadEncryptKey() decodes to %d bytes, want 32", n)
		}
	}
}

func TestDerivedKeysDistinct(t *testing.T) {
	a := testToken(t, 10)
	sameCluster := testToken(t, 11)
	sameCluster.ClusterID = a.ClusterID
	otherCluster := testToken(t, 12)
	otherCluster.Secret = a.Secret // only the cluster ID differs

	keys := func(tok Token) map[string][]byte {
		return map[string][]byte{
			"gossip": tok.GossipKey(),
			"nomad":  mustBase64(t, tok.NomadEncryptKey()),
			"csr":    tok.CSRKey(),
			"other":  tok.DeriveKey("nomad-bootstrapd ca escrow v1", 32),
		}
	}
	seen := map[string]string{}
	for name, tok := range map[string]Token{"a": a, "sameCluster": sameCluster, "otherCluster": otherCluster} {
		for kind, k := range keys(tok) {
			if len(k) != 32 {
				t.Errorf("%s %s key has %d bytes, want 32", name, kind, len(k))
			}
			id := name + "/" + kind
			if prev, ok := seen[string(k)]; ok {
				t.Errorf("%s key equals %s key", id, prev)
			}
			seen[string(k)] = id
		}
	}

	if a.GossipLabel() != sameCluster.GossipLabel() {
		t.Errorf("same cluster, different labels: %q, %q", a.GossipLabel(), sameCluster.GossipLabel())
	}
	if a.GossipLabel() == otherCluster.GossipLabel() {
		t.Errorf("different clusters share the label %q", a.GossipLabel())
	}
}

func TestGossipLabel(t *testing.T) {
	shape := regexp.MustCompile(`^nomad-bootstrapd/[0-9a-f]{32}$`)
	for _, tok := range []Token{{}, katToken(), testToken(t, 4)} {
		l := tok.GossipLabel()
		if !shape.MatchString(l) || len(l) > 255 {
			t.Errorf("GossipLabel() = %q, want %s and at most 255 bytes", l, shape)
		}
		if want := "nomad-bootstrapd/" + tok.ClusterIDString(); l != want {
			t.Errorf("GossipLabel() = %q, want %q", l, want)
		}
		if got, want := tok.ClusterIDString(), hex.EncodeToString(tok.ClusterID[:]); got != want {
			t.Errorf("ClusterIDString() = %q, want %q", got, want)
		}
	}
}

func TestDeriveKey(t *testing.T) {
	tok := katToken()
	for _, n := range []int{1, 16, 32, 33, 64, 255 * 32} {
		if got := len(tok.DeriveKey("len", n)); got != n {
			t.Errorf("len(DeriveKey(_, %d)) = %d", n, got)
		}
	}
	// A shorter key is a prefix of a longer one under the same label
	// (HKDF-Expand), and another label gives another key.
	if long, short := tok.DeriveKey("x", 64), tok.DeriveKey("x", 32); !bytes.Equal(long[:32], short) {
		t.Error("DeriveKey(x, 32) is not a prefix of DeriveKey(x, 64)")
	}
	if bytes.Equal(tok.DeriveKey("x", 32), tok.DeriveKey("y", 32)) {
		t.Error("DeriveKey gives the same key under two labels")
	}
	for _, n := range []int{-1, 0, 255*32 + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("DeriveKey(_, %d) did not panic", n)
				}
			}()
			tok.DeriveKey("bad", n)
		})
	}
}

// assertNoLeak fails if text contains in (when long enough to be
// meaningful), any 8-character run of the encoded secret of tok, or any 8
// hex characters of the secret.
func assertNoLeak(t *testing.T, what, text, in string, tok Token) {
	t.Helper()
	lower := strings.ToLower(text)
	if in = strings.ToLower(strings.TrimSpace(in)); len(in) >= 8 && strings.Contains(lower, in) {
		t.Errorf("%s contains the input token: %q", what, text)
	}
	for _, secretText := range []string{encodedSecret(tok), hex.EncodeToString(tok.Secret[:])} {
		for i := 0; i+8 <= len(secretText); i++ {
			if w := secretText[i : i+8]; strings.Contains(lower, w) {
				t.Errorf("%s contains %q from the secret: %q", what, w, text)
				return
			}
		}
	}
}

// encodedSecret returns the characters of tok.Encode() that carry any bit of
// the secret: body characters 25 to 76 (bits 125 to 384).
func encodedSecret(tok Token) string {
	body := strings.TrimPrefix(tok.Encode(), tokenPrefix)
	return body[clusterIDLen*8/5 : (clusterIDLen+secretLen)*8/5+1]
}

// replaceAt returns s with the character at 1-based position pos replaced.
func replaceAt(s string, pos int, r string) string {
	return s[:pos-1] + r + s[pos:]
}

// otherChar returns an alphabet character different from c whose 5-bit value
// differs from c's in one bit, as a one-character typo would.
func otherChar(c byte) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1 : i^1+1]
}

func TestParseTokenErrors(t *testing.T) {
	tok := testToken(t, 42)
	enc := tok.Encode()
	body := strings.TrimPrefix(enc, "nbd2_")
	last := enc[len(enc)-1]
	nonCanonical := string(last + 1) // 'b' or 'r': same bit, stray low bits

	tests := []struct {
		name string
		in   string
		want error
		msg  string
	}{
		{"empty", "", ErrTokenEmpty,
			"certs: join token is empty; create one with `nomad-bootstrapd token create`"},
		{"whitespace only", " \t\r\n ", ErrTokenEmpty,
			"certs: join token is empty; create one with `nomad-bootstrapd token create`"},
		{"no prefix", body, ErrTokenPrefix,
			`certs: join token must start with "nbd2_" (server token) or "nbd2c_" (client token); this is not a nomad-bootstrapd join token`},
		{"wrong prefix", "tok1_" + body, ErrTokenPrefix,
			`certs: join token must start with "nbd2_" (server token) or "nbd2c_" (client token); this is not a nomad-bootstrapd join token`},
		{"prefix without underscore", "nbd2" + body, ErrTokenPrefix,
			`certs: join token must start with "nbd2_" (server token) or "nbd2c_" (client token); this is not a nomad-bootstrapd join token`},
		{"quoted", `"` + enc + `"`, ErrTokenPrefix,
			`certs: join token must start with "nbd2_" (server token) or "nbd2c_" (client token); this is not a nomad-bootstrapd join token`},
		{"newer version", "nbd3_" + body, ErrTokenPrefix,
			`certs: join token must start with "nbd2_" (server token) or "nbd2c_" (client token); this is a join token of another nomad-bootstrapd version: create a token with this version`},
		{"older version", "NBD1_" + body, ErrTokenPrefix,
			`certs: join token must start with "nbd2_" (server token) or "nbd2c_" (client token); this is a join token of another nomad-bootstrapd version: create a token with this version`},
		{"much newer version", "nbd12_" + body, ErrTokenPrefix,
			`certs: join token must start with "nbd2_" (server token) or "nbd2c_" (client token); this is a join token of another nomad-bootstrapd version: create a token with this version`},
		{"bad char", replaceAt(enc, 30, "!"), ErrTokenEncoding,
			`certs: join token has an invalid character at position 30; after "nbd2_" a server token has only a-z and 2-7`},
		{"digit 1", replaceAt(enc, 6, "1"), ErrTokenEncoding,
			`certs: join token has an invalid character at position 6; after "nbd2_" a server token has only a-z and 2-7`},
		{"digit 8", replaceAt(enc, 89, "8"), ErrTokenEncoding,
			`certs: join token has an invalid character at position 89; after "nbd2_" a server token has only a-z and 2-7`},
		{"base32 padding", replaceAt(enc, 60, "="), ErrTokenEncoding,
			`certs: join token has an invalid character at position 60; after "nbd2_" a server token has only a-z and 2-7`},
		{"inner space", enc[:50] + " " + enc[50:], ErrTokenEncoding,
			`certs: join token has an invalid character at position 51; after "nbd2_" a server token has only a-z and 2-7`},
		{"inner newline", enc[:70] + "\n" + enc[70:], ErrTokenEncoding,
			`certs: join token has an invalid character at position 71; after "nbd2_" a server token has only a-z and 2-7`},
		{"non-ASCII", replaceAt(enc, 40, "é"), ErrTokenEncoding,
			`certs: join token has an invalid character at position 40; after "nbd2_" a server token has only a-z and 2-7`},
		{"Kelvin sign", replaceAt(enc, 40, "\u212a"), ErrTokenEncoding,
			`certs: join token has an invalid character at position 40; after "nbd2_" a server token has only a-z and 2-7`},
		{"extra non-ASCII", enc + "é", ErrTokenLength,
			`certs: join token is too long: a server token has 89 characters, this has 90; copy only the token`},
		{"invalid UTF-8", replaceAt(enc, 20, "\xff"), ErrTokenEncoding,
			`certs: join token has an invalid character at position 20; after "nbd2_" a server token has only a-z and 2-7`},
		{"non-canonical last char", enc[:88] + nonCanonical, ErrTokenEncoding,
			`certs: join token has an invalid character at position 89; copy the token again`},
		{"prefix only", "nbd2_", ErrTokenLength,
			`certs: join token is truncated: a server token has 89 characters, this has 5; copy the whole token`},
		{"truncated by one", enc[:88], ErrTokenLength,
			`certs: join token is truncated: a server token has 89 characters, this has 88; copy the whole token`},
		{"truncated by half", enc[:44], ErrTokenLength,
			`certs: join token is truncated: a server token has 89 characters, this has 44; copy the whole token`},
		{"one extra char", enc + "a", ErrTokenLength,
			`certs: join token is too long: a server token has 89 characters, this has 90; copy only the token`},
		{"padded", enc + "===", ErrTokenLength,
			`certs: join token is too long: a server token has 89 characters, this has 92; copy only the token`},
		{"two tokens", enc + " " + testToken(t, 43).Encode(), ErrTokenLength,
			`certs: join token is too long: a server token has 89 characters, this has 179; copy only the token`},
		{"doubled", enc + enc, ErrTokenLength,
			`certs: join token is too long: a server token has 89 characters, this has 178; copy only the token`},
		{"client token", tok.Client(time.Time{}).Encode(), ErrTokenPrefix,
			"certs: this is a client token; this needs the cluster's server token (nbd2_…), printed by `nomad-bootstrapd token create`"},
		{"older client kind", "nbd1c_" + body, ErrTokenPrefix,
			`certs: join token must start with "nbd2_" (server token) or "nbd2c_" (client token); this is a join token of another nomad-bootstrapd version: create a token with this version`},
		{"flipped char in secret", replaceAt(enc, 50, otherChar(enc[49])), ErrTokenChecksum,
			"certs: join token is corrupted (checksum mismatch); copy it again"},
		{"flipped char in cluster id", replaceAt(enc, 6, otherChar(enc[5])), ErrTokenChecksum,
			"certs: join token is corrupted (checksum mismatch); copy it again"},
		{"flipped char in checksum", replaceAt(enc, 85, otherChar(enc[84])), ErrTokenChecksum,
			"certs: join token is corrupted (checksum mismatch); copy it again"},
		{"flipped last bit", enc[:88] + map[byte]string{'a': "q", 'q': "a"}[last], ErrTokenChecksum,
			"certs: join token is corrupted (checksum mismatch); copy it again"},
		{"flipped char with whitespace", "\n" + strings.ToUpper(replaceAt(enc, 77, otherChar(enc[76]))) + "\n", ErrTokenChecksum,
			"certs: join token is corrupted (checksum mismatch); copy it again"},
	}
	sentinels := []error{ErrTokenEmpty, ErrTokenPrefix, ErrTokenEncoding, ErrTokenLength, ErrTokenChecksum}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken(tt.in)
			if err == nil {
				t.Fatalf("ParseToken succeeded with %v, want %v", got, tt.want)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) != (s == tt.want) {
					t.Errorf("errors.Is(err, %q) = %v, want %v", s, !(s == tt.want), s == tt.want)
				}
			}
			if err.Error() != tt.msg {
				t.Errorf("error message:\n got %s\nwant %s", err, tt.msg)
			}
			if diff := cmp.Diff(Token{}, got); diff != "" {
				t.Errorf("ParseToken returned a non-zero token on error:\n%s", diff)
			}
			assertNoLeak(t, "error", err.Error(), tt.in, tok)
			assertNoLeak(t, "error %+v", fmt.Sprintf("%+v", err), tt.in, tok)
		})
	}
}

// TestParseTokenSingleBitFlips checks that every one-character typo that
// keeps the alphabet is caught, and never leaks the secret.
func TestParseTokenSingleBitFlips(t *testing.T) {
	tok := testToken(t, 7)
	enc := tok.Encode()
	for pos := len(tokenPrefix) + 1; pos <= len(enc); pos++ {
		for bit := range 5 {
			const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
			i := strings.IndexByte(alphabet, enc[pos-1]) ^ (1 << bit)
			in := replaceAt(enc, pos, alphabet[i:i+1])
			_, err := ParseToken(in)
			switch {
			case err == nil:
				t.Errorf("position %d bit %d: typo accepted", pos, bit)
			case !errors.Is(err, ErrTokenChecksum) && !errors.Is(err, ErrTokenEncoding):
				t.Errorf("position %d bit %d: unexpected error %v", pos, bit, err)
			default:
				assertNoLeak(t, "error", err.Error(), in, tok)
			}
		}
	}
	if testing.Short() {
		return
	}
	// The checksum's 32 bits catch random corruption of the secret.
	for seed := range uint64(200) {
		r := mathrand.New(mathrand.NewPCG(seed, 1))
		b := []byte(enc)
		// Change 2 to 4 characters of the body.
		for range 2 + r.IntN(3) {
			p := len(tokenPrefix) + r.IntN(len(b)-len(tokenPrefix)-1)
			b[p] = "abcdefghijklmnopqrstuvwxyz234567"[r.IntN(32)]
		}
		if string(b) == enc {
			continue
		}
		if _, err := ParseToken(string(b)); !errors.Is(err, ErrTokenChecksum) {
			t.Errorf("seed %d: corrupted token gave %v, want checksum mismatch", seed, err)
		}
	}
}

func TestTokenRedaction(t *testing.T) {
	tok := testToken(t, 99)
	enc := tok.Encode()
	want := enc[:13] + "…(redacted)"
	if got := tok.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := tok.GoString(); got != want {
		t.Errorf("GoString() = %q, want %q", got, want)
	}
	if got := (Token{}).String(); got != "nbd2_aaaaaaaa…(redacted)" {
		t.Errorf("zero Token String() = %q", got)
	}

	type holder struct {
		Name  string
		Token Token
		Ptr   *Token
		List  []Token
		Map   map[string]Token
	}
	h := holder{Name: "n", Token: tok, Ptr: &tok, List: []Token{tok}, Map: map[string]Token{"k": tok}}
	var outputs = map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%b", "%o", "%10.3v", "%-v", "% x", "%U", "%t"} {
		outputs["Token "+verb] = fmt.Sprintf(verb, tok)
		outputs["*Token "+verb] = fmt.Sprintf(verb, &tok)
		outputs["holder "+verb] = fmt.Sprintf(verb, h)
		outputs["*holder "+verb] = fmt.Sprintf(verb, &h)
	}
	outputs["Sprint"] = fmt.Sprint(tok, &tok, h)
	outputs["Sprintln"] = fmt.Sprintln(tok, &tok, h)
	outputs["error %v"] = fmt.Errorf("joining with %v", tok).Error()

	j, err := json.Marshal(h)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	outputs["json"] = string(j)
	var decoded struct{ Token string }
	if err := json.Unmarshal(j, &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded.Token != want {
		t.Errorf("JSON token = %q, want the redacted %q", decoded.Token, want)
	}

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("joined", "token", tok, "holder", h)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("joined", "token", tok, "holder", h)
	outputs["slog text"] = text.String()
	outputs["slog json"] = js.String()

	for name, out := range outputs {
		assertNoLeak(t, name, out, enc, tok)
		if !strings.Contains(out, "redacted") {
			t.Errorf("%s = %q, want the redacted form", name, out)
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		if got := fmt.Sprintf(verb, tok); got != want {
			t.Errorf("Sprintf(%q, tok) = %q, want %q", verb, got, want)
		}
	}
	if got := fmt.Sprintf("%q", tok); got != fmt.Sprintf("%q", want) {
		t.Errorf("Sprintf(%%q, tok) = %s", got)
	}
}

// TestRedactedPrefixHoldsNoSecretBits checks the claim behind String: the
// first 8 body characters depend on the cluster ID alone.
func TestRedactedPrefixHoldsNoSecretBits(t *testing.T) {
	if n := redactedChars * 5; n > clusterIDLen*8 {
		t.Fatalf("%d redacted characters carry %d bits, more than the cluster ID's %d", redactedChars, n, clusterIDLen*8)
	}
	a := testToken(t, 5)
	b := a
	for i := range b.Secret {
		b.Secret[i] = ^a.Secret[i]
	}
	// Encoded cluster-ID-only characters: floor(128/5) = 25.
	pure := clusterIDLen * 8 / 5
	if a.Encode()[:5+pure] != b.Encode()[:5+pure] {
		t.Error("token characters before the secret depend on the secret")
	}
	if pure < redactedChars {
		t.Errorf("only %d characters are free of secret bits, String shows %d", pure, redactedChars)
	}
}

// Keys are the token's keys, derived once, and print redacted.
func TestKeys(t *testing.T) {
	tok := testToken(t, 13)
	k := tok.Keys()
	if !bytes.Equal(k.Gossip, tok.GossipKey()) || k.NomadEncrypt != tok.NomadEncryptKey() || !bytes.Equal(k.CSR, tok.CSRKey()) {
		t.Fatal("Keys differ from the keys derived one by one")
	}
	j, err := json.Marshal(struct{ K Keys }{k})
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s %x %q", k, k, k, k, k, k), string(j)} {
		for _, secret := range []string{string(k.Gossip), fmt.Sprintf("%x", k.Gossip), fmt.Sprintf("%v", []byte(k.CSR)), k.NomadEncrypt, fmt.Sprintf("%x", k.CSR)} {
			if strings.Contains(out, secret) {
				t.Fatalf("Keys printed a key: %s", out)
			}
		}
	}
}
