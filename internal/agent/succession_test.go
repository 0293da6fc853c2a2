package agent

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/caholder"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
)

// sentTo is a transport that records what is sent.
type sentTo struct {
	mu   sync.Mutex
	sent map[string][]agree.Message
}

func (s *sentTo) SendTo(name string, payload []byte) error {
	m, err := agree.DecodeMessage(payload)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		s.sent = map[string][]agree.Message{}
	}
	s.sent[name] = append(s.sent[name], m)
	return nil
}

func (s *sentTo) Broadcast([]byte) error   { return nil }
func (s *sentTo) Members() []gossip.Member { return nil }

func (s *sentTo) to(name string) []agree.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[name]
}

// A server without the escrowed key asks the CA holder of its plan, at
// most every a.tm.WantCA, and stops once it holds the key; the CA holder
// answers only servers of its own plan.
func TestWantCA(t *testing.T) {
	c := newCluster(t)
	a, p, _, _ := escrowNode(t, c)
	tr := &sentTo{}
	a.tr = tr
	now := a.now()
	last := now.Add(-a.tm.WantCA)
	a.now = func() time.Time { return now }
	a.maybeWantCA(p, p.Hash(), &last)
	a.maybeWantCA(p, p.Hash(), &last)
	if got := tr.to("n1"); len(got) != 1 || got[0].Type != agree.MsgWantCA || got[0].Hash != p.Hash() {
		t.Fatalf("sent to the CA holder %+v; want one request for the plan's key", got)
	}
	os.MkdirAll(a.paths.CADir(), 0o700)
	os.WriteFile(filepath.Join(a.paths.CADir(), caholder.EscrowFile), []byte{3, 's', 'e', 'a', 'l', 'e', 'd'}, 0o600)
	now = now.Add(a.tm.WantCA)
	a.maybeWantCA(p, p.Hash(), &last)
	if got := tr.to("n1"); len(got) != 1 {
		t.Errorf("asked again while holding the key: %+v", got)
	}

	// The CA holder's side.
	hc := newCluster(t)
	h, hp, ca, n3 := escrowNode(t, hc)
	htr := &sentTo{}
	h.tr = htr
	hp.CAHolder = h.id
	h.plan, h.planHash = &hp, hp.Hash()
	h.ca = ca
	go h.senders(t.Context())
	h.handleWantCA("n3", agree.Message{Type: agree.MsgWantCA, Hash: hp.Hash(), ID: 7})
	h.handleWantCA("n9", agree.Message{Type: agree.MsgWantCA, Hash: hp.Hash()})          // not a server
	h.handleWantCA("n1", agree.Message{Type: agree.MsgWantCA, Hash: validPlan().Hash()}) // another plan
	waitFor(t, 5*time.Second, "the answer to n3", func() bool { return len(htr.to("n3")) == 1 })
	if got := htr.to("n3")[0]; got.Type != agree.MsgEscrow || got.Hash != hp.Hash() || got.ID != 7 {
		t.Errorf("answered %+v; want the escrow for the plan", got)
	} else if _, err := (caholder.Store{Dir: t.TempDir(), Identity: h.idKey, Now: h.now}).KeepEscrow(got.Sealed, ca.Fingerprint()); err == nil {
		t.Errorf("the escrow for n3 opens with the CA holder's identity key")
	} else if _, err := (caholder.Store{Dir: t.TempDir(), Identity: n3, Now: h.now}).KeepEscrow(got.Sealed, ca.Fingerprint()); err != nil {
		t.Errorf("the escrow does not open with n3's identity key: %v", err)
	}
	if len(htr.to("n9")) != 0 || len(htr.to("n1")) != 0 {
		t.Errorf("answered a node that is not a server of the plan, or another plan")
	}
}
