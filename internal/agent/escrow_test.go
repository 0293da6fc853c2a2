package agent

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/caholder"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// escrowNode returns an agent that is the second server of a plan whose CA
// holder is n1, and the plan.
func escrowNode(t *testing.T, c *cluster) (*Agent, plan.Plan) {
	t.Helper()
	o := c.options(0)
	o.Config.Bind = replaceAddr(0)
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	p := *validPlan()
	p.Servers[1].ID = a.id
	a.plan, a.planHash = &p, p.Hash()
	return a, p
}

// An escrow sent again (the CA holder restarted, or a successor plan) is
// sealed anew; the stored file changes only when the key does.
func TestEscrowKeptWhenResent(t *testing.T) {
	c := newCluster(t)
	a, p := escrowNode(t, c)
	seal := func(key []byte) agree.Message {
		sealed, err := certs.SealCAKey(c.token, key, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return agree.Message{Type: agree.MsgEscrow, Sealed: sealed, Hash: p.Hash()}
	}
	path := filepath.Join(a.paths.CADir(), caholder.EscrowFile)
	first := seal([]byte("key one"))
	a.handleEscrow("n1", first)
	a.handleEscrow("n1", seal([]byte("key one")))
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, first.Sealed) {
		t.Fatalf("after the same key sealed again the file holds another seal (%v)", err)
	}
	other := seal([]byte("key two"))
	a.handleEscrow("n1", other)
	if b, _ := os.ReadFile(path); !bytes.Equal(b, other.Sealed) {
		t.Errorf("a new key was not stored")
	}
	a.handleEscrow("n3", seal([]byte("key three"))) // not the CA holder
	if b, _ := os.ReadFile(path); !bytes.Equal(b, other.Sealed) {
		t.Errorf("an escrow from a server that does not hold the CA was stored")
	}
}
