package caholder

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/gossip"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

func testPlan() plan.Plan {
	return plan.Plan{Epoch: 2, Region: "global", Expect: 3, CAHolder: "a", CAPort: 4651, Servers: []plan.Server{
		{ID: "a", Name: "n1", Address: "127.0.0.2"}, {ID: "b", Name: "n2", Address: "127.0.0.3"}, {ID: "c", Name: "n3", Address: "127.0.0.4"},
	}}
}

func TestAuthorize(t *testing.T) {
	p := testPlan()
	member := func(name, id, addr string, st gossip.State) gossip.Member {
		return gossip.Member{Name: name, Address: addr, Port: 4650, State: st, Meta: gossip.Meta{ID: id}}
	}
	members := []gossip.Member{
		member("n1", "a", "127.0.0.2", gossip.StateAlive),
		member("n2", "b", "127.0.0.3", gossip.StateAlive),
		member("w1", "w", "127.0.0.9", gossip.StateAlive),
		member("gone", "g", "127.0.0.8", gossip.StateDead),
		{Name: "bad", Address: "127.0.0.7", State: gossip.StateAlive, MetaErr: errors.New("meta did not decode")},
	}
	tests := []struct {
		name    string
		plan    *plan.Plan
		req     certs.SignRequest
		want    certs.Identity
		wantErr string
	}{
		{name: "a client certificate for a client", plan: &p,
			req:  certs.SignRequest{NodeID: "w", NodeName: "w1", Role: certs.RoleClient},
			want: certs.Identity{NodeID: "w", NodeName: "w1", Region: "global", Address: "127.0.0.9", Role: certs.RoleClient}},
		{name: "a server certificate for a server", plan: &p,
			req:  certs.SignRequest{NodeID: "b", NodeName: "n2", Role: certs.RoleServer},
			want: certs.Identity{NodeID: "b", NodeName: "n2", Region: "global", Address: "127.0.0.3", Role: certs.RoleServer}},
		{name: "a CLI certificate for a server", plan: &p,
			req:  certs.SignRequest{NodeID: "a", NodeName: "n1", Role: certs.RoleCLI},
			want: certs.Identity{NodeID: "a", NodeName: "n1", Region: "global", Address: "127.0.0.2", Role: certs.RoleCLI}},
		{name: "a client certificate for a server", plan: &p,
			req:  certs.SignRequest{NodeID: "b", NodeName: "n2", Role: certs.RoleClient},
			want: certs.Identity{NodeID: "b", NodeName: "n2", Region: "global", Address: "127.0.0.3", Role: certs.RoleClient}},
		{name: "no plan yet", req: certs.SignRequest{NodeID: "w", NodeName: "w1", Role: certs.RoleClient},
			wantErr: "no plan is committed yet"},
		{name: "a client asks for a server certificate", plan: &p,
			req: certs.SignRequest{NodeID: "w", NodeName: "w1", Role: certs.RoleServer}, wantErr: "is a client in plan epoch 2"},
		{name: "a client asks for a CLI certificate", plan: &p,
			req: certs.SignRequest{NodeID: "w", NodeName: "w1", Role: certs.RoleCLI}, wantErr: "is a client in plan epoch 2"},
		{name: "a client names a server's ID", plan: &p,
			req: certs.SignRequest{NodeID: "b", NodeName: "w1", Role: certs.RoleServer}, wantErr: "not an alive member"},
		{name: "a client names a server", plan: &p,
			req: certs.SignRequest{NodeID: "w", NodeName: "n2", Role: certs.RoleServer}, wantErr: "not an alive member"},
		{name: "a dead member", plan: &p,
			req: certs.SignRequest{NodeID: "g", NodeName: "gone", Role: certs.RoleClient}, wantErr: "not an alive member"},
		{name: "a member whose meta did not decode", plan: &p,
			req: certs.SignRequest{NodeID: "", NodeName: "bad", Role: certs.RoleClient}, wantErr: "not an alive member"},
		{name: "a stranger", plan: &p,
			req: certs.SignRequest{NodeID: "x", NodeName: "x1", Role: certs.RoleClient}, wantErr: "not an alive member"},
		{name: "an unknown role", plan: &p,
			req: certs.SignRequest{NodeID: "w", NodeName: "w1", Role: "root"}, wantErr: `unknown role "root"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Authorize(tt.plan, members, &tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Authorize = %+v, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Authorize = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestTakesOver(t *testing.T) {
	p := testPlan()
	tests := []struct {
		name  string
		self  string
		alive []string
		want  bool
	}{
		{name: "the next server, all alive", self: "b", alive: []string{"n2", "n3"}, want: true},
		{name: "the one after it, while it lives", self: "c", alive: []string{"n2", "n3"}, want: false},
		{name: "the one after it, once it is gone too", self: "c", alive: []string{"n3"}, want: true},
		{name: "the CA holder itself", self: "a", alive: []string{"n1", "n2", "n3"}, want: false},
		{name: "a client", self: "w", alive: []string{"n3"}, want: false},
		{name: "the next server, seen as not alive by itself", self: "b", alive: nil, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alive := map[string]bool{}
			for _, n := range tt.alive {
				alive[n] = true
			}
			if got := TakesOver(p, tt.self, alive); got != tt.want {
				t.Errorf("TakesOver(%s) = %v, want %v", tt.self, got, tt.want)
			}
		})
	}
}

func TestCandidates(t *testing.T) {
	p := testPlan()
	p.CAHolder = "c"
	var got []string
	for _, s := range Candidates(p) {
		got = append(got, s.ID)
	}
	if want := []string{"c", "a", "b"}; !slices.Equal(got, want) {
		t.Errorf("Candidates = %q, want %q", got, want)
	}
	if ids := p.Servers; ids[0].ID != "a" || ids[2].ID != "c" {
		t.Errorf("Candidates changed the plan's servers: %+v", ids)
	}
}
