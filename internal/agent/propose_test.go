package agent

import (
	"sync"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
)

// lateMembers is a transport whose membership the test sets: a server that
// gossip has not told about the coordinator yet.
type lateMembers struct {
	sentTo
	mu      sync.Mutex
	members []gossip.Member
}

func (l *lateMembers) Members() []gossip.Member {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.members
}

func (l *lateMembers) set(m []gossip.Member) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.members = m
}

// A server that does not see the coordinator yet answers its proposal once
// gossip shows it (within proposalWait), instead of refusing it to a node it
// cannot even reach; one that still does not see it by then refuses, and
// with maxWaitingProposals already waiting it refuses at once.
func TestProposalWaitsForGossip(t *testing.T) {
	tests := []struct {
		name     string
		seenLate bool
		busy     bool // maxWaitingProposals wait already
		want     string
	}{
		{name: "coordinator seen late", seenLate: true, want: msgAck},
		{name: "coordinator never seen", seenLate: false, want: msgNack},
		{name: "too many waiting", seenLate: true, busy: true, want: msgNack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			a, _ := escrowNode(t, c)
			a.plan = nil
			p := *validPlan()
			p.Servers[1].ID = a.id
			alive := func(names ...string) []gossip.Member {
				var out []gossip.Member
				for _, s := range p.Servers {
					for _, n := range names {
						if s.Name == n {
							out = append(out, gossip.Member{Name: s.Name, Address: s.Address, State: gossip.StateAlive, Meta: gossip.Meta{ID: s.ID}})
						}
					}
				}
				return out
			}
			tr := &lateMembers{}
			tr.set(alive("n2", "n3"))
			a.tr = tr
			if tt.busy {
				a.waiting.Store(maxWaitingProposals)
			}
			began := time.Now()
			a.handleMessage("n1", message{Type: msgPropose, ID: 9, Plan: &p}.encode())
			if tt.seenLate {
				time.Sleep(3 * proposalRecheck)
				tr.set(alive("n1", "n2", "n3"))
			}
			waitFor(t, 2*proposalWait, "an answer to the coordinator", func() bool { return len(tr.to("n1")) > 0 })
			got := tr.to("n1")
			if len(got) != 1 || got[0].Type != tt.want || got[0].ID != 9 {
				t.Fatalf("sent to the coordinator %+v; want one %s", got, tt.want)
			}
			if tt.want == msgNack && !tt.busy && time.Since(began) < proposalWait {
				t.Errorf("refused after %s, before proposalWait (%s) was over", time.Since(began), proposalWait)
			}
			a.mu.Lock()
			promised := a.promise != nil && a.promise.hash == p.Hash()
			a.mu.Unlock()
			if promised != (tt.want == msgAck) {
				t.Errorf("promise held = %v after a %s", promised, tt.want)
			}
		})
	}
}
