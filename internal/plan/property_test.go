package plan_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

// memberSets returns hand-made member sets of sizes 1 to 8 with mixed zones,
// roles and pools, then 50 seeded random sets of up to 40 members.
func memberSets() [][]plan.Member {
	const auto, server, client = plan.RoleAuto, plan.RoleServer, plan.RoleClient
	sets := [][]plan.Member{
		{node("a", "", "", auto, 1, 1024)},
		{node("a", "z1", "default", auto, 2, 2048), node("b", "z2", "batch", client, 4, 4096)},
		{
			node("a", "z1", "default", auto, 2, 2048),
			node("b", "z1", "default", auto, 2, 2048),
			node("c", "", "batch", auto, 2, 2048),
		},
		{
			node("a", "z1", "default", server, 1, 1024),
			node("b", "z2", "default", auto, 8, 8192),
			node("c", "z2", "batch", auto, 8, 8192),
			node("d", "", "default", client, 16, 16384),
		},
		{
			node("a", "z1", "default", auto, 4, 4096),
			node("b", "z1", "default", auto, 4, 4096),
			node("c", "z1", "default", auto, 4, 4096),
			node("d", "z2", "default", auto, 4, 4096),
			node("e", "z3", "default", auto, 4, 4096),
		},
		{
			node("a", "", "default", auto, 4, 4096),
			node("b", "", "batch", auto, 4, 4096),
			node("c", "x", "default", server, 4, 4096),
			node("d", "x", "batch", server, 4, 4096),
			node("e", "y", "default", client, 4, 4096),
			node("f", "y", "default", auto, 4, 4096),
		},
		{
			node("a", "z1", "default", server, 2, 4096),
			node("b", "z1", "default", server, 2, 4096),
			node("c", "z1", "default", server, 2, 4096),
			node("d", "z1", "default", server, 2, 4096),
			node("e", "z2", "default", auto, 64, 4096),
			node("f", "z3", "batch", auto, 64, 4096),
			node("g", "z3", "default", client, 64, 4096),
		},
		{
			node("a", "z1", "default", auto, 1, 1024),
			node("b", "z1", "batch", auto, 2, 1024),
			node("c", "z2", "default", auto, 1, 2048),
			node("d", "z2", "batch", server, 1, 1024),
			node("e", "z3", "default", auto, 1, 1024),
			node("f", "z3", "gpu", client, 8, 1024),
			node("g", "", "default", auto, 1, 1024),
			node("h", "", "default", auto, 1, 1024),
		},
	}
	r := rand.New(rand.NewPCG(1, 2))
	zones := []string{"", "a", "b", "c"}
	pools := []string{"default", "batch", "gpu", ""}
	roles := []plan.Role{plan.RoleAuto, plan.RoleAuto, plan.RoleAuto, plan.RoleServer, plan.RoleClient, ""}
	cpus := []int{1, 2, 4, 8}
	mems := []int{1024, 2048, 4096, 8192}
	for range 50 {
		set := make([]plan.Member, r.IntN(40)+1)
		for i := range set {
			// A random prefix puts IDs out of index order; the index keeps
			// them unique.
			id := fmt.Sprintf("%04x-%02d", r.IntN(0x10000), i)
			set[i] = plan.Member{
				ID:       id,
				Name:     fmt.Sprintf("node-%02d", i),
				Address:  fmt.Sprintf("10.0.1.%d", i),
				Role:     roles[r.IntN(len(roles))],
				Pool:     pools[r.IntN(len(pools))],
				Zone:     zones[r.IntN(len(zones))],
				CPUCores: cpus[r.IntN(len(cpus))],
				MemoryMB: mems[r.IntN(len(mems))],
			}
		}
		sets = append(sets, set)
	}
	return sets
}

// permutations calls f with every permutation of ms (Heap's algorithm). f
// must not keep or modify its argument.
func permutations(ms []plan.Member, f func([]plan.Member)) {
	a := append([]plan.Member(nil), ms...)
	c := make([]int, len(a))
	f(a)
	for i := 0; i < len(a); {
		if c[i] < i {
			if i%2 == 0 {
				a[0], a[i] = a[i], a[0]
			} else {
				a[c[i]], a[i] = a[i], a[c[i]]
			}
			f(a)
			c[i]++
			i = 0
		} else {
			c[i] = 0
			i++
		}
	}
}

// expectFor returns the largest valid expect that the eligible members of ms
// can satisfy, or 1 if there are none.
func expectFor(ms []plan.Member) int {
	eligible := 0
	for _, m := range ms {
		if m.Role != plan.RoleClient {
			eligible++
		}
	}
	switch {
	case eligible >= 5:
		return 5
	case eligible >= 3:
		return 3
	}
	return 1
}

func TestElectOrderIndependent(t *testing.T) {
	for i, set := range memberSets() {
		t.Run(fmt.Sprintf("set %d of %d members", i, len(set)), func(t *testing.T) {
			s := plan.Settings{Expect: expectFor(set), Region: "global"}
			want, wantErr := plan.Elect(set, s)
			if wantErr == nil {
				checkPlan(t, set, want)
			} else {
				var ne *plan.NotEnoughError
				if !errors.As(wantErr, &ne) {
					t.Fatalf("Elect: %v", wantErr)
				}
			}
			wantHash := want.Hash()
			runs := 0
			check := func(ms []plan.Member) {
				runs++
				got, err := plan.Elect(ms, s)
				if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
					t.Fatalf("Elect of a permutation: error %v; want %v", err, wantErr)
				}
				if h := got.Hash(); h != wantHash {
					t.Fatalf("Elect of a permutation: %v (hash %s); want %v (hash %s)",
						got.ServerNames(), h, want.ServerNames(), wantHash)
				}
			}
			if len(set) <= 7 {
				permutations(set, check)
			} else {
				r := rand.New(rand.NewPCG(uint64(i), 3))
				ms := append([]plan.Member(nil), set...)
				for range 200 {
					r.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
					check(ms)
				}
			}
			if runs == 0 {
				t.Fatal("no permutation tried")
			}
		})
	}
}

// checkPlan checks the invariants of a plan elected among members.
func checkPlan(t *testing.T, members []plan.Member, p plan.Plan) {
	t.Helper()
	p.Epoch, p.CAFingerprint, p.CAPort = 1, testFingerprint, 4651
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	byID := make(map[string]plan.Member)
	explicit := 0
	for _, m := range members {
		byID[m.ID] = m
		if m.Role == plan.RoleServer {
			explicit++
		}
	}
	seen := make(map[string]bool)
	for i, s := range p.Servers {
		if seen[s.ID] {
			t.Errorf("server %q chosen twice", s.ID)
		}
		seen[s.ID] = true
		m, ok := byID[s.ID]
		switch {
		case !ok:
			t.Errorf("server %q is not a member", s.ID)
		case m.Role == plan.RoleClient:
			t.Errorf("server %q has role client", s.ID)
		case i < explicit && m.Role != plan.RoleServer:
			t.Errorf("server %d %q has role %q before all explicit servers", i, s.ID, m.Role)
		}
	}
	if p.CAHolder != p.Servers[0].ID {
		t.Errorf("CAHolder = %q; want first server %q", p.CAHolder, p.Servers[0].ID)
	}
}

func TestPermutationsCount(t *testing.T) {
	for n, want := range []int{1, 1, 2, 6, 24, 120, 720, 5040} {
		ms := make([]plan.Member, n)
		for i := range ms {
			ms[i].ID = fmt.Sprint(i)
		}
		seen := make(map[string]bool)
		permutations(ms, func(p []plan.Member) {
			seen[fmt.Sprint(p)] = true
		})
		if len(seen) != want {
			t.Errorf("%d members: %d distinct permutations; want %d", n, len(seen), want)
		}
	}
}

// FuzzElectOrder checks that reversing and rotating the members does not
// change the plan.
func FuzzElectOrder(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0xff, 0x10, 0x22, 0x37, 0x41})
	f.Add([]byte("zone spread"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64 {
			data = data[:64]
		}
		zones := []string{"", "a", "b"}
		pools := []string{"default", "batch"}
		roles := []plan.Role{plan.RoleAuto, plan.RoleServer, plan.RoleClient, plan.RoleAuto}
		var ms []plan.Member
		for i, b := range data {
			ms = append(ms, plan.Member{
				ID:       fmt.Sprintf("%02x-%d", b, i),
				Name:     fmt.Sprintf("n%d", i),
				Role:     roles[b&3],
				Zone:     zones[int(b>>2&3)%len(zones)],
				Pool:     pools[b>>4&1],
				CPUCores: int(b >> 5),
				MemoryMB: int(b) * 100,
			})
		}
		s := plan.Settings{Expect: expectFor(ms), Region: "r"}
		want, wantErr := plan.Elect(ms, s)
		if wantErr == nil {
			checkPlan(t, ms, want)
		}
		rev := make([]plan.Member, len(ms))
		for i, m := range ms {
			rev[len(ms)-1-i] = m
		}
		var rot []plan.Member
		if len(ms) > 0 {
			k := int(data[0]) % len(ms)
			rot = append(append(rot, ms[k:]...), ms[:k]...)
		}
		for _, in := range [][]plan.Member{rev, rot} {
			got, err := plan.Elect(in, s)
			if (err == nil) != (wantErr == nil) || !got.Equal(want) {
				t.Fatalf("Elect(reordered) = %v, %v; want %v, %v", got.ServerNames(), err, want.ServerNames(), wantErr)
			}
		}
	})
}
