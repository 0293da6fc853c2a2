package agent

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"

	"github.com/google/uuid"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

func validPlan() *plan.Plan {
	return &plan.Plan{Epoch: 1, Region: "global", Expect: 3, CAHolder: "a", CAPort: 4651,
		CAFingerprint: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Servers: []plan.Server{
			{ID: "a", Name: "n1", Address: "127.0.0.2"}, {ID: "b", Name: "n2", Address: "127.0.0.3"}, {ID: "c", Name: "n3", Address: "127.0.0.4"},
		}}
}

// signAll makes p a plan its servers decided, as the cluster of tok would:
// each server gets a UUID (derived from its ID, so the same server keeps
// it across plans), an identity key derived from that, the endorsement of
// tok's cluster key, and its signature of p.
func signAll(tok certs.Token, p *plan.Plan) {
	for i, s := range p.Servers {
		id := s.ID
		if _, err := uuid.Parse(id); err != nil {
			id = uuid.NewSHA1(uuid.NameSpaceOID, []byte(s.ID)).String()
			if p.CAHolder == s.ID {
				p.CAHolder = id
			}
		}
		key := ed25519.NewKeyFromSeed(sha256Of(id))
		pub := key.Public().(ed25519.PublicKey)
		p.Servers[i].ID = id
		p.Servers[i].Key = base64.StdEncoding.EncodeToString(pub)
		p.Servers[i].Endorsement = base64.StdEncoding.EncodeToString(tok.Endorse(uuid.MustParse(id), pub))
	}
	p.Signatures = nil
	hash := p.Hash()
	for _, s := range p.Servers {
		p.Sign(s.ID, ed25519.Sign(ed25519.NewKeyFromSeed(sha256Of(s.ID)), plan.AcceptanceMessage(hash)))
	}
}

func sha256Of(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
