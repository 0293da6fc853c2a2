package gossip

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// leaveIntentTTL is how long a "leaving" notice counts: a node declared
// dead this long after it announced its leave is taken to have failed.
const leaveIntentTTL = time.Minute

// memberTable is this node's view of every node it has seen.
//
// memberlist calls its EventDelegate synchronously, under its node lock,
// for every change to alive, dead or left and for every meta change, so
// the table never lags behind memberlist. It keeps dead and left nodes,
// which memberlist forgets (without an event) after GossipToTheDeadTime.
//
// memberlist.Node.State is not filled in for event delegates (nor for
// Members), and memberlist's own "left" state is not exported; a node that
// calls Leave therefore broadcasts a leave envelope first, and a node that
// goes away within leaveIntentTTL of that notice is recorded as left.
type memberTable struct {
	mu      sync.Mutex
	members map[string]Member
	leaving map[string]time.Time // name -> when its leave notice arrived
	sorted  []Member             // members sorted by name; nil after a change
	refused func(Meta) bool      // members shown as evicted; nil refuses none
}

func newMemberTable() *memberTable {
	return &memberTable{
		members: make(map[string]Member),
		leaving: make(map[string]time.Time),
	}
}

// memberFromNode converts a memberlist node.
func memberFromNode(n *memberlist.Node, state State) Member {
	m := Member{
		Name:    n.Name,
		Address: n.Addr.String(),
		Port:    int(n.Port),
		State:   state,
	}
	m.Meta, m.MetaErr = DecodeMeta(n.Meta)
	return m
}

// alive records a node that joined or changed.
func (t *memberTable) alive(n *memberlist.Node) {
	m := memberFromNode(n, StateAlive)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.members[m.Name] = m
	t.sorted = nil
	delete(t.leaving, m.Name)
}

// gone records a node that memberlist declared dead or left; self reports
// whether it is this node leaving.
func (t *memberTable) gone(n *memberlist.Node, self bool) {
	m := memberFromNode(n, StateDead)
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.leaving[m.Name]; self || ok && time.Since(at) < leaveIntentTTL {
		m.State = StateLeft
	}
	t.members[m.Name] = m
	t.sorted = nil
}

// markLeaving records a leave notice from name and reports whether that
// changed a member (a dead one becomes left).
func (t *memberTable) markLeaving(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.leaving[name] = now
	for n, at := range t.leaving {
		if now.Sub(at) >= leaveIntentTTL {
			delete(t.leaving, n)
		}
	}
	m, ok := t.members[name]
	if !ok || m.State != StateDead {
		return false
	}
	m.State = StateLeft
	t.members[name] = m
	t.sorted = nil
	return true
}

// get returns the member called name.
func (t *memberTable) get(name string) (Member, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.members[name]
	return t.mark(m), ok
}

// setRefused replaces the test of evicted members.
func (t *memberTable) setRefused(f func(Meta) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refused = f
	t.sorted = nil
}

// mark returns m in state StateEvicted when it is refused.
func (t *memberTable) mark(m Member) Member {
	if t.refused != nil && m.MetaErr == nil && m.Meta.ID != "" && t.refused(m.Meta) {
		m.State = StateEvicted
	}
	return m
}

// list returns every member sorted by name, in a slice of the caller's.
// The agent asks for the list on every tick, so the sorted list is kept
// until the membership changes.
func (t *memberTable) list() []Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sorted == nil {
		t.sorted = make([]Member, 0, len(t.members))
		for _, m := range t.members {
			t.sorted = append(t.sorted, t.mark(m))
		}
		slices.SortFunc(t.sorted, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	}
	return slices.Clone(t.sorted)
}
