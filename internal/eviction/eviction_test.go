package eviction

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeNodes is Nomad's node list; calls records what Apply did.
type fakeNodes struct {
	nodes   []Node
	ids     map[string]string // Nomad ID -> meta node ID
	calls   []string
	failOn  string
	listErr error
}

func (f *fakeNodes) List(context.Context) ([]Node, error) { return slices.Clone(f.nodes), f.listErr }

func (f *fakeNodes) NodeID(_ context.Context, id string) (string, error) { return f.ids[id], nil }

func (f *fakeNodes) do(what, id string) error {
	f.calls = append(f.calls, what+" "+id)
	if f.failOn == what {
		return errors.New(what + " failed")
	}
	return nil
}

func (f *fakeNodes) Ineligible(_ context.Context, id string) error { return f.do("ineligible", id) }
func (f *fakeNodes) Drain(_ context.Context, id string) error      { return f.do("drain", id) }
func (f *fakeNodes) Purge(_ context.Context, id string) error      { return f.do("purge", id) }

func TestApply(t *testing.T) {
	evicted := []Evicted{{ID: "id-w1", Name: "w1"}, {ID: "id-w2", Name: "w2"}, {ID: "id-w3", Name: "w3"}, {ID: "id-x"}}
	tests := []struct {
		name      string
		nodes     []Node
		ids       map[string]string
		failOn    string
		want      map[string]string
		wantCalls []string
		wantErr   bool
	}{
		{
			name:      "ready node: ineligible and drained",
			nodes:     []Node{{ID: "n1", Name: "w1", Status: "ready", Eligible: true}, {ID: "n9", Name: "other", Status: "ready", Eligible: true}},
			ids:       map[string]string{"n1": "id-w1", "n9": "id-other"},
			want:      map[string]string{"id-w1": Draining, "id-w2": NotFound, "id-w3": NotFound, "id-x": NotFound},
			wantCalls: []string{"ineligible n1", "drain n1"},
		},
		{
			name:      "already draining: nothing more",
			nodes:     []Node{{ID: "n1", Name: "w1", Status: "ready", Draining: true}},
			ids:       map[string]string{"n1": "id-w1"},
			want:      map[string]string{"id-w1": Draining, "id-w2": NotFound, "id-w3": NotFound, "id-x": NotFound},
			wantCalls: nil,
		},
		{
			name:      "down: purged",
			nodes:     []Node{{ID: "n2", Name: "w2", Status: "down", Draining: true}},
			ids:       map[string]string{"n2": "id-w2"},
			want:      map[string]string{"id-w1": NotFound, "id-w2": Purged, "id-w3": NotFound, "id-x": NotFound},
			wantCalls: []string{"purge n2"},
		},
		{
			name:  "same name, another machine: untouched",
			nodes: []Node{{ID: "n3", Name: "w3", Status: "ready", Eligible: true}},
			ids:   map[string]string{"n3": "id-reinstalled"},
			want:  map[string]string{"id-w1": NotFound, "id-w2": NotFound, "id-w3": NotFound, "id-x": NotFound},
		},
		{
			name:      "a failing call is reported, the others go on",
			nodes:     []Node{{ID: "n1", Name: "w1", Status: "ready", Eligible: true}, {ID: "n2", Name: "w2", Status: "down"}},
			ids:       map[string]string{"n1": "id-w1", "n2": "id-w2"},
			failOn:    "drain",
			want:      map[string]string{"id-w1": Draining, "id-w2": Purged, "id-w3": NotFound, "id-x": NotFound},
			wantCalls: []string{"ineligible n1", "drain n1", "purge n2"},
			wantErr:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeNodes{nodes: tt.nodes, ids: tt.ids, failOn: tt.failOn}
			got, err := Apply(context.Background(), f, evicted)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Apply() error = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Apply() (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCalls, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyNothingToDo(t *testing.T) {
	f := &fakeNodes{listErr: errors.New("must not be called")}
	got, err := Apply(context.Background(), f, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Apply(nil) = %v, %v", got, err)
	}
	got, err = Apply(context.Background(), f, []Evicted{{ID: "id-x"}})
	if err != nil || !maps.Equal(got, map[string]string{"id-x": NotFound}) {
		t.Fatalf("Apply(without names) = %v, %v", got, err)
	}
	if _, err := Apply(context.Background(), f, []Evicted{{ID: "a", Name: "w"}}); err == nil {
		t.Fatal("a failing list was not reported")
	}
}
