package agree

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// tokenMember is an alive member; holder says whether it holds the server
// token (its endorsement checks out), and its identity key is its ID
// repeated.
type tokenMember struct {
	id, name, role string
	holder         bool
}

func (tm tokenMember) member() gossip.Member {
	return gossip.Member{Name: tm.name, Address: "127.0.0.1", State: gossip.StateAlive,
		Meta: gossip.Meta{ID: tm.id, Role: tm.role, Region: "global", Expect: 3, CPUCores: 2,
			Identity: bytes.Repeat([]byte(tm.id), 32)}}
}

func keyOf(id string) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(id), 32)) }

// newTokenNode returns a node that counts only the holders among ms as
// eligible, and sees every member of ms alive.
func newTokenNode(t *testing.T, id, name string, now time.Time, r *recorder, ms []tokenMember) *Node {
	t.Helper()
	holders := map[string]bool{}
	var members []gossip.Member
	for _, m := range ms {
		holders[m.id] = m.holder
		members = append(members, m.member())
	}
	n := New(Config{Name: name, ID: id, Region: "global", Expect: 3, MinMembers: 3, Settle: time.Second,
		ServerReplaceAfter: time.Minute, CAPort: 4651, Eligible: func(m gossip.Meta) bool { return holders[m.ID] }},
		Saved{}, now, r, r, r, r)
	n.MembersChanged(now, members)
	return n
}

// A node that holds only a client token is never elected, whatever role it
// asks for; without enough holders of the server token there is no plan,
// and the reason says why.
func TestOnlyServerTokenHoldersAreElected(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		members []tokenMember
		servers []string
		reason  string
	}{
		{"client tokens asking to be servers", []tokenMember{
			{"a", "n1", "auto", true}, {"b", "n2", "auto", true}, {"c", "n3", "auto", true},
			{"d", "n4", "server", false}, {"e", "n5", "server", false},
		}, []string{"n1", "n2", "n3"}, ""},
		{"holders asking to be clients are still preferred to client tokens", []tokenMember{
			{"a", "n1", "server", true}, {"b", "n2", "auto", true}, {"c", "n3", "auto", true},
			{"d", "n4", "server", false},
		}, []string{"n1", "n2", "n3"}, ""},
		{"two holders for three seats", []tokenMember{
			{"a", "n1", "auto", true}, {"b", "n2", "auto", true},
			{"d", "n4", "server", false}, {"e", "n5", "server", false},
		}, nil, "waiting for 3 members holding the server token to be alive, have 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTokenNode(t, "a", "n1", now, newRecorder(), tt.members)
			e := n.elect()
			if tt.reason != "" {
				if !strings.Contains(e.reason, tt.reason) {
					t.Fatalf("reason %q, want %q", e.reason, tt.reason)
				}
				return
			}
			if e.reason != "" {
				t.Fatalf("no plan: %s", e.reason)
			}
			if got := strings.Join(e.plan.ServerNames(), ","); got != strings.Join(tt.servers, ",") {
				t.Errorf("servers %s, want %s", got, strings.Join(tt.servers, ","))
			}
			for _, s := range e.plan.Servers {
				if s.Key != keyOf(s.ID) {
					t.Errorf("server %s recorded with key %q, want its announced key", s.Name, s.Key)
				}
			}
		})
	}
}

// A server refuses a first plan that names a member holding only a client
// token, or records another identity key than a server announces.
func TestProposalNamingANonHolderIsRefused(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	members := []tokenMember{{"a", "n1", "auto", true}, {"b", "n2", "auto", true}, {"c", "n3", "auto", true}, {"d", "n4", "server", false}}
	good := *validPlan()
	for i := range good.Servers {
		good.Servers[i].Key = keyOf(good.Servers[i].ID)
	}
	tests := []struct {
		name string
		edit func(p *plan.Plan)
		want string // reason of the nack; "" for a promise
	}{
		{"holders only", func(*plan.Plan) {}, ""},
		{"a client token in a seat", func(p *plan.Plan) {
			p.Servers[2] = plan.Server{ID: "d", Name: "n4", Address: "127.0.0.1", Key: keyOf("d")}
		},
			"n4 does not hold the server token, so it cannot be a server"},
		{"another identity key", func(p *plan.Plan) { p.Servers[2].Key = keyOf("d") },
			"the proposal records another identity key for n3 than it announces"},
		{"no identity key", func(p *plan.Plan) { p.Servers[1].Key = "" },
			"the proposal records another identity key for n2 than it announces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRecorder()
			n := newTokenNode(t, "b", "n2", now, r, members)
			p := good.Clone()
			tt.edit(&p)
			n.Receive(now, "n1", Message{Type: MsgPrepare, ID: 1, Ballot: Ballot{Round: 1, Node: "n1"}, Plan: &p})
			got := r.sent["n1"]
			if len(got) != 1 {
				t.Fatalf("sent %+v; want one answer", got)
			}
			switch {
			case tt.want == "" && got[0].Type != MsgPromise:
				t.Fatalf("answer %s (%s); want a promise", got[0].Type, got[0].Reason)
			case tt.want != "" && (got[0].Type != MsgNack || got[0].Reason != tt.want):
				t.Fatalf("answer %s %q; want a nack %q", got[0].Type, got[0].Reason, tt.want)
			}
		})
	}
}

// With a server dead for good and only client-token nodes left to take its
// seat, the cluster keeps its surviving servers and says why.
func TestNoServerTokenSpareLeft(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRecorder()
	members := []tokenMember{{"a", "n1", "auto", true}, {"b", "n2", "auto", true}, {"d", "n4", "server", false}, {"e", "n5", "auto", false}}
	n := newTokenNode(t, "a", "n1", now, r, members)
	p := *validPlan()
	n.Receive(now, "n2", Message{Type: MsgCommit, Plan: &p})
	if n.Plan() == nil {
		t.Fatal("the plan was not adopted")
	}
	for i := range 3 {
		n.Tick(now.Add(time.Duration(i) * 45 * time.Second))
	}
	want := "no live node holding the server token is left to take its place"
	if w := r.warns["replace"]; !strings.Contains(w, want) || !strings.Contains(w, "server n3 has been down") {
		t.Fatalf("replace warning %q; want it to say %q", w, want)
	}
	if got := strings.Join(n.Plan().ServerNames(), ","); got != "n1,n2,n3" || n.Proposing() {
		t.Errorf("servers %s, proposing %v; want the plan kept", got, n.Proposing())
	}
}

// With Verify set, a node adopts no committed plan that fails it, from a
// commit or from push/pull state, and says why.
func TestUnverifiedPlansAreNotAdopted(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRecorder()
	n := New(Config{Name: "n9", ID: "x", Region: "global", Expect: 3, MinMembers: 3, Settle: time.Second,
		ServerReplaceAfter: time.Minute, CAPort: 4651, Verify: func(p plan.Plan) error {
			if len(p.Signatures) == 0 {
				return errors.New("plan: not signed")
			}
			return nil
		}}, Saved{}, now, r, r, r, r)
	p := *validPlan()
	n.Receive(now, "n1", Message{Type: MsgCommit, Plan: &p})
	n.MergeRemote(now, &p)
	if n.Plan() != nil || len(r.saved) != 0 {
		t.Fatalf("adopted an unsigned plan: %v", n.Plan())
	}
	if w := r.warns["plan-signatures"]; !strings.Contains(w, "ignoring the plan of epoch 1 from") || !strings.Contains(w, "not signed") {
		t.Errorf("warning %q", w)
	}
	p.Sign("a", make([]byte, 64))
	n.Receive(now, "n1", Message{Type: MsgCommit, Plan: &p})
	if n.Plan() == nil {
		t.Fatal("the signed plan was not adopted")
	}
	if _, ok := r.warns["plan-signatures"]; ok {
		t.Error("the warning stays after a signed plan was adopted")
	}
}

// A server that gossip lists as evicted counts as down for ever: the first
// live server proposes its replacement at once, without waiting for
// ServerReplaceAfter, and a voter promises one at once too.
func TestEvictedServerIsReplacedAtOnce(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := []tokenMember{{"a", "n1", "auto", true}, {"b", "n2", "auto", true}, {"c", "n3", "auto", true}, {"d", "n4", "auto", true}}
	evictedC := func() []gossip.Member {
		var out []gossip.Member
		for _, m := range ms {
			g := m.member()
			if m.id == "c" {
				g.State = gossip.StateEvicted
			}
			out = append(out, g)
		}
		return out
	}
	p := *validPlan()
	for i := range p.Servers {
		p.Servers[i].Key = keyOf(p.Servers[i].ID)
	}

	r := newRecorder()
	n := newTokenNode(t, "a", "n1", now, r, ms)
	n.Receive(now, "n2", Message{Type: MsgCommit, Plan: &p})
	if n.Plan() == nil {
		t.Fatal("the plan was not adopted")
	}
	n.MembersChanged(now.Add(time.Second), evictedC())
	n.Tick(now.Add(2 * time.Second)) // far less than ServerReplaceAfter (a minute)
	if !n.Proposing() {
		t.Fatalf("no replacement proposed for the evicted server; warnings %v", r.warns)
	}
	var proposal *plan.Plan
	for _, m := range r.sent["n2"] {
		if m.Plan != nil {
			proposal = m.Plan
		}
	}
	if proposal == nil || strings.Join(proposal.ServerNames(), ",") != "n1,n2,n4" || proposal.Epoch != 2 {
		t.Fatalf("proposal to n2: %+v; want epoch 2 with n4 in n3's place", proposal)
	}

	// A voter that sees n3 evicted promises at once; one that sees it alive
	// does not.
	for _, tt := range []struct {
		name    string
		members []gossip.Member
		want    string
	}{
		{"sees it evicted", evictedC(), ""},
		{"sees it alive", nil, "has not seen server n3 down"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := newTokenNode(t, "b", "n2", now, newRecorder(), ms)
			v.Receive(now, "n1", Message{Type: MsgCommit, Plan: &p})
			if tt.members != nil {
				v.MembersChanged(now.Add(time.Second), tt.members)
			}
			v.Tick(now.Add(2 * time.Second))
			if got := v.checkSuccessor(now.Add(2*time.Second), "n1", *proposal); !strings.Contains(got, tt.want) || (tt.want == "") != (got == "") {
				t.Errorf("checkSuccessor = %q, want %q", got, tt.want)
			}
		})
	}
}
