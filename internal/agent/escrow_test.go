package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/acl"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/caholder"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/identity"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// escrowNode returns an agent that is the second server of a plan whose CA
// holder is n1, the plan, which pins ca, and the identity key of its third
// server n3.
func escrowNode(t *testing.T, c *cluster) (a *Agent, p plan.Plan, ca *certs.CA, n3 ed25519.PrivateKey) {
	t.Helper()
	o := c.options(0)
	o.Config.Bind = replaceAddr(0)
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if ca, err = certs.NewCA(rand.Reader, "cluster", a.now(), 0); err != nil {
		t.Fatal(err)
	}
	if _, n3, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	p = *validPlan()
	p.CAFingerprint = ca.Fingerprint()
	p.Servers[1].ID = a.id
	p.Servers[1].Key = base64.StdEncoding.EncodeToString(identity.Public(a.idKey))
	p.Servers[2].Key = base64.StdEncoding.EncodeToString(identity.Public(n3))
	a.plan, a.planHash = &p, p.Hash()
	return a, p, ca, n3
}

// An escrow sent again (the CA holder restarted, or a successor plan) is
// sealed anew; the stored file changes only when what it holds does, and
// only an escrow from the CA holder, sealed to this node, of the pinned CA
// is kept.
func TestEscrowKeptWhenResent(t *testing.T) {
	c := newCluster(t)
	a, p, ca, n3 := escrowNode(t, c)
	seal := func(to ed25519.PublicKey, ca *certs.CA, mgmt string) agree.Message {
		sealed, err := caholder.Seal(to, ca, mgmt)
		if err != nil {
			t.Fatal(err)
		}
		return agree.Message{Type: agree.MsgEscrow, Sealed: sealed, Hash: p.Hash()}
	}
	self := identity.Public(a.idKey)
	mgmt := acl.NewManagementSecret()
	path := filepath.Join(a.paths.CADir(), caholder.EscrowFile)
	first := seal(self, ca, mgmt)
	a.handleEscrow("n1", first)
	a.handleEscrow("n1", seal(self, ca, mgmt))
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, first.Sealed) {
		t.Fatalf("after the same escrow sealed again the file holds another seal (%v)", err)
	}
	next := acl.NewManagementSecret()
	other := seal(self, ca, next)
	a.handleEscrow("n1", other)
	if b, _ := os.ReadFile(path); !bytes.Equal(b, other.Sealed) {
		t.Errorf("a new escrow was not stored")
	}
	rogue, err := certs.NewCA(rand.Reader, "cluster", a.now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		from string
		m    agree.Message
	}{
		{"n3", seal(self, ca, mgmt)},                                                       // not the CA holder
		{"n1", seal(self, rogue, mgmt)},                                                    // not the pinned CA
		{"n1", seal(identity.Public(n3), ca, mgmt)},                                        // sealed to another server
		{"n1", agree.Message{Type: agree.MsgEscrow, Sealed: []byte{3, 1}, Hash: p.Hash()}}, // garbage
	} {
		a.handleEscrow(tt.from, tt.m)
		if b, _ := os.ReadFile(path); !bytes.Equal(b, other.Sealed) {
			t.Errorf("an escrow from %s that must be refused was stored", tt.from)
		}
	}
	if got, err := a.managementSecret(); err != nil || got != next {
		t.Errorf("managementSecret = %v; want the stored escrow's", err)
	}
}

// The management token is random: the CA holder makes it once and stores
// it before it is used; a server without the escrow has none.
func TestManagementSecret(t *testing.T) {
	c := newCluster(t)
	a, _, ca, _ := escrowNode(t, c)
	if _, err := a.managementSecret(); err == nil || !strings.Contains(err.Error(), "not arrived") {
		t.Fatalf("managementSecret without the escrow = %v; want not arrived", err)
	}
	a.ca = ca
	first, err := a.managementSecret()
	if err != nil || !acl.IsSecretID(first) {
		t.Fatalf("managementSecret on the CA holder = %v; want a new secret ID", err)
	}
	if again, err := a.managementSecret(); err != nil || again != first {
		t.Errorf("managementSecret again = %v; want the stored secret", err)
	}
	if stored, err := acl.LoadToken(a.paths.ACLDir(), acl.ManagementTokenName); err != nil || stored != first {
		t.Errorf("the stored management token = %v; want the one made", err)
	}
	other, _, _, _ := escrowNode(t, newCluster(t))
	other.ca = ca
	if s, err := other.managementSecret(); err != nil || s == first {
		t.Errorf("two CA holders made the same management secret (%v)", err)
	}
}
