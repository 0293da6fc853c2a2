package agree

import (
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
)

// A recovery that an operator confirmed on the surviving server of three
// is agreed by its own servers, the two spares with the survivor, and
// every live node adopts it; the survivors alone could not replace a
// majority, a recovery from a node that is no survivor is refused, and a
// spare that has not seen the lost servers down for ServerReplaceAfter
// refuses to take part.
func TestRecoveryIsAgreedByItsOwnServers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := []tokenMember{{"a", "n1", "auto", true}, {"b", "n2", "auto", true}, {"c", "n3", "auto", true},
		{"d", "n4", "auto", true}, {"e", "n5", "auto", true}, {"f", "n6", "client", true}}
	p := *validPlan()
	for i := range p.Servers {
		p.Servers[i].Key = keyOf(p.Servers[i].ID)
	}
	var left []gossip.Member // n2 and n3 are lost
	for _, m := range ms {
		if m.name != "n2" && m.name != "n3" {
			left = append(left, m.member())
		}
	}
	type peer struct {
		n *Node
		r *recorder
	}
	nodes := map[string]peer{}
	for _, m := range ms {
		if m.name == "n2" || m.name == "n3" {
			continue
		}
		r := newRecorder()
		n := newTokenNode(t, m.id, m.name, t0, r, ms)
		n.Receive(t0, "n2", Message{Type: MsgCommit, Plan: &p})
		n.MembersChanged(t0.Add(time.Second), left)
		nodes[m.name] = peer{n, r}
	}
	now := t0.Add(2 * time.Minute) // past ServerReplaceAfter
	for _, pe := range nodes {
		pe.n.Tick(now)
	}
	survivor := nodes["n1"].n
	if survivor.Proposing() {
		t.Fatal("the survivor proposed a replacement of a majority on its own")
	}
	if w := nodes["n1"].r.warns["replace"]; !strings.Contains(w, "a majority of the servers must survive") {
		t.Errorf("the survivor's warning: %q", w)
	}

	// A spare is no survivor: its recovery is refused.
	if err := nodes["n4"].n.Recover(now, []string{"b", "c"}); err == nil || !strings.Contains(err.Error(), "not a server") {
		t.Errorf("Recover on a spare: %v", err)
	}
	if err := survivor.Recover(now, []string{"a", "b"}); err == nil || !strings.Contains(err.Error(), "without itself") {
		t.Errorf("Recover without the survivor: %v", err)
	}

	if err := survivor.Recover(now, []string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	// Deliver every message until none is left.
	for round := 0; round < 20; round++ {
		sent := false
		for from, pe := range nodes {
			for to, msgs := range pe.r.sent {
				delete(pe.r.sent, to)
				target, ok := nodes[to]
				if !ok {
					continue
				}
				for _, m := range msgs {
					sent = true
					target.n.Receive(now, from, m)
				}
			}
		}
		if !sent {
			break
		}
	}
	for _, name := range []string{"n1", "n4", "n5"} {
		got := nodes[name].n.Plan()
		if got == nil || got.Epoch != 2 || !got.Recovered || strings.Join(got.ServerNames(), ",") != "n1,n4,n5" {
			t.Errorf("%s holds %+v; want the recovery of epoch 2 with n1, n4, n5", name, got)
		}
	}
	// A node that was not asked adopts the committed recovery.
	rec := *nodes["n1"].n.Plan()
	n6 := nodes["n6"].n
	n6.Receive(now, "n1", Message{Type: MsgCommit, Plan: &rec})
	if got := n6.Plan(); got == nil || got.Epoch != 2 {
		t.Errorf("n6 holds %+v; want the recovery", got)
	}

	// A spare that saw the lost servers down only briefly refuses.
	r := newRecorder()
	fresh := newTokenNode(t, "d", "n4", t0, r, ms)
	fresh.Receive(t0, "n2", Message{Type: MsgCommit, Plan: &p})
	fresh.MembersChanged(now.Add(-10*time.Second), left)
	if got := fresh.checkSuccessor(now, "n1", rec); !strings.Contains(got, "has not seen server") {
		t.Errorf("a spare that saw the lost servers down for 10 s: %q", got)
	}
	// And a recovery from a node that is no survivor is refused.
	if got := fresh.successorVoter("n5", rec); !strings.Contains(got, "not a surviving server") {
		t.Errorf("a recovery from a spare: %q", got)
	}
}
