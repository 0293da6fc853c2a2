package status

import "testing"

func TestTracker(t *testing.T) {
	// step is one call on the tracker and what it must answer.
	type step struct {
		move    Phase  // with reason; unless set or clear is set
		reason  string // of the move or of the degraded cause
		set     string // SetDegraded(set, reason)
		clear   string // ClearDegraded(clear)
		moved   bool   // what Move returns
		phase   Phase  // what Phase returns afterwards
		view    Phase  // what View returns afterwards
		viewWhy string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "forward to running", steps: []step{
			{move: PhaseJoining, reason: "contacting 10.0.0.1", moved: true, phase: PhaseJoining, view: PhaseJoining, viewWhy: "contacting 10.0.0.1"},
			{move: PhaseElecting, reason: "waiting for 3 nodes", moved: true, phase: PhaseElecting, view: PhaseElecting, viewWhy: "waiting for 3 nodes"},
			{move: PhaseElecting, reason: "waiting for 2 nodes", moved: true, phase: PhaseElecting, view: PhaseElecting, viewWhy: "waiting for 2 nodes"},
			{move: PhaseCommitted, moved: true, phase: PhaseCommitted, view: PhaseCommitted},
			{move: PhaseCertified, moved: true, phase: PhaseCertified, view: PhaseCertified},
			{move: PhaseConfigured, moved: true, phase: PhaseConfigured, view: PhaseConfigured},
			{move: PhaseStarting, moved: true, phase: PhaseStarting, view: PhaseStarting},
			{move: PhaseRunning, moved: true, phase: PhaseRunning, view: PhaseRunning},
		}},
		{name: "a restart with a committed plan skips the election", steps: []step{
			{move: PhaseJoining, moved: true, phase: PhaseJoining, view: PhaseJoining},
			{move: PhaseCommitted, moved: true, phase: PhaseCommitted, view: PhaseCommitted},
		}},
		{name: "backward moves are refused and change nothing", steps: []step{
			{move: PhaseConfigured, reason: "config written", moved: true, phase: PhaseConfigured, view: PhaseConfigured, viewWhy: "config written"},
			{move: PhaseElecting, reason: "no", moved: false, phase: PhaseConfigured, view: PhaseConfigured, viewWhy: "config written"},
			{move: PhaseFingerprinting, reason: "no", moved: false, phase: PhaseConfigured, view: PhaseConfigured, viewWhy: "config written"},
			{move: PhaseCertified, reason: "no", moved: false, phase: PhaseConfigured, view: PhaseConfigured, viewWhy: "config written"},
		}},
		{name: "degraded and stopped are not moved into", steps: []step{
			{move: PhaseDegraded, reason: "no", moved: false, phase: PhaseFingerprinting, view: PhaseFingerprinting},
			{move: PhaseStopped, reason: "no", moved: false, phase: PhaseFingerprinting, view: PhaseFingerprinting},
			{move: Phase(42), reason: "no", moved: false, phase: PhaseFingerprinting, view: PhaseFingerprinting},
		}},
		{name: "running goes back to starting, not further", steps: []step{
			{move: PhaseRunning, moved: true, phase: PhaseRunning, view: PhaseRunning},
			{move: PhaseStarting, reason: "Nomad is not healthy", moved: true, phase: PhaseStarting, view: PhaseStarting, viewWhy: "Nomad is not healthy"},
			{move: PhaseConfigured, reason: "no", moved: false, phase: PhaseStarting, view: PhaseStarting, viewWhy: "Nomad is not healthy"},
			{move: PhaseRunning, moved: true, phase: PhaseRunning, view: PhaseRunning},
		}},
		{name: "a role change goes back to committed", steps: []step{
			{move: PhaseRunning, moved: true, phase: PhaseRunning, view: PhaseRunning},
			{move: PhaseCommitted, reason: "now a server", moved: true, phase: PhaseCommitted, view: PhaseCommitted, viewWhy: "now a server"},
			{move: PhaseElecting, reason: "no", moved: false, phase: PhaseCommitted, view: PhaseCommitted, viewWhy: "now a server"},
			{move: PhaseCertified, moved: true, phase: PhaseCertified, view: PhaseCertified},
		}},
		{name: "degraded while a cause is set, the first by key", steps: []step{
			{move: PhaseRunning, moved: true, phase: PhaseRunning, view: PhaseRunning},
			{set: "renew", reason: "renewal failed", phase: PhaseRunning, view: PhaseDegraded, viewWhy: "renewal failed"},
			{set: "ca", reason: "CA unreachable", phase: PhaseRunning, view: PhaseDegraded, viewWhy: "CA unreachable"},
			{set: "ca", reason: "CA refused", phase: PhaseRunning, view: PhaseDegraded, viewWhy: "CA refused"},
			{move: PhaseStarting, reason: "Nomad is not healthy", moved: true, phase: PhaseStarting, view: PhaseDegraded, viewWhy: "CA refused"},
			{clear: "ca", phase: PhaseStarting, view: PhaseDegraded, viewWhy: "renewal failed"},
			{clear: "nothing", phase: PhaseStarting, view: PhaseDegraded, viewWhy: "renewal failed"},
			{clear: "renew", phase: PhaseStarting, view: PhaseStarting, viewWhy: "Nomad is not healthy"},
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
					tr.SetDegraded(s.set, s.reason)
				case s.clear != "":
					tr.ClearDegraded(s.clear)
				default:
					if got := tr.Move(s.move, s.reason); got != s.moved {
						t.Errorf("step %d: Move(%v, %q) = %v, want %v", i, s.move, s.reason, got, s.moved)
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
