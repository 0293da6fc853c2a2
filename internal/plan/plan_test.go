package plan_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

func TestParseRole(t *testing.T) {
	tests := []struct {
		in      string
		want    plan.Role
		wantErr string
	}{
		{in: "", want: plan.RoleAuto},
		{in: "auto", want: plan.RoleAuto},
		{in: "server", want: plan.RoleServer},
		{in: "client", want: plan.RoleClient},
		{in: "Server", wantErr: `plan: unknown role "Server" (want auto, server or client)`},
		{in: "leader", wantErr: `plan: unknown role "leader" (want auto, server or client)`},
		{in: " auto", wantErr: `plan: unknown role " auto" (want auto, server or client)`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := plan.ParseRole(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseRole(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRole(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestValidateExpect(t *testing.T) {
	tests := []struct {
		n    int
		ok   bool
		want []string // substrings of the error
	}{
		{n: 1, ok: true},
		{n: 3, ok: true},
		{n: 5, ok: true},
		{n: 0, want: []string{"plan: expect 0", "1 for a single-server test cluster", "3 or 5 for production"}},
		{n: -1, want: []string{"plan: expect -1", "1 for a single-server test cluster"}},
		{n: 2, want: []string{"plan: expect 2 is even", "use 3", "split votes"}},
		{n: 4, want: []string{"plan: expect 4 is even; use 3 or 5", "no more failures than the odd number below it", "split votes"}},
		{n: 6, want: []string{"plan: expect 6 is even; use 5", "split votes"}},
		{n: 7, want: []string{"plan: expect 7 is more than 5", "use 3 or 5"}},
		{n: 9, want: []string{"plan: expect 9 is more than 5"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			err := plan.ValidateExpect(tt.n)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateExpect(%d) = %v; want nil", tt.n, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateExpect(%d) = nil; want an error", tt.n)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ValidateExpect(%d) = %q; want it to contain %q", tt.n, err, w)
				}
			}
		})
	}
}

// node builds a member with the given ID; its name is "n-"+id.
func node(id, zone, pool string, role plan.Role, cpu, memMB int) plan.Member {
	return plan.Member{
		ID:         id,
		Name:       "n-" + id,
		Address:    "10.0.0." + id,
		Role:       role,
		Pool:       pool,
		Zone:       zone,
		Datacenter: "dc1",
		CPUCores:   cpu,
		MemoryMB:   memMB,
	}
}

func serverIDs(p plan.Plan) []string {
	ids := make([]string, len(p.Servers))
	for i, s := range p.Servers {
		ids[i] = s.ID
	}
	return ids
}

func TestElect(t *testing.T) {
	const auto, server, client = plan.RoleAuto, plan.RoleServer, plan.RoleClient
	tests := []struct {
		name    string
		members []plan.Member
		expect  int
		want    []string // server IDs in rank order
	}{
		{
			name: "3 of 5 by score",
			members: []plan.Member{
				node("a", "", "default", auto, 2, 8192),
				node("b", "", "default", auto, 8, 8192),
				node("c", "", "default", auto, 4, 8192),
				node("d", "", "default", auto, 16, 8192),
				node("e", "", "default", auto, 1, 8192),
			},
			expect: 3,
			want:   []string{"d", "b", "c"},
		},
		{
			name: "explicit server preferred over bigger auto",
			members: []plan.Member{
				node("a", "", "default", auto, 2, 8192),
				node("b", "", "default", auto, 8, 8192),
				node("c", "", "default", auto, 4, 8192),
				node("d", "", "default", auto, 16, 8192),
				node("e", "", "default", server, 1, 1024),
			},
			expect: 3,
			want:   []string{"e", "d", "b"},
		},
		{
			name: "explicit server preferred over zone spread",
			members: []plan.Member{
				node("a", "z1", "default", server, 1, 1024),
				node("b", "z1", "default", server, 1, 1024),
				node("c", "z2", "default", auto, 16, 8192),
				node("d", "z3", "default", auto, 16, 8192),
			},
			expect: 3,
			want:   []string{"a", "b", "c"},
		},
		{
			name: "client never chosen even if biggest",
			members: []plan.Member{
				node("a", "", "default", auto, 2, 8192),
				node("b", "", "default", auto, 8, 8192),
				node("c", "", "default", auto, 4, 8192),
				node("d", "", "default", client, 64, 262144),
				node("e", "", "default", auto, 1, 8192),
			},
			expect: 3,
			want:   []string{"b", "c", "a"},
		},
		{
			name: "empty role counts as auto",
			members: []plan.Member{
				node("a", "", "default", "", 4, 8192),
				node("b", "", "default", client, 64, 8192),
			},
			expect: 1,
			want:   []string{"a"},
		},
		{
			name: "one per zone",
			members: []plan.Member{
				node("1", "a", "default", auto, 16, 65536),
				node("2", "a", "default", auto, 16, 65536),
				node("3", "a", "default", auto, 16, 65536),
				node("4", "b", "default", auto, 2, 4096),
				node("5", "c", "default", auto, 4, 4096),
			},
			expect: 3,
			want:   []string{"1", "5", "4"},
		},
		{
			name: "empty zone is a zone of its own",
			members: []plan.Member{
				node("1", "", "default", auto, 16, 65536),
				node("2", "", "default", auto, 16, 65536),
				node("3", "x", "default", auto, 1, 1024),
			},
			expect: 1,
			want:   []string{"1"},
		},
		{
			name: "empty zone spread like any other",
			members: []plan.Member{
				node("1", "", "default", auto, 16, 65536),
				node("2", "", "default", auto, 16, 65536),
				node("3", "x", "default", auto, 1, 1024),
				node("4", "x", "default", auto, 1, 1024),
				node("5", "y", "default", auto, 1, 1024),
			},
			expect: 3,
			want:   []string{"1", "3", "5"},
		},
		{
			name: "zones refill evenly once each has a server",
			members: []plan.Member{
				node("1", "a", "default", auto, 8, 8192),
				node("2", "a", "default", auto, 4, 8192),
				node("3", "a", "default", auto, 2, 8192),
				node("4", "b", "default", auto, 1, 8192),
				node("5", "b", "default", auto, 1, 4096),
				node("6", "b", "default", auto, 1, 2048),
			},
			expect: 5,
			want:   []string{"1", "4", "2", "5", "3"},
		},
		{
			name: "batch pool avoided",
			members: []plan.Member{
				node("a", "", "batch", auto, 64, 262144),
				node("b", "", "default", auto, 2, 4096),
				node("c", "", "default", auto, 4, 4096),
				node("d", "", "default", auto, 1, 4096),
			},
			expect: 3,
			want:   []string{"c", "b", "d"},
		},
		{
			name: "batch pool used when needed to reach expect",
			members: []plan.Member{
				node("a", "", "batch", auto, 64, 262144),
				node("b", "", "default", auto, 2, 4096),
				node("c", "", "batch", auto, 4, 4096),
				node("d", "", "default", client, 8, 4096),
			},
			expect: 3,
			want:   []string{"b", "a", "c"},
		},
		{
			name: "other pools are not avoided",
			members: []plan.Member{
				node("a", "", "gpu", auto, 8, 4096),
				node("b", "", "default", auto, 2, 4096),
			},
			expect: 1,
			want:   []string{"a"},
		},
		{
			name: "zone spread outranks pool",
			members: []plan.Member{
				node("a", "z1", "default", auto, 4, 4096),
				node("b", "z1", "default", auto, 4, 4096),
				node("c", "z2", "batch", auto, 1, 1024),
			},
			expect: 1,
			want:   []string{"a"},
		},
		{
			name: "zone spread outranks pool with three",
			members: []plan.Member{
				node("a", "z1", "default", auto, 4, 4096),
				node("b", "z1", "default", auto, 4, 4096),
				node("c", "z2", "batch", auto, 1, 1024),
				node("d", "z3", "batch", auto, 2, 1024),
			},
			expect: 3,
			want:   []string{"a", "d", "c"},
		},
		{
			name: "memory breaks a CPU tie",
			members: []plan.Member{
				node("a", "", "default", auto, 4, 4096),
				node("b", "", "default", auto, 4, 8192),
			},
			expect: 1,
			want:   []string{"b"},
		},
		{
			name: "one core weighs 4096 MiB",
			members: []plan.Member{
				node("a", "", "default", auto, 2, 0),
				node("b", "", "default", auto, 1, 4097),
				node("c", "", "default", auto, 1, 4095),
			},
			expect: 3,
			want:   []string{"b", "a", "c"},
		},
		{
			name: "tie broken by ID",
			members: []plan.Member{
				node("e", "", "default", auto, 4, 4096),
				node("d", "", "default", auto, 4, 4096),
				node("c", "", "default", auto, 4, 4096),
				node("b", "", "default", auto, 4, 4096),
				node("a", "", "default", auto, 4, 4096),
			},
			expect: 3,
			want:   []string{"a", "b", "c"},
		},
		{
			name: "expect 1",
			members: []plan.Member{
				node("a", "", "default", auto, 2, 4096),
				node("b", "", "default", auto, 4, 4096),
				node("c", "", "default", client, 8, 4096),
			},
			expect: 1,
			want:   []string{"b"},
		},
		{
			name:    "expect 1 single node",
			members: []plan.Member{node("a", "", "", auto, 0, 0)},
			expect:  1,
			want:    []string{"a"},
		},
		{
			name: "expect 5",
			members: []plan.Member{
				node("a", "z1", "default", auto, 2, 4096),
				node("b", "z1", "default", auto, 4, 4096),
				node("c", "z2", "default", auto, 8, 4096),
				node("d", "z2", "default", server, 1, 4096),
				node("e", "z3", "batch", auto, 32, 4096),
				node("f", "z3", "default", auto, 1, 1024),
				node("g", "z1", "default", client, 64, 4096),
			},
			expect: 5,
			want:   []string{"d", "b", "f", "c", "a"},
		},
		{
			name: "more explicit servers than expect",
			members: []plan.Member{
				node("a", "z1", "default", server, 2, 4096),
				node("b", "z1", "default", server, 4, 4096),
				node("c", "z2", "default", server, 1, 4096),
				node("d", "z2", "default", server, 8, 4096),
				node("e", "z3", "default", auto, 64, 4096),
			},
			expect: 3,
			want:   []string{"d", "b", "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]plan.Member(nil), tt.members...)
			p, err := plan.Elect(in, plan.Settings{Expect: tt.expect, Region: "global"})
			if err != nil {
				t.Fatalf("Elect: %v", err)
			}
			if diff := cmp.Diff(tt.want, serverIDs(p)); diff != "" {
				t.Errorf("servers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.members, in); diff != "" {
				t.Errorf("Elect modified its input (-before +after):\n%s", diff)
			}
			if p.CAHolder != p.Servers[0].ID {
				t.Errorf("CAHolder = %q; want first server %q", p.CAHolder, p.Servers[0].ID)
			}
			if p.Epoch != 0 || p.Expect != tt.expect || p.Region != "global" {
				t.Errorf("Epoch, Expect, Region = %d, %d, %q; want 0, %d, \"global\"", p.Epoch, p.Expect, p.Region, tt.expect)
			}
			byID := make(map[string]plan.Member)
			for _, m := range tt.members {
				byID[m.ID] = m
			}
			for _, s := range p.Servers {
				m := byID[s.ID]
				want := plan.Server{ID: m.ID, Name: m.Name, Address: m.Address, Zone: m.Zone}
				if s != want {
					t.Errorf("server %+v; want %+v", s, want)
				}
			}
			p.Epoch, p.CAFingerprint, p.CAPort = 1, testFingerprint, 4651
			if err := p.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestElectErrors(t *testing.T) {
	ok := []plan.Member{
		node("a", "", "", plan.RoleAuto, 1, 1024),
		node("b", "", "", plan.RoleAuto, 1, 1024),
		node("c", "", "", plan.RoleAuto, 1, 1024),
	}
	dupName := node("d", "", "", plan.RoleAuto, 1, 1024)
	dupName.Name = "n-b"
	noName := node("d", "", "", plan.RoleAuto, 1, 1024)
	noName.Name = ""
	tests := []struct {
		name    string
		members []plan.Member
		s       plan.Settings
		want    string
	}{
		{"expect 0", ok, plan.Settings{Expect: 0, Region: "global"}, "plan: expect 0"},
		{"expect 4", ok, plan.Settings{Expect: 4, Region: "global"}, "plan: expect 4 is even"},
		{"expect 7", ok, plan.Settings{Expect: 7, Region: "global"}, "plan: expect 7"},
		{"empty region", ok, plan.Settings{Expect: 3}, "plan: region is empty"},
		{
			"duplicate ID",
			append(ok[:3:3], node("b", "", "", plan.RoleAuto, 1, 1024)),
			plan.Settings{Expect: 3, Region: "global"},
			`plan: duplicate member ID "b"`,
		},
		{
			"duplicate name",
			append(ok[:3:3], dupName),
			plan.Settings{Expect: 3, Region: "global"},
			`plan: duplicate member name "n-b"`,
		},
		{
			"empty ID",
			append(ok[:3:3], node("", "", "", plan.RoleAuto, 1, 1024)),
			plan.Settings{Expect: 3, Region: "global"},
			`plan: member "n-" has an empty ID`,
		},
		{
			"empty name",
			append(ok[:3:3], noName),
			plan.Settings{Expect: 3, Region: "global"},
			`plan: member "d" has an empty name`,
		},
		{
			"unknown role",
			append(ok[:3:3], node("d", "", "", "leader", 1, 1024)),
			plan.Settings{Expect: 3, Region: "global"},
			`plan: member "n-d" has unknown role "leader"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := plan.Elect(tt.members, tt.s)
			if err == nil {
				t.Fatalf("Elect = %+v; want error %q", p, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Elect error %q; want it to contain %q", err, tt.want)
			}
			var ne *plan.NotEnoughError
			if errors.As(err, &ne) {
				t.Errorf("Elect error %v is a *NotEnoughError", err)
			}
		})
	}
}

func TestElectNotEnough(t *testing.T) {
	tests := []struct {
		name    string
		members []plan.Member
		expect  int
		want    plan.NotEnoughError
		msg     string
	}{
		{
			name:    "no members",
			members: nil,
			expect:  1,
			want:    plan.NotEnoughError{Expect: 1, Eligible: 0, Members: 0},
			msg:     "plan: waiting for 1 server-eligible node, have 0 (0 members; 0 have role=client)",
		},
		{
			name: "clients only",
			members: []plan.Member{
				node("a", "", "", plan.RoleClient, 1, 1024),
			},
			expect: 1,
			want:   plan.NotEnoughError{Expect: 1, Eligible: 0, Members: 1},
			msg:    "plan: waiting for 1 server-eligible node, have 0 (1 members; 1 has role=client)",
		},
		{
			name: "2 of 3 eligible",
			members: []plan.Member{
				node("a", "", "", plan.RoleClient, 1, 1024),
				node("b", "", "", plan.RoleAuto, 1, 1024),
				node("c", "", "", plan.RoleClient, 1, 1024),
				node("d", "", "", plan.RoleServer, 1, 1024),
				node("e", "", "", plan.RoleClient, 1, 1024),
			},
			expect: 3,
			want:   plan.NotEnoughError{Expect: 3, Eligible: 2, Members: 5},
			msg:    "plan: waiting for 3 server-eligible nodes, have 2 (5 members; 3 have role=client)",
		},
		{
			name: "4 of 5",
			members: []plan.Member{
				node("a", "", "", plan.RoleAuto, 1, 1024),
				node("b", "", "", plan.RoleAuto, 1, 1024),
				node("c", "", "", plan.RoleAuto, 1, 1024),
				node("d", "", "", plan.RoleAuto, 1, 1024),
			},
			expect: 5,
			want:   plan.NotEnoughError{Expect: 5, Eligible: 4, Members: 4},
			msg:    "plan: waiting for 5 server-eligible nodes, have 4 (4 members; 0 have role=client)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plan.Elect(tt.members, plan.Settings{Expect: tt.expect, Region: "global"})
			var ne *plan.NotEnoughError
			if !errors.As(fmt.Errorf("wrapped: %w", err), &ne) {
				t.Fatalf("Elect error %v; want a *NotEnoughError", err)
			}
			if diff := cmp.Diff(tt.want, *ne); diff != "" {
				t.Errorf("NotEnoughError (-want +got):\n%s", diff)
			}
			if err.Error() != tt.msg {
				t.Errorf("Error() = %q; want %q", err, tt.msg)
			}
		})
	}
}

func TestScore(t *testing.T) {
	tests := []struct {
		cpu, mem int
		want     int64
	}{
		{0, 0, 0},
		{1, 0, 4096},
		{0, 4096, 4096},
		{4, 16384, 4*4096 + 16384},
		{-2, -100, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d cores %d MiB", tt.cpu, tt.mem), func(t *testing.T) {
			if got := plan.Score(plan.Member{CPUCores: tt.cpu, MemoryMB: tt.mem}); got != tt.want {
				t.Errorf("Score = %d; want %d", got, tt.want)
			}
		})
	}
}
