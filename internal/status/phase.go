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

// moves lists the phases each phase may move to: the moves the agent makes,
// and no others.
//
//   - Fingerprinting to joining, or to committed: the agent is built, and
//     holds a committed plan when it restarts.
//   - Joining to electing: the node has joined the pool.
//   - Joining or electing to committed: a plan is committed and persisted.
//     A node that restarts with a committed plan, or learns one while it
//     joins, skips the election.
//   - Committed to certified, certified to configured, configured to
//     starting and starting to running, one phase at a time: the pipeline
//     gets the node's certificates, writes Nomad's configuration, starts
//     Nomad and sees it healthy.
//   - Running back to starting: Nomad is no longer healthy.
//   - Any phase after committed back to committed: a successor plan changes
//     the node's role, and its pipeline starts again in the new role.
//   - Every phase from joining to running to itself, to change its reason.
//
// No phase moves into or out of PhaseDegraded, which is shown while a
// degraded cause is set (see Tracker), or PhaseStopped, which only a status
// read without a running agent has.
var moves = map[Phase][]Phase{
	PhaseFingerprinting: {PhaseJoining, PhaseCommitted},
	PhaseJoining:        {PhaseJoining, PhaseElecting, PhaseCommitted},
	PhaseElecting:       {PhaseElecting, PhaseCommitted},
	PhaseCommitted:      {PhaseCommitted, PhaseCertified},
	PhaseCertified:      {PhaseCommitted, PhaseCertified, PhaseConfigured},
	PhaseConfigured:     {PhaseCommitted, PhaseConfigured, PhaseStarting},
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
