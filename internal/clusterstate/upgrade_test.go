package clusterstate

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// rolling is an upgrade to 1.6.3 under way in its server stage.
func rolling() NomadUpgrade {
	return NomadUpgrade{Version: "1.6.3", Stage: UpgradeServers, Batch: 1, DrainDeadline: 5 * time.Minute, NodeTimeout: 10 * time.Minute, StartedAt: at}
}

func TestNomadUpgradeValidate(t *testing.T) {
	withTurn := rolling()
	withTurn.Turn, withTurn.Step, withTurn.TurnAt = []string{idA, idB}, TurnInstall, at
	failed := rolling().Failed("node a did not come back", at)
	tests := []struct {
		name   string
		change func(u *NomadUpgrade)
		want   string // "" when valid
	}{
		{"under way", func(*NomadUpgrade) {}, ""},
		{"with a turn", func(u *NomadUpgrade) { *u = withTurn }, ""},
		{"failed", func(u *NomadUpgrade) { *u = failed }, ""},
		{"none", func(u *NomadUpgrade) { *u = NomadUpgrade{} }, ""},
		{"no version", func(u *NomadUpgrade) { u.Version = "" }, "not a version"},
		{"v prefix", func(u *NomadUpgrade) { u.Version = "v1.6.3" }, "not a version"},
		{"words", func(u *NomadUpgrade) { u.Version = "latest" }, "not a version"},
		{"stage", func(u *NomadUpgrade) { u.Stage = "paused" }, "stage"},
		{"batch 0", func(u *NomadUpgrade) { u.Batch = 0 }, "batch"},
		{"batch too big", func(u *NomadUpgrade) { u.Batch = MaxUpgradeBatch + 1 }, "batch"},
		{"negative deadline", func(u *NomadUpgrade) { u.DrainDeadline = -1 }, "negative"},
		{"no node timeout", func(u *NomadUpgrade) { u.NodeTimeout = 0 }, "node timeout"},
		{"turn unsorted", func(u *NomadUpgrade) { *u = withTurn; u.Turn = []string{idB, idA} }, "ID order"},
		{"turn repeats", func(u *NomadUpgrade) { *u = withTurn; u.Turn = []string{idA, idA} }, "ID order"},
		{"turn not a UUID", func(u *NomadUpgrade) { *u = withTurn; u.Turn = []string{"node-a"} }, "canonical UUID"},
		{"turn too long", func(u *NomadUpgrade) {
			*u = withTurn
			u.Turn = nil
			for i := range MaxUpgradeBatch + 1 {
				u.Turn = append(u.Turn, strings.Replace(idA, "1111", string(rune('a'+i))+"111", 1))
			}
		}, "exceeds"},
		{"turn without step", func(u *NomadUpgrade) { *u = withTurn; u.Step = "" }, "drain or install"},
		{"step without turn", func(u *NomadUpgrade) { u.Step = TurnDrain }, "without a turn"},
		{"turn when done", func(u *NomadUpgrade) { *u = withTurn; u.Stage = UpgradeDone }, "over has a turn"},
		{"failed without why", func(u *NomadUpgrade) { *u = failed; u.Failure = "" }, "says why"},
		{"why without failing", func(u *NomadUpgrade) { u.Failure = "no" }, "says why"},
		{"why not printable", func(u *NomadUpgrade) { *u = failed; u.Failure = "a\x1b[2Jb" }, "printable"},
		{"no start", func(u *NomadUpgrade) { u.StartedAt = time.Time{} }, "start time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := rolling()
			tt.change(&u)
			err := u.validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNomadUpgradeFailedIsPrintable(t *testing.T) {
	u := rolling().Failed("a\nb\x00"+strings.Repeat("é", 400), at)
	if err := u.validate(); err != nil {
		t.Fatal(err)
	}
	if len(u.Failure) > maxFailure || !strings.HasPrefix(u.Failure, "a?b?") || !strings.HasSuffix(u.Failure, "...") {
		t.Fatalf("failure kept as %q", u.Failure)
	}
	if u.Stage != UpgradeFailed || u.Active() || !u.FinishedAt.Equal(at) {
		t.Fatalf("failed upgrade %+v", u)
	}
}

func TestStartNomadUpgrade(t *testing.T) {
	s := State{Cluster: cluster, Version: 4}
	s1, changed, err := s.StartNomadUpgrade(rolling())
	if err != nil || !changed || s1.Version != 5 || s1.NomadUpgrade.Version != "1.6.3" {
		t.Fatalf("start: %v %v %+v", changed, err, s1)
	}
	// The same roll again changes nothing: a retried command is harmless.
	if s2, changed, err := s1.StartNomadUpgrade(rolling()); err != nil || changed || s2.Version != 5 {
		t.Fatalf("same roll again: %v %v %d", changed, err, s2.Version)
	}
	other := rolling()
	other.Version = "1.6.4"
	if _, _, err := s1.StartNomadUpgrade(other); err == nil || !strings.Contains(err.Error(), "under way") {
		t.Fatalf("another version while one rolls: %v", err)
	}
	// Once over, another roll starts.
	done := s1.NomadUpgrade
	done.Stage, done.FinishedAt = UpgradeDone, at
	s3, changed, err := s1.WithNomadUpgrade(done)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	if s4, changed, err := s3.StartNomadUpgrade(other); err != nil || !changed || s4.NomadUpgrade.Version != "1.6.4" || s4.Version != s3.Version+1 {
		t.Fatalf("after the last one: %v %v %+v", changed, err, s4.NomadUpgrade)
	}
	bad := rolling()
	bad.Turn, bad.Step = []string{idA}, TurnInstall
	if _, _, err := s3.StartNomadUpgrade(bad); err == nil {
		t.Fatal("a roll that starts mid-turn was taken")
	}
}

func TestNomadUpgradeRoundTrip(t *testing.T) {
	u := rolling()
	u.Turn, u.Step, u.TurnAt = []string{idA}, TurnDrain, at.In(time.FixedZone("", 3600))
	s, _, err := State{Cluster: cluster}.WithNomadUpgrade(u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseState(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.NomadUpgrade.Same(u) || !back.NomadUpgrade.InTurn(idA) || back.NomadUpgrade.InTurn(idB) {
		t.Fatalf("round trip: %+v", back.NomadUpgrade)
	}
	// Recording it again is no change.
	if _, changed, _ := back.WithNomadUpgrade(u); changed {
		t.Fatal("the same record counted as a change")
	}
	// A state without one says nothing of it.
	b, _ = json.Marshal(State{Cluster: cluster, Version: 1})
	if strings.Contains(string(b), "nomad_upgrade") {
		t.Fatalf("an empty record is written: %s", b)
	}
}
