package gossip

import (
	"crypto/ed25519"
	"sync"
	"time"
)

// A signed message is accepted once, and only within ReplayWindow of the
// time its sender wrote into it: a copy recorded off the network and sent
// again, by a member or anyone who can reach the gossip port, is dropped.
// Each node remembers, per sender, the signature of every signed message
// it accepted within the window; the signature covers the send time, so
// two sends of the same payload are different messages.
// Broadcast copies that relays pass on are dropped the same way, silently.

// ReplayWindow is how far a signed message's send time may be from this
// node's clock, either way. Machines of one cluster must keep their clocks
// within it of each other (NTP does); messages from a machine whose clock
// is further off are dropped and logged.
const ReplayWindow = 5 * time.Minute

// maxRecentPerSender bounds what is remembered of one sender (about
// 50 KiB), so that members who flood cost little memory each. A sender that
// sends more within ReplayWindow (an agent sends a node a few a minute) has
// its record started over: that never drops a message, and only that
// sender's own messages can then be taken twice.
const maxRecentPerSender = 512

// Verdicts of recentSigs.check.
const (
	msgFresh     = iota // not seen before, within the window: deliver
	msgDuplicate        // seen before within the window
	msgStale            // sent outside the window
)

// recentSigs remembers the signed messages accepted within ReplayWindow.
type recentSigs struct {
	mu       sync.Mutex
	bySender map[string]map[signature]int64 // sender -> signature -> send time (ms)
	swept    int64                          // when expired records were last removed (ms)
}

// signature is a signed envelope's Ed25519 signature.
type signature [ed25519.SignatureSize]byte

// check decides about e, a signed envelope whose signature is verified,
// received at now, and remembers it when it is fresh.
func (r *recentSigs) check(e envelope, now time.Time) int {
	window := ReplayWindow.Milliseconds()
	ms := now.UnixMilli()
	if e.sent < ms-window || e.sent > ms+window {
		return msgStale
	}
	key := signature(e.sig)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bySender == nil {
		r.bySender = map[string]map[signature]int64{}
	}
	if ms-r.swept > window {
		r.sweep(ms - window)
		r.swept = ms
	}
	seen := r.bySender[e.from]
	if _, ok := seen[key]; ok {
		return msgDuplicate
	}
	if seen == nil || len(seen) >= maxRecentPerSender {
		seen = make(map[signature]int64)
		r.bySender[e.from] = seen
	}
	seen[key] = e.sent
	return msgFresh
}

// sweep forgets the messages sent before oldest, and the senders with
// none left. r.mu is held.
func (r *recentSigs) sweep(oldest int64) {
	for from, seen := range r.bySender {
		for k, sent := range seen {
			if sent < oldest {
				delete(seen, k)
			}
		}
		if len(seen) == 0 {
			delete(r.bySender, from)
		}
	}
}
