package gossip

import (
	"sync"

	"github.com/hashicorp/memberlist"
)

// maxQueuedBroadcasts bounds the broadcast queue; when nodes are
// unreachable memberlist never drains it, and the oldest messages go first.
const maxQueuedBroadcasts = 1024

// maxBroadcastEnvelope is the largest broadcast envelope, chosen to fit one
// UDP packet on any usual network.
const maxBroadcastEnvelope = 1200

// broadcastRetransmitFactor multiplies memberlist's RetransmitMult for user
// broadcasts. Every node that receives a broadcast sends it on
// L = RetransmitMult * ceil(log10(N+1)) times to random nodes, so a node
// misses it with a probability of about e^-L. memberlist's own L (4 below
// 9 nodes, 8 below 99) would leave about 2% of nodes without a broadcast in
// a cluster of 5 to 8; twice that is about 0.03%, at the cost of twice the
// packets. Delivery stays best effort: state that must arrive should also
// travel in the push/pull state (Handler.LocalState).
const broadcastRetransmitFactor = 2

// seenWindow is how many broadcast IDs a node remembers to drop copies.
// A broadcast lives for a few gossip rounds, so this is many broadcasts'
// worth of margin.
const seenWindow = 4096

// userBroadcast is one message in the TransmitLimitedQueue. Every
// broadcast stands on its own: none replaces another.
type userBroadcast struct{ msg []byte }

var (
	_ memberlist.Broadcast       = userBroadcast{}
	_ memberlist.UniqueBroadcast = userBroadcast{}
)

// Invalidates returns false: broadcasts never replace each other.
func (b userBroadcast) Invalidates(memberlist.Broadcast) bool { return false }

// Message returns the envelope.
func (b userBroadcast) Message() []byte { return b.msg }

// Finished does nothing.
func (b userBroadcast) Finished() {}

// UniqueBroadcast marks the message as unique, so the queue does not
// compare it with the others.
func (b userBroadcast) UniqueBroadcast() {}

// seenSet remembers the last seenWindow broadcast IDs.
type seenSet struct {
	mu   sync.Mutex
	ring [seenWindow]uint64
	next int
	full bool
	ids  map[uint64]struct{}
}

// add records id and reports whether it is new.
func (s *seenSet) add(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = make(map[uint64]struct{}, seenWindow)
	}
	if _, ok := s.ids[id]; ok {
		return false
	}
	if s.full {
		delete(s.ids, s.ring[s.next])
	}
	s.ring[s.next] = id
	s.ids[id] = struct{}{}
	s.next++
	if s.next == seenWindow {
		s.next, s.full = 0, true
	}
	return true
}
