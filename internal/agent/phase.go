package agent

import "fmt"

// Phase is where a node is in its bootstrap. Phases only move forward,
// except into and out of PhaseDegraded.
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
	return fmt.Errorf("agent: unknown phase %q", b)
}
