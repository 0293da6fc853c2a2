package status

import (
	"maps"
	"slices"
)

// Tracker holds a node's phase, the reason it waits in that phase, and the
// causes that make it degraded, each under a key of its own so that one
// cause clears without clearing the others. Its zero value is a node in
// PhaseFingerprinting with no reason and no cause.
//
// A Tracker is not safe for concurrent use: the agent holds it under its
// lock, and writes it through one method of each kind.
type Tracker struct {
	phase    Phase
	reason   string
	degraded map[string]string // cause key → reason
}

// Move moves to phase to with reason, and reports whether it did: a move
// that CanMove forbids changes nothing and returns false. A move to the
// phase the tracker holds changes the reason only.
func (t *Tracker) Move(to Phase, reason string) bool {
	if !t.phase.CanMove(to) {
		return false
	}
	t.phase, t.reason = to, reason
	return true
}

// Phase returns the phase the node has reached, whether or not a degraded
// cause is set.
func (t *Tracker) Phase() Phase { return t.phase }

// SetDegraded sets the degraded cause of key to reason, replacing the
// reason that key had. It reports whether that changed anything: false
// when key had reason already.
func (t *Tracker) SetDegraded(key, reason string) bool {
	if old, ok := t.degraded[key]; ok && old == reason {
		return false
	}
	if t.degraded == nil {
		t.degraded = map[string]string{}
	}
	t.degraded[key] = reason
	return true
}

// ClearDegraded clears the degraded cause of key, and reports whether it
// was set.
func (t *Tracker) ClearDegraded(key string) bool {
	_, ok := t.degraded[key]
	delete(t.degraded, key)
	return ok
}

// View returns the phase and reason status shows: PhaseDegraded with the
// reason of the first cause, by key order, while any cause is set; else
// the phase and its reason.
func (t *Tracker) View() (Phase, string) {
	if len(t.degraded) == 0 {
		return t.phase, t.reason
	}
	first := slices.Min(slices.Collect(maps.Keys(t.degraded)))
	return PhaseDegraded, t.degraded[first]
}
