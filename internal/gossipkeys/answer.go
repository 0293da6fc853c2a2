package gossipkeys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/identity"
)

// An answer is how a server hands its ring to a node that asked for it
// with a request the CA endpoint authenticated: the ring sealed (HPKE) to
// the identity key the request was signed with, so that only that node
// reads it, and signed by the server's identity key, which the server token
// endorses, over the request's nonce, so that the node knows it comes from
// a server of its cluster and answers its own request, whatever TLS it came
// over.

// MaxAnswerSize bounds an encoded answer.
const MaxAnswerSize = 8 << 10

const (
	sealInfo   = "nomad-bootstrapd gossip keys v1"
	signDomain = "nomad-bootstrapd gossip keys answer v1"
)

// Answer is a server's answer to a request for the keys.
type Answer struct {
	// From is the answering server's node ID, Identity its identity public
	// key and Endorsement the server token's endorsement of both.
	From        string `json:"from"`
	Identity    []byte `json:"identity"`
	Endorsement []byte `json:"endorsement"`
	// Sealed is the ring's JSON sealed to the requester's identity key.
	Sealed []byte `json:"sealed"`
	// Signature is From's signature of the request's nonce and Sealed.
	Signature []byte `json:"signature"`
}

func signed(nonce []byte, from string, sealed []byte) []byte {
	b := []byte(signDomain)
	for _, f := range [][]byte{nonce, []byte(from), sealed} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// Seal returns the encoded answer that hands r to the node whose identity
// key is to, for the request with nonce, from the server with ID from,
// identity key key and endorsement.
func Seal(r Ring, to ed25519.PublicKey, nonce []byte, from string, key ed25519.PrivateKey, endorsement []byte) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	plain, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	sealed, err := identity.Seal(to, sealInfo, plain)
	if err != nil {
		return nil, err
	}
	a := Answer{From: from, Identity: identity.Public(key), Endorsement: endorsement, Sealed: sealed,
		Signature: ed25519.Sign(key, signed(nonce, from, sealed))}
	return json.Marshal(a)
}

// Endorsed reports whether the server token endorses identity as the key
// of node id (certs.ClientToken.VerifyEndorsement).
type Endorsed func(id [16]byte, identity ed25519.PublicKey, endorsement []byte) bool

// Open checks an answer to this node's request with nonce and returns the
// ring it hands over: signed by a server the token endorses, over nonce,
// sealed to self.
func Open(b []byte, self ed25519.PrivateKey, nonce []byte, endorsed Endorsed) (Ring, error) {
	if len(b) > MaxAnswerSize {
		return Ring{}, fmt.Errorf("gossipkeys: an answer of %d bytes is over %d", len(b), MaxAnswerSize)
	}
	var a Answer
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Ring{}, fmt.Errorf("gossipkeys: answer: %w", err)
	}
	id, err := uuid.Parse(a.From)
	if err != nil || id.String() != a.From {
		return Ring{}, errors.New("gossipkeys: answer: the sender's node ID is not a canonical UUID")
	}
	if len(a.Identity) != ed25519.PublicKeySize || len(a.Signature) != ed25519.SignatureSize {
		return Ring{}, errors.New("gossipkeys: answer: malformed identity key or signature")
	}
	if !endorsed(id, a.Identity, a.Endorsement) {
		return Ring{}, errors.New("gossipkeys: answer: the sender is not a server of this cluster (its key is not endorsed by the server token)")
	}
	if !ed25519.Verify(a.Identity, signed(nonce, a.From, a.Sealed), a.Signature) {
		return Ring{}, errors.New("gossipkeys: answer: the signature does not check out (not an answer to this request)")
	}
	plain, err := identity.Open(self, sealInfo, a.Sealed)
	if err != nil {
		return Ring{}, fmt.Errorf("gossipkeys: answer: %w", err)
	}
	return Parse(plain)
}
