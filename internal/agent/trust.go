package agent

import (
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
	checked map[string]bool
}

func newEndorsements(c certs.ClientToken) *endorsements {
	return &endorsements{client: c, checked: map[string]bool{}}
}

// eligible reports whether the member with meta m holds the server token.
func (e *endorsements) eligible(m gossip.Meta) bool { return e.check(m.ID, m.Identity, m.Endorsement) }

// check reports whether endorsement shows that the node with this ID and
// identity key holds the server token (a plan.EndorsementCheck).
func (e *endorsements) check(nodeID string, identity, endorsement []byte) bool {
	if len(identity) == 0 || len(endorsement) == 0 {
		return false
	}
	id, err := uuid.Parse(nodeID)
	if err != nil {
		return false
	}
	key := string(id[:]) + string(identity) + string(endorsement)
	e.mu.Lock()
	defer e.mu.Unlock()
	if ok, seen := e.checked[key]; seen {
		return ok
	}
	ok := e.client.VerifyEndorsement(id, identity, endorsement)
	if len(e.checked) >= maxEndorsements {
		clear(e.checked)
	}
	e.checked[key] = ok
	return ok
}

// verifyPlan checks that p carries the signatures of a majority of its
// servers, each endorsed by the cluster key.
func (e *endorsements) verifyPlan(p plan.Plan) error { return plan.VerifySignatures(p, e.check) }
