package agree

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// recorder is a Transport, Store, CA and Observer that records.
type recorder struct {
	sent  map[string][]Message
	saved []plan.Plan
	votes []Vote
	warns map[string]string
}

func newRecorder() *recorder {
	return &recorder{sent: map[string][]Message{}, warns: map[string]string{}}
}

func (r *recorder) Send(to string, m Message)               { r.sent[to] = append(r.sent[to], m) }
func (r *recorder) Broadcast(Message) error                 { return nil }
func (r *recorder) SavePlan(p plan.Plan) error              { r.saved = append(r.saved, p); return nil }
func (r *recorder) SaveVote(v Vote) error                   { r.votes = append(r.votes, v); return nil }
func (r *recorder) ProposalCA() (string, error)             { return validPlan().CAFingerprint, nil }
func (r *recorder) KeepCA() error                           { return nil }
func (r *recorder) Committed(plan.Plan, *plan.Plan, string) {}
func (r *recorder) Warn(key, msg string)                    { r.warns[key] = msg }
func (r *recorder) ClearWarning(key string)                 { delete(r.warns, key) }
func (r *recorder) Degraded(reason string)                  { r.warns["degraded"] = reason }

func newTestNode(id, name string, now time.Time, r *recorder) *Node {
	return New(Config{Name: name, ID: id, Region: "global", Expect: 3, MinMembers: 3, Settle: time.Second,
		ServerReplaceAfter: time.Minute, CAPort: 4651}, Saved{}, now, r, r, r, r)
}

func alive(p plan.Plan, names ...string) []gossip.Member {
	var out []gossip.Member
	for _, s := range p.Servers {
		for _, n := range names {
			if s.Name == n {
				out = append(out, gossip.Member{Name: s.Name, Address: s.Address, State: gossip.StateAlive,
					Meta: gossip.Meta{ID: s.ID, Region: "global", Expect: 3}})
			}
		}
	}
	return out
}

// A server that does not see the coordinator yet answers its proposal once
// gossip shows it (within ProposalWait), instead of refusing it to a node it
// cannot even reach; one that still does not see it by then refuses, and
// with MaxWaiting proposals waiting already it refuses at once.
func TestProposalWaitsForGossip(t *testing.T) {
	tests := []struct {
		name     string
		seenLate bool
		busy     bool
		want     string
	}{
		{name: "coordinator seen late", seenLate: true, want: MsgPromise},
		{name: "coordinator never seen", seenLate: false, want: MsgNack},
		{name: "too many waiting", seenLate: true, busy: true, want: MsgNack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			r := newRecorder()
			p := *validPlan()
			n := newTestNode("b", "n2", now, r)
			n.MembersChanged(now, alive(p, "n2", "n3"))
			if tt.busy {
				for i := range n.t.MaxWaiting {
					n.waiting = append(n.waiting, waitingProposal{from: fmt.Sprint(i), m: Message{Plan: &p}, deadline: now.Add(time.Hour)})
				}
			}
			b := Ballot{Round: 1, Node: "n1"}
			n.Receive(now, "n1", Message{Type: MsgPrepare, ID: 9, Ballot: b, Plan: &p})
			if !tt.busy && len(r.sent["n1"]) != 0 {
				t.Fatalf("answered at once: %+v", r.sent["n1"])
			}
			later := now.Add(n.t.ProposalWait / 4)
			if tt.seenLate {
				n.MembersChanged(later, alive(p, "n1", "n2", "n3"))
			}
			n.Tick(now.Add(n.t.ProposalWait))
			got := r.sent["n1"]
			if len(got) != 1 || got[0].Type != tt.want || got[0].ID != 9 {
				t.Fatalf("sent to the coordinator %+v; want one %s", got, tt.want)
			}
			if promised := n.vote.Promised == b && len(r.votes) == 1; promised != (tt.want == MsgPromise) {
				t.Errorf("promise persisted = %v after a %s", promised, tt.want)
			}
		})
	}
}

// A node adopts a plan of the epoch it holds never, a higher epoch only as a
// valid successor or a later plan of its lineage, and persists each plan it
// adopts.
func TestAdoptOnlySuccessors(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRecorder()
	n := newTestNode("x", "n9", now, r)
	p1 := *validPlan()
	edit := func(epoch uint64, f func(p *plan.Plan)) plan.Plan {
		p := p1.Clone()
		p.Epoch = epoch
		if epoch > 1 {
			p.Genesis = p1.Hash()
		}
		f(&p)
		return p
	}
	d := plan.Server{ID: "d", Name: "n4", Address: "127.0.0.5"}
	e := plan.Server{ID: "e", Name: "n5", Address: "127.0.0.6"}
	p2 := edit(2, func(p *plan.Plan) { p.Servers[2] = d })
	p4 := edit(4, func(p *plan.Plan) { p.Servers[1], p.Servers[2] = e, d })
	other := strings.Repeat("0", 64)
	tests := []struct {
		name  string
		in    plan.Plan
		want  bool
		holds plan.Plan
	}{
		{"first plan", p1, true, p1},
		{"same plan again", p1, false, p1},
		{"same epoch, other servers", edit(1, func(p *plan.Plan) { p.Servers[2] = d }), false, p1},
		{"epoch skipped, other lineage", edit(3, func(p *plan.Plan) { p.Servers[2] = d; p.Genesis = other }), false, p1},
		{"successor of another lineage", edit(2, func(p *plan.Plan) { p.Servers[2] = d; p.Genesis = other }), false, p1},
		{"majority replaced", edit(2, func(p *plan.Plan) { p.Servers[1], p.Servers[2] = d, e }), false, p1},
		{"other region", edit(2, func(p *plan.Plan) { p.Servers[2] = d; p.Region = "eu" }), false, p1},
		{"valid successor", p2, true, p2},
		{"older epoch", p1, false, p2},
		{"same epoch as the successor, other server", edit(2, func(p *plan.Plan) { p.Servers[2] = e }), false, p2},
		{"two epochs on, same lineage", p4, true, p4},
		{"back to the successor", p2, false, p4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := len(r.saved)
			n.Receive(now, "n1", Message{Type: MsgCommit, Plan: &tt.in})
			if got := len(r.saved) > saved; got != tt.want {
				t.Errorf("persisted = %v, want %v", got, tt.want)
			}
			if n.Plan() == nil || !n.Plan().Equal(tt.holds) || n.PlanHash() != tt.holds.Hash() {
				t.Errorf("holds %v, want servers %v epoch %d", n.Plan(), tt.holds.ServerNames(), tt.holds.Epoch)
			}
		})
	}
}

// A node that joined but holds no plan after FetchAfter asks the alive
// members for theirs, each in turn, at growing intervals; a membership
// change or a proposal that reaches it puts that off, and a node with a
// plan never asks.
func TestFetchWithoutPlan(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := *validPlan()
	members := append(alive(p, "n1", "n2", "n3"), gossip.Member{Name: "n4", State: gossip.StateAlive,
		Meta: gossip.Meta{ID: "d", Role: "client", Region: "global", Expect: 3}})
	fetches := func(r *recorder) map[string]int {
		got := map[string]int{}
		for to, ms := range r.sent {
			for _, m := range ms {
				if m.Type == MsgFetch {
					got[to]++
				}
			}
		}
		return got
	}
	total := func(m map[string]int) (n int) {
		for _, c := range m {
			n += c
		}
		return n
	}

	r := newRecorder()
	n := newTestNode("d", "n4", now, r)
	n.MembersChanged(now, members)
	n.SetJoined()
	d := DefaultTimings()
	n.Tick(now.Add(d.FetchAfter - time.Millisecond))
	if got := fetches(r); len(got) != 0 {
		t.Fatalf("asked %v before FetchAfter", got)
	}
	at := now.Add(d.FetchAfter)
	for i, gap := range []time.Duration{d.FetchEvery, 2 * d.FetchEvery, 4 * d.FetchEvery, 8 * d.FetchEvery, 8 * d.FetchEvery} {
		n.Tick(at)
		n.Tick(at.Add(gap - time.Millisecond)) // too soon for another
		at = at.Add(gap)
		if got := total(fetches(r)); got != i+1 {
			t.Fatalf("after %d rounds %d fetches: %v", i+1, got, fetches(r))
		}
	}
	got := fetches(r)
	if len(got) != 3 || got["n4"] != 0 || got["n1"] < 1 || got["n2"] < 1 || got["n3"] < 1 {
		t.Errorf("fetched %v; want every other member in turn, never itself", got)
	}

	// A membership change puts it off.
	rc := newRecorder()
	joiner := newTestNode("d", "n4", now, rc)
	joiner.MembersChanged(now, members)
	joiner.SetJoined()
	joiner.MembersChanged(now.Add(d.FetchAfter-time.Second), members)
	joiner.Tick(now.Add(d.FetchAfter))
	if got := fetches(rc); len(got) != 0 {
		t.Errorf("asked %v right after membership changed", got)
	}
	joiner.Tick(now.Add(2*d.FetchAfter - time.Second))
	if got := total(fetches(rc)); got != 1 {
		t.Errorf("%d fetches FetchAfter after the change; want 1", got)
	}

	// A proposal that reaches a node puts its fetching off.
	r1 := newRecorder()
	voter := newTestNode("d", "n4", now, r1)
	voter.MembersChanged(now, members)
	voter.SetJoined()
	at = now.Add(d.FetchAfter - time.Second)
	voter.Receive(at, "n1", Message{Type: MsgPrepare, ID: 1, Ballot: Ballot{Round: 1, Node: "n1"}, Plan: &p})
	voter.Tick(now.Add(d.FetchAfter))
	if got := fetches(r1); len(got) != 0 {
		t.Errorf("asked %v right after a proposal reached it", got)
	}
	voter.Tick(at.Add(d.FetchAfter))
	if got := total(fetches(r1)); got != 1 {
		t.Errorf("%d fetches FetchAfter after the proposal; want 1", got)
	}

	r2 := newRecorder()
	withPlan := New(Config{Name: "n4", ID: "d", Region: "global", Expect: 3, MinMembers: 3, Settle: time.Second,
		ServerReplaceAfter: time.Minute, CAPort: 4651}, Saved{Plan: &p}, now, r2, r2, r2, r2)
	withPlan.MembersChanged(now, members)
	withPlan.SetJoined()
	withPlan.Tick(now.Add(time.Minute))
	if got := fetches(r2); len(got) != 0 {
		t.Errorf("a node with a plan asked %v", got)
	}
}
