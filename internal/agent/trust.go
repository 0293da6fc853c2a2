package agent

import (
	"sync"

	"github.com/google/uuid"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
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
func (e *endorsements) eligible(m gossip.Meta) bool {
	if len(m.Identity) == 0 || len(m.Endorsement) == 0 {
		return false
	}
	id, err := uuid.Parse(m.ID)
	if err != nil {
		return false
	}
	key := string(id[:]) + string(m.Identity) + string(m.Endorsement)
	e.mu.Lock()
	defer e.mu.Unlock()
	if ok, seen := e.checked[key]; seen {
		return ok
	}
	ok := e.client.VerifyEndorsement(id, m.Identity, m.Endorsement)
	if len(e.checked) >= maxEndorsements {
		clear(e.checked)
	}
	e.checked[key] = ok
	return ok
}
