// Package certs holds the cluster's trust: the join token and the keys derived
// from it, the cluster CA and CSR signing.
package certs

import (
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
	"strings"
)

// Layout of a version 1 join token.
const (
	// tokenPrefix starts every version 1 token. A new format gets a new
	// prefix (nbd2_, ...) so that old binaries reject it by name.
	tokenPrefix = "nbd1_"

	// tokenChecksumLabel is hashed in front of the payload so the checksum
	// is specific to this format.
	tokenChecksumLabel = "nomad-bootstrapd token v1"

	clusterIDLen = 16
	secretLen    = 32
	checksumLen  = 4
	payloadLen   = clusterIDLen + secretLen + checksumLen // 52 bytes

	// redactedChars is how many characters after the prefix String shows.
	// The first 25 characters of the body carry only cluster ID bits, so
	// 8 of them reveal nothing of the secret.
	redactedChars = 8
)

// tokenBodyLen is the number of base32 characters after the prefix (84).
var tokenBodyLen = tokenEncoding.EncodedLen(payloadLen)

// tokenLen is the length of a whole encoded token, prefix included (89).
var tokenLen = len(tokenPrefix) + tokenBodyLen

// tokenEncoding is RFC 4648 base32 with a lowercase alphabet and no padding:
// it has no characters that shells, YAML or cloud-init treat specially, and
// no look-alike pairs once uppercase is folded.
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Labels for the keys derived from a token. Each names its use and version;
// a key for a new purpose needs a new label, and changing one changes every
// cluster's key.
const (
	gossipKeyLabel    = "nomad-bootstrapd gossip key v1"
	nomadEncryptLabel = "nomad-bootstrapd nomad encrypt v1"
	csrKeyLabel       = "nomad-bootstrapd csr hmac v1"
)

// gossipLabelPrefix starts the memberlist label; the cluster ID follows.
const gossipLabelPrefix = "nomad-bootstrapd/"

// Sentinel errors returned (wrapped) by ParseToken. The returned error's
// text is more specific than the sentinel's; test with errors.Is.
var (
	// ErrTokenEmpty means the token is empty or only whitespace.
	ErrTokenEmpty = errors.New("certs: join token is empty; create one with `nomad-bootstrapd token create`")
	// ErrTokenPrefix means the token does not start with nbd1_: it is
	// something else, or a token of another format version.
	ErrTokenPrefix = errors.New("certs: join token must start with \"nbd1_\"")
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

// Token is a parsed join token: a cluster ID and a 256-bit secret. All the
// cluster's shared keys are derived from it (see DeriveKey).
//
// The printable form (Encode) is
//
//	nbd1_<body>
//
// where body is the lowercase RFC 4648 base32 alphabet (a-z, 2-7), without
// padding, of the 52 bytes
//
//	ClusterID (16) || Secret (32) || checksum (4)
//
// and checksum is the first 4 bytes of
// SHA-256("nomad-bootstrapd token v1" || ClusterID || Secret). A token is
// always 89 characters: 5 of prefix and 84 of body. The last character is
// "a" or "q" because it carries a single bit. ParseToken folds uppercase to
// lowercase, since operators retype tokens; Encode always emits lowercase.
//
// A Token prints redacted: String, GoString, Format (every fmt verb) and
// MarshalJSON show only the prefix and the first 8 body characters, which
// encode cluster ID bits only, e.g. "nbd1_abcdefgh…(redacted)". Only Encode
// returns the secret. fmt cannot call these methods on a Token held in an
// unexported struct field; it prints such a field's bytes by reflection, so
// keep Tokens out of unexported fields of values that may be printed.
type Token struct {
	ClusterID [16]byte
	Secret    [32]byte
}

// NewToken makes a token from r (crypto/rand.Reader in production). It reads
// 48 bytes: the cluster ID first, then the secret.
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

// ParseToken parses the printable form. Surrounding whitespace (such as the
// newline that ends a file) is ignored and ASCII uppercase is accepted.
// Errors name the problem and never contain the secret; they wrap one of
// ErrTokenEmpty, ErrTokenPrefix, ErrTokenEncoding, ErrTokenLength or
// ErrTokenChecksum. Positions in errors count characters from 1, prefix
// included.
func ParseToken(s string) (Token, error) {
	s = asciiLower(strings.TrimSpace(s))
	if s == "" {
		return Token{}, ErrTokenEmpty
	}
	if !strings.HasPrefix(s, tokenPrefix) {
		msg := ErrTokenPrefix.Error() + "; this is not a nomad-bootstrapd v1 join token"
		if looksVersioned(s) {
			msg = ErrTokenPrefix.Error() + "; this is a join token of another nomad-bootstrapd version, not a v1 join token"
		}
		return Token{}, &tokenError{msg: msg, kind: ErrTokenPrefix}
	}

	// Check characters before the length, so that a stray quote or space
	// is reported where it is; but past the expected end, report the length.
	pos := len(tokenPrefix)
	n := pos // characters in s
	for _, r := range s[len(tokenPrefix):] {
		n++
		if n <= tokenLen && !isTokenChar(r) {
			return Token{}, &tokenError{
				msg:  fmt.Sprintf("%s at position %d; after \"nbd1_\" a token has only a-z and 2-7", ErrTokenEncoding.Error(), n),
				kind: ErrTokenEncoding,
			}
		}
	}
	switch {
	case n < tokenLen:
		return Token{}, &tokenError{
			msg:  fmt.Sprintf("certs: join token is truncated: expected %d characters, got %d; copy the whole token", tokenLen, n),
			kind: ErrTokenLength,
		}
	case n > tokenLen:
		return Token{}, &tokenError{
			msg:  fmt.Sprintf("certs: join token is too long: expected %d characters, got %d; copy only the token", tokenLen, n),
			kind: ErrTokenLength,
		}
	}

	// s is now tokenLen ASCII characters of the alphabet.
	body := s[len(tokenPrefix):]
	var payload [payloadLen]byte
	if m, err := tokenEncoding.Decode(payload[:], []byte(body)); err != nil || m != payloadLen {
		// Unreachable after the checks above; keep the decoder's error out
		// of the message since it may quote input.
		return Token{}, &tokenError{msg: ErrTokenEncoding.Error(), kind: ErrTokenEncoding}
	}
	// The last character carries one bit; the decoder ignores the other
	// four, so reject a body that does not re-encode to itself.
	if re := tokenEncoding.EncodeToString(payload[:]); re != body {
		i := 0
		for i < len(body) && body[i] == re[i] {
			i++
		}
		return Token{}, &tokenError{
			msg:  fmt.Sprintf("%s at position %d; copy the token again", ErrTokenEncoding.Error(), len(tokenPrefix)+i+1),
			kind: ErrTokenEncoding,
		}
	}

	var t Token
	copy(t.ClusterID[:], payload[:clusterIDLen])
	copy(t.Secret[:], payload[clusterIDLen:clusterIDLen+secretLen])
	sum := t.checksum()
	if subtle.ConstantTimeCompare(sum[:], payload[clusterIDLen+secretLen:]) != 1 {
		return Token{}, ErrTokenChecksum
	}
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
// version: "nbd", one or more digits, "_".
func looksVersioned(s string) bool {
	rest, ok := strings.CutPrefix(s, "nbd")
	if !ok {
		return false
	}
	digits := 0
	for digits < len(rest) && '0' <= rest[digits] && rest[digits] <= '9' {
		digits++
	}
	return digits > 0 && digits < len(rest) && rest[digits] == '_'
}

// checksum returns the token's 4-byte checksum.
func (t Token) checksum() [checksumLen]byte {
	h := sha256.New()
	h.Write([]byte(tokenChecksumLabel))
	h.Write(t.ClusterID[:])
	h.Write(t.Secret[:])
	var sum [checksumLen]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// Encode returns the printable token, secret included. It is the only method
// that reveals the secret; never log its result.
func (t Token) Encode() string {
	var payload [payloadLen]byte
	copy(payload[:], t.ClusterID[:])
	copy(payload[clusterIDLen:], t.Secret[:])
	sum := t.checksum()
	copy(payload[clusterIDLen+secretLen:], sum[:])
	return tokenPrefix + tokenEncoding.EncodeToString(payload[:])
}

// String returns a redacted form safe for logs: the prefix and the first 8
// characters of the encoded token, which hold cluster ID bits only, e.g.
// "nbd1_abcdefgh…(redacted)". It matches the start of the real token, so an
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
func (t Token) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", t.String())
	default:
		io.WriteString(f, t.String())
	}
}

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
// and a version, like "nomad-bootstrapd gossip key v1", and must never be
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

// GossipKey returns the 32-byte memberlist encryption key (AES-256).
func (t Token) GossipKey() []byte {
	return t.DeriveKey(gossipKeyLabel, 32)
}

// GossipLabel returns the memberlist label, "nomad-bootstrapd/" followed by
// ClusterIDString (49 bytes, below memberlist's 255). Memberlist drops
// packets and streams from peers with another label, so nodes of another
// cluster are refused at once.
func (t Token) GossipLabel() string {
	return gossipLabelPrefix + t.ClusterIDString()
}

// NomadEncryptKey returns the Nomad server.encrypt key: standard base64 (with
// padding) of 32 derived bytes, the form `nomad operator gossip keyring
// generate` prints.
func (t Token) NomadEncryptKey() string {
	return base64.StdEncoding.EncodeToString(t.DeriveKey(nomadEncryptLabel, 32))
}

// CSRKey returns the 32-byte HMAC key that authenticates certificate
// requests.
func (t Token) CSRKey() []byte {
	return t.DeriveKey(csrKeyLabel, 32)
}

// Keys are the keys a node derives from its token, once.
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
