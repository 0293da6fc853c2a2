package gossip

import (
	"sync"
	"time"
)

// A signed message can arrive before its sender's alive message has told
// this node who the sender is: right after machines start together, a
// coordinator that already sees everyone sends to nodes that do not see
// it yet. Dropping such a message costs the sender a request timeout, so
// the message waits here, briefly and within bounds, until the sender is
// known; then it is checked like any other.
const (
	// pendingTTL is how long a message from an unknown sender waits.
	pendingTTL = 2 * time.Second
	// maxPending and maxPendingBytes bound what waits: strangers' junk
	// cannot grow the node's memory past them.
	maxPending      = 64
	maxPendingBytes = 1 << 20
)

// pendingMsg is one waiting message.
type pendingMsg struct {
	from string
	b    []byte
	at   time.Time
}

// pending holds the messages whose sender is not a known member yet.
type pending struct {
	mu    sync.Mutex
	msgs  []pendingMsg
	bytes int
}

// park keeps a copy of b, from the unknown sender from, and reports
// whether it did: not when the bounds are reached.
func (p *pending) park(from string, b []byte, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireLocked(now, nil)
	if len(p.msgs) >= maxPending || p.bytes+len(b) > maxPendingBytes {
		return false
	}
	p.msgs = append(p.msgs, pendingMsg{from: from, b: append([]byte(nil), b...), at: now})
	p.bytes += len(b)
	return true
}

// take removes and returns the messages whose sender known reports as
// known now; expired reports those that waited pendingTTL in vain.
func (p *pending) take(now time.Time, known func(string) bool, expired func(pendingMsg)) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireLocked(now, expired)
	var ready [][]byte
	kept := p.msgs[:0]
	for _, m := range p.msgs {
		if known(m.from) {
			ready = append(ready, m.b)
			p.bytes -= len(m.b)
		} else {
			kept = append(kept, m)
		}
	}
	clear(p.msgs[len(kept):])
	p.msgs = kept
	return ready
}

// expireLocked drops the messages that waited pendingTTL, reporting each
// to expired when it is not nil.
func (p *pending) expireLocked(now time.Time, expired func(pendingMsg)) {
	kept := p.msgs[:0]
	for _, m := range p.msgs {
		if now.Sub(m.at) < pendingTTL {
			kept = append(kept, m)
			continue
		}
		p.bytes -= len(m.b)
		if expired != nil {
			expired(m)
		}
	}
	clear(p.msgs[len(kept):])
	p.msgs = kept
}

// waiting reports whether any message waits.
func (p *pending) waiting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs) > 0
}
