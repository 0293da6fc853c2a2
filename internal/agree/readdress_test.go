package agree

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// readdressCluster is three servers and a client that committed the
// plan it returns, each seeing the members given.
type readdressCluster struct {
	nodes map[string]*Node
	recs  map[string]*recorder
}

func newReaddressCluster(t *testing.T, now time.Time, p plan.Plan, members []gossip.Member) readdressCluster {
	t.Helper()
	c := readdressCluster{nodes: map[string]*Node{}, recs: map[string]*recorder{}}
	for _, m := range members {
		r := newRecorder()
		n := New(Config{Name: m.Name, ID: m.Meta.ID, Region: "global", Expect: 3, MinMembers: 3, Settle: time.Second,
			ServerReplaceAfter: time.Minute, CAPort: 4651}, Saved{}, now, r, r, r, r)
		n.Receive(now, "n1", Message{Type: MsgCommit, Plan: &p})
		n.MembersChanged(now, members)
		c.nodes[m.Name], c.recs[m.Name] = n, r
	}
	return c
}

// deliver hands every message sent to its recipient, except to the nodes
// named in lost, until none is left.
func (c readdressCluster) deliver(now time.Time, lost ...string) {
	for range 20 {
		sent := false
		for from, r := range c.recs {
			for to, msgs := range r.sent {
				delete(r.sent, to)
				n, ok := c.nodes[to]
				if !ok || slices.Contains(lost, to) {
					continue
				}
				for _, m := range msgs {
					sent = true
					n.Receive(now, from, m)
				}
			}
		}
		if !sent {
			return
		}
	}
}

func readdressMembers(p plan.Plan) []gossip.Member {
	ms := alive(p, "n1", "n2", "n3")
	for i := range ms {
		ms[i].Meta.Identity = []byte(strings.Repeat(ms[i].Meta.ID, 32))
	}
	return append(ms, gossip.Member{Name: "n4", Address: "127.0.0.5", State: gossip.StateAlive,
		Meta: gossip.Meta{ID: "d", Role: "client", Region: "global", Expect: 3}})
}

func keyedPlan() plan.Plan {
	p := *validPlan()
	for i := range p.Servers {
		p.Servers[i].Key = keyOf(p.Servers[i].ID)
	}
	return p
}

// A server that gossip lists alive at another address, with the ID and
// identity key the plan records, is recorded there by a successor that
// its servers agree on and every node adopts; nothing else changes.
func TestReaddressIsAgreed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := keyedPlan()
	ms := readdressMembers(p)
	ms[1].Address = "127.0.0.33" // n2 came back elsewhere
	c := newReaddressCluster(t, t0, p, ms)
	now := t0.Add(time.Second)
	for _, n := range c.nodes {
		n.Tick(now)
	}
	if !c.nodes["n1"].Proposing() {
		t.Fatal("n1, the first server, proposed nothing")
	}
	c.deliver(now)
	for name, n := range c.nodes {
		got := n.Plan()
		if got == nil || got.Epoch != 2 {
			t.Fatalf("%s holds %+v; want epoch 2", name, got)
		}
		if got.Servers[1].Address != "127.0.0.33" || len(plan.Moved(p, *got)) != 1 || plan.CheckSuccessor(p, *got) != nil {
			t.Errorf("%s holds servers %+v; want n2 at 127.0.0.33 and nothing else changed", name, got.Servers)
		}
	}
	// Once recorded, nothing more is proposed.
	for _, n := range c.nodes {
		n.Tick(now.Add(time.Minute))
		if n.Proposing() {
			t.Errorf("%s proposes again after the address was recorded", n.cfg.Name)
		}
	}
}

// The moved server must promise the successor itself: the others, though
// a majority, do not record it at an address without it.
func TestReaddressNeedsTheMovedServer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := keyedPlan()
	ms := readdressMembers(p)
	ms[2].Address = "127.0.0.44"
	c := newReaddressCluster(t, t0, p, ms)
	now := t0.Add(time.Second)
	c.nodes["n1"].Tick(now)
	c.deliver(now, "n3")
	c.nodes["n1"].Tick(now.Add(time.Minute)) // the proposal times out
	for name, n := range c.nodes {
		if got := n.Plan(); got == nil || got.Epoch != 1 {
			t.Errorf("%s holds %+v; want epoch 1 still", name, got)
		}
	}
	if w := c.recs["n1"].warns["readdress"]; !strings.Contains(w, "server n3 at 127.0.0.44") || !strings.Contains(w, "n3: no answer in time") {
		t.Errorf("n1's warning: %q", w)
	}
	// Once gossip lists n3 where the plan has it, the warning goes.
	c.nodes["n1"].MembersChanged(now.Add(time.Minute), readdressMembers(p))
	c.nodes["n1"].Tick(now.Add(2 * time.Minute))
	if w, ok := c.recs["n1"].warns["readdress"]; ok {
		t.Errorf("n1 still warns: %q", w)
	}
}

// No successor records a server at an address that does not prove to be
// it: a member that announces the server's name and ID with another
// identity key is not taken as the server moved, and a voter that sees the
// server at another address than proposed refuses.
func TestReaddressRefused(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := keyedPlan()

	ms := readdressMembers(p)
	ms[1].Address = "127.0.0.66"
	ms[1].Meta.Identity = []byte(strings.Repeat("x", 32)) // not n2's key
	c := newReaddressCluster(t, t0, p, ms)
	c.nodes["n1"].Tick(t0.Add(time.Second))
	if c.nodes["n1"].Proposing() {
		t.Error("n1 proposed to record n2 where a member with another identity key claims it")
	}

	tests := []struct {
		name    string
		address string // where the voter sees n2
		want    string
	}{
		{name: "seen at the old address", address: "127.0.0.3", want: "n3 does not see server n2 alive at 127.0.0.77"},
		{name: "seen at a third address", address: "127.0.0.99", want: "n3 does not see server n2 alive at 127.0.0.77"},
		{name: "seen where proposed", address: "127.0.0.77", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := readdressMembers(p)
			ms[1].Address = tt.address
			c := newReaddressCluster(t, t0, p, ms)
			next, err := plan.Readdress(p, map[string]string{"b": "127.0.0.77"})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.nodes["n3"].checkSuccessor(t0, "n1", next); got != tt.want {
				t.Errorf("checkSuccessor = %q, want %q", got, tt.want)
			}
		})
	}
}

// A server that is down does not hold up recording another one's new
// address: the majority that agrees is the coordinator and the moved server.
func TestReaddressWithAServerDown(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := keyedPlan()
	ms := readdressMembers(p)
	ms[1].Address = "127.0.0.33"
	ms = append(ms[:2], ms[3:]...) // n3 is down
	c := newReaddressCluster(t, t0, p, ms)
	now := t0.Add(time.Second)
	c.nodes["n1"].Tick(now)
	c.deliver(now)
	for name, n := range c.nodes {
		if got := n.Plan(); got == nil || got.Epoch != 2 || got.Servers[1].Address != "127.0.0.33" {
			t.Errorf("%s holds %+v; want epoch 2 with n2 at 127.0.0.33", name, got)
		}
	}
}
