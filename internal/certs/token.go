// Package certs holds the cluster's trust: the server and client tokens and
// the keys derived from them, the cluster CA and CSR signing.
package certs

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Layout of a server token (format version 2).
const (
	// tokenPrefix starts every server token. A new format gets a new prefix
	// (nbd3_, ...) so that old binaries reject it by name.
	tokenPrefix = "nbd2_"

	// tokenChecksumLabel is hashed in front of the payload so the checksum
	// is specific to this format.
	tokenChecksumLabel = "nomad-bootstrapd token v2"

	clusterIDLen = 16
	secretLen    = 32
	checksumLen  = 4
	payloadLen   = clusterIDLen + secretLen + checksumLen // 52 bytes

	// redactedChars is how many characters after the prefix String shows.
	// The first 25 characters of a body carry only cluster ID bits, so 8 of
	// them reveal nothing of a secret.
	redactedChars = 8
)

// tokenBodyLen is the number of base32 characters after the prefix (84).
var tokenBodyLen = tokenEncoding.EncodedLen(payloadLen)

// tokenLen is the length of a whole encoded server token, prefix included (89).
var tokenLen = len(tokenPrefix) + tokenBodyLen

// tokenEncoding is RFC 4648 base32 with a lowercase alphabet and no padding:
// it has no characters that shells, YAML or cloud-init treat specially, and
// no look-alike pairs once uppercase is folded.
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Labels for the keys derived from a token. Each names its use and version;
// a key for a new purpose needs a new label, and changing one changes every
// cluster's key. The gossip and CSR keys are derived from the client
// secret, which both kinds of token hold; the others from the server
// secret, which only the server token holds.
const (
	gossipKeyLabel    = "nomad-bootstrapd gossip key v2"
	csrKeyLabel       = "nomad-bootstrapd csr hmac v2"
	nomadEncryptLabel = "nomad-bootstrapd nomad encrypt v2"
	clientSecretLabel = "nomad-bootstrapd client secret v2"
	clusterKeyLabel   = "nomad-bootstrapd cluster signing key v2"
	clientTagLabel    = "nomad-bootstrapd client token tag v2"
)

// gossipLabelPrefix starts the memberlist label; the cluster ID follows.
const gossipLabelPrefix = "nomad-bootstrapd/"

// Sentinel errors returned (wrapped) by ParseToken, ParseClientToken and
// ParseCredential. The returned error's text is more specific than the
// sentinel's; test with errors.Is.
var (
	// ErrTokenEmpty means the token is empty or only whitespace.
	ErrTokenEmpty = errors.New("certs: join token is empty; create one with `nomad-bootstrapd token create`")
	// ErrTokenPrefix means the token does not start with a prefix this
	// binary reads: it is something else, a token of another format
	// version, or the other kind of token.
	ErrTokenPrefix = errors.New("certs: join token must start with \"nbd2_\" (server token) or \"nbd2c_\" (client token)")
	// ErrTokenEncoding means the token contains a character that cannot
	// appear at its position.
	ErrTokenEncoding = errors.New("certs: join token has an invalid character")
	// ErrTokenLength means the token is truncated or too long.
	ErrTokenLength = errors.New("certs: join token has the wrong length")
	// ErrTokenChecksum means the token is well formed but its checksum does
	// not match: a character was mistyped or changed.
	ErrTokenChecksum = errors.New("certs: join token is corrupted (checksum mismatch); copy it again")
)

// tokenError carries a specific message for one of the sentinel errors.
// Its message never contains the token or any part of it.
type tokenError struct {
	msg  string
	kind error
}

func (e *tokenError) Error() string { return e.msg }
func (e *tokenError) Unwrap() error { return e.kind }

// Token is a parsed server token: a cluster ID and a 256-bit server secret.
// Every key of the cluster is derived from it (see DeriveKey), and a client
// token is made from it (Client).
//
// The printable form (Encode) is
//
//	nbd2_<body>
//
// where body is the lowercase RFC 4648 base32 alphabet (a-z, 2-7), without
// padding, of the 52 bytes
//
//	ClusterID (16) || Secret (32) || checksum (4)
//
// and checksum is the first 4 bytes of
// SHA-256("nomad-bootstrapd token v2" || ClusterID || Secret). A token is
// always 89 characters: 5 of prefix and 84 of body. The last character is
// "a" or "q" because it carries a single bit. ParseToken folds uppercase to
// lowercase, since operators retype tokens; Encode always emits lowercase.
//
// A Token prints redacted: String, GoString, Format (every fmt verb) and
// MarshalJSON show only the prefix and the first 8 body characters, which
// encode cluster ID bits only, e.g. "nbd2_abcdefgh…(redacted)". Only Encode
// returns the secret. fmt cannot call these methods on a Token held in an
// unexported struct field; it prints such a field's bytes by reflection, so
// keep Tokens out of unexported fields of values that may be printed.
type Token struct {
	ClusterID [16]byte
	Secret    [32]byte
}

// NewToken makes a server token from r (crypto/rand.Reader in production).
// It reads 48 bytes: the cluster ID first, then the secret.
func NewToken(r io.Reader) (Token, error) {
	var buf [clusterIDLen + secretLen]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return Token{}, fmt.Errorf("certs: reading randomness for a join token: %w", err)
	}
	var t Token
	copy(t.ClusterID[:], buf[:clusterIDLen])
	copy(t.Secret[:], buf[clusterIDLen:])
	return t, nil
}

// tokenFormat is one printable token format: its prefix, its payload length
// (checksum included) and its checksum label.
type tokenFormat struct {
	prefix     string
	payloadLen int
	label      string
	kind       string // "server token", "client token"
}

var (
	serverFormat = tokenFormat{prefix: tokenPrefix, payloadLen: payloadLen, label: tokenChecksumLabel, kind: "server token"}
	clientFormat = tokenFormat{prefix: clientTokenPrefix, payloadLen: clientPayloadLen, label: clientChecksumLabel, kind: "client token"}
)

// encodedLen is the length of a whole encoded token of the format.
func (f tokenFormat) encodedLen() int { return len(f.prefix) + tokenEncoding.EncodedLen(f.payloadLen) }

// checksum returns the 4-byte checksum of a payload without its checksum.
func (f tokenFormat) checksum(body []byte) [checksumLen]byte {
	h := sha256.New()
	h.Write([]byte(f.label))
	h.Write(body)
	var sum [checksumLen]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// encode returns the printable form of a payload without its checksum.
func (f tokenFormat) encode(body []byte) string {
	sum := f.checksum(body)
	return f.prefix + tokenEncoding.EncodeToString(append(slices.Clip(body), sum[:]...))
}

// decode checks s, already trimmed and lowercased and starting with the
// format's prefix, and returns its payload without the checksum. Errors
// wrap the sentinels and never quote s.
func (f tokenFormat) decode(s string) ([]byte, error) {
	// Check characters before the length, so that a stray quote or space
	// is reported where it is; but past the expected end, report the length.
	total := f.encodedLen()
	n := len(f.prefix) // characters in s
	for _, r := range s[len(f.prefix):] {
		n++
		if n <= total && !isTokenChar(r) {
			return nil, &tokenError{
				msg:  fmt.Sprintf("%s at position %d; after %q a %s has only a-z and 2-7", ErrTokenEncoding.Error(), n, f.prefix, f.kind),
				kind: ErrTokenEncoding,
			}
		}
	}
	switch {
	case n < total:
		return nil, &tokenError{
			msg:  fmt.Sprintf("certs: join token is truncated: a %s has %d characters, this has %d; copy the whole token", f.kind, total, n),
			kind: ErrTokenLength,
		}
	case n > total:
		return nil, &tokenError{
			msg:  fmt.Sprintf("certs: join token is too long: a %s has %d characters, this has %d; copy only the token", f.kind, total, n),
			kind: ErrTokenLength,
		}
	}

	// s is now total ASCII characters of the alphabet.
	body := s[len(f.prefix):]
	payload := make([]byte, f.payloadLen)
	if m, err := tokenEncoding.Decode(payload, []byte(body)); err != nil || m != f.payloadLen {
		// Unreachable after the checks above; keep the decoder's error out
		// of the message since it may quote input.
		return nil, &tokenError{msg: ErrTokenEncoding.Error(), kind: ErrTokenEncoding}
	}
	// The last character carries fewer bits than five; the decoder ignores
	// the others, so reject a body that does not re-encode to itself.
	if re := tokenEncoding.EncodeToString(payload); re != body {
		i := 0
		for i < len(body) && body[i] == re[i] {
			i++
		}
		return nil, &tokenError{
			msg:  fmt.Sprintf("%s at position %d; copy the token again", ErrTokenEncoding.Error(), len(f.prefix)+i+1),
			kind: ErrTokenEncoding,
		}
	}
	data := payload[:f.payloadLen-checksumLen]
	sum := f.checksum(data)
	if subtle.ConstantTimeCompare(sum[:], payload[f.payloadLen-checksumLen:]) != 1 {
		return nil, ErrTokenChecksum
	}
	return data, nil
}

// normalize trims s and folds ASCII uppercase, and returns the format its
// prefix names, or an error wrapping ErrTokenEmpty or ErrTokenPrefix.
func normalize(s string) (string, tokenFormat, error) {
	s = asciiLower(strings.TrimSpace(s))
	switch {
	case s == "":
		return "", tokenFormat{}, ErrTokenEmpty
	case strings.HasPrefix(s, clientTokenPrefix):
		return s, clientFormat, nil
	case strings.HasPrefix(s, tokenPrefix):
		return s, serverFormat, nil
	case looksVersioned(s):
		return "", tokenFormat{}, &tokenError{
			msg:  ErrTokenPrefix.Error() + "; this is a join token of another nomad-bootstrapd version: create a token with this version",
			kind: ErrTokenPrefix,
		}
	}
	return "", tokenFormat{}, &tokenError{msg: ErrTokenPrefix.Error() + "; this is not a nomad-bootstrapd join token", kind: ErrTokenPrefix}
}

// ParseToken parses the printable form of a server token. Surrounding
// whitespace (such as the newline that ends a file) is ignored and ASCII
// uppercase is accepted. Errors name the problem and never contain the
// secret; they wrap one of ErrTokenEmpty, ErrTokenPrefix, ErrTokenEncoding,
// ErrTokenLength or ErrTokenChecksum. Positions in errors count characters
// from 1, prefix included. A client token is refused with ErrTokenPrefix
// and a message saying that the server token is needed.
func ParseToken(s string) (Token, error) {
	s, f, err := normalize(s)
	if err != nil {
		return Token{}, err
	}
	if f.prefix != tokenPrefix {
		return Token{}, &tokenError{
			msg:  "certs: this is a client token; this needs the cluster's server token (nbd2_…), printed by `nomad-bootstrapd token create`",
			kind: ErrTokenPrefix,
		}
	}
	data, err := f.decode(s)
	if err != nil {
		return Token{}, err
	}
	var t Token
	copy(t.ClusterID[:], data[:clusterIDLen])
	copy(t.Secret[:], data[clusterIDLen:])
	return t, nil
}

// isTokenChar reports whether r is in the (lowercase) token alphabet.
func isTokenChar(r rune) bool {
	return ('a' <= r && r <= 'z') || ('2' <= r && r <= '7')
}

// asciiLower lowercases ASCII letters only, leaving every other byte as it
// is, so that no non-ASCII character can fold into the alphabet.
func asciiLower(s string) string {
	hasUpper := false
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			hasUpper = true
			break
		}
	}
	if !hasUpper {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// looksVersioned reports whether s starts like a join token of another
// version: "nbd", one or more digits, an optional lowercase letter, "_".
func looksVersioned(s string) bool {
	rest, ok := strings.CutPrefix(s, "nbd")
	if !ok {
		return false
	}
	digits := 0
	for digits < len(rest) && '0' <= rest[digits] && rest[digits] <= '9' {
		digits++
	}
	if digits == 0 {
		return false
	}
	rest = rest[digits:]
	if rest != "" && 'a' <= rest[0] && rest[0] <= 'z' {
		rest = rest[1:]
	}
	return strings.HasPrefix(rest, "_")
}

// Encode returns the printable token, secret included. It is the only method
// that reveals the secret; never log its result.
func (t Token) Encode() string {
	return serverFormat.encode(append(t.ClusterID[:], t.Secret[:]...))
}

// String returns a redacted form safe for logs: the prefix and the first 8
// characters of the encoded token, which hold cluster ID bits only, e.g.
// "nbd2_abcdefgh…(redacted)". It matches the start of the real token, so an
// operator can tell which token a log line means.
func (t Token) String() string {
	// Encode the cluster ID alone: its first 8 characters equal the
	// token's, without putting the secret in memory for a log line.
	id := tokenEncoding.EncodeToString(t.ClusterID[:])
	return tokenPrefix + id[:redactedChars] + "…(redacted)"
}

// GoString returns the same redacted form as String, so that %#v does not
// print the secret.
func (t Token) GoString() string { return t.String() }

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, %q,
// %x, %d, ...) prints the redacted form rather than the fields' bytes.
func (t Token) Format(f fmt.State, verb rune) { formatRedacted(f, verb, t.String()) }

// MarshalJSON returns the redacted form as a JSON string, so that a Token
// that ends up in a JSON document (a status report, a debug dump) never
// carries the secret. It is deliberately not a round trip: store tokens with
// Encode, and there is no UnmarshalJSON and no encoding.TextMarshaler.
func (t Token) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.String())
}

// ClusterIDString returns the cluster ID as 32 lowercase hex characters (not
// secret).
func (t Token) ClusterIDString() string {
	return hex.EncodeToString(t.ClusterID[:])
}

// DeriveKey returns n bytes derived from the token with HKDF-SHA-256: the
// secret is the input key material, the cluster ID the salt and label the
// info. Distinct labels give independent keys; a label should name the use
// and a version, like "nomad-bootstrapd gossip key v2", and must never be
// reused for another purpose. It panics if n is not between 1 and 8160
// (255 × 32, the HKDF-SHA-256 limit), which is a programming error.
func (t Token) DeriveKey(label string, n int) []byte {
	if n < 1 || n > 255*sha256.Size {
		panic(fmt.Sprintf("certs: DeriveKey length %d out of range 1..%d", n, 255*sha256.Size))
	}
	key, err := hkdf.Key(sha256.New, t.Secret[:], t.ClusterID[:], label, n)
	if err != nil {
		panic("certs: DeriveKey: " + err.Error())
	}
	return key
}

// clientSecret returns the client secret: the secret a client token holds,
// from which the keys every node needs are derived.
func (t Token) clientSecret() [32]byte {
	return [32]byte(t.DeriveKey(clientSecretLabel, secretLen))
}

// GossipKey returns the 32-byte memberlist encryption key (AES-256). Client
// tokens of the cluster give the same key.
func (t Token) GossipKey() []byte { return tierKey(t.ClusterID, t.clientSecret(), gossipKeyLabel) }

// CSRKey returns the 32-byte HMAC key that authenticates certificate
// requests. Client tokens of the cluster give the same key.
func (t Token) CSRKey() []byte { return tierKey(t.ClusterID, t.clientSecret(), csrKeyLabel) }

// GossipLabel returns the memberlist label, "nomad-bootstrapd/" followed by
// ClusterIDString (49 bytes, below memberlist's 255). Memberlist drops
// packets and streams from peers with another label, so nodes of another
// cluster are refused at once.
func (t Token) GossipLabel() string { return gossipLabel(t.ClusterID) }

// NomadEncryptKey returns the Nomad server.encrypt key: standard base64 (with
// padding) of 32 bytes derived from the server secret, the form `nomad
// operator gossip keyring generate` prints. A client token cannot give it.
func (t Token) NomadEncryptKey() string {
	return base64.StdEncoding.EncodeToString(t.DeriveKey(nomadEncryptLabel, 32))
}

// ClusterKey returns the cluster's Ed25519 signing key, derived from the
// server secret. Its public half is in every client token, so every node
// can check what only a server-token holder can sign (Endorse).
func (t Token) ClusterKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(t.DeriveKey(clusterKeyLabel, ed25519.SeedSize))
}

// tierKey derives a key from the client secret: HKDF-SHA-256 with the
// client secret as input key material, the cluster ID as salt and label as
// info.
func tierKey(clusterID [16]byte, clientSecret [32]byte, label string) []byte {
	key, err := hkdf.Key(sha256.New, clientSecret[:], clusterID[:], label, 32)
	if err != nil {
		panic("certs: deriving a key: " + err.Error())
	}
	return key
}

// gossipLabel returns the memberlist label of the cluster.
func gossipLabel(clusterID [16]byte) string {
	return gossipLabelPrefix + hex.EncodeToString(clusterID[:])
}

// Keys are the keys a node derives from its token, once. NomadEncrypt is
// empty for a client token.
type Keys struct {
	Gossip       []byte // memberlist's encryption key; see GossipKey
	NomadEncrypt string // Nomad's server.encrypt; see NomadEncryptKey
	CSR          []byte // the certificate requests' HMAC key; see CSRKey
}

// Keys derives every key of Keys from the token.
func (t Token) Keys() Keys {
	return Keys{Gossip: t.GossipKey(), NomadEncrypt: t.NomadEncryptKey(), CSR: t.CSRKey()}
}

// Format prints Keys redacted with every verb, like Token.
func (k Keys) Format(f fmt.State, verb rune) { io.WriteString(f, "certs.Keys{(redacted)}") }

// MarshalJSON returns the redacted form, like Token's.
func (k Keys) MarshalJSON() ([]byte, error) { return json.Marshal("certs.Keys{(redacted)}") }

// Compile-time checks that Token prints redacted through every path.
var (
	_ fmt.Stringer   = Token{}
	_ fmt.GoStringer = Token{}
	_ fmt.Formatter  = Token{}
	_ json.Marshaler = Token{}
	_ fmt.Formatter  = Keys{}
	_ json.Marshaler = Keys{}
)
