package agent

import "github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"

func validPlan() *plan.Plan {
	return &plan.Plan{Epoch: 1, Region: "global", Expect: 3, CAHolder: "a", CAPort: 4651,
		CAFingerprint: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Servers: []plan.Server{
			{ID: "a", Name: "n1", Address: "127.0.0.2"}, {ID: "b", Name: "n2", Address: "127.0.0.3"}, {ID: "c", Name: "n3", Address: "127.0.0.4"},
		}}
}
