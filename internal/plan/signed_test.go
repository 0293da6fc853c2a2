package plan_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// signedPlan returns validPlan with keys, endorsements (a fixed byte
// pattern the check below accepts) and the signatures of the servers
// named.
func signedPlan(t *testing.T, signers ...string) (plan.Plan, map[string]ed25519.PrivateKey) {
	t.Helper()
	p := validPlan()
	keys := map[string]ed25519.PrivateKey{}
	for i, s := range p.Servers {
		k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))
		keys[s.ID] = k
		p.Servers[i].Key = base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
		p.Servers[i].Endorsement = base64.StdEncoding.EncodeToString(endorsementOf(s.ID))
	}
	for _, id := range signers {
		p.Sign(id, ed25519.Sign(keys[id], plan.AcceptanceMessage(p.Hash())))
	}
	return p, keys
}

func endorsementOf(id string) []byte { return bytes.Repeat([]byte(id[len(id)-1:]), 64) }

// endorsed accepts the fixed endorsements of signedPlan.
func endorsed(id string, _, e []byte) bool { return bytes.Equal(e, endorsementOf(id)) }

func TestVerifySignatures(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T) plan.Plan
		want string // "" for valid
	}{
		{"a majority", func(t *testing.T) plan.Plan { p, _ := signedPlan(t, "id-a", "id-b"); return p }, ""},
		{"every server", func(t *testing.T) plan.Plan { p, _ := signedPlan(t, "id-a", "id-b", "id-c"); return p }, ""},
		{"one of three", func(t *testing.T) plan.Plan { p, _ := signedPlan(t, "id-a"); return p }, "valid signatures of 1 of its 3 servers"},
		{"none", func(t *testing.T) plan.Plan { p, _ := signedPlan(t); return p }, "valid signatures of 0 of its 3 servers"},
		{"one server signing twice", func(t *testing.T) plan.Plan {
			p, keys := signedPlan(t, "id-a")
			p.Signatures = append(p.Signatures, plan.Signature{Server: "id-a",
				Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(keys["id-a"], plan.AcceptanceMessage(p.Hash())))})
			return p
		}, "valid signatures of 1 of its 3 servers"},
		{"a signature by another server's key", func(t *testing.T) plan.Plan {
			p, keys := signedPlan(t, "id-a")
			p.Sign("id-b", ed25519.Sign(keys["id-a"], plan.AcceptanceMessage(p.Hash())))
			return p
		}, "valid signatures of 1 of its 3 servers"},
		{"signatures of another plan", func(t *testing.T) plan.Plan {
			p, _ := signedPlan(t, "id-a", "id-b")
			p.Servers[2].Address = "10.9.9.9"
			return p
		}, "valid signatures of 0 of its 3 servers"},
		{"a server swapped after signing", func(t *testing.T) plan.Plan {
			p, _ := signedPlan(t, "id-a", "id-b")
			p.Servers[2].ID = "id-z"
			p.Servers[2].Endorsement = base64.StdEncoding.EncodeToString(endorsementOf("id-z"))
			return p
		}, "valid signatures of 0 of its 3 servers"},
		{"a server without a key", func(t *testing.T) plan.Plan {
			p, _ := signedPlan(t, "id-a", "id-b")
			p.Servers[2].Key = ""
			return p
		}, "server c of epoch 1 is recorded without an identity key"},
		{"a server without an endorsement", func(t *testing.T) plan.Plan {
			p, _ := signedPlan(t, "id-a", "id-b")
			p.Servers[2].Endorsement = ""
			return p
		}, "server c of epoch 1 is recorded without a valid endorsement"},
		{"a server with another's endorsement", func(t *testing.T) plan.Plan {
			p, _ := signedPlan(t, "id-a", "id-b")
			p.Servers[2].Endorsement = p.Servers[1].Endorsement
			return p
		}, "server c of epoch 1 is recorded without a valid endorsement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.make(t)
			err := plan.VerifySignatures(p, endorsed)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("VerifySignatures = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("VerifySignatures = %v, want %q", err, tt.want)
			}
		})
	}
}

// Signatures are not part of the decision.
func TestSignaturesLeaveTheHash(t *testing.T) {
	p, _ := signedPlan(t)
	q, _ := signedPlan(t, "id-a", "id-b")
	if p.Hash() != q.Hash() || !p.Equal(q) {
		t.Error("signatures change the hash or Equal")
	}
	if err := q.Validate(); err != nil {
		t.Errorf("Validate of a signed plan: %v", err)
	}
	q.Signatures = append(q.Signatures, plan.Signature{Server: "id-z", Sig: q.Signatures[0].Sig})
	if err := q.Validate(); err == nil || !strings.Contains(err.Error(), `a signature names "id-z"`) {
		t.Errorf("Validate = %v", err)
	}
}
