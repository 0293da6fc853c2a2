package agent

import (
	"testing"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/plan"
)

func validPlan() *plan.Plan {
	return &plan.Plan{Epoch: 1, Region: "global", Expect: 3, CAHolder: "a", CAPort: 4651,
		CAFingerprint: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Servers: []plan.Server{
			{ID: "a", Name: "n1", Address: "127.0.0.2"}, {ID: "b", Name: "n2", Address: "127.0.0.3"}, {ID: "c", Name: "n3", Address: "127.0.0.4"},
		}}
}

func TestDecodeMessage(t *testing.T) {
	hash := validPlan().Hash()
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"propose", string(message{Type: msgPropose, ID: 1, Plan: validPlan()}.encode()), true},
		{"ack", `{"t":"ack","id":3}`, true},
		{"release", string(message{Type: msgRelease, Hash: hash}.encode()), true},
		{"propose without plan", `{"t":"propose","id":1}`, false},
		{"commit with invalid plan", `{"t":"commit","p":{"epoch":0}}`, false},
		{"release without hash", `{"t":"release"}`, false},
		{"unknown type", `{"t":"elect"}`, false},
		{"not json", `\x00\x01`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeMessage([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Errorf("decodeMessage(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(message{Type: msgPropose, ID: 1, Plan: validPlan()}.encode())
	f.Add(message{Type: msgCommit, Plan: validPlan()}.encode())
	f.Add([]byte(`{"t":"nack","id":2,"r":"no"}`))
	f.Add([]byte(`{"t":"announce","h":"` + validPlan().Hash() + `","e":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		if _, err := decodeMessage(m.encode()); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}

func FuzzDecodePushState(f *testing.F) {
	f.Add(encodeJSON(pushState{Version: 1, Plan: validPlan()}))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodePushState(b)
		if err != nil {
			return
		}
		if _, err := decodePushState(encodeJSON(s)); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}
