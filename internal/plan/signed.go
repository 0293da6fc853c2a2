package plan

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

// acceptanceLabel starts the message a server's acceptance signs.
const acceptanceLabel = "nomad-bootstrapd plan acceptance v2\x00"

// AcceptanceMessage returns what a server signs to accept the plan whose
// hash is given.
func AcceptanceMessage(hash string) []byte { return []byte(acceptanceLabel + hash) }

// EndorsementCheck reports whether endorsement shows that the node with
// this ID and identity key holds the server token (certs.ClientToken's
// VerifyEndorsement, with the cluster's public key).
type EndorsementCheck func(id string, key, endorsement []byte) bool

// VerifySignatures checks that p was decided by its servers: each of them
// is recorded with an identity key and an endorsement that endorsed
// accepts, and more than half of them signed p's hash with that key. A
// holder of a client token can make none of this, so a plan it forges is
// refused however it arrives.
func VerifySignatures(p Plan, endorsed EndorsementCheck) error {
	keys := make(map[string]ed25519.PublicKey, len(p.Servers))
	for _, s := range p.Servers {
		key, ok := s.PublicKey()
		if !ok {
			return fmt.Errorf("plan: server %s of epoch %d is recorded without an identity key", s.Name, p.Epoch)
		}
		e, err := base64.StdEncoding.Strict().DecodeString(s.Endorsement)
		if err != nil || !endorsed(s.ID, key, e) {
			return fmt.Errorf("plan: server %s of epoch %d is recorded without a valid endorsement of the server token", s.Name, p.Epoch)
		}
		keys[s.ID] = key
	}
	msg := AcceptanceMessage(p.Hash())
	signers := 0
	for _, s := range p.Servers {
		if p.signedWith(s.ID, keys[s.ID], msg) {
			signers++
		}
	}
	if need := len(p.Servers)/2 + 1; signers < need {
		return fmt.Errorf("plan: epoch %d carries valid signatures of %d of its %d servers, not of a majority (%d)", p.Epoch, signers, len(p.Servers), need)
	}
	return nil
}

// signedWith reports whether one of p's signatures of the server with this
// ID verifies msg with key.
func (p Plan) signedWith(id string, key ed25519.PublicKey, msg []byte) bool {
	for _, sig := range p.Signatures {
		if sig.Server != id {
			continue
		}
		if b, err := base64.StdEncoding.Strict().DecodeString(sig.Sig); err == nil && ed25519.Verify(key, msg, b) {
			return true
		}
	}
	return false
}

// Sign adds sig, the acceptance of the server with this ID, to p's
// signatures, replacing an earlier one of the same server, in server ID
// order.
func (p *Plan) Sign(server string, sig []byte) {
	p.Signatures = slices.DeleteFunc(p.Signatures, func(s Signature) bool { return s.Server == server })
	p.Signatures = append(p.Signatures, Signature{Server: server, Sig: base64.StdEncoding.EncodeToString(sig)})
	slices.SortFunc(p.Signatures, func(a, b Signature) int { return strings.Compare(a.Server, b.Server) })
}

// SignedBy reports whether p carries a valid signature of its server with
// this ID, by the identity key p records for it.
func (p Plan) SignedBy(id string) bool {
	i := slices.IndexFunc(p.Servers, func(s Server) bool { return s.ID == id })
	if i < 0 {
		return false
	}
	key, ok := p.Servers[i].PublicKey()
	if !ok {
		return false
	}
	return p.signedWith(id, key, AcceptanceMessage(p.Hash()))
}

// PublicKey returns the identity public key recorded for s; false when
// there is none or it is malformed.
func (s Server) PublicKey() (ed25519.PublicKey, bool) {
	key, err := base64.StdEncoding.Strict().DecodeString(s.Key)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, false
	}
	return key, true
}
