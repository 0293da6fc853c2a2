package status

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPhaseNames(t *testing.T) {
	want := "fingerprinting joining electing committed certified configured starting running degraded stopped"
	var got []string
	for p := PhaseFingerprinting; p <= PhaseStopped; p++ {
		got = append(got, p.String())
		var back Phase
		if err := back.UnmarshalText([]byte(p.String())); err != nil || back != p {
			t.Errorf("round trip of %s: %v, %v", p, back, err)
		}
	}
	if strings.Join(got, " ") != want {
		t.Errorf("phases %q, want %q", got, want)
	}
	if Phase(99).String() != "phase(99)" {
		t.Errorf("unknown phase prints %q", Phase(99).String())
	}
	var p Phase
	if err := p.UnmarshalText([]byte("sleeping")); err == nil {
		t.Errorf("unknown phase name decoded as %v", p)
	}
}

func TestPhaseJSON(t *testing.T) {
	b, err := json.Marshal(Status{Phase: PhaseConfigured})
	if err != nil || !strings.Contains(string(b), `"phase":"configured"`) {
		t.Fatalf("Marshal = %s, %v; want the phase by name", b, err)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil || s.Phase != PhaseConfigured {
		t.Errorf("Unmarshal = %v, %v; want configured", s.Phase, err)
	}
}

// TestCanMove checks every pair of phases, and phases out of range, against
// a table written out here independently of moves: row is the phase moved
// from, column the phase moved to, in the order of the constants; y allows
// the move.
func TestCanMove(t *testing.T) {
	allowed := map[Phase]string{
		//                  fjeCcgsrdx
		PhaseFingerprinting: ".y.y......",
		PhaseJoining:        ".yyy......",
		PhaseElecting:       "..yy......",
		PhaseCommitted:      "...yy.....",
		PhaseCertified:      "...yyy....",
		PhaseConfigured:     "...y.yy...",
		PhaseStarting:       "...y..yy..",
		PhaseRunning:        "...y..yy..",
		PhaseDegraded:       "..........",
		PhaseStopped:        "..........",
	}
	all := []Phase{-1}
	for p := PhaseFingerprinting; p <= PhaseStopped; p++ {
		all = append(all, p)
	}
	all = append(all, PhaseStopped+1)
	for _, from := range all {
		for _, to := range all {
			row, known := allowed[from]
			want := known && to >= 0 && int(to) < len(row) && row[to] == 'y'
			if got := from.CanMove(to); got != want {
				t.Errorf("%v.CanMove(%v) = %v, want %v", from, to, got, want)
			}
		}
	}
	if len(allowed) != int(PhaseStopped)+1 {
		t.Errorf("the table has %d rows, want one per phase", len(allowed))
	}
}
