package planfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

func testPlan() plan.Plan {
	return plan.Plan{Epoch: 1, Region: "global", Expect: 3, CAHolder: "a", CAPort: 4651,
		CAFingerprint: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Servers: []plan.Server{
			{ID: "a", Name: "n1", Address: "127.0.0.2"}, {ID: "b", Name: "n2", Address: "127.0.0.3"}, {ID: "c", Name: "n3", Address: "127.0.0.4"},
		}}
}

func TestSaveLoadRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.json")
	p1 := testPlan()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	if err := Save(path, "c1", "a", p1, at); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".bak"); !os.IsNotExist(err) {
		t.Errorf("the first save left a backup (%v)", err)
	}
	got, err := Load(path, "c1", "a")
	if err != nil || got == nil || !got.Equal(p1) {
		t.Fatalf("Load = %v, %v; want epoch 1", got, err)
	}
	f, err := Read(path)
	want := &File{Version: 1, ClusterID: "c1", NodeID: "a", CommittedAt: at.UTC(), Plan: p1}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("plan file mode %v (%v), want 0600", fi.Mode(), err)
	}

	first, _ := os.ReadFile(path)
	p2 := p1.Clone()
	p2.Epoch = 2
	if err := Save(path, "c1", "a", p2, at); err != nil {
		t.Fatal(err)
	}
	if bak, _ := os.ReadFile(path + ".bak"); !bytes.Equal(bak, first) {
		t.Errorf("plan.json.bak does not hold the previous file")
	}
	if got, err := Load(path, "c1", "a"); err != nil || got == nil || !got.Equal(p2) {
		t.Errorf("Load after the second save = %v, %v; want epoch 2", got, err)
	}
}

func TestMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing")
	if got, err := Load(path, "c1", "a"); got != nil || err != nil {
		t.Errorf("Load of a missing file: %v, %v; want nil, nil", got, err)
	}
	if got, err := Read(path); got != nil || err != nil {
		t.Errorf("Read of a missing file: %v, %v; want nil, nil", got, err)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "plan.json")
	if err := Save(good, "c1", "a", testPlan(), time.Now()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	truncated := write("truncated.json", b[:len(b)/2])
	version9 := write("version9.json", bytes.Replace(b, []byte(`"version": 1`), []byte(`"version": 9`), 1))
	invalid := write("invalid.json", bytes.Replace(b, []byte(`"expect": 3`), []byte(`"expect": 0`), 1))
	tests := []struct {
		name, path, cluster, node string
		read                      bool // Read fails too, not only Load
		want                      []string
	}{
		{"truncated", truncated, "c1", "a", true, []string{"corrupted", "remove it", "truncated.json.bak"}},
		{"other version", version9, "c1", "a", true, []string{"version 9", "version9.json.bak"}},
		{"invalid plan", invalid, "c1", "a", true, []string{"corrupted", "invalid.json.bak"}},
		{"foreign cluster", good, "c2", "a", false, []string{"belongs to cluster c1", "token is for cluster c2"}},
		{"other node", good, "c1", "b", false, []string{"written by node a", "plan.json.bak"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.path, tt.cluster, tt.node)
			if err == nil {
				t.Fatalf("Load = %v, want an error", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if f, err := Read(tt.path); (err != nil) != tt.read {
				t.Errorf("Read = %v, %v; want an error: %v", f, err, tt.read)
			}
		})
	}
}

// A vote survives a save and a load; a missing file is no vote, and a
// damaged one an error that names the file.
func TestVoteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vote.json")
	if v, err := LoadVote(path); err != nil || v != nil {
		t.Fatalf("LoadVote of a missing file = %v, %v; want nil, nil", v, err)
	}
	p := testPlan()
	want := agree.Vote{Epoch: 1, Promised: agree.Ballot{Round: 3, Node: "n2"}, Accepted: agree.Ballot{Round: 2, Node: "n1"}, Plan: &p}
	if err := SaveVote(path, want); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("vote file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	got, err := LoadVote(path)
	if err != nil || got == nil || got.Promised != want.Promised || got.Accepted != want.Accepted || !got.Plan.Equal(p) {
		t.Fatalf("LoadVote = %+v, %v; want %+v", got, err, want)
	}
	if err := os.WriteFile(path, []byte(`{"epoch":1,"promised":{"n":1,"c":"n1"},"accepted":{"n":2,"c":"n1"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadVote(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadVote of a damaged vote = %v; want an error naming %s", err, path)
	}
}
