package status

import "testing"

// step is one call on a Tracker and what it must answer.
type step struct {
	move    Phase  // with reason; unless set or clear is set
	reason  string // of the move or of the degraded cause
	set     string // SetDegraded(set, reason)
	clear   string // ClearDegraded(clear)
	ok      bool   // what Move, SetDegraded or ClearDegraded returns
	phase   Phase  // what Phase returns afterwards
	view    Phase  // what View returns afterwards
	viewWhy string
}

// forwardTo returns the moves from PhaseFingerprinting, one phase at a time,
// to phase to, each without a reason.
func forwardTo(to Phase) []step {
	var steps []step
	for p := PhaseJoining; p <= to; p++ {
		steps = append(steps, step{move: p, ok: true, phase: p, view: p})
	}
	return steps
}

func TestTracker(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "forward to running", steps: []step{
			{move: PhaseJoining, reason: "contacting 10.0.0.1", ok: true, phase: PhaseJoining, view: PhaseJoining, viewWhy: "contacting 10.0.0.1"},
			{move: PhaseElecting, reason: "waiting for 3 nodes", ok: true, phase: PhaseElecting, view: PhaseElecting, viewWhy: "waiting for 3 nodes"},
			{move: PhaseElecting, reason: "waiting for 2 nodes", ok: true, phase: PhaseElecting, view: PhaseElecting, viewWhy: "waiting for 2 nodes"},
			{move: PhaseCommitted, ok: true, phase: PhaseCommitted, view: PhaseCommitted},
			{move: PhaseCertified, ok: true, phase: PhaseCertified, view: PhaseCertified},
			{move: PhaseConfigured, ok: true, phase: PhaseConfigured, view: PhaseConfigured},
			{move: PhaseStarting, ok: true, phase: PhaseStarting, view: PhaseStarting},
			{move: PhaseRunning, ok: true, phase: PhaseRunning, view: PhaseRunning},
		}},
		{name: "a restart with a committed plan skips the election", steps: []step{
			{move: PhaseJoining, ok: true, phase: PhaseJoining, view: PhaseJoining},
			{move: PhaseCommitted, ok: true, phase: PhaseCommitted, view: PhaseCommitted},
		}},
		{name: "the pipeline skips no phase", steps: append(forwardTo(PhaseCommitted),
			step{move: PhaseConfigured, reason: "no", phase: PhaseCommitted, view: PhaseCommitted},
			step{move: PhaseRunning, reason: "no", phase: PhaseCommitted, view: PhaseCommitted},
			step{move: PhaseCertified, ok: true, phase: PhaseCertified, view: PhaseCertified},
			step{move: PhaseStarting, reason: "no", phase: PhaseCertified, view: PhaseCertified},
		)},
		{name: "backward moves are refused and change nothing", steps: append(forwardTo(PhaseCertified),
			step{move: PhaseConfigured, reason: "config written", ok: true, phase: PhaseConfigured, view: PhaseConfigured, viewWhy: "config written"},
			step{move: PhaseElecting, reason: "no", phase: PhaseConfigured, view: PhaseConfigured, viewWhy: "config written"},
			step{move: PhaseFingerprinting, reason: "no", phase: PhaseConfigured, view: PhaseConfigured, viewWhy: "config written"},
			step{move: PhaseCertified, reason: "no", phase: PhaseConfigured, view: PhaseConfigured, viewWhy: "config written"},
		)},
		{name: "degraded and stopped are not moved into", steps: []step{
			{move: PhaseDegraded, reason: "no", phase: PhaseFingerprinting, view: PhaseFingerprinting},
			{move: PhaseStopped, reason: "no", phase: PhaseFingerprinting, view: PhaseFingerprinting},
			{move: Phase(42), reason: "no", phase: PhaseFingerprinting, view: PhaseFingerprinting},
			{move: PhaseRunning, reason: "no", phase: PhaseFingerprinting, view: PhaseFingerprinting},
		}},
		{name: "running goes back to starting, not further", steps: append(forwardTo(PhaseRunning),
			step{move: PhaseStarting, reason: "Nomad is not healthy", ok: true, phase: PhaseStarting, view: PhaseStarting, viewWhy: "Nomad is not healthy"},
			step{move: PhaseConfigured, reason: "no", phase: PhaseStarting, view: PhaseStarting, viewWhy: "Nomad is not healthy"},
			step{move: PhaseRunning, ok: true, phase: PhaseRunning, view: PhaseRunning},
		)},
		{name: "a role change goes back to committed", steps: append(forwardTo(PhaseRunning),
			step{move: PhaseCommitted, reason: "now a server", ok: true, phase: PhaseCommitted, view: PhaseCommitted, viewWhy: "now a server"},
			step{move: PhaseElecting, reason: "no", phase: PhaseCommitted, view: PhaseCommitted, viewWhy: "now a server"},
			step{move: PhaseCertified, ok: true, phase: PhaseCertified, view: PhaseCertified},
		)},
		{name: "degraded while a cause is set, the first by key", steps: append(forwardTo(PhaseRunning),
			step{set: "renew", reason: "renewal failed", ok: true, phase: PhaseRunning, view: PhaseDegraded, viewWhy: "renewal failed"},
			step{set: "ca", reason: "CA unreachable", ok: true, phase: PhaseRunning, view: PhaseDegraded, viewWhy: "CA unreachable"},
			step{set: "ca", reason: "CA refused", ok: true, phase: PhaseRunning, view: PhaseDegraded, viewWhy: "CA refused"},
			step{set: "ca", reason: "CA refused", phase: PhaseRunning, view: PhaseDegraded, viewWhy: "CA refused"},
			step{move: PhaseStarting, reason: "Nomad is not healthy", ok: true, phase: PhaseStarting, view: PhaseDegraded, viewWhy: "CA refused"},
			step{clear: "ca", ok: true, phase: PhaseStarting, view: PhaseDegraded, viewWhy: "renewal failed"},
			step{clear: "ca", phase: PhaseStarting, view: PhaseDegraded, viewWhy: "renewal failed"},
			step{clear: "nothing", phase: PhaseStarting, view: PhaseDegraded, viewWhy: "renewal failed"},
			step{clear: "renew", ok: true, phase: PhaseStarting, view: PhaseStarting, viewWhy: "Nomad is not healthy"},
		)},
		{name: "a cause set before any move", steps: []step{
			{set: "protocol", reason: "cannot persist the plan", ok: true, phase: PhaseFingerprinting, view: PhaseDegraded, viewWhy: "cannot persist the plan"},
			{move: PhaseJoining, reason: "contacting 10.0.0.1", ok: true, phase: PhaseJoining, view: PhaseDegraded, viewWhy: "cannot persist the plan"},
			{clear: "protocol", ok: true, phase: PhaseJoining, view: PhaseJoining, viewWhy: "contacting 10.0.0.1"},
		}},
		{name: "clearing on a zero tracker", steps: []step{
			{clear: "ca", phase: PhaseFingerprinting, view: PhaseFingerprinting},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr Tracker
			for i, s := range tt.steps {
				switch {
				case s.set != "":
					if got := tr.SetDegraded(s.set, s.reason); got != s.ok {
						t.Errorf("step %d: SetDegraded(%q, %q) = %v, want %v", i, s.set, s.reason, got, s.ok)
					}
				case s.clear != "":
					if got := tr.ClearDegraded(s.clear); got != s.ok {
						t.Errorf("step %d: ClearDegraded(%q) = %v, want %v", i, s.clear, got, s.ok)
					}
				default:
					if got := tr.Move(s.move, s.reason); got != s.ok {
						t.Errorf("step %d: Move(%v, %q) = %v, want %v", i, s.move, s.reason, got, s.ok)
					}
				}
				if got := tr.Phase(); got != s.phase {
					t.Errorf("step %d: Phase() = %v, want %v", i, got, s.phase)
				}
				if view, why := tr.View(); view != s.view || why != s.viewWhy {
					t.Errorf("step %d: View() = %v, %q; want %v, %q", i, view, why, s.view, s.viewWhy)
				}
			}
		})
	}
}
