package plan_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

func validPlan() plan.Plan {
	return plan.Plan{
		Epoch:  1,
		Region: "global",
		Expect: 3,
		Servers: []plan.Server{
			{ID: "id-a", Name: "a", Address: "10.0.0.1", Zone: "z1"},
			{ID: "id-b", Name: "b", Address: "10.0.0.2", Zone: "z2"},
			{ID: "id-c", Name: "c", Address: "10.0.0.3"},
		},
		CAHolder:      "id-a",
		CAFingerprint: testFingerprint,
		CAPort:        4651,
	}
}

const testFingerprint = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*plan.Plan)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(*plan.Plan) {}, ""},
		{"CA holder not first", func(p *plan.Plan) { p.CAHolder = "id-c" }, ""},
		{"single server", func(p *plan.Plan) { p.Expect = 1; p.Servers = p.Servers[:1] }, ""},
		{"epoch 0", func(p *plan.Plan) { p.Epoch = 0 }, "plan: epoch 0 is not committed"},
		{"empty region", func(p *plan.Plan) { p.Region = "" }, "plan: region is empty"},
		{"even expect", func(p *plan.Plan) {
			p.Expect = 4
			p.Servers = append(p.Servers, plan.Server{ID: "id-d", Name: "d"})
		}, "plan: expect 4 is even"},
		{"expect 0", func(p *plan.Plan) { p.Expect = 0; p.Servers = nil }, "plan: expect 0"},
		{"too few servers", func(p *plan.Plan) { p.Servers = p.Servers[:2] }, "plan: 2 servers listed, expect is 3"},
		{"too many servers", func(p *plan.Plan) { p.Expect = 1 }, "plan: 3 servers listed, expect is 1"},
		{"duplicate server ID", func(p *plan.Plan) { p.Servers[2].ID = "id-b" }, `plan: duplicate server ID "id-b"`},
		{"duplicate server name", func(p *plan.Plan) { p.Servers[2].Name = "a" }, `plan: duplicate server name "a"`},
		{"empty server ID", func(p *plan.Plan) { p.Servers[1].ID = "" }, `plan: server 1 ("b") has an empty ID`},
		{"empty server name", func(p *plan.Plan) { p.Servers[1].Name = "" }, `plan: server 1 ("id-b") has an empty name`},
		{"CA holder not a server", func(p *plan.Plan) { p.CAHolder = "id-z" }, `plan: CA holder "id-z" is not one of the servers`},
		{"empty CA holder", func(p *plan.Plan) { p.CAHolder = "" }, `plan: CA holder "" is not one of the servers`},
		{"no CA fingerprint", func(p *plan.Plan) { p.CAFingerprint = "" }, "CA fingerprint"},
		{"bad CA fingerprint", func(p *plan.Plan) { p.CAFingerprint = "sha256:XYZ" }, "CA fingerprint"},
		{"bad CA port", func(p *plan.Plan) { p.CAPort = 0 }, "CA port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPlan()
			tt.mutate(&p)
			err := p.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v; want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestHashAndEqual(t *testing.T) {
	base := validPlan()
	tests := []struct {
		name   string
		change func(*plan.Plan)
		same   bool
	}{
		{"identical", func(*plan.Plan) {}, true},
		{"epoch", func(p *plan.Plan) { p.Epoch = 2 }, false},
		{"region", func(p *plan.Plan) { p.Region = "eu" }, false},
		{"expect", func(p *plan.Plan) { p.Expect = 5 }, false},
		{"CA holder", func(p *plan.Plan) { p.CAHolder = "id-b" }, false},
		{"server order", func(p *plan.Plan) { p.Servers[0], p.Servers[1] = p.Servers[1], p.Servers[0] }, false},
		{"server address", func(p *plan.Plan) { p.Servers[2].Address = "10.0.0.9" }, false},
		{"server zone", func(p *plan.Plan) { p.Servers[2].Zone = "z3" }, false},
		{"one server fewer", func(p *plan.Plan) { p.Servers = p.Servers[:2] }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := base.Clone()
			tt.change(&q)
			if got := base.Hash() == q.Hash(); got != tt.same {
				t.Errorf("hashes equal = %v; want %v", got, tt.same)
			}
			if got := base.Equal(q); got != tt.same {
				t.Errorf("Equal = %v; want %v", got, tt.same)
			}
			if got := q.Equal(base); got != tt.same {
				t.Errorf("Equal (reversed) = %v; want %v", got, tt.same)
			}
		})
	}

	t.Run("nil and empty servers", func(t *testing.T) {
		p := plan.Plan{Epoch: 1, Region: "r", Expect: 1}
		q := p
		q.Servers = []plan.Server{}
		if p.Hash() != q.Hash() || !p.Equal(q) {
			t.Errorf("nil and empty server lists differ")
		}
	})

	t.Run("format", func(t *testing.T) {
		h := base.Hash()
		if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			t.Errorf("Hash = %q; want 64 lower-case hex digits", h)
		}
		if h != base.Hash() {
			t.Errorf("Hash is not stable")
		}
	})
}

func TestClone(t *testing.T) {
	p := validPlan()
	q := p.Clone()
	if diff := cmp.Diff(p, q); diff != "" {
		t.Fatalf("Clone differs (-orig +clone):\n%s", diff)
	}
	q.Servers[0].Name = "changed"
	if p.Servers[0].Name != "a" {
		t.Errorf("changing the clone changed the original")
	}
	if got := (plan.Plan{}).Clone(); got.Servers != nil {
		t.Errorf("Clone of nil servers = %#v; want nil", got.Servers)
	}
}

func TestAccessors(t *testing.T) {
	p := validPlan()
	p.CAHolder = "id-b"
	for _, tt := range []struct {
		id   string
		want bool
	}{{"id-a", true}, {"id-b", true}, {"id-c", true}, {"id-d", false}, {"a", false}, {"", false}} {
		if got := p.IsServer(tt.id); got != tt.want {
			t.Errorf("IsServer(%q) = %v; want %v", tt.id, got, tt.want)
		}
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, p.ServerNames()); diff != "" {
		t.Errorf("ServerNames (-want +got):\n%s", diff)
	}
	if got := p.CAHolderName(); got != "b" {
		t.Errorf("CAHolderName = %q; want %q", got, "b")
	}
	p.CAHolder = "id-z"
	if got := p.CAHolderName(); got != "" {
		t.Errorf("CAHolderName with absent holder = %q; want \"\"", got)
	}
	if got := (plan.Plan{}).ServerNames(); len(got) != 0 {
		t.Errorf("ServerNames of empty plan = %v; want none", got)
	}
}
