package agree

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
		{"propose", string(Message{Type: MsgPropose, ID: 1, Plan: validPlan()}.Encode()), true},
		{"ack", `{"t":"ack","id":3}`, true},
		{"release", string(Message{Type: MsgRelease, Hash: hash}.Encode()), true},
		{"propose without plan", `{"t":"propose","id":1}`, false},
		{"commit with invalid plan", `{"t":"commit","p":{"epoch":0}}`, false},
		{"release without hash", `{"t":"release"}`, false},
		{"unknown type", `{"t":"elect"}`, false},
		{"not json", `\x00\x01`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMessage([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Errorf("DecodeMessage(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(Message{Type: MsgPropose, ID: 1, Plan: validPlan()}.Encode())
	f.Add(Message{Type: MsgCommit, Plan: validPlan()}.Encode())
	f.Add([]byte(`{"t":"nack","id":2,"r":"no"}`))
	f.Add([]byte(`{"t":"announce","h":"` + validPlan().Hash() + `","e":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		if _, err := DecodeMessage(m.Encode()); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	f.Add(EncodeState(validPlan()))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeState(b)
		if err != nil || p == nil {
			return
		}
		if _, err := DecodeState(EncodeState(p)); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}
