package gossip

import (
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// delegate is the Node's memberlist.Delegate. memberlist calls it from many
// goroutines at once.
type delegate struct{ n *Node }

var _ memberlist.Delegate = delegate{}

// NodeMeta returns the encoded Meta; its size is checked at Start and in
// UpdateMeta, and at most 480 bytes (MetaMaxSize is 512).
func (d delegate) NodeMeta(limit int) []byte {
	b := d.n.metaBytes()
	if len(b) > limit {
		d.n.log.Error("gossip: node meta is larger than memberlist allows; sending none", "size", len(b), "limit", limit)
		return nil
	}
	return b
}

// NotifyMsg receives a user message, over UDP (broadcasts) or TCP (SendTo).
func (d delegate) NotifyMsg(b []byte) {
	d.n.receive(b)
}

// GetBroadcasts hands queued broadcasts to memberlist's gossip.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.n.queue.GetBroadcasts(overhead, limit)
}

// LocalState returns the Handler's state for a push/pull sync.
func (d delegate) LocalState(join bool) []byte {
	return d.n.handler.LocalState(join)
}

// MergeRemoteState gives a peer's state to the Handler.
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	d.n.handler.MergeRemoteState(buf, join)
}

// events is the Node's memberlist.EventDelegate. memberlist calls it while
// holding its node lock, never concurrently: it must not call back into
// memberlist, so it only updates the member table and wakes the goroutine
// that calls Handler.MembersChanged.
type events struct{ n *Node }

var _ memberlist.EventDelegate = events{}

// NotifyJoin records a node that joined (or came back).
func (e events) NotifyJoin(node *memberlist.Node) {
	e.n.members.alive(node)
	e.n.membersChanged()
}

// NotifyLeave records a node that failed or left.
func (e events) NotifyLeave(node *memberlist.Node) {
	e.n.members.gone(node, node.Name == e.n.name && e.n.leaving.Load())
	e.n.membersChanged()
}

// NotifyUpdate records a node's new meta.
func (e events) NotifyUpdate(node *memberlist.Node) {
	e.n.members.alive(node)
	e.n.membersChanged()
}

// conflicts is the Node's memberlist.ConflictDelegate. memberlist calls it
// while holding its node lock when a node announces a name that another
// node at another address already has; memberlist keeps the first one.
type conflicts struct{ n *Node }

var _ memberlist.ConflictDelegate = conflicts{}

// NotifyConflict logs the conflict.
func (c conflicts) NotifyConflict(existing, other *memberlist.Node) {
	if m, ok := c.n.members.get(existing.Name); ok && (m.State == StateDead || m.State == StateLeft) {
		// The same node most likely came back on another address.
		c.n.log.Warn("gossip: a node came back on another address while its old one is remembered as gone; it is accepted once the old entry is forgotten",
			"node", existing.Name, "old", existing.Address(), "new", other.Address())
		return
	}
	c.n.log.Error(fmt.Sprintf("gossip: node name %q is used by two nodes: %s and %s; give each node a unique name",
		existing.Name, existing.Address(), other.Address()))
}

// merges is the Node's memberlist.MergeDelegate. memberlist calls it on
// both sides of a join, before merging the other side's member list; an
// error cancels the merge on that side.
type merges struct{ n *Node }

var _ memberlist.MergeDelegate = merges{}

// NotifyMerge refuses a member list in which another live node has this
// node's name.
func (m merges) NotifyMerge(peers []*memberlist.Node) error {
	return m.n.checkMerge(peers)
}

// alive is the Node's memberlist.AliveDelegate. memberlist calls it before
// it adds or updates a member from an alive message, gossiped or in a
// push/pull sync; an error drops the message.
type alive struct{ n *Node }

var _ memberlist.AliveDelegate = alive{}

// NotifyAlive refuses a member whose name could not be this project's: empty,
// too long, not UTF-8 or holding control characters, which would otherwise
// reach logs, status and Nomad's configuration; and a node the cluster
// evicted (SetRefused), so that it is not taken in again.
func (a alive) NotifyAlive(peer *memberlist.Node) error {
	if peer.Name == "" {
		return errors.New("gossip: refused a member without a name")
	}
	if err := CheckName(peer.Name); err != nil {
		return fmt.Errorf("gossip: refused the member at %s: its name %q: %v", peer.Address(), peer.Name, err)
	}
	if f := a.n.refused.Load(); f != nil && peer.Name != a.n.name {
		if m, err := DecodeMeta(peer.Meta); err == nil && m.ID != "" && (*f)(m) {
			return fmt.Errorf("gossip: refused %s at %s: the cluster evicted it", peer.Name, peer.Address())
		}
	}
	return nil
}
