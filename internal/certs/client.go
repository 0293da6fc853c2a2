package certs

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Layout of a client token (format version 2).
const (
	// clientTokenPrefix starts every client token.
	clientTokenPrefix = "nbd2c_"

	// clientChecksumLabel is hashed in front of a client token's payload.
	clientChecksumLabel = "nomad-bootstrapd client token v2"

	clusterKeyLen = ed25519.PublicKeySize // 32
	expiresLen    = 8
	tagLen        = 16
	// clientPayloadLen is ClusterID || ClusterKey || Secret || Expires ||
	// Tag || checksum: 108 bytes.
	clientPayloadLen = clusterIDLen + clusterKeyLen + secretLen + expiresLen + tagLen + checksumLen
)

// endorsementLabel starts the message a server endorsement signs.
const endorsementLabel = "nomad-bootstrapd server endorsement v2\x00"

// admissionLabel starts the message a client admission signs.
const admissionLabel = "nomad-bootstrapd client admission v2\x00"

// tokenAdmissionLen is the length of a client token's Admission: its
// expiry and tag.
const tokenAdmissionLen = expiresLen + tagLen

// ErrNotAdmitted means a certificate request of a client-token node shows
// neither a valid client token nor an earlier admission.
var ErrNotAdmitted = errors.New("certs: the node shows neither a valid client token nor an earlier admission by this cluster")

// ErrClientTokenExpired means a client token is past its expiry: it admits
// no new node.
var ErrClientTokenExpired = errors.New("certs: the client token has expired; create a new one with `nomad-bootstrapd token client`")

// ErrClientTokenRotated means a client token was replaced by a later one
// (token rotate -client) and its grace has passed: it admits no new node.
var ErrClientTokenRotated = errors.New("certs: the client token was replaced by `nomad-bootstrapd token rotate -client`; give the node the new client token")

// ErrClientTokenForged means a client token's tag does not check out under
// the cluster's server token: it was not made from it, or it was changed.
var ErrClientTokenForged = errors.New("certs: the client token was not issued by this cluster's server token")

// ClientToken is a parsed client token. It admits a node as a Nomad client
// only: it holds the client secret, from which the keys every node needs are
// derived (gossip, certificate requests), and the cluster's public signing
// key, with which a node checks that another holds the server token. It
// holds nothing from which the server secret, Nomad's gossip key or the
// cluster signing key can be derived.
//
// The printable form (Encode) is "nbd2c_" and the base32 body (as for a
// Token) of the 108 bytes
//
//	ClusterID (16) || ClusterKey (32) || Secret (32) || Expires (8) || Tag (16) || checksum (4)
//
// where Expires is big-endian Unix seconds (0: never), Tag the first 16
// bytes of HMAC-SHA-256 under a key derived from the server secret of the
// fields before it, and checksum the first 4 bytes of SHA-256("nomad-
// bootstrapd client token v2" || the fields before it). It is 179
// characters long. Only the server token's holder can make a tag, so a
// client token cannot be given a later expiry; ExpiresAt is checked by the
// CA when it admits a new node.
//
// A ClientToken prints redacted like a Token ("nbd2c_abcdefgh…(redacted)").
type ClientToken struct {
	ClusterID  [16]byte
	ClusterKey [32]byte // the cluster's Ed25519 public key
	Secret     [32]byte // the client secret
	Expires    int64    // Unix seconds; 0: never
	Tag        [16]byte
}

// Client returns a client token of the cluster's first generation that
// admits new nodes until expires (never when it is the zero time).
func (t Token) Client(expires time.Time) ClientToken { return t.ClientOf(0, expires) }

// ClientOf returns a client token of generation gen. Generations differ
// only in the key of their tag, so a token does not say its generation;
// the CA finds it when it checks the tag (ClientPolicy). Generation 0 is
// what token client makes; token rotate -client makes the next one.
func (t Token) ClientOf(gen uint32, expires time.Time) ClientToken {
	c := ClientToken{ClusterID: t.ClusterID, Secret: t.clientSecret()}
	copy(c.ClusterKey[:], t.ClusterKey().Public().(ed25519.PublicKey))
	if !expires.IsZero() {
		c.Expires = expires.Unix()
	}
	c.Tag = t.clientTag(c, gen)
	return c
}

// clientTag returns the tag of c's fields under t for generation gen.
func (t Token) clientTag(c ClientToken, gen uint32) [16]byte {
	label := clientTagLabel
	if gen > 0 {
		label = fmt.Sprintf("%s generation %d", clientTagLabel, gen)
	}
	m := hmac.New(sha256.New, t.DeriveKey(label, 32))
	m.Write(c.fields())
	return [16]byte(m.Sum(nil))
}

// ClientPolicy says which generations of client tokens admit new nodes:
// Generation, the newest, and until PreviousUntil the one before it. The
// zero policy takes generation 0 only.
type ClientPolicy struct {
	Generation    uint32
	PreviousUntil time.Time
}

// maxGenerations bounds how many generations, from the newest back, a
// check tries, so that a request costs the CA little whatever the
// generation: a token older than that is refused as not this cluster's.
const maxGenerations = 16

// generation returns the generation of c's tag under t, up to newest, or
// false when none matches.
func (t Token) generation(c ClientToken, newest uint32) (uint32, bool) {
	for g := int64(newest); g >= 0 && int64(newest)-g < maxGenerations; g-- {
		want := t.clientTag(c, uint32(g))
		if hmac.Equal(want[:], c.Tag[:]) {
			return uint32(g), true
		}
	}
	return 0, false
}

// CheckClient reports whether c is a client token of generation 0 made
// from t that admits a new node at now: nil, or an error wrapping
// ErrClientTokenForged or ErrClientTokenExpired.
func (t Token) CheckClient(c ClientToken, now time.Time) error {
	return t.CheckClientUnder(c, now, ClientPolicy{})
}

// CheckClientUnder reports whether c was made from t and admits a new node
// at now under policy: nil, or an error wrapping ErrClientTokenForged,
// ErrClientTokenRotated or ErrClientTokenExpired.
func (t Token) CheckClientUnder(c ClientToken, now time.Time, policy ClientPolicy) error {
	if c.ClusterID != t.ClusterID {
		return ErrClientTokenForged
	}
	gen, ok := t.generation(c, policy.Generation)
	switch {
	case !ok:
		return ErrClientTokenForged
	case gen == policy.Generation:
	case gen+1 == policy.Generation && now.Before(policy.PreviousUntil):
	default:
		return fmt.Errorf("%w (it is of generation %d; the cluster admits generation %d)", ErrClientTokenRotated, gen, policy.Generation)
	}
	if c.Expires != 0 && now.Unix() >= c.Expires {
		return fmt.Errorf("%w (it expired at %s)", ErrClientTokenExpired, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// fields returns the token's fields before the tag, as encoded.
func (c ClientToken) fields() []byte {
	b := make([]byte, 0, clientPayloadLen)
	b = append(b, c.ClusterID[:]...)
	b = append(b, c.ClusterKey[:]...)
	b = append(b, c.Secret[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(c.Expires))
}

// Encode returns the printable client token, secret included; never log it.
func (c ClientToken) Encode() string {
	return clientFormat.encode(append(c.fields(), c.Tag[:]...))
}

// ParseClientToken parses the printable form of a client token, with the
// rules and errors of ParseToken. A server token is refused with
// ErrTokenPrefix.
func ParseClientToken(s string) (ClientToken, error) {
	s, f, err := normalize(s)
	if err != nil {
		return ClientToken{}, err
	}
	if f.prefix != clientTokenPrefix {
		return ClientToken{}, &tokenError{msg: "certs: this is a server token, not a client token (nbd2c_…)", kind: ErrTokenPrefix}
	}
	data, err := f.decode(s)
	if err != nil {
		return ClientToken{}, err
	}
	return clientFromBytes(data)
}

// clientFromBytes reads a client token's payload without its checksum.
func clientFromBytes(data []byte) (ClientToken, error) {
	var c ClientToken
	n := copy(c.ClusterID[:], data)
	n += copy(c.ClusterKey[:], data[n:])
	n += copy(c.Secret[:], data[n:])
	exp := binary.BigEndian.Uint64(data[n:])
	n += expiresLen
	copy(c.Tag[:], data[n:])
	if exp > 1<<62 {
		return ClientToken{}, &tokenError{msg: "certs: join token has an expiry out of range; copy the token again", kind: ErrTokenEncoding}
	}
	c.Expires = int64(exp)
	return c, nil
}

// Admission returns what a certificate request of this token's holder
// carries to show the token: its expiry and tag (24 bytes).
func (c ClientToken) Admission() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(c.Expires))
	return append(b, c.Tag[:]...)
}

// Admit signs, with the cluster key, that the node with this ID and
// identity key was admitted with a client token. The CA returns it with a
// node's first certificate; the node shows it when it renews, so a node
// admitted once keeps working after its token expires.
func (t Token) Admit(nodeID string, identity ed25519.PublicKey) []byte {
	return ed25519.Sign(t.ClusterKey(), admission(t.ClusterID, nodeID, identity))
}

// CheckAdmission reports whether adm, a certificate request's Admission,
// admits the node with this ID and identity key at now: a client token of
// this cluster of generation 0 that has not expired
// (ClientToken.Admission), or an admission the cluster made for this very
// node and key (Admit). Errors wrap ErrNotAdmitted or
// ErrClientTokenExpired.
func (t Token) CheckAdmission(adm []byte, nodeID string, identity ed25519.PublicKey, now time.Time) error {
	return t.CheckAdmissionUnder(adm, nodeID, identity, now, ClientPolicy{})
}

// CheckAdmissionUnder is CheckAdmission with the client tokens that policy
// admits; a token of an earlier generation wraps ErrClientTokenRotated.
// An admission the cluster made stands whatever the policy.
func (t Token) CheckAdmissionUnder(adm []byte, nodeID string, identity ed25519.PublicKey, now time.Time, policy ClientPolicy) error {
	switch len(adm) {
	case tokenAdmissionLen:
		c := t.Client(time.Time{})
		c.Expires = int64(binary.BigEndian.Uint64(adm))
		copy(c.Tag[:], adm[expiresLen:])
		if err := t.CheckClientUnder(c, now, policy); err != nil {
			if errors.Is(err, ErrClientTokenExpired) || errors.Is(err, ErrClientTokenRotated) {
				return err
			}
			return fmt.Errorf("%w (the client token was not made from this cluster's server token)", ErrNotAdmitted)
		}
		return nil
	case ed25519.SignatureSize:
		if len(identity) == ed25519.PublicKeySize && ed25519.Verify(t.ClusterKey().Public().(ed25519.PublicKey), admission(t.ClusterID, nodeID, identity), adm) {
			return nil
		}
		return fmt.Errorf("%w (the admission is not this node's)", ErrNotAdmitted)
	}
	return ErrNotAdmitted
}

// admission returns the message an admission signs.
func admission(clusterID [16]byte, nodeID string, identity ed25519.PublicKey) []byte {
	b := append([]byte(admissionLabel), clusterID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(nodeID)))
	b = append(b, nodeID...)
	return append(b, identity...)
}

// ExpiresAt returns when the token stops admitting new nodes, or the zero
// time when it never does.
func (c ClientToken) ExpiresAt() time.Time {
	if c.Expires == 0 {
		return time.Time{}
	}
	return time.Unix(c.Expires, 0).UTC()
}

// ClusterIDString returns the cluster ID as 32 lowercase hex characters.
func (c ClientToken) ClusterIDString() string { return hex.EncodeToString(c.ClusterID[:]) }

// GossipLabel returns the cluster's memberlist label, as Token's does.
func (c ClientToken) GossipLabel() string { return gossipLabel(c.ClusterID) }

// GossipKey returns the memberlist encryption key, as Token's does.
func (c ClientToken) GossipKey() []byte { return tierKey(c.ClusterID, c.Secret, gossipKeyLabel) }

// CSRKey returns the certificate requests' HMAC key, as Token's does.
func (c ClientToken) CSRKey() []byte { return tierKey(c.ClusterID, c.Secret, csrKeyLabel) }

// VerifyEndorsement reports whether sig is the cluster key's endorsement of
// the node with this ID and identity key (see Token.Endorse).
func (c ClientToken) VerifyEndorsement(nodeID [16]byte, identity ed25519.PublicKey, sig []byte) bool {
	if len(identity) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(c.ClusterKey[:]), endorsement(c.ClusterID, nodeID, identity), sig)
}

// Endorse signs, with the cluster key, that the node with this ID and
// identity key holds the server token. Every node checks it with the public
// key its token holds (VerifyEndorsement); only a server-token holder can
// make one, so only such a node can be elected.
func (t Token) Endorse(nodeID [16]byte, identity ed25519.PublicKey) []byte {
	return ed25519.Sign(t.ClusterKey(), endorsement(t.ClusterID, nodeID, identity))
}

// endorsement returns the message an endorsement signs.
func endorsement(clusterID, nodeID [16]byte, identity ed25519.PublicKey) []byte {
	b := make([]byte, 0, len(endorsementLabel)+16+16+len(identity))
	b = append(b, endorsementLabel...)
	b = append(b, clusterID[:]...)
	b = append(b, nodeID[:]...)
	return append(b, identity...)
}

// String returns a redacted form safe for logs, like Token's:
// "nbd2c_abcdefgh…(redacted)".
func (c ClientToken) String() string {
	id := tokenEncoding.EncodeToString(c.ClusterID[:])
	return clientTokenPrefix + id[:redactedChars] + "…(redacted)"
}

// GoString returns the redacted form.
func (c ClientToken) GoString() string { return c.String() }

// Format prints the redacted form with every verb.
func (c ClientToken) Format(f fmt.State, verb rune) { formatRedacted(f, verb, c.String()) }

// MarshalJSON returns the redacted form as a JSON string.
func (c ClientToken) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// formatRedacted prints s, the redacted form of a secret, for any verb.
func formatRedacted(f fmt.State, verb rune, s string) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s)
		return
	}
	io.WriteString(f, s)
}

// Credential is the token a node was given: the cluster's server token, or a
// client token. Every node derives the gossip and certificate request keys
// from it and checks endorsements with it; only a server credential gives
// the server-only secrets (Server).
type Credential struct {
	Client ClientToken // the client token, or the server token's own client half
	server *Token
}

// ServerCredential returns the credential of a server-token holder.
func ServerCredential(t Token) Credential {
	return Credential{Client: t.Client(time.Time{}), server: &t}
}

// ClientCredential returns the credential of a client-token holder.
func ClientCredential(c ClientToken) Credential { return Credential{Client: c} }

// ParseCredential parses either kind of token, with the rules and errors of
// ParseToken.
func ParseCredential(s string) (Credential, error) {
	norm, f, err := normalize(s)
	if err != nil {
		return Credential{}, err
	}
	if f.prefix == clientTokenPrefix {
		c, err := ParseClientToken(norm)
		return Credential{Client: c}, err
	}
	t, err := ParseToken(norm)
	if err != nil {
		return Credential{}, err
	}
	return ServerCredential(t), nil
}

// Server returns the server token, and whether the credential is one.
func (c Credential) Server() (Token, bool) {
	if c.server == nil {
		return Token{}, false
	}
	return *c.server, true
}

// IsServer reports whether the credential is the server token.
func (c Credential) IsServer() bool { return c.server != nil }

// Kind names the credential: "server token" or "client token".
func (c Credential) Kind() string {
	if c.IsServer() {
		return "server token"
	}
	return "client token"
}

// Encode returns the printable token, secret included; never log it.
func (c Credential) Encode() string {
	if t, ok := c.Server(); ok {
		return t.Encode()
	}
	return c.Client.Encode()
}

// ClusterIDString returns the cluster ID as 32 lowercase hex characters.
func (c Credential) ClusterIDString() string { return c.Client.ClusterIDString() }

// Keys derives the node's keys; NomadEncrypt is empty for a client token.
func (c Credential) Keys() Keys {
	if t, ok := c.Server(); ok {
		return t.Keys()
	}
	return Keys{Gossip: c.Client.GossipKey(), CSR: c.Client.CSRKey()}
}

// String returns the redacted form of the token.
func (c Credential) String() string {
	if t, ok := c.Server(); ok {
		return t.String()
	}
	return c.Client.String()
}

// GoString returns the redacted form.
func (c Credential) GoString() string { return c.String() }

// Format prints the redacted form with every verb.
func (c Credential) Format(f fmt.State, verb rune) { formatRedacted(f, verb, c.String()) }

// MarshalJSON returns the redacted form as a JSON string.
func (c Credential) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

var (
	_ fmt.Formatter  = ClientToken{}
	_ json.Marshaler = ClientToken{}
	_ fmt.Formatter  = Credential{}
	_ json.Marshaler = Credential{}
)
