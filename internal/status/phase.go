package status

import (
	"fmt"
	"slices"
)

// Phase is where a node is in its bootstrap. CanMove says which moves
// between phases are allowed.
type Phase int

// Phases, in order.
const (
	PhaseFingerprinting Phase = iota // collecting facts about this machine
	PhaseJoining                     // contacting seeds
	PhaseElecting                    // waiting for, or taking part in, the election
	PhaseCommitted                   // the plan is committed and persisted
	PhaseCertified                   // this node holds its certificate
	PhaseConfigured                  // Nomad's configuration is written
	PhaseStarting                    // Nomad is starting
	PhaseRunning                     // Nomad runs in its role
	PhaseDegraded                    // something needs attention; see the reason
	PhaseStopped                     // no agent runs; status read the files it left
)

// moves lists the phases each phase may move to. Phases only move forward
// through fingerprinting, joining, electing, committed, certified,
// configured, starting and running, and may skip phases on the way (a node
// that restarts with a committed plan goes from joining to committed). Two
// moves go back: running to starting, when Nomad is no longer healthy, and
// any phase after committed back to committed, when a successor plan
// changes the node's role. Staying in a phase is allowed, to change its
// reason. No phase moves into or out of PhaseDegraded, which is shown while
// a degraded cause is set (see Tracker), or PhaseStopped, which only a
// status read without a running agent has.
var moves = map[Phase][]Phase{
	PhaseFingerprinting: {PhaseFingerprinting, PhaseJoining, PhaseElecting, PhaseCommitted, PhaseCertified, PhaseConfigured, PhaseStarting, PhaseRunning},
	PhaseJoining:        {PhaseJoining, PhaseElecting, PhaseCommitted, PhaseCertified, PhaseConfigured, PhaseStarting, PhaseRunning},
	PhaseElecting:       {PhaseElecting, PhaseCommitted, PhaseCertified, PhaseConfigured, PhaseStarting, PhaseRunning},
	PhaseCommitted:      {PhaseCommitted, PhaseCertified, PhaseConfigured, PhaseStarting, PhaseRunning},
	PhaseCertified:      {PhaseCommitted, PhaseCertified, PhaseConfigured, PhaseStarting, PhaseRunning},
	PhaseConfigured:     {PhaseCommitted, PhaseConfigured, PhaseStarting, PhaseRunning},
	PhaseStarting:       {PhaseCommitted, PhaseStarting, PhaseRunning},
	PhaseRunning:        {PhaseCommitted, PhaseStarting, PhaseRunning},
}

// CanMove reports whether a node in phase p may move to phase to.
func (p Phase) CanMove(to Phase) bool {
	return slices.Contains(moves[p], to)
}

var phaseNames = [...]string{
	PhaseFingerprinting: "fingerprinting",
	PhaseJoining:        "joining",
	PhaseElecting:       "electing",
	PhaseCommitted:      "committed",
	PhaseCertified:      "certified",
	PhaseConfigured:     "configured",
	PhaseStarting:       "starting",
	PhaseRunning:        "running",
	PhaseDegraded:       "degraded",
	PhaseStopped:        "stopped",
}

// String returns the phase's name as shown by status.
func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return fmt.Sprintf("phase(%d)", int(p))
	}
	return phaseNames[p]
}

// MarshalText encodes the phase as its name.
func (p Phase) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText decodes a phase name.
func (p *Phase) UnmarshalText(b []byte) error {
	for i, n := range phaseNames {
		if n == string(b) {
			*p = Phase(i)
			return nil
		}
	}
	return fmt.Errorf("status: unknown phase %q", b)
}
