package agent

import (
	"crypto/ed25519"
	"sync"

	"github.com/google/uuid"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// maxEndorsements bounds the checked endorsements kept; past it the cache
// starts over.
const maxEndorsements = 4096

// endorsements checks that members hold the server token: a member's meta
// carries the cluster key's signature of its ID and identity key, which
// only a server-token holder can make. Each distinct meta is checked once.
type endorsements struct {
	client certs.ClientToken // the cluster's public key, from either token

	mu      sync.Mutex
	checked map[endorsementKey]bool
}

// endorsementKey is what one check decides on. It holds the node ID as
// given, so that a check already made costs a map lookup only: every
// election looks at every member.
type endorsementKey struct {
	id          string
	identity    [ed25519.PublicKeySize]byte
	endorsement [ed25519.SignatureSize]byte
}

func newEndorsements(c certs.ClientToken) *endorsements {
	return &endorsements{client: c, checked: map[endorsementKey]bool{}}
}

// eligible reports whether the member with meta m holds the server token.
func (e *endorsements) eligible(m gossip.Meta) bool { return e.check(m.ID, m.Identity, m.Endorsement) }

// check reports whether endorsement shows that the node with this ID and
// identity key holds the server token (a plan.EndorsementCheck).
func (e *endorsements) check(nodeID string, identity, endorsement []byte) bool {
	if len(identity) != ed25519.PublicKeySize || len(endorsement) != ed25519.SignatureSize {
		return false
	}
	key := endorsementKey{id: nodeID}
	copy(key.identity[:], identity)
	copy(key.endorsement[:], endorsement)
	e.mu.Lock()
	defer e.mu.Unlock()
	if ok, seen := e.checked[key]; seen {
		return ok
	}
	id, err := uuid.Parse(nodeID)
	ok := err == nil && e.client.VerifyEndorsement(id, identity, endorsement)
	if len(e.checked) >= maxEndorsements {
		clear(e.checked)
	}
	e.checked[key] = ok
	return ok
}

// verifyPlan checks that p carries the signatures of a majority of its
// servers, each endorsed by the cluster key.
func (e *endorsements) verifyPlan(p plan.Plan) error { return plan.VerifySignatures(p, e.check) }
