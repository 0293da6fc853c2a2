package plan_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

func TestReplace(t *testing.T) {
	// validPlan: a (z1, CA holder), b (z2), c (zone "").
	survivors := []plan.Member{
		{ID: "id-a", Name: "a", Address: "10.0.0.1", Zone: "z1"},
		{ID: "id-b", Name: "b", Address: "10.0.0.2", Zone: "z2"},
		{ID: "id-c", Name: "c", Address: "10.0.0.3"},
	}
	d := plan.Member{ID: "id-d", Name: "d", Address: "10.0.0.4", Zone: "z1", CPUCores: 8}
	e := plan.Member{ID: "id-e", Name: "e", Address: "10.0.0.5", Zone: "z3", CPUCores: 1}
	f := plan.Member{ID: "id-f", Name: "f", Address: "10.0.0.6", Zone: "z3", Role: plan.RoleClient, CPUCores: 64}
	g := plan.Member{ID: "id-g", Name: "g", Address: "10.0.0.7", Zone: "z1", Role: plan.RoleServer}
	h := plan.Member{ID: "id-h", Name: "h", Address: "10.0.0.8", Zone: "z4", Pool: "batch", CPUCores: 32}
	srv := func(m plan.Member) plan.Server {
		return plan.Server{ID: m.ID, Name: m.Name, Address: m.Address, Zone: m.Zone}
	}
	tests := []struct {
		name        string
		dead        []string
		live        []plan.Member
		wantServers []string // names in order
		wantCA      string   // name
		wantErr     string
		notEnough   bool
	}{
		{name: "one dead, one candidate", dead: []string{"id-c"}, live: []plan.Member{survivors[0], survivors[1], d},
			wantServers: []string{"a", "b", "d"}, wantCA: "a"},
		{name: "new zone before a bigger machine", dead: []string{"id-b"}, live: []plan.Member{survivors[0], survivors[2], d, e},
			wantServers: []string{"a", "e", "c"}, wantCA: "a"},
		{name: "role server first", dead: []string{"id-b"}, live: []plan.Member{survivors[0], survivors[2], e, g},
			wantServers: []string{"a", "g", "c"}, wantCA: "a"},
		{name: "role client never", dead: []string{"id-b"}, live: []plan.Member{survivors[0], survivors[2], d, f},
			wantServers: []string{"a", "d", "c"}, wantCA: "a"},
		{name: "batch pool last", dead: []string{"id-b"}, live: []plan.Member{survivors[0], survivors[2], h, d},
			wantServers: []string{"a", "h", "c"}, wantCA: "a"}, // h is in a new zone: zone spread ranks before pool
		{name: "batch pool last in the same zone", dead: []string{"id-c"}, live: []plan.Member{survivors[0], survivors[1],
			{ID: "id-x", Name: "x", Zone: "z9", Pool: "batch", CPUCores: 64}, {ID: "id-y", Name: "y", Zone: "z9"}},
			wantServers: []string{"a", "b", "y"}, wantCA: "a"},
		{name: "CA holder dead: first survivor holds it", dead: []string{"id-a"}, live: []plan.Member{survivors[1], survivors[2], d},
			wantServers: []string{"d", "b", "c"}, wantCA: "b"},
		{name: "dead server listed twice", dead: []string{"id-c", "id-c"}, live: []plan.Member{survivors[0], survivors[1], d},
			wantServers: []string{"a", "b", "d"}, wantCA: "a"},
		{name: "live servers are not candidates", dead: []string{"id-c"}, live: survivors, notEnough: true},
		{name: "no candidate", dead: []string{"id-c"}, live: []plan.Member{survivors[0], survivors[1], f}, notEnough: true},
		{name: "majority dead", dead: []string{"id-b", "id-c"}, live: []plan.Member{survivors[0], d, e},
			wantErr: "a majority of the servers must survive"},
		{name: "nothing dead", live: []plan.Member{survivors[0], d}, wantErr: "no server to replace"},
		{name: "not a server", dead: []string{"id-d"}, live: []plan.Member{d}, wantErr: `node "id-d" to replace is not a server`},
		{name: "duplicate members", dead: []string{"id-c"}, live: []plan.Member{d, d}, wantErr: "duplicate member ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := validPlan()
			before := prev.Clone()
			got, err := plan.Replace(prev, tt.dead, tt.live)
			if !prev.Equal(before) {
				t.Fatalf("Replace modified its input plan")
			}
			var ne *plan.NotEnoughError
			switch {
			case tt.notEnough:
				if !errors.As(err, &ne) {
					t.Fatalf("Replace error = %v, want a *NotEnoughError", err)
				}
				return
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Replace error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("Replace: %v", err)
			}
			if diff := cmp.Diff(tt.wantServers, got.ServerNames()); diff != "" {
				t.Errorf("servers (-want +got):\n%s", diff)
			}
			if got.CAHolderName() != tt.wantCA {
				t.Errorf("CA holder = %s, want %s", got.CAHolderName(), tt.wantCA)
			}
			if got.Epoch != prev.Epoch+1 || got.CAFingerprint != prev.CAFingerprint || got.CAPort != prev.CAPort {
				t.Errorf("successor epoch %d CA %s:%d; want epoch %d and the same CA", got.Epoch, got.CAFingerprint, got.CAPort, prev.Epoch+1)
			}
			for _, s := range got.Servers {
				if s.Name == "d" && s != srv(d) {
					t.Errorf("replacement server %+v, want %+v", s, srv(d))
				}
			}
			if err := plan.CheckSuccessor(prev, got); err != nil {
				t.Errorf("CheckSuccessor(prev, Replace(prev)) = %v", err)
			}
			if diff := cmp.Diff(uniq(tt.dead), plan.Replaced(prev, got)); diff != "" {
				t.Errorf("Replaced (-want +got):\n%s", diff)
			}
		})
	}
}

func uniq(ids []string) []string {
	var out []string
	for _, id := range ids {
		if len(out) == 0 || out[len(out)-1] != id {
			out = append(out, id)
		}
	}
	return out
}

func TestCheckSuccessor(t *testing.T) {
	d := plan.Server{ID: "id-d", Name: "d", Address: "10.0.0.4"}
	e := plan.Server{ID: "id-e", Name: "e", Address: "10.0.0.5"}
	tests := []struct {
		name    string
		edit    func(p *plan.Plan)
		wantErr string // "" for a valid successor
	}{
		{name: "replaces one server", edit: func(p *plan.Plan) { p.Servers[2] = d }},
		{name: "replaces the CA holder", edit: func(p *plan.Plan) { p.Servers[0] = d; p.CAHolder = "id-b" }},
		{name: "same epoch", edit: func(p *plan.Plan) { p.Epoch, p.Genesis = 1, ""; p.Servers[2] = d }, wantErr: "does not follow"},
		{name: "another lineage", edit: func(p *plan.Plan) { p.Servers[2] = d; p.Genesis = strings.Repeat("0", 64) }, wantErr: "another first plan"},
		{name: "no lineage", edit: func(p *plan.Plan) { p.Servers[2] = d; p.Genesis = "" }, wantErr: "another first plan"},
		{name: "epoch skipped", edit: func(p *plan.Plan) { p.Epoch = 3; p.Servers[2] = d }, wantErr: "does not follow"},
		{name: "nothing replaced", edit: func(*plan.Plan) {}, wantErr: "replaces no server"},
		{name: "majority replaced", edit: func(p *plan.Plan) { p.Servers[1], p.Servers[2] = d, e }, wantErr: "at most a minority"},
		{name: "servers reordered", edit: func(p *plan.Plan) { p.Servers[1], p.Servers[2] = p.Servers[2], d }, wantErr: "moves server c"},
		{name: "server edited", edit: func(p *plan.Plan) { p.Servers[2].Zone = "z9" }, wantErr: "moves server c"},
		{name: "server readdressed", edit: func(p *plan.Plan) { p.Servers[2].Address = "10.9.9.9" }},
		{name: "CA holder readdressed", edit: func(p *plan.Plan) { p.Servers[0].Address = "fd00::9" }},
		{name: "readdressed and replaced", edit: func(p *plan.Plan) { p.Servers[1].Address = "10.9.9.9"; p.Servers[2] = d }},
		{name: "readdressed and edited", edit: func(p *plan.Plan) { p.Servers[2].Address = "10.9.9.9"; p.Servers[2].Zone = "z9" },
			wantErr: "moves server c"},
		{name: "readdressed to no address", edit: func(p *plan.Plan) { p.Servers[2].Address = "" }, wantErr: "not an IP address"},
		{name: "readdressed to a name", edit: func(p *plan.Plan) { p.Servers[2].Address = "c.example" }, wantErr: "not an IP address"},
		{name: "readdressed to any address", edit: func(p *plan.Plan) { p.Servers[2].Address = "0.0.0.0" }, wantErr: "not an IP address"},
		{name: "readdressed, recovery", edit: func(p *plan.Plan) { p.Servers[2].Address = "10.9.9.9"; p.Recovered = true },
			wantErr: "is a recovery"},
		{name: "CA changed", edit: func(p *plan.Plan) { p.Servers[2] = d; p.CAFingerprint = strings.Replace(p.CAFingerprint, "0", "f", 1) },
			wantErr: "changes the cluster CA"},
		{name: "CA port changed", edit: func(p *plan.Plan) { p.Servers[2] = d; p.CAPort++ }, wantErr: "changes the cluster CA"},
		{name: "region changed", edit: func(p *plan.Plan) { p.Servers[2] = d; p.Region = "eu" }, wantErr: "region=eu"},
		{name: "CA holder moved", edit: func(p *plan.Plan) { p.Servers[2] = d; p.CAHolder = "id-b" }, wantErr: "moves the CA holder to b"},
		{name: "CA holder replaced, wrong survivor", edit: func(p *plan.Plan) { p.Servers[0] = d; p.CAHolder = "id-c" },
			wantErr: "moves the CA holder to c"},
		{name: "invalid", edit: func(p *plan.Plan) { p.Servers[2] = d; p.CAHolder = "nobody" }, wantErr: "not one of the servers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := validPlan()
			next := prev.Clone()
			next.Epoch, next.Genesis = 2, prev.Hash()
			tt.edit(&next)
			err := plan.CheckSuccessor(prev, next)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckSuccessor = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("CheckSuccessor = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// Readdress records servers at new addresses and changes nothing else.
func TestReaddress(t *testing.T) {
	prev := validPlan()
	tests := []struct {
		name    string
		addrs   map[string]string
		want    []string // the servers' addresses in the successor
		wantErr string
	}{
		{name: "one server", addrs: map[string]string{"id-b": "10.0.0.22"}, want: []string{"10.0.0.1", "10.0.0.22", "10.0.0.3"}},
		{name: "the CA holder", addrs: map[string]string{"id-a": "fd00::1"}, want: []string{"fd00::1", "10.0.0.2", "10.0.0.3"}},
		{name: "two servers", addrs: map[string]string{"id-a": "10.0.0.11", "id-c": "10.0.0.33"}, want: []string{"10.0.0.11", "10.0.0.2", "10.0.0.33"}},
		{name: "same address", addrs: map[string]string{"id-b": "10.0.0.2"}, wantErr: "no server to readdress"},
		{name: "nothing", addrs: nil, wantErr: "no server to readdress"},
		{name: "not a server", addrs: map[string]string{"id-d": "10.0.0.4"}, wantErr: "not a server of epoch 1"},
		{name: "not an address", addrs: map[string]string{"id-b": "b.example"}, wantErr: "not an IP address"},
		{name: "not canonical", addrs: map[string]string{"id-b": "FD00::0001"}, wantErr: "not an IP address"},
		{name: "zoned", addrs: map[string]string{"id-b": "fe80::1%eth0"}, wantErr: "not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, err := plan.Readdress(prev, tt.addrs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Readdress = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range next.Servers {
				got = append(got, s.Address)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			if err := plan.CheckSuccessor(prev, next); err != nil {
				t.Errorf("CheckSuccessor(prev, Readdress(prev)) = %v", err)
			}
			if got, want := len(plan.Moved(prev, next)), len(tt.addrs); got != want {
				t.Errorf("Moved lists %d servers, want %d", got, want)
			}
			if len(plan.Replaced(prev, next)) != 0 || next.CAHolder != prev.CAHolder {
				t.Errorf("Readdress replaced a server or moved the CA holder: %+v", next)
			}
		})
	}
}

// A node that missed epochs adopts a later plan of its lineage, and no
// other.
func TestCheckDescendant(t *testing.T) {
	d := plan.Server{ID: "id-d", Name: "d", Address: "10.0.0.4"}
	e := plan.Server{ID: "id-e", Name: "e", Address: "10.0.0.5"}
	first := validPlan()
	second, err := plan.Replace(first, []string{"id-c"}, []plan.Member{{ID: "id-d", Name: "d", Address: "10.0.0.4", Role: plan.RoleAuto}})
	if err != nil {
		t.Fatal(err)
	}
	third, err := plan.Replace(second, []string{"id-b"}, []plan.Member{{ID: "id-e", Name: "e", Address: "10.0.0.5", Role: plan.RoleAuto}})
	if err != nil {
		t.Fatal(err)
	}
	if third.Genesis != first.Hash() || !third.IsServer(d.ID) || !third.IsServer(e.ID) {
		t.Fatalf("third = %+v; want genesis %s with d and e", third, first.Hash())
	}
	tests := []struct {
		name    string
		prev    plan.Plan
		edit    func(p *plan.Plan)
		wantErr string
	}{
		{name: "two epochs on", prev: first},
		{name: "next epoch", prev: second, wantErr: "does not come after"},
		{name: "another lineage", prev: first, edit: func(p *plan.Plan) { p.Genesis = strings.Repeat("0", 64) }, wantErr: "does not descend"},
		{name: "holder without lineage", prev: func() plan.Plan { p := second.Clone(); p.Genesis = ""; return p }(), edit: func(p *plan.Plan) { p.Epoch = 4 }, wantErr: "does not descend"},
		{name: "CA changed", prev: first, edit: func(p *plan.Plan) { p.CAPort++ }, wantErr: "changes the cluster CA"},
		{name: "region changed", prev: first, edit: func(p *plan.Plan) { p.Region = "eu" }, wantErr: "region=eu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := third.Clone()
			if tt.edit != nil {
				tt.edit(&next)
			}
			err := plan.CheckDescendant(tt.prev, next)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckDescendant = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("CheckDescendant = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRecover(t *testing.T) {
	// validPlan: a (z1, CA holder), b (z2), c (zone "").
	d := plan.Member{ID: "id-d", Name: "d", Address: "10.0.0.4", Zone: "z1"}
	e := plan.Member{ID: "id-e", Name: "e", Address: "10.0.0.5", Zone: "z3"}
	b := plan.Member{ID: "id-b", Name: "b", Address: "10.0.0.2", Zone: "z2"}
	tests := []struct {
		name        string
		dead        []string
		live        []plan.Member
		wantServers []string
		wantCA      string
		wantErr     string
	}{
		{name: "two of three lost", dead: []string{"id-a", "id-c"}, live: []plan.Member{b, d, e}, wantServers: []string{"d", "b", "e"}, wantCA: "b"},
		{name: "all lost", dead: []string{"id-a", "id-b", "id-c"}, live: []plan.Member{d, e}, wantErr: "keeps at least one"},
		{name: "a majority survives", dead: []string{"id-c"}, live: []plan.Member{b, d}, wantErr: "without a recovery"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := validPlan()
			got, err := plan.Recover(prev, tt.dead, tt.live)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Recover error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantServers, got.ServerNames()); diff != "" || got.CAHolderName() != tt.wantCA || !got.Recovered {
				t.Errorf("Recover: servers %v (-want +got %s), CA %s, recovered %v", got.ServerNames(), diff, got.CAHolderName(), got.Recovered)
			}
			if err := plan.CheckRecovery(prev, got); err != nil {
				t.Errorf("CheckRecovery of Recover's plan: %v", err)
			}
			if err := plan.CheckSuccessor(prev, got); err == nil || !strings.Contains(err.Error(), "is a recovery") {
				t.Errorf("CheckSuccessor of a recovery: %v", err)
			}
			if got.Hash() == func() plan.Plan { q := got.Clone(); q.Recovered = false; return q }().Hash() {
				t.Error("the recovery mark is not part of the plan's hash")
			}
		})
	}
}

func TestCheckRecoveryRefuses(t *testing.T) {
	prev := validPlan()
	b := plan.Member{ID: "id-b", Name: "b", Address: "10.0.0.2", Zone: "z2"}
	d := plan.Member{ID: "id-d", Name: "d", Address: "10.0.0.4", Zone: "z1"}
	e := plan.Member{ID: "id-e", Name: "e", Address: "10.0.0.5", Zone: "z3"}
	minority, err := plan.Replace(prev, []string{"id-c"}, []plan.Member{b, d})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := plan.Recover(prev, []string{"id-a", "id-c"}, []plan.Member{b, d, e})
	if err != nil {
		t.Fatal(err)
	}
	unmarked := rec.Clone()
	unmarked.Recovered = false
	marked := minority.Clone()
	marked.Recovered = true
	otherCA := rec.Clone()
	otherCA.CAHolder = "id-d"
	tests := []struct {
		name string
		next plan.Plan
		want string
	}{
		{"not marked", unmarked, "not marked as a recovery"},
		{"a minority replaced", marked, "a minority"},
		{"the CA holder moved", otherCA, "moves the CA holder"},
	}
	for _, tt := range tests {
		if err := plan.CheckRecovery(prev, tt.next); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	if err := plan.CheckSuccessor(prev, unmarked); err == nil || !strings.Contains(err.Error(), "at most a minority") {
		t.Errorf("CheckSuccessor of a majority replacement: %v", err)
	}
}
